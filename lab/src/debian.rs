//! Debian kernels for the guests (amd64, and arm64 for the aarch64 net-vm),
//! busybox-static for arm64, and QEMU from bookworm-backports for the NICs
//! Debian 12's QEMU 7.2 lacks (igb) and for aarch64 guests
//! (`qemu-system-aarch64`), fetched with apt through a
//! private configuration (its own sources list, lists and cache under the
//! lab cache): the machine's apt sources and state stay untouched, and
//! nothing is installed (the packages are unpacked with `dpkg-deb -x`).
//! The archive is the one this machine's apt already uses.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{cache, run};

/// The guests' CPU architecture, by Debian's name for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86_64: QEMU's `pc` machine, KVM where it works, else TCG.
    #[default]
    Amd64,
    /// aarch64: QEMU's `virt` machine under TCG, a direct kernel boot (no
    /// firmware), virtio-net on PCIe.
    Arm64,
}

impl Arch {
    /// Debian's name (`dpkg --print-architecture`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The static Rust target the guests' binaries are built for.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// The variable naming the directory of the guests' static binaries
    /// (`cargo xtask test` sets both).
    pub fn bins_var(self) -> &'static str {
        match self {
            Arch::Amd64 => "XDP_FORWARDER_BINS",
            Arch::Arm64 => "XDP_FORWARDER_BINS_AARCH64",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "amd64" | "x86_64" => Ok(Arch::Amd64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => bail!("unknown guest architecture {s:?}: use x86_64 or aarch64"),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
        })
    }
}

/// A guest kernel the suite proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuestKernel {
    /// Debian 12's `linux-image-amd64`: Linux 6.1.
    Debian12,
    /// Debian 13's: Linux 6.12.
    Debian13,
}

impl GuestKernel {
    pub const ALL: [GuestKernel; 2] = [GuestKernel::Debian12, GuestKernel::Debian13];

    pub fn suite(self) -> &'static str {
        match self {
            GuestKernel::Debian12 => "bookworm",
            GuestKernel::Debian13 => "trixie",
        }
    }

    /// "6.1" / "6.12", as the README's table says it.
    pub fn linux(self) -> &'static str {
        match self {
            GuestKernel::Debian12 => "6.1",
            GuestKernel::Debian13 => "6.12",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "6.1" | "bookworm" | "debian12" => Ok(GuestKernel::Debian12),
            "6.12" | "trixie" | "debian13" => Ok(GuestKernel::Debian13),
            _ => bail!("unknown guest kernel {s:?}: use 6.1 (Debian 12) or 6.12 (Debian 13)"),
        }
    }
}

impl std::fmt::Display for GuestKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Linux {} (Debian {})", self.linux(), self.suite())
    }
}

/// A kernel in the cache: its image and the modules the guests load.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub which: GuestKernel,
    pub arch: Arch,
    /// e.g. "6.1.0-50-amd64".
    pub release: String,
    pub vmlinuz: PathBuf,
    /// A tree holding `lib/modules/RELEASE/...` with only the modules the
    /// guests need (and none of the others).
    pub modules: PathBuf,
}

/// Module directories and files (under `kernel/`) the guests need: virtio
/// (modules on 6.1, built in on 6.12), the virtio-serial control channel,
/// virtio-net, e1000e and igb (their ptp, pps_core and i2c-core are built
/// in on both; igb needs dca and i2c-algo-bit), 802.1Q with what they
/// depend on, and tc's clsact qdisc and BPF classifier (mode tc on 6.1,
/// which has no tcx). Each list has a cache directory of its own (named
/// by its hash, the list recorded inside): a checkout with another list
/// fetches its own copy once instead of replacing this one.
const MODULES: &[&str] = &[
    "drivers/virtio",
    "drivers/char/virtio_console.ko",
    "drivers/net/virtio_net.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/ethernet/intel/e1000e",
    "drivers/net/ethernet/intel/igb",
    "drivers/dca",
    "drivers/i2c/algos/i2c-algo-bit.ko",
    "net/core/failover.ko",
    "net/8021q",
    "net/802",
    "net/llc",
    "net/sched/sch_ingress.ko",
    "net/sched/cls_bpf.ko",
];

