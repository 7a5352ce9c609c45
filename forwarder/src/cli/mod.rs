//! Command line of `xdp-forwarder` and `set-router-iface`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    ModeChoice, Result, Role,
    attach::AttachRequest,
    detach::Outcome,
    forwarder::{Forwarder, prepare_router_iface},
    objects,
    pins::DEFAULT_PIN_DIR,
};

/// XDP data plane: physical NICs ↔ one router interface, multiplexed by
/// 802.1Q VLAN tags.
#[derive(Debug, Parser)]
#[command(name = "xdp-forwarder", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct PinDirArg {
    /// bpffs directory holding router_iface and the xdp-forwarder state.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pub pin_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach the physical or router program to an interface; the attachment
    /// is pinned and outlives this command.
    Attach {
        /// The interface.
        iface: String,
        /// What the interface is.
        #[arg(long)]
        role: Role,
        /// Native (driver) or skb (generic) XDP; auto tries native first.
        #[arg(long, value_enum, default_value_t = ModeChoice::Auto)]
        mode: ModeChoice,
        /// Physical only: the VID (1..=4094) for this NIC; default: its ifindex
        /// when free and in range, else the lowest free VID.
        #[arg(long, value_name = "N")]
        vid: Option<u32>,
        /// Re-attach even if the interface is already attached (other role,
        /// VID or mode).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        pins: PinDirArg,
    },
    /// Remove an attachment, its pins and its map entries.
    Detach {
        /// The interface (omit with --all or --gone).
        #[arg(required_unless_present_any = ["all", "gone"], conflicts_with_all = ["all", "gone"])]
        iface: Option<String>,
        /// Detach every port of the pin dir, including ports whose interface is gone.
        #[arg(long, conflicts_with = "gone")]
        all: bool,
        /// Only forget the ports whose interface is gone (an mdev `remove`).
        #[arg(long)]
        gone: bool,
        #[command(flatten)]
        pins: PinDirArg,
    },
    /// The hot-plug daemon: attach every interface by the net-vm's rules
    /// (router MAC prefix → router, `lo` and --ignore left alone, the rest
    /// physical) and follow interfaces as they come and go.
    Run {
        /// Fail if the pin dir is not a bpffs mount instead of mounting one.
        #[arg(long)]
        no_mount: bool,
        /// MAC prefix of the router interface.
        #[arg(long, default_value = "02:01:", value_name = "PREFIX")]
        router_mac_prefix: String,
        /// Leave interfaces matching PATTERN alone (`*`, `?`; repeatable).
        #[arg(long, value_name = "PATTERN")]
        ignore: Vec<String>,
        /// A second router-prefix interface while one is active: keep the
        /// first (and warn), or move the role to the latest.
        #[arg(long, value_enum, default_value_t)]
        router_policy: crate::daemon::RouterPolicy,
        /// Attach mode; auto tries native first.
        #[arg(long, value_enum, default_value_t = ModeChoice::Auto)]
        mode: ModeChoice,
        /// Detach everything on SIGTERM/SIGINT (default: leave the data plane running).
        #[arg(long)]
        detach_on_exit: bool,
        /// Log lines as text or as JSON objects.
        #[arg(long, value_enum, default_value_t)]
        log_format: LogFormat,
        #[command(flatten)]
        pins: PinDirArg,
    },
    /// Point router_iface (entry 0) at IFACE, as the original set_router_iface.
    SetRouterIface {
        iface: String,
        #[command(flatten)]
        pins: PinDirArg,
    },
    /// Show what is attached where.
    Status {
        /// Machine-readable output (schema documented in the README).
        #[arg(long)]
        json: bool,
        /// Refresh every SECONDS (default 1) and show rates; with --json,
        /// one JSON document per line per refresh.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1",
              value_parser = parse_interval)]
        watch: Option<std::time::Duration>,
        #[command(flatten)]
        pins: PinDirArg,
    },
    /// Write prog_physical.o and prog_router.o, loadable with
    /// `xdp-loader load IFACE DIR/prog_physical.o -m skb -p /sys/fs/bpf`
    /// (libbpf 1.3 or later, as the original's; see --libbpf-1.1).
    ExportObjects {
        /// Where to write them (created if needed).
        dir: PathBuf,
        /// For a loader built on libbpf 1.1 (Debian 12's xdp-loader), which
        /// can only reuse a pinned router_iface if the objects declare the
        /// flags the kernel reports, and then cannot create it: the objects
        /// declare them, and router_iface is pinned in --pin-dir if missing.
        #[arg(long = "libbpf-1.1")]
        libbpf_1_1: bool,
        /// Where router_iface is pinned for --libbpf-1.1.
        #[command(flatten)]
        pins: PinDirArg,
    },
}

