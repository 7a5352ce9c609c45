//! The demo's throw-away topology, and the record of what it created so that
//! `demo --clean` removes exactly that and nothing else.
//!
//! ```text
//! xfd-extK  eth0 ── nicK ┐                          ┌ vlanK ── eth0  xfd-lanK
//!                        │ xfd-net-vm   xfd-router  │
//!                        └ router0 ════════ uplink ─┘
//! (`xfd` is the default name prefix.)
//! ```

use std::{fs, io::Write as _, path::PathBuf};

use anyhow::{Context as _, bail};

use crate::netns::{self, ip};

/// The net-vm's router interface: the original's `02:01:` prefix.
pub const ROUTER_MAC: &str = "02:01:00:00:0d:01";
/// Every network gets the same addresses: only the VLANs keep them apart.
pub const EXT_ADDR: &str = "10.99.0.1";
pub const LAN_ADDR: &str = "10.99.0.2";
pub const MAX_NICS: usize = 8;
pub const DEFAULT_PREFIX: &str = "xfd";

/// The names of everything a demo creates, all starting with one prefix
/// (`xfd` by default; the test suite uses its own).
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        if prefix.is_empty()
            || prefix.len() > 8
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            bail!("name prefix {prefix:?}: use 1 to 8 lowercase letters or digits");
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    pub fn net_vm(&self) -> String {
        format!("{}-net-vm", self.prefix)
    }

    pub fn router(&self) -> String {
        format!("{}-router", self.prefix)
    }

    pub fn ext(&self, k: usize) -> String {
        format!("{}-ext{k}", self.prefix)
    }

    pub fn lan(&self, k: usize) -> String {
        format!("{}-lan{k}", self.prefix)
    }

    /// Every namespace name a demo may use.
    fn all(&self) -> Vec<String> {
        let mut names = vec![self.net_vm(), self.router()];
        for k in 1..=MAX_NICS {
            names.extend([self.ext(k), self.lan(k)]);
        }
        names
    }

    /// Where the demo records what it created and mounts its bpffs instances.
    pub fn state_dir(&self) -> PathBuf {
        if self.prefix == DEFAULT_PREFIX {
            PathBuf::from("/run/xdp-forwarder-demo")
        } else {
            PathBuf::from(format!("/run/xdp-forwarder-demo-{}", self.prefix))
        }
    }

    /// The bpffs pin dir of the forwarder in `ns`.
    pub fn pin_dir(&self, ns: &str) -> PathBuf {
        self.state_dir().join(format!("bpf-{ns}"))
    }

    fn record_file(&self) -> PathBuf {
        self.state_dir().join("created")
    }

    /// Appends what was just created (`ns NAME` or `mount PATH`), before
    /// anything else happens, so that a crash still leaves a complete record.
    fn record(&self, kind: &str, what: &str) -> anyhow::Result<()> {
        let path = self.record_file();
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(f, "{kind} {what}").with_context(|| format!("cannot write {}", path.display()))
    }

    /// Refuses to start over leftovers (ours: offer `--clean`; not ours: never touched).
    pub fn check_clean_slate(&self) -> anyhow::Result<()> {
        let existing = netns::list()?;
        let state_dir = self.state_dir();
        let clash: Vec<String> = self
            .all()
            .into_iter()
            .filter(|n| existing.contains(n))
            .collect();
        if state_dir.exists() {
            bail!(
                "a previous demo left its topology behind ({} exists{}); \
             remove it with `xdp-forwarder-lab demo --clean`",
                state_dir.display(),
                if clash.is_empty() {
                    String::new()
                } else {
                    format!(", namespaces {clash:?}")
                }
            );
        }
        if !clash.is_empty() {
            bail!(
                "namespaces {clash:?} exist but no demo recorded creating them; the demo never \
             touches what it did not create: remove or rename them (`ip netns del NAME`) first"
            );
        }
        Ok(())
    }

    /// Creates namespace `name` (lo up, IPv6 off: no autoconfiguration
    /// chatter), recorded for `--clean`; it outlives the demo's process
    /// until the demo's teardown removes it.
    pub fn add_ns(&self, name: &str) -> anyhow::Result<()> {
        let ns = netns::Netns::add(name)?;
        self.record("ns", name)?;
        ns.keep();
        Ok(())
    }

    /// The state dir and one private bpffs per forwarder namespace.
    pub fn prepare_state(&self) -> anyhow::Result<()> {
        let state_dir = self.state_dir();
        fs::create_dir_all(&state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        for ns in [self.net_vm(), self.router()] {
            let dir = self.pin_dir(&ns);
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let d = dir.to_str().context("state dir is not UTF-8")?;
            crate::cmd::run("mount", &["-t", "bpf", "bpf", d])?;
            self.record("mount", d)?;
        }
        Ok(())
    }
}

