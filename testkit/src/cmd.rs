//! Running the system's tools (`ip`, `mount`, `ethtool`, ...), with their
//! stderr in the error.

use std::process::Command;

use anyhow::{Context as _, bail};

/// Runs a command and returns its stdout; an error carries its stderr.
pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {cmd} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The ifindex of `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(|e| anyhow::anyhow!("no interface {name}: {e}"))
}
