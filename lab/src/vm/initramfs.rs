//! The guests' initramfs: busybox-static, the forwarder's binaries (the
//! ones the caller names, stripped) and the lab's, the shared libraries
//! they need, iproute2's `ip` (busybox's has no `ip netns`), the kernel's
//! virtio, e1000e, igb and 802.1Q modules, contrib/ and a small init that hands
//! the host a shell on a virtio-serial port.

use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::{debian::Kernel, debian::path_str, run};

/// Where contrib/ lands in the guest (as an install would put it).
pub const GUEST_CONTRIB: &str = "/usr/share/xdp-forwarder/contrib";

/// What goes into the image besides the kernel's modules.
pub struct Contents {
    /// The directory holding `xdp-forwarder`.
    pub bins: PathBuf,
    /// The lab binary (guest-side traffic helpers).
    pub lab: PathBuf,
    /// The project's contrib/ directory.
    pub contrib: PathBuf,
}

impl Contents {
    /// The binaries in [`crate::bins_dir`], this source tree's contrib/.
    pub fn of_this_build() -> anyhow::Result<Self> {
        let bins = crate::bins_dir()?;
        Ok(Self {
            lab: bins.join("xdp-forwarder-lab"),
            bins,
            contrib: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contrib"),
        })
    }
}

const INIT: &str = r#"#!/bin/busybox sh
# Lab guest init: mounts, modules, then a shell for the host on the
# virtio-serial port "xfd-ctl" (kernel messages go to ttyS0). The port is
# opened once (it allows one open) and feeds the shell through a pipe.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns /var /etc/mdev
ln -s /run /var/run
depmod
# The kernel loads modules on demand through /sbin/modprobe (tc's
# clsact and cls_bpf, on kernels that build them as modules: 6.1).
ln -s /bin/busybox /sbin/modprobe
for m in virtio_pci virtio_console virtio_net e1000e igb 8021q sch_ingress cls_bpf; do modprobe "$m" 2>/dev/null; done
sysctl -qw net.ipv6.conf.all.disable_ipv6=1
sysctl -qw net.ipv6.conf.default.disable_ipv6=1
ip link set lo up
for p in /sys/class/virtio-ports/*; do
	[ "$(cat "$p/name")" = xfd-ctl ] && port=/dev/${p##*/}
done
exec 3<>"$port"
echo @@XFD-READY@@ >&3
exec sh -c 'cat <&3 | sh >&3 2>&1'
"#;

/// Builds the image for `kernel` at `out` (an uncompressed newc cpio: the
/// kernel unpacks it faster than a compressed one under emulation).
pub fn build(kernel: &Kernel, contents: &Contents, out: &Path) -> anyhow::Result<()> {
    let stage = out.with_extension("stage");
    let _ = fs::remove_dir_all(&stage);
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "run", "tmp", "etc", "root",
    ] {
        fs::create_dir_all(stage.join(d))?;
    }
    fs::copy("/bin/busybox", stage.join("bin/busybox"))
        .context("no /bin/busybox: install busybox-static (`cargo xtask setup` does)")?;
    // (A dynamic busybox gets its libraries like the rest.)
    let mut elves = vec![stage.join("bin/busybox")];
    for (from, to) in [
        (contents.bins.join("xdp-forwarder"), "usr/bin/xdp-forwarder"),
        (contents.lab.clone(), "usr/bin/xdp-forwarder-lab"),
    ] {
        let to = stage.join(to);
        run("strip", &["-o", path_str(&to)?, path_str(&from)?])
            .with_context(|| format!("cannot put {} into the guest image", from.display()))?;
        elves.push(to);
    }
    // The original tool's name: the same binary, which dispatches on argv[0].
    std::os::unix::fs::symlink("xdp-forwarder", stage.join("usr/bin/set-router-iface"))?;
    let ip = stage.join("usr/sbin/ip");
    fs::copy("/usr/sbin/ip", &ip).context("no /usr/sbin/ip: install iproute2")?;
    elves.push(ip);
    copy_libraries(&elves, &stage)?;
    run(
        "cp",
        &[
            "-r",
            path_str(&kernel.modules.join("lib"))?,
            path_str(&stage)?,
        ],
    )?;
    let contrib = stage.join(GUEST_CONTRIB.trim_start_matches('/'));
    fs::create_dir_all(contrib.parent().unwrap())?;
    run(
        "cp",
        &["-r", path_str(&contents.contrib)?, path_str(&contrib)?],
    )?;
    write_executable(&stage.join("init"), INIT)?;
    // As in any image: mdev rules name their owner (`root:root`).
    fs::write(stage.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(stage.join("etc/group"), "root:x:0:\n")?;
    cpio(&stage, out)?;
    fs::remove_dir_all(&stage)?;
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Copies every shared library `elves` load (as `ldd` resolves them here)
/// to the same path in `stage`.
fn copy_libraries(elves: &[PathBuf], stage: &Path) -> anyhow::Result<()> {
    let mut libs = BTreeSet::new();
    for elf in elves {
        let out = Command::new("ldd").arg(elf).output()?;
        // "not a dynamic executable" (exit 1) is fine: nothing to copy.
        for word in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if word.starts_with('/') {
                libs.insert(PathBuf::from(word));
            }
        }
    }
    for lib in libs {
        let to = stage.join(lib.strip_prefix("/")?);
        fs::create_dir_all(to.parent().unwrap())?;
        // Follow symlinks: the guest gets the file under the name ldd used.
        fs::copy(&lib, &to).with_context(|| format!("cannot copy {}", lib.display()))?;
    }
    Ok(())
}

/// `find . | cpio -o -H newc` in `stage`, owned by root.
fn cpio(stage: &Path, out: &Path) -> anyhow::Result<()> {
    let mut names = Vec::new();
    collect(stage, stage, &mut names)?;
    let file = fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "-R", "0:0", "--quiet"])
        .current_dir(stage)
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("cannot run cpio (install it: `cargo xtask setup`)")?;
    child
        .stdin
        .take()
        .context("cpio stdin")?
        .write_all(names.join("\n").as_bytes())?;
    if !child.wait()?.success() {
        bail!("cpio failed writing {}", out.display());
    }
    Ok(())
}

fn collect(root: &Path, dir: &Path, names: &mut Vec<String>) -> anyhow::Result<()> {
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        names.push(format!(
            "./{}",
            path.strip_prefix(root)?
                .to_str()
                .context("non-UTF-8 name")?
        ));
        if path.is_dir() && !path.is_symlink() {
            collect(root, &path, names)?;
        }
    }
    Ok(())
}
