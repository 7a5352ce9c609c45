//! UDP traffic the guests' hosts send and count (`xdp-forwarder-lab guest
//! udp-send | udp-recv`), in the demo's datagram format: each datagram says
//! which network sent it, so a receiver proves isolation too.

use std::{
    collections::BTreeMap,
    net::UdpSocket,
    time::{Duration, Instant},
};

use crate::demo::checks::{datagram, parse_datagram};
use anyhow::Context as _;

/// Sends `count` datagrams of network `net` to `to`, paced so that no queue
/// on the way overflows (the guests run under emulation).
pub fn send(to: &str, port: u16, net: usize, count: u32) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", 0)).context("UDP socket")?;
    for i in 0..count {
        sock.send_to(datagram(net, i).as_bytes(), (to, port))
            .with_context(|| format!("send to {to}:{port}"))?;
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// Receives until `quiet` passes without a datagram once some arrived, or
/// `total` is over; returns datagrams per sending network.
pub fn receive(sock: &UdpSocket, quiet: Duration, total: Duration) -> BTreeMap<usize, u32> {
    let mut from = BTreeMap::new();
    let mut buf = [0u8; 64];
    let end = Instant::now() + total;
    let mut last = None;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if last.is_some_and(|t: Instant| t.elapsed() > quiet) {
            break;
        }
        let _ = sock.set_read_timeout(Some(left.min(Duration::from_millis(100))));
        if let Ok(n) = sock.recv(&mut buf) {
            if let Some(k) = parse_datagram(&buf[..n]) {
                *from.entry(k).or_default() += 1;
            }
            last = Some(Instant::now());
        }
    }
    from
}

/// "net 1: 300, net 2: 0" as one line: `udp-recv`'s output.
pub fn format_counts(from: &BTreeMap<usize, u32>) -> String {
    from.iter()
        .map(|(k, n)| format!("net {k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads [`format_counts`] back.
pub fn parse_counts(line: &str) -> BTreeMap<usize, u32> {
    line.split(", ")
        .filter_map(|part| {
            let (k, n) = part.trim().strip_prefix("net ")?.split_once(": ")?;
            Some((k.parse().ok()?, n.trim().parse().ok()?))
        })
        .collect()
}