/// What the Wi-Fi lab's guests need on top of [`MODULES`] (issue 26),
/// the dependency closure read from the modules' `depends=` of both
/// kernels: cfg80211, mac80211, rfkill and `mac80211_hwsim` (6.1 keeps it
/// in `drivers/net/wireless`, 6.12 in `drivers/net/wireless/virtual`), the
/// crypto CCMP and GCMP need (`ccm`, `ctr`, `gcm`, `cmac` with `ghash`,
/// `gf128mul`, `cryptd`, `crypto_simd`, `crypto_null`, `libarc4`; hostapd
/// fails "set_key failed; err=-2" without them), what iwd asks of the
/// kernel's crypto API (`af_alg`, `algif_hash`, `algif_skcipher`, `md4`,
/// `sha512`, `ecb`, `des`), and the bridge and veth the access point's
/// side is made of. Entries missing in one kernel (built in, or moved)
/// are skipped.
const WIFI_MODULES: &[&str] = &[
    "net/wireless",
    "net/mac80211",
    "net/rfkill",
    "net/bridge",
    "net/802",
    "net/llc",
    "drivers/net/veth.ko",
    "drivers/net/wireless/mac80211_hwsim.ko",
    "drivers/net/wireless/virtual/mac80211_hwsim.ko",
    "crypto/ccm.ko",
    "crypto/ctr.ko",
    "crypto/gcm.ko",
    "crypto/cmac.ko",
    "crypto/ghash-generic.ko",
    "crypto/gf128mul.ko",
    "lib/crypto/gf128mul.ko",
    "crypto/cryptd.ko",
    "crypto/crypto_simd.ko",
    "crypto/crypto_null.ko",
    "lib/crypto/libarc4.ko",
    "crypto/af_alg.ko",
    "crypto/algif_hash.ko",
    "crypto/algif_skcipher.ko",
    "crypto/md4.ko",
    "crypto/sha512_generic.ko",
    "crypto/ecb.ko",
    "crypto/des_generic.ko",
    "lib/crypto/libdes.ko",
];

/// Which modules a cached kernel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModuleSet {
    /// [`MODULES`].
    Lab,
    /// [`MODULES`] and [`WIFI_MODULES`].
    Wifi,
}

impl ModuleSet {
    fn modules(self) -> Vec<&'static str> {
        match self {
            ModuleSet::Lab => MODULES.to_vec(),
            ModuleSet::Wifi => MODULES.iter().chain(WIFI_MODULES).copied().collect(),
        }
    }
}

/// What a module set is recorded as in a cached kernel (`modules.list`).
fn modules_list(set: ModuleSet) -> String {
    set.modules().iter().map(|m| format!("{m}\n")).collect()
}

/// FNV-1a of `text`: names a cache directory after what it holds.
pub(crate) fn short_hash(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:08x}", h >> 32)
}

/// The cached amd64 kernel, fetched first if needed.
pub fn kernel(which: GuestKernel) -> anyhow::Result<Kernel> {
    kernel_for(which, Arch::Amd64)
}

/// The cached kernel for `arch` (Debian's `linux-image-ARCH` of the
/// suite), fetched first if needed.
pub fn kernel_for(which: GuestKernel, arch: Arch) -> anyhow::Result<Kernel> {
    kernel_with(which, arch, ModuleSet::Lab)
}

/// The cached amd64 kernel with the Wi-Fi lab's modules too
/// ([`WIFI_MODULES`]: mac80211, `mac80211_hwsim`, CCMP's crypto, bridge),
/// in a cache directory of its own: the other guests' images stay small.
pub fn wifi_kernel(which: GuestKernel) -> anyhow::Result<Kernel> {
    kernel_with(which, Arch::Amd64, ModuleSet::Wifi)
}

