//! Part 1: nanoseconds per frame under BPF_PROG_TEST_RUN (non-live), each
//! program against its floor: the XDP programs against `floor`, the
//! router's tc program against `floor_tc` (a tc program runs unattached,
//! on the skb the test run makes).
//!
//! Traps handled: a non-live run does not reset the frame between repeats, so
//! each call repeats [`REPEAT`] times on frames built for it (the physical
//! program has headroom for that many pushes; the router gets one tag per
//! repeat), every verdict is checked and the counters must show every repeat
//! forwarded; and the measured programs are attached to spare interfaces, or
//! each call would pay for patching the XDP dispatcher in and out.

use anyhow::{bail, ensure};
use aya::programs::{TestRunOptions, XdpMode};

use crate::cmd::{ifindex, run};

use super::{
    frames,
    lab::{self, Lab, Loaded, Subject, VID},
    stats::Spread,
};

/// Repeats per call: below the ~54 pushes the test headroom allows.
pub const REPEAT: u32 = 32;
const XDP_REDIRECT: u32 = 4;
const TC_ACT_REDIRECT: u32 = 7;

pub struct Sample {
    pub subject: Subject,
    pub frame_len: usize,
    /// ns per frame, one value per run.
    pub ns: Spread,
}

/// The `xdp_md` a test run starts from: ingress on `ifindex`.
pub fn ctx(frame_len: usize, ifindex: u32) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame_len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// The input frame of `subject` for a nominal `len`.
fn input(subject: Subject, len: usize) -> Vec<u8> {
    match subject {
        Subject::Router { .. } | Subject::RouterTc => {
            frames::stacked(&frames::untagged(len), VID, REPEAT as usize)
        }
        Subject::Physical { .. } | Subject::Floor | Subject::FloorPush | Subject::FloorTc => {
            frames::untagged(len)
        }
    }
}

/// The verdict of a forwarded frame.
fn redirect(subject: Subject) -> u32 {
    if subject.is_tc() {
        TC_ACT_REDIRECT
    } else {
        XDP_REDIRECT
    }
}

pub fn measure(
    lab: &mut Lab,
    subjects: &[Subject],
    sizes: &[usize],
    runs: usize,
    calls: u32,
) -> anyhow::Result<Vec<Sample>> {
    let mut loaded: Vec<Loaded> = Vec::new();
    for &subject in subjects {
        let spare = lab.spare()?;
        if subject.is_tc() {
            // A tc program runs on the skb the test run makes, unattached.
            // Its target takes what the router sends: the bench's stacked
            // tags make a 1514-byte frame longer than a 1500 MTU, and the
            // router asks `bpf_check_mtu`.
            run("ip", &["link", "set", &spare, "mtu", "9000"])?;
            loaded.push(lab.load_to(subject, ifindex(&spare)?)?);
        } else {
            let mut l = lab.load(subject)?;
            lab::attach(l.prog(), &spare, XdpMode::Driver)?;
            loaded.push(l);
        }
    }
    let mut per_run: Vec<Vec<f64>> = vec![Vec::new(); subjects.len() * sizes.len()];
    // Runs interleave the subjects, so that drifts hit all of them alike.
    for _ in 0..runs {
        for (i, l) in loaded.iter_mut().enumerate() {
            for (j, &len) in sizes.iter().enumerate() {
                let ns = one_run(lab, l, len, calls)?;
                per_run[i * sizes.len() + j].push(ns);
            }
        }
    }
    let mut samples = Vec::new();
    for (i, &subject) in subjects.iter().enumerate() {
        for (j, &len) in sizes.iter().enumerate() {
            samples.push(Sample {
                subject,
                frame_len: len,
                ns: Spread::of(&per_run[i * sizes.len() + j]),
            });
        }
    }
    Ok(samples)
}

/// `calls` test runs of `REPEAT` repeats; the mean ns per frame.
fn one_run(lab: &Lab, l: &mut Loaded, len: usize, calls: u32) -> anyhow::Result<f64> {
    let frame = input(l.subject, len);
    let ctx = ctx(frame.len(), lab.rtr);
    let before = l.counters()?;
    let mut total_ns = 0u128;
    for _ in 0..calls {
        let r = l.test_run(TestRunOptions {
            data_in: Some(&frame),
            // A tc test run starts from an skb the kernel makes of the frame.
            ctx_in: (!l.subject.is_tc()).then_some(&ctx[..]),
            repeat: REPEAT,
            ..TestRunOptions::new()
        })?;
        if r.return_value != redirect(l.subject) {
            bail!(
                "{} returned {} on a {len}-byte frame: the bench would measure a drop",
                l.subject.name(),
                r.return_value
            );
        }
        // The kernel reports the mean over the repeats.
        total_ns += r.duration.as_nanos();
    }
    if l.subject.counts() {
        let after = l.counters()?;
        let forwarded = after.forwarded_frames - before.forwarded_frames;
        let dropped = after.dropped_total() - before.dropped_total();
        ensure!(
            dropped == 0 && forwarded >= u64::from(calls * REPEAT),
            "{}: {forwarded} of {} repeats forwarded, {dropped} dropped: some took the drop path",
            l.subject.name(),
            calls * REPEAT
        );
    }
    Ok(total_ns as f64 / f64::from(calls))
}
