//! IP traffic between the outside hosts and the router VM's VLAN hosts:
//! pings (full-size frames too), UDP plain and through UDP GSO, and bulk
//! TCP both ways, every byte checked.

use super::*;

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
pub(super) const TCP_PORT: u16 = 5201;

pub(super) fn mbit_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 * 8.0 / took.as_secs_f64().max(1e-3) / 1e6
}

/// Every port's non-zero drop reasons, e.g. `eth2: redirect_failed 1449`:
/// where a failed transfer's segments went.
pub(super) fn drops(lab: &mut NetVmLab) -> String {
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
pub(super) fn tcp_check(
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
