//! `set-router-iface IFACE`: the original tool's interface, kept as its own
//! binary so that scripts written for it keep working.
use std::path::PathBuf;

use clap::Parser;
use xdp_forwarder::{
    cli::{Command, PinDirArg, main_with},
    pins::DEFAULT_PIN_DIR,
};

/// Point the pinned router_iface map (entry 0) at IFACE.
#[derive(Debug, Parser)]
#[command(name = "set-router-iface", version)]
struct Args {
    /// The router-facing interface.
    iface: String,
    /// bpffs directory holding router_iface.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pin_dir: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    main_with(Command::SetRouterIface {
        iface: args.iface,
        pins: PinDirArg {
            pin_dir: args.pin_dir,
        },
    })
}
