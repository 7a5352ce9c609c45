//! A test helper, never attached by the forwarder: on a sender's tc egress
//! it puts a VLAN tag into the skb's metadata (`bpf_skb_vlan_push`), exactly
//! where a VLAN device or a NIC's VLAN offload keeps it, so the tag crosses a
//! veth as `skb->vlan_tci` instead of in the frame's bytes. The tag is
//! `PUSH_TPID` (host order, 0x8100 or 0x88a8) + `PUSH_TCI`, both read-only
//! globals the test sets at load time. Every frame leaves with `TC_ACT_OK`.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::TC_ACT_OK, helpers::bpf_skb_vlan_push, macros::classifier, programs::TcContext,
};
// The license section and the panic handler.
use xdp_forwarder_ebpf as _;

/// The tag's TPID, host order.
#[unsafe(no_mangle)]
static PUSH_TPID: u16 = 0x8100;

/// The tag's TCI (PCP, DEI, VID).
#[unsafe(no_mangle)]
static PUSH_TCI: u16 = 0;

#[classifier]
pub fn test_vlan_push(ctx: TcContext) -> i32 {
    // SAFETY: plain globals the loader set; volatile so the loads stay.
    let (tpid, tci) = unsafe {
        (
            core::ptr::read_volatile(&PUSH_TPID),
            core::ptr::read_volatile(&PUSH_TCI),
        )
    };
    // SAFETY: the program's own skb; no packet pointer is held across it.
    // A failed push leaves the frame untagged: the test sees it.
    let _ = unsafe { bpf_skb_vlan_push(ctx.skb.skb, tpid.to_be(), tci) };
    TC_ACT_OK
}
