//! XDP program for the router interface: pop the outer tag, send the frame to
//! the port its VID names.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, macros::xdp, programs::XdpContext};
use xdp_forwarder_common::{DropReason, RouterMode, router as pop_port_tag};
use xdp_forwarder_ebpf::{XdpFrame, account, managed, maps::VLAN_PORTS};

#[xdp]
pub fn router(ctx: XdpContext) -> u32 {
    let len = ctx.data_end() - ctx.data();
    let mode = if managed() {
        RouterMode::Managed
    } else {
        RouterMode::DropIn {
            ingress_ifindex: ctx.ingress_ifindex() as u32,
        }
    };
    let mut frame = XdpFrame(ctx);
    let verdict = pop_port_tag(&mut frame, mode).and_then(|vid| {
        let vid = u32::from(vid.get());
        match mode {
            // An empty slot: no port owns this VID.
            RouterMode::Managed => VLAN_PORTS
                .redirect(vid)
                .then_some(())
                .ok_or(DropReason::UnknownVid),
            // SAFETY: plain helper call; the kernel checks the ifindex (after
            // the program returns, so a bad one is not observable here).
            RouterMode::DropIn { .. } => match unsafe { bpf_redirect(vid, 0) } as u32 {
                xdp_action::XDP_REDIRECT => Ok(()),
                _ => Err(DropReason::RedirectFailed),
            },
        }
    });
    account(len, verdict)
}
