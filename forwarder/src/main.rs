use clap::Parser as _;
use xdp_forwarder::cli::{Cli, main_with};

fn main() -> std::process::ExitCode {
    main_with(Cli::parse().command)
}
