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
    // `help` is a subcommand of the binary, not a page of its own.
    let main = Cli::command().disable_help_subcommand(true);
    let mut pages = vec![page(dir, main.clone(), "", false)?];
    for sub in main.get_subcommands() {
        // clap names are &'static str without its `string` feature (which
        // would grow the product's binary too): leak this one-shot name.
        let name: &'static str = format!("xdp-forwarder-{}", sub.get_name()).leak();
        pages.push(page(dir, sub.clone().name(name), sub.get_name(), true)?);
    }
    pages.push(page(
        dir,
        SetRouterIfaceCli::command(),
        "set-router-iface",
        false,
    )?);
    Ok(pages)
}

/// One page: clap_mangen's sections, a synopsis that shows each option's
/// values, and EXAMPLES, FILES, EXIT STATUS (and SIGNALS for `run`).
/// `sub`: the subcommand it documents ("" for the main page); `global`:
/// whether `--pin-dir` (a global option) is to be added to its synopsis.
fn page(dir: &Path, cmd: clap::Command, sub: &str, global: bool) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}.8", cmd.get_name()));
    let mut synopsis = cmd.clone();
    synopsis.build();
    let man = clap_mangen::Man::new(cmd).section("8");
    let mut text = Vec::new();
    let err = |e| anyhow::Error::new(e).context("rendering a manual page");
    man.render_title(&mut text).map_err(err)?;
    man.render_name_section(&mut text).map_err(err)?;
    text.extend(synopsis_section(&synopsis, global).into_bytes());
    man.render_description_section(&mut text).map_err(err)?;
    man.render_options_section(&mut text).map_err(err)?;
    if synopsis.has_subcommands() {
        man.render_subcommands_section(&mut text).map_err(err)?;
    }
    text.extend(extra_sections(sub).into_bytes());
    if synopsis.get_version().is_some() {
        man.render_version_section(&mut text).map_err(err)?;
    }
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Text for roff: backslashes and hyphens escaped, a leading dot or quote
/// made harmless.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// SYNOPSIS with the values each option takes (`--role physical|router`,
/// `--vid N`), optional ones in brackets; help and version left to OPTIONS.
fn synopsis_section(cmd: &clap::Command, global: bool) -> String {
    let mut words = vec![format!("\\fB{}\\fR", roff(cmd.get_name()))];
    if global {
        words.push(format!("[\\fB{}\\fR \\fIDIR\\fR]", roff("--pin-dir")));
    }
    let mut positionals = Vec::new();
    for arg in cmd.get_arguments() {
        if arg.is_hide_set()
            || matches!(
                arg.get_action(),
                clap::ArgAction::Help | clap::ArgAction::Version
            )
        {
            continue;
        }
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("\\fI{}\\fR", roff(v.get_name())))
            .collect();
        let value = if !values.is_empty() {
            values.join("|")
        } else {
            arg.get_value_names()
                .and_then(|n| n.first())
                .map(|n| format!("\\fI{}\\fR", roff(n)))
                .unwrap_or_else(|| {
                    format!("\\fI{}\\fR", roff(&arg.get_id().to_string().to_uppercase()))
                })
        };
        let takes_value = arg.get_action().takes_values();
        let optional_value = arg
            .get_num_args()
            .is_some_and(|n| n.min_values() == 0 && n.max_values() > 0);
        let word = match arg.get_long() {
            None => {
                positionals.push((arg.is_required_set(), value));
                continue;
            }
            Some(long) if !takes_value => format!("\\fB{}\\fR", roff(&format!("--{long}"))),
            Some(long) if optional_value => {
                format!("\\fB{}\\fR [{value}]", roff(&format!("--{long}")))
            }
            Some(long) => format!("\\fB{}\\fR {value}", roff(&format!("--{long}"))),
        };
        let repeat = if matches!(arg.get_action(), clap::ArgAction::Append) {
            "..."
        } else {
            ""
        };
        words.push(if arg.is_required_set() {
            format!("{word}{repeat}")
        } else {
            format!("[{word}]{repeat}")
        });
    }
    for (required, value) in positionals {
        words.push(if required {
            value
        } else {
            format!("[{value}]")
        });
    }
    if cmd.has_subcommands() {
        words.push("\\fISUBCOMMAND\\fR".into());
    }
    format!(".SH SYNOPSIS\n{}\n", words.join(" "))
}

