//! What the VM lab proves, as the demo's checks (the VM tests assert each
//! one, the VM demo prints them): raw frames of every kind through each NIC
//! and back, counters that account for each of them, pings, UDP (plain and
//! through UDP GSO) and bulk TCP both ways between the outside hosts and the
//! router VM's VLAN hosts (full-size frames too), isolation, and what
//! `--mode auto` picks.

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use crate::demo::checks::{Check, PINGS, Receivers, UDP_PORT, summarize_ping};
use anyhow::Context as _;
use serde_json::Value;

use super::{EXT_ADDR, IN_NETNS, LAN_ADDR, NetVmLab, NicModel};
use crate::{
    packet::{ETHERTYPE_TEST, RawSocket, frame, parse_mac, tagged},
    traffic,
};

/// Datagrams per network and direction (the guests run under emulation).
pub const DATAGRAMS: u32 = 200;
/// How long frames may take through two emulated guests.
const ARRIVAL: Duration = Duration::from_millis(1500);
/// A MAC behind the router that is nobody's NIC.
const VM_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x99, 0x99];
/// The inner tag of "already tagged" frames.
const INNER_VID: u16 = 100;

pub(crate) fn check(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        passed,
        detail: detail.into(),
    }
}

/// Passes when `problems` is empty (the detail then says `fine`).
fn no_problems(name: String, problems: &[String], fine: &str) -> Check {
    let detail = if problems.is_empty() {
        fine.to_owned()
    } else {
        problems.join("; ")
    };
    check(name, problems.is_empty(), detail)
}

/// Mounts bpffs in the net-vm (once: read from /proc/mounts, the guest's
/// busybox has no `mountpoint`) and attaches the router NIC and every NIC
/// in `mode`; returns each NIC's VID, and what attach said about the mode
/// it chose (`--mode auto`'s reasons, warnings, caveats), one line each.
pub fn attach_all(lab: &mut NetVmLab, mode: &str) -> anyhow::Result<(Vec<u16>, Vec<String>)> {
    let mut script = format!(
        "set -e\ngrep -q ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf -o mode=0700 bpf /sys/fs/bpf\n\
         xdp-forwarder attach {} --role router --mode {mode}\n",
        lab.router_if
    );
    for n in &lab.networks {
        script.push_str(&format!(
            "xdp-forwarder attach {} --role physical --mode {mode}\n",
            n.guest_if
        ));
    }
    let out = lab.net_vm.sh(&script)?;
    let mut said: Vec<String> = Vec::new();
    for line in out.lines().map(str::trim) {
        let l = line.to_lowercase();
        let worth = ["auto", "warning", "caveat"].iter().any(|w| l.contains(w));
        if worth && !said.iter().any(|s| s == line) {
            said.push(line.to_owned());
        }
    }
    let ks: Vec<usize> = lab.networks.iter().map(|n| n.k).collect();
    let vids = ks
        .into_iter()
        .map(|k| lab.vid(k))
        .collect::<anyhow::Result<_>>()?;
    Ok((vids, said))
}

pub fn detach_all(lab: &mut NetVmLab) -> anyhow::Result<()> {
    lab.net_vm.sh("xdp-forwarder detach --all")?;
    Ok(())
}

/// (forwarded + dropped) frames of each port, by interface name.
fn frames_seen(status: &Value) -> Vec<(String, u64)> {
    status["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let c = &p["counters"];
            let n = c["forwarded_frames"].as_u64().unwrap_or(0)
                + c["dropped_total"].as_u64().unwrap_or(0);
            (p["name"].as_str().unwrap_or_default().to_owned(), n)
        })
        .collect()
}

fn delta(before: &[(String, u64)], after: &[(String, u64)], name: &str) -> u64 {
    let get = |v: &[(String, u64)]| v.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c);
    get(after).saturating_sub(get(before))
}

