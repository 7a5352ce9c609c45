//! The fake net-vm every test that needs one builds: the test thread's
//! namespace (fresh: [`super::in_fresh_netns`]) holds the forwarder's side
//! of each veth; their peers live outside, in a named namespace, where
//! frames are injected and captured; a private bpffs is the pin dir. Ports
//! are plugged and attached builder-style:
//!
//! ```ignore
//! let w = World::new("tag").nic("nic1").router("rtr", ROUTER_MAC)
//!     .attached("rtr", "router", &["--mode", "skb"])
//!     .attached("nic1", "physical", &["--vid", "10", "--mode", "skb"]);
//! ```
//!
//! `nic`, `router` and `pair` plug links up, before anything attaches (the
//! CLI's tests); `plug`, `plug_bare` and `unplug` are hot-plug events under
//! a running daemon (its interface left down, for the daemon to bring up).
//!
//! Dropped (also when the test fails): `detach --all`, then the outside
//! namespace and the pin dir go; the interfaces here vanish with the test
//! thread's namespace.

use std::{
    os::unix::fs::MetadataExt as _,
    process::Output,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{
    Bpffs, cli_err_with, cli_ok_with, cli_with,
    daemon::WAIT,
    netns::NamedNetns,
    packet::{ETHERTYPE_TEST, RawSocket, frame, tagged},
    run,
};

/// The net-vm side of one test: pins, the outside namespace, helpers.
pub struct World {
    pub pins: Bpffs,
    pub outside: NamedNetns,
    /// The environment every CLI command of this world runs with (e.g.
    /// `XDP_FORWARDER_TC_HOOK=clsact`).
    env: &'static [(&'static str, &'static str)],
}

impl World {
    /// A pin dir and an outside namespace named after `tag`. Panics in the
    /// test process's own network namespace (the machine's, or the one it
    /// was started in): a world plugs its interfaces into the calling
    /// thread's namespace, which must be the test's own
    /// ([`super::in_fresh_netns`]).
    pub fn new(tag: &str) -> Self {
        let ns = |path| {
            let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            (m.dev(), m.ino())
        };
        assert_ne!(
            ns("/proc/thread-self/ns/net"),
            ns("/proc/self/ns/net"),
            "World::new outside in_fresh_netns: its interfaces would land in the \
             test process's own network namespace"
        );
        Self {
            pins: Bpffs::mount(tag),
            outside: NamedNetns::add(tag),
            env: &[],
        }
    }

    /// Every CLI command of this world (attach, detach, status) runs with
    /// `env` set.
    pub fn with_env(mut self, env: &'static [(&'static str, &'static str)]) -> Self {
        self.env = env;
        self
    }

    /// Plugs a NIC: a veth `name` here with a NIC's MAC, its peer `{name}x`
    /// outside, both up, offloads (GRO off) as Linux sets them.
    pub fn nic(self, name: &str) -> Self {
        self.outside
            .plug(name, &format!("{name}x"), Some(&nic_mac()));
        self
    }

    /// Plugs a router interface: [`World::nic`] with `mac` (one under the
    /// router prefix, e.g. [`ROUTER_MAC`]).
    pub fn router(self, name: &str, mac: &str) -> Self {
        self.outside.plug(name, &format!("{name}x"), Some(mac));
        self
    }

    /// Plugs a veth pair with both ends here, in the net-vm (the daemon and
    /// `status` see both): `name` with `mac` (else a NIC's), `peer` with a
    /// NIC's; both up.
    pub fn pair(self, name: &str, peer: &str, mac: Option<&str>) -> Self {
        let (nic, peer_mac) = (nic_mac(), nic_mac());
        run(
            "ip",
            &[
                "link",
                "add",
                name,
                "address",
                mac.unwrap_or(&nic),
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "address",
                &peer_mac,
            ],
        );
        for end in [name, peer] {
            run("ip", &["link", "set", end, "up"]);
        }
        self
    }

    /// Turns GRO on at these outside peers: a veth takes native XDP
    /// redirects only then (its xdp-features gain `ndo_xmit`).
    pub fn gro_on(self, peers: &[&str]) -> Self {
        for peer in peers {
            self.outside.exec("ethtool", &["-K", peer, "gro", "on"]);
        }
        self
    }

    /// Sets the MTU of `iface` here and of its peer `{iface}x` outside.
    pub fn set_mtu(&self, iface: &str, mtu: u32) {
        let mtu = mtu.to_string();
        run("ip", &["link", "set", iface, "mtu", &mtu]);
        self.outside
            .ip(&["link", "set", &format!("{iface}x"), "mtu", &mtu]);
    }

    /// [`World::attach`], builder-style.
    pub fn attached(self, iface: &str, role: &str, args: &[&str]) -> Self {
        self.attach(iface, role, args);
        self
    }

    /// `xdp-forwarder attach IFACE --role ROLE ARGS… --pin-dir PINS`, which
    /// must succeed; what it printed.
    pub fn attach(&self, iface: &str, role: &str, args: &[&str]) -> String {
        let mut all = vec!["attach", iface, "--role", role];
        all.extend_from_slice(args);
        self.cli_ok(&all)
    }

    /// The same attach, which must fail; its stderr.
    pub fn attach_err(&self, iface: &str, role: &str, args: &[&str]) -> String {
        let mut all = vec!["attach", iface, "--role", role];
        all.extend_from_slice(args);
        self.cli_err(&all)
    }

    /// The CLI with `args` on this pin dir, which must fail (no panic); its
    /// stderr.
    pub fn cli_err(&self, args: &[&str]) -> String {
        cli_err_with(&self.with_pin_dir(args), self.env)
    }

    /// The CLI with `args` on this pin dir, whatever its outcome.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_with(&self.with_pin_dir(args), self.env)
    }

    /// The CLI with `args` on this pin dir, which must succeed; its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        cli_ok_with(&self.with_pin_dir(args), self.env)
    }

    fn with_pin_dir<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend(["--pin-dir", self.pins.arg()]);
        all
    }

    /// A veth `name` here (with `mac`, else a NIC's), its peer `{name}x`
    /// outside, up, GRO on there; `name` down (the daemon brings it up).
    pub fn plug(&self, name: &str, mac: Option<&str>) {
        self.plug_bare(name, mac);
        let peer = format!("{name}x");
        self.outside.ip(&["link", "set", &peer, "up"]);
        self.outside.exec("ethtool", &["-K", &peer, "gro", "on"]);
    }

    /// A veth `name` here (with `mac`, else a NIC's), its peer `{name}x`
    /// outside, both down: enough for the daemon.
    pub fn plug_bare(&self, name: &str, mac: Option<&str>) {
        let peer = format!("{name}x");
        let nic = nic_mac();
        run(
            "ip",
            &self
                .outside
                .veth_args(name, &peer, Some(mac.unwrap_or(&nic))),
        );
    }

    pub fn unplug(&self, name: &str) {
        run("ip", &["link", "del", name]);
    }

    /// The pin of `iface`'s bpf_link (its clsact filter's program on the
    /// clsact hook) in the state dir.
    pub fn link_pin(&self, iface: &str) -> std::path::PathBuf {
        let ifindex = super::ifindex(iface);
        self.pins
            .path()
            .join(format!("xdp-forwarder/link-{ifindex}"))
    }

    /// Detaches `iface`'s link behind the forwarder's back (`bpftool link
    /// detach`): the program is gone, the pins stay.
    pub fn detach_link_by_hand(&self, iface: &str) {
        let link = self.link_pin(iface);
        let info: serde_json::Value = serde_json::from_str(&run(
            "bpftool",
            &["-j", "link", "show", "pinned", link.to_str().unwrap()],
        ))
        .unwrap();
        run(
            "bpftool",
            &["link", "detach", "id", &info["id"].to_string()],
        );
    }

    /// `status --json`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.cli_ok(&["status", "--json"])).unwrap()
    }

    /// The port `name` of `status --json`.
    pub fn port(&self, name: &str) -> serde_json::Value {
        super::port(&self.status(), name)
    }

    /// The counters of port `name`.
    pub fn counters(&self, name: &str) -> serde_json::Value {
        self.port(name)["counters"].clone()
    }

    /// Waits until `ports` (name, role) are exactly the attached ports, all
    /// attached, and `router` is router_iface; returns each port's VID.
    pub fn wait_for(&self, ports: &[(&str, &str)], router: Option<&str>) -> Vec<Option<u16>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let st = self.status();
            let got: Vec<(String, String, bool)> = st["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or("").to_owned(),
                        p["role"].as_str().unwrap().to_owned(),
                        p["attached"] == true,
                    )
                })
                .collect();
            let mut want: Vec<(String, String, bool)> = ports
                .iter()
                .map(|(n, r)| (n.to_string(), r.to_string(), true))
                .collect();
            let mut sorted = got.clone();
            sorted.sort();
            want.sort();
            if sorted == want && st["router_iface"]["name"].as_str() == router {
                return ports
                    .iter()
                    .map(|(n, _)| {
                        st["ports"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|p| p["name"] == *n)
                            .and_then(|p| p["vid"].as_u64())
                            .map(|v| v as u16)
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not reach {ports:?} / router {router:?}: {st}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn socket(&self, peer: &str) -> RawSocket {
        self.outside.enter(|| RawSocket::bind(peer))
    }

    /// A frame crosses NIC → router with `vid`, and back. Other frames on
    /// the way (none expected) are shown if the one sent never arrives.
    pub fn assert_forwards(&self, nic: &str, router: &str, vid: u16) {
        let (n, r) = (
            self.socket(&format!("{nic}x")),
            self.socket(&format!("{router}x")),
        );
        let f = frame(
            [0x02, 0, 0, 0, 0, 0xbb],
            [0x02, 0, 0, 0, 0, 0xaa],
            &ETHERTYPE_TEST.to_be_bytes(),
            80,
        );
        let arrives = |sock: &RawSocket, want: &[u8], what: &str| {
            let deadline = Instant::now() + WAIT;
            let mut others = Vec::new();
            while let Some(got) = sock.recv(deadline.saturating_duration_since(Instant::now())) {
                if got == want {
                    return;
                }
                others.push(format!("{:02x?}", &got[..got.len().min(22)]));
            }
            panic!(
                "{what}: not delivered within {WAIT:?} (other frames: {others:?}); status: {}",
                super::status_json(&self.pins)
            );
        };
        n.send(&f);
        arrives(&r, &tagged(&f, 0x8100, vid), &format!("{nic} → {router}"));
        r.send(&tagged(&f, 0x8100, vid));
        arrives(&n, &f, &format!("{router} → {nic}"));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Best effort, also while unwinding: the namespaces and the mount
        // go anyway (fields drop after this).
        let _ = self.cli(&["detach", "--all"]);
    }
}

/// The program running on `iface` (XDP, or tc in the daemon's default
/// mode), as the kernel says.
pub fn prog_id(iface: &str) -> Option<u64> {
    super::xdp_running().get(iface).copied()
}

pub const ROUTER_MAC: &str = "02:01:00:00:00:01";

/// A MAC for a NIC, never under the router prefix. (A veth's random MAC
/// starts with `02:01:` once in 16,384: the daemon then rightly takes it for
/// a router interface.)
pub fn nic_mac() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        n >> 16 & 0xff,
        n >> 8 & 0xff,
        n & 0xff
    )
}
pub const ROUTER_MAC_2: &str = "02:01:00:00:00:02";
