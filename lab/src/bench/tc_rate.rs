//! Part 2b: frames per second through the tc programs (mode `tc`, what
//! `--mode auto` picks) over veth, against a Linux bridge joining the same
//! veths and against a tc floor.
//!
//! ```text
//! to router:   nic0x [gen] → nic0 [physical | bridge | floor] → rtr0 → rtr0x [sink]
//! from router: rtr0x [gen] → rtr0 [router | bridge | floor]   → nic0 → nic0x [sink]
//! ```
//!
//! - **tc (tcx)**, **tc (clsact)**: both ports attached by the product's
//!   binary (`xdp-forwarder attach … --mode tc`, the second with
//!   `XDP_FORWARDER_TC_HOOK=clsact`), in a pin dir of their own on the
//!   bench's bpffs; detached (`detach --all`) after each run;
//! - **bridge**: `br0` joining `nic0` and `rtr0` (no STP, no VLAN filtering,
//!   `bridge-nf-call-*` = 0, as in the TCP part);
//! - **tc floor**: `floor_tc` on the ingress (tcx) of the port the frames
//!   enter: a map lookup and `bpf_redirect`, nothing else.
//!
//! The sinks are `bench_tc_sink` on the tcx ingress of both outer veths; no
//! veth runs XDP or GRO, so every frame takes the skb path the tc programs
//! serve. Frames: untagged towards the router, one 802.1Q tag (VID 100)
//! from it. With `kernel.bpf_stats_enabled` on for the part, each run also
//! reads the kernel's run time of the program on the ingress port (ns per
//! run): how much of the path is the program.

use anyhow::{Context as _, bail};
use aya::programs::{SchedClassifier, TcAttachType, tc::SchedClassifierLinkId};

use super::{
    frames,
    generator::{Generators, Kind},
    lab::{self, Lab, Subject as XdpSubject, VID},
    live::Direction,
    stats::Spread,
};
use crate::{
    cmd::run,
    objects::{BENCH_TC_SINK, FLOOR_TC_PROGRAM},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Tcx,
    Clsact,
    Bridge,
    Floor,
    /// No hop: the sink on the first port itself (what the generator alone
    /// delivers over one veth pair).
    Generator,
}

impl Subject {
    pub const ALL: [Subject; 5] = [
        Subject::Tcx,
        Subject::Clsact,
        Subject::Bridge,
        Subject::Floor,
        Subject::Generator,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Subject::Tcx => "tc (tcx)",
            Subject::Clsact => "tc (clsact)",
            Subject::Bridge => "bridge",
            Subject::Floor => "tc floor",
            Subject::Generator => "generator alone",
        }
    }

    /// Subjects the others are compared to.
    pub fn is_baseline(self) -> bool {
        matches!(self, Subject::Bridge | Subject::Floor | Subject::Generator)
    }
}

/// One Mpps measurement of the tc part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub subject: Subject,
    pub direction: Direction,
    pub len: usize,
}

impl Cell {
    /// The line `--only` matches.
    pub fn what(&self) -> String {
        format!(
            "tc, {}, {} B, {}",
            self.direction.name(),
            self.len,
            self.subject.name()
        )
    }
}

pub const SIZES: [usize; 3] = [64, 512, 1514];

/// The cells `only` selects, with the bridge and floor cells they are
/// compared to.
pub fn cells(only: Option<&str>) -> Vec<Cell> {
    let mut all = Vec::new();
    for direction in [Direction::ToRouter, Direction::FromRouter] {
        for len in SIZES {
            for subject in Subject::ALL {
                all.push(Cell {
                    subject,
                    direction,
                    len,
                });
            }
        }
    }
    super::with_baselines(
        all,
        only,
        Cell::what,
        |c| c.subject.is_baseline(),
        |o, c| o.direction == c.direction && o.len == c.len,
    )
}

pub struct Sample {
    pub cell: Cell,
    pub mpps: Spread,
    /// Delivered / generated over all runs.
    pub delivered: f64,
    /// ns per run of the program on the ingress port (kernel's bpf stats);
    /// `None` for the bridge, or when the stats were off.
    pub prog_ns: Option<f64>,
}

