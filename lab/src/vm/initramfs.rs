//! The guests' initramfs, as a Spectrum net-vm has it: no C library at all.
//! busybox-static (its `ip`, `nsenter`, `unshare`, `mdev`… are the guests'
//! tools), the forwarder's static binaries (the ones the caller names) and
//! the lab's (the guest-side traffic helpers), the kernel's
//! virtio, e1000e, igb and 802.1Q modules, contrib/ and a small init that
//! hands the host a shell on a virtio-serial port. Nothing comes from the
//! host's `/lib`: building the image refuses any dynamically linked ELF
//! (one with a `PT_INTERP` program header), naming it and the fix.
//!
//! One exemption, for the Wi-Fi lab only (issue 26): [`WIFI_TOOLS`] holds
//! Debian's hostapd, wpa_supplicant, iwd, iw, dbus-daemon and radvd with
//! their own glibc ([`debian::wifi_tools`]). They stand for the access
//! point and for Spectrum's musl-built iwd, which no archive has; the guest
//! runs them through that directory's loader explicitly (the scripts in
//! `WIFI_TOOLS/run/`), nothing lands in `/lib` or `/usr/lib`, and every
//! other file of the image is still refused if it is dynamic
//! ([`refuse_dynamic_in`]).

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::{
    debian::{self, Arch, Kernel, path_str},
    elf::Elf,
    run,
};

/// Where contrib/ lands in the guest (as an install would put it).
pub const GUEST_CONTRIB: &str = "/usr/share/xdp-forwarder/contrib";

/// The Wi-Fi lab's private directory in the guest: `bin/` (dynamic
/// programs), `lib/` (their glibc and libraries) and `run/PROGRAM`, a
/// script that runs `bin/PROGRAM` through `lib/`'s loader. The one place
/// of the image where a dynamically linked ELF may be.
pub const WIFI_TOOLS: &str = "/wifi-tools";

/// What goes into the image besides the kernel's modules. Every ELF among
/// them must be statically linked ([`refuse_dynamic`]).
pub struct Contents {
    /// The directory holding `xdp-forwarder`.
    pub bins: PathBuf,
    /// The lab binary (guest-side traffic helpers).
    pub lab: PathBuf,
    /// busybox-static for the guests' CPU.
    pub busybox: PathBuf,
    /// The project's contrib/ directory.
    pub contrib: PathBuf,
    /// The Wi-Fi lab's programs ([`debian::wifi_tools`]), put under
    /// [`WIFI_TOOLS`]; the guests then boot the kernel with the Wi-Fi
    /// modules ([`debian::wifi_kernel`]). `None` in every other lab.
    pub wifi_tools: Option<PathBuf>,
}

impl Contents {
    /// The binaries in [`crate::bins_dir`] (`XDP_FORWARDER_BINS`: static
    /// ones, e.g. `target/x86_64-unknown-linux-musl/release`), the
    /// machine's busybox-static, this source tree's contrib/.
    pub fn of_this_build() -> anyhow::Result<Self> {
        let bins = crate::bins_dir()?;
        Ok(Self {
            lab: bins.join("xdp-forwarder-lab"),
            bins,
            busybox: PathBuf::from("/bin/busybox"),
            contrib: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contrib"),
            wifi_tools: None,
        })
    }

    /// [`Self::of_this_build`] with the Wi-Fi lab's programs (fetched into
    /// the lab cache first if needed).
    pub fn with_wifi() -> anyhow::Result<Self> {
        Ok(Self {
            wifi_tools: Some(debian::wifi_tools()?),
            ..Self::of_this_build()?
        })
    }

