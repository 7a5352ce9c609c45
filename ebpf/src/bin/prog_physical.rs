//! XDP program for each physical NIC: tag with the port's VID, hand the frame
//! to the router interface.
//! Embedded, and exported by default (libbpf 1.3 and later).
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use xdp_forwarder_ebpf::{maps::ROUTER_IFACE_FLAGS, programs, router_iface};

router_iface!(ROUTER_IFACE_FLAGS);

#[xdp]
pub fn physical(ctx: XdpContext) -> u32 {
    programs::physical(ctx, &ROUTER_IFACE)
}
