//! `cargo xtask demo` and `cargo xtask bench`: build the CLI and run its
//! `demo` (throw-away namespaces, traffic, report, clean-up) or `bench`
//! (results into docs/benchmarks.md and docs/benchmarks.svg).

use std::{path::PathBuf, process::Command};

use anyhow::bail;

use crate::{cargo, status};

/// `xdp-forwarder SUBCOMMAND ARGS`, freshly built.
pub fn run(subcommand: &str, args: &[String]) -> anyhow::Result<()> {
    if !crate::is_root() {
        bail!("`{subcommand}` creates network namespaces and loads XDP programs: run it as root");
    }
    cargo(&["build", "--package", "xdp-forwarder"])?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    status(
        Command::new(target.join("debug").join("xdp-forwarder"))
            .arg(subcommand)
            .args(args),
    )
}
