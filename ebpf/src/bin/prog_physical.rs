//! XDP program for each physical NIC: tag with the port's VID, hand the frame
//! to the router interface.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use xdp_forwarder_common::{Vid, physical as push_port_tag};
use xdp_forwarder_ebpf::{XdpFrame, managed, maps::ROUTER_IFACE, port_vid};

#[xdp]
pub fn physical(ctx: XdpContext) -> u32 {
    let vid = if managed() {
        Vid::new(port_vid())
    } else {
        // Drop-in: the original's convention, VID = ingress ifindex.
        Vid::new(ctx.ingress_ifindex() as u32)
    };
    let mut frame = XdpFrame(ctx);
    match push_port_tag(&mut frame, vid) {
        Ok(()) => ROUTER_IFACE.redirect(0),
        Err(_) => xdp_action::XDP_DROP,
    }
}
