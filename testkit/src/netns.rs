//! Network namespaces: named ones (`ip netns`), removed when dropped (also
//! when a test fails), a private one for the calling thread, and veth pairs.
//! Nothing here touches a namespace it did not create.

use std::{fs::File, os::fd::AsFd as _};

use anyhow::{Context as _, bail};
use nix::sched::CloneFlags;

use crate::cmd::{ifindex, run};

/// `ip ARGS`.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args)
}

/// `ip netns exec NS CMD ARGS`.
pub fn exec(ns: &str, cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["netns", "exec", ns, cmd];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// The namespaces `ip netns` knows.
pub fn list() -> anyhow::Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Runs `f` on a thread of its own inside namespace `ns`: sockets `f` opens
/// belong to `ns` for their whole life, wherever they are used later.
pub fn within<T: Send>(
    ns: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let path = format!("/run/netns/{ns}");
    let target = File::open(&path).with_context(|| format!("cannot open {path}"))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter {ns}"))?;
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Moves the calling thread into a new network namespace holding only `lo`
/// (up), with IPv6 off (no autoconfiguration chatter on test links); it
/// vanishes with the thread. Child processes started from the thread
/// inherit it; the rest of the process stays where it was.
pub fn unshare_thread() -> anyhow::Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
    ip(&["link", "set", "lo", "up"])?;
    for knob in ["all", "default"] {
        run(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{knob}.disable_ipv6=1")],
        )?;
    }
    Ok(())
}

/// A veth pair `name`–`peer` in the calling thread's namespace, both up;
/// their ifindexes.
pub fn veth(name: &str, peer: &str) -> anyhow::Result<(u32, u32)> {
    ip(&["link", "add", name, "type", "veth", "peer", "name", peer])?;
    ip(&["link", "set", name, "up"])?;
    ip(&["link", "set", peer, "up"])?;
    Ok((ifindex(name)?, ifindex(peer)?))
}

/// A named namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace holding only `lo` (up), with IPv6 off (no
    /// autoconfiguration chatter in the counters). Refuses an existing name.
    pub fn add(name: &str) -> anyhow::Result<Self> {
        if list()?.iter().any(|n| n == name) {
            bail!(
                "network namespace {name} exists already: a previous run left it? \
                 (`ip netns del {name}` if it is ours)"
            );
        }
        ip(&["netns", "add", name])?;
        let me = Self {
            name: name.to_owned(),
        };
        me.ip(&["link", "set", "lo", "up"])?;
        for knob in ["all", "default"] {
            me.exec(
                "sysctl",
                &["-qw", &format!("net.ipv6.conf.{knob}.disable_ipv6=1")],
            )?;
        }
        Ok(me)
    }

    /// Keeps the namespace past this value (the demo's `--keep`); returns
    /// its name. Removing it is then the caller's business.
    pub fn keep(self) -> String {
        let me = std::mem::ManuallyDrop::new(self);
        me.name.clone()
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip netns exec NAME CMD ARGS`.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> anyhow::Result<String> {
        exec(&self.name, cmd, args)
    }

    /// Runs `f` on a thread inside this namespace (sockets it opens stay here).
    pub fn within<T: Send>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        within(&self.name, f)
    }

    /// The `ip` arguments that add a veth `name` (with `mac`) in the
    /// namespace `ip` runs in, its peer `peer` in this one.
    pub fn veth_args<'a>(
        &'a self,
        name: &'a str,
        peer: &'a str,
        mac: Option<&'a str>,
    ) -> Vec<&'a str> {
        let mut args = vec!["link", "add", name];
        if let Some(mac) = mac {
            args.extend(["address", mac]);
        }
        args.extend(["type", "veth", "peer", "name", peer, "netns", &self.name]);
        args
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}
