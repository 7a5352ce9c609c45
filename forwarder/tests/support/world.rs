//! The net-vm of a daemon test: the test thread's namespace holds the
//! forwarder's side of each veth; their peers live outside, in a named
//! namespace, where frames are injected and captured.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{
    Bpffs, cli_ok,
    daemon::WAIT,
    netns::NamedNetns,
    packet::{ETHERTYPE_TEST, RawSocket, frame, tagged},
    run,
};

/// The net-vm side of one test: pins, the outside namespace, helpers.
pub struct World {
    pub pins: Bpffs,
    pub outside: NamedNetns,
}

impl World {
    pub fn new(tag: &str) -> Self {
        Self {
            pins: Bpffs::mount(tag),
            outside: NamedNetns::add(tag),
        }
    }

    /// A veth `name` here (with `mac`, else a NIC's), its peer `{name}x`
    /// outside, GRO on there.
    pub fn plug(&self, name: &str, mac: Option<&str>) {
        let peer = format!("{name}x");
        let nic = nic_mac();
        run(
            "ip",
            &self
                .outside
                .veth_args(name, &peer, Some(mac.unwrap_or(&nic))),
        );
        self.outside.ip(&["link", "set", &peer, "up"]);
        self.outside.exec("ethtool", &["-K", &peer, "gro", "on"]);
    }

    /// A veth `name` here, its peer outside and down: enough for the daemon.
    pub fn plug_bare(&self, name: &str) {
        let peer = format!("{name}x");
        run("ip", &self.outside.veth_args(name, &peer, Some(&nic_mac())));
    }

    pub fn unplug(&self, name: &str) {
        run("ip", &["link", "del", name]);
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&cli_ok(&["status", "--json", "--pin-dir", self.pins.arg()])).unwrap()
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
