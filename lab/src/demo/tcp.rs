//! TCP through the topology: one iperf3 transfer between two namespaces
//! (the demo's TCP rows, the bench's TCP measurements). The end hosts keep
//! the offloads Linux gives a veth (checksum offload, TSO, GSO), so the
//! forwarders see what real hosts send: TCP aggregates up to 64 KB whose
//! checksums are still to be finished.

use std::{
    io::Read as _,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::netns;

/// iperf3's port (its default).
pub const PORT: u16 = 5201;
/// The least a healthy transfer delivers: a stalled one (TCP through XDP on
/// veth with the hosts' offloads on) delivers kilobytes, a working one
/// gigabytes.
pub const MIN_BYTES: u64 = 50_000_000;
/// How long the client may try to connect (`--connect-timeout`).
const CONNECT_TIMEOUT_MS: u32 = 3000;
/// How long past its duration iperf3 may take before it counts as hung.
const GRACE: Duration = Duration::from_secs(20);

/// One transfer, as iperf3 counted it.
#[derive(Clone, Debug, Default)]
pub struct Transfer {
    /// Bytes the sending iperf3 wrote into its sockets.
    pub sent: u64,
    /// Bytes the receiving iperf3 read from its sockets.
    pub received: u64,
    /// The receiver's measuring time.
    pub seconds: f64,
    /// TCP retransmissions of the sender.
    pub retransmits: u64,
    /// What went wrong, in iperf3's words ("unable to connect to server:
    /// Connection timed out") or ours (it hung).
    pub error: Option<String>,
    /// The most data the two ends' socket buffers can hold, over all streams
    /// (see [`Transfer::verdict`]).
    pub buffers: u64,
}

impl Transfer {
    /// Gbit/s the receiver counted.
    pub fn gbps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.received as f64 * 8.0 / self.seconds / 1e9
        } else {
            0.0
        }
    }

    /// PASS, and the line the report prints.
    ///
    /// The criterion: iperf3 finished without an error, at least
    /// [`MIN_BYTES`] arrived, and the receiver's count falls short of the
    /// sender's by no more than the two ends' socket buffers can hold. iperf3
    /// stops counting at the receiver as soon as the sender says its time is
    /// up, so what was still in the sender's send buffer or in the
    /// receiver's receive queue at that moment (already accepted by TCP,
    /// delivered a moment later) is missing from the receiver's count: a
    /// few MB at 10+ Gbit/s, never more than `tcp_wmem`'s maximum at the
    /// sender plus `tcp_rmem`'s at the receiver, per stream. Anything beyond
    /// that never arrived; an exact "received == sent" would fail every
    /// healthy run.
    pub fn verdict(&self) -> (bool, String) {
        if let (Some(e), 0) = (&self.error, self.sent) {
            return (false, format!("nothing sent: iperf3: {e}"));
        }
        let mut detail = format!(
            "{} of {} arrived in {:.1} s: {:.2} Gbit/s, {} retransmit{}",
            size(self.received),
            size(self.sent),
            self.seconds,
            self.gbps(),
            self.retransmits,
            if self.retransmits == 1 { "" } else { "s" }
        );
        let missing = self.sent.saturating_sub(self.received);
        let why = if let Some(e) = &self.error {
            Some(format!("iperf3: {e}"))
        } else if self.received < MIN_BYTES {
            Some(format!("under {}: TCP stalled", size(MIN_BYTES)))
        } else if missing > self.buffers {
            Some(format!(
                "{} never arrived: more than the sockets' buffers hold, {}",
                size(missing),
                size(self.buffers)
            ))
        } else {
            None
        };
        if let Some(why) = &why {
            detail.push_str(&format!(" ({why})"));
        }
        (why.is_none(), detail)
    }
}

/// "3950.2 MB", "40.5 kB" (decimal units, as iperf3's Gbit/s).
pub fn size(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    }
}