/// A veth `a` in `ns_a`, `b` in `ns_b`; both up; optional MAC on `a`.
pub fn veth(ns_a: &str, a: &str, mac: Option<&str>, ns_b: &str, b: &str) -> anyhow::Result<()> {
    let mut args = vec!["-n", ns_a, "link", "add", a];
    if let Some(mac) = mac {
        args.extend(["address", mac]);
    }
    args.extend(["type", "veth", "peer", "name", b, "netns", ns_b]);
    ip(&args)?;
    ip(&["-n", ns_a, "link", "set", a, "up"])?;
    ip(&["-n", ns_b, "link", "set", b, "up"])?;
    Ok(())
}

/// An end host's `eth0` in `ns` with `addr`/24. Its offloads stay as Linux
/// sets them on a veth (TX checksum offload, TSO, GSO on: the host sends
/// TCP aggregates up to 64 KB with checksums still to be finished, as a VM
/// on virtio-net does), except GRO, which a real NIC's host has on and a
/// veth has off: a native-mode redirect into a veth needs it (or an XDP
/// program) on the receiving side.
pub fn host(ns: &str, addr: &str) -> anyhow::Result<()> {
    let cidr = format!("{addr}/24");
    ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
    netns::exec(ns, "ethtool", &["-K", "eth0", "gro", "on"])?;
    Ok(())
}

impl Names {
    /// Removes everything the record lists (namespaces first: their veths and
    /// attachments go with them; then the bpffs mounts), then the record.
    /// Returns what was removed.
    pub fn clean(&self) -> anyhow::Result<Vec<String>> {
        let path = self.record_file();
        let state_dir = self.state_dir();
        if !state_dir.exists() {
            return Ok(Vec::new());
        }
        let text = fs::read_to_string(&path).unwrap_or_default();
        let existing = netns::list().unwrap_or_default();
        let mut removed = Vec::new();
        let mut failures = Vec::new();
        for line in text.lines() {
            if let Some(ns) = line.strip_prefix("ns ")
                && existing.iter().any(|e| e == ns)
            {
                match ip(&["netns", "del", ns]) {
                    Ok(_) => removed.push(format!("namespace {ns}")),
                    Err(e) => failures.push(e.to_string()),
                }
            }
        }
        for line in text.lines() {
            if let Some(dir) = line.strip_prefix("mount ") {
                match crate::cmd::run("umount", &[dir]) {
                    Ok(_) => removed.push(format!("bpffs {dir}")),
                    Err(e) => failures.push(e.to_string()),
                }
            }
        }
        if !failures.is_empty() {
            bail!("could not remove everything: {}", failures.join("; "));
        }
        for ns in [self.net_vm(), self.router()] {
            let _ = fs::remove_dir(self.pin_dir(&ns));
        }
        let _ = fs::remove_file(&path);
        fs::remove_dir(&state_dir).with_context(|| {
            format!(
                "{} still holds files the demo did not create; look at them and remove it",
                state_dir.display()
            )
        })?;
        Ok(removed)
    }
}
