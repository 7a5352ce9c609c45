//! Test support: root check, a fresh network namespace per test, private
//! bpffs mounts, and raw frames over AF_PACKET. Everything a test creates is
//! removed when its guard drops, also when the test fails.
#![allow(dead_code, reason = "each test binary uses a different part")]

pub mod daemon;
pub mod mirror;
pub mod netns;
pub mod packet;
pub mod process;
pub mod vlan_push;
pub mod world;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

/// Fails loudly, never skips: these tests need the real kernel.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "this test loads XDP programs and creates network namespaces: it needs root \
             (run the suite as root, see the README)"
        );
    }
}

/// Runs `f` on a thread of its own, in a new network namespace holding only
/// `lo`; the namespace and every interface in it vanish with the thread.
/// Child processes spawned by `f` (`ip`, the CLI) inherit the namespace.
pub fn in_fresh_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    require_root();
    std::thread::scope(|s| {
        s.spawn(|| {
            xdp_forwarder_testkit::netns::unshare_thread().unwrap_or_else(|e| panic!("{e:#}"));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    xdp_forwarder_testkit::run(cmd, args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A veth pair in the current namespace, both up; returns the two ifindexes.
pub fn veth(name: &str, peer: &str) -> (u32, u32) {
    xdp_forwarder_testkit::netns::veth(name, peer).unwrap_or_else(|e| panic!("{e:#}"))
}

pub fn ifindex(name: &str) -> u32 {
    xdp_forwarder_testkit::ifindex(name).unwrap_or_else(|e| panic!("{e:#}"))
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A private bpffs instance mounted on a fresh directory, unmounted on drop.
pub struct Bpffs {
    pub path: PathBuf,
}

impl Bpffs {
    pub fn mount(tag: &str) -> Self {
        require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("xdpfwd-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        run("mount", &["-t", "bpf", "bpf", path.to_str().unwrap()]);
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Runs the `xdp-forwarder` binary (in the calling thread's namespace).
pub fn cli(args: &[&str]) -> std::process::Output {
    cli_with(args, &[])
}

/// [`cli`] with these environment variables set.
pub fn cli_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xdp-forwarder"))
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run xdp-forwarder")
}

/// Runs the CLI and asserts success; returns stdout.
pub fn cli_ok(args: &[&str]) -> String {
    cli_ok_with(args, &[])
}

/// [`cli_ok`] with these environment variables set.
pub fn cli_ok_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cli_with(args, env);
    assert!(
        out.status.success(),
        "xdp-forwarder {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first command in backquotes after `marker` in `text` (a fix a
/// message proposes), with our binary for `xdp-forwarder`.
pub fn fix_command(text: &str, marker: &str) -> String {
    let rest = &text[text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in: {text}"))..];
    let cmd = rest
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in: {text}"));
    cmd.replacen(
        "xdp-forwarder ",
        &format!("{} ", env!("CARGO_BIN_EXE_xdp-forwarder")),
        1,
    )
}

/// Runs [`fix_command`] of `err` after `marker`; asserts it succeeds.
pub fn run_fix(err: &str, marker: &str) {
    let cmd = fix_command(err, marker);
    let out = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the proposed fix `{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the CLI, asserts failure with a non-zero exit code, returns stderr.
pub fn cli_err(args: &[&str]) -> String {
    cli_err_with(args, &[])
}

/// [`cli_err`] with these environment variables set.
pub fn cli_err_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cli_with(args, env);
    assert!(
        !out.status.success(),
        "xdp-forwarder {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "panic instead of an error: {stderr}"
    );
    stderr
}

/// What the kernel says runs where in the calling thread's namespace:
/// interface name → XDP program id, or the first tcx ingress program's.
pub fn xdp_running() -> std::collections::BTreeMap<String, u64> {
    let links: serde_json::Value =
        serde_json::from_str(&run("ip", &["-j", "-d", "link", "show"])).expect("ip -j");
    links
        .as_array()
        .expect("a list of links")
        .iter()
        .filter_map(|l| {
            let name = l["ifname"].as_str()?.to_owned();
            if let Some(id) = l["xdp"]["prog"]["id"].as_u64() {
                return Some((name, id));
            }
            // Mode tc: the first program at the interface's tcx ingress, as
            // the kernel lists them (BPF_PROG_QUERY).
            let (_, progs) = aya::programs::SchedClassifier::query_tcx(
                &name,
                aya::programs::TcAttachType::Ingress,
            )
            .ok()?;
            let id = progs.first()?.id();
            Some((name, u64::from(id)))
        })
        .collect()
}

/// Whether `iface` is in promiscuous mode.
pub fn promisc(iface: &str) -> bool {
    run("ip", &["link", "show", "dev", iface]).contains("PROMISC")
}

/// The port called `name` in `status --json`.
pub fn port(st: &serde_json::Value, name: &str) -> serde_json::Value {
    st["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no port {name}: {st:#}"))
}

/// `xdp-forwarder attach IFACE --role ROLE ARGS… --pin-dir PIN`, which
/// must succeed; what it printed.
pub fn attach(pin: &str, iface: &str, role: &str, args: &[&str]) -> String {
    let mut all = vec!["attach", iface, "--role", role];
    all.extend_from_slice(args);
    all.extend(["--pin-dir", pin]);
    cli_ok(&all)
}

/// `status --json` of the pin dir.
pub fn status_json(pins: &Bpffs) -> serde_json::Value {
    serde_json::from_str(&cli_ok(&["status", "--json", "--pin-dir", pins.arg()])).unwrap()
}

/// The `link-N` and `counters-N` pins of the state dir, by ifindex.
pub fn state_pins(pins: &Bpffs) -> (Vec<u64>, Vec<u64>) {
    let mut links = Vec::new();
    let mut counters = Vec::new();
    if let Ok(dir) = std::fs::read_dir(pins.path().join("xdp-forwarder")) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(i) = name.strip_prefix("link-") {
                links.push(i.parse().unwrap());
            } else if let Some(i) = name.strip_prefix("counters-") {
                counters.push(i.parse().unwrap());
            }
        }
    }
    links.sort_unstable();
    counters.sort_unstable();
    (links, counters)
}

/// Every invariant of a pin dir at rest, checked against the kernel (taken
/// under the pin dir's writer lock, so no writer is half-way): every port
/// attached with no warning (but "no carrier", and "no router" for a set
/// of NICs alone: facts of the links, not of the pin dir), each VID on at most one port, the interfaces
/// running XDP or a tcx program exactly the registered ones, one link and one counters pin
/// per port and none else.
pub fn assert_consistent(pins: &Bpffs, context: &str) -> serde_json::Value {
    let dir = std::fs::File::open(pins.path()).unwrap();
    dir.lock().unwrap();
    let st = status_json(pins);
    let ports = st["ports"].as_array().unwrap();
    // A set of NICs without a router is consistent (if useless): status
    // warns that they drop everything, which is not the pin dir's fault.
    let routerless = ports.iter().all(|p| p["role"] != "router");
    assert!(
        st["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| routerless && w.as_str().is_some_and(|w| w.starts_with("no router"))),
        "{context}: {st:#}"
    );
    let mut vids = std::collections::BTreeSet::new();
    let mut registered = std::collections::BTreeSet::new();
    let mut ifindexes = Vec::new();
    for p in ports {
        assert_eq!(p["attached"], true, "{context}: {p:#}");
        // A port whose peer is down has no carrier: a fact of the link,
        // not of the pin dir (many set-ups leave the outside peer down).
        assert!(
            p["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|w| w.as_str().is_some_and(|w| w.starts_with("no carrier"))),
            "{context}: {p:#}"
        );
        if let Some(vid) = p["vid"].as_u64() {
            assert!(vids.insert(vid), "{context}: VID {vid} twice: {st:#}");
        }
        registered.insert(p["name"].as_str().unwrap().to_owned());
        ifindexes.push(p["ifindex"].as_u64().unwrap());
    }
    let running: std::collections::BTreeSet<String> = xdp_running().into_keys().collect();
    assert_eq!(running, registered, "{context}: kernel vs registry");
    ifindexes.sort_unstable();
    let (links, counters) = state_pins(pins);
    assert_eq!(links, ifindexes, "{context}: link pins");
    assert_eq!(counters, ifindexes, "{context}: counters pins");
    st
}

/// `set-router-iface`: the binary under the original tool's name, a link as
/// an install makes it (in cargo's temporary directory for tests).
pub fn set_router_iface_bin() -> PathBuf {
    let link = Path::new(env!("CARGO_TARGET_TMPDIR")).join("set-router-iface");
    match std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_xdp-forwarder"), &link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("cannot link {}: {e}", link.display()),
    }
    link
}
