//! The build scripts of the crates that embed eBPF objects (the forwarder
//! its two programs, the lab its benchmark helpers): build the XDP programs
//! (nightly, bpfel-unknown-none, bpf-linker) into OUT_DIR.
use anyhow::{Context as _, anyhow};

/// Builds every program of the `xdp-forwarder-ebpf` crate into OUT_DIR.
pub fn build_ebpf() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "xdp-forwarder-ebpf")
        .ok_or_else(|| anyhow!("xdp-forwarder-ebpf is not in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    if which_bpf_linker().is_none() {
        println!(
            "cargo:warning=bpf-linker is not on PATH: run `cargo xtask setup` first (it installs bpf-linker and nightly rust-src)"
        );
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the XDP programs failed; `cargo xtask setup` installs what that needs")
}

fn which_bpf_linker() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bpf-linker"))
        .find(|p| p.is_file())
}
