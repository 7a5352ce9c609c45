//! Builds the XDP programs (nightly, bpfel-unknown-none, bpf-linker) and puts
//! the objects in OUT_DIR, from where `objects.rs` embeds the lab's own
//! (the benchmark's floor, generator and sink).
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
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
