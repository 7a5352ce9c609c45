//! Chores: `cargo xtask setup | test | demo | bench | install | deb | dist`.

mod deb;
mod dist;
mod install;
mod run_cli;
mod setup;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use run_cli::Target;

#[derive(Parser)]
#[command(name = "xtask", about = "xdp-forwarder chores")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what a fresh Debian 12 machine lacks (idempotent, quick when done).
    Setup,
    /// Set up, then run fmt, clippy and every test (needs root): host,
    /// BPF_PROG_TEST_RUN, namespaces, and the VM lab (QEMU guests on
    /// Debian's 6.1 and 6.12 kernels, and QEMU 10.0 from bookworm-backports
    /// for igb NICs, fetched once into the lab cache).
    Test {
        /// Only the VM lab's tests (lab/tests/vm.rs, lab/tests/hook.rs, lab/tests/wifi.rs).
        #[arg(long)]
        vm_only: bool,
    },
    /// Build a Debian package (the install layout under /usr, the static
    /// x86_64 binary: no Depends) with dpkg-deb; prints its path (the
    /// build's output only if a step fails).
    Deb,
    /// Set up, then write what a distribution's package recipe fetches:
    /// the static binaries for x86_64 and aarch64, the exported eBPF
    /// objects and SHA256SUMS, into one directory; prints its files.
    Dist {
        /// Where (created if needed); default: TARGET_DIR/dist.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// Set up, then fuzz the shared frame logic (fuzz/, cargo-fuzz on
    /// nightly) for SECONDS; `test` runs it for 60.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        seconds: u32,
    },
    /// Build and install the product: binaries, objects, manual pages,
    /// completions and contrib/ under DESTDIR/PREFIX.
    Install {
        /// Staging root (packages, tests); default: the real root.
        #[arg(long, value_name = "DIR")]
        destdir: Option<std::path::PathBuf>,
        #[arg(long, value_name = "DIR", default_value = "/usr/local")]
        prefix: std::path::PathBuf,
    },
    /// Set up, build, and run `xdp-forwarder-lab demo` (needs root): a net-vm and
    /// a router VM in throw-away namespaces, real traffic, a report. With
    /// `--vm`: `xdp-forwarder-lab vm-demo`, the net-vm as a QEMU guest with
    /// virtio-net NICs and the router VM on Linux's 802.1Q stack.
    Demo {
        /// Run the VM demo instead of the namespace one.
        #[arg(long)]
        vm: bool,
        /// Passed on to the demo (e.g. `--nics 4`, `--keep`; with --vm:
        /// `--kernel 6.12`, `--mode skb`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build, and run `xdp-forwarder-lab bench` (needs root; ~20
    /// minutes): results into docs/benchmarks.md (between its markers) and
    /// docs/benchmarks.svg.
    Bench {
        /// Passed on to `xdp-forwarder-lab bench` (e.g. `--runs 7`, `--quick`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Setup => setup::run(),
        Task::Test { vm_only } => {
            setup::run()?;
            test(vm_only)
        }
        Task::Install { destdir, prefix } => {
            setup::run()?;
            for file in install::run(destdir.as_deref(), &prefix)? {
                println!("{}", file.display());
            }
            Ok(())
        }
        Task::Deb => {
            setup::run()?;
            // Only the package's path on stdout, and one line on stderr:
            // the build's output is shown if it fails.
            eprintln!("cargo xtask deb: building the release binaries and the package");
            quiet();
            println!("{}", deb::run()?.display());
            Ok(())
        }
        Task::Dist { out } => {
            setup::run()?;
            for file in dist::run(out.as_deref())? {
                println!("{}", file.display());
            }
            Ok(())
        }
        Task::Fuzz { seconds } => {
            setup::run()?;
            fuzz(seconds)
        }
        Task::Demo { vm: false, args } => {
            setup::run()?;
            run_cli::run("demo", &args)
        }
        Task::Demo { vm: true, args } => {
            setup::run()?;
            run_cli::vm_demo(&args)
        }
        Task::Bench { mut args } => {
            setup::run()?;
            let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../docs/benchmarks.md")
                .display()
                .to_string();
            args.extend(["--out".into(), doc]);
            run_cli::run("bench", &args)
        }
    }
}