/// Raw frames into each NIC (to its own MAC, to a VM's MAC behind the
/// router, broadcast, already tagged) must reach the router NIC with one
/// more tag carrying the NIC's VID; tagged frames into the router NIC must
/// leave by that NIC without it (an inner tag kept), and nowhere else.
/// Then the counters must account for exactly those frames.
pub fn frames(lab: &mut NetVmLab, vids: &[u16], label: &str) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let before = frames_seen(&lab.status()?);
    let router = lab.router_socket()?;
    let outside: Vec<RawSocket> = lab.outside_sockets()?;
    let (mut into_nics, mut into_router) = (Vec::new(), 0u64);
    for (i, net) in lab.networks.iter().enumerate() {
        let vid = vids[i];
        let ext_mac = tap_mac(&net.ns, &net.tap)?;
        let nic_mac = parse_mac(&net.mac)?;
        let test_type = ETHERTYPE_TEST.to_be_bytes();
        let kinds: [(&str, [u8; 6], bool); 4] = [
            ("to the NIC's own MAC", nic_mac, false),
            ("to another MAC (a VM behind the router)", VM_MAC, false),
            ("broadcast", [0xff; 6], false),
            ("already tagged (VID 100)", VM_MAC, true),
        ];
        let mut sent = Vec::new();
        for (kind, (_, dst, inner)) in kinds.iter().enumerate() {
            for n in 0..PINGS as usize {
                // Payload byte 0 tells the frames apart.
                let mut rest = test_type.to_vec();
                rest.push((kind * 16 + n) as u8);
                let f = frame(*dst, ext_mac, &rest, 60 + 100 * n);
                let f = if *inner {
                    tagged(&f, 0x8100, INNER_VID)
                } else {
                    f
                };
                outside[i].send(&f)?;
                sent.push((kind, tagged(&f, 0x8100, vid)));
            }
        }
        into_nics.push((net.guest_if.clone(), sent.len() as u64));
        let got = router.drain_test_frames(ARRIVAL);
        for (kind, (name, _, _)) in kinds.iter().enumerate() {
            let want: Vec<&Vec<u8>> = sent
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, f)| f)
                .collect();
            let arrived = want.iter().filter(|f| got.contains(f)).count();
            let mut detail = format!("{arrived}/{} arrived tagged VID {vid}", want.len());
            // What came instead, by the frames' markers: e.g. a tag lost.
            let instead: Vec<String> = got
                .iter()
                .filter(|f| !want.contains(f))
                .filter_map(|f| tags_and_marker(f))
                .filter(|(_, marker)| usize::from(*marker) / 16 == kind)
                .map(|(vids, _)| format!("{vids:?}"))
                .collect();
            if !instead.is_empty() {
                detail.push_str(&format!(
                    "; {} arrived with other tags (VIDs, outer first): {}",
                    instead.len(),
                    instead.join(" ")
                ));
            }
            checks.push(check(
                format!("{label}: net {} → router, {name}", net.k),
                arrived == want.len(),
                detail,
            ));
        }
        // And back: untagged, then with an inner tag kept.
        let mut back = Vec::new();
        for n in 0..PINGS as usize {
            let mut rest = test_type.to_vec();
            rest.push(0x80 + n as u8);
            let f = frame(ext_mac, VM_MAC, &rest, 60 + 100 * n);
            back.push((false, f.clone()));
            back.push((true, tagged(&f, 0x8100, INNER_VID)));
        }
        for (_, f) in &back {
            router.send(&tagged(f, 0x8100, vid))?;
        }
        into_router += back.len() as u64;
        let got: Vec<Vec<Vec<u8>>> = outside
            .iter()
            .map(|s| s.drain_test_frames(ARRIVAL))
            .collect();
        for (inner, name) in [(false, "untagged"), (true, "inner tag kept")] {
            let want: Vec<&Vec<u8>> = back
                .iter()
                .filter(|(t, _)| *t == inner)
                .map(|(_, f)| f)
                .collect();
            let arrived = want.iter().filter(|f| got[i].contains(f)).count();
            checks.push(check(
                format!("{label}: router → net {}, {name}", net.k),
                arrived == want.len(),
                format!("{arrived}/{} arrived, outer tag removed", want.len()),
            ));
        }
        let stray: usize = got
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, g)| g.len())
            .sum();
        checks.push(check(
            format!("{label}: router → net {}, isolation", net.k),
            stray == 0,
            format!("{stray} frames reached another network"),
        ));
    }
    let after = frames_seen(&lab.status()?);
    let mut wrong = Vec::new();
    for (name, n) in into_nics
        .iter()
        .chain([(lab.router_if.clone(), into_router)].iter())
    {
        let d = delta(&before, &after, name);
        if d != *n {
            wrong.push(format!("{name}: {d} counted, {n} sent"));
        }
    }
    checks.push(no_problems(
        format!("{label}: counters"),
        &wrong,
        "every frame counted once, on the port it entered",
    ));
    Ok(checks)
}

/// The VIDs of a test frame's 802.1Q/802.1ad tags, outer first, and its
/// marker (the byte after [`ETHERTYPE_TEST`]).
fn tags_and_marker(f: &[u8]) -> Option<(Vec<u16>, u8)> {
    let mut at = 12;
    let mut vids = Vec::new();
    while matches!(f.get(at..at + 2), Some([0x81, 0x00] | [0x88, 0xa8])) {
        vids.push(u16::from_be_bytes([*f.get(at + 2)?, *f.get(at + 3)?]) & 0x0fff);
        at += 4;
    }
    (f.get(at..at + 2)? == ETHERTYPE_TEST.to_be_bytes()).then_some((vids, *f.get(at + 2)?))
}

/// The MAC of `tap` in `ns`.
fn tap_mac(ns: &crate::netns::Netns, tap: &str) -> anyhow::Result<[u8; 6]> {
    let out = ns.exec("cat", &[&format!("/sys/class/net/{tap}/address")])?;
    parse_mac(out.trim())
}

/// Pings between each outside host and its network's VLAN host in the
/// router VM, both ways, at `size` bytes of ICMP payload (1472: full
/// 1514-byte frames, 1518 with the tag on the trunk).
pub fn pings(lab: &mut NetVmLab, size: u32, label: &str) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let what = if size >= 1472 {
        "full-size ping"
    } else {
        "ping"
    };
    let s = size.to_string();
    for i in 0..lab.networks.len() {
        let k = lab.networks[i].k;
        let out = lab.networks[i].ns.exec(
            "ping",
            &[
                "-q", "-c", "3", "-i", "0.3", "-W", "3", "-s", &s, "-M", "do", LAN_ADDR,
            ],
        );
        let (passed, detail) = match out {
            Ok(out) => summarize_ping(&out),
            Err(e) => (false, e.to_string()),
        };
        checks.push(check(
            format!("{label}: {what} net {k} → VLAN host"),
            passed,
            detail,
        ));
        let (_, out) = lab.router.sh_status(
            &format!("{IN_NETNS}lan{k} ping -q -c 3 -W 3 -s {size} {EXT_ADDR}"),
            Duration::from_secs(30),
        )?;
        let (passed, detail) = summarize_ping(&out);
        checks.push(check(
            format!("{label}: {what} VLAN host → net {k}"),
            passed,
            detail,
        ));
    }
    Ok(checks)
}

/// How the UDP case sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Udp {
    /// [`DATAGRAMS`] datagrams, one `send` each.
    Plain,
    /// [`GSO_DATAGRAMS`] 1400-byte datagrams, written 64 KB at a time with
    /// `UDP_SEGMENT` (the stack, or a NIC, cuts them).
    Gso,
}

/// Datagrams per network and direction through UDP GSO: 8 sends of 64 KB.
pub const GSO_DATAGRAMS: u32 = 8 * traffic::GSO_SEGMENTS;

impl Udp {
    fn count(self) -> u32 {
        match self {
            Udp::Plain => DATAGRAMS,
            Udp::Gso => GSO_DATAGRAMS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Udp::Plain => "UDP",
            Udp::Gso => "UDP GSO",
        }
    }
}