    /// What guests of `arch` run: on x86_64 [`Self::of_this_build`]; on
    /// aarch64 the binaries in `XDP_FORWARDER_BINS_AARCH64` (else this
    /// workspace's `target/aarch64-unknown-linux-musl/release`) and
    /// Debian's busybox-static for arm64 (fetched into the lab cache).
    pub fn for_arch(arch: Arch) -> anyhow::Result<Self> {
        if arch == Arch::Amd64 {
            return Self::of_this_build();
        }
        let bins = std::env::var_os(arch.bins_var()).map_or_else(
            || {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../target")
                    .join(arch.rust_target())
                    .join("release")
            },
            PathBuf::from,
        );
        if !bins.join("xdp-forwarder").exists() {
            bail!(
                "no {arch} binaries in {}: build them with `cargo build --release --bins -p \
                 xdp-forwarder -p xdp-forwarder-lab --target {}` and set {} to that directory \
                 (`cargo xtask test` does)",
                bins.display(),
                arch.rust_target(),
                arch.bins_var()
            );
        }
        Ok(Self {
            lab: bins.join("xdp-forwarder-lab"),
            bins,
            busybox: debian::busybox(arch)?,
            contrib: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contrib"),
            wifi_tools: None,
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
    refuse_dynamic(&contents.busybox)
        .context("the guests' busybox must be busybox-static (`cargo xtask setup` installs it)")?;
    fs::copy(&contents.busybox, stage.join("bin/busybox")).with_context(|| {
        format!(
            "no {}: install busybox-static (`cargo xtask setup` does)",
            contents.busybox.display()
        )
    })?;
    for (from, to) in [
        (contents.bins.join("xdp-forwarder"), "usr/bin/xdp-forwarder"),
        (contents.lab.clone(), "usr/bin/xdp-forwarder-lab"),
    ] {
        refuse_dynamic(&from)?;
        // Copied as they are: the release profile strips them already (and
        // the machine's GNU strip knows no aarch64 ELF).
        fs::copy(&from, stage.join(to))
            .with_context(|| format!("cannot put {} into the guest image", from.display()))?;
    }
    // The original tool's name: the same binary, which dispatches on argv[0].
    std::os::unix::fs::symlink("xdp-forwarder", stage.join("usr/bin/set-router-iface"))?;
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
    if let Some(tools) = &contents.wifi_tools {
        put_wifi_tools(tools, &stage)?;
    }
    write_executable(&stage.join("init"), INIT)?;
    // As in any image: mdev rules name their owner (`root:root`).
    fs::write(stage.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(stage.join("etc/group"), "root:x:0:\n")?;
    refuse_dynamic_in(&stage)?;
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

/// Copies the Wi-Fi programs' directory `tools` (`bin/`, `lib/`) to
/// [`WIFI_TOOLS`] in `stage`, with a `run/PROGRAM` script per program that
/// starts it through the directory's own loader.
fn put_wifi_tools(tools: &Path, stage: &Path) -> anyhow::Result<()> {
    let to = stage.join(WIFI_TOOLS.trim_start_matches('/'));
    fs::create_dir_all(to.join("run"))?;
    for sub in ["bin", "lib"] {
        run(
            "cp",
            &["-r", path_str(&tools.join(sub))?, path_str(&to.join(sub))?],
        )?;
    }
    for e in fs::read_dir(tools.join("bin"))? {
        let name = e?.file_name();
        let name = name
            .to_str()
            .context("a Wi-Fi program with a non-UTF-8 name")?;
        write_executable(
            &to.join("run").join(name),
            &format!(
                "#!/bin/sh
exec {WIFI_TOOLS}/lib/{} --library-path {WIFI_TOOLS}/lib \
                 --argv0 {name} {WIFI_TOOLS}/bin/{name} \"$@\"\n",
                debian::GLIBC_LOADER
            ),
        )?;
    }
    Ok(())
}

/// [`refuse_dynamic`] on every file of the image staged at `stage`, but
/// those under [`WIFI_TOOLS`] (the Wi-Fi lab's one exemption: programs run
/// through their own loader there, never by the kernel's `PT_INTERP`).
pub fn refuse_dynamic_in(stage: &Path) -> anyhow::Result<()> {
    let exempt = stage.join(WIFI_TOOLS.trim_start_matches('/'));
    let mut dirs = vec![stage.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let e = e?;
            let path = e.path();
            let kind = e.file_type()?;
            if kind.is_dir() {
                if path != exempt {
                    dirs.push(path);
                }
            } else if kind.is_file() {
                refuse_dynamic(&path)?;
            }
        }
    }
    Ok(())
}

/// Fails when `path` is a dynamically linked ELF executable: one with a
/// `PT_INTERP` program header, which makes the kernel start the loader it
/// names (`/lib64/ld-linux-x86-64.so.2`, `/lib/ld-musl-aarch64.so.1`…)
/// first, and no guest has one. Static and static-pie executables have
/// none. Files that are not ELF (scripts) pass. The error names the file,
/// its loader and how to build static binaries.
pub fn refuse_dynamic(path: &Path) -> anyhow::Result<()> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !Elf::is_elf(&bytes) {
        return Ok(());
    }
    let elf = Elf::parse(&bytes)
        .with_context(|| format!("{} is not a well-formed ELF file", path.display()))?;
    match elf.interpreter {
        None => Ok(()),
        Some(loader) => bail!(
            "{} is dynamically linked (its loader: {}): the VM lab's guests carry no C \
             library, as a Spectrum net-vm has none. Use static binaries: `cargo build \
             --release --bins -p xdp-forwarder -p xdp-forwarder-lab --target \
             x86_64-unknown-linux-musl` (aarch64-unknown-linux-musl for the aarch64 guests) \
             and point XDP_FORWARDER_BINS (XDP_FORWARDER_BINS_AARCH64) at the target's \
             release directory; `cargo xtask test` does both",
            path.display(),
            loader.display()
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use object::elf::PT_INTERP;

    /// A minimal little-endian ELF64 executable: its header and `phdrs`
    /// program headers (type, file offset, size), then `tail`.
    fn elf64(phdrs: &[(u32, u64, u64)], tail: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 64];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2; // ELFCLASS64
        e[5] = 1; // ELFDATA2LSB
        e[6] = 1; // EV_CURRENT
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        e[0x38..0x3a].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(kind, offset, size) in phdrs {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&kind.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            e.extend(ph);
        }
        e.extend_from_slice(tail);
        e
    }

    fn written(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xfd-initramfs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_dynamically_linked_elf_is_refused_naming_its_loader_and_the_fix() {
        let loader = b"/lib64/ld-linux-x86-64.so.2\0";
        // PT_LOAD, then PT_INTERP pointing past the two headers.
        let at = 64 + 2 * 56;
        let elf = elf64(&[(1, 0, 0), (PT_INTERP, at, loader.len() as u64)], loader);
        let path = written("dynamic", &elf);
        let err = format!("{:#}", refuse_dynamic(&path).unwrap_err());
        assert!(err.contains("dynamically linked"), "{err}");
        assert!(err.contains("/lib64/ld-linux-x86-64.so.2"), "{err}");
        assert!(err.contains("XDP_FORWARDER_BINS"), "{err}");
        // And the machine's own dynamic executables (Debian's coreutils).
        assert!(refuse_dynamic(Path::new("/bin/ls")).is_err());
    }

    #[test]
    fn static_elves_and_scripts_pass() {
        let elf = elf64(&[(1, 0, 0), (2, 0, 0)], &[]);
        refuse_dynamic(&written("static", &elf)).unwrap();
        refuse_dynamic(&written("script", b"#!/bin/sh\nexit 0\n")).unwrap();
    }

    /// A staged image holding `files` (path, contents).
    fn staged(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xfd-stage-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (path, bytes) in files {
            let path = dir.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
        dir
    }

    #[test]
    fn only_the_wifi_tools_directory_may_hold_dynamic_elves() {
        let loader = b"/lib64/ld-linux-x86-64.so.2\0";
        let at = 64 + 2 * 56;
        let dynamic = elf64(&[(1, 0, 0), (PT_INTERP, at, loader.len() as u64)], loader);
        let fixed = elf64(&[(1, 0, 0)], &[]);
        // The exemption: dynamic programs and their libraries under
        // /wifi-tools, beside static ones and scripts elsewhere.
        let ok = staged(
            "exempt",
            &[
                ("wifi-tools/bin/hostapd", &dynamic),
                ("wifi-tools/lib/libc.so.6", &dynamic),
                ("wifi-tools/run/hostapd", b"#!/bin/sh\n"),
                ("usr/bin/xdp-forwarder", &fixed),
                ("init", b"#!/bin/busybox sh\n"),
            ],
        );
        refuse_dynamic_in(&ok).unwrap();
        // Everything else is still refused: the same ELF in /usr/bin, in
        // /lib, or in a directory merely named like it elsewhere.
        for (name, path) in [
            ("bin", "usr/bin/hostapd"),
            ("lib", "lib/x86_64-linux-gnu/libc.so.6"),
            ("nested", "usr/wifi-tools/bin/hostapd"),
        ] {
            let bad = staged(name, &[("wifi-tools/bin/iw", &dynamic), (path, &dynamic)]);
            let err = format!("{:#}", refuse_dynamic_in(&bad).unwrap_err());
            assert!(
                err.contains(path) && err.contains("dynamically linked"),
                "{err}"
            );
            fs::remove_dir_all(&bad).unwrap();
        }
        fs::remove_dir_all(&ok).unwrap();
    }

    #[test]
    fn a_truncated_elf_is_an_error_not_a_pass() {
        let elf = elf64(&[(PT_INTERP, 4096, 28)], &[]);
        assert!(refuse_dynamic(&written("truncated", &elf)).is_err());
        assert!(refuse_dynamic(&written("header-only", &elf[..40])).is_err());
    }
}
