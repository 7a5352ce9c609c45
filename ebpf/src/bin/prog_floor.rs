//! The benchmark's floors, built exactly like the real programs and never
//! attached by the forwarder itself:
//! - `floor`: redirects through `router_iface` without reading or touching
//!   the frame: the cost of XDP redirect itself;
//! - `floor_push`: the same after `bpf_xdp_adjust_head(-4)` (no write): the
//!   least that any program pushing a tag can cost.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use xdp_forwarder_common::{Frame as _, vlan::VLAN_HLEN};
use xdp_forwarder_ebpf::{XdpFrame, maps::ROUTER_IFACE_FLAGS, router_iface};

router_iface!(ROUTER_IFACE_FLAGS);

#[xdp]
pub fn floor(_ctx: XdpContext) -> u32 {
    redirect()
}

#[xdp]
pub fn floor_push(ctx: XdpContext) -> u32 {
    match XdpFrame(ctx).adjust_head(-(VLAN_HLEN as i32)) {
        Ok(()) => redirect(),
        Err(_) => xdp_action::XDP_DROP,
    }
}

#[inline(always)]
fn redirect() -> u32 {
    if ROUTER_IFACE.redirect(0) {
        xdp_action::XDP_REDIRECT
    } else {
        xdp_action::XDP_DROP
    }
}
