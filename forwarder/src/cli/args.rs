//! The command line's schema: what `xdp-forwarder` (and, invoked under that
//! name, `set-router-iface`) accepts. The enums here mirror the library's
//! (which know nothing of clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{ModeChoice, Role, daemon::RouterPolicy, pins::DEFAULT_PIN_DIR};

/// XDP data plane: physical NICs ↔ one router interface, multiplexed by
/// 802.1Q VLAN tags.
#[derive(Debug, Parser)]
#[command(name = "xdp-forwarder", version)]
pub struct Cli {
    #[command(flatten)]
    pub pins: PinDirArg,
    #[command(subcommand)]
    pub command: Command,
}

/// Global: accepted before the subcommand (`xdp-forwarder --pin-dir D
/// status`, as iproute2 and bpftool take global options) and after it.
#[derive(Debug, clap::Args)]
pub struct PinDirArg {
    /// bpffs directory holding router_iface and the xdp-forwarder state.
    #[arg(long, global = true, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pub pin_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach the physical or router program to an interface; the attachment
    /// is pinned and outlives this command.
    ///
    /// Also brings the link up and turns promiscuous mode on (the NIC's
    /// MAC and VLAN filters would drop frames for the VMs behind the router
    /// before the program sees them; detach turns it off again only if
    /// attach turned it on); the router role points router_iface at the
    /// interface. The same command again repairs what the kernel says is
    /// missing (program detached, empty slot, link down, promiscuous mode
    /// off).
    ///
    /// Refused, in every mode, on an interface that already runs our
    /// program through another pin dir (XDP, tcx or clsact: one forwarder
    /// per interface) or an XDP program not ours; the message names what
    /// holds it and the command that frees the interface.
    Attach {
        /// The interface.
        iface: String,
        /// What the interface is.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// tc (tcx link, or clsact filter before Linux 6.6), native (driver)
        /// or skb (generic) XDP; auto tries them in that order.
        #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
        mode: ModeArg,
        /// Physical only: the VID (1..=4094) for this NIC; default: its ifindex
        /// when free and in range, else the lowest free VID.
        #[arg(long, value_name = "N", value_parser = parse_vid)]
        vid: Option<u32>,
        /// Re-attach even if the interface is already attached (other role,
        /// VID or mode).
        #[arg(long)]
        replace: bool,
        /// Physical only: a Wi-Fi station (its frames translated to the
        /// station's MAC, tc only) or Ethernet; auto: what the kernel says
        /// (a cfg80211 netdev is a station).
        #[arg(long, value_enum, default_value_t = KindArg::Auto)]
        kind: KindArg,
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
    },
    /// The hot-plug daemon: attach every interface by the net-vm's rules
    /// (router MAC prefix → router, `lo` and --ignore left alone, the rest
    /// physical) and follow interfaces as they come and go.
    ///
    /// Mounts bpffs at --pin-dir with mode=0700 if it is not mounted
    /// (--no-mount makes that an error); refuses to in a mount namespace of
    /// its own (ip netns exec), where the mount would vanish with it. A
    /// failed interface is retried 1 s later, then 2, 4, 8 s and so on, at most a
    /// minute apart. A manual detach is honoured until SIGHUP. SIGHUP
    /// rescans; SIGTERM and SIGINT exit and leave the data plane running.
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
        router_policy: PolicyArg,
        /// Attach mode; auto tries tc, native, skb in that order.
        #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
        mode: ModeArg,
        /// Detach everything on SIGTERM/SIGINT (default: leave the data plane running).
        #[arg(long)]
        detach_on_exit: bool,
        /// Log lines as text or as JSON objects.
        #[arg(long, value_enum, default_value_t)]
        log_format: LogFormat,
    },
    /// Point router_iface (entry 0) at IFACE, as the original set_router_iface;
    /// or empty it (--clear).
    SetRouterIface {
        /// The router-facing interface (omit with --clear).
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        iface: Option<String>,
        /// Empty router_iface (refused while it leads to the router port
        /// xdp-forwarder attached: detach that instead). `detach IFACE` of
        /// the interface it points at does the same.
        #[arg(long)]
        clear: bool,
    },
    /// Show what decides an interface's mode: driver, XDP features (Linux
    /// 6.3 and later), tcx, the receive features that touch tags and
    /// aggregates, promiscuous mode, MTU, queues, and what --mode auto tries.
    Inspect {
        /// The interface.
        iface: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show what is attached where.
    Status {
        /// Output: a table, JSON, OpenMetrics text, or the classic
        /// Prometheus text format (schema and families:
        /// /usr/share/doc/xdp-forwarder/status.md). Default: the table, or
        /// with --textfile the Prometheus format.
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// The same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// Write the document to PATH instead of stdout, atomically (a
        /// temporary file renamed over it); with --watch, every interval.
        /// For node_exporter's textfile collector (a PATH ending in .prom):
        /// the Prometheus format unless --format says otherwise.
        #[arg(long, value_name = "PATH")]
        textfile: Option<PathBuf>,
        /// Refresh every SECONDS (default 1) and show rates; with --json,
        /// one JSON document per line per refresh.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1",
              value_parser = parse_interval)]
        watch: Option<std::time::Duration>,
        /// Exit 3 when anything is wrong (a warning on the status or on a
        /// port), after printing it as usual; 0 when all is well. For
        /// scripts and health checks. Not with --watch.
        #[arg(long, conflicts_with = "watch")]
        check: bool,
        /// The daemon's router MAC prefix: interfaces with it that are not
        /// ports are shown as standby routers.
        #[arg(long, default_value = "02:01:", value_name = "PREFIX")]
        router_mac_prefix: String,
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
    },
}

