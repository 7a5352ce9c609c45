//! Command line of `xdp-forwarder` (and of `set-router-iface`, the same
//! binary under the original tool's name): [`args`] is the schema,
//! [`output`] what is printed; here, running a command and logging.

pub mod args;
pub mod output;

pub use args::{Cli, Command, LogFormat, PinDirArg, SetRouterIfaceCli};
use output::watch_status;

use crate::{
    Result,
    attach::AttachRequest,
    forwarder::{Forwarder, prepare_router_iface},
    objects,
};

/// Runs one command on the pin dir `pins`, printing its outcome.
pub async fn run(command: Command, pins: PinDirArg) -> Result<()> {
    match command {
        Command::Attach {
            iface,
            role,
            mode,
            vid,
            replace,
            kind,
        } => {
            let fwd = Forwarder::open(&pins.pin_dir)?;
            let done = fwd
                .attach(&AttachRequest {
                    iface,
                    role: role.into(),
                    mode: mode.into(),
                    vid,
                    replace,
                    kind: kind.into(),
                })
                .await?;
            output::attached(&done);
        }
        Command::Detach { iface, all, gone } => {
            let fwd = Forwarder::open(&pins.pin_dir)?;
            let done = match iface {
                Some(iface) if !all && !gone => {
                    output::detached(&fwd.detach(&iface).await?);
                    return Ok(());
                }
                _ if gone => fwd.forget_gone().await?,
                _ => fwd.detach_all().await?,
            };
            let failed = output::detached_each(&done);
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
        } => {
            crate::daemon::run(crate::daemon::Options {
                pin_dir: pins.pin_dir,
                no_mount,
                rules: crate::daemon::Rules::new(&router_mac_prefix, ignore)?,
                router_policy: router_policy.into(),
                mode: mode.into(),
                detach_on_exit,
            })
            .await?;
        }
        Command::SetRouterIface { iface, clear } => {
            let fwd = Forwarder::open(&pins.pin_dir)?;
            match iface {
                Some(iface) if !clear => {
                    let (ifindex, _) = fwd.set_router_iface(&iface).await?;
                    output::router_iface_set(&iface, ifindex);
                }
                _ => output::router_iface_cleared(fwd.clear_router_iface(None).await?),
            }
        }
        Command::Inspect { iface, json } => {
            let link = crate::netdev::Netdev::connect()?.by_name(&iface).await?;
            output::inspection(&crate::inspect::inspect(&link)?, json)?;
        }
        Command::Status {
            format,
            json,
            textfile,
            watch,
            check,
            router_mac_prefix,
        } => {
            let prefix = crate::daemon::parse_mac_prefix(&router_mac_prefix)?;
            let fwd = Forwarder::open(&pins.pin_dir)?;
            let format = match (json, format, &textfile) {
                (true, _, _) => args::FormatArg::Json,
                (false, Some(format), _) => format,
                (false, None, Some(_)) => args::FormatArg::Prometheus,
                (false, None, None) => args::FormatArg::Text,
            };
            let sink = output::Sink::new(format, textfile, watch.is_some());
            match watch {
                None => {
                    let status = fwd.status_with_prefix(&prefix).await?;
                    sink.show(&status)?;
                    if check && status.has_warnings() {
                        return Err(crate::Error::StatusWarnings(status.warning_count()));
                    }
                }
                Some(secs) => watch_status(&fwd, &sink, secs, &prefix).await?,
            }
        }
        Command::ExportObjects { dir, libbpf_1_1 } => {
            let target = if libbpf_1_1 {
                objects::ExportFor::Libbpf1_1
            } else {
                objects::ExportFor::Libbpf
            };
            output::exported(&objects::export(&dir, target)?);
            if libbpf_1_1 {
                output::router_iface_prepared(prepare_router_iface(&pins.pin_dir), &pins.pin_dir);
            }
        }
    }
    Ok(())
}

/// Logs to stderr; `RUST_LOG` overrides the default level (warn; info for
/// the daemon, one line per event). `RUST_LOG` takes levels and targets
/// (`debug`, `warn,xdp_forwarder::attach=debug`), not EnvFilter's regex
/// span filters: that would cost the binary a regex engine.
pub fn init_logging(command: &Command) {
    use tracing_subscriber::{
        filter::Targets, layer::SubscriberExt as _, util::SubscriberInitExt as _,
    };
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

/// Runs the command line's command on a single-threaded runtime and turns
/// an error into a message and exit code 1 (3: `status --check` found
/// warnings).
pub fn main_with(cli: Cli) -> std::process::ExitCode {
    let Cli { pins, command } = cli;
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
    match runtime.block_on(run(command, pins)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e @ crate::Error::StatusWarnings(_)) => {
            eprintln!("{e}");
            std::process::ExitCode::from(crate::error::EXIT_WARNINGS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