/// Runs one command, printing its outcome.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Attach {
            iface,
            role,
            mode,
            vid,
            replace,
            pins,
        } => {
            let fwd = Forwarder::open(&pins.pin_dir)?;
            let done = fwd
                .attach(&AttachRequest {
                    iface,
                    role,
                    mode,
                    vid,
                    replace,
                })
                .await?;
            let vid = done.vid.map(|v| format!(", VID {v}")).unwrap_or_default();
            let what = if done.unchanged {
                "already attached"
            } else {
                "attached"
            };
            let mut why = done
                .mode_reason
                .map(|r| format!("; {r}"))
                .unwrap_or_default();
            if !done.repaired.is_empty() {
                why.push_str(&format!("; repaired: {}", done.repaired.join(", ")));
            }
            println!(
                "{}: {what} as {} ({} mode{vid}){why}",
                done.iface, done.role, done.mode
            );
        }
        Command::Detach {
            iface,
            all,
            gone,
            pins,
        } => {
            let fwd = Forwarder::open(&pins.pin_dir)?;
            let done = match iface {
                Some(iface) if !all && !gone => {
                    let d = fwd.detach(&iface).await?;
                    let note = d
                        .repaired
                        .first()
                        .map(|r| format!("; {r}"))
                        .unwrap_or_default();
                    println!("{}: detached ({}){note}", printable(&d.iface), d.role);
                    return Ok(());
                }
                _ if gone => fwd.forget_gone().await?,
                _ => fwd.detach_all().await?,
            };
            if done.is_empty() {
                println!("nothing attached");
            }
            let mut failed = 0;
            for Outcome { port, error } in &done {
                match error {
                    None => println!("{}: detached ({})", printable(&port.iface), port.role),
                    Some(e) => {
                        failed += 1;
                        println!(
                            "{}: NOT detached ({}): {e}",
                            printable(&port.iface),
                            port.role
                        );
                    }
                }
            }
            if failed > 0 {
                return Err(crate::Error::Failed(format!(
                    "{failed} of {} port(s) could not be detached (see above); \
                     the same command again retries them",
                    done.len()
                )));
            }
        }
        Command::Run {
            no_mount,
            router_mac_prefix,
            ignore,
            router_policy,
            mode,
            detach_on_exit,
            log_format: _,
            pins,
        } => {
            crate::daemon::run(crate::daemon::Options {
                pin_dir: pins.pin_dir,
                no_mount,
                rules: crate::daemon::Rules::new(&router_mac_prefix, ignore)?,
                router_policy,
                mode,
                detach_on_exit,
            })
            .await?;
        }
        Command::SetRouterIface { iface, pins } => {
            let fwd = Forwarder::open(&pins.pin_dir)?;
            let (ifindex, _) = fwd.set_router_iface(&iface).await?;
            println!("router_iface → {} (ifindex {ifindex})", printable(&iface));
        }
        Command::Status { json, watch, pins } => {
            let fwd = Forwarder::open(&pins.pin_dir)?;
            match watch {
                None => print_status(&fwd.status().await?, json, false)?,
                Some(secs) => watch_status(&fwd, json, secs).await?,
            }
        }
        Command::ExportObjects {
            dir,
            libbpf_1_1,
            pins,
        } => {
            let target = if libbpf_1_1 {
                objects::ExportFor::Libbpf1_1
            } else {
                objects::ExportFor::Libbpf
            };
            for path in objects::export(&dir, target)? {
                println!("{}", path.display());
            }
            if !libbpf_1_1 {
                return Ok(());
            }
            match prepare_router_iface(&pins.pin_dir) {
                Ok(path) => println!("{} is pinned: xdp-loader can share it", path.display()),
                Err(e) => eprintln!(
                    "note: router_iface is not pinned ({e}); run `xdp-forwarder set-router-iface IFACE` \
                     (or this command again) as root before `xdp-loader load ... -p {}`",
                    pins.pin_dir.display()
                ),
            }
        }
    }
    Ok(())
}

fn print_status(status: &crate::status::Status, json: bool, watching: bool) -> Result<()> {
    let json_err = |e| crate::Error::kernel("json", e);
    match (json, watching) {
        (true, false) => println!(
            "{}",
            serde_json::to_string_pretty(status).map_err(json_err)?
        ),
        (true, true) => println!("{}", serde_json::to_string(status).map_err(json_err)?),
        // Home the cursor and clear the screen: the table refreshes in place.
        (false, true) => print!("\x1b[H\x1b[2J{status}"),
        (false, false) => print!("{status}"),
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    Ok(())
}

/// `name` with control characters escaped: interface names come from the
/// kernel and may hold anything but `/` and NUL.
pub fn printable(name: &str) -> String {
    if name.chars().any(char::is_control) {
        name.escape_debug().to_string()
    } else {
        name.to_owned()
    }
}

/// `--watch SECONDS`: at least 0.1 s, so that rates mean something.
fn parse_interval(s: &str) -> std::result::Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.1..=86400.0).contains(&secs) => {
            Ok(std::time::Duration::from_secs_f64(secs))
        }
        _ => Err(format!(
            "{s:?} is not an interval in seconds between 0.1 and 86400"
        )),
    }
}

/// `status --watch`: a sample every interval, with rates from the previous one,
/// until interrupted.
async fn watch_status(fwd: &Forwarder, json: bool, interval: std::time::Duration) -> Result<()> {
    let mut previous: Option<(crate::status::Status, std::time::Instant)> = None;
    loop {
        let mut status = fwd.status().await?;
        let now = std::time::Instant::now();
        if let Some((before, at)) = &previous {
            status.set_rates(before, now - *at);
        }
        print_status(&status, json, true)?;
        previous = Some((status, now));
        tokio::time::sleep(interval).await;
    }
}

/// How `run` logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logs to stderr; `RUST_LOG` overrides the default level (warn; info for
/// the daemon, one line per event). `RUST_LOG` takes levels and targets
/// (`debug`, `warn,xdp_forwarder::attach=debug`), not EnvFilter's regex
/// span filters: that would cost the binary a regex engine.
pub fn init_logging(command: &Command) {
    use tracing_subscriber::{filter::Targets, layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let (level, format) = match command {
        Command::Run { log_format, .. } => ("info", *log_format),
        _ => ("warn", LogFormat::Text),
    };
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| level.parse().expect("a level"));
    use std::io::IsTerminal as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(layer).init(),
        LogFormat::Json => registry.with(layer.json()).init(),
    }
}

/// Runs `command` on a single-threaded runtime and turns an error into a
/// message and exit code 1.
pub fn main_with(command: Command) -> std::process::ExitCode {
    // SAFETY: restoring the default disposition before any thread starts, so
    // that `xdp-forwarder status | head` ends quietly instead of panicking.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    init_logging(&command);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