// `set-router-iface IFACE`: the original tool's interface, for the binary
// invoked under that name (installed as a link to `xdp-forwarder`).
/// Point the pinned router_iface map (entry 0) at IFACE.
#[derive(Debug, Parser)]
#[command(name = "set-router-iface", version)]
pub struct SetRouterIfaceCli {
    /// The router-facing interface.
    pub iface: String,
    #[command(flatten)]
    pub pins: PinDirArg,
}

impl From<SetRouterIfaceCli> for Cli {
    fn from(cli: SetRouterIfaceCli) -> Self {
        Cli {
            pins: cli.pins,
            command: Command::SetRouterIface {
                iface: Some(cli.iface),
                clear: false,
            },
        }
    }
}

/// How `status` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// The table.
    #[default]
    Text,
    /// JSON (one document per line with --watch).
    Json,
    /// OpenMetrics text (Prometheus scraping with OpenMetrics).
    Openmetrics,
    /// The classic Prometheus text format (node_exporter's textfile
    /// collector).
    Prometheus,
}

/// What the interface is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// A NIC: frames get its VID and go to the router interface.
    Physical,
    /// The router-facing interface: frames lose their tag and go to the NIC
    /// the VID names.
    Router,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Physical => Role::Physical,
            RoleArg::Router => Role::Router,
        }
    }
}

/// How the program runs on the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// tc, else native, else skb; never a mode that leaves a direction dead
    /// next to the ports attached.
    #[default]
    Auto,
    /// XDP in the driver.
    Native,
    /// Generic XDP on the skb (what the original runs).
    Skb,
    /// A tc program on the skb (a tcx link; a clsact filter before Linux
    /// 6.6): GSO, checksum state and tags in metadata pass whole.
    Tc,
}

impl From<ModeArg> for ModeChoice {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Auto => ModeChoice::Auto,
            ModeArg::Native => ModeChoice::Native,
            ModeArg::Skb => ModeChoice::Skb,
            ModeArg::Tc => ModeChoice::Tc,
        }
    }
}

/// What kind of link a physical port is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// What the kernel says: a Wi-Fi netdev (DEVTYPE=wlan) is a station.
    #[default]
    Auto,
    /// Frames of any source MAC pass.
    Ethernet,
    /// One MAC only: what the router sends is translated to the station's.
    Wifi,
}

impl From<KindArg> for crate::station::KindChoice {
    fn from(k: KindArg) -> Self {
        use crate::station::{KindChoice, PortKind};
        match k {
            KindArg::Auto => KindChoice::Auto,
            KindArg::Ethernet => KindChoice::Fixed(PortKind::Ethernet),
            KindArg::Wifi => KindChoice::Fixed(PortKind::Wifi),
        }
    }
}

/// A second router-prefix interface while one is active.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Keep the active one; log a warning about the newcomer.
    #[default]
    First,
    /// Move the router role to the newcomer.
    Latest,
}

impl From<PolicyArg> for RouterPolicy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::First => RouterPolicy::First,
            PolicyArg::Latest => RouterPolicy::Latest,
        }
    }
}

/// How `run` logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `--vid N`: refused alike (a usage error, exit 2) whether it is out of
/// range or not a number at all.
fn parse_vid(s: &str) -> std::result::Result<u32, String> {
    match s.parse::<u32>() {
        Ok(vid) if (1..=4094).contains(&vid) => Ok(vid),
        _ => Err(format!("{s:?} is not a usable VID: choose one in 1..=4094")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_intervals_are_seconds_from_a_tenth_to_a_day() {
        assert_eq!(parse_interval("1"), Ok(std::time::Duration::from_secs(1)));
        assert_eq!(
            parse_interval("0.5"),
            Ok(std::time::Duration::from_millis(500))
        );
        for bad in ["0", "0.05", "86401", "-1", "NaN", "inf", "soon"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
