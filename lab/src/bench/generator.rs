//! The frame generators of the Mpps parts, probed at start: which work on
//! this kernel, and how fast each one alone fills a veth.
//!
//! - **live frames**: BPF_PROG_TEST_RUN with `BPF_F_TEST_XDP_LIVE_FRAMES`
//!   running `bench_tx` (XDP_TX) as if received on the outer veth. Some
//!   kernel builds refuse it (EPERM without CAP_SYS_RESOURCE).
//! - **tc clone**: a plain (non-live) BPF_PROG_TEST_RUN of `bench_clone`, a
//!   tc program whose run transmits [`CLONES_PER_RUN`] clones of the test
//!   frame out of the device named in the test run's `__sk_buff.ifindex`
//!   (`bpf_clone_redirect`, egress): a veth sends each into its peer.
//! - **AF_PACKET**: `send` on a packet socket bound to the outer veth, with
//!   `PACKET_QDISC_BYPASS`.
//!
//! All three transmit from the calling thread and the receiving veth
//! processes each frame on the same CPU before the next is sent (veth
//! delivers into the per-CPU backlog, drained when the sender's bottom-half
//! section ends): a rate measured with them is 1 / (generator's time +
//! path's time) per frame, in CPU time of the sending thread (see
//! [`Generators::send`]). See [`super::verdict`] for what that means for
//! ratios.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    programs::{SchedClassifier, TestRun as _, TestRunAttrs, TestRunOptions},
};

use super::{frames, lab, test_run::ctx};
use crate::objects::{self, BENCH_CLONE, BENCH_TX, CLONES_PER_RUN};

/// Frames per live-frames batch of the kernel's loop.
const BATCH: u32 = 64;
/// Offset of `ifindex` in `struct __sk_buff` (after len, pkt_type, mark,
/// queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto, priority,
/// ingress_ifindex: 10 × u32); the test run's input context ends with it.
const SKB_IFINDEX: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    LiveFrames,
    TcClone,
    AfPacket,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::LiveFrames, Kind::TcClone, Kind::AfPacket];

    pub fn name(self) -> &'static str {
        match self {
            Kind::LiveFrames => "live-frames test run (XDP_TX)",
            Kind::TcClone => "tc clone test run (bpf_clone_redirect × 64)",
            Kind::AfPacket => "AF_PACKET send (qdisc bypass, 1 socket)",
        }
    }
}

/// What the probe found about one generator.
#[derive(Clone, Debug)]
pub struct Probe {
    pub kind: Kind,
    /// Mpps into a veth whose peer drops on tc ingress; the error (the
    /// kernel's, or frames not arriving) when it does not work here.
    pub mpps: Result<f64, String>,
}

/// The fastest generator that works, if any.
pub fn fastest(probes: &[Probe]) -> Option<&Probe> {
    probes.iter().filter(|p| p.mpps.is_ok()).max_by(|a, b| {
        let (a, b) = (
            a.mpps.as_ref().unwrap_or(&0.0),
            b.mpps.as_ref().unwrap_or(&0.0),
        );
        a.total_cmp(b)
    })
}

/// The generators' programs and the counters of the sinks (the bench
/// object's `fwd_counters`, which both sinks update).
pub struct Generators {
    pub bench: Ebpf,
}

impl Generators {
    pub fn new(lab: &lab::Lab) -> anyhow::Result<Self> {
        Ok(Self {
            bench: objects::load_bench(&lab.pins)?,
        })
    }

    /// Frames the sinks have counted so far.
    pub fn counted(&self) -> anyhow::Result<u64> {
        Ok(lab::counted(&self.bench)?.forwarded_frames)
    }

