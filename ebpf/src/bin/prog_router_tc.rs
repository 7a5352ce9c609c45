//! tc program for the router interface (mode `tc`): pop the outer tag, send
//! the skb to the NIC its VID names. Embedded, never exported.
#![no_std]
#![no_main]

use aya_ebpf::{macros::classifier, programs::TcContext};
use xdp_forwarder_ebpf::tc;

#[classifier]
pub fn router(ctx: TcContext) -> i32 {
    tc::router(ctx)
}
