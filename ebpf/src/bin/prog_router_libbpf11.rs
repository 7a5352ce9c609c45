//! XDP program for the router interface, exported for libbpf 1.1
//! (`export-objects --libbpf-1.1`): `router_iface` is declared with the flags
//! the kernel reports, which that libbpf needs to reuse the pin and which no
//! loader can create, so `export-objects` pins it first.
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use xdp_forwarder_ebpf::{maps::ROUTER_IFACE_FLAGS_LIBBPF_1_1, programs, router_iface};

router_iface!(ROUTER_IFACE_FLAGS_LIBBPF_1_1);

#[xdp]
pub fn router(ctx: XdpContext) -> u32 {
    programs::router(ctx)
}
