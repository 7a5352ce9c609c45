//! What the demo proves: pings both ways, a UDP burst each way, and that no
//! datagram of one network shows up in another (TCP: [`super::tcp`]).

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::topology::{EXT_ADDR, LAN_ADDR};
use crate::{cmd, netns};

/// One check's outcome, as the report prints it.
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    /// One line of the report, the name padded to `width`.
    pub fn print(&self, width: usize) {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        println!("  {verdict}  {:<width$} {}", self.name, self.detail);
    }
}

/// Prints the report's closing line; `true` when every check passed.
pub fn print_result(checks: &[Check]) -> bool {
    let passed = checks.iter().filter(|c| c.passed).count();
    let ok = passed == checks.len();
    println!(
        "\nresult: {} ({passed}/{} checks passed)",
        if ok { "PASS" } else { "FAIL" },
        checks.len()
    );
    ok
}

/// What a test's checks came to: each printed as it was judged, the
/// failures kept for [`Verdict::assert`], which the caller runs once its
/// guests and namespaces are gone (a failure still cleans up first).
pub struct Verdict {
    ran: usize,
    failed: Vec<String>,
}

impl Verdict {
    /// Prints every check (`PASS|FAIL name: detail`).
    pub fn print(checks: &[Check]) -> Self {
        for c in checks {
            let verdict = if c.passed { "PASS" } else { "FAIL" };
            println!("{verdict} {}: {}", c.name, c.detail);
        }
        Self {
            ran: checks.len(),
            failed: checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("FAIL {}: {}", c.name, c.detail))
                .collect(),
        }
    }

    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }

    /// Panics, naming `label` and every failed check, unless at least one
    /// check ran and none failed.
    pub fn assert(self, label: &str) {
        assert!(self.ran > 0, "{label}: no check ran");
        assert!(self.passed(), "{label}:\n{}", self.failed.join("\n"));
    }
}

pub const PINGS: u32 = 3;
pub const UDP_PORT: u16 = 7777;
pub const DATAGRAMS: u32 = 1000;

/// `ping` from namespace `from` to `to`: every echo answered exactly once.
pub fn ping(from: &str, to: &str, name: String) -> Check {
    let count = PINGS.to_string();
    let result = netns::exec(
        from,
        "ping",
        &["-q", "-c", &count, "-i", "0.2", "-W", "2", to],
    );
    let (passed, detail) = match result {
        Ok(out) => summarize_ping(&out),
        // ping exits non-zero when replies are missing: report what it said.
        Err(e) => (false, e.to_string()),
    };
    Check {
        name,
        passed,
        detail,
    }
}

/// Reads ping's summary, iputils' ("3 packets transmitted, 3 received, +1
/// duplicates, ...", "rtt min/avg/max/mdev = 0.040/0.052/0.070/0.012 ms")
/// or busybox's ("3 packets received", "round-trip min/avg/max = ...").
pub fn summarize_ping(out: &str) -> (bool, String) {
    let received = out
        .split(", ")
        .find_map(|part| part.strip_suffix(" received"))
        .map(|n| n.trim_end_matches(" packets"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let duplicates = out.contains("duplicates");
    let rtt = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("rtt min/avg/max/mdev = ")
                .or_else(|| l.strip_prefix("round-trip min/avg/max = "))
        })
        .and_then(|v| v.split('/').nth(1))
        .map(|avg| format!(", rtt avg {avg} ms"))
        .unwrap_or_default();
    let passed = received == PINGS && !duplicates;
    let dup = if duplicates {
        ", DUPLICATE replies: another network answered"
    } else {
        ""
    };
    (passed, format!("{received}/{PINGS} replies{rtt}{dup}"))
}

/// A UDP receiver bound in every namespace of `side`, collecting what arrives.
pub struct Receivers {
    sockets: Vec<(usize, UdpSocket)>,
}

