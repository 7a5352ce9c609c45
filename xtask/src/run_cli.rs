//! `cargo xtask demo` and `cargo xtask bench`: build the forwarder and the
//! lab, and run the lab's `demo` (throw-away namespaces, traffic, report,
//! clean-up) or `bench` (results into docs/benchmarks.md and
//! docs/benchmarks.svg); `cargo xtask demo --vm`: the lab's VM demo.

use std::{path::PathBuf, process::Command};

use anyhow::bail;

use crate::{cargo, status};

/// `xdp-forwarder-lab SUBCOMMAND ARGS`, freshly built (release: the bench
/// measures it, and the demo runs the `xdp-forwarder` beside it).
pub fn run(subcommand: &str, args: &[String]) -> anyhow::Result<()> {
    if !crate::is_root() {
        bail!("`{subcommand}` creates network namespaces and loads XDP programs: run it as root");
    }
    let bins = release_bins()?;
    status(
        Command::new(bins.join("xdp-forwarder-lab"))
            .arg(subcommand)
            .args(args),
    )
}

/// Builds the release binaries of the forwarder and the lab; returns their
/// directory.
pub fn release_bins() -> anyhow::Result<PathBuf> {
    // Two builds: in one, cargo would unify the features the lab asks of
    // shared dependencies into the product's binary.
    for package in ["xdp-forwarder", "xdp-forwarder-lab"] {
        cargo(&["build", "--release", "--bins", "--package", package])?;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release"))
}

/// `xdp-forwarder-lab vm-demo ARGS`, with the release binaries.
pub fn vm_demo(args: &[String]) -> anyhow::Result<()> {
    if !crate::is_root() {
        bail!("the VM demo creates namespaces, taps and QEMU guests: run it as root");
    }
    let bins = release_bins()?;
    status(Command::new(bins.join("xdp-forwarder-lab")).arg("fetch"))?;
    status(
        Command::new(bins.join("xdp-forwarder-lab"))
            .arg("vm-demo")
            .args(args),
    )
}
