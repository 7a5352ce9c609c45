//! Part 3: TCP through the net-vm and the router VM, against Linux bridges.
//!
//! The demo's topology with one network (its own code, its own name
//! prefix): `ext1 ── nic1 [net-vm] router0 ══ uplink [router VM] vlan1 ──
//! lan1`, the end hosts with the offloads Linux gives a veth. Each setup
//! gets a fresh copy of it:
//!
//! - the two forwarders, attached as the demo attaches them, in one mode
//!   (`tc`, `native`, `skb`, or `auto`: what it picks here);
//! - **bridges**: the same veths, with a Linux bridge in the net-vm joining
//!   `nic1` and `router0` and one in the router VM joining `uplink` and
//!   `vlan1` (one bridge pair per network). This kernel has neither bridge
//!   VLAN filtering nor 8021q, so the bridges cannot tag: their job is the
//!   forwarders' minus the tag (which both kernels' paths carry as skb
//!   metadata anyway), plus MAC learning. The bridge namespaces do not pass
//!   bridged frames to netfilter (`bridge-nf-call-*` = 0; this kernel has
//!   br_netfilter built in and would): the forwarders do not either.
//!
//! - **direct**: the two end hosts on one veth pair, no hop: the ceiling.
//!
//! In each, `iperf3 -t SECONDS` each way, one stream and 4 (`-P 4`), and
//! the CPU time the machine spent in the kernel meanwhile (system and
//! softirq, all CPUs, from `/proc/stat`) per GB the receiver counted. Runs
//! interleave the setups, each run starting one setup later, so that drifts
//! hit all of them alike; ratios are medians against the bridges' medians
//! of the same invocation.

use std::fmt::Write as _;

use anyhow::Context as _;
use xdp_forwarder::ModeChoice;

use super::stats::Spread;
use crate::{
    demo::{
        self, Demo, Teardown,
        tcp::{self, Transfer},
        topology::{self, EXT_ADDR, LAN_ADDR, Names},
    },
    netns,
};

/// The bench's namespaces: `xfdbench-net-vm`, … (never a demo's).
const PREFIX: &str = "xfdbench";

/// What carries the traffic between the outside host and the router VM's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    Bridges,
    Forwarders(ModeChoice),
    /// The end hosts on one veth pair.
    Direct,
}

impl Setup {
    pub const ALL: [Setup; 6] = [
        Setup::Direct,
        Setup::Bridges,
        Setup::Forwarders(ModeChoice::Tc),
        Setup::Forwarders(ModeChoice::Native),
        Setup::Forwarders(ModeChoice::Skb),
        Setup::Forwarders(ModeChoice::Auto),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Setup::Bridges => "bridges",
            Setup::Forwarders(m) => m.as_arg(),
            Setup::Direct => "direct",
        }
    }

    /// The least ratio to the bridges this setup should reach; `None`:
    /// no goal (the baseline, or a mode that attached with a caveat).
    fn goal(self, caveat: bool) -> Option<f64> {
        match self {
            Setup::Bridges | Setup::Direct => None,
            Setup::Forwarders(ModeChoice::Auto) => Some(1.0),
            Setup::Forwarders(ModeChoice::Skb) => Some(0.8),
            Setup::Forwarders(_) if caveat => None,
            Setup::Forwarders(_) => Some(0.8),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// From the outside host to the router VM's (NIC → router in the net-vm).
    ToLan,
    ToExt,
}

impl Way {
    pub fn name(self) -> &'static str {
        match self {
            Way::ToLan => "ext → lan",
            Way::ToExt => "lan → ext",
        }
    }
}

/// One measurement: a setup, a direction, a number of streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub setup: Setup,
    pub way: Way,
    pub streams: u32,
}

impl Cell {
    /// The line `--only` matches.
    pub fn what(&self) -> String {
        format!(
            "tcp, {}, {}, {} stream{}",
            self.setup.name(),
            self.way.name(),
            self.streams,
            if self.streams == 1 { "" } else { "s" }
        )
    }
}