impl Receivers {
    pub fn bind(namespaces: &[(usize, String)]) -> anyhow::Result<Self> {
        let mut sockets = Vec::new();
        for (k, ns) in namespaces {
            let sock = netns::within(ns, || {
                let s = UdpSocket::bind(("0.0.0.0", UDP_PORT))
                    .with_context(|| format!("cannot bind UDP {UDP_PORT} in {ns}"))?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                grow_receive_buffer(&s)?;
                Ok(s)
            })?;
            sockets.push((*k, sock));
        }
        Ok(Self { sockets })
    }

    /// For each receiving network: (network, datagrams per sending network).
    pub fn collect(&self, networks: usize) -> Vec<(usize, Vec<u32>)> {
        self.sockets
            .iter()
            .map(|(k, sock)| {
                let mut from = vec![0u32; networks + 1];
                let mut buf = [0u8; 64];
                let deadline = Instant::now() + Duration::from_secs(3);
                while Instant::now() < deadline {
                    match sock.recv(&mut buf) {
                        Ok(n) => {
                            if let Some(sender) = parse_datagram(&buf[..n])
                                && sender < from.len()
                            {
                                from[sender] += 1;
                            }
                        }
                        Err(_) => break, // quiet for 200 ms: done
                    }
                }
                (*k, from)
            })
            .collect()
    }
}

/// Room for a whole burst: the receivers are read only after every burst.
fn grow_receive_buffer(sock: &UdpSocket) -> anyhow::Result<()> {
    crate::packet::rcvbuf_force(sock, 16 << 20)
}

/// Datagram `i` of network `k`: they say which network sent them.
pub fn datagram(k: usize, i: u32) -> String {
    format!("xfd net {k} seq {i}")
}

/// The sending network of a [`datagram`].
pub fn parse_datagram(d: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(d).ok()?;
    s.strip_prefix("xfd net ")?.split(' ').next()?.parse().ok()
}

/// Sends [`DATAGRAMS`] from namespace `ns` (network `k`) to `to`, paced so
/// that no queue on the way overflows.
pub fn burst(ns: &str, k: usize, to: &str) -> anyhow::Result<()> {
    netns::within(ns, || {
        let sock = UdpSocket::bind(("0.0.0.0", 0)).context("UDP socket")?;
        for i in 0..DATAGRAMS {
            let msg = datagram(k, i);
            sock.send_to(msg.as_bytes(), (to, UDP_PORT))
                .with_context(|| format!("send to {to} from {ns}"))?;
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    })
}

/// The checks of one direction's burst: delivery per network, and isolation.
pub fn judge(direction: &str, got: &[(usize, Vec<u32>)]) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut crossed = 0;
    for (k, from) in got {
        let own = from[*k];
        crossed += from
            .iter()
            .enumerate()
            .filter(|(j, _)| j != k)
            .map(|(_, n)| n)
            .sum::<u32>();
        checks.push(Check {
            name: format!("udp {direction} net {k}"),
            passed: own == DATAGRAMS,
            detail: format!("{own}/{DATAGRAMS} datagrams delivered"),
        });
    }
    checks.push(Check {
        name: format!("isolation {direction}"),
        passed: crossed == 0,
        detail: if crossed == 0 {
            "no datagram reached another network (same addresses everywhere)".to_owned()
        } else {
            format!("{crossed} datagrams reached the wrong network")
        },
    });
    checks
}

/// The addresses a burst goes to, per direction.
pub const TO_LAN: &str = LAN_ADDR;
pub const TO_EXT: &str = EXT_ADDR;

/// Fails unless the tools are there (`cargo xtask setup` installs them).
pub fn require_tools() -> anyhow::Result<()> {
    for tool in ["ping", "ethtool", "iperf3", "ss"] {
        if cmd::run("sh", &["-c", &format!("command -v {tool}")]).is_err() {
            bail!("the demo needs `{tool}`: install it (`cargo xtask setup` does)");
        }
    }
    Ok(())
}
