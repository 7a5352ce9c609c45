//! Traffic the guests' hosts and the outside hosts send and check
//! (`xdp-forwarder-lab guest udp-send | udp-recv | tcp-send | tcp-recv`).
//! UDP in the demo's datagram format: each datagram says which network sent
//! it, so a receiver proves isolation too; optionally sent through UDP GSO.
//! TCP: one bulk transfer of a known pattern, every byte checked.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs as _, UdpSocket},
    os::fd::AsRawFd as _,
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

/// Datagrams per UDP GSO send: 46 × 1400 bytes, a 64 KB send (the most
/// one datagram of IPv4 holds).
pub const GSO_SEGMENTS: u32 = 46;
/// The size of each datagram a GSO send is cut into.
pub const GSO_SEGMENT: usize = 1400;
/// `UDP_SEGMENT` (linux/udp.h; not in the libc crate for every target).
const UDP_SEGMENT: libc::c_int = 103;

/// [`send`] through UDP GSO: `count` datagrams of network `net`, written
/// [`GSO_SEGMENTS`] at a time as one buffer that the kernel (or the NIC)
/// cuts into [`GSO_SEGMENT`]-byte datagrams, each starting with its own
/// [`datagram`] line.
pub fn send_gso(to: &str, port: u16, net: usize, count: u32) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", 0)).context("UDP socket")?;
    let size = GSO_SEGMENT as libc::c_int;
    // SAFETY: a c_int option value of the right length on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&raw const size).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setsockopt UDP_SEGMENT");
    }
    let mut i = 0;
    while i < count {
        let n = GSO_SEGMENTS.min(count - i);
        let mut buf = vec![0u8; n as usize * GSO_SEGMENT];
        for (j, seg) in buf.chunks_mut(GSO_SEGMENT).enumerate() {
            let line = datagram(net, i + j as u32);
            seg[..line.len()].copy_from_slice(line.as_bytes());
        }
        let sent = sock
            .send_to(&buf, (to, port))
            .with_context(|| format!("GSO send to {to}:{port}"))?;
        anyhow::ensure!(
            sent == buf.len(),
            "GSO send took {sent} of {} bytes",
            buf.len()
        );
        i += n;
        // One 64 KB burst per 20 ms: no queue through the emulated guests
        // overflows.
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Receives until `quiet` passes without a datagram once some arrived, or
/// `total` is over; returns datagrams per sending network.
pub fn receive(sock: &UdpSocket, quiet: Duration, total: Duration) -> BTreeMap<usize, u32> {
    let mut from = BTreeMap::new();
    // A datagram is read truncated (its first line is all we count), and
    // a GSO sender's bursts want room.
    let _ = crate::packet::rcvbuf_force(sock, 4 << 20);
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

/// Byte `offset` of the TCP transfers' pattern: big-endian 32-bit words, the
/// word at 4·n being n scrambled by `seed` (each network and direction has
/// its own). A lost, repeated, reordered or shifted segment, or another
/// transfer's bytes, all break it.
pub fn pattern_byte(seed: u32, offset: u64) -> u8 {
    let word = ((offset / 4) as u32).wrapping_mul(0x9e37_79b1) ^ seed;
    word.to_be_bytes()[(offset % 4) as usize]
}

/// What a TCP receiver got; sent back to the sender as one line once the
/// sender closed its side (or the deadline passed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub bytes: u64,
    /// Where the first byte off the pattern was.
    pub first_bad: Option<u64>,
    /// Whether the sender's end of stream arrived (else: the deadline).
    pub eof: bool,
    /// From accept to end of stream, by the receiver's clock.
    pub millis: u64,
}

impl Received {
    /// `bytes=N bad=OFFSET|- eof=0|1 ms=M`.
    pub fn line(&self) -> String {
        let bad = self.first_bad.map_or("-".to_owned(), |b| b.to_string());
        format!(
            "bytes={} bad={bad} eof={} ms={}",
            self.bytes,
            u8::from(self.eof),
            self.millis
        )
    }

    pub fn parse(line: &str) -> Option<Self> {
        let mut r = Received::default();
        for part in line.split_whitespace() {
            let (k, v) = part.split_once('=')?;
            match k {
                "bytes" => r.bytes = v.parse().ok()?,
                "bad" => {
                    r.first_bad = if v == "-" {
                        None
                    } else {
                        Some(v.parse().ok()?)
                    }
                }
                "eof" => r.eof = v == "1",
                "ms" => r.millis = v.parse().ok()?,
                _ => {}
            }
        }
        Some(r)
    }

    /// Every one of `expected` bytes arrived, in order, and nothing more.
    pub fn complete(&self, expected: u64) -> bool {
        self.eof && self.first_bad.is_none() && self.bytes == expected
    }
}

/// The first connection on `listener` before `deadline`.
pub fn accept_within(listener: &TcpListener, deadline: Instant) -> anyhow::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                anyhow::ensure!(Instant::now() < deadline, "no TCP connection in time");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context("accept"),
        }
    }
}

