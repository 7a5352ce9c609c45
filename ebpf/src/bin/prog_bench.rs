//! Helpers of the benchmark, never attached by the forwarder: `bench_tx`
//! turns BPF_PROG_TEST_RUN live frames into a traffic generator (XDP_TX on a
//! veth sends into its peer), `bench_sink` counts what reaches the far end
//! (in `fwd_counters`) and drops it.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use xdp_forwarder_ebpf::maps::COUNTERS;

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