fn kernel_with(which: GuestKernel, arch: Arch, set: ModuleSet) -> anyhow::Result<Kernel> {
    // amd64 keeps the directory name it always had.
    let arch_part = match arch {
        Arch::Amd64 => String::new(),
        other => format!("{}-", other.debian()),
    };
    let name = format!("{}-{arch_part}", which.suite());
    let dir = cache::root()
        .join("kernels")
        .join(format!("{name}{}", short_hash(&modules_list(set))));
    if let Some(k) = cached(which, arch, set, &dir)? {
        return Ok(k);
    }
    let _lock = cache::lock()?;
    if let Some(k) = cached(which, arch, set, &dir)? {
        return Ok(k);
    }
    eprintln!("lab: fetching the {which} {arch} kernel from Debian's archive (once)");
    let apt = Apt::new(arch)?;
    let work = cache::scratch(&format!("kernel-{name}"))?;
    let meta = apt.download(
        &format!("linux-image-{}/{}", arch.debian(), which.suite()),
        &work,
    )?;
    // The meta package depends on the versioned image package.
    let depends = run("dpkg-deb", &["-f", path_str(&meta)?, "Depends"])?;
    let image = depends
        .split([',', '|', ' '])
        .find(|w| w.starts_with("linux-image-"))
        .with_context(|| format!("{} names no linux-image package: {depends}", meta.display()))?
        .to_owned();
    let deb = apt.download(&image, &work)?;
    let tree = work.join("tree");
    run("dpkg-deb", &["-x", path_str(&deb)?, path_str(&tree)?])?;
    let release = image.trim_start_matches("linux-image-").to_owned();
    let out = work.join("out");
    fs::create_dir_all(&out)?;
    fs::copy(
        tree.join("boot").join(format!("vmlinuz-{release}")),
        out.join("vmlinuz"),
    )
    .context("the image package has no boot/vmlinuz")?;
    // 6.1 keeps modules in lib/modules, 6.12 in usr/lib/modules (.ko.xz).
    let src = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| tree.join(d).join(&release))
        .find(|d| d.is_dir())
        .with_context(|| format!("no modules for {release} in {}", deb.display()))?;
    let dst = out.join("modules/lib/modules").join(&release);
    for m in set.modules() {
        for candidate in [m.to_string(), format!("{m}.xz")] {
            let from = src.join("kernel").join(&candidate);
            if from.exists() {
                let to = dst.join("kernel").join(&candidate);
                fs::create_dir_all(to.parent().unwrap())?;
                run("cp", &["-r", path_str(&from)?, path_str(&to)?])?;
            }
        }
    }
    // busybox modprobe must know what is built in (6.12: virtio).
    for f in ["modules.builtin", "modules.order"] {
        if src.join(f).exists() {
            fs::copy(src.join(f), dst.join(f))?;
        }
    }
    fs::write(out.join("release"), &release)?;
    fs::write(out.join("modules.list"), modules_list(set))?;
    fs::create_dir_all(dir.parent().unwrap())?;
    // Whatever holds the path without passing `cached` (an interrupted
    // copy, a hash collision) makes way (moved aside first, so the path
    // never holds a half-removed tree).
    if dir.exists() {
        let stale = cache::scratch(&format!("kernel-{name}stale"))?;
        fs::rename(&dir, stale.join("old"))?;
        fs::remove_dir_all(&stale)?;
    }
    cache::commit(&out, &dir)?;
    fs::remove_dir_all(&work)?;
    cached(which, arch, set, &dir)?.context("the kernel vanished from the cache")
}

/// The guests' busybox for `arch`: the machine's `/bin/busybox` on amd64
/// (Debian's busybox-static, which `cargo xtask setup` installs), else
/// Debian 12's `busybox-static` for `arch`, fetched once into the lab cache
/// (`busybox-ARCH/bin/busybox`) and unpacked, never installed.
pub fn busybox(arch: Arch) -> anyhow::Result<PathBuf> {
    if arch == Arch::Amd64 {
        return Ok(PathBuf::from("/bin/busybox"));
    }
    let dir = cache::root().join(format!("busybox-{}", arch.debian()));
    let binary = dir.join("bin/busybox");
    if binary.exists() {
        return Ok(binary);
    }
    let _lock = cache::lock()?;
    if binary.exists() {
        return Ok(binary);
    }
    eprintln!("lab: fetching busybox-static for {arch} from Debian's archive (once)");
    let apt = Apt::new(arch)?;
    let work = cache::scratch(&format!("busybox-{}", arch.debian()))?;
    let deb = apt.download("busybox-static/bookworm", &work)?;
    let tree = work.join("tree");
    run("dpkg-deb", &["-x", path_str(&deb)?, path_str(&tree)?])?;
    if !tree.join("bin/busybox").exists() {
        bail!("{} has no bin/busybox", deb.display());
    }
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    cache::commit(&tree, &dir)?;
    fs::remove_dir_all(&work)?;
    Ok(binary)
}

