//! `xdp-forwarder-lab demo`: a net-vm and a router VM as network namespaces, real
//! traffic through both (ping, UDP, TCP), a readable account, and everything
//! removed again. The bench builds the same topology ([`Demo::build`]).
//!
//! The router VM demultiplexes with this same forwarder in mirror image: its
//! uplink gets the router role and each per-network veth the physical role
//! with that network's VID, so the tool runs on both ends of the wire (and no
//! 8021q module is needed).

pub mod checks;
pub mod tcp;
pub(crate) mod topology;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, bail, ensure};

use crate::netns;
use checks::Check;
use topology::{EXT_ADDR, LAN_ADDR, Names};
use xdp_forwarder::{
    ModeChoice,
    status::{Port, Status},
};

pub use topology::{DEFAULT_PREFIX, MAX_NICS};

/// Each TCP row's iperf3 duration.
const TCP_SECONDS: u32 = 2;

pub struct Options {
    pub nics: usize,
    pub mode: ModeChoice,
    pub keep: bool,
    /// Starts every name the demo creates (namespaces, state dir).
    pub prefix: String,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// From now on Ctrl-C (or SIGTERM) makes [`step`] fail instead of ending
/// the process, so that what was built is removed.
pub(crate) fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Fails once Ctrl-C (or SIGTERM) arrived, so that the caller cleans up.
pub(crate) fn step() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Removes the topology when dropped, unless kept.
pub(crate) struct Teardown<'a> {
    pub names: &'a Names,
    pub keep: bool,
    /// Prints what was removed.
    pub verbose: bool,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        match self.names.clean() {
            Ok(removed) if self.verbose => println!("\nremoved: {}", summarize(&removed)),
            Ok(_) => {}
            Err(e) => eprintln!(
                "\nerror while removing the demo: {e:#}; retry with `xdp-forwarder-lab demo --clean`"
            ),
        }
    }
}

fn summarize(removed: &[String]) -> String {
    let ns = removed
        .iter()
        .filter(|r| r.starts_with("namespace"))
        .count();
    let mounts = removed.len() - ns;
    format!("{ns} namespaces (with their veths and attachments), {mounts} bpffs mounts")
}

/// `demo --clean`.
pub fn clean(prefix: &str) -> anyhow::Result<()> {
    xdp_forwarder::privileges::require("the demo")?;
    let names = Names::new(prefix)?;
    let removed = names.clean()?;
    if removed.is_empty() {
        println!(
            "nothing to clean: no demo topology is recorded in {}",
            names.state_dir().display()
        );
    } else {
        for r in &removed {
            println!("removed {r}");
        }
    }
    Ok(())
}

/// Runs the demo; `Ok(false)` when a check failed.
pub fn run(opts: &Options) -> anyhow::Result<bool> {
    if !(1..=MAX_NICS).contains(&opts.nics) {
        bail!("--nics {}: choose 1..={MAX_NICS}", opts.nics);
    }
    xdp_forwarder::privileges::require("the demo")?;
    checks::require_tools()?;
    let names = Names::new(&opts.prefix)?;
    names.check_clean_slate()?;
    catch_interrupts();
    let demo = Demo::new(&names, opts.nics, opts.mode)?;
    let mut teardown = Teardown {
        names: &names,
        keep: false,
        verbose: true,
    };
    let outcome = demo.run();
    teardown.keep = opts.keep && !INTERRUPTED.load(Ordering::Relaxed);
    if teardown.keep {
        demo.print_explore();
    }
    outcome
}

/// The demo's topology and the forwarders on it (the bench builds it too).
pub(crate) struct Demo<'a> {
    names: &'a Names,
    pub net_vm: String,
    pub router: String,
    exe: PathBuf,
    nics: usize,
    mode: &'static str,
}

impl<'a> Demo<'a> {
    /// A demo of `nics` networks whose forwarders attach in `mode`, run by
    /// the product's binary beside ours (or in XDP_FORWARDER_BINS).
    pub fn new(names: &'a Names, nics: usize, mode: ModeChoice) -> anyhow::Result<Self> {
        let exe = crate::bins_dir()?.join("xdp-forwarder");
        ensure!(
            exe.is_file(),
            "{} is missing: build it first (`cargo build --bins`)",
            exe.display()
        );
        Ok(Demo {
            names,
            net_vm: names.net_vm(),
            router: names.router(),
            exe,
            nics,
            mode: mode.as_arg(),
        })
    }

    fn networks(&self) -> impl Iterator<Item = usize> + use<> {
        1..=self.nics
    }