/// `iperf3 -c TO_ADDR -t SECONDS -P STREAMS -J` from namespace `from`
/// against a one-off server in namespace `to` (bound to `to_addr`). An
/// error only when the tools cannot run; iperf3's own failures (no
/// connection, a hang) are in [`Transfer::error`].
pub fn transfer(
    from: &str,
    to: &str,
    to_addr: &str,
    seconds: u32,
    streams: u32,
) -> anyhow::Result<Transfer> {
    let buffers = u64::from(streams)
        * (tcp_buffer_max(from, "net.ipv4.tcp_wmem")? + tcp_buffer_max(to, "net.ipv4.tcp_rmem")?);
    let port = PORT.to_string();
    let mut server = Reaped(
        Command::new("ip")
            .args(["netns", "exec", to, "iperf3", "-s", "-1", "-B", to_addr])
            .args(["-p", &port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run iperf3 (is it installed? `cargo xtask setup` installs it)")?,
    );
    wait_listening(to, &mut server.0)?;
    let mut client = Reaped(
        Command::new("ip")
            .args(["netns", "exec", from, "iperf3", "-c", to_addr, "-p", &port])
            .args(["-t", &seconds.to_string(), "-P", &streams.to_string(), "-J"])
            .args(["--connect-timeout", &CONNECT_TIMEOUT_MS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run iperf3")?,
    );
    let mut stdout = client.0.stdout.take().context("iperf3's stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(seconds.into()) + GRACE;
    let finished = wait_until(&mut client.0, deadline);
    if !finished {
        // Its pipe closes with it, and the reader returns.
        client.kill();
    }
    let json = reader.join().unwrap_or_default();
    let mut t = if finished {
        parse(&json)
    } else {
        Transfer {
            error: Some(format!(
                "no result within {} s: the connection stalled",
                u64::from(seconds) + GRACE.as_secs()
            )),
            ..Transfer::default()
        }
    };
    t.buffers = buffers;
    // The server exits after its one test; give it a moment, then end it.
    wait_until(&mut server.0, Instant::now() + Duration::from_secs(2));
    Ok(t)
}

/// What `iperf3 -J` printed.
fn parse(json: &str) -> Transfer {
    let doc: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            return Transfer {
                error: Some(format!("unreadable output ({e})")),
                ..Transfer::default()
            };
        }
    };
    let end = &doc["end"];
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    Transfer {
        sent: num(&end["sum_sent"]["bytes"]) as u64,
        received: num(&end["sum_received"]["bytes"]) as u64,
        seconds: num(&end["sum_received"]["seconds"]),
        retransmits: num(&end["sum_sent"]["retransmits"]) as u64,
        error: doc["error"].as_str().map(str::to_owned),
        buffers: 0,
    }
}

/// The maximum of a `net.ipv4.tcp_[rw]mem` triple in namespace `ns`.
fn tcp_buffer_max(ns: &str, key: &str) -> anyhow::Result<u64> {
    let out = netns::exec(ns, "sysctl", &["-n", key])?;
    out.split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{key} in {ns}: {out:?}"))
}

/// Waits until the server in `ns` listens (a test connection would be
/// taken for a client: look, don't knock).
fn wait_listening(ns: &str, server: &mut Child) -> anyhow::Result<()> {
    let filter = format!("sport = :{PORT}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = server.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            anyhow::bail!("iperf3 -s in {ns} exited ({status}): {}", err.trim());
        }
        if !netns::exec(ns, "ss", &["-Hltn", &filter])?
            .trim()
            .is_empty()
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "iperf3 -s in {ns} does not listen after 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `child` exited before `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> bool {
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is ended and reaped when dropped (also on an error
/// or Ctrl-C), so that no iperf3 outlives the namespaces.
struct Reaped(Child);

impl Reaped {
    fn kill(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iperf3_json_and_judges() {
        let json = r#"{"start": {}, "end": {
            "sum_sent": {"bytes": 3120824320, "seconds": 2.0, "retransmits": 873},
            "sum_received": {"bytes": 3111321224, "seconds": 2.001642}}}"#;
        let mut t = parse(json);
        assert_eq!(
            (t.sent, t.received, t.retransmits),
            (3120824320, 3111321224, 873)
        );
        assert!(t.error.is_none());
        t.buffers = 36 << 20;
        let (ok, detail) = t.verdict();
        assert!(ok, "{detail}");
        assert!(
            detail.starts_with(
                "3111.3 MB of 3120.8 MB arrived in 2.0 s: 12.44 Gbit/s, 873 retransmits"
            ),
            "{detail}"
        );

        t.buffers = 1 << 20;
        assert!(
            !t.verdict().0,
            "9.5 MB missing is more than 1 MiB of buffers"
        );
    }

    #[test]
    fn a_stall_or_an_error_fails() {
        let stalled = parse(
            r#"{"end": {"sum_sent": {"bytes": 125976, "retransmits": 60},
                        "sum_received": {"bytes": 40544, "seconds": 2.0}}}"#,
        );
        let (ok, detail) = Transfer {
            buffers: 36 << 20,
            ..stalled
        }
        .verdict();
        assert!(!ok);
        assert!(
            detail.starts_with("40.5 kB of 126.0 kB arrived") && detail.contains("60 retransmits"),
            "{detail}"
        );
        assert!(detail.contains("stalled"), "{detail}");

        let refused = parse(
            r#"{"start": {}, "end": {}, "error": "unable to connect to server: Connection timed out"}"#,
        );
        let (ok, detail) = refused.verdict();
        assert!(!ok);
        assert!(detail.contains("Connection timed out"), "{detail}");
    }
}
