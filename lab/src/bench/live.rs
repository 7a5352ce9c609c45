//! Part 2: frames per second through the forwarder over veth.
//!
//! The generator (the fastest that works here, [`super::generator`]) sends each
//! frame out of the outer veth into its peer, where the measured program
//! runs (in native or skb mode) and redirects to the other pair, whose outer
//! end counts and drops in XDP (`bench_sink`). Mpps = frames the sink
//! counted / wall time of the run.
//!
//! ```text
//! to router:   nic0x [tx] → nic0 [physical|floor] → rtr0 → rtr0x [sink]
//! from router: rtr0x [tx] → rtr0 [router|floor]   → nic0 → nic0x [sink]
//! ```

use anyhow::Context as _;
use aya::programs::XdpMode;

use super::{
    frames,
    generator::{Generators, Kind},
    lab::{self, Lab, Subject, VID},
    stats::Spread,
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

/// Attaches the XDP sinks on both outer veths (natively: a native
/// redirect into a veth needs an XDP program there).
pub fn attach_sinks(gens: &mut Generators) -> anyhow::Result<()> {
    for outer in ["nic0x", "rtr0x"] {
        lab::attach(
            lab::prog(&mut gens.bench, objects::BENCH_SINK),
            outer,
            XdpMode::Driver,
        )?;
    }
    Ok(())
}

/// Sends `frames` copies of `frame` into the peer of `outer`; returns
/// (frames sent, frames the sink counted, seconds).
fn send(
    gens: &mut Generators,
    kind: Kind,
    outer: u32,
    frame: &[u8],
    frames: u32,
) -> anyhow::Result<(u64, u64, f64)> {
    let before = gens.counted()?;
    let (sent, secs) = gens.send(kind, outer, frame, frames)?;
    Ok((sent, gens.counted()? - before, secs))
}

/// Measures `subject` in `mode` for `direction` with frames of `len`.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    lab: &Lab,
    gens: &mut Generators,
    kind: Kind,
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
    send(gens, kind, outer, &frame, frames_per_run / 4)?;
    let (mut mpps, mut sent, mut got) = (Vec::new(), 0u64, 0u64);
    for _ in 0..runs {
        let (n, count, secs) = send(gens, kind, outer, &frame, frames_per_run)
            .with_context(|| format!("{} {mode} {}", subject.name(), direction.name()))?;
        mpps.push(count as f64 / secs / 1e6);
        sent += n;
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