/// The Wi-Fi lab's programs (issue 26), by their path in Debian 12's
/// packages: the access point (`hostapd`), the two station programs
/// (`wpa_supplicant`, and `iwd`, what Spectrum's net-vm ships, with the
/// D-Bus daemon it needs), `iw`, the control tools and the outside host's
/// router advertisements (`radvd`).
pub const WIFI_PROGRAMS: &[&str] = &[
    "usr/sbin/hostapd",
    "usr/sbin/hostapd_cli",
    "sbin/wpa_supplicant",
    "sbin/wpa_cli",
    "sbin/iw",
    "usr/libexec/iwd",
    "usr/bin/iwctl",
    "usr/bin/dbus-daemon",
    "usr/sbin/radvd",
    // The outside host's DHCPv4 server: it honours the broadcast flag (RFC
    // 2131 4.1), which busybox udhcpd does not.
    "usr/sbin/dnsmasq",
];

/// Debian 12's packages holding [`WIFI_PROGRAMS`] and every library they
/// link (their `DT_NEEDED` closure, checked when the directory is made).
const WIFI_PACKAGES: &[&str] = &[
    "hostapd",
    "wpasupplicant",
    "iwd",
    "iw",
    "radvd",
    "dbus-daemon",
    "libc6",
    "libssl3",
    "libnl-3-200",
    "libnl-genl-3-200",
    "libnl-route-3-200",
    "libdbus-1-3",
    "libpcsclite1",
    "libreadline8",
    "libtinfo6",
    "libell0",
    "libsystemd0",
    "libapparmor1",
    "libaudit1",
    "libcap-ng0",
    "libexpat1",
    "libselinux1",
    "libpcre2-8-0",
    "libcap2",
    "libgcrypt20",
    "libgpg-error0",
    "liblz4-1",
    "liblzma5",
    "libzstd1",
    "dnsmasq-base",
    "libgmp10",
    "libhogweed6",
    "libnettle8",
    "libidn2-0",
    "libunistring2",
    "libnetfilter-conntrack3",
    "libnfnetlink0",
    "libmnl0",
    "libnftables1",
    "libjansson4",
    "libnftnl11",
    "libxtables12",
];

/// glibc's loader, which runs the Wi-Fi programs explicitly.
pub const GLIBC_LOADER: &str = "ld-linux-x86-64.so.2";

