//! `xdp-forwarder-lab bench-libc`: what the C library costs the product's
//! user-space paths. The same source built twice — for glibc (the host
//! target, dynamically linked) and for musl (the static release binary) —
//! run in one process, interleaved round by round (the order alternates),
//! on the same namespaces and interfaces:
//!
//! - `--version`: exec to exit (the dynamic loader's share, if any);
//! - `status` (text) with a router and four physical ports attached;
//! - `status --watch 0.1 --format json` for about a second: CPU per refresh;
//! - `attach IFACE --role physical` and `detach IFACE` of a veth;
//! - the daemon's hot-plug latency: a veth added (`ip link add`, spawned
//!   from here) until the daemon has pinned its link (`link-IFINDEX`: the
//!   program runs on it; the slot, up and promisc follow in the same
//!   attach), one daemon of each build, each in a namespace of its own.
//!
//! Wall time per process from spawn to exit, and its CPU time (user +
//! system, from `wait4`). Not a test: it prints a Markdown table. The data
//! plane is not measured here: both builds embed the same eBPF objects, so
//! the kernel runs the same instructions (docs/benchmarks.md).

use std::{
    io::{BufRead as _, BufReader, Read as _},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::{cmd, elf::Elf, netns::Netns};

pub struct Options {
    /// The glibc build (`cargo build --release --bins -p xdp-forwarder`).
    pub gnu: PathBuf,
    /// The musl build (`target/x86_64-unknown-linux-musl/release/`).
    pub musl: PathBuf,
    /// Rounds; each measures every row once per build.
    pub rounds: usize,
}

/// One build under test.
struct Build<'a> {
    name: &'static str,
    exe: &'a Path,
}

/// What one process cost.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// The rows, in the order they are printed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Row {
    Version,
    Status,
    WatchRefresh,
    Attach,
    Detach,
    HotPlug,
}

impl Row {
    const ALL: [Self; 6] = [
        Self::Version,
        Self::Status,
        Self::WatchRefresh,
        Self::Attach,
        Self::Detach,
        Self::HotPlug,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Version => "`--version` (exec to exit)",
            Self::Status => "`status`, 5 ports",
            Self::WatchRefresh => "`status --watch 0.1`, per refresh",
            Self::Attach => "`attach` a veth (`--mode auto`)",
            Self::Detach => "`detach` it",
            Self::HotPlug => "daemon: veth added → link pinned",
        }
    }

    /// Whether the process's CPU time means something for this row (the
    /// hot-plug row times a daemon that keeps running).
    fn has_cpu(self) -> bool {
        self != Self::HotPlug
    }
}

/// The samples of each row, per build (index 0 glibc, 1 musl).
struct Results {
    samples: Vec<[Vec<Sample>; 2]>,
}

impl Results {
    fn push(&mut self, row: Row, build: usize, sample: Sample) {
        let i = Row::ALL.iter().position(|r| *r == row).unwrap();
        self.samples[i][build].push(sample);
    }
}

/// Runs the benchmark and prints its table (needs root).
pub fn run(opts: &Options) -> anyhow::Result<()> {
    crate::require_root("bench-libc loads XDP programs and creates namespaces");
    for (exe, want_interp) in [(&opts.gnu, true), (&opts.musl, false)] {
        let elf = Elf::read(exe)?;
        ensure!(
            elf.interpreter.is_some() == want_interp,
            "{}: expected {} binary (interpreter: {:?})",
            exe.display(),
            if want_interp {
                "a dynamic (glibc)"
            } else {
                "a static (musl)"
            },
            elf.interpreter
        );
    }
    let builds = [
        Build {
            name: "glibc",
            exe: &opts.gnu,
        },
        Build {
            name: "musl",
            exe: &opts.musl,
        },
    ];
    let world = World::build(&builds)?;
    let mut results = Results {
        samples: Row::ALL.iter().map(|_| [Vec::new(), Vec::new()]).collect(),
    };
    for round in 0..opts.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for b in order {
            world.round(&builds[b], b, round, &mut results)?;
        }
        eprintln!("bench-libc: round {}/{} done", round + 1, opts.rounds);
    }
    print_table(&builds, &results, opts.rounds);
    Ok(())
}