/// The cells `only` selects, with the bridges' cells they are compared to.
pub fn cells(only: Option<&str>) -> Vec<Cell> {
    let mut all = Vec::new();
    for setup in Setup::ALL {
        for way in [Way::ToLan, Way::ToExt] {
            for streams in [1, 4] {
                all.push(Cell {
                    setup,
                    way,
                    streams,
                });
            }
        }
    }
    super::with_baselines(
        all,
        only,
        Cell::what,
        |c| matches!(c.setup, Setup::Bridges | Setup::Direct),
        |o, c| o.way == c.way && o.streams == c.streams,
    )
}

/// The kernel's CPU time from `/proc/stat`'s `cpu` line, in clock ticks
/// (`USER_HZ`), summed over all CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub system: u64,
    pub irq: u64,
    pub softirq: u64,
}

impl CpuTicks {
    /// Parses the first line of `/proc/stat` ("cpu  user nice system idle
    /// iowait irq softirq …").
    pub fn parse(stat: &str) -> Option<CpuTicks> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        Some(CpuTicks {
            system: *f.get(2)?,
            irq: *f.get(5)?,
            softirq: *f.get(6)?,
        })
    }

    pub fn now() -> anyhow::Result<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
        CpuTicks::parse(&stat).context("/proc/stat has no cpu line")
    }
}

/// CPU seconds per GB (10^9 bytes) between two snapshots, for `bytes`
/// delivered: (system, softirq + irq); `None` when nothing arrived.
pub fn cpu_per_gb(
    before: CpuTicks,
    after: CpuTicks,
    ticks_per_s: u64,
    bytes: u64,
) -> Option<(f64, f64)> {
    if bytes == 0 || ticks_per_s == 0 {
        return None;
    }
    let secs = |a: u64, b: u64| a.saturating_sub(b) as f64 / ticks_per_s as f64;
    let gb = bytes as f64 / 1e9;
    Some((
        secs(after.system, before.system) / gb,
        (secs(after.softirq, before.softirq) + secs(after.irq, before.irq)) / gb,
    ))
}

/// CPU seconds (user + system) of this process's waited-for children: the
/// two iperf3s of a transfer, once it returned. On veth the whole path, the
/// forwarders' hops included, runs in the bottom halves of the sending and
/// receiving processes, and this kernel charges bottom halves to the task
/// they interrupt (no `CONFIG_IRQ_TIME_ACCOUNTING`); work deferred to
/// `ksoftirqd` is not in it. Unlike `/proc/stat`, it leaves out everything
/// else the machine runs.
fn children_cpu_seconds() -> anyhow::Result<f64> {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        anyhow::bail!("getrusage: {}", std::io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(tv(ru.ru_utime) + tv(ru.ru_stime))
}

/// Where the CPU per GB goes: the two hosts' own TCP work is `direct`'s;
/// what a setup costs beyond it is its hops'. The goal (≤ 0.9× the
/// bridges) leaves the hops `0.9 × bridges − direct`, which is below zero
/// when the hosts alone cost more than 0.9× the bridges.
pub fn hop_budget(auto: f64, bridges: f64, direct: f64) -> String {
    let budget = 0.9 * bridges - direct;
    let hops = |v: f64| format!("{:.3} s/GB ({:.0}%)", v - direct, (v - direct) / v * 100.0);
    if budget <= 0.0 {
        format!(
            "The hosts alone (direct) cost {direct:.3} s/GB, already more than 0.9× the bridges' \
             {bridges:.3}: out of reach for any hop. The hops cost auto {} and the bridges {}.",
            hops(auto),
            hops(bridges)
        )
    } else {
        format!(
            "The hops cost auto {} and the bridges {}; the goal leaves them {budget:.3} s/GB.",
            hops(auto),
            hops(bridges)
        )
    }
}

/// `USER_HZ`: the unit of `/proc/stat`.
fn ticks_per_s() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).unwrap_or(100)
}

pub struct Sample {
    pub cell: Cell,
    pub gbps: Spread,
    /// One per run.
    pub transfers: Vec<Transfer>,
    /// Kernel CPU seconds per GB delivered, per run that delivered:
    /// (system, softirq + irq), machine-wide.
    pub cpu: Vec<(f64, f64)>,
    /// CPU seconds per GB of the two iperf3 processes (user + system, the
    /// path's bottom halves included), per run that delivered.
    pub proc_cpu: Vec<f64>,
}

impl Sample {
    /// Median CPU seconds per GB of the iperf3 processes.
    pub fn proc_cpu_median(&self) -> Option<f64> {
        (!self.proc_cpu.is_empty()).then(|| Spread::of(&self.proc_cpu).median)
    }