/// The Wi-Fi lab's programs with their own C library: a directory holding
/// `bin/` ([`WIFI_PROGRAMS`]) and `lib/` (glibc's loader and exactly the
/// libraries they need), from Debian 12's packages fetched once into the
/// lab cache (`wifi-tools-HASH/`) with the private apt configuration and
/// unpacked, never installed. These dynamically linked programs stand for
/// the access point and for Spectrum's musl-built iwd, which no archive
/// has; the guest runs them through `lib/`'s loader
/// (`LOADER --library-path lib bin/PROGRAM`), never from `/lib`.
pub fn wifi_tools() -> anyhow::Result<PathBuf> {
    let recipe = format!("{}\n{}", WIFI_PACKAGES.join(" "), WIFI_PROGRAMS.join(" "));
    let dir = cache::root().join(format!("wifi-tools-{}", short_hash(&recipe)));
    if dir.join("recipe").exists() {
        return Ok(dir);
    }
    let _lock = cache::lock()?;
    if dir.join("recipe").exists() {
        return Ok(dir);
    }
    eprintln!("lab: fetching hostapd, wpa_supplicant, iwd and iw from Debian's archive (once)");
    let apt = Apt::new(Arch::Amd64)?;
    let work = cache::scratch("wifi-tools")?;
    let tree = work.join("tree");
    for pkg in WIFI_PACKAGES {
        let deb = apt.download(&format!("{pkg}/bookworm"), &work)?;
        run("dpkg-deb", &["-x", path_str(&deb)?, path_str(&tree)?])?;
    }
    let out = work.join("out");
    fs::create_dir_all(out.join("bin"))?;
    fs::create_dir_all(out.join("lib"))?;
    let libdirs = [
        tree.join("lib/x86_64-linux-gnu"),
        tree.join("usr/lib/x86_64-linux-gnu"),
    ];
    let find_lib = |name: &str| {
        libdirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.exists())
            .with_context(|| {
                format!("no {name} in the Wi-Fi packages: add its Debian package to WIFI_PACKAGES")
            })
    };
    let mut todo: Vec<PathBuf> = Vec::new();
    for prog in WIFI_PROGRAMS {
        let from = tree.join(prog);
        let name = from.file_name().context("a program without a name")?;
        fs::copy(&from, out.join("bin").join(name))
            .with_context(|| format!("the Wi-Fi packages have no {prog}"))?;
        todo.push(from);
    }
    todo.push(find_lib(GLIBC_LOADER)?);
    let mut done = std::collections::BTreeSet::new();
    while let Some(path) = todo.pop() {
        for lib in crate::elf::needed(&path)? {
            if done.insert(lib.clone()) {
                let from = find_lib(&lib)?;
                // Copied through the symlink: the file under the soname.
                fs::copy(&from, out.join("lib").join(&lib))?;
                todo.push(from);
            }
        }
    }
    fs::copy(find_lib(GLIBC_LOADER)?, out.join("lib").join(GLIBC_LOADER))?;
    fs::write(out.join("recipe"), &recipe)?;
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    cache::commit(&out, &dir)?;
    fs::remove_dir_all(&work)?;
    Ok(dir)
}

/// A QEMU the guests run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qemu {
    /// `qemu-system-x86_64`.
    pub binary: PathBuf,
    /// Firmware directories (`-L`), searched before QEMU's own.
    pub firmware: Vec<PathBuf>,
    /// Where QEMU loads its modules from (`QEMU_MODULE_DIR`): its own
    /// build's, never the system QEMU's (which QEMU refuses, aborting).
    pub module_dir: Option<PathBuf>,
    /// e.g. "7.2" / "10.0.2+ds-2+deb13u1~bpo12+1".
    pub version: String,
}

impl Qemu {
    /// The machine's QEMU (Debian 12's `qemu-system-x86`: 7.2).
    pub fn system() -> Self {
        Self {
            binary: PathBuf::from("qemu-system-x86_64"),
            firmware: Vec::new(),
            module_dir: None,
            version: "the system's".to_owned(),
        }
    }
}

/// The packages of QEMU from bookworm-backports the lab runs: the emulators
/// (x86_64, and aarch64 for the aarch64 net-vm), the modules of the same build, the firmware it loads (linuxboot, the
/// option ROMs' directory) and SeaBIOS of the version it wants. Their
/// shared libraries are the ones Debian 12's QEMU 7.2 already needs.
const QEMU_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-arm",
    "qemu-system-common",
    "qemu-system-data",
    "seabios",
];
const QEMU_SUITE: &str = "bookworm-backports";

/// QEMU from Debian 12's backports (10.0 today), which emulates igb
/// (`-device igb`, QEMU ≥ 8.0): fetched once with the lab's private apt
/// configuration and unpacked under the lab cache (`qemu-backports/`),
/// never installed: the machine's QEMU stays as it is.
pub fn qemu_backports() -> anyhow::Result<Qemu> {
    qemu_backports_for(Arch::Amd64)
}

