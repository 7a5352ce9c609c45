//! `cargo xtask dist [--out DIR]`: what a distribution's package recipe
//! (Nix's among them) fetches or builds, in one directory:
//!
//! ```text
//! DIR/x86_64-unknown-linux-musl/xdp-forwarder    static, EM_X86_64
//! DIR/aarch64-unknown-linux-musl/xdp-forwarder   static, EM_AARCH64
//! DIR/objects/prog_physical.o, prog_router.o     `export-objects` (libbpf 1.3 and later)
//! DIR/objects/libbpf-1.1/prog_physical.o, …      `export-objects --libbpf-1.1`
//! DIR/SHA256SUMS                                 `sha256sum -c SHA256SUMS` in DIR
//! ```
//!
//! One directory per target, named by its Rust triple, so that each binary
//! keeps its own name: it dispatches on `argv[0]` (`set-router-iface` is a
//! link to it), and a recipe installs `TRIPLE/xdp-forwarder` as
//! `bin/xdp-forwarder` unchanged. The objects are written once, from the
//! x86_64 binary: eBPF is not the CPU's code, and the aarch64 binary embeds
//! the same programs (instructions, maps, relocations); only their BTF line
//! info differs, naming aya-ebpf-bindings' `src/aarch64/helpers.rs` instead
//! of `src/x86_64/helpers.rs` (aya-build builds the programs with the
//! target's arch), which no loader or verifier decision reads.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    run_cli::{Target, release_product, target_dir},
    status_to_stderr,
};

/// Writes the distribution into `out` (default `TARGET_DIR/dist`, emptied
/// first; a directory the caller names is not emptied, its files are
/// overwritten); returns every file written, SHA256SUMS last.
pub fn run(out: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let out = match out {
        Some(dir) => dir.to_owned(),
        None => {
            let dir = target_dir().join("dist");
            let _ = fs::remove_dir_all(&dir);
            dir
        }
    };
    let mut files = Vec::new();
    for target in Target::ALL {
        let bins = release_product(target)?;
        let dir = out.join(target.triple());
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let exe = dir.join("xdp-forwarder");
        fs::copy(bins.join("xdp-forwarder"), &exe)
            .with_context(|| format!("cannot write {}", exe.display()))?;
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755))?;
        files.push(exe);
    }

    // The host runs the x86_64 binary; its programs are the aarch64 one's.
    let exe = out.join(Target::X86_64.triple()).join("xdp-forwarder");
    let objects = out.join("objects");
    status_to_stderr(Command::new(&exe).arg("export-objects").arg(&objects))?;
    files.extend(["prog_physical.o", "prog_router.o"].map(|o| objects.join(o)));
    // --libbpf-1.1 also pins router_iface in --pin-dir when it can: here a
    // plain directory, which it refuses (a note on stderr), so that building
    // a distribution touches no bpffs.
    let old = objects.join("libbpf-1.1");
    let export = Command::new(&exe)
        .arg("--pin-dir")
        .arg(&old)
        .args(["export-objects", "--libbpf-1.1"])
        .arg(&old)
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !export.status.success() {
        bail!(
            "{} export-objects --libbpf-1.1 failed: {}",
            exe.display(),
            String::from_utf8_lossy(&export.stderr)
        );
    }
    files.extend(["prog_physical.o", "prog_router.o"].map(|o| old.join(o)));

    let sums = out.join("SHA256SUMS");
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(&out)
                .expect("written under out")
                .display()
                .to_string()
        })
        .collect();
    let sha = Command::new("sha256sum")
        .arg("--")
        .args(&names)
        .current_dir(&out)
        .output()
        .context("cannot run sha256sum")?;
    if !sha.status.success() {
        bail!("sha256sum failed: {}", String::from_utf8_lossy(&sha.stderr));
    }
    fs::write(&sums, sha.stdout).with_context(|| format!("cannot write {}", sums.display()))?;
    files.push(sums);
    Ok(files)
}