    /// Median CPU seconds per GB: (system, softirq + irq, total).
    pub fn cpu_median(&self) -> Option<(f64, f64, f64)> {
        if self.cpu.is_empty() {
            return None;
        }
        let sys: Vec<f64> = self.cpu.iter().map(|c| c.0).collect();
        let soft: Vec<f64> = self.cpu.iter().map(|c| c.1).collect();
        let total: Vec<f64> = self.cpu.iter().map(|c| c.0 + c.1).collect();
        Some((
            Spread::of(&sys).median,
            Spread::of(&soft).median,
            Spread::of(&total).median,
        ))
    }
}

impl Sample {
    /// The run whose Gbit/s is the median (the lower one of an even count).
    fn median_run(&self) -> &Transfer {
        let mut v: Vec<&Transfer> = self.transfers.iter().collect();
        v.sort_by(|a, b| a.gbps().total_cmp(&b.gbps()));
        v[(v.len() - 1) / 2]
    }
}

/// What a setup attached as: the mode the ports run (`auto`'s pick) and
/// what `attach` warned about.
pub struct Attached {
    pub setup: Setup,
    pub modes: Vec<String>,
    pub caveats: Vec<String>,
}

pub struct Results {
    pub seconds: u32,
    pub runs: usize,
    pub samples: Vec<Sample>,
    pub attached: Vec<Attached>,
}

/// Measures `cells`, `runs` times each.
pub fn measure(cells: &[Cell], runs: usize, seconds: u32) -> anyhow::Result<Results> {
    crate::demo::checks::require_tools()?;
    let names = Names::new(PREFIX)?;
    // What an interrupted bench left (only what it recorded creating).
    names.clean()?;
    names.check_clean_slate()?;
    demo::catch_interrupts();
    let mut setups: Vec<Setup> = Vec::new();
    for c in cells {
        if !setups.contains(&c.setup) {
            setups.push(c.setup);
        }
    }
    let mut transfers: Vec<Vec<Transfer>> = vec![Vec::new(); cells.len()];
    let mut cpu: Vec<Vec<(f64, f64)>> = vec![Vec::new(); cells.len()];
    let mut proc_cpu: Vec<Vec<f64>> = vec![Vec::new(); cells.len()];
    let hz = ticks_per_s();
    let mut attached = Vec::new();
    for run in 1..=runs {
        // Each run starts one setup later: none is always first or last.
        let order = setups.iter().cycle().skip(run - 1).take(setups.len());
        for &setup in order {
            demo::step()?;
            eprintln!("measuring TCP, run {run}/{runs}: {} ...", setup.name());
            let mode = match setup {
                Setup::Bridges | Setup::Direct => ModeChoice::Auto, // unused
                Setup::Forwarders(m) => m,
            };
            let topo = Demo::new(&names, 1, mode)?;
            let _teardown = Teardown {
                names: &names,
                keep: false,
                verbose: false,
            };
            let (ext, lan) = (names.ext(1), names.lan(1));
            if setup == Setup::Direct {
                names.prepare_state()?;
                names.add_ns(&ext)?;
                names.add_ns(&lan)?;
                topology::veth(&ext, "eth0", None, &lan, "eth0")?;
                topology::host(&ext, EXT_ADDR)?;
                topology::host(&lan, LAN_ADDR)?;
            } else {
                topo.build()?;
                for ns in [&topo.net_vm, &topo.router] {
                    for table in ["iptables", "ip6tables", "arptables"] {
                        netns::exec(
                            ns,
                            "sysctl",
                            &["-qw", &format!("net.bridge.bridge-nf-call-{table}=0")],
                        )?;
                    }
                }
            }
            match setup {
                Setup::Bridges => {
                    bridge(&topo.net_vm, &["nic1", "router0"])?;
                    bridge(&topo.router, &["uplink", "vlan1"])?;
                }
                Setup::Forwarders(_) => {
                    topo.attach()?;
                    if run == 1 {
                        attached.push(what_attached(&topo, setup)?);
                    }
                }
                Setup::Direct => {}
            }
            reachable(&ext, LAN_ADDR);
            for (i, c) in cells.iter().enumerate() {
                if c.setup != setup {
                    continue;
                }
                demo::step()?;
                let (from, to, addr) = match c.way {
                    Way::ToLan => (&ext, &lan, LAN_ADDR),
                    Way::ToExt => (&lan, &ext, EXT_ADDR),
                };
                let (before, children) = (CpuTicks::now()?, children_cpu_seconds()?);
                let t =
                    tcp::transfer(from, to, addr, seconds, c.streams).with_context(|| c.what())?;
                let (after, children) = (CpuTicks::now()?, children_cpu_seconds()? - children);
                eprintln!("  {}: {}", c.what(), t.verdict().1);
                if t.verdict().0
                    && let Some(c) = cpu_per_gb(before, after, hz, t.received)
                {
                    cpu[i].push(c);
                    proc_cpu[i].push(children / (t.received as f64 / 1e9));
                }
                transfers[i].push(t);
            }
        }
    }
    let samples = cells
        .iter()
        .zip(transfers)
        .zip(cpu)
        .zip(proc_cpu)
        .map(|(((&cell, transfers), cpu), proc_cpu)| Sample {
            cell,
            gbps: Spread::of(&transfers.iter().map(Transfer::gbps).collect::<Vec<_>>()),
            transfers,
            cpu,
            proc_cpu,
        })
        .collect();
    Ok(Results {
        seconds,
        runs,
        samples,
        attached,
    })
}

