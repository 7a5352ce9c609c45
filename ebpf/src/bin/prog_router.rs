//! XDP program for the router interface: pop the outer tag, send the frame to
//! the port its VID names.
//! Embedded, and exported by default (libbpf 1.3 and later); it declares
//! `router_iface` so that a loader pinning by name (`xdp-loader -p`) creates
//! the pin, as the original's router object did.
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use xdp_forwarder_ebpf::{maps::ROUTER_IFACE_FLAGS, programs, router_iface};

router_iface!(ROUTER_IFACE_FLAGS);

#[xdp]
pub fn router(ctx: XdpContext) -> u32 {
    programs::router(ctx)
}
