//! `xdp-forwarder run`, the hot-plug daemon, in a network namespace of its
//! own (the test thread's, playing the net-vm); the NICs' and router's veth
//! peers live outside, in a named namespace, where frames are injected and
//! captured. Native mode (the daemon's `auto` on veth): the outside peers get
//! GRO on, which a native redirect into a veth needs.

mod support;

use std::{
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use support::{
    Bpffs, attach, cli_ok,
    daemon::{Daemon, WAIT},
    in_fresh_netns,
    netns::NamedNetns,
    packet::{ETHERTYPE_TEST, frame},
    run,
    world::{ROUTER_MAC, ROUTER_MAC_2, World, nic_mac, prog_id},
};

#[test]
fn hot_plug_in_every_order() {
    // NICs first, then the router.
    in_fresh_netns(|| {
        let w = World::new("plug-nics-first");
        let _d = Daemon::start(&w.pins, &[]);
        w.plug("nic1", None);
        w.plug("nic2", None);
        w.wait_for(&[("nic1", "physical"), ("nic2", "physical")], None);
        w.plug("rtr", Some(ROUTER_MAC));
        let vids = w.wait_for(
            &[
                ("nic1", "physical"),
                ("nic2", "physical"),
                ("rtr", "router"),
            ],
            Some("rtr"),
        );
        w.assert_forwards("nic1", "rtr", vids[0].unwrap());
        w.assert_forwards("nic2", "rtr", vids[1].unwrap());
    });
    // Router first; then a second router-prefix interface is kept aside
    // until the first goes, and the router is replaced.
    in_fresh_netns(|| {
        let w = World::new("plug-router-first");
        let _d = Daemon::start(&w.pins, &[]);
        w.plug("rtr", Some(ROUTER_MAC));
        w.wait_for(&[("rtr", "router")], Some("rtr"));
        w.plug("nic1", None);
        let vids = w.wait_for(&[("rtr", "router"), ("nic1", "physical")], Some("rtr"));
        w.assert_forwards("nic1", "rtr", vids[1].unwrap());
        w.plug("rtr2", Some(ROUTER_MAC_2));
        std::thread::sleep(Duration::from_millis(300));
        w.wait_for(&[("rtr", "router"), ("nic1", "physical")], Some("rtr"));
        assert_eq!(prog_id("rtr2"), None, "the standby router is left alone");
        w.unplug("rtr");
        let vids = w.wait_for(&[("rtr2", "router"), ("nic1", "physical")], Some("rtr2"));
        w.assert_forwards("nic1", "rtr2", vids[1].unwrap());
    });
    // --router-policy latest: the newcomer takes over at once.
    in_fresh_netns(|| {
        let w = World::new("plug-latest");
        let _d = Daemon::start(&w.pins, &["--router-policy", "latest"]);
        w.plug("nic1", None);
        w.plug("rtr", Some(ROUTER_MAC));
        w.wait_for(&[("nic1", "physical"), ("rtr", "router")], Some("rtr"));
        w.plug("rtr2", Some(ROUTER_MAC_2));
        let vids = w.wait_for(&[("nic1", "physical"), ("rtr2", "router")], Some("rtr2"));
        assert_eq!(prog_id("rtr"), None, "the old router is detached");
        w.assert_forwards("nic1", "rtr2", vids[0].unwrap());
    });
}

#[test]
fn start_up_errors_are_clear() {
    in_fresh_netns(|| {
        let dir = std::env::temp_dir().join(format!("xfwt-nobpffs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = support::cli_err(&["run", "--no-mount", "--pin-dir", dir.to_str().unwrap()]);
        assert!(err.contains("is not a bpffs mount"), "{err}");
        std::fs::remove_dir(&dir).unwrap();
        // One daemon per pin dir.
        let pins = Bpffs::mount("twice");
        let _d = Daemon::start(&pins, &[]);
        std::thread::sleep(Duration::from_millis(300));
        let err = support::cli_err(&["run", "--pin-dir", pins.arg()]);
        assert!(err.contains("another `xdp-forwarder run`"), "{err}");
    });
}

/// 1,000 add/remove cycles of a NIC while frames flow on another: every
/// program of the churned NIC is gone afterwards, the pins are those of the
/// two live ports, and the daemon's memory stays flat.
#[test]
fn churn_leaks_nothing() {
    in_fresh_netns(|| {
        const CYCLES: usize = 1000;
        let w = World::new("churn");
        let d = Daemon::start(&w.pins, &[]);
        w.plug("nicA", None);
        w.plug("rtr", Some(ROUTER_MAC));
        let vids = w.wait_for(&[("nicA", "physical"), ("rtr", "router")], Some("rtr"));
        let vid = vids[0].unwrap();

        // Traffic on nicA during the whole churn, counted at the router peer.
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, got) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let tx = w.socket("nicAx");
        let rx = w.socket("rtrx").with_big_buffer();
        let receiver = {
            let (stop, got) = (stop.clone(), got.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(f) = rx.recv(Duration::from_millis(50))
                        && f[14..16] == vid.to_be_bytes()
                    {
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let f = frame(
            [0x02, 0, 0, 0, 0, 0xbb],
            [0x02, 0, 0, 0, 0, 0xaa],
            &ETHERTYPE_TEST.to_be_bytes(),
            64,
        );

        let mut progs = Vec::new();
        let mut rss_early = 0;
        for cycle in 0..CYCLES {
            w.plug_bare("nicB", None);
            // Generous: other tests may load the machine meanwhile.
            let deadline = Instant::now() + 6 * WAIT;
            let id = loop {
                if let Some(id) = prog_id("nicB") {
                    break id;
                }
                assert!(
                    Instant::now() < deadline,
                    "cycle {cycle}: nicB never attached"
                );
                std::thread::sleep(Duration::from_millis(2));
            };
            progs.push(id);
            tx.send(&f);
            sent.fetch_add(1, Ordering::Relaxed);
            w.unplug("nicB");
            if cycle == 100 {
                rss_early = d.rss_kb();
            }
        }
        w.wait_for(&[("nicA", "physical"), ("rtr", "router")], Some("rtr"));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        receiver.join().unwrap();
        assert_eq!(
            got.load(Ordering::Relaxed),
            sent.load(Ordering::Relaxed),
            "frames of the stable NIC were lost during the churn"
        );

        let mut pins: Vec<String> = std::fs::read_dir(w.pins.path().join("xdp-forwarder"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        pins.sort();
        let (a, r) = (support::ifindex("nicA"), support::ifindex("rtr"));
        let mut want = vec![
            format!("counters-{a}"),
            format!("counters-{r}"),
            "devmap-xmit-link".to_owned(),
            "fwd_redirect_errors".to_owned(),
            "fwd_station_counts".to_owned(),
            "fwd_station_nat".to_owned(),
            "fwd_stations".to_owned(),
            "fwd_tc_targets".to_owned(),
            "fwd_vlan_ports".to_owned(),
            format!("link-{a}"),
            format!("link-{r}"),
            "ports".to_owned(),
            "redirect-errors-link".to_owned(),
        ];
        want.sort();
        assert_eq!(pins, want, "leaked pins");
        // The kernel frees a program once nothing holds it: every churned one
        // must be gone (a slow release can lag a little).
        std::thread::sleep(Duration::from_millis(500));
        let alive: Vec<u64> = progs
            .iter()
            .copied()
            .filter(|id| {
                Command::new("bpftool")
                    .args(["prog", "show", "id", &id.to_string()])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .collect();
        assert!(
            alive.is_empty(),
            "{} of {CYCLES} programs leaked: {alive:?}",
            alive.len()
        );
        let rss_late = d.rss_kb();
        assert!(
            rss_late < rss_early + 4096,
            "daemon memory grew from {rss_early} kB to {rss_late} kB over {CYCLES} cycles"
        );
    });
}

/// The namespace's ifindex counter pushed past 4095 (interfaces created and
/// deleted, ignored by the daemon): a new NIC still gets a VID and forwards.
#[test]
fn nic_with_ifindex_beyond_4094_gets_a_vid() {
    in_fresh_netns(|| {
        let w = World::new("bigindex");
        let _d = Daemon::start(&w.pins, &["--ignore", "pad*"]);
        w.plug("rtr", Some(ROUTER_MAC));
        w.wait_for(&[("rtr", "router")], Some("rtr"));
        let batch = std::env::temp_dir().join(format!("xfwt-pad-{}", std::process::id()));
        let lines: String = (0..2050)
            .map(|i| format!("link add pad{i} group 7 type veth peer name padx{i} group 7\n"))
            .collect();
        std::fs::write(&batch, lines).unwrap();
        run("ip", &["-batch", batch.to_str().unwrap()]);
        run("ip", &["link", "del", "group", "7"]);
        std::fs::remove_file(&batch).unwrap();
        w.plug("nic1", None);
        assert!(support::ifindex("nic1") > 4095);
        // The daemon first works through ~8,200 events of the ignored interfaces.
        let vids = w.wait_for(&[("rtr", "router"), ("nic1", "physical")], Some("rtr"));
        let vid = vids[1].unwrap();
        assert!((1..=4094).contains(&vid), "VID {vid}");
        w.assert_forwards("nic1", "rtr", vid);
    });
}

/// `kill -9` during a stream and a restart: not one frame lost, and the
/// restarted daemon adopts what runs instead of attaching it again.
#[test]
fn restart_after_kill_loses_nothing() {
    in_fresh_netns(|| {
        let w = World::new("restart");
        let d = Daemon::start(&w.pins, &[]);
        w.plug("nic1", None);
        w.plug("rtr", Some(ROUTER_MAC));
        let vids = w.wait_for(&[("nic1", "physical"), ("rtr", "router")], Some("rtr"));
        let before = (prog_id("nic1"), prog_id("rtr"));

        let tx = w.socket("nic1x");
        let rx = w.socket("rtrx").with_big_buffer();
        let f = frame(
            [0x02, 0, 0, 0, 0, 0xbb],
            [0x02, 0, 0, 0, 0, 0xaa],
            &ETHERTYPE_TEST.to_be_bytes(),
            64,
        );
        let stream = std::thread::scope(|s| {
            let sender = s.spawn(|| {
                let mut n = 0u64;
                let end = Instant::now() + Duration::from_secs(3);
                while Instant::now() < end {
                    tx.send(&f);
                    n += 1;
                    std::thread::sleep(Duration::from_micros(500));
                }
                n
            });
            std::thread::sleep(Duration::from_secs(1));
            d.kill9();
            std::thread::sleep(Duration::from_millis(200));
            let d2 = Daemon::start(&w.pins, &[]);
            let sent = sender.join().unwrap();
            (sent, d2)
        });
        let (sent, _d2) = stream;
        let got = rx.drain(Duration::from_millis(500));
        assert_eq!(got.len() as u64, sent, "frames lost across the restart");
        assert!(
            got.iter()
                .all(|g| g[14..16] == vids[0].unwrap().to_be_bytes())
        );
        w.wait_for(&[("nic1", "physical"), ("rtr", "router")], Some("rtr"));
        assert_eq!(
            (prog_id("nic1"), prog_id("rtr")),
            before,
            "the restarted daemon re-attached instead of adopting"
        );
        // It says what it adopted, at the default level.
        let log = _d2.log();
        for iface in ["nic1", "rtr"] {
            assert!(
                log.lines()
                    .any(|l| l.contains("INFO") && l.contains("adopted") && l.contains(iface)),
                "{iface}: {log}"
            );
        }
        // A removed port is released under its name.
        w.unplug("nic1");
        let deadline = Instant::now() + WAIT;
        while !_d2
            .log()
            .lines()
            .any(|l| l.contains("released") && l.contains("iface=nic1"))
        {
            assert!(Instant::now() < deadline, "{}", _d2.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

/// contrib/mdev/iface, called as mdev would (INTERFACE and ACTION in the
/// environment), ends where the daemon ends: the interfaces present before
/// mdev starts through contrib/mdev/coldplug (mdev's own scan skips network
/// interfaces), a removal through the hook; an interface gone before its
/// hook runs is no error.
#[test]
fn mdev_hook_matches_the_daemon() {
    require_hook();
    let hook = concat!(env!("CARGO_MANIFEST_DIR"), "/../contrib/mdev/iface");
    let bin = env!("CARGO_BIN_EXE_xdp-forwarder");
    let build = |ns: &NamedNetns, outside: &NamedNetns| {
        for (name, mac) in [("nic1", None), ("rtr", Some(ROUTER_MAC)), ("nic2", None)] {
            let peer = format!("{name}x");
            let nic = nic_mac();
            ns.ip(&outside.veth_args(name, &peer, Some(mac.unwrap_or(&nic))));
        }
    };
    let summary = |ns: &NamedNetns, pins: &Bpffs| {
        let st: serde_json::Value =
            serde_json::from_str(&ns.exec(bin, &["status", "--json", "--pin-dir", pins.arg()]))
                .unwrap();
        let mut ports: Vec<String> = st["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {} {}",
                    p["name"], p["role"], p["vid"], p["up"], p["attached"]
                )
            })
            .collect();
        ports.sort();
        (st["router_iface"]["name"].clone(), ports)
    };

    // The daemon's net-vm.
    let (dns, dout, dpins) = (
        NamedNetns::add("hookd"),
        NamedNetns::add("hookdo"),
        Bpffs::mount("hookd"),
    );
    let mut daemon = Command::new("ip")
        .args([
            "netns",
            "exec",
            &dns.name,
            bin,
            "run",
            "--pin-dir",
            dpins.arg(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    build(&dns, &dout);
    // The hook's net-vm: mdev calls it for every interface, lo included.
    let (hns, hout, hpins) = (
        NamedNetns::add("hookh"),
        NamedNetns::add("hookho"),
        Bpffs::mount("hookh"),
    );
    build(&hns, &hout);
    let call = |iface: &str, action: &str| {
        hns.exec(
            "env",
            &[
                &format!("INTERFACE={iface}"),
                &format!("ACTION={action}"),
                &format!("XDP_FORWARDER={bin}"),
                &format!("PIN_DIR={}", hpins.arg()),
                "sh",
                hook,
            ],
        )
    };
    // NICs present at boot: the coldplug runs the hook once for each
    // (lo included, which the hook skips).
    let coldplug = concat!(env!("CARGO_MANIFEST_DIR"), "/../contrib/mdev/coldplug");
    hns.exec(
        "env",
        &[
            &format!("XDP_FORWARDER={bin}"),
            &format!("PIN_DIR={}", hpins.arg()),
            "sh",
            coldplug,
        ],
    );
    // Gone before its hook ran: said, not failed.
    call("gone0", "add");
    let deadline = Instant::now() + WAIT;
    while summary(&dns, &dpins) != summary(&hns, &hpins) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (router, ports) = summary(&hns, &hpins);
    assert_eq!(router, "rtr");
    assert_eq!(ports.len(), 3, "{ports:?}");
    assert_eq!(
        summary(&dns, &dpins),
        (router, ports),
        "hook and daemon differ"
    );
    let promisc = hns.ip(&["link", "show", "dev", "rtr"]);
    assert!(
        promisc.contains("PROMISC") && promisc.contains(",UP"),
        "{promisc}"
    );

    // Removal.
    dns.ip(&["link", "del", "nic2"]);
    hns.ip(&["link", "del", "nic2"]);
    call("nic2", "remove");
    let deadline = Instant::now() + WAIT;
    while summary(&dns, &dpins) != summary(&hns, &hpins) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(summary(&hns, &hpins).1.len(), 2);
    assert_eq!(
        summary(&dns, &dpins),
        summary(&hns, &hpins),
        "after removal"
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    daemon.wait().unwrap();
    for (ns, pins) in [(&dns, &dpins), (&hns, &hpins)] {
        ns.exec(bin, &["detach", "--all", "--pin-dir", pins.arg()]);
    }
}

fn require_hook() {
    support::require_root();
    assert!(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../contrib/mdev/iface"
        ))
        .exists(),
        "contrib/mdev/iface is missing"
    );
}

/// SIGTERM leaves the data plane running (or takes it down with
/// `--detach-on-exit`); `--log-format json` gives one JSON object per event;
/// no capabilities → a clear error and a non-zero exit.
#[test]
fn signals_logs_and_privileges() {
    in_fresh_netns(|| {
        let w = World::new("signals");
        let bin = env!("CARGO_BIN_EXE_xdp-forwarder");
        let d = Command::new(bin)
            .args(["run", "--log-format", "json", "--pin-dir", w.pins.arg()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        w.plug("nic1", None);
        w.wait_for(&[("nic1", "physical")], None);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
        let out = d.wait_with_output().unwrap();
        assert!(out.status.success(), "SIGTERM is a clean exit");
        assert!(
            prog_id("nic1").is_some(),
            "SIGTERM must leave the attachment"
        );
        let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert!(
            events.iter().any(|e| e["fields"]["iface"] == "nic1"
                && e["fields"]["result"] == "attached"
                && e["fields"]["role"] == "physical"),
            "{events:?}"
        );

        // SIGHUP rescans: a port detached behind the daemon's back comes back.
        let d = Daemon::start(&w.pins, &[]);
        w.wait_for(&[("nic1", "physical")], None);
        w.cli_ok(&["detach", "nic1"]);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
        w.wait_for(&[("nic1", "physical")], None);
        drop(d);

        let d = Daemon::start(&w.pins, &["--detach-on-exit"]);
        w.wait_for(&[("nic1", "physical")], None);
        drop(d); // SIGTERM
        assert_eq!(
            prog_id("nic1"),
            None,
            "--detach-on-exit takes the data plane down"
        );

        let out = Command::new("setpriv")
            .args(["--inh-caps=-all", "--bounding-set=-all", "--", bin, "run"])
            .args(["--pin-dir", w.pins.arg()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("needs CAP_BPF"),
            "{err}"
        );
    });
}

/// An interface the daemon cannot take (another tool's XDP program runs
/// there) is retried: once that program is gone, it is attached without any
/// link event to prompt it.
#[test]
fn a_failed_interface_is_retried() {
    in_fresh_netns(|| {
        let w = World::new("retry");
        let objs = std::env::temp_dir().join(format!("xfwt-retry-objs-{}", std::process::id()));
        w.cli_ok(&["export-objects", objs.to_str().unwrap()]);
        w.plug("nicF", None);
        let obj = objs.join("prog_physical.o");
        run(
            "xdp-loader",
            &[
                "load",
                "nicF",
                obj.to_str().unwrap(),
                "-m",
                "skb",
                "-p",
                w.pins.arg(),
            ],
        );
        let foreign = prog_id("nicF");
        let _d = Daemon::start(&w.pins, &[]);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            prog_id("nicF"),
            foreign,
            "the foreign program is left alone"
        );
        assert!(w.status()["ports"].as_array().unwrap().is_empty());
        run("xdp-loader", &["unload", "nicF", "--all"]);
        w.wait_for(&[("nicF", "physical")], None);
        std::fs::remove_dir_all(&objs).unwrap();
    });
}

/// An interface our own program holds through another pin dir: the daemon
/// names that pin dir and the command that frees the interface, logs the
/// error once however often it retries, and takes the interface once the
/// proposed command has run.
#[test]
fn our_program_from_another_pin_dir_is_logged_once_with_a_fix_that_works() {
    in_fresh_netns(|| {
        let w = World::new("otherpin");
        let other = Bpffs::mount("otherpin-a");
        w.plug("nicP", None);
        attach(other.arg(), "nicP", "physical", &["--mode", "skb"]);
        let d = Daemon::start(&w.pins, &[]);
        // The first scan, then rescans 1 s and 2 s after that.
        std::thread::sleep(Duration::from_millis(3500));
        let log = d.log();
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ERROR") && l.contains("nicP"))
            .collect();
        assert_eq!(errors.len(), 1, "one ERROR per cause, not per retry: {log}");
        let fix = format!("xdp-forwarder --pin-dir {} detach nicP", other.arg());
        assert!(
            errors[0].contains(&fix),
            "the other pin dir and its fix: {}",
            errors[0]
        );
        cli_ok(&["--pin-dir", other.arg(), "detach", "nicP"]);
        w.wait_for(&[("nicP", "physical")], None);
    });
}

/// A manual `detach` while the daemon runs is honoured: the daemon leaves
/// that interface alone (through its link events and its rescans) until it
/// is told otherwise: SIGHUP takes it again, as does a manual `attach`.
#[test]
fn a_manual_detach_is_honoured_until_sighup() {
    in_fresh_netns(|| {
        let w = World::new("handdet");
        w.plug("nicH", None);
        w.plug("nicK", None);
        let d = Daemon::start(&w.pins, &[]);
        w.wait_for(&[("nicH", "physical"), ("nicK", "physical")], None);
        let out = w.cli_ok(&["detach", "nicH"]);
        assert!(out.contains("detached"), "{out}");
        // A change on it (a link event) does not take it back.
        run("ip", &["link", "set", "nicH", "mtu", "1400"]);
        std::thread::sleep(Duration::from_millis(1500));
        let st = w.status();
        let names: Vec<&str> = st["ports"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names, ["nicK"], "nicH stays detached: {st}");
        assert!(d.log().contains("detached by hand"), "{}", d.log());
        d.hup();
        w.wait_for(&[("nicH", "physical"), ("nicK", "physical")], None);
    });
}
