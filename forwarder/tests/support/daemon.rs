//! `xdp-forwarder run` as a child process, its log kept in a file and
//! shown when a test fails.

use std::{
    process::{Child, Command},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::Bpffs;

pub const WAIT: Duration = Duration::from_secs(10);

/// The daemon, killed when dropped (attachments are pinned: they stay).
/// Its log goes to a file, printed when the test fails.
pub struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    pub fn start(pins: &Bpffs, extra: &[&str]) -> Self {
        Self::start_with_env(pins, extra, &[])
    }

    /// [`Self::start`] with these environment variables set (e.g.
    /// `XDP_FORWARDER_TC_HOOK=clsact`).
    pub fn start_with_env(pins: &Bpffs, extra: &[&str], env: &[(&str, &str)]) -> Self {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let log = std::path::PathBuf::from(format!("{}.daemon-{n}.log", pins.arg()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_xdp-forwarder"))
            .args(["run", "--pin-dir", pins.arg()])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stderr(file)
            .spawn()
            .expect("start the daemon");
        let daemon = Self { child, log };
        // Ready once it logged "started": signals are handled from then on.
        let deadline = Instant::now() + WAIT;
        while !std::fs::read_to_string(&daemon.log).is_ok_and(|l| l.contains("started")) {
            assert!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, kB.
    pub fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    pub fn kill9(self) {
        // SAFETY: signalling our own child (dropping then reaps it).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let early = self.child.try_wait().ok().flatten();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(&self.log)
        {
            eprintln!("daemon had already exited before the end of the test: {early:?}");
            eprintln!("daemon log (errors and warnings):");
            for line in log
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            {
                eprintln!("  {line}");
            }
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("daemon log (last lines):");
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Daemon {
    /// Sends SIGHUP (a full rescan).
    pub fn hup(&self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}