    /// `xdp-forwarder ARGS --pin-dir ...` inside `ns`.
    fn fwd(&self, ns: &str, args: &[&str]) -> anyhow::Result<String> {
        let pins = self.names.pin_dir(ns);
        let mut all = vec![self.exe.to_str().context("binary path is not UTF-8")?];
        all.extend_from_slice(args);
        all.extend([
            "--pin-dir",
            pins.to_str().context("state dir is not UTF-8")?,
        ]);
        netns::exec(ns, all[0], &all[1..])
    }

    pub fn status(&self, ns: &str) -> anyhow::Result<Status> {
        serde_json::from_str(&self.fwd(ns, &["status", "--json"])?).context("status --json")
    }

    fn run(&self) -> anyhow::Result<bool> {
        println!(
            "xdp-forwarder-lab demo: {} outside networks through a net-vm and a router VM (namespaces)\n",
            self.nics
        );
        self.build()?;
        let vids = self.attach()?;
        self.print_topology(&vids)?;
        let checks = self.check()?;
        self.print_counters()?;
        Ok(checks::print_result(&checks))
    }

    /// The namespaces, veths and end hosts, nothing attached.
    pub fn build(&self) -> anyhow::Result<()> {
        let (net_vm, router) = (&self.net_vm, &self.router);
        self.names.prepare_state()?;
        for ns in [net_vm, router] {
            self.names.add_ns(ns)?;
        }
        for k in self.networks() {
            step()?;
            let (ext, lan) = (self.names.ext(k), self.names.lan(k));
            self.names.add_ns(&ext)?;
            self.names.add_ns(&lan)?;
            topology::veth(net_vm, &format!("nic{k}"), None, &ext, "eth0")?;
            topology::veth(router, &format!("vlan{k}"), None, &lan, "eth0")?;
            topology::host(&ext, EXT_ADDR)?;
            topology::host(&lan, LAN_ADDR)?;
        }
        topology::veth(
            net_vm,
            "router0",
            Some(topology::ROUTER_MAC),
            router,
            "uplink",
        )?;
        Ok(())
    }

    /// Attaches both forwarders; returns each network's VID. The two
    /// router ports first: in native mode a port is attached only where
    /// its redirects are taken, and a veth takes them once its peer runs
    /// a native program (router0 and uplink are each other's peers).
    pub fn attach(&self) -> anyhow::Result<Vec<u16>> {
        let (net_vm, router) = (&self.net_vm, &self.router);
        let mode = self.mode;
        self.fwd(
            net_vm,
            &["attach", "router0", "--role", "router", "--mode", mode],
        )?;
        // The router VM, in mirror image: same VIDs, opposite roles.
        self.fwd(
            router,
            &["attach", "uplink", "--role", "router", "--mode", mode],
        )?;
        for k in self.networks() {
            step()?;
            self.fwd(
                net_vm,
                &[
                    "attach",
                    &format!("nic{k}"),
                    "--role",
                    "physical",
                    "--mode",
                    mode,
                ],
            )?;
        }
        let status = self.status(net_vm)?;
        let mut vids = Vec::new();
        for k in self.networks() {
            let vid = port(&status, &format!("nic{k}"))
                .and_then(|p| p.vid)
                .with_context(|| format!("nic{k} has no VID in `status`"))?;
            vids.push(vid);
        }
        for (k, vid) in self.networks().zip(&vids) {
            step()?;
            let vid = vid.to_string();
            self.fwd(
                router,
                &[
                    "attach",
                    &format!("vlan{k}"),
                    "--role",
                    "physical",
                    "--vid",
                    &vid,
                    "--mode",
                    mode,
                ],
            )?;
        }
        Ok(vids)
    }

    fn print_topology(&self, vids: &[u16]) -> anyhow::Result<()> {
        let (net_vm, router) = (&self.net_vm, &self.router);
        println!("topology: every network uses the same addresses, only the VLANs keep them apart");
        for (k, vid) in self.networks().zip(vids) {
            println!(
                "  {} {EXT_ADDR} ── nic{k} ─[+VID {vid}]─ router0 ══ uplink ─[-VID {vid}]─ vlan{k} ── {LAN_ADDR} {}",
                self.names.ext(k),
                self.names.lan(k)
            );
        }
        println!(
            "  nicK, router0 (MAC {}): the net-vm, {net_vm}",
            topology::ROUTER_MAC
        );
        println!("  uplink, vlanK: the router VM, {router} (the forwarder in mirror image)");
        println!("\nattached");
        let mut caveats: Vec<String> = Vec::new();
        for ns in [net_vm, router] {
            let status = self.status(ns)?;
            for p in &status.ports {
                println!(
                    "  {ns:<11} {:<8} {:<8} {:<9} {} mode",
                    p.name.as_deref().unwrap_or("?"),
                    p.role.to_string(),
                    p.vid.map(|v| format!("VID {v}")).unwrap_or_default(),
                    p.mode,
                );
                if let Some(c) = &p.caveat
                    && !caveats.contains(c)
                {
                    caveats.push(c.clone());
                }
            }
        }
        // What `attach` warned about (the mode's known limits here).
        for c in caveats {
            println!("  warning: {c}");
        }
        Ok(())
    }

