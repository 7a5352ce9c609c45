//! `cargo xtask demo`: builds the CLI and runs `xdp-forwarder demo`, which
//! builds its own throw-away namespaces, sends traffic, reports and cleans up.

use std::{path::PathBuf, process::Command};

use anyhow::bail;

use crate::{cargo, status};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if !crate::is_root() {
        bail!("the demo creates network namespaces and loads XDP programs: run it as root");
    }
    cargo(&["build", "--package", "xdp-forwarder"])?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    status(
        Command::new(target.join("debug").join("xdp-forwarder"))
            .arg("demo")
            .args(args),
    )
}