/// [`qemu_backports`]' emulator for guests of `arch`
/// (`qemu-system-x86_64` or `qemu-system-aarch64`).
pub fn qemu_backports_for(arch: Arch) -> anyhow::Result<Qemu> {
    let dir = cache::root().join("qemu-backports");
    if let Some(q) = cached_qemu(&dir, arch)? {
        return Ok(q);
    }
    let _lock = cache::lock()?;
    if let Some(q) = cached_qemu(&dir, arch)? {
        return Ok(q);
    }
    eprintln!("lab: fetching QEMU from Debian's {QEMU_SUITE} (once)");
    // QEMU runs on this machine: its own architecture's packages.
    let apt = Apt::new(Arch::Amd64)?;
    let work = cache::scratch("qemu-backports")?;
    let tree = work.join("tree");
    let mut version = String::new();
    for pkg in QEMU_PACKAGES {
        let deb = apt.download(&format!("{pkg}/{QEMU_SUITE}"), &work)?;
        if *pkg == "qemu-system-x86" {
            version = run("dpkg-deb", &["-f", path_str(&deb)?, "Version"])?
                .trim()
                .to_owned();
        }
        run("dpkg-deb", &["-x", path_str(&deb)?, path_str(&tree)?])?;
    }
    fs::write(tree.join("version"), &version)?;
    fs::write(tree.join("packages.list"), QEMU_PACKAGES.join("\n"))?;
    if dir.exists() {
        let stale = cache::scratch("qemu-backports-stale")?;
        fs::rename(&dir, stale.join("old"))?;
        fs::remove_dir_all(&stale)?;
    }
    cache::commit(&tree, &dir)?;
    fs::remove_dir_all(&work)?;
    cached_qemu(&dir, arch)?.context("QEMU vanished from the cache")
}

fn cached_qemu(dir: &Path, arch: Arch) -> anyhow::Result<Option<Qemu>> {
    let Ok(version) = fs::read_to_string(dir.join("version")) else {
        return Ok(None);
    };
    if fs::read_to_string(dir.join("packages.list")).ok() != Some(QEMU_PACKAGES.join("\n")) {
        return Ok(None);
    }
    let binary = dir.join(match arch {
        Arch::Amd64 => "usr/bin/qemu-system-x86_64",
        Arch::Arm64 => "usr/bin/qemu-system-aarch64",
    });
    // Its libraries come from the machine: say which are missing.
    let ldd = Command::new("ldd")
        .arg(&binary)
        .output()
        .context("cannot run ldd")?;
    let missing: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .filter(|l| l.contains("not found"))
        .map(|l| l.trim().to_owned())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} (QEMU {}) lacks shared libraries: {}; install Debian 12's qemu-system-x86 \
             (`cargo xtask setup`), which needs the same ones",
            binary.display(),
            version.trim(),
            missing.join(", ")
        );
    }
    Ok(Some(Qemu {
        binary,
        firmware: vec![dir.join("usr/share/qemu"), dir.join("usr/share/seabios")],
        module_dir: Some(dir.join("usr/lib/x86_64-linux-gnu/qemu")),
        version: version.trim().to_owned(),
    }))
}

fn cached(
    which: GuestKernel,
    arch: Arch,
    set: ModuleSet,
    dir: &Path,
) -> anyhow::Result<Option<Kernel>> {
    let Ok(release) = fs::read_to_string(dir.join("release")) else {
        return Ok(None);
    };
    if fs::read_to_string(dir.join("modules.list")).ok() != Some(modules_list(set)) {
        return Ok(None);
    }
    Ok(Some(Kernel {
        which,
        arch,
        release: release.trim().to_owned(),
        vmlinuz: dir.join("vmlinuz"),
        modules: dir.join("modules"),
    }))
}

pub(crate) fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("path is not UTF-8: {}", p.display()))
}

/// apt-get with a configuration of our own under the lab cache, for the
/// packages of one architecture.
struct Apt {
    dir: PathBuf,
    arch: Arch,
}

impl Apt {
    /// Writes the sources list (the machine's Debian archive, suites
    /// bookworm, bookworm-backports and trixie) and updates the private
    /// lists: `apt/` for amd64, `apt-ARCH/` for another architecture, whose
    /// lists apt fetches with `APT::Architecture=ARCH`.
    fn new(arch: Arch) -> anyhow::Result<Self> {
        let dir = cache::root().join(match arch {
            Arch::Amd64 => "apt".to_owned(),
            other => format!("apt-{}", other.debian()),
        });
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let (uri, signed_by) = archive()?;
        let mut opts: Vec<String> = signed_by
            .map(|k| format!("signed-by={k}"))
            .into_iter()
            .collect();
        if arch != Arch::Amd64 {
            opts.push(format!("arch={}", arch.debian()));
        }
        let opts = if opts.is_empty() {
            String::new()
        } else {
            format!("[{}] ", opts.join(" "))
        };
        let list: String = ["bookworm", "bookworm-backports", "trixie"]
            .iter()
            .map(|suite| format!("deb {opts}{uri} {suite} main\n"))
            .collect();
        fs::write(dir.join("sources.list"), list)?;
        let apt = Self { dir, arch };
        apt.apt_get(&["update", "-q"], Path::new("."))?;
        Ok(apt)
    }