/// UDP both ways per network (`how.count()` datagrams each), and that no
/// datagram of one network reaches another (every host has the same
/// address).
pub fn udp(lab: &mut NetVmLab, label: &str, how: Udp) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let nets = lab.networks.len();
    let (count, what) = (how.count(), how.name());
    let gso = if how == Udp::Gso { " --gso" } else { "" };
    // Outside → VLAN hosts: receivers in the router VM first; each writes
    // its counts to /tmp/udpK.out when done.
    let mut start = String::new();
    for k in 1..=nets {
        start.push_str(&format!(
            "rm -f /tmp/udp{k}.ready /tmp/udp{k}.out\n\
             {IN_NETNS}lan{k} xdp-forwarder-lab guest udp-recv --port {UDP_PORT} \
             --ready /tmp/udp{k}.ready --out /tmp/udp{k}.out >/dev/null 2>&1 &\n"
        ));
    }
    for k in 1..=nets {
        start.push_str(&format!(
            "while [ ! -e /tmp/udp{k}.ready ]; do sleep 0.1; done\n"
        ));
    }
    lab.router.sh(&start)?;
    std::thread::scope(|s| {
        for n in &lab.networks {
            s.spawn(move || {
                n.ns.within(|| match how {
                    Udp::Plain => traffic::send(LAN_ADDR, UDP_PORT, n.k, count),
                    Udp::Gso => traffic::send_gso(LAN_ADDR, UDP_PORT, n.k, count),
                })
            });
        }
    });
    let out = lab.router.sh_within(
        &(1..=nets)
            .map(|k| {
                format!(
                    "while [ ! -e /tmp/udp{k}.out ]; do sleep 0.2; done; echo \"lan{k} $(cat /tmp/udp{k}.out)\""
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Duration::from_secs(60),
    )?;
    // "lanK net 1: 200, net 2: 0" per network; a network without its line
    // counts as nothing received.
    let received: std::collections::BTreeMap<usize, _> = out
        .lines()
        .filter_map(|line| {
            let (lan, counts) = line.split_once(' ')?;
            let k = lan.strip_prefix("lan")?.parse::<usize>().ok()?;
            Some((k, traffic::parse_counts(counts)))
        })
        .collect();
    let mut leaked = Vec::new();
    for k in 1..=nets {
        let counts = received.get(&k).cloned().unwrap_or_default();
        let own = counts.get(&k).copied().unwrap_or(0);
        let mut detail = format!("{own}/{count} datagrams delivered");
        if own < count {
            // Where they went: the VLAN host's UDP counters (InCsumErrors...).
            let snmp = lab
                .router
                .sh(&format!("{IN_NETNS}lan{k} grep Udp: /proc/net/snmp"))
                .unwrap_or_default();
            detail.push_str(&format!("; router VM lan{k}: {}", snmp.replace('\n', " ")));
        }
        checks.push(check(
            format!("{label}: {what} net {k} → VLAN host"),
            own == count,
            detail,
        ));
        leaked.extend(
            counts
                .iter()
                .filter(|(from, n)| **from != k && **n > 0)
                .map(|(from, n)| format!("{n} of net {from} reached lan{k}")),
        );
    }
    checks.push(no_problems(
        format!("{label}: {what} isolation outside → VLAN hosts"),
        &leaked,
        "no datagram reached another network",
    ));
    // VLAN hosts → outside.
    let spec: Vec<(usize, String)> = lab
        .networks
        .iter()
        .map(|n| (n.k, n.ns.name.clone()))
        .collect();
    let receivers = Receivers::bind(&spec)?;
    let mut send = String::new();
    for k in 1..=nets {
        send.push_str(&format!(
            "{IN_NETNS}lan{k} xdp-forwarder-lab guest udp-send --to {EXT_ADDR} \
             --port {UDP_PORT} --net {k} --count {count}{gso} &\n"
        ));
    }
    send.push_str("wait\n");
    lab.router.sh_within(&send, Duration::from_secs(60))?;
    let mut leaked = Vec::new();
    for (k, from) in receivers.collect(nets) {
        checks.push(check(
            format!("{label}: {what} VLAN host → net {k}"),
            from[k] == count,
            format!("{}/{count} datagrams delivered", from[k]),
        ));
        leaked.extend(
            from.iter()
                .enumerate()
                .filter(|(j, n)| *j != k && **n > 0)
                .map(|(j, n)| format!("{n} of lan{j} reached net {k}")),
        );
    }
    checks.push(no_problems(
        format!("{label}: {what} isolation VLAN hosts → outside"),
        &leaked,
        "no datagram reached another network",
    ));
    Ok(checks)
}

/// Bytes of each TCP transfer: well under a second under emulation; a
/// stalled transfer (aggregates refused one by one, then retransmitted)
/// cannot finish it within [`TCP_WITHIN`].
pub const TCP_BYTES: u64 = 8 << 20;
/// How long one transfer may take, answer included: a healthy one takes
/// well under a second here (80-300 Mbit/s under TCG), a stalled one moves
/// about 2 Mbit/s (skb mode, Spectrum-like router NIC) and would need ~35 s.
pub const TCP_WITHIN: Duration = Duration::from_secs(10);
const TCP_PORT: u16 = 5201;

fn mbit_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 * 8.0 / took.as_secs_f64().max(1e-3) / 1e6
}

/// Every port's non-zero drop reasons, e.g. `eth2: redirect_failed 1449`:
/// where a failed transfer's segments went.
fn drops(lab: &mut NetVmLab) -> String {
    let Ok(status) = lab.status() else {
        return "no status".into();
    };
    let mut out = Vec::new();
    for p in status["ports"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("?");
        let reasons = p["counters"]["dropped"].as_object().into_iter().flatten();
        for (reason, n) in reasons.filter(|(_, n)| n.as_u64().unwrap_or(0) > 0) {
            out.push(format!("{name}: {reason} {n}"));
        }
    }
    if out.is_empty() {
        "the forwarder dropped nothing".into()
    } else {
        format!("forwarder drops: {}", out.join(", "))
    }
}

/// The check of one transfer: all [`TCP_BYTES`], in order, and its speed.
fn tcp_check(
    lab: &mut NetVmLab,
    name: String,
    got: Option<traffic::Received>,
    took: Duration,
    error: Option<String>,
) -> Check {
    let got = got.unwrap_or_default();
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    if got.complete(TCP_BYTES) {
        let detail = format!(
            "{:.1} MiB in {:.2} s: {:.1} Mbit/s, every byte in order",
            mib(TCP_BYTES),
            took.as_secs_f64(),
            mbit_per_s(TCP_BYTES, took)
        );
        return check(name, true, detail);
    }
    let mut detail = format!(
        "{} of {} bytes arrived in {:.1} s",
        got.bytes,
        TCP_BYTES,
        took.as_secs_f64()
    );
    if let Some(at) = got.first_bad {
        detail.push_str(&format!(", off the pattern from byte {at}"));
    }
    if !got.eof {
        detail.push_str(", no end of stream (stalled?)");
    }
    if let Some(e) = error {
        detail.push_str(&format!("; sender: {e}"));
    }
    detail.push_str(&format!("; {}", drops(lab)));
    check(name, false, detail)
}

/// Bulk TCP both ways per network, one transfer at a time: [`TCP_BYTES`]
/// from the outside host to its VLAN host in the router VM, then back. The
/// hosts keep every offload Linux gives them (TSO/GSO, checksum offload,
/// GRO), so the forwarder meets what real hosts send. Each byte is checked
/// against a pattern of its own per network and direction.
pub fn tcp(lab: &mut NetVmLab, label: &str) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let secs = TCP_WITHIN.as_secs();
    for i in 0..lab.networks.len() {
        let k = lab.networks[i].k;
        // Outside → VLAN host: the receiver in the router VM first.
        let seed = (k as u32) << 8 | 1;
        lab.router.sh(&format!(
            "rm -f /tmp/tcp{k}.ready /tmp/tcp{k}.out
\
             {IN_NETNS}lan{k} xdp-forwarder-lab guest tcp-recv --port {TCP_PORT} \
             --seed {seed} --seconds {secs} --ready /tmp/tcp{k}.ready --out /tmp/tcp{k}.out \
             >/dev/null 2>&1 &\n\
             while [ ! -e /tmp/tcp{k}.ready ]; do sleep 0.1; done"
        ))?;
        let deadline = Instant::now() + TCP_WITHIN;
        let sent = lab.networks[i].ns.within(|| {
            Ok(traffic::tcp_send(
                LAN_ADDR, TCP_PORT, TCP_BYTES, seed, deadline,
            ))
        })?;
        let got = match sent.reply {
            Some(r) => Some(r),
            // No answer: what the receiver wrote down when its time was up.
            None => lab
                .router
                .sh_within(
                    &format!(
                        "while [ ! -e /tmp/tcp{k}.out ]; do sleep 0.2; done; cat /tmp/tcp{k}.out"
                    ),
                    Duration::from_secs(15),
                )
                .ok()
                .and_then(|out| traffic::Received::parse(out.trim())),
        };
        checks.push(tcp_check(
            lab,
            format!("{label}: TCP net {k} → VLAN host"),
            got,
            sent.elapsed,
            sent.error,
        ));
        // VLAN host → outside: the receiver on the host.
        let seed = (k as u32) << 8 | 2;
        let listener = lab.networks[i].ns.within(|| {
            TcpListener::bind((EXT_ADDR, TCP_PORT)).context("cannot listen on the outside host")
        })?;
        let deadline = Instant::now() + TCP_WITHIN;
        let router = &mut lab.router;
        let (got, out) = std::thread::scope(|s| {
            let rx = s.spawn(|| {
                traffic::accept_within(&listener, deadline)
                    .map(|stream| traffic::tcp_receive(stream, seed, deadline))
            });
            let out = router.sh_within(
                &format!(
                    "{IN_NETNS}lan{k} xdp-forwarder-lab guest tcp-send --to {EXT_ADDR} \
                     --port {TCP_PORT} --bytes {TCP_BYTES} --seed {seed} --seconds {secs}"
                ),
                TCP_WITHIN + Duration::from_secs(15),
            );
            (
                rx.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                out,
            )
        });
        let (got, error) = match got {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        let error = error.or_else(|| {
            let out = out.unwrap_or_else(|e| format!("{e:#}"));
            out.lines()
                .find(|l| l.starts_with("error: "))
                .map(str::to_owned)
        });
        let took = Duration::from_millis(got.map_or(0, |r| r.millis));
        checks.push(tcp_check(
            lab,
            format!("{label}: TCP VLAN host → net {k}"),
            got,
            took,
            error,
        ));
    }
    Ok(checks)
}

/// `attach --mode auto` on a virtio-net NIC next to a native router
/// attached with an explicit `--mode` (never moved): native, the only mode
/// whose redirects the router's native program can return to the NIC, and
/// why not tc.
pub fn mode_auto(lab: &mut NetVmLab) -> anyhow::Result<Check> {
    let nic = lab.networks[0].guest_if.clone();
    let out = lab.net_vm.sh(&format!(
        "xdp-forwarder detach {nic} >/dev/null && xdp-forwarder attach {nic} --role physical --mode auto"
    ))?;
    let passed = out.contains("native mode")
        && out.contains(
            "--mode auto: native (the driver runs XDP natively), because tc mode would leave \
             a direction dead",
        );
    Ok(check(
        "--mode auto on virtio-net",
        passed,
        out.trim().to_owned(),
    ))
}

/// Which mode each port runs, as one check: every port (the router and
/// each network's NIC) must run `expect`; with `None` the check only
/// reports (what `auto` picked where the lab has no expectation). The
/// detail also carries what attach `said` and what `status` warns about,
/// with each mode's caveat.
pub fn ports_run(
    lab: &mut NetVmLab,
    label: &str,
    expect: Option<&str>,
    said: &[String],
) -> anyhow::Result<Check> {
    let status = lab.status()?;
    let ports = status["ports"].as_array().cloned().unwrap_or_default();
    let mut modes = Vec::new();
    for p in &ports {
        let s = |f: &str| p[f].as_str().unwrap_or("?").to_owned();
        let mut line = format!("{} {}", s("name"), s("mode"));
        if let Some(c) = p["caveat"].as_str() {
            line.push_str(&format!(" (caveat: {c})"));
        }
        for w in p["warnings"].as_array().into_iter().flatten() {
            line.push_str(&format!(" (warning: {})", w.as_str().unwrap_or("?")));
        }
        modes.push(line);
    }
    let name = match expect {
        Some(mode) => format!("{label}: every port runs {mode}"),
        None => format!("{label}: what every port runs"),
    };
    let passed = expect.is_none_or(|mode| {
        ports.len() == lab.networks.len() + 1 && ports.iter().all(|p| p["mode"] == mode)
    });
    let mut detail = modes.join(", ");
    if !said.is_empty() {
        detail.push_str(&format!("; attach said: {}", said.join(" | ")));
    }
    Ok(check(name, passed, detail))
}

/// `attach --mode native` on a router NIC made like Spectrum's (no
/// `CTRL_GUEST_OFFLOADS`) must fail with EOPNOTSUPP and leave nothing
/// attached. virtio-net refuses with it; its reason ("Can't set XDP while host is
/// implementing GRO_HW/CSUM") goes to netlink's extack only, which a BPF
/// link never sees.
pub fn native_refused_on_router(lab: &mut NetVmLab) -> anyhow::Result<Check> {
    let (code, out) = lab.net_vm.sh_status(
        &format!(
            "grep -q ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf -o mode=0700 bpf /sys/fs/bpf\n\
             xdp-forwarder attach {} --role router --mode native",
            lab.router_if
        ),
        Duration::from_secs(60),
    )?;
    let left = lab.status()?["ports"]
        .as_array()
        .map_or(0, std::vec::Vec::len);
    let said = out.lines().last().unwrap_or_default().trim().to_owned();
    Ok(check(
        format!(
            "{}, {}: --mode native on the router NIC is refused",
            lab.linux(),
            lab.router_nic
        ),
        // By errno: its text is the C library's ("Operation not supported"
        // in glibc, "Not supported" in musl).
        code != 0 && out.contains(&format!("(os error {})", libc::EOPNOTSUPP)) && left == 0,
        format!("attach exited {code}: {said}; ports left attached: {left}"),
    ))
}

/// [`frames`] through the lab's networks with every port attached in
/// `mode`, each of which must then run `expect` (what `--mode auto` picks).
/// On a NIC that strips tags into metadata (e1000e, `rx-vlan-offload` on)
/// the already-tagged frames are the ones at stake: their VID 100 must
/// reach the router inside the port's tag, and come back out.
pub fn frames_in_mode(lab: &mut NetVmLab, mode: &str, expect: &str) -> anyhow::Result<Vec<Check>> {
    frames_and_maybe_flows(lab, mode, expect, false)
}

/// [`frames_in_mode`], then [`flows_across_queues`] in the same attachment.
pub fn frames_and_flows_in_mode(
    lab: &mut NetVmLab,
    mode: &str,
    expect: &str,
) -> anyhow::Result<Vec<Check>> {
    frames_and_maybe_flows(lab, mode, expect, true)
}

fn frames_and_maybe_flows(
    lab: &mut NetVmLab,
    mode: &str,
    expect: &str,
    flows: bool,
) -> anyhow::Result<Vec<Check>> {
    let mut models: Vec<String> = lab.networks.iter().map(|n| n.model.to_string()).collect();
    models.dedup();
    let label = format!("{}, {mode}, {}", lab.linux(), models.join("+"));
    let (vids, said) = attach_all(lab, mode)?;
    // attach brought the NICs up; an e1000e takes a moment to get its
    // carrier, and transmits nothing without it.
    let ifs = lab.port_names();
    let wait = format!(
        "for i in $(seq 100); do\n\
         down=0\n\
         for f in {}; do [ \"$(cat /sys/class/net/$f/operstate)\" = up ] || down=1; done\n\
         [ $down = 0 ] && exit 0\n\
         sleep 0.1\n\
         done\n\
         exit 1",
        ifs.join(" ")
    );
    lab.net_vm
        .sh_within(&wait, Duration::from_secs(60))
        .context("the NICs did not get their carrier within 10 s")?;
    let mut checks = vec![ports_run(lab, &label, Some(expect), &said)?];
    // What makes the case worth running: a NIC that strips tags (an
    // e1000e with rx-vlan-offload on, as hardware has it) while the
    // frames cross. tc leaves stripping on; the XDP modes switch it off.
    let nics: Vec<(String, NicModel)> = lab
        .networks
        .iter()
        .map(|n| (n.guest_if.clone(), n.model))
        .collect();
    for (guest_if, model) in nics {
        let found: Value = serde_json::from_str(
            &lab.net_vm
                .sh(&format!("xdp-forwarder inspect {guest_if} --json"))?,
        )?;
        let stripping = found["features"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == "rx-vlan-hw-parse")
            .map(|f| f["on"] == true);
        if model.strips_tags() && expect == "tc" {
            checks.push(check(
                format!("{label}: {guest_if} ({model}) strips tags into its descriptors meanwhile"),
                stripping == Some(true),
                format!("rx-vlan-hw-parse on: {stripping:?}"),
            ));
        } else if model.strips_tags() {
            checks.push(check(
                format!("{label}: {guest_if} ({model}) stopped stripping tags for XDP"),
                stripping == Some(false),
                format!("rx-vlan-hw-parse on: {stripping:?}"),
            ));
        }
    }
    checks.extend(frames(lab, &vids, &label)?);
    if flows {
        checks.extend(flows_across_queues(lab, &vids, &label)?);
    }
    if mode != "tc" && expect != "tc" {
        checks.extend(stripping_on_again(lab, &vids, mode, &label)?);
    }
    detach_all(lab)?;
    Ok(checks)
}

/// The control of what attach does for XDP on a NIC that strips tags:
/// switched on again behind the forwarder's back, `rx-vlan-hw-parse` makes
/// an outside tag vanish before the program runs (the frame reaches the
/// router with our tag alone), `status` warns about it, and `attach` again
/// switches it off.
fn stripping_on_again(
    lab: &mut NetVmLab,
    vids: &[u16],
    mode: &str,
    label: &str,
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let router = lab.router_socket()?;
    let strippers: Vec<(usize, String, String)> = lab
        .networks
        .iter()
        .enumerate()
        .filter(|(_, n)| n.model.strips_tags())
        .map(|(i, n)| (i, n.guest_if.clone(), n.tap.clone()))
        .collect();
    for (i, guest_if, tap) in strippers {
        let vid = vids[i];
        lab.net_vm.sh(&format!(
            "xdp-forwarder-lab guest set-feature {guest_if} rx-vlan-hw-parse on"
        ))?;
        let warned = port_warnings(&lab.status()?, &guest_if)
            .iter()
            .any(|w| w.starts_with("rx-vlan-hw-parse is on"));
        checks.push(check(
            format!("{label}: {guest_if}: status warns when rx-vlan-hw-parse is on again"),
            warned,
            port_warnings(&lab.status()?, &guest_if).join("; "),
        ));
        let net = &lab.networks[i];
        let outside = net.ns.within(|| RawSocket::bind(&tap))?;
        let ext_mac = tap_mac(&net.ns, &tap)?;
        let mut lost = Vec::new();
        for n in 0..PINGS as usize {
            let mut rest = ETHERTYPE_TEST.to_be_bytes().to_vec();
            rest.push(0x70 + n as u8);
            let f = frame(VM_MAC, ext_mac, &rest, 60 + 100 * n);
            outside.send(&tagged(&f, 0x8100, INNER_VID))?;
            lost.push(tagged(&f, 0x8100, vid));
        }
        let got = router.drain_test_frames(ARRIVAL);
        let n = lost.iter().filter(|f| got.contains(f)).count();
        checks.push(check(
            format!(
                "{label}: {guest_if}: with rx-vlan-hw-parse on again, {mode} loses the outside tag (the control)"
            ),
            n == lost.len(),
            format!("{n}/{} arrived with VID {vid} alone", lost.len()),
        ));
        lab.net_vm.sh(&format!(
            "xdp-forwarder attach {guest_if} --role physical --mode {mode} >/dev/null"
        ))?;
        let left = port_warnings(&lab.status()?, &guest_if);
        checks.push(check(
            format!("{label}: {guest_if}: attach again switches rx-vlan-hw-parse off"),
            !left.iter().any(|w| w.starts_with("rx-vlan-hw-parse")),
            if left.is_empty() {
                "no warning left".to_owned()
            } else {
                left.join("; ")
            },
        ));
    }
    Ok(checks)
}

/// The warnings `status --json` gives the port on `name`.
fn port_warnings(status: &Value, name: &str) -> Vec<String> {
    status["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .flat_map(|p| p["warnings"].as_array().cloned().unwrap_or_default())
        .filter_map(|w| w.as_str().map(str::to_owned))
        .collect()
}

/// Flows of [`FLOW_FRAMES`] IPv4 frames per direction (different source
/// MACs, addresses and ports, so that RSS and the tap's queue selection
/// spread them) into each NIC and back from the router NIC: each must
/// arrive exactly once where it belongs, the NICs must have received them
/// on more than one queue (their `rx_queue_N_packets` statistics: a
/// multi-queue NIC in the lab's networks, a multi-queue router NIC), and
/// the forwarder's counters must count each once.
pub fn flows_across_queues(
    lab: &mut NetVmLab,
    vids: &[u16],
    label: &str,
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let router = lab.router_socket()?;
    let outside: Vec<RawSocket> = lab.outside_sockets()?;
    // Frames for the router NIC enter the trunk bridge, as the router VM's
    // do, through a veth of their own: the router tap then picks a queue
    // by each flow's hash. (Sent on the tap itself by a packet socket, a
    // tagged frame's flow hash misses its addresses, and every frame takes
    // queue 0.)
    let (port, peer) = (format!("{}q", lab.prefix), format!("{}Q", lab.prefix));
    if lab.trunk.ip(&["link", "show", &port]).is_err() {
        lab.trunk
            .ip(&["link", "add", &port, "type", "veth", "peer", "name", &peer])?;
        lab.trunk
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        lab.trunk.ip(&["link", "set", &peer, "up"])?;
    }
    let bridged = lab
        .trunk
        .within(|| RawSocket::bind(&peer))
        .context("the trunk bridge's sending veth")?;
    let networks: Vec<(usize, String)> = lab
        .networks
        .iter()
        .map(|n| (n.k, n.guest_if.clone()))
        .collect();
    for (i, (k, guest_if)) in networks.into_iter().enumerate() {
        let vid = vids[i];
        let ifs = [guest_if.clone(), lab.router_if.clone()];
        // Into the NIC, out of the router NIC.
        let before = (queue_counts(lab, &ifs)?, frames_seen(&lab.status()?));
        let out: Vec<Vec<u8>> = (0..FLOW_FRAMES)
            .map(|n| flow_frame(VM_MAC, flow_mac(n), n, 0))
            .collect();
        send_paced(&outside[i], &out)?;
        let got = router.drain(ARRIVAL);
        let want: Vec<Vec<u8>> = out.iter().map(|f| tagged(f, 0x8100, vid)).collect();
        checks.push(exactly_once(
            format!("{label}: {FLOW_FRAMES} frames of {FLOWS} flows, net {k} → router"),
            &want,
            &got,
        ));
        // And back: into the router NIC, out of the NIC.
        let middle = (queue_counts(lab, &ifs)?, frames_seen(&lab.status()?));
        let back: Vec<Vec<u8>> = (0..FLOW_FRAMES)
            .map(|n| flow_frame(flow_mac(n), VM_MAC, n, 1))
            .collect();
        let tagged_back: Vec<Vec<u8>> = back.iter().map(|f| tagged(f, 0x8100, vid)).collect();
        send_paced(&bridged, &tagged_back)?;
        let got = outside[i].drain(ARRIVAL);
        checks.push(exactly_once(
            format!("{label}: {FLOW_FRAMES} frames of {FLOWS} flows, router → net {k}"),
            &back,
            &got,
        ));
        let after = (queue_counts(lab, &ifs)?, frames_seen(&lab.status()?));
        for (name, from, to) in [
            (&guest_if, &before, &middle),
            (&lab.router_if, &middle, &after),
        ] {
            let (spread, counted) = queue_delta(&from.0, &to.0, name);
            let used = spread.iter().filter(|(_, n)| *n > 0).count();
            let total: u64 = spread.iter().map(|(_, n)| n).sum();
            // Frames: each one on some queue; interrupts: fewer than frames.
            let all = counted != "frames" || total >= u64::from(FLOW_FRAMES);
            checks.push(check(
                format!("{label}: {name} received the flows on more than one queue"),
                used > 1 && all,
                format!(
                    "{counted} per rx queue: {}",
                    spread
                        .iter()
                        .map(|(q, n)| format!("{q}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            let counted = delta(&from.1, &to.1, name);
            checks.push(check(
                format!("{label}: {name} counted each flow frame once"),
                counted == u64::from(FLOW_FRAMES),
                format!("{counted} counted, {FLOW_FRAMES} sent"),
            ));
        }
    }
    Ok(checks)
}

/// Flows per direction in [`flows_across_queues`], and frames in all.
const FLOWS: u32 = 64;
const FLOW_FRAMES: u32 = 4 * FLOWS;
/// Marks the flow frames' UDP payload.
const FLOW_MAGIC: &[u8; 4] = b"XFDQ";

/// A source MAC per flow (outside) or destination MAC (back).
fn flow_mac(n: u32) -> [u8; 6] {
    [0x02, 0x00, 0x00, 0x01, 0x00, (n % FLOWS) as u8]
}

/// Frame `n` of the flows: IPv4/UDP from 10.98.0.F:(10000+F) to
/// 10.97.0.1:9 (back: 10.96.0.F to 10.95.0.1; nobody's addresses), F = n
/// mod [`FLOWS`]; the payload holds [`FLOW_MAGIC`], the direction and `n`.
fn flow_frame(dst: [u8; 6], src: [u8; 6], n: u32, direction: u8) -> Vec<u8> {
    let flow = (n % FLOWS) as u8;
    // Other addresses each way: a multi-queue tap sends a flow the guest
    // transmitted back on the queue it came from (its flow table), which
    // would spread the way back only as much as the guest spread the way
    // out.
    let (from, to) = if direction == 0 { (98, 97) } else { (96, 95) };
    let mut payload = FLOW_MAGIC.to_vec();
    payload.push(direction);
    payload.extend_from_slice(&n.to_be_bytes());
    payload.resize(32, 0);
    let udp_len = 8 + payload.len() as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    ip[4..6].copy_from_slice(&(n as u16).to_be_bytes());
    ip.extend_from_slice(&[10, from, 0, flow]);
    ip.extend_from_slice(&[10, to, 0, 1]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&(10000 + u16::from(flow)).to_be_bytes());
    ip.extend_from_slice(&9u16.to_be_bytes());
    ip.extend_from_slice(&udp_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0]); // no UDP checksum (IPv4 allows it)
    ip.extend_from_slice(&payload);
    let mut rest = 0x0800u16.to_be_bytes().to_vec();
    rest.extend_from_slice(&ip);
    frame(dst, src, &rest, 14 + rest.len() - 2)
}

/// Sends `frames` in bursts of 16, a pause between: the emulated NICs'
/// rings hold a few hundred frames, and a guest under emulation empties
/// them slowly.
fn send_paced(socket: &RawSocket, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    for burst in frames.chunks(16) {
        for f in burst {
            socket.send(f)?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Passes when every frame of `want` is in `got` exactly once and `got`
/// holds no other flow frame.
fn exactly_once(name: String, want: &[Vec<u8>], got: &[Vec<u8>]) -> Check {
    let ours: Vec<&Vec<u8>> = got
        .iter()
        .filter(|f| f.windows(FLOW_MAGIC.len()).any(|w| w == FLOW_MAGIC))
        .collect();
    let times = |f: &Vec<u8>| ours.iter().filter(|g| **g == f).count();
    let once = want.iter().filter(|f| times(f) == 1).count();
    let missing = want.iter().filter(|f| times(f) == 0).count();
    let repeated = want.iter().filter(|f| times(f) > 1).count();
    let other = ours.iter().filter(|g| !want.contains(g)).count();
    check(
        name,
        once == want.len() && other == 0,
        format!(
            "{once}/{} arrived exactly once; {missing} missing, {repeated} more than once, \
             {other} changed or unknown",
            want.len()
        ),
    )
}

/// What each interface's receive queues took (queue, count), by name, and
/// whether the counts are frames or interrupts.
type QueueCounts = Vec<(String, Vec<(u32, u64)>, String)>;

/// Each interface's per-queue receive counters, read in the net-vm.
fn queue_counts(lab: &mut NetVmLab, ifs: &[String]) -> anyhow::Result<QueueCounts> {
    ifs.iter()
        .map(|i| {
            let out = lab
                .net_vm
                .sh(&format!("xdp-forwarder-lab guest rx-queues {i}"))?;
            let mut lines = out.lines().filter(|l| !l.trim().is_empty());
            let counted = lines.next().unwrap_or_default().trim().to_owned();
            let queues = lines
                .filter_map(|l| {
                    let (q, n) = l.split_once(' ')?;
                    Some((q.parse().ok()?, n.trim().parse().ok()?))
                })
                .collect();
            Ok((i.clone(), queues, counted))
        })
        .collect()
}

fn queue_delta(before: &QueueCounts, after: &QueueCounts, name: &str) -> (Vec<(u32, u64)>, String) {
    let of = |v: &QueueCounts| {
        v.iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, q, c)| (q.clone(), c.clone()))
            .unwrap_or_default()
    };
    let (before, _) = of(before);
    let (after, counted) = of(after);
    let delta = after
        .into_iter()
        .map(|(q, n)| {
            let was = before.iter().find(|(b, _)| *b == q).map_or(0, |(_, c)| *c);
            (q, n.saturating_sub(was))
        })
        .collect();
    (delta, counted)
}

/// Everything above in one attach mode, in which every port must then run
/// `expect` (`None`: whatever it is): attach, frames and counters, pings,
/// full-size pings, UDP, UDP GSO, TCP; detach.
pub fn all_in_mode(
    lab: &mut NetVmLab,
    mode: &str,
    expect: Option<&str>,
) -> anyhow::Result<Vec<Check>> {
    let mut label = format!("{}, {mode}", lab.linux());
    if lab.router_nic != super::RouterNic::QemuDefault {
        label.push_str(&format!(", {}", lab.router_nic));
    }
    let (vids, said) = attach_all(lab, mode)?;
    let mut checks = vec![ports_run(lab, &label, expect, &said)?];
    checks.extend(frames(lab, &vids, &label)?);
    lab.configure_router_vlans(&vids)?;
    checks.extend(pings(lab, 56, &label)?);
    checks.extend(pings(lab, 1472, &label)?);
    checks.extend(udp(lab, &label, Udp::Plain)?);
    checks.extend(udp(lab, &label, Udp::Gso)?);
    checks.extend(tcp(lab, &label)?);
    if mode == "native" {
        checks.push(mode_auto(lab)?);
    }
    detach_all(lab)?;
    Ok(checks)
}

/// Linux 6.1 reports no netdev xdp-features, so `attach` cannot tell that
/// a native router's redirects will not reach a NIC in skb mode: it takes
/// explicit modes with a caveat. virtio-net then refuses the router's
/// frames when the devmap queue is flushed (ENXIO), after the program
/// returned: the `xdp_devmap_xmit` counter must show each as the router
/// port's `redirect_failed`, none as forwarded.
pub fn refused_redirects_counted(lab: &mut NetVmLab) -> anyhow::Result<Vec<Check>> {
    let label = format!("{}, router native + NIC skb", lab.linux());
    let (router_if, nic) = (lab.router_if.clone(), lab.networks[0].guest_if.clone());
    let attached = lab.net_vm.sh(&format!(
        "xdp-forwarder attach {router_if} --role router --mode native 2>&1 && \
         xdp-forwarder attach {nic} --role physical --mode skb 2>&1"
    ))?;
    let vid = lab.vid(lab.networks[0].k)?;
    let port = |status: &Value, key: &str| -> u64 {
        status["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == router_if.as_str())
            .map_or(0, |p| match key {
                "forwarded" => p["counters"]["forwarded_frames"].as_u64().unwrap_or(0),
                _ => p["counters"]["dropped"]["redirect_failed"]
                    .as_u64()
                    .unwrap_or(0),
            })
    };
    let before = lab.status()?;
    let router = lab.router_socket()?;
    let net = &lab.networks[0];
    let outside = net.ns.within(|| RawSocket::bind(&net.tap))?;
    let ext_mac = tap_mac(&net.ns, &net.tap)?;
    let sent = 5u64;
    for n in 0..sent {
        let mut rest = ETHERTYPE_TEST.to_be_bytes().to_vec();
        rest.push(0xf0 + n as u8);
        router.send(&tagged(&frame(ext_mac, VM_MAC, &rest, 100), 0x8100, vid))?;
    }
    let arrived = outside.drain_test_frames(ARRIVAL).len();
    let after = lab.status()?;
    let refused = port(&after, "refused") - port(&before, "refused");
    let forwarded = port(&after, "forwarded") - port(&before, "forwarded");
    detach_all(lab)?;
    Ok(vec![
        check(
            format!("{label}: attach says what may break"),
            attached.contains("warning:"),
            attached.trim().to_owned(),
        ),
        check(
            format!("{label}: router → NIC refused by the driver, counted"),
            arrived == 0 && refused == sent && forwarded == 0,
            format!(
                "{sent} sent, {arrived} arrived; router port: redirect_failed +{refused}, \
                 forwarded +{forwarded}"
            ),
        ),
    ])
}

/// The router NIC's own cases, for a router NIC made otherwise than QEMU's
/// default ([`super::RouterNic`]): attach in `mode` (every port must then
/// run `expect`, if given), raw frames both ways and counters, bulk TCP
/// both ways; detach.
pub fn frames_and_tcp_in_mode(
    lab: &mut NetVmLab,
    mode: &str,
    expect: Option<&str>,
) -> anyhow::Result<Vec<Check>> {
    let label = format!("{}, {mode}, {}", lab.linux(), lab.router_nic);
    let (vids, said) = attach_all(lab, mode)?;
    let mut checks = vec![ports_run(lab, &label, expect, &said)?];
    checks.extend(frames(lab, &vids, &label)?);
    lab.configure_router_vlans(&vids)?;
    checks.extend(tcp(lab, &label)?);
    detach_all(lab)?;
    Ok(checks)
}
