//! The bodies of the two XDP programs. The entry points in `src/bin/` wrap
//! them, each with the `router_iface` definition of its export variant.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, programs::XdpContext};
use xdp_forwarder_common::{DropReason, RouterMode, Vid, pop_port_tag, push_port_tag};

use crate::{
    XdpFrame, account, managed,
    maps::{RouterIface, VLAN_PORTS},
    port_vid,
};

/// Physical NIC: tag with the port's VID, hand the frame to the router
/// interface in slot 0 of `router_iface`.
#[inline(always)]
pub fn physical<const FLAGS: usize>(ctx: XdpContext, router_iface: &RouterIface<FLAGS>) -> u32 {
    let len = ctx.data_end() - ctx.data();
    let vid = if managed() {
        Vid::new(port_vid())
    } else {
        // Drop-in: the original's convention, VID = ingress ifindex.
        Vid::new(ctx.ingress_ifindex() as u32)
    };
    let mut frame = XdpFrame(ctx);
    let verdict = push_port_tag(&mut frame, vid).and_then(|()| {
        router_iface
            .redirect(0)
            .then_some(())
            .ok_or(DropReason::NoRouter)
    });
    account(len, verdict)
}

/// Router interface: pop the outer tag, send the frame to the port its VID
/// names.
#[inline(always)]
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
