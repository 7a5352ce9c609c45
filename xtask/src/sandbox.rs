//! A throw-away network namespace with two NICs and a router interface
//! (veths), the forwarder attached to them, and `status` printed; then
//! everything is removed, also when a step fails.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{cargo, status};

const NS: &str = "xdpfwd-sandbox";

struct Cleanup {
    pin_dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veths, and with them the attachments.
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
        let _ = Command::new("umount").arg(&self.pin_dir).status();
        let _ = std::fs::remove_dir(&self.pin_dir);
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    status(Command::new("ip").args(args))
}

pub fn run() -> anyhow::Result<()> {
    if !crate::is_root() {
        bail!("the sandbox creates a network namespace and loads XDP programs: run it as root");
    }
    if Command::new("ip")
        .args(["netns", "pids", NS])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        bail!("namespace {NS} exists (a previous sandbox?): remove it with `ip netns del {NS}`");
    }
    cargo(&["build", "--package", "xdp-forwarder"])?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("debug").join("xdp-forwarder");

    let pin_dir = std::env::temp_dir().join(format!("{NS}-bpffs"));
    std::fs::create_dir_all(&pin_dir)?;
    let cleanup = Cleanup { pin_dir };
    let pins = cleanup.pin_dir.to_str().context("temp dir is not UTF-8")?;
    status(Command::new("mount").args(["-t", "bpf", "bpf", pins]))?;
    ip(&["netns", "add", NS])?;
    for (iface, mac) in [
        ("eth1", None),
        ("eth2", None),
        ("router0", Some("02:01:00:00:00:01")),
    ] {
        let peer = format!("{iface}-peer");
        let mut args = vec!["-n", NS, "link", "add", iface];
        if let Some(mac) = mac {
            args.extend(["address", mac]);
        }
        args.extend(["type", "veth", "peer", "name", &peer]);
        ip(&args)?;
        ip(&["-n", NS, "link", "set", &peer, "up"])?;
    }
    let fwd = |args: &[&str]| {
        println!("$ xdp-forwarder {}", args.join(" "));
        status(
            Command::new("ip")
                .args(["netns", "exec", NS])
                .arg(&bin)
                .args(args)
                .args(["--pin-dir", pins]),
        )
    };
    fwd(&["attach", "eth1", "--role", "physical"])?;
    fwd(&["attach", "eth2", "--role", "physical", "--vid", "200"])?;
    fwd(&["attach", "router0", "--role", "router"])?;
    fwd(&["status"])?;
    fwd(&["detach", "--all"])?;
    drop(cleanup);
    println!("sandbox removed: namespace {NS}, its veths and its bpffs mount are gone");
    Ok(())
}
