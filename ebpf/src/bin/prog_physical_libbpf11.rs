//! XDP program for each physical NIC: tag with the port's VID, hand the frame
//! to the router interface. Exported for libbpf 1.1 (`export-objects
//! --libbpf-1.1`): see `maps::ROUTER_IFACE_FLAGS_LIBBPF_1_1`.
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use xdp_forwarder_ebpf::{maps::ROUTER_IFACE_FLAGS_LIBBPF_1_1, programs, router_iface};

router_iface!(ROUTER_IFACE_FLAGS_LIBBPF_1_1);

#[xdp]
pub fn physical(ctx: XdpContext) -> u32 {
    programs::physical(ctx, &ROUTER_IFACE)
}
