//! tc program for each physical NIC (mode `tc`): tag with the port's VID,
//! hand the skb to the router interface. Embedded, never exported: only our
//! loader attaches it (as a tcx link).
#![no_std]
#![no_main]

use aya_ebpf::{macros::classifier, programs::TcContext};
use xdp_forwarder_ebpf::tc;

#[classifier]
pub fn physical(ctx: TcContext) -> i32 {
    tc::physical(ctx)
}
