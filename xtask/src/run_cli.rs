//! `cargo xtask demo` and `cargo xtask bench`: build the forwarder and the
//! lab, and run the lab's `demo` (throw-away namespaces, traffic, report,
//! clean-up) or `bench` (results into docs/benchmarks.md and
//! docs/benchmarks.svg); `cargo xtask demo --vm`: the lab's VM demo. And
//! the release builds every task shares ([`release_bins`]).

use std::{path::PathBuf, process::Command};

use anyhow::bail;

use crate::{cargo, status};

/// What the product ships for: static executables (musl, linked with its
/// own libc.a; no interpreter, nothing to install beside them), one per CPU.
/// The x86_64 one is what `install`, `deb`, the demo, the bench and the VM
/// lab's guests run; the aarch64 one is built by `test` and `dist`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    X86_64,
    Aarch64,
}

impl Target {
    pub const ALL: [Self; 2] = [Self::X86_64, Self::Aarch64];

    /// The Rust target triple (`rustup target add` installs it; setup does).
    pub fn triple(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-unknown-linux-musl",
            Self::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }
}

/// `xdp-forwarder-lab SUBCOMMAND ARGS`, freshly built (release: the bench
/// measures it, and the demo runs the `xdp-forwarder` beside it).
pub fn run(subcommand: &str, args: &[String]) -> anyhow::Result<()> {
    if !crate::is_root() {
        bail!("`{subcommand}` creates network namespaces and loads XDP programs: run it as root");
    }
    let bins = release_bins(Target::X86_64)?;
    status(
        Command::new(bins.join("xdp-forwarder-lab"))
            .arg(subcommand)
            .args(args),
    )
}

/// Builds the release binaries of the forwarder and the lab for `target`;
/// returns their directory, `TARGET_DIR/TRIPLE/release`.
pub fn release_bins(target: Target) -> anyhow::Result<PathBuf> {
    release_build(target, &["xdp-forwarder", "xdp-forwarder-lab"])
}

/// [`release_bins`], the product's binary alone (`dist`).
pub fn release_product(target: Target) -> anyhow::Result<PathBuf> {
    release_build(target, &["xdp-forwarder"])
}

fn release_build(target: Target, packages: &[&str]) -> anyhow::Result<PathBuf> {
    // One build per package: in one, cargo would unify the features the lab
    // asks of shared dependencies into the product's binary.
    for package in packages {
        cargo(&[
            "build",
            "--release",
            "--bins",
            "--package",
            package,
            "--target",
            target.triple(),
        ])?;
    }
    Ok(target_dir().join(target.triple()).join("release"))
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// `xdp-forwarder-lab vm-demo ARGS`, with the release binaries.
pub fn vm_demo(args: &[String]) -> anyhow::Result<()> {
    if !crate::is_root() {
        bail!("the VM demo creates namespaces, taps and QEMU guests: run it as root");
    }
    let bins = release_bins(Target::X86_64)?;
    status(Command::new(bins.join("xdp-forwarder-lab")).arg("fetch"))?;
    status(
        Command::new(bins.join("xdp-forwarder-lab"))
            .arg("vm-demo")
            .args(args),
    )
}
