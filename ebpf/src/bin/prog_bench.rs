//! Helpers of the benchmark, never attached by the forwarder:
//! - `bench_tx` turns BPF_PROG_TEST_RUN live frames into a traffic generator
//!   (XDP_TX on a veth sends into its peer); kernels that refuse live-frame
//!   test runs (EPERM) cannot use it;
//! - `bench_clone` is a generator that needs only a plain (non-live) test
//!   run: a tc program that transmits [`CLONES`] clones of the test run's
//!   frame out of the device the run pretends it arrived on
//!   (`bpf_clone_redirect` to that device's egress: a veth sends into its
//!   peer); it returns how many clones the kernel took;
//! - `bench_sink` (XDP) and `bench_tc_sink` (tc ingress) count what reaches
//!   the far end (in `fwd_counters`) and drop it.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, xdp_action},
    helpers::bpf_clone_redirect,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use xdp_forwarder_ebpf::maps::COUNTERS;

/// Clones `bench_clone` sends per run (the lab's `CLONES_PER_RUN`).
const CLONES: i32 = 64;

#[xdp]
pub fn bench_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

#[xdp]
pub fn bench_sink(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    COUNTERS.update(|c| c.record(len, Ok(())));
    xdp_action::XDP_DROP
}

#[classifier]
pub fn bench_clone(ctx: TcContext) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: the program's context; the verifier rewrites the read.
    let ifindex = unsafe { (*skb).ifindex };
    let mut sent = 0;
    for _ in 0..CLONES {
        // SAFETY: plain helper call on the program's own skb; no packet
        // pointer is held across it. Egress (flags 0) of `ifindex`.
        if unsafe { bpf_clone_redirect(skb, ifindex, 0) } == 0 {
            sent += 1;
        }
    }
    sent
}

#[classifier]
pub fn bench_tc_sink(ctx: TcContext) -> i32 {
    // SAFETY: the program's context; the verifier rewrites the read.
    let len = unsafe { (*ctx.skb.skb).len };
    COUNTERS.update(|c| c.record(u64::from(len), Ok(())));
    TC_ACT_SHOT
}
