//! Debian kernels for the guests, fetched with apt through a private
//! configuration (its own sources list, lists and cache under the lab
//! cache): the machine's apt sources and state stay untouched, and nothing
//! is installed. The archive is the one this machine's apt already uses.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{cache, run};

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
    /// e.g. "6.1.0-50-amd64".
    pub release: String,
    pub vmlinuz: PathBuf,
    /// A tree holding `lib/modules/RELEASE/...` with only the modules the
    /// guests need (and none of the others).
    pub modules: PathBuf,
}

/// Module directories and files (under `kernel/`) the guests need: virtio
/// (modules on 6.1, built in on 6.12), the virtio-serial control channel,
/// virtio-net, e1000e (its ptp and pps_core are built in on both),
/// 802.1Q with what they depend on, and tc's clsact qdisc and BPF
/// classifier (mode tc on 6.1, which has no tcx). A cached kernel fetched for another
/// list is fetched again (the list is recorded beside it).
const MODULES: &[&str] = &[
    "drivers/virtio",
    "drivers/char/virtio_console.ko",
    "drivers/net/virtio_net.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/ethernet/intel/e1000e",
    "net/core/failover.ko",
    "net/8021q",
    "net/802",
    "net/llc",
    "net/sched/sch_ingress.ko",
    "net/sched/cls_bpf.ko",
];

/// What [`MODULES`] is recorded as in a cached kernel (`modules.list`).
fn modules_list() -> String {
    MODULES.iter().map(|m| format!("{m}\n")).collect()
}

/// The cached kernel, fetched first if needed.
pub fn kernel(which: GuestKernel) -> anyhow::Result<Kernel> {
    let dir = cache::root().join("kernels").join(which.suite());
    if let Some(k) = cached(which, &dir)? {
        return Ok(k);
    }
    let _lock = cache::lock()?;
    if let Some(k) = cached(which, &dir)? {
        return Ok(k);
    }
    eprintln!("lab: fetching the {which} kernel from Debian's archive (once)");
    let apt = Apt::new()?;
    let work = cache::scratch(&format!("kernel-{}", which.suite()))?;
    let meta = apt.download(&format!("linux-image-amd64/{}", which.suite()), &work)?;
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
    for m in MODULES {
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
    fs::write(out.join("modules.list"), modules_list())?;
    fs::create_dir_all(dir.parent().unwrap())?;
    // A kernel cached for another module list makes way (moved aside
    // first, so the path never holds a half-removed tree).
    if dir.exists() {
        let stale = cache::scratch(&format!("kernel-{}-stale", which.suite()))?;
        fs::rename(&dir, stale.join("old"))?;
        fs::remove_dir_all(&stale)?;
    }
    cache::commit(&out, &dir)?;
    fs::remove_dir_all(&work)?;
    cached(which, &dir)?.context("the kernel vanished from the cache")
}

fn cached(which: GuestKernel, dir: &Path) -> anyhow::Result<Option<Kernel>> {
    let Ok(release) = fs::read_to_string(dir.join("release")) else {
        return Ok(None);
    };
    if fs::read_to_string(dir.join("modules.list")).ok() != Some(modules_list()) {
        return Ok(None);
    }
    Ok(Some(Kernel {
        which,
        release: release.trim().to_owned(),
        vmlinuz: dir.join("vmlinuz"),
        modules: dir.join("modules"),
    }))
}

pub(crate) fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("path is not UTF-8: {}", p.display()))
}

/// apt-get with a configuration of our own under the lab cache.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    /// Writes the sources list (the machine's Debian archive, suites
    /// bookworm and trixie) and updates the private lists.
    fn new() -> anyhow::Result<Self> {
        let dir = cache::root().join("apt");
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let (uri, signed_by) = archive()?;
        let opts = signed_by.map_or_else(String::new, |k| format!("[signed-by={k}] "));
        let list: String = ["bookworm", "trixie"]
            .iter()
            .map(|suite| format!("deb {opts}{uri} {suite} main\n"))
            .collect();
        fs::write(dir.join("sources.list"), list)?;
        let apt = Self { dir };
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
