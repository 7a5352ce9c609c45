//! The benchmark's floors, built exactly like the real programs and never
//! attached by the forwarder itself:
//! - `floor`: redirects through `router_iface` without reading or touching
//!   the frame: the cost of XDP redirect itself;
//! - `floor_push`: the same after `bpf_xdp_adjust_head(-4)` (no write): the
//!   least that any program pushing a tag can cost;
//! - `floor_tc`: the tc floor: looks slot 0 of its `fwd_tc_targets` up and
//!   `bpf_redirect`s the skb there, as the tc programs find their target,
//!   without reading or touching the frame.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, xdp_action},
    helpers::bpf_redirect,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use xdp_forwarder_common::{Frame as _, maps::TC_ROUTER_KEY, vlan::VLAN_HLEN};
use xdp_forwarder_ebpf::{
    XdpFrame,
    maps::{ROUTER_IFACE_FLAGS, TC_TARGETS},
    router_iface,
};

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

#[classifier]
pub fn floor_tc(_ctx: TcContext) -> i32 {
    match TC_TARGETS.ifindex(TC_ROUTER_KEY) {
        // SAFETY: plain helper call; the kernel checks the ifindex when it
        // performs the redirect, after the program returns.
        Some(target) => unsafe { bpf_redirect(target, 0) as i32 },
        None => TC_ACT_SHOT,
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
