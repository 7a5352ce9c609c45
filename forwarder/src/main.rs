//! `xdp-forwarder`, and `set-router-iface` when invoked under that name (the
//! original tool's interface; install it as a link to this binary).

use std::{ffi::OsStr, path::Path};

use clap::Parser as _;
use xdp_forwarder::cli::{Cli, SetRouterIfaceCli, main_with};

fn main() -> std::process::ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if Path::new(&argv0).file_name() == Some(OsStr::new("set-router-iface")) {
        return main_with(SetRouterIfaceCli::parse().into());
    }
    main_with(Cli::parse())
}
