//! `xdp-forwarder-lab`: the lab beside the forwarder (not part of a net-vm).

use std::{
    net::{TcpListener, UdpSocket},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use xdp_forwarder::ModeChoice;
use xdp_forwarder_lab::demo::checks::print_result;
use xdp_forwarder_lab::{
    bench,
    debian::{self, GuestKernel},
    demo, docs, libbpf, libc_bench, traffic,
    vm::{self, NetVmLab, cases, initramfs::Contents},
};

#[derive(Parser)]
#[command(
    name = "xdp-forwarder-lab",
    version,
    about = "The lab beside xdp-forwarder: VMs on Debian's kernels, and what they run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch the guest kernels (Debian 12's and 13's, amd64 and arm64),
    /// busybox-static for arm64 and QEMU from bookworm-backports (for igb
    /// and aarch64 guests), and build libbpf, into the lab cache
    /// (/var/cache/xdp-forwarder-lab, or $XDP_FORWARDER_LAB_CACHE). Quick
    /// when done.
    Fetch,
    /// The demo with a real net-vm: the forwarder inside a QEMU guest with
    /// virtio-net NICs, the router VM on Linux's own 802.1Q stack.
    VmDemo {
        /// Guest kernel: 6.1 (Debian 12) or 6.12 (Debian 13).
        #[arg(long, default_value = "6.1", value_parser = GuestKernel::parse)]
        kernel: GuestKernel,
        /// Outside networks (virtio-net NICs of the net-vm).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=vm::MAX_NICS as i64))]
        nics: u8,
        /// Attach mode(s) to run (auto: whatever it picks, reported).
        #[arg(long, value_parser = ["native", "skb", "tc", "auto"], num_args = 1.., default_values = ["native", "skb"])]
        mode: Vec<String>,
        /// The net-vm's router NIC: QEMU's default virtio-net, or made as
        /// Spectrum's VMM makes it (no CTRL_GUEST_OFFLOADS, no mergeable
        /// receive buffers: native XDP refused, TSO aggregates delivered
        /// whole).
        #[arg(long, default_value = "qemu-default", value_parser = ["qemu-default", "like-spectrum"])]
        router_nic: String,
    },
    /// Issue 26's benchmark row: bulk TCP from a VM behind the router
    /// through the net-vm's Wi-Fi station (mac80211_hwsim, hostapd) against
    /// the station's own TCP to the same outside host, same guests, same
    /// run; prints a Markdown table (docs/benchmarks.md).
    WifiBench {
        /// Guest kernel: 6.1 (Debian 12) or 6.12 (Debian 13).
        #[arg(long, default_value = "6.1", value_parser = GuestKernel::parse)]
        kernel: GuestKernel,
        /// MiB a transfer.
        #[arg(long, default_value_t = 32)]
        mib: u64,
        /// Transfers each way per path.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// Build a throw-away net-vm and router VM (network namespaces), send
    /// real traffic through them, report, and remove everything.
    Demo {
        /// Outside networks (NICs of the net-vm).
        #[arg(long, default_value_t = 2, value_name = "N",
              value_parser = clap::value_parser!(u8).range(1..=xdp_forwarder_lab::demo::MAX_NICS as i64))]
        nics: u8,
        /// Attach mode of every program.
        #[arg(long, default_value = "auto", value_parser = ["auto", "native", "skb", "tc"])]
        mode: String,
        /// Leave the topology up and print how to explore and remove it.
        #[arg(long, conflicts_with = "clean")]
        keep: bool,
        /// Remove what a previous (kept or interrupted) demo left behind.
        #[arg(long)]
        clean: bool,
        /// Starts every namespace name (and the state dir) the demo uses;
        /// lets the test suite run a demo beside yours.
        #[arg(long, default_value = xdp_forwarder_lab::demo::DEFAULT_PREFIX, hide = true)]
        name_prefix: String,
    },
    /// Measure the programs against a redirect-only floor (ns per frame under
    /// BPF_PROG_TEST_RUN, Mpps over veth; in a private network namespace),
    /// and TCP through the demo's topology per mode against Linux bridges.
    Bench {
        /// Runs per measurement (min / median / max over them).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Small counts: checks that the bench works; rough figures.
        #[arg(long)]
        quick: bool,
        /// Also write the tables into this Markdown file (the parts
        /// measured, each between its markers) and the chart beside it
        /// (.svg).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Only the measurements whose line contains TEXT: "ns per frame,
        /// PROGRAM", "MODE, DIRECTION, SIZE, PROGRAM" (Mpps, e.g. "skb, NIC →
        /// router, 64 B"), "tcp, SETUP, DIRECTION, N streams" (TCP against
        /// the bridges; `--only tcp`: the TCP part alone).
        #[arg(long, value_name = "TEXT")]
        only: Option<String>,
    },
    /// How long the daemon takes to converge after a drift no event tells
    /// it (a link detached, the state dir removed, a rename into
    /// --ignore): a markdown table (docs/benchmarks.md, "Convergence").
    BenchConverge {
        /// Rounds of each case.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// Compare the product built for glibc and for musl on its user-space
    /// paths (exec, status, status --watch, attach, detach, the daemon's
    /// hot-plug latency), interleaved in one run; prints a Markdown table.
    BenchLibc {
        /// The glibc build (`cargo build --release --bins -p xdp-forwarder`).
        #[arg(long, value_name = "EXE")]
        gnu: PathBuf,
        /// The static musl build (target/x86_64-unknown-linux-musl/release/).
        #[arg(long, value_name = "EXE")]
        musl: PathBuf,
        /// Rounds (each measures every path once per build).
        #[arg(long, default_value_t = 21)]
        rounds: usize,
    },
    /// Write the product's manual pages (section 8) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Print the product's completion script for SHELL.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Run inside the guests.
    #[command(subcommand, hide = true)]
    Guest(GuestCommand),
}

