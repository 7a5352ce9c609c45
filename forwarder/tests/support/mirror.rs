//! The demo's topology in mirror image (lab/src/demo/topology.rs), for one
//! network, with both ends ordinary IP hosts on one /24 (this host has no
//! 8021q: the router VM demultiplexes with the forwarder itself):
//!
//! ```text
//! ext eth0 ── nic1 ─[+VID]─ router0 ══ uplink ─[-VID]─ vlan1 ── eth0 lan
//!             └── net-vm ──────────┘   └── router VM ──┘
//! ```
//!
//! `nic1` (physical, the VID) and `router0` (router, MAC `02:01:…`) are the
//! net-vm's forwarder; `uplink` (router) and `vlan1` (physical, the same
//! VID) the router VM's, with a pin dir (a private bpffs) of its own. Each
//! part is a named namespace of its own. The offloads stay as Linux sets
//! them: nothing here switches one off.

use std::time::{Duration, Instant};

use super::{Bpffs, cli, cli_ok_with, netns::NamedNetns, process::Spawned};

pub const EXT_ADDR: &str = "10.98.0.1";
pub const LAN_ADDR: &str = "10.98.0.2";
pub const ROUTER_MAC: &str = "02:01:00:00:0e:01";

/// Which forwarder.
#[derive(Clone, Copy, Debug)]
pub enum Vm {
    /// `nic1` and `router0`.
    Net,
    /// `uplink` and `vlan1`.
    Router,
}

pub struct Mirror {
    pub mode: String,
    pub vid: u16,
    pub ext: NamedNetns,
    pub net_vm: NamedNetns,
    pub router_vm: NamedNetns,
    pub lan: NamedNetns,
    net_vm_pins: Bpffs,
    router_vm_pins: Bpffs,
    /// The CLI's environment (e.g. the tc hook to use).
    env: &'static [(&'static str, &'static str)],
}

impl Mirror {
    /// Builds the topology and attaches both forwarders in `mode` (NICs
    /// first, as the demo does), the network's VID `vid` on both sides.
    pub fn new(tag: &str, mode: &str, vid: u16) -> Self {
        Self::with_env(tag, mode, vid, &[])
    }

    /// [`Mirror::new`], the CLI always run with `env`.
    pub fn with_env(
        tag: &str,
        mode: &str,
        vid: u16,
        env: &'static [(&'static str, &'static str)],
    ) -> Self {
        let m = Mirror {
            env,
            mode: mode.to_owned(),
            vid,
            ext: NamedNetns::add(&format!("{tag}-ext")),
            net_vm: NamedNetns::add(&format!("{tag}-netvm")),
            router_vm: NamedNetns::add(&format!("{tag}-rtrvm")),
            lan: NamedNetns::add(&format!("{tag}-lan")),
            net_vm_pins: Bpffs::mount(&format!("{tag}-netvm")),
            router_vm_pins: Bpffs::mount(&format!("{tag}-rtrvm")),
        };
        m.net_vm.link_to("nic1", None, &m.ext, "eth0");
        m.router_vm.link_to("vlan1", None, &m.lan, "eth0");
        m.net_vm
            .link_to("router0", Some(ROUTER_MAC), &m.router_vm, "uplink");
        for (host, addr) in [(&m.ext, EXT_ADDR), (&m.lan, LAN_ADDR)] {
            host.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        }
        let vid = vid.to_string();
        m.fwd(
            Vm::Net,
            &["attach", "nic1", "--role", "physical", "--vid", &vid],
        );
        m.fwd(Vm::Net, &["attach", "router0", "--role", "router"]);
        m.fwd(Vm::Router, &["attach", "uplink", "--role", "router"]);
        m.fwd(
            Vm::Router,
            &["attach", "vlan1", "--role", "physical", "--vid", &vid],
        );
        m
    }

    fn side(&self, vm: Vm) -> (&NamedNetns, &Bpffs) {
        match vm {
            Vm::Net => (&self.net_vm, &self.net_vm_pins),
            Vm::Router => (&self.router_vm, &self.router_vm_pins),
        }
    }

