//! `cargo xtask install [--destdir DIR] [--prefix /usr]`: the product as a
//! distribution lays it out. Under DESTDIR/PREFIX:
//! - `bin/xdp-forwarder` (the static x86_64 binary: it needs no C library
//!   on the machine), and `bin/set-router-iface` a link to it;
//! - `lib/xdp/prog_physical.o`, `prog_router.o` (where the original's mdev
//!   hook loads them from);
//! - `share/man/man8/`: `xdp-forwarder.8`, one page per subcommand,
//!   `set-router-iface.8`;
//! - bash, zsh and fish completions where Debian's shells look for them;
//! - `share/doc/xdp-forwarder/`: net-vm.md, architecture.md, status.md
//!   (the pages the unit, the manual pages and the messages point at);
//! - `lib/systemd/system/xdp-forwarder.service` (where systemd looks for a
//!   prefix's units; not enabled), `lib/xdp-forwarder/mdev/iface` and
//!   `coldplug` (the path an mdev.conf rule names; nothing runs them until
//!   the operator adds that rule);
//! - `share/xdp-forwarder/contrib/`: the service files and the mdev hook.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    run_cli::{Target, release_bins},
    status_to_stderr,
};

/// Installs under `destdir` (default `/`) + `prefix`; returns every file.
pub fn run(destdir: Option<&Path>, prefix: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !prefix.is_absolute() {
        bail!("--prefix {} must be absolute", prefix.display());
    }
    let root = destdir
        .unwrap_or(Path::new("/"))
        .join(prefix.strip_prefix("/").unwrap_or(prefix));
    let bins = release_bins(Target::X86_64)?;
    let lab = bins.join("xdp-forwarder-lab");
    let mut files = Vec::new();

    let bin = root.join("bin");
    fs::create_dir_all(&bin)?;
    let exe = bin.join("xdp-forwarder");
    fs::copy(bins.join("xdp-forwarder"), &exe)
        .with_context(|| format!("cannot install {}", exe.display()))?;
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755))?;
    files.push(exe.clone());
    let link = bin.join("set-router-iface");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("xdp-forwarder", &link)?;
    files.push(link);

    let objects = root.join("lib/xdp");
    status_to_stderr(Command::new(&exe).arg("export-objects").arg(&objects))?;
    files.extend(["prog_physical.o", "prog_router.o"].map(|o| objects.join(o)));

    let man = root.join("share/man/man8");
    let out = Command::new(&lab).arg("man").arg(&man).output()?;
    if !out.status.success() {
        bail!(
            "cannot write the manual pages: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    files.extend(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(PathBuf::from),
    );

    for (shell, path) in [
        ("bash", "share/bash-completion/completions/xdp-forwarder"),
        ("zsh", "share/zsh/vendor-completions/_xdp-forwarder"),
        ("fish", "share/fish/vendor_completions.d/xdp-forwarder.fish"),
    ] {
        let out = Command::new(&lab).args(["completions", shell]).output()?;
        if !out.status.success() {
            bail!("cannot generate {shell} completions");
        }
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap())?;
        fs::write(&path, out.stdout)?;
        files.push(path);
    }

    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = root.join("share/doc/xdp-forwarder");
    fs::create_dir_all(&doc)?;
    for page in DOCS {
        let to = doc.join(page);
        fs::copy(source.join("docs").join(page), &to)
            .with_context(|| format!("cannot install {}", to.display()))?;
        files.push(to);
    }
    // The unit names the binary and the docs under this prefix.
    let unit = fs::read_to_string(source.join("contrib/systemd/xdp-forwarder.service"))?;
    let prefix_str = prefix.display().to_string();
    let unit = unit
        .replace("/usr/bin/", &format!("{prefix_str}/bin/"))
        .replace("/usr/share/", &format!("{prefix_str}/share/"));
    let units = root.join("lib/systemd/system");
    fs::create_dir_all(&units)?;
    fs::write(units.join("xdp-forwarder.service"), unit)?;
    files.push(units.join("xdp-forwarder.service"));
    let mdev = root.join("lib/xdp-forwarder/mdev");
    fs::create_dir_all(&mdev)?;
    for script in ["iface", "coldplug"] {
        let to = mdev.join(script);
        fs::copy(source.join("contrib/mdev").join(script), &to)
            .with_context(|| format!("cannot install {}", to.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
        files.push(to);
    }

    let contrib = source.join("contrib");
    copy_tree(
        &contrib,
        &root.join("share/xdp-forwarder/contrib"),
        &mut files,
    )?;
    Ok(files)
}

/// The pages installed in share/doc/xdp-forwarder (from docs/).
const DOCS: [&str; 3] = ["net-vm.md", "architecture.md", "status.md"];

/// Copies `from` into `to` recursively, keeping each file's mode.
fn copy_tree(from: &Path, to: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target, files)?;
        } else {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot install {}", target.display()))?;
            files.push(target);
        }
    }
    Ok(())
}