/// A section: its paragraphs (text), and its examples (verbatim lines).
fn section(title: &str, paragraphs: &[&str]) -> String {
    let mut out = format!(".SH \"{title}\"\n");
    for p in paragraphs {
        if let Some(code) = p.strip_prefix("$ ") {
            out.push_str(&format!(".PP\n.nf\n.RS 4\n{}\n.RE\n.fi\n", roff(code)));
        } else {
            out.push_str(&format!(".PP\n{}\n", roff(p)));
        }
    }
    out
}

const FILES: &[&str] = &[
    "/sys/fs/bpf (the default pin dir, a bpffs mount): router_iface, and xdp-forwarder/ with \
     the registry (ports), the VID map (fwd_vlan_ports), each port's link-IFINDEX and \
     counters-IFINDEX.",
    "/usr/share/doc/xdp-forwarder/net-vm.md: running it in a net-vm (the daemon, the mdev \
     hook, namespaces); status.md: what status shows, its JSON and exit status; \
     architecture.md.",
    "/usr/lib/systemd/system/xdp-forwarder.service, /usr/lib/xdp-forwarder/mdev/iface and \
     coldplug: the daemon's unit and the mdev hook, installed, not enabled.",
];

const EXIT: &str = "0 on success; 1 on an error (the message names the interface or path, the \
                    kernel's errno and the fix); 2 on a usage error.";

/// EXAMPLES, FILES, EXIT STATUS (and SIGNALS) of the page for `sub`.
fn extra_sections(sub: &str) -> String {
    let (examples, exit, signals): (&[&str], &str, &[&str]) = match sub {
        "attach" => (
            &[
                "Attach a NIC (its VID: its ifindex) and the router interface; both get \
                 promiscuous mode and their link up, and the router role points router_iface \
                 at the router interface:",
                "$ xdp-forwarder attach eth1 --role physical",
                "$ xdp-forwarder attach eth0 --role router",
                "Upgrade the program in place after installing a new release:",
                "$ xdp-forwarder attach eth1 --role physical --replace",
            ],
            EXIT,
            &[],
        ),
        "detach" => (
            &[
                "$ xdp-forwarder detach eth1",
                "Release what belonged to interfaces that are gone (an mdev remove):",
                "$ xdp-forwarder detach --gone",
            ],
            "0 on success; 1 on an error, or when --all or --gone could not detach a port \
             (each is reported; the same command again retries them); 2 on a usage error.",
            &[],
        ),
        "run" => (
            &[
                "$ xdp-forwarder run --router-mac-prefix 02:01:00:00:00:01 --ignore 'tap*'",
                "$ systemctl enable --now xdp-forwarder",
            ],
            "0 after SIGTERM or SIGINT; 1 when it cannot start (the message says why: bpffs, \
             privileges, another daemon on the pin dir, another namespace's ports); 2 on a \
             usage error.",
            &[
                "SIGHUP: rescan every interface now, and take back those detached by hand.",
                "SIGTERM, SIGINT: exit, leaving the data plane running (--detach-on-exit takes \
                 it down).",
            ],
        ),
        "status" => (
            &[
                "$ xdp-forwarder status",
                "$ xdp-forwarder status --watch 2",
                "$ xdp-forwarder status --check >/dev/null || echo 'xdp-forwarder needs attention'",
                "$ xdp-forwarder status --watch 15 --textfile /var/lib/node_exporter/textfile/xdp-forwarder.prom",
            ],
            "0 on success; 1 when the state cannot be read; 2 on a usage error; with --check, \
             3 when the status has a warning.",
            &[],
        ),
        "set-router-iface" => (
            &[
                "$ xdp-forwarder set-router-iface eth0",
                "$ xdp-forwarder set-router-iface --clear",
            ],
            EXIT,
            &[],
        ),
        "inspect" => (&["$ xdp-forwarder inspect eth1"], EXIT, &[]),
        "export-objects" => (
            &[
                "$ xdp-forwarder export-objects /tmp/objs --libbpf-1.1",
                "$ xdp-loader load eth1 /tmp/objs/prog_physical.o -m skb -p /sys/fs/bpf",
            ],
            EXIT,
            &[],
        ),
        _ => (
            &[
                "$ xdp-forwarder attach eth1 --role physical",
                "$ xdp-forwarder attach eth0 --role router",
                "$ xdp-forwarder status",
                "$ xdp-forwarder run",
            ],
            "0 on success; 1 on an error (the message names the interface or path, the \
             kernel's errno and the fix); 2 on a usage error; status --check: 3 when the \
             status has a warning.",
            &[],
        ),
    };
    let mut out = section("EXAMPLES", examples);
    out.push_str(&section("FILES", FILES));
    out.push_str(&section("EXIT STATUS", &[exit]));
    if !signals.is_empty() {
        out.push_str(&section("SIGNALS", signals));
    }
    out
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