/// A bridge `br0` in `ns` joining `ports`, up (no STP: forwarding at once).
fn bridge(ns: &str, ports: &[&str]) -> anyhow::Result<()> {
    netns::ip(&["-n", ns, "link", "add", "br0", "type", "bridge"])?;
    for port in ports {
        netns::ip(&["-n", ns, "link", "set", port, "master", "br0"])?;
    }
    netns::ip(&["-n", ns, "link", "set", "br0", "up"])?;
    Ok(())
}

/// Waits (up to 5 s) until `from` reaches `to`: ARP resolved, bridges
/// forwarding. A path that never gets there shows in the measurement.
fn reachable(from: &str, to: &str) {
    for _ in 0..5 {
        if netns::exec(from, "ping", &["-q", "-c", "1", "-W", "1", to]).is_ok() {
            return;
        }
    }
}

/// The modes the ports of both forwarders run, and their caveats.
fn what_attached(topo: &Demo, setup: Setup) -> anyhow::Result<Attached> {
    let mut a = Attached {
        setup,
        modes: Vec::new(),
        caveats: Vec::new(),
    };
    for ns in [&topo.net_vm, &topo.router] {
        for p in topo.status(ns)?.ports {
            let mode = p.mode.to_string();
            if !a.modes.contains(&mode) {
                a.modes.push(mode);
            }
            if let Some(c) = p.caveat
                && !a.caveats.contains(&c)
            {
                a.caveats.push(c);
            }
        }
    }
    Ok(a)
}

fn mark(ok: bool) -> &'static str {
    if ok { "✅" } else { "❌" }
}