/// Measures `cells`, `runs` times each, with `kind` sending
/// `frames_per_run` frames per run. Runs in the calling thread's (private)
/// namespace, on `lab`.
pub fn measure(
    lab: &Lab,
    gens: &mut Generators,
    kind: Kind,
    cells: &[Cell],
    runs: usize,
    frames_per_run: u32,
) -> anyhow::Result<Vec<Sample>> {
    attach_sinks(gens, &["nic0x", "rtr0x"])?;
    let _stats = BpfStats::enable()?;
    let mut subjects: Vec<Subject> = Vec::new();
    for c in cells {
        if !subjects.contains(&c.subject) {
            subjects.push(c.subject);
        }
    }
    let mut mpps: Vec<Vec<f64>> = vec![Vec::new(); cells.len()];
    let mut prog_ns: Vec<Vec<f64>> = vec![Vec::new(); cells.len()];
    let (mut sent, mut got) = (vec![0u64; cells.len()], vec![0u64; cells.len()]);
    for r in 0..runs {
        // Each run starts one subject later: drifts hit all alike.
        let order: Vec<Subject> = subjects
            .iter()
            .cycle()
            .skip(r)
            .take(subjects.len())
            .copied()
            .collect();
        for subject in order {
            eprintln!(
                "measuring Mpps, run {}/{runs}: {} ...",
                r + 1,
                subject.name()
            );
            let mut setup = Setup::new(lab, gens, subject)?;
            for (i, c) in cells.iter().enumerate() {
                if c.subject != subject {
                    continue;
                }
                let (outer, frame) = match c.direction {
                    Direction::ToRouter => (lab.nicx, frames::untagged(c.len)),
                    Direction::FromRouter => (lab.rtrx, frames::tagged(VID, c.len)),
                };
                setup.direction(lab, c.direction)?;
                // Warm-up: caches, the bridge's FDB, the CPU clock.
                gens.send(kind, outer, &frame, frames_per_run / 8)?;
                let ingress = match c.direction {
                    Direction::ToRouter => "nic0",
                    Direction::FromRouter => "rtr0",
                };
                let stats_before = prog_stats(ingress)?;
                let before = gens.counted()?;
                let (n, secs) = gens
                    .send(kind, outer, &frame, frames_per_run)
                    .with_context(|| c.what())?;
                let count = gens.counted()? - before;
                let stats_after = prog_stats(ingress)?;
                mpps[i].push(count as f64 / secs / 1e6);
                sent[i] += n;
                got[i] += count;
                if let (Some((t0, n0)), Some((t1, n1))) = (stats_before, stats_after)
                    && n1 > n0
                {
                    prog_ns[i].push((t1 - t0) as f64 / (n1 - n0) as f64);
                }
            }
            setup.teardown(gens)?;
        }
    }
    Ok(cells
        .iter()
        .enumerate()
        .map(|(i, &cell)| Sample {
            cell,
            mpps: Spread::of(&mpps[i]),
            delivered: got[i] as f64 / sent[i].max(1) as f64,
            prog_ns: (!prog_ns[i].is_empty()).then(|| Spread::of(&prog_ns[i]).median),
        })
        .collect())
}

/// `bench_tc_sink` on the tcx ingress of `ifaces` (detached when the
/// bench object is dropped, or with the namespace).
fn attach_sinks(gens: &mut Generators, ifaces: &[&str]) -> anyhow::Result<()> {
    let prog = sink(gens)?;
    for iface in ifaces {
        prog.attach(iface, TcAttachType::Ingress)
            .with_context(|| format!("cannot attach the sink to {iface}"))?;
    }
    Ok(())
}

/// The tc sink of the bench object.
pub fn sink(gens: &mut Generators) -> anyhow::Result<&mut SchedClassifier> {
    gens.bench
        .program_mut(BENCH_TC_SINK)
        .and_then(|p| p.try_into().ok())
        .context("no bench_tc_sink program")
}

/// One subject set up on the lab's veths.
enum Setup {
    /// The product's tc programs in pin dir `pins`.
    Forwarder {
        pins: String,
    },
    Bridge,
    Floor(super::lab::Loaded, Vec<SchedClassifierLinkId>),
    /// Sinks on the first ports.
    Generator(Vec<SchedClassifierLinkId>),
}

impl Setup {
    fn new(lab: &Lab, gens: &mut Generators, subject: Subject) -> anyhow::Result<Setup> {
        Ok(match subject {
            Subject::Generator => {
                let prog = sink(gens)?;
                let mut links = Vec::new();
                for iface in ["nic0", "rtr0"] {
                    links.push(
                        prog.attach(iface, TcAttachType::Ingress)
                            .with_context(|| format!("cannot attach the sink to {iface}"))?,
                    );
                }
                Setup::Generator(links)
            }
            Subject::Tcx | Subject::Clsact => {
                let pins = lab.mount().join(match subject {
                    Subject::Tcx => "tcx",
                    _ => "clsact",
                });
                std::fs::create_dir_all(&pins)
                    .with_context(|| format!("cannot create {}", pins.display()))?;
                let pins = pins.to_str().context("pin dir is not UTF-8")?.to_owned();
                let vid = VID.to_string();
                let env: &[(&str, &str)] = if subject == Subject::Clsact {
                    &[("XDP_FORWARDER_TC_HOOK", "clsact")]
                } else {
                    &[]
                };
                for args in [
                    &["attach", "rtr0", "--role", "router", "--mode", "tc"][..],
                    &[
                        "attach", "nic0", "--role", "physical", "--vid", &vid, "--mode", "tc",
                    ],
                ] {
                    forwarder(&pins, args, env)?;
                }
                Setup::Forwarder { pins }
            }
            Subject::Bridge => {
                for table in ["iptables", "ip6tables", "arptables"] {
                    // Absent without br_netfilter: nothing to switch off then.
                    let _ = run(
                        "sysctl",
                        &["-qw", &format!("net.bridge.bridge-nf-call-{table}=0")],
                    );
                }
                run("ip", &["link", "add", "br0", "type", "bridge"])?;
                for port in ["nic0", "rtr0"] {
                    run("ip", &["link", "set", port, "master", "br0"])?;
                }
                run("ip", &["link", "set", "br0", "up"])?;
                Setup::Bridge
            }
            Subject::Floor => {
                let mut loaded = lab.load(XdpSubject::Floor)?;
                let prog: &mut SchedClassifier = loaded
                    .ebpf
                    .program_mut(FLOOR_TC_PROGRAM)
                    .and_then(|p| p.try_into().ok())
                    .context("no floor_tc program")?;
                let mut links = Vec::new();
                for iface in ["nic0", "rtr0"] {
                    links.push(
                        prog.attach(iface, TcAttachType::Ingress)
                            .with_context(|| format!("cannot attach floor_tc to {iface}"))?,
                    );
                }
                Setup::Floor(loaded, links)
            }
        })
    }