#[derive(Subcommand)]
enum GuestCommand {
    /// Send COUNT datagrams of network NET to TO:PORT.
    UdpSend {
        #[arg(long)]
        to: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        net: usize,
        #[arg(long)]
        count: u32,
        /// Through UDP GSO: 64 KB sends cut into 1400-byte datagrams.
        #[arg(long)]
        gso: bool,
    },
    /// Count datagrams per sending network on PORT until quiet for a second;
    /// touch READY once listening; write the counts to OUT when done.
    UdpRecv {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        ready: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Send BYTES bytes of the pattern of SEED over TCP to TO:PORT within
    /// SECONDS; print what the receiver answered.
    TcpSend {
        #[arg(long)]
        to: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        bytes: u64,
        #[arg(long)]
        seed: u32,
        #[arg(long)]
        seconds: u64,
    },
    /// Accept one TCP connection on PORT and check the pattern of SEED to
    /// its end (or for SECONDS); touch READY once listening; write what
    /// arrived to OUT when done.
    TcpRecv {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        seed: u32,
        #[arg(long)]
        seconds: u64,
        #[arg(long)]
        ready: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print what IFACE's receive queues took, one "QUEUE COUNT" a line,
    /// after a line "frames" or "interrupts" (what was counted).
    RxQueues { iface: String },
    /// Count the data frames on the radio monitor IFACE (hwsim0) by
    /// transmitter for SECONDS; touch READY once listening; keep OUT up to
    /// date ("MAC COUNT" lines).
    AirTransmitters(vm::wifi::Watch),
    /// Count the frames of ETHERTYPE (untagged or behind one 802.1Q tag)
    /// IFACE receives for SECONDS; touch READY once listening; keep OUT up
    /// to date (the count).
    CountEthertype {
        #[arg(long)]
        ethertype: u16,
        #[command(flatten)]
        watch: vm::wifi::Watch,
    },
    /// Record the DHCPv4 requests (untagged) IFACE receives for SECONDS;
    /// touch READY once listening; keep OUT up to date ("CHADDR FLAGS"
    /// lines, FLAGS in hex).
    DhcpRequests(vm::wifi::Watch),
    /// Make a mac80211_hwsim radio now (a Wi-Fi NIC hot-plugged).
    HwsimNewRadio,
    /// Switch IFACE's feature NAME on or off (`ethtool -K`), behind the
    /// forwarder's back: for checking that a case notices.
    SetFeature {
        iface: String,
        name: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Fetch => {
            for arch in [debian::Arch::Amd64, debian::Arch::Arm64] {
                for k in GuestKernel::ALL {
                    let kernel = debian::kernel_for(k, arch)?;
                    println!(
                        "{k} {arch}: {} ({})",
                        kernel.release,
                        kernel.vmlinuz.display()
                    );
                }
                let qemu = debian::qemu_backports_for(arch)?;
                println!("QEMU {} {arch}: {}", qemu.version, qemu.binary.display());
                println!("busybox {arch}: {}", debian::busybox(arch)?.display());
            }
            // The Wi-Fi lab's kernels (with mac80211_hwsim) and programs.
            for k in GuestKernel::ALL {
                let kernel = debian::wifi_kernel(k)?;
                println!("{k} with Wi-Fi modules: {}", kernel.release);
            }
            println!("Wi-Fi programs: {}", debian::wifi_tools()?.display());
            println!(
                "libbpf {}: {}",
                libbpf::VERSION,
                libbpf::ensure()?.display()
            );
            Ok(true)
        }
        Command::WifiBench {
            kernel,
            mib,
            rounds,
        } => {
            let dir = std::env::temp_dir()
                .join(format!("xdp-forwarder-wifi-bench-{}", std::process::id()));
            let table = vm::wifi::bench(kernel, mib << 20, rounds, &dir);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", table?);
            Ok(true)
        }
        Command::VmDemo {
            kernel,
            nics,
            mode,
            router_nic,
        } => {
            let router_nic = if router_nic == "like-spectrum" {
                vm::RouterNic::LikeSpectrum
            } else {
                vm::RouterNic::QemuDefault
            };
            vm_demo(kernel, usize::from(nics), &mode, router_nic)
        }
        Command::BenchConverge { rounds } => {
            let rows = xdp_forwarder_lab::converge_bench::run(rounds)?;
            print!("{}", xdp_forwarder_lab::converge_bench::table(&rows));
            Ok(true)
        }
        Command::Man { dir } => {
            for page in docs::man_pages(&dir)? {
                println!("{}", page.display());
            }
            Ok(true)
        }
        Command::Completions { shell } => {
            use std::io::Write as _;
            std::io::stdout().write_all(&docs::completions(shell))?;
            Ok(true)
        }
        Command::Demo {
            nics,
            mode,
            keep,
            clean,
            name_prefix: prefix,
        } => {
            if clean {
                return demo::clean(&prefix).map(|()| true);
            }
            let mode = ModeChoice::from_arg(&mode)
                .ok_or_else(|| anyhow::anyhow!("--mode {mode}: auto, native, skb or tc"))?;
            demo::run(&demo::Options {
                nics: nics.into(),
                mode,
                keep,
                prefix,
            })
            .context("the demo failed")
        }
        Command::Bench {
            runs,
            quick,
            out,
            only,
        } => {
            bench::run(&bench::Options {
                runs,
                quick,
                out,
                only,
            })
            .context("the benchmark failed")?;
            Ok(true)
        }
        Command::BenchLibc { gnu, musl, rounds } => {
            libc_bench::run(&libc_bench::Options { gnu, musl, rounds })
                .context("bench-libc failed")?;
            Ok(true)
        }
        Command::Guest(GuestCommand::UdpSend {
            to,
            port,
            net,
            count,
            gso,
        }) => {
            if gso {
                traffic::send_gso(&to, port, net, count)?;
            } else {
                traffic::send(&to, port, net, count)?;
            }
            Ok(true)
        }
        Command::Guest(GuestCommand::TcpSend {
            to,
            port,
            bytes,
            seed,
            seconds,
        }) => {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let sent = traffic::tcp_send(&to, port, bytes, seed, deadline);
            let reply = sent.reply.map_or("no answer".to_owned(), |r| r.line());
            println!("sent={} {reply}", sent.bytes);
            if let Some(e) = sent.error {
                println!("error: {e}");
            }
            Ok(true)
        }
        Command::Guest(GuestCommand::TcpRecv {
            port,
            seed,
            seconds,
            ready,
            out,
        }) => {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let listener =
                TcpListener::bind(("0.0.0.0", port)).with_context(|| format!("bind TCP {port}"))?;
            std::fs::write(&ready, "")?;
            let line = match traffic::accept_within(&listener, deadline) {
                Ok(stream) => traffic::tcp_receive(stream, seed, deadline).line(),
                Err(e) => format!("error: {e:#}"),
            };
            let tmp = out.with_extension("tmp");
            std::fs::write(&tmp, line)?;
            std::fs::rename(&tmp, &out)?;
            Ok(true)
        }
        Command::Guest(GuestCommand::UdpRecv { port, ready, out }) => {
            let sock =
                UdpSocket::bind(("0.0.0.0", port)).with_context(|| format!("bind UDP {port}"))?;
            std::fs::write(&ready, "")?;
            let got = traffic::receive(&sock, Duration::from_secs(1), Duration::from_secs(30));
            // Whole or not at all: the host waits for the file.
            let tmp = out.with_extension("tmp");
            std::fs::write(&tmp, traffic::format_counts(&got))?;
            std::fs::rename(&tmp, &out)?;
            Ok(true)
        }
        Command::Guest(GuestCommand::RxQueues { iface }) => {
            let (queues, counted) = vm::nic_stats::rx_queues(&iface)?;
            println!(
                "{}",
                match counted {
                    vm::nic_stats::Counted::Frames => "frames",
                    vm::nic_stats::Counted::Interrupts => "interrupts",
                }
            );
            for (q, n) in queues {
                println!("{q} {n}");
            }
            Ok(true)
        }
        Command::Guest(GuestCommand::AirTransmitters(watch)) => {
            vm::wifi::watch_transmitters(&watch)?;
            Ok(true)
        }
        Command::Guest(GuestCommand::CountEthertype { ethertype, watch }) => {
            vm::wifi::watch_ethertype(&watch, ethertype)?;
            Ok(true)
        }
        Command::Guest(GuestCommand::DhcpRequests(watch)) => {
            vm::wifi::watch_dhcp_requests(&watch)?;
            Ok(true)
        }
        Command::Guest(GuestCommand::HwsimNewRadio) => {
            vm::wifi::hwsim_new_radio()?;
            Ok(true)
        }
        Command::Guest(GuestCommand::SetFeature { iface, name, state }) => {
            let mut features = xdp_forwarder::ethtool::Features::of(&iface)?;
            Ok(features.set(&name, state == "on")?)
        }
    }
}

fn vm_demo(
    kernel: GuestKernel,
    nics: usize,
    modes: &[String],
    router_nic: vm::RouterNic,
) -> anyhow::Result<bool> {
    let dir = std::env::temp_dir().join(format!("xdp-forwarder-vm-demo-{}", std::process::id()));
    println!(
        "xdp-forwarder VM demo: a net-vm guest on {kernel} with {nics} virtio-net NICs, \
         a router VM on Linux's own 802.1Q stack"
    );
    let lab = NetVmLab::start(&vm::Options {
        kernel,
        arch: debian::Arch::Amd64,
        nics: vec![vm::NicModel::VirtioNet; nics],
        router_nic,
        router_queues: 1,
        prefix: format!("xfdv{}", std::process::id() % 100),
        contents: Contents::of_this_build()?,
        dir: dir.clone(),
    });
    let mut lab = match lab {
        Ok(lab) => lab,
        Err(e) => {
            if std::env::var_os("XDP_FORWARDER_LAB_KEEP").is_none() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
    };
    println!("guests booted ({}); net-vm NICs:", lab.accel);
    for n in &lab.networks {
        println!(
            "  {} ({}) ── outside network {} (host namespace {}, {} {})",
            n.guest_if,
            n.mac,
            n.k,
            n.ns.name,
            n.tap,
            vm::EXT_ADDR
        );
    }
    println!(
        "  {} ({}, {router_nic}) ══ router VM trunk",
        lab.router_if,
        vm::ROUTER_MAC
    );
    let mut checks = Vec::new();
    for mode in modes {
        let expect = (mode != "auto").then_some(mode.as_str());
        checks.extend(cases::all_in_mode(&mut lab, mode, expect)?);
    }
    // What the guest's kernel said about XDP on its NICs (queues, offloads).
    let log = lab
        .net_vm
        .sh("dmesg | grep -i 'virtio_net.*xdp' || true")
        .unwrap_or_default();
    if !log.trim().is_empty() {
        println!("\nnet-vm kernel log (XDP on virtio_net)");
        for line in log.lines() {
            println!("  {line}");
        }
    }
    println!("\nchecks");
    for c in &checks {
        c.print(58);
    }
    let ok = print_result(&checks);
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ok)
}
