//! `xdp-forwarder-lab bench-converge`: how long `xdp-forwarder run` takes
//! to converge after what no link event tells it (issue 25): our tcx link
//! detached behind its back, the pin dir's state removed, a NIC renamed
//! into `--ignore`. In a network namespace of its own (a thread's), on
//! veth, with a private bpffs; the daemon is the release binary next to
//! this one. Time is measured from the change to the moment the kernel
//! shows the result (a tcx ingress program of ours attached again, or
//! gone), polled every millisecond.

use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::programs::{SchedClassifier, TcAttachType};

use crate::{bins_dir, netns, run as sh};

/// One case's timings, milliseconds, sorted.
pub struct Row {
    pub case: &'static str,
    pub ms: Vec<f64>,
}

impl Row {
    fn at(&self, q: f64) -> f64 {
        let i = ((self.ms.len() - 1) as f64 * q).round() as usize;
        self.ms[i]
    }
}

/// The markdown table of `rows`.
pub fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| drift | rounds | min ms | median ms | max ms |\n|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} |\n",
            r.case,
            r.ms.len(),
            r.at(0.0),
            r.at(0.5),
            r.at(1.0)
        ));
    }
    out
}

/// Runs `rounds` of each case; the rows, or why it could not.
pub fn run(rounds: u32) -> anyhow::Result<Vec<Row>> {
    anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
    std::thread::scope(|s| {
        s.spawn(|| {
            netns::unshare_thread()?;
            let dir =
                std::env::temp_dir().join(format!("xfd-bench-converge-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            sh("mount", &["-t", "bpf", "bpf", dir.to_str().unwrap()])?;
            let result = in_namespace(&dir, rounds);
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
            let _ = std::fs::remove_dir(&dir);
            result
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// The daemon, stopped (SIGTERM) when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// The id of the first tcx ingress program on `iface`, if any.
fn tcx_prog(iface: &str) -> Option<u32> {
    let (_, progs) = SchedClassifier::query_tcx(iface, TcAttachType::Ingress).ok()?;
    Some(progs.first()?.id())
}

/// Polls `done` every millisecond; how long it took (at most 10 s).
fn until(what: &str, done: impl FnMut() -> bool) -> anyhow::Result<f64> {
    until_from(Instant::now(), what, done)
}

/// [`until`], timed from `start`.
fn until_from(start: Instant, what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<f64> {
    while !done() {
        if start.elapsed() > Duration::from_secs(10) {
            bail!(
                "{what}: the daemon did not converge within 10 s (its log: /tmp/xfd-bench-converge-PID.log)"
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

fn in_namespace(dir: &std::path::Path, rounds: u32) -> anyhow::Result<Vec<Row>> {
    let pin = dir.to_str().unwrap();
    for (name, mac) in [("nic1", "52:54:00:00:0b:01"), ("rtr", "02:01:00:00:0b:01")] {
        let peer = format!("{name}x");
        sh(
            "ip",
            &[
                "link", "add", name, "address", mac, "type", "veth", "peer", "name", &peer,
            ],
        )?;
        sh("ip", &["link", "set", &peer, "up"])?;
    }
    let exe = bins_dir()?.join("xdp-forwarder");
    // The daemon's log, for when a case does not converge.
    let log = dir.with_extension("log");
    let daemon = Daemon(
        Command::new(&exe)
            // The peers (`*x`) stay in this namespace: left alone.
            .args([
                "run",
                "--pin-dir",
                pin,
                "--ignore",
                "mgmt*",
                "--ignore",
                "*x",
            ])
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?,
    );
    until("first scan", || {
        tcx_prog("nic1").is_some() && tcx_prog("rtr").is_some()
    })?;
    let mut rows = vec![
        Row {
            case: "tcx link detached (`bpftool link detach`) → attached again",
            ms: Vec::new(),
        },
        Row {
            case: "state dir removed (`rm -rf PIN/xdp-forwarder PIN/router_iface`) → both ports attached again",
            ms: Vec::new(),
        },
        Row {
            case: "NIC renamed into `--ignore` → detached",
            ms: Vec::new(),
        },
    ];
    for _ in 0..rounds {
        // Our link on nic1 detached.
        let link = dir.join(format!(
            "xdp-forwarder/link-{}",
            crate::cmd::ifindex("nic1")?
        ));
        let info: serde_json::Value = serde_json::from_str(&sh(
            "bpftool",
            &["-j", "link", "show", "pinned", link.to_str().unwrap()],
        )?)?;
        let before = tcx_prog("nic1");
        let start = Instant::now();
        sh(
            "bpftool",
            &["link", "detach", "id", &info["id"].to_string()],
        )?;
        rows[0].ms.push(until_from(start, "link detached", || {
            tcx_prog("nic1").is_some_and(|p| Some(p) != before)
        })?);

        // The whole state removed: the links go with their pins.
        let (n, r) = (tcx_prog("nic1"), tcx_prog("rtr"));
        let start = Instant::now();
        std::fs::remove_dir_all(dir.join("xdp-forwarder"))?;
        std::fs::remove_file(dir.join("router_iface"))?;
        rows[1].ms.push(until_from(start, "state removed", || {
            tcx_prog("nic1").is_some_and(|p| Some(p) != n)
                && tcx_prog("rtr").is_some_and(|p| Some(p) != r)
        })?);

        // Renamed into --ignore (timed from the rename), then back
        // (attached again, not timed).
        sh("ip", &["link", "set", "nic1", "down"])?;
        let start = Instant::now();
        sh("ip", &["link", "set", "nic1", "name", "mgmt0"])?;
        rows[2].ms.push(until_from(start, "renamed", || {
            tcx_prog("mgmt0").is_none()
        })?);
        sh("ip", &["link", "set", "mgmt0", "up"])?;
        sh("ip", &["link", "set", "mgmt0", "down"])?;
        sh("ip", &["link", "set", "mgmt0", "name", "nic1"])?;
        sh("ip", &["link", "set", "nic1", "up"])?;
        until("renamed back", || tcx_prog("nic1").is_some())?;
    }
    drop(daemon);
    let _ = Command::new(&exe)
        .args(["detach", "--all", "--pin-dir", pin])
        .output();
    for r in &mut rows {
        r.ms.sort_by(f64::total_cmp);
    }
    // Kept only when a case failed (the error names it).
    let _ = std::fs::remove_file(&log);
    Ok(rows)
}
