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
//! In each, `iperf3 -t SECONDS` each way, one stream and 4 (`-P 4`). Runs
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
        topology::{EXT_ADDR, LAN_ADDR, Names},
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
}

impl Setup {
    pub const ALL: [Setup; 5] = [
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
        }
    }

    /// The least ratio to the bridges this setup should reach; `None`:
    /// no goal (the baseline, or a mode that attached with a caveat).
    fn goal(self, caveat: bool) -> Option<f64> {
        match self {
            Setup::Bridges => None,
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
    let chosen: Vec<Cell> = all
        .iter()
        .copied()
        .filter(|c| only.is_none_or(|o| c.what().contains(o)))
        .collect();
    all.into_iter()
        .filter(|c| {
            chosen.contains(c)
                || (c.setup == Setup::Bridges
                    && chosen
                        .iter()
                        .any(|o| o.way == c.way && o.streams == c.streams))
        })
        .collect()
}

pub struct Sample {
    pub cell: Cell,
    pub gbps: Spread,
    /// One per run.
    pub transfers: Vec<Transfer>,
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
    let mut attached = Vec::new();
    for run in 1..=runs {
        // Each run starts one setup later: none is always first or last.
        let order = setups.iter().cycle().skip(run - 1).take(setups.len());
        for &setup in order {
            demo::step()?;
            eprintln!("measuring TCP, run {run}/{runs}: {} ...", setup.name());
            let mode = match setup {
                Setup::Bridges => ModeChoice::Auto, // unused
                Setup::Forwarders(m) => m,
            };
            let topo = Demo::new(&names, 1, mode)?;
            let _teardown = Teardown {
                names: &names,
                keep: false,
                verbose: false,
            };
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
            }
            let (ext, lan) = (names.ext(1), names.lan(1));
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
                let t =
                    tcp::transfer(from, to, addr, seconds, c.streams).with_context(|| c.what())?;
                eprintln!("  {}: {}", c.what(), t.verdict().1);
                transfers[i].push(t);
            }
        }
    }
    let samples = cells
        .iter()
        .zip(transfers)
        .map(|(&cell, transfers)| Sample {
            cell,
            gbps: Spread::of(&transfers.iter().map(Transfer::gbps).collect::<Vec<_>>()),
            transfers,
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
    fn attached(&self, setup: Setup) -> Option<&Attached> {
        self.attached.iter().find(|a| a.setup == setup)
    }

    fn bridges(&self, cell: Cell) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.cell.setup == Setup::Bridges
                    && s.cell.way == cell.way
                    && s.cell.streams == cell.streams
            })
            .map(|s| s.gbps.median)
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
            "| setup | direction | streams | Gbit/s min | median | max | retransmits (median run) | ratio to bridges | goal |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|");
        let mut missed = Vec::new();
        for s in &self.samples {
            let caveat = self
                .attached(s.cell.setup)
                .is_some_and(|a| !a.caveats.is_empty());
            let ratio = self.bridges(s.cell).map(|b| s.gbps.median / b);
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
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {goal} |",
                self.label(s.cell.setup),
                s.cell.way.name(),
                s.cell.streams,
                s.gbps.min,
                s.gbps.median,
                s.gbps.max,
                s.median_run().retransmits,
                ratio.map_or("-".into(), |r| format!("{r:.2}×")),
            );
        }
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