    /// Sends about `frames` copies of `frame` out of `outer` (into its
    /// peer) with `kind`; returns the frames sent and the CPU seconds the
    /// calling thread spent: the generator's and, since the receiving side
    /// runs in this thread's bottom halves (this kernel has no
    /// `CONFIG_IRQ_TIME_ACCOUNTING`, so that time is the thread's), the
    /// path's. Unlike wall time, it leaves out whatever else the machine
    /// runs meanwhile.
    pub fn send(
        &mut self,
        kind: Kind,
        outer: u32,
        frame: &[u8],
        frames: u32,
    ) -> anyhow::Result<(u64, f64)> {
        let start = thread_cpu_seconds()?;
        let sent = match kind {
            Kind::LiveFrames => {
                let ctx = ctx(frame.len(), outer);
                lab::prog(&mut self.bench, BENCH_TX)
                    .test_run(TestRunOptions {
                        data_in: Some(frame),
                        ctx_in: Some(&ctx),
                        repeat: frames,
                        attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                        ..TestRunOptions::new()
                    })
                    .map_err(|e| anyhow::anyhow!("live-frames test run: {e}"))?;
                u64::from(frames)
            }
            Kind::TcClone => {
                let mut ctx = [0u8; SKB_IFINDEX + 4];
                ctx[SKB_IFINDEX..].copy_from_slice(&outer.to_ne_bytes());
                let repeat = frames.div_ceil(CLONES_PER_RUN).max(1);
                let prog: &mut SchedClassifier = self
                    .bench
                    .program_mut(BENCH_CLONE)
                    .and_then(|p| p.try_into().ok())
                    .context("no bench_clone program")?;
                let r = prog
                    .test_run(TestRunOptions {
                        data_in: Some(frame),
                        ctx_in: Some(&ctx),
                        repeat,
                        ..TestRunOptions::new()
                    })
                    .map_err(|e| anyhow::anyhow!("tc clone test run: {e}"))?;
                // The program returns the clones of its last repeat the kernel took.
                if r.return_value != CLONES_PER_RUN {
                    bail!(
                        "tc clone test run: the kernel took {} of {CLONES_PER_RUN} clones",
                        r.return_value
                    );
                }
                u64::from(repeat) * u64::from(CLONES_PER_RUN)
            }
            Kind::AfPacket => {
                let socket = PacketSender::bind(outer)?;
                for _ in 0..frames {
                    socket.send(frame)?;
                }
                u64::from(frames)
            }
        };
        let secs = thread_cpu_seconds()? - start;
        // Anything still queued is processed on this CPU before we go on.
        std::thread::sleep(std::time::Duration::from_millis(20));
        Ok((sent, secs))
    }

    /// Probes `kind` with `frames` 64-byte frames out of `outer`, whose
    /// peer must drop on its ingress and count in the bench object (the
    /// caller attaches `bench_tc_sink` there). A probe that fails, or whose
    /// frames do not all arrive, says why.
    pub fn probe(&mut self, kind: Kind, outer: u32, frames: u32) -> Probe {
        let frame = frames::untagged(64);
        let mpps = (|| {
            // One frame first: a generator that cannot run fails fast.
            self.send(kind, outer, &frame, 1)?;
            let before = self.counted()?;
            let (sent, secs) = self.send(kind, outer, &frame, frames)?;
            let got = self.counted()? - before;
            if got < sent * 99 / 100 {
                bail!("{got} of {sent} frames arrived");
            }
            Ok(got as f64 / secs / 1e6)
        })()
        .map_err(|e: anyhow::Error| format!("{e:#}"));
        Probe { kind, mpps }
    }
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), in seconds.
fn thread_cpu_seconds() -> anyhow::Result<f64> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        bail!(
            "clock_gettime(CLOCK_THREAD_CPUTIME_ID): {}",
            io::Error::last_os_error()
        );
    }
    Ok(t.tv_sec as f64 + t.tv_nsec as f64 / 1e9)
}

/// A packet socket bound to one interface, transmitting without the qdisc.
struct PacketSender {
    fd: OwnedFd,
}

impl PacketSender {
    fn bind(ifindex: u32) -> anyhow::Result<Self> {
        // SAFETY: plain socket creation; protocol 0: it receives nothing.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            bail!("AF_PACKET socket: {}", io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_ll is valid; the fields bind needs are set.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if ret != 0 {
            bail!("bind to ifindex {ifindex}: {}", io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        // SAFETY: a valid socket, option pointer and length.
        let ret = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                std::ptr::from_ref(&one).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        if ret != 0 {
            bail!("PACKET_QDISC_BYPASS: {}", io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    fn send(&self, frame: &[u8]) -> anyhow::Result<()> {
        // SAFETY: frame is valid for the call; the socket is bound.
        let ret = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if ret != frame.len() as isize {
            bail!("AF_PACKET send: {}", io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_working_generator_is_chosen() {
        let probes = [
            Probe {
                kind: Kind::LiveFrames,
                mpps: Err("live-frames test run: EPERM".into()),
            },
            Probe {
                kind: Kind::TcClone,
                mpps: Ok(1.9),
            },
            Probe {
                kind: Kind::AfPacket,
                mpps: Ok(0.5),
            },
        ];
        assert_eq!(fastest(&probes).map(|p| p.kind), Some(Kind::TcClone));
        assert!(fastest(&probes[..1]).is_none(), "none works");
    }
}
