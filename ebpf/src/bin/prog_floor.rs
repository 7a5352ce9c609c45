//! The benchmark's floor: redirects through `router_iface` without reading or
//! touching the frame, built exactly like the real programs. Never attached by
//! the forwarder itself.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use xdp_forwarder_ebpf::maps::ROUTER_IFACE;

#[xdp]
pub fn floor(_ctx: XdpContext) -> u32 {
    if ROUTER_IFACE.redirect(0) {
        xdp_action::XDP_REDIRECT
    } else {
        xdp_action::XDP_DROP
    }
}
