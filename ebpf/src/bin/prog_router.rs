//! XDP program for the router interface: pop the outer tag, send the frame to
//! the port its VID names.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, macros::xdp, programs::XdpContext};
use xdp_forwarder_common::{RouterMode, router as pop_port_tag};
use xdp_forwarder_ebpf::{XdpFrame, managed, maps::VLAN_PORTS};

#[xdp]
pub fn router(ctx: XdpContext) -> u32 {
    let mode = if managed() {
        RouterMode::Managed
    } else {
        RouterMode::DropIn {
            ingress_ifindex: ctx.ingress_ifindex() as u32,
        }
    };
    let mut frame = XdpFrame(ctx);
    match (pop_port_tag(&mut frame, mode), mode) {
        (Ok(vid), RouterMode::Managed) => VLAN_PORTS.redirect(u32::from(vid.get())),
        // SAFETY: plain helper call; the kernel checks the ifindex.
        (Ok(vid), RouterMode::DropIn { .. }) => unsafe {
            bpf_redirect(u32::from(vid.get()), 0) as u32
        },
        (Err(_), _) => xdp_action::XDP_DROP,
    }
}