impl Results {
    /// Kernel CPU per GB: each setup that carried TCP, against the bridges
    /// (goal for `auto`: ≤ 0.9×).
    fn cpu_table(&self, w: &mut String) {
        let _ = writeln!(
            w,
            "\n### CPU per GB delivered (the same transfers, median over the runs)\n"
        );
        let _ = writeln!(
            w,
            "iperf3 s/GB: user + system seconds of the two iperf3 processes (on veth the path's bottom halves, hops included, run in their context and are charged to them here), the figure compared. Machine-wide: system and softirq + irq seconds of all CPUs from /proc/stat, which also counts whatever else ran meanwhile.\n"
        );
        let _ = writeln!(
            w,
            "| setup | direction | streams | iperf3 s/GB | ratio to bridges | goal | machine-wide system s/GB | softirq s/GB |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
        let mut missed = Vec::new();
        for s in &self.samples {
            let (Some(own), Some((sys, soft, _))) = (s.proc_cpu_median(), s.cpu_median()) else {
                continue;
            };
            let ratio = self
                .baseline(Setup::Bridges, s.cell)
                .and_then(Sample::proc_cpu_median)
                .map(|b| own / b);
            let goal = match (s.cell.setup, ratio) {
                (Setup::Forwarders(ModeChoice::Auto), Some(r)) => {
                    if r > 0.9 {
                        missed.push((s, own, sys, soft));
                    }
                    format!("≤ 0.9 {}", mark(r <= 0.9))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {own:.3} | {} | {goal} | {sys:.3} | {soft:.3} |",
                self.label(s.cell.setup),
                s.cell.way.name(),
                s.cell.streams,
                ratio.map_or("-".into(), |r| format!("{r:.2}×")),
            );
        }
        if missed.is_empty() {
            return;
        }
        let _ = writeln!(
            w,
            "\nWhere `auto` costs more than 0.9× the bridges' CPU per GB:\n"
        );
        for (s, own, sys, soft) in missed {
            let b = self.baseline(Setup::Bridges, s.cell);
            let d = self.baseline(Setup::Direct, s.cell);
            let fmt = |v: Option<&Sample>| {
                v.and_then(|v| v.proc_cpu_median().zip(v.cpu_median()))
                    .map_or("?".into(), |(own, (a, b, _))| {
                        format!("{own:.3} (machine-wide system {a:.3}, softirq {b:.3})")
                    })
            };
            let _ = writeln!(
                w,
                "- {}, {} stream{}: {own:.3} s/GB (machine-wide system {sys:.3}, softirq {soft:.3}) against the bridges' {} and direct's {}.",
                s.cell.way.name(),
                s.cell.streams,
                if s.cell.streams == 1 { "" } else { "s" },
                fmt(b),
                fmt(d),
            );
            let (Some(b), Some(d)) = (
                b.and_then(Sample::proc_cpu_median),
                d.and_then(Sample::proc_cpu_median),
            ) else {
                continue;
            };
            let _ = writeln!(w, "  {}", hop_budget(own, b, d));
        }
    }

    fn attached(&self, setup: Setup) -> Option<&Attached> {
        self.attached.iter().find(|a| a.setup == setup)
    }

    fn bridges(&self, cell: Cell) -> Option<f64> {
        self.baseline(Setup::Bridges, cell).map(|s| s.gbps.median)
    }

    /// `setup`'s sample for `cell`'s direction and streams.
    fn baseline(&self, setup: Setup, cell: Cell) -> Option<&Sample> {
        self.samples.iter().find(|s| {
            s.cell.setup == setup && s.cell.way == cell.way && s.cell.streams == cell.streams
        })
    }

    fn label(&self, setup: Setup) -> String {
        match (setup, self.attached(setup)) {
            (Setup::Forwarders(ModeChoice::Auto), Some(a)) => {
                format!("auto (attached {})", a.modes.join(", "))
            }
            _ => setup.name().to_owned(),
        }
    }

    pub fn markdown(&self, header: &str) -> String {
        let mut md = String::new();
        let w = &mut md;
        let _ = writeln!(w, "{header}");
        let _ = writeln!(
            w,
            "### TCP through the net-vm and router VM on veth (iperf3 -t {}, {} run{}; Gbit/s the receiver counted)\n",
            self.seconds,
            self.runs,
            if self.runs == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            w,
            "| setup | direction | streams | Gbit/s min | median | max | retransmits (median run) | ratio to bridges | ratio to direct | goal |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|");
        let mut missed = Vec::new();
        for s in &self.samples {
            let caveat = self
                .attached(s.cell.setup)
                .is_some_and(|a| !a.caveats.is_empty());
            let ratio = self.bridges(s.cell).map(|b| s.gbps.median / b);
            let to_direct = self
                .baseline(Setup::Direct, s.cell)
                .map(|d| s.gbps.median / d.gbps.median);
            let goal = match (s.cell.setup.goal(caveat), ratio) {
                (Some(want), Some(r)) => {
                    if r < want {
                        missed.push(s);
                    }
                    format!("≥ {want:.1} {}", mark(r >= want))
                }
                (None, _) if caveat => "none: attach warned (below)".to_owned(),
                _ => String::new(),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {goal} |",
                self.label(s.cell.setup),
                s.cell.way.name(),
                s.cell.streams,
                s.gbps.min,
                s.gbps.median,
                s.gbps.max,
                s.median_run().retransmits,
                ratio.map_or("-".into(), |r| format!("{r:.2}×")),
                to_direct.map_or("-".into(), |r| format!("{r:.2}×")),
            );
        }
        self.cpu_table(w);
        let mut notes: Vec<(Setup, Vec<String>)> = Vec::new();
        for s in &missed {
            let line = format!(
                "{}, {} stream{}: {}",
                s.cell.way.name(),
                s.cell.streams,
                if s.cell.streams == 1 { "" } else { "s" },
                s.median_run().verdict().1
            );
            match notes.iter_mut().find(|(setup, _)| *setup == s.cell.setup) {
                Some((_, lines)) => lines.push(line),
                None => notes.push((s.cell.setup, vec![line])),
            }
        }
        for a in &self.attached {
            if !a.caveats.is_empty() && !notes.iter().any(|(s, _)| *s == a.setup) {
                notes.push((a.setup, Vec::new()));
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(
                w,
                "\nWhere a goal is missed or a mode attached with a caveat (the median run of each cell):\n"
            );
        }
        for (setup, lines) in &notes {
            let _ = writeln!(w, "- **{}**:", self.label(*setup));
            if let Some(a) = self.attached(*setup) {
                for c in &a.caveats {
                    let _ = writeln!(w, "  `attach` warned: \"{c}\".");
                }
            }
            if lines.is_empty() {
                // A mode with a caveat and no goal: show what it carried.
                for s in self.samples.iter().filter(|s| s.cell.setup == *setup) {
                    let _ = writeln!(
                        w,
                        "  - {}, {} stream{}: {}",
                        s.cell.way.name(),
                        s.cell.streams,
                        if s.cell.streams == 1 { "" } else { "s" },
                        s.median_run().verdict().1
                    );
                }
            }
            for l in lines {
                let _ = writeln!(w, "  - {l}");
            }
            if let (Setup::Forwarders(ModeChoice::Auto), Some(a)) = (setup, self.attached(*setup))
                && let [mode] = a.modes.as_slice()
                && let Some(same) = ModeChoice::from_arg(mode)
                && self
                    .samples
                    .iter()
                    .any(|s| s.cell.setup == Setup::Forwarders(same))
            {
                let _ = writeln!(
                    w,
                    "  `auto` attached {mode} here: the same setup as the {mode} rows, measured \
                     at another moment; where the two differ, that is run-to-run variation."
                );
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_cpu_line_is_read_by_field() {
        let stat = "cpu  100 2 300 4000 5 6 70 0 0 0\ncpu0 50 1 150 2000 2 3 35 0 0 0\n";
        assert_eq!(
            CpuTicks::parse(stat),
            Some(CpuTicks {
                system: 300,
                irq: 6,
                softirq: 70
            })
        );
        assert_eq!(CpuTicks::parse("cpu0 1 2 3\n"), None);
    }

    #[test]
    fn cpu_per_gb_is_kernel_seconds_over_gigabytes() {
        let before = CpuTicks {
            system: 1000,
            irq: 10,
            softirq: 500,
        };
        let after = CpuTicks {
            system: 1300,
            irq: 20,
            softirq: 690,
        };
        // 3 s of system, 1.9 + 0.1 s of softirq + irq at 100 ticks/s, over 4 GB.
        let (sys, soft) = cpu_per_gb(before, after, 100, 4_000_000_000).unwrap();
        assert!((sys - 0.75).abs() < 1e-9, "{sys}");
        assert!((soft - 0.5).abs() < 1e-9, "{soft}");
        assert_eq!(cpu_per_gb(before, after, 100, 0), None, "nothing delivered");
    }

    #[test]
    fn the_hop_budget_says_when_the_hosts_alone_exceed_the_goal() {
        let out = hop_budget(0.60, 0.62, 0.58);
        assert!(
            out.starts_with("The hosts alone (direct) cost 0.580"),
            "{out}"
        );
        assert!(out.contains("auto 0.020 s/GB (3%)"), "{out}");
        let within = hop_budget(0.50, 1.0, 0.4);
        assert!(within.contains("leaves them 0.500 s/GB"), "{within}");
    }

    #[test]
    fn direct_and_bridges_come_with_any_cell() {
        let auto = cells(Some("tcp, auto, ext → lan, 1 stream"));
        let setups: Vec<Setup> = auto.iter().map(|c| c.setup).collect();
        assert_eq!(
            setups,
            [
                Setup::Direct,
                Setup::Bridges,
                Setup::Forwarders(ModeChoice::Auto)
            ]
        );
    }
}
