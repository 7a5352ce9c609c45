//! The lab beside the forwarder: what proves it and shows it, never part
//! of a net-vm. The sandbox [`demo`] (namespaces, real traffic, a report),
//! the [`bench`]mark and its eBPF helpers ([`objects`]); guests on Debian's
//! kernels with virtio-net NICs ([`vm`]), the kernels and a recent libbpf
//! they need ([`debian`], [`libbpf`], [`cache`]), the traffic helpers the
//! guests run ([`traffic`]), and the product's manual pages and completions
//! ([`docs`]).

pub mod bench;
pub mod cache;
pub mod converge_bench;
pub mod debian;
pub mod demo;
pub mod docs;
pub mod elf;
pub mod libbpf;
pub mod libc_bench;
pub mod objects;
pub mod traffic;
pub mod vm;

pub use xdp_forwarder_testkit::{cmd, netns, packet, run};

/// Where the workspace's binaries are: `XDP_FORWARDER_BINS` (`cargo xtask
/// test` points it at the release build), else the directory of the
/// running one (`target/PROFILE`, also for test binaries in its `deps/`).
pub fn bins_dir() -> anyhow::Result<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("XDP_FORWARDER_BINS") {
        return Ok(dir.into());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(std::path::Path::new("/"));
    Ok(if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// Panics (never skips) unless root: the lab's tests need the real kernel
/// (namespaces, XDP programs, guests). `what` says what they do.
pub fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("{what}: run them as root (see the README)");
    }
}

/// `cargo xtask ARGS` in the workspace (the install and package tests run
/// the same commands a user would); its stdout.
pub fn xtask(args: &[&str]) -> anyhow::Result<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .arg("xtask")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cargo xtask {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
