//! XDP program for each physical NIC: tag with the port's VID, hand the frame
//! to the router interface.
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use xdp_forwarder_common::{DropReason, Vid, physical as push_port_tag, physical_at_tail};
use xdp_forwarder_ebpf::{XdpFrame, account, managed, maps::ROUTER_IFACE, port_vid, skb_mode};

#[xdp]
pub fn physical(ctx: XdpContext) -> u32 {
    let len = ctx.data_end() - ctx.data();
    let vid = if managed() {
        Vid::new(port_vid())
    } else {
        // Drop-in: the original's convention, VID = ingress ifindex.
        Vid::new(ctx.ingress_ifindex() as u32)
    };
    let mut frame = XdpFrame(ctx);
    let pushed = if skb_mode() {
        physical_at_tail(&mut frame, vid)
    } else {
        push_port_tag(&mut frame, vid)
    };
    let verdict = pushed.and_then(|()| {
        ROUTER_IFACE
            .redirect(0)
            .then_some(())
            .ok_or(DropReason::NoRouter)
    });
    account(len, verdict)
}