fn test(vm_only: bool) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the test suite loads XDP programs and creates network namespaces: run it as root");
    }
    if !vm_only {
        cargo(&["fmt", "--all", "--", "--check"])?;
        cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
    }
    // The guests get the static release binaries (x86_64 and aarch64); the
    // lab cache gets the kernels, QEMU from bookworm-backports and libbpf
    // before any test times itself.
    let bins = Bins {
        x86_64: run_cli::release_bins(Target::X86_64)?,
        aarch64: run_cli::release_bins(Target::Aarch64)?,
    };
    status(Command::new(bins.x86_64.join("xdp-forwarder-lab")).arg("fetch"))?;
    // --no-fail-fast: a red run lists every failing test, not only those of
    // the first test binary that failed.
    let args: &[&str] = if vm_only {
        &[
            "test",
            "--no-fail-fast",
            "--package",
            "xdp-forwarder-lab",
            "--test",
            "vm",
            "--test",
            "hook",
            "--test",
            "wifi",
        ]
    } else {
        &["test", "--no-fail-fast", "--all-targets"]
    };
    cargo_test(args, &bins)?;
    if !vm_only {
        fuzz(60)?;
    }
    Ok(())
}

/// `cargo fuzz run frame_logic` on nightly for `seconds`: a crash or a
/// failed assertion in the target fails it.
fn fuzz(seconds: u32) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    status(
        Command::new("rustup")
            .args([
                "run",
                "nightly",
                "cargo",
                "fuzz",
                "run",
                "frame_logic",
                "--",
            ])
            .arg(format!("-max_total_time={seconds}"))
            .current_dir(root),
    )
    .context("the fuzz target failed (its input is saved under fuzz/artifacts/)")
}

/// The directories of the static release binaries the tests run.
struct Bins {
    x86_64: std::path::PathBuf,
    aarch64: std::path::PathBuf,
}

/// `cargo ARGS` (a test run), echoing its output and closing with the
/// totals over every test binary (cargo's own last line is that of
/// whichever binary ran last). The tests that run the release binaries
/// (the VM lab's guests among them) find them through
/// `XDP_FORWARDER_BINS` (x86_64) and `XDP_FORWARDER_BINS_AARCH64`.
fn cargo_test(args: &[&str], bins: &Bins) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args(args)
        .env("XDP_FORWARDER_BINS", &bins.x86_64)
        .env("XDP_FORWARDER_BINS_AARCH64", &bins.aarch64)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(child.stdout.take().context("no stdout")?).lines() {
        let line = line?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            for part in result.split(';') {
                let mut words = part.split_whitespace().rev();
                if let (Some(kind), Some(n)) = (words.next(), words.next()) {
                    let n = n.parse::<u64>().unwrap_or(0);
                    match kind {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let st = child.wait()?;
    println!("{passed} passed, {failed} failed");
    if !st.success() || failed > 0 {
        bail!("cargo test failed ({st})");
    }
    if passed == 0 {
        bail!("cargo test ran no test");
    }
    Ok(())
}

/// Runs `cargo ARGS` in the workspace, failing on a non-zero exit.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(Command::new(cargo).args(args))
}

/// [`status`], the command's stdout sent to our stderr: for tasks whose
/// stdout is their answer (`deb` prints only the package's path, `install`
/// only the files) and for set-up steps.
pub fn status_to_stderr(cmd: &mut Command) -> anyhow::Result<()> {
    status(cmd.stdout(std::io::stderr()))
}

/// Whether [`status`] keeps the output of the commands it runs, showing it
/// only when one fails ([`quiet`]).
static QUIET: AtomicBool = AtomicBool::new(false);

/// From now on, the commands [`status`] runs (the release builds, whose
/// `cargo` and aya-build's eBPF build print a hundred lines, `dpkg-deb`, …)
/// are silent when they succeed; a failing one's whole output, stdout and
/// stderr as they came, goes to our stderr. For tasks whose answer is a
/// line on stdout (`deb`).
pub fn quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

pub fn status(cmd: &mut Command) -> anyhow::Result<()> {
    if QUIET.load(Ordering::Relaxed) {
        return status_quietly(cmd);
    }
    let st = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

/// Runs `cmd` with its stdout and stderr into one pipe, read to the end;
/// shown on our stderr only if it fails.
fn status_quietly(cmd: &mut Command) -> anyhow::Result<()> {
    let (mut reader, writer) = std::io::pipe().context("cannot make a pipe")?;
    let mut child = cmd
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    // Our copies of the write end go with the Command's, so that the read
    // ends when the child (and whatever it left running) closes its own.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut output = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut output)
        .with_context(|| format!("cannot read the output of {cmd:?}"))?;
    let st = child.wait()?;
    if !st.success() {
        std::io::stderr().write_all(&output)?;
        bail!("{cmd:?} failed ({st}); its output is above");
    }
    Ok(())
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