    fn apt_get(&self, args: &[&str], cwd: &Path) -> anyhow::Result<()> {
        let d = |sub: &str| self.dir.join(sub).display().to_string();
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(cwd);
        for (k, v) in [
            ("Dir::Etc::sourcelist", d("sources.list")),
            ("Dir::Etc::sourceparts", "-".into()),
            ("Dir::State::Lists", d("lists")),
            ("Dir::Cache", d("cache")),
            ("Debug::NoLocking", "1".into()),
            ("Acquire::Languages", "none".into()),
            (
                "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled",
                "false".into(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled",
                "false".into(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled",
                "false".into(),
            ),
            // Downloads land in a root-only cache: no _apt sandbox user.
            ("APT::Sandbox::User", "root".into()),
        ] {
            cmd.arg("-o").arg(format!("{k}={v}"));
        }
        if self.arch != Arch::Amd64 {
            let a = self.arch.debian();
            cmd.arg("-o").arg(format!("APT::Architecture={a}"));
            cmd.arg("-o").arg(format!("APT::Architectures={a}"));
        }
        let out = cmd
            .args(args)
            .output()
            .context("cannot run apt-get (Debian's apt)")?;
        if !out.status.success() {
            bail!(
                "apt-get {} (lab configuration in {}) failed: {}",
                args.join(" "),
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Downloads `pkg` (name, or name/suite) into `dir`; returns the .deb.
    fn download(&self, pkg: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        let before: Vec<_> = debs(dir)?;
        self.apt_get(&["download", "-q", pkg], dir)?;
        debs(dir)?
            .into_iter()
            .find(|p| !before.contains(p))
            .with_context(|| format!("apt-get download {pkg} wrote no .deb"))
    }
}

fn debs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect())
}

/// The Debian archive (URI, keyring) this machine's apt uses: the entry of
/// its sources with a release suite (no `-updates`, `-security`...) and the
/// `main` component, in deb822 `.sources` files or the one-line list.
fn archive() -> anyhow::Result<(String, Option<String>)> {
    let mut texts = Vec::new();
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.filter_map(Result::ok) {
            if e.path().extension().is_some_and(|x| x == "sources") {
                texts.push(fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    for text in &texts {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|r| r.strip_prefix(':'))
                        .map(|v| v.trim().to_owned())
                })
            };
            let (Some(types), Some(uris), Some(suites), Some(comps)) = (
                field("Types"),
                field("URIs"),
                field("Suites"),
                field("Components"),
            ) else {
                continue;
            };
            if types.split_whitespace().any(|t| t == "deb")
                && comps.split_whitespace().any(|c| c == "main")
                && suites.split_whitespace().any(|s| !s.contains('-'))
                && let Some(uri) = uris.split_whitespace().next()
            {
                return Ok((uri.to_owned(), field("Signed-By")));
            }
        }
    }
    let list = fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    for line in list.lines() {
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        let mut signed_by = None;
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                if let Some(k) = w.trim_matches(['[', ']']).strip_prefix("signed-by=") {
                    signed_by = Some(k.to_owned());
                }
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let rest: Vec<&str> = words.collect();
        if let [uri, suite, comps @ ..] = rest.as_slice()
            && !suite.contains('-')
            && comps.contains(&"main")
        {
            return Ok(((*uri).to_owned(), signed_by));
        }
    }
    bail!(
        "no Debian archive with a release suite and `main` in /etc/apt/sources.list(.d): \
         the lab fetches its guest kernels from the archive this machine's apt uses"
    )
}