    fn check(&self) -> anyhow::Result<Vec<Check>> {
        println!("\nchecks");
        let mut all = Vec::new();
        let mut report = |c: Check| {
            c.print(22);
            all.push(c);
        };
        for k in self.networks() {
            step()?;
            report(checks::ping(
                &self.names.ext(k),
                LAN_ADDR,
                format!("ping ext{k} → lan{k}"),
            ));
            report(checks::ping(
                &self.names.lan(k),
                EXT_ADDR,
                format!("ping lan{k} → ext{k}"),
            ));
        }
        let lans: Vec<(usize, String)> = self.networks().map(|k| (k, self.names.lan(k))).collect();
        let exts: Vec<(usize, String)> = self.networks().map(|k| (k, self.names.ext(k))).collect();
        for (direction, senders, receivers, to) in [
            ("ext → lan", &exts, &lans, checks::TO_LAN),
            ("lan → ext", &lans, &exts, checks::TO_EXT),
        ] {
            step()?;
            let rx = checks::Receivers::bind(receivers)?;
            for (k, ns) in senders {
                checks::burst(ns, *k, to)?;
            }
            for c in checks::judge(direction, &rx.collect(self.nics)) {
                report(c);
            }
        }
        // TCP each way, one network at a time (iperf3's own port, same
        // addresses everywhere: only the VLANs keep them apart).
        for k in self.networks() {
            let (ext, lan) = (self.names.ext(k), self.names.lan(k));
            for (from, to, to_addr, name) in [
                (&ext, &lan, LAN_ADDR, format!("tcp ext{k} → lan{k}")),
                (&lan, &ext, EXT_ADDR, format!("tcp lan{k} → ext{k}")),
            ] {
                step()?;
                let t = tcp::transfer(from, to, to_addr, TCP_SECONDS, 1)?;
                let (passed, detail) = t.verdict();
                report(Check {
                    name,
                    passed,
                    detail,
                });
            }
        }
        Ok(all)
    }

    fn print_counters(&self) -> anyhow::Result<()> {
        let (net_vm, router) = (&self.net_vm, &self.router);
        println!("\ncounters (from the programs' per-CPU maps)");
        for ns in [net_vm, router] {
            let status = self.status(ns)?;
            for p in &status.ports {
                let Some(c) = &p.counters else { continue };
                let drops: Vec<String> = c
                    .dropped
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect();
                println!(
                    "  {ns:<11} {:<8} forwarded {:>8} frames {:>11} bytes, dropped {}{}",
                    p.name.as_deref().unwrap_or("?"),
                    c.forwarded_frames,
                    c.forwarded_bytes,
                    c.dropped_total,
                    if drops.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", drops.join(", "))
                    }
                );
            }
        }
        Ok(())
    }

    fn print_explore(&self) {
        let (net_vm, router) = (&self.net_vm, &self.router);
        let bin = self.exe.display();
        println!("\nthe topology is kept. Explore it:");
        println!(
            "  ip netns exec {net_vm} {bin} status --pin-dir {}",
            self.names.pin_dir(net_vm).display()
        );
        println!(
            "  ip netns exec {router} {bin} status --watch --pin-dir {}",
            self.names.pin_dir(router).display()
        );
        println!("  ip netns exec {} ping {LAN_ADDR}", self.names.ext(1));
        println!("  ip netns exec {} tcpdump -eni eth0", self.names.lan(1));
        let lab = std::env::current_exe().map_or_else(
            |_| "xdp-forwarder-lab".to_owned(),
            |p| p.display().to_string(),
        );
        println!("tear it down:\n  {lab} demo --clean");
    }
}

/// The port named `name` in a `status --json` document.
fn port<'a>(status: &'a Status, name: &str) -> Option<&'a Port> {
    status
        .ports
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
}
