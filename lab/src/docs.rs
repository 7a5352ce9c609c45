//! The product's manual pages and shell completions, generated from its
//! clap definitions (here, so that the product binary carries neither
//! generator). `cargo xtask install` puts them in place.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;
use xdp_forwarder::cli::{Cli, SetRouterIfaceCli};

/// Writes `xdp-forwarder.8`, one `xdp-forwarder-SUBCOMMAND.8` per
/// subcommand, and `set-router-iface.8` into `dir`; returns their paths.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let main = Cli::command();
    let mut pages = vec![page(dir, main.clone())?];
    for sub in main.get_subcommands() {
        // clap names are &'static str without its `string` feature (which
        // would grow the product's binary too): leak this one-shot name.
        let name: &'static str = format!("xdp-forwarder-{}", sub.get_name()).leak();
        pages.push(page(dir, sub.clone().name(name))?);
    }
    pages.push(page(dir, SetRouterIfaceCli::command())?);
    Ok(pages)
}

fn page(dir: &Path, cmd: clap::Command) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}.8", cmd.get_name()));
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("8")
        .render(&mut text)
        .context("rendering a manual page")?;
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The completion script of `shell` for `xdp-forwarder`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "xdp-forwarder", &mut out);
    if shell == Shell::Bash {
        out = fix_bash_state_names(&out);
    }
    out
}

/// clap_complete's bash script (up to 4.6.12, the latest release; fixed
/// upstream by clap-rs/clap PR #6428, not yet released) names a
/// subcommand's state `xdp__forwarder__subcmd__attach` where it dispatches
/// and `xdp__subcmd__forwarder__subcmd__attach` in the case arm that
/// completes it, for a binary name with a hyphen (clap-rs/clap#6421): nothing
/// after the subcommand completes. Spell the arms as the dispatch does.
fn fix_bash_state_names(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace(
            "xdp__subcmd__forwarder__subcmd__",
            "xdp__forwarder__subcmd__",
        )
        .into_bytes()
}