    /// Points the floor at the direction's far port.
    fn direction(&mut self, lab: &Lab, direction: Direction) -> anyhow::Result<()> {
        if let Setup::Floor(loaded, _) = self {
            let target = match direction {
                Direction::ToRouter => lab.rtr,
                Direction::FromRouter => lab.nic,
            };
            lab::point_floor_tc(&mut loaded.ebpf, target)?;
        }
        Ok(())
    }

    fn teardown(self, gens: &mut Generators) -> anyhow::Result<()> {
        match self {
            Setup::Generator(links) => {
                let prog = sink(gens)?;
                for link in links {
                    prog.detach(link)?;
                }
            }
            Setup::Forwarder { pins } => {
                forwarder(&pins, &["detach", "--all"], &[])?;
            }
            Setup::Bridge => {
                run("ip", &["link", "del", "br0"])?;
            }
            Setup::Floor(mut loaded, links) => {
                let prog: &mut SchedClassifier = loaded
                    .ebpf
                    .program_mut(FLOOR_TC_PROGRAM)
                    .and_then(|p| p.try_into().ok())
                    .context("no floor_tc program")?;
                for link in links {
                    prog.detach(link)?;
                }
            }
        }
        Ok(())
    }
}

/// `xdp-forwarder ARGS --pin-dir PINS` in the calling thread's namespace.
fn forwarder(pins: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let exe = crate::bins_dir()?.join("xdp-forwarder");
    let out = std::process::Command::new(&exe)
        .args(args)
        .args(["--pin-dir", pins])
        .envs(env.iter().copied())
        .output()
        .with_context(|| format!("cannot run {} (build it first)", exe.display()))?;
    if !out.status.success() {
        bail!(
            "xdp-forwarder {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Turns `kernel.bpf_stats_enabled` on, and back to what it was on drop.
struct BpfStats {
    was: String,
}

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        let was = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
            .context("cannot read kernel.bpf_stats_enabled")?;
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")
            .context("cannot turn kernel.bpf_stats_enabled on")?;
        Ok(Self {
            was: was.trim().to_owned(),
        })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.was);
    }
}

/// (run_time_ns, run_cnt) of the first program on `iface`'s tc ingress:
/// tcx (a BPF_PROG_QUERY), else a clsact filter (bpftool, whose `net show`
/// lists no tcx programs); `None` when none runs there.
fn prog_stats(iface: &str) -> anyhow::Result<Option<(u64, u64)>> {
    if let Ok((_, progs)) = SchedClassifier::query_tcx(iface, TcAttachType::Ingress)
        && let Some(p) = progs.first()
    {
        return Ok(Some((p.run_time().as_nanos() as u64, p.run_count())));
    }
    let net: serde_json::Value =
        serde_json::from_str(&run("bpftool", &["-j", "net", "show", "dev", iface])?)
            .context("bpftool net show")?;
    let id = net
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| {
            ["tcx", "tc"]
                .into_iter()
                .filter_map(move |k| v.get(k).and_then(|a| a.as_array()))
                .flatten()
        })
        .find(|p| {
            p.get("kind")
                .is_none_or(|k| k == "tcx/ingress" || k == "clsact/ingress")
        })
        .and_then(|p| {
            ["prog_id", "id"]
                .into_iter()
                .find_map(|k| p.get(k).and_then(serde_json::Value::as_u64))
        });
    let Some(id) = id else { return Ok(None) };
    let prog: serde_json::Value = serde_json::from_str(&run(
        "bpftool",
        &["-j", "prog", "show", "id", &id.to_string()],
    )?)
    .context("bpftool prog show")?;
    let num = |k: &str| prog.get(k).and_then(serde_json::Value::as_u64);
    Ok(num("run_time_ns").zip(num("run_cnt")))
}