    /// The CLI in `vm`'s namespace on its pin dir (and, for `attach`, in
    /// the topology's mode); asserts success, returns stdout.
    pub fn fwd(&self, vm: Vm, args: &[&str]) -> String {
        let (ns, pins) = self.side(vm);
        let mut all = args.to_vec();
        if args.first() == Some(&"attach") {
            all.extend(["--mode", &self.mode]);
        }
        all.extend(["--pin-dir", pins.arg()]);
        ns.enter(|| cli_ok_with(&all, self.env))
    }

    /// `status --json` of `vm`'s port `name`.
    pub fn port(&self, vm: Vm, name: &str) -> serde_json::Value {
        let st: serde_json::Value =
            serde_json::from_str(&self.fwd(vm, &["status", "--json"])).unwrap();
        st["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no port {name} in {vm:?}: {st:#}"))
            .clone()
    }

    /// Frames `vm`'s port `name` forwarded so far.
    pub fn forwarded_frames(&self, vm: Vm, name: &str) -> u64 {
        let port = self.port(vm, name);
        port["counters"]["forwarded_frames"]
            .as_u64()
            .unwrap_or_else(|| panic!("no counters: {port:#}"))
    }

    /// `ethtool -k` of `iface` in `ns`: whether `feature` is on.
    pub fn offload_on(ns: &NamedNetns, iface: &str, feature: &str) -> bool {
        let out = ns.exec("ethtool", &["-k", iface]);
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{feature}:")))
            .unwrap_or_else(|| panic!("no {feature} in `ethtool -k {iface}`: {out}"));
        line.split(':').nth(1).unwrap().trim().starts_with("on")
    }

    /// ext pings lan through both forwarders, then TCP (iperf3, 2 s) crosses
    /// both ways with at least 100 MB each: what `label` (the setup) must
    /// carry. Prints the rates.
    pub fn assert_tcp_both_ways(&self, label: &str) {
        assert!(
            Self::reachable(&self.ext, LAN_ADDR, Duration::from_secs(10)),
            "{label}: ext cannot ping lan through the net-vm and router VM"
        );
        for (client, server, addr, way) in [
            (&self.ext, &self.lan, LAN_ADDR, "ext → lan"),
            (&self.lan, &self.ext, EXT_ADDR, "lan → ext"),
        ] {
            let (bytes, bps) = iperf3(client, server, addr);
            eprintln!(
                "{label}, TCP {way}: {bytes} bytes in 2 s, {:.2} Gbit/s",
                bps / 1e9
            );
            assert!(
                bytes >= 100_000_000,
                "{label}, TCP {way}: only {bytes} bytes received in 2 s ({:.3} Gbit/s), \
                 want at least 100 MB",
                bps / 1e9
            );
        }
    }

    /// Waits until `from` reaches `addr` (ARP resolved through both
    /// forwarders), up to `timeout`; false if it never does.
    pub fn reachable(from: &NamedNetns, addr: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let ok = std::process::Command::new("ip")
                .args(["netns", "exec", &from.name, "ping", "-c1", "-W1", addr])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok || std::time::Instant::now() >= deadline {
                return ok;
            }
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        // Best effort, also while unwinding; then the namespaces and the
        // mounts go (fields drop in order).
        for vm in [Vm::Net, Vm::Router] {
            let (ns, pins) = self.side(vm);
            let _ = ns.enter(|| cli(&["detach", "--all", "--pin-dir", pins.arg()]));
        }
    }
}

/// The bytes the server received and the rate, from the client's
/// `iperf3 -J` report.
pub fn iperf3(client: &NamedNetns, server: &NamedNetns, server_addr: &str) -> (u64, f64) {
    let srv = Spawned::in_netns(&server.name, "iperf3", &["-s", "-1"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.exec("ss", &["-Hltn"]).contains(":5201") {
        assert!(
            Instant::now() < deadline,
            "iperf3 -s did not listen within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = Spawned::in_netns(
        &client.name,
        "iperf3",
        &[
            "-c",
            server_addr,
            "-t",
            "2",
            "-J",
            "--connect-timeout",
            "3000",
        ],
    )
    .wait(Duration::from_secs(30));
    srv.wait(Duration::from_secs(10));
    let report: serde_json::Value = serde_json::from_str(&report)
        .unwrap_or_else(|e| panic!("iperf3 -J printed no JSON ({e}): {report}"));
    let received = &report["end"]["sum_received"];
    (
        received["bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("no end.sum_received.bytes: {report:#}")),
        received["bits_per_second"].as_f64().unwrap_or_default(),
    )
}
