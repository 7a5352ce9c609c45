//! Installs what the build and the tests need, each step skipped when done:
//! Debian packages, the musl targets of the static release binaries (x86_64
//! and aarch64; the aarch64 one links with rustup's own rust-lld, see
//! .cargo/config.toml), nightly's rust-src, and bpf-linker 0.13 built
//! against the nightly toolchain's own libLLVM (no prebuilt binaries: only
//! registries are reachable).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{run_cli::Target, status_to_stderr};

/// Debian packages: (package, a file it installs).
const APT: &[(&str, &str)] = &[
    ("iproute2", "/usr/sbin/ip"),
    ("ethtool", "/usr/sbin/ethtool"),
    ("bpftool", "/usr/sbin/bpftool"),
    ("xdp-tools", "/usr/sbin/xdp-loader"),
    ("util-linux", "/usr/bin/setpriv"),
    ("procps", "/usr/sbin/sysctl"),
    // `cargo xtask install`'s test renders the manual pages.
    ("man-db", "/usr/bin/man"),
    // `cargo xtask deb`'s test checks the package.
    ("lintian", "/usr/bin/lintian"),
    // The demo pings across the forwarder.
    ("iputils-ping", "/usr/bin/ping"),
    // TCP through the forwarder: the demo's TCP rows, the bench's TCP
    // measurements (against Linux bridges) and the tests that run them.
    // Its debconf question (start a daemon?) takes its default, no: apt()
    // installs with DEBIAN_FRONTEND=noninteractive.
    ("iperf3", "/usr/bin/iperf3"),
    // The VM lab: guests, their initramfs (busybox, stripped binaries,
    // cpio), and libbpf built from source for the original-hook test.
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("busybox-static", "/bin/busybox"),
    ("cpio", "/usr/bin/cpio"),
    ("binutils", "/usr/bin/strip"),
    ("make", "/usr/bin/make"),
    ("pkg-config", "/usr/bin/pkg-config"),
    ("libelf-dev", "/usr/include/libelf.h"),
    ("zlib1g-dev", "/usr/include/zlib.h"),
    // `cargo xtask dist`'s test runs the aarch64 binary under user-mode
    // emulation, and asks `file` whether the binaries are static.
    ("qemu-user-static", "/usr/bin/qemu-aarch64-static"),
    ("file", "/usr/bin/file"),
];
const BPF_LINKER_VERSION: &str = "0.13.0";
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// The LLVM major bpf-linker is built for; nightly's must match.
const LLVM_MAJOR: &str = "22";

pub fn run() -> anyhow::Result<()> {
    apt()?;
    rust_targets()?;
    rust_src()?;
    bpf_linker()?;
    cargo_fuzz()
}

/// cargo-fuzz, for the fuzz target the test command runs.
fn cargo_fuzz() -> anyhow::Result<()> {
    if output(Command::new("cargo").args(["fuzz", "--version"]))
        .is_ok_and(|v| v.contains(CARGO_FUZZ_VERSION))
    {
        return Ok(());
    }
    eprintln!("setup: installing cargo-fuzz {CARGO_FUZZ_VERSION} (about a minute)");
    status_to_stderr(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
    .context("installing cargo-fuzz failed")
}

fn apt() -> anyhow::Result<()> {
    let missing: Vec<&str> = APT
        .iter()
        .filter(|(_, f)| !Path::new(f).exists())
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !crate::is_root() {
        bail!(
            "missing Debian packages {missing:?}: run `cargo xtask setup` as root (it uses apt-get)"
        );
    }
    eprintln!("setup: installing {missing:?}");
    status_to_stderr(Command::new("apt-get").arg("update").arg("-q"))?;
    status_to_stderr(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `rustup target add` for the static release binaries' targets, on the
/// toolchain `cargo` runs (rustup's proxy names it in RUSTUP_TOOLCHAIN).
fn rust_targets() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("the release binaries' targets are added with rustup: install rustup")?;
    let missing: Vec<&str> = Target::ALL
        .iter()
        .map(|t| t.triple())
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: adding the Rust targets {missing:?}");
    status_to_stderr(
        Command::new("rustup")
            .args(["target", "add"])
            .args(&missing),
    )
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", "nightly"]))
        .context("the eBPF programs build with the nightly toolchain: install it with `rustup toolchain install nightly`")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("setup: adding rust-src to nightly");
    status_to_stderr(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

fn bpf_linker() -> anyhow::Result<()> {
    if let Ok(v) = output(Command::new("bpf-linker").arg("--version"))
        && v.contains(BPF_LINKER_VERSION)
    {
        return Ok(());
    }
    let verbose = output(Command::new("rustc").args(["+nightly", "--version", "--verbose"]))?;
    let llvm = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("nightly rustc does not report its LLVM version")?;
    if llvm.split('.').next() != Some(LLVM_MAJOR) {
        bail!(
            "nightly's LLVM is {llvm}, but bpf-linker {BPF_LINKER_VERSION} is built here with feature \
             llvm-{LLVM_MAJOR}: pin a nightly whose LLVM major is {LLVM_MAJOR}, or change LLVM_MAJOR in \
             xtask/src/setup.rs to a feature bpf-linker offers"
        );
    }
    let sysroot = PathBuf::from(
        output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?.trim(),
    );
    let libllvm = std::fs::read_dir(sysroot.join("lib"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("libLLVM.so.{LLVM_MAJOR}")))
        })
        .with_context(|| format!("no libLLVM.so.{LLVM_MAJOR}* in {}/lib", sysroot.display()))?;
    // bpf-linker keeps this folder as its run-time library path: it must stay.
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let prefix = home.join("bpf-linker-llvm");
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib)?;
    for name in [
        PathBuf::from("libLLVM.so"),
        PathBuf::from(libllvm.file_name().unwrap()),
    ] {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("symlink {}", link.display()))?;
    }
    eprintln!(
        "setup: building bpf-linker {BPF_LINKER_VERSION} against {} (about a minute)",
        libllvm.display()
    );
    status_to_stderr(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{LLVM_MAJOR}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )
    .context("building bpf-linker failed")
}
