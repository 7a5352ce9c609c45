//! Running things in the demo's named network namespaces (`ip netns`).

use std::{fs::File, os::fd::AsRawFd as _};

use anyhow::{Context as _, bail};

pub use crate::cmd::{ifindex, run};

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
            // SAFETY: setns on this (scoped, short-lived) thread only, with
            // a valid namespace fd.
            if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("cannot enter {ns}: {}", std::io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}
