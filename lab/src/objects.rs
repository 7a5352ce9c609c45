//! The lab's own eBPF objects, embedded at build time (lab/build.rs), beside
//! the product's ([`xdp_forwarder::objects`], re-exported here).

use aya::{Ebpf, EbpfLoader, include_bytes_aligned, programs::Program};
pub use xdp_forwarder::objects::*;
use xdp_forwarder::{Error, Result, pins::PinDir};
use xdp_forwarder_common::maps::ROUTER_IFACE;

/// The benchmark's floor programs: `floor` redirects through `router_iface`
/// without touching the frame, `floor_push` does the same after moving the
/// frame start by -4 bytes; `floor_tc` (tc) redirects to the ifindex in
/// slot 0 of its own (unpinned) `fwd_tc_targets`.
static FLOOR: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_floor"));
pub const FLOOR_PROGRAM: &str = "floor";
pub const FLOOR_PUSH_PROGRAM: &str = "floor_push";
pub const FLOOR_TC_PROGRAM: &str = "floor_tc";
/// The benchmark's generators (`bench_tx`: XDP_TX for live-frame test runs;
/// `bench_clone`, tc: clones the test run's frame out of its device) and
/// sinks (`bench_sink` in XDP, `bench_tc_sink` on tc ingress: count in
/// `fwd_counters`, drop).
static BENCH: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_bench"));
pub const BENCH_TX: &str = "bench_tx";
pub const BENCH_SINK: &str = "bench_sink";
pub const BENCH_CLONE: &str = "bench_clone";
pub const BENCH_TC_SINK: &str = "bench_tc_sink";
/// Clones `bench_clone` sends per run (its `CLONES`).
pub const CLONES_PER_RUN: u32 = 64;

/// Loads the floor programs, redirecting through the `router_iface` of `pins`.
pub fn load_floor(pins: &PinDir) -> Result<Ebpf> {
    load_programs(
        pins,
        FLOOR,
        &[FLOOR_PROGRAM, FLOOR_PUSH_PROGRAM, FLOOR_TC_PROGRAM],
    )
}

/// Loads the benchmark's generators and sinks.
pub fn load_bench(pins: &PinDir) -> Result<Ebpf> {
    load_programs(
        pins,
        BENCH,
        &[BENCH_TX, BENCH_SINK, BENCH_CLONE, BENCH_TC_SINK],
    )
}

/// Loads `names` from `object`; its `router_iface` (every object carries
/// the shared map definitions) is the one pinned in `pins`.
fn load_programs(pins: &PinDir, object: &[u8], names: &[&str]) -> Result<Ebpf> {
    let router_iface = pins.router_iface();
    let mut ebpf = EbpfLoader::new()
        .map_pin_path(ROUTER_IFACE, router_iface.as_path())
        .load(object)
        .map_err(|e| Error::kernel("cannot load an embedded object", e))?;
    for name in names {
        let loaded = match ebpf.program_mut(name) {
            Some(Program::Xdp(p)) => p.load(),
            Some(Program::SchedClassifier(p)) => p.load(),
            _ => {
                return Err(Error::kernel(
                    "corrupt embedded object",
                    format!("no XDP or tc program {name}"),
                ));
            }
        };
        loaded.map_err(|e| Error::verifier(format!("the kernel refused {name}"), e))?;
    }
    Ok(ebpf)
}