/// Reads `stream` to its end (or `deadline`), checking the pattern of
/// `seed`, then answers with [`Received::line`] and closes.
pub fn tcp_receive(mut stream: TcpStream, seed: u32, deadline: Instant) -> Received {
    let start = Instant::now();
    let mut r = Received::default();
    let mut buf = vec![0u8; 256 << 10];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut buf) {
            Ok(0) => {
                r.eof = true;
                break;
            }
            Ok(n) => {
                if r.first_bad.is_none() {
                    r.first_bad = (0..n)
                        .find(|&i| buf[i] != pattern_byte(seed, r.bytes + i as u64))
                        .map(|i| r.bytes + i as u64);
                }
                r.bytes += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break, // the deadline, or a reset
        }
    }
    r.millis = start.elapsed().as_millis() as u64;
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = writeln!(stream, "{}", r.line());
    r
}

/// What a TCP sender saw: how much it wrote before `deadline`, and the
/// receiver's answer if it came.
#[derive(Debug)]
pub struct Sent {
    pub bytes: u64,
    pub reply: Option<Received>,
    /// From connect to the answer (or giving up), by the sender's clock.
    pub elapsed: Duration,
    /// Why the transfer ended early (a timeout, a reset).
    pub error: Option<String>,
}

/// Connects to `to:port` and writes `bytes` bytes of the pattern of
/// `seed`, closes its side, and waits for the receiver's answer, all before
/// `deadline`.
pub fn tcp_send(to: &str, port: u16, bytes: u64, seed: u32, deadline: Instant) -> Sent {
    let start = Instant::now();
    let mut sent = Sent {
        bytes: 0,
        reply: None,
        elapsed: Duration::ZERO,
        error: None,
    };
    let result = (|| -> anyhow::Result<()> {
        let addr = (to, port).to_socket_addrs()?.next().context("no address")?;
        let left = || {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .context("the deadline passed")
        };
        let mut stream = TcpStream::connect_timeout(&addr, left()?)
            .with_context(|| format!("connect to {to}:{port}"))?;
        let mut buf = vec![0u8; 256 << 10];
        while sent.bytes < bytes {
            let n = buf.len().min((bytes - sent.bytes) as usize);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern_byte(seed, sent.bytes + i as u64);
            }
            stream.set_write_timeout(Some(left()?))?;
            // write, not write_all: what got out before a timeout counts.
            let mut at = 0;
            while at < n {
                match stream.write(&buf[at..n]) {
                    Ok(w) => {
                        at += w;
                        sent.bytes += w as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e).context("write"),
                }
                if at < n {
                    stream.set_write_timeout(Some(left()?))?;
                }
            }
        }
        stream.shutdown(Shutdown::Write)?;
        stream.set_read_timeout(Some(left()?))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .context("the receiver's answer")?;
        sent.reply = Some(
            Received::parse(answer.trim())
                .with_context(|| format!("the receiver answered {answer:?}"))?,
        );
        Ok(())
    })();
    sent.error = result.err().map(|e| format!("{e:#}"));
    sent.elapsed = start.elapsed();
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_lines_read_back() {
        for r in [
            Received {
                bytes: 4 << 20,
                first_bad: None,
                eof: true,
                millis: 1234,
            },
            Received {
                bytes: 77,
                first_bad: Some(13),
                eof: false,
                millis: 0,
            },
        ] {
            assert_eq!(Received::parse(&r.line()), Some(r));
        }
    }

    #[test]
    fn the_pattern_tells_shifted_and_foreign_bytes_apart() {
        let run = |seed, from| {
            (from..from + 64)
                .map(|o| pattern_byte(seed, o))
                .collect::<Vec<_>>()
        };
        assert_ne!(run(1, 0), run(1, 4));
        assert_ne!(run(1, 0), run(1, 1));
        assert_ne!(run(1, 0), run(2, 0));
    }
}
