//! Part 2: frames per second through the forwarder over veth.
//!
//! The generator is BPF_PROG_TEST_RUN with live frames running `bench_tx`
//! (XDP_TX) as if received on the outer veth: each frame is transmitted into
//! its peer, where the measured program runs (in native or skb mode) and
//! redirects to the other pair, whose outer end counts and drops in XDP
//! (`bench_sink`). Mpps = frames the sink counted / wall time of the run.
//!
//! ```text
//! to router:   nic0x [tx] → nic0 [physical|floor] → rtr0 → rtr0x [sink]
//! from router: rtr0x [tx] → rtr0 [router|floor]   → nic0 → nic0x [sink]
//! ```

use std::time::Instant;

use anyhow::Context as _;
use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, XdpMode},
};

use super::{
    frames,
    lab::{self, Lab, Subject, VID},
    stats::Spread,
    test_run::ctx,
};
use crate::{cmd::run, objects};
use xdp_forwarder::Mode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ToRouter,
    FromRouter,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::ToRouter => "NIC → router",
            Direction::FromRouter => "router → NIC",
        }
    }
}

pub struct Sample {
    pub subject: Subject,
    pub mode: Mode,
    pub direction: Direction,
    pub frame_len: usize,
    /// Mpps, one value per run.
    pub mpps: Spread,
    /// Delivered / generated over all runs.
    pub delivered: f64,
}

/// Frames per generator run, per batch of the kernel's live loop.
const BATCH: u32 = 64;

pub struct Generator {
    bench: Ebpf,
}

impl Generator {
    /// Loads the generator and attaches the sinks on both outer veths
    /// (natively: a native redirect into a veth needs an XDP program there).
    pub fn new(lab: &Lab) -> anyhow::Result<Self> {
        let mut bench = objects::load_bench(&lab.pins)?;
        for outer in ["nic0x", "rtr0x"] {
            lab::attach(
                lab::prog(&mut bench, objects::BENCH_SINK),
                outer,
                XdpMode::Driver,
            )?;
        }
        Ok(Self { bench })
    }

    /// Sends `frames` copies of `frame` into the peer of `outer`; returns
    /// (frames the sink counted, seconds).
    fn send(&mut self, outer: u32, frame: &[u8], frames: u32) -> anyhow::Result<(u64, f64)> {
        let before = lab::counted(&self.bench)?.forwarded_frames;
        let ctx = ctx(frame.len(), outer);
        let start = Instant::now();
        lab::prog(&mut self.bench, objects::BENCH_TX)
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&ctx),
                repeat: frames,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..TestRunOptions::new()
            })
            .map_err(|e| anyhow::anyhow!("live-frames test run: {e}"))?;
        let secs = start.elapsed().as_secs_f64();
        // The last batch may still be in flight on the other CPU.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let after = lab::counted(&self.bench)?.forwarded_frames;
        Ok((after - before, secs))
    }
}

/// Measures `subject` in `mode` for `direction` with frames of `len`.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    lab: &Lab,
    generator: &mut Generator,
    subject: Subject,
    mode: Mode,
    direction: Direction,
    len: usize,
    runs: usize,
    frames_per_run: u32,
) -> anyhow::Result<Sample> {
    let (iface, outer, frame) = match direction {
        Direction::ToRouter => ("nic0", lab.nicx, frames::untagged(len)),
        Direction::FromRouter => ("rtr0", lab.rtrx, frames::pop_fixed_point(VID, len)),
    };
    // The floor redirects through router_iface whatever the direction.
    lab.point_router_iface(match direction {
        Direction::ToRouter => lab.rtr,
        Direction::FromRouter => lab.nic,
    })?;
    let mut loaded = lab.load(subject)?;
    // In skb mode the veth takes the generator's frames only with GRO on.
    let gro = if mode == Mode::Skb { "on" } else { "off" };
    run("ethtool", &["-K", iface, "gro", gro])?;
    let xdp_mode = match mode {
        Mode::Native => XdpMode::Driver,
        Mode::Skb => XdpMode::Skb,
        Mode::Tc => anyhow::bail!("the XDP benchmark measures XDP modes only"),
    };
    lab::attach(loaded.prog(), iface, xdp_mode)?;
    // Warm-up: page pools, caches, the CPU clock.
    generator.send(outer, &frame, frames_per_run / 4)?;
    let (mut mpps, mut sent, mut got) = (Vec::new(), 0u64, 0u64);
    for _ in 0..runs {
        let (count, secs) = generator
            .send(outer, &frame, frames_per_run)
            .with_context(|| format!("{} {mode} {}", subject.name(), direction.name()))?;
        mpps.push(count as f64 / secs / 1e6);
        sent += u64::from(frames_per_run);
        got += count;
    }
    drop(loaded); // detaches
    Ok(Sample {
        subject,
        mode,
        direction,
        frame_len: len,
        mpps: Spread::of(&mpps),
        delivered: got as f64 / sent as f64,
    })
}