/// The namespaces, pin dirs and daemons, removed when dropped.
struct World {
    /// A bpffs mount: pin dirs `s` (no daemon), `d0`, `d1` (a daemon each).
    bpffs: PathBuf,
    /// The veth peers' namespace.
    outside: Netns,
    /// `status`, `attach`, `detach` run here (no daemon).
    plain: Netns,
    /// Each build's daemon runs in its own.
    daemon_ns: [Netns; 2],
    daemons: Vec<Child>,
}

const ROUTER_MAC: &str = "02:01:00:00:00:01";

impl World {
    fn build(builds: &[Build; 2]) -> anyhow::Result<Self> {
        let id = std::process::id() % 100_000;
        let outside = Netns::add(&format!("xflco{id}"))?;
        let plain = Netns::add(&format!("xflcs{id}"))?;
        let daemon_ns = [
            Netns::add(&format!("xflcg{id}"))?,
            Netns::add(&format!("xflcm{id}"))?,
        ];
        let bpffs = std::env::temp_dir().join(format!("xfl-libc-{id}"));
        std::fs::create_dir_all(&bpffs)?;
        cmd::run("mount", &["-t", "bpf", "bpf", path_str(&bpffs)?])?;
        // From here on, dropping `world` undoes what was made.
        let mut world = Self {
            outside,
            plain,
            daemon_ns,
            bpffs,
            daemons: Vec::new(),
        };
        for dir in ["s", "d0", "d1"] {
            std::fs::create_dir(world.bpffs.join(dir))?;
        }
        // The status subject: a router and four physical ports (attached by
        // the glibc build; both builds read them).
        world.plug(&world.plain, "xlsr", Some(ROUTER_MAC))?;
        world.cli(builds[0].exe, &["attach", "xlsr", "--role", "router"])?;
        for n in 1..=4 {
            let name = format!("xlsn{n}");
            world.plug(&world.plain, &name, None)?;
            world.cli(builds[0].exe, &["attach", &name, "--role", "physical"])?;
        }
        world.plug(&world.plain, "xlsa", None)?;
        // One daemon per build, each with a router port, then idle.
        for (i, b) in builds.iter().enumerate() {
            let pins = world.bpffs.join(format!("d{i}"));
            let ns = &world.daemon_ns[i];
            let log = std::fs::File::create(world.daemon_log(i))?;
            let exe = b.exe.to_owned();
            let child = ns.within(move || {
                Command::new(&exe)
                    .arg("--pin-dir")
                    .arg(&pins)
                    .args(["run", "--detach-on-exit"])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("cannot start {} run", exe.display()))
            })?;
            world.daemons.push(child);
            // Peers share the outside namespace: names of their own.
            world.plug(ns, &format!("xldr{i}"), Some(ROUTER_MAC))?;
        }
        for i in 0..2 {
            let ns = &world.daemon_ns[i];
            let index = ifindex_in(ns, &format!("xldr{i}"))?;
            world.wait_pin(i, index, true, Duration::from_secs(20))?;
        }
        Ok(world)
    }

    /// A veth `name` in `ns` (with `mac`), its peer outside and up.
    fn plug(&self, ns: &Netns, name: &str, mac: Option<&str>) -> anyhow::Result<()> {
        self.plug_bare(ns, name, mac)?;
        self.outside
            .ip(&["link", "set", &format!("{name}x"), "up"])?;
        Ok(())
    }

    /// A veth `name` in `ns`, its peer outside and down: one `ip` command,
    /// enough for a daemon to attach it.
    fn plug_bare(&self, ns: &Netns, name: &str, mac: Option<&str>) -> anyhow::Result<()> {
        let peer = format!("{name}x");
        ns.ip(&self.outside.veth_args(name, &peer, mac))?;
        Ok(())
    }

    fn daemon_log(&self, daemon: usize) -> PathBuf {
        self.bpffs.with_extension(format!("d{daemon}.log"))
    }

    /// `EXE --pin-dir s ARGS` in the plain namespace, timed; fails if it does.
    fn cli(&self, exe: &Path, args: &[&str]) -> anyhow::Result<Sample> {
        let pins = self.bpffs.join("s");
        let exe = exe.to_owned();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        self.plain.within(move || {
            let mut cmd = Command::new(&exe);
            cmd.arg("--pin-dir").arg(&pins).args(&args);
            let (sample, out, status) = timed(&mut cmd)?;
            if !status.success() {
                bail!(
                    "{} {} failed ({status}): {out}",
                    exe.display(),
                    args.join(" ")
                );
            }
            Ok(sample)
        })
    }

    fn link_pin(&self, daemon: usize, ifindex: u32) -> PathBuf {
        self.bpffs
            .join(format!("d{daemon}"))
            .join("xdp-forwarder")
            .join(format!("link-{ifindex}"))
    }

    /// Waits until daemon `daemon` has (or no longer has) pinned a link
    /// for `ifindex`; returns when it saw it.
    fn wait_pin(
        &self,
        daemon: usize,
        ifindex: u32,
        present: bool,
        within: Duration,
    ) -> anyhow::Result<Instant> {
        let pin = self.link_pin(daemon, ifindex);
        let deadline = Instant::now() + within;
        loop {
            if pin.exists() == present {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!(
                    "daemon {daemon}: {} still {} after {within:?}; its log: {}",
                    pin.display(),
                    if present { "missing" } else { "there" },
                    std::fs::read_to_string(self.daemon_log(daemon)).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Every row once for build `b`.
    fn round(
        &self,
        build: &Build,
        b: usize,
        round: usize,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let (s, _, _) = timed(Command::new(build.exe).arg("--version"))?;
        results.push(Row::Version, b, s);
        results.push(Row::Status, b, self.cli(build.exe, &["status"])?);
        results.push(
            Row::Attach,
            b,
            self.cli(build.exe, &["attach", "xlsa", "--role", "physical"])?,
        );
        results.push(Row::Detach, b, self.cli(build.exe, &["detach", "xlsa"])?);
        results.push(Row::WatchRefresh, b, self.watch(build.exe)?);

        // Hot-plug into this build's daemon, then unplug (not timed).
        let ns = &self.daemon_ns[b];
        let name = format!("xlh{round}");
        let start = Instant::now();
        self.plug_bare(ns, &name, None)?;
        let index = ifindex_in(ns, &name)?;
        let seen = self.wait_pin(b, index, true, Duration::from_secs(20))?;
        results.push(
            Row::HotPlug,
            b,
            Sample {
                wall: seen - start,
                cpu: Duration::ZERO,
            },
        );
        ns.ip(&["link", "del", &name])?;
        self.wait_pin(b, index, false, Duration::from_secs(20))?;
        Ok(())
    }

    /// `status --watch 0.1 --format json` for about a second: CPU time per
    /// document printed (startup included, spread over the refreshes).
    fn watch(&self, exe: &Path) -> anyhow::Result<Sample> {
        let pins = self.bpffs.join("s");
        let exe = exe.to_owned();
        self.plain.within(move || {
            let start = Instant::now();
            let mut child = Command::new(&exe)
                .arg("--pin-dir")
                .arg(&pins)
                .args(["status", "--watch", "0.1", "--format", "json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let stdout = child.stdout.take().context("no stdout")?;
            let pid = child.id();
            let reader = std::thread::spawn(move || BufReader::new(stdout).lines().count());
            std::thread::sleep(Duration::from_millis(1050));
            terminate(pid);
            let (cpu, _) = wait4(pid)?;
            let wall = start.elapsed();
            let refreshes = reader
                .join()
                .map_err(|_| anyhow::anyhow!("reader panicked"))?;
            ensure!(
                refreshes > 0,
                "{} status --watch printed nothing",
                exe.display()
            );
            let n = u32::try_from(refreshes)?;
            Ok(Sample {
                wall: wall / n,
                cpu: cpu / n,
            })
        })
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for child in &mut self.daemons {
            terminate(child.id());
            let _ = child.wait();
        }
        let _ = Command::new("umount").arg("-l").arg(&self.bpffs).status();
        let _ = std::fs::remove_dir(&self.bpffs);
        for i in 0..2 {
            let _ = std::fs::remove_file(self.daemon_log(i));
        }
        // The namespaces go with their fields (Netns's Drop).
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

fn ifindex_in(ns: &Netns, name: &str) -> anyhow::Result<u32> {
    let name = name.to_owned();
    ns.within(move || cmd::ifindex(&name))
}

/// Runs `cmd` to its end: its wall and CPU time, its stdout and stderr
/// (for errors), its exit status.
fn timed(cmd: &mut Command) -> anyhow::Result<(Sample, String, std::process::ExitStatus)> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let mut out = String::new();
    let mut stderr = child.stderr.take().context("no stderr")?;
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    child
        .stdout
        .take()
        .context("no stdout")?
        .read_to_string(&mut out)?;
    let (cpu, status) = wait4(child.id())?;
    let wall = start.elapsed();
    out.push_str(&err.join().unwrap_or_default());
    Ok((Sample { wall, cpu }, out, status))
}

/// Sends SIGTERM to our child `pid` (not reaped yet, so the pid is still
/// its own).
fn terminate(pid: u32) {
    // SAFETY: kill has no memory effects; `pid` is a child we have not reaped.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
}

/// Reaps `pid`: its CPU time (user + system) and exit status.
fn wait4(pid: u32) -> anyhow::Result<(Duration, std::process::ExitStatus)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not reaped yet (std's Child is never
    // waited for here); both pointers are to live locals.
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("wait4");
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok((
        tv(usage.ru_utime) + tv(usage.ru_stime),
        std::process::ExitStatus::from_raw(status),
    ))
}

/// Median, min and max of `values`, in ms.
fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, values[0], values[n - 1])
}

fn print_table(builds: &[Build; 2], results: &Results, rounds: usize) {
    println!(
        "| path | {0} wall ms, median (min–max) | {1} wall ms | {1}/{0} wall | {0} CPU ms, median | {1} CPU ms | {1}/{0} CPU |",
        builds[0].name, builds[1].name
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, row) in Row::ALL.iter().enumerate() {
        let ms = |b: usize, f: fn(&Sample) -> Duration| {
            let mut v: Vec<f64> = results.samples[i][b]
                .iter()
                .map(|s| f(s).as_secs_f64() * 1e3)
                .collect();
            spread(&mut v)
        };
        let (gw, gmin, gmax) = ms(0, |s| s.wall);
        let (mw, mmin, mmax) = ms(1, |s| s.wall);
        let cpu = if row.has_cpu() {
            let (gc, _, _) = ms(0, |s| s.cpu);
            let (mc, _, _) = ms(1, |s| s.cpu);
            format!("{gc:.2} | {mc:.2} | {:.2}×", mc / gc)
        } else {
            "— | — | —".to_owned()
        };
        println!(
            "| {} | {gw:.2} ({gmin:.2}–{gmax:.2}) | {mw:.2} ({mmin:.2}–{mmax:.2}) | {:.2}× | {cpu} |",
            row.label(),
            mw / gw
        );
    }
    println!("\n{rounds} rounds, each build once per round, the order alternating.");
}
