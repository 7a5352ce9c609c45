//! What a hardening review met as a new user, reproduced as they met it
//! and guarded: one VID per port under concurrent attaches, no orphans,
//! `router_iface` following the router, decisions from the kernel, one
//! daemon per pin dir, a private bpffs, router MAC prefixes, messages.
//! (Network namespaces are guarded in state.rs, malformed frames in e2e.rs
//! and the fuzz target.)

mod support;

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    process::Command,
    time::Duration,
};

use support::{
    Bpffs, assert_consistent, cli, cli_err, daemon::Daemon, in_fresh_netns, netns::NamedNetns,
    promisc, run, veth, world::World, xdp_running,
};

fn spawn_all(args: &[Vec<String>]) -> Vec<std::process::Output> {
    let children: Vec<_> = args
        .iter()
        .map(|a| {
            Command::new(env!("CARGO_BIN_EXE_xdp-forwarder"))
                .args(a)
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn args(list: &[&str], pins: &Bpffs) -> Vec<String> {
    let mut all: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    all.extend(["--pin-dir".into(), pins.arg().into()]);
    all
}

/// Eight `attach aN --vid 7` at once: exactly one gets VID 7. Four
/// interfaces with ifindex > 4094 at once: four different VIDs.
#[test]
fn concurrent_attaches_give_each_vid_to_one_port() {
    in_fresh_netns(|| {
        let mut w = World::new("f1");
        for k in 0..8 {
            w = w.nic(&format!("a{k}"));
        }
        let pins = &w.pins;
        let outs = spawn_all(
            &(0..8)
                .map(|k| {
                    args(
                        &[
                            "attach",
                            &format!("a{k}"),
                            "--role",
                            "physical",
                            "--vid",
                            "7",
                        ],
                        pins,
                    )
                })
                .collect::<Vec<_>>(),
        );
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "exactly one attach gets VID 7");
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("VID 7 is already used by interface a")
            );
        }
        w.cli_ok(&["detach", "--all"]);

        for k in 0..4u32 {
            let (i, j) = (5000 + 2 * k, 5001 + 2 * k);
            run(
                "ip",
                &[
                    "link",
                    "add",
                    &format!("h{k}"),
                    "index",
                    &i.to_string(),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &format!("h{k}x"),
                    "index",
                    &j.to_string(),
                ],
            );
        }
        spawn_all(
            &(0..4)
                .map(|k| args(&["attach", &format!("h{k}"), "--role", "physical"], pins))
                .collect::<Vec<_>>(),
        )
        .iter()
        .for_each(|o| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)));
        let st = assert_consistent(pins, "ifindex > 4094");
        assert_eq!(st["ports"].as_array().unwrap().len(), 4);
    });
}

/// Eight concurrent `attach sd` on a fresh pin dir: one attaches, seven
/// find it attached; nothing orphaned. An orphaned link (registry lost)
/// is shown by `status` and removed by `detach`, or taken over by `attach`.
#[test]
fn concurrent_attaches_leave_no_orphan_and_an_orphan_is_shown_removed_or_taken_over() {
    in_fresh_netns(|| {
        let w = World::new("f2").nic("sd");
        let outs = spawn_all(&vec![
            args(&["attach", "sd", "--role", "physical"], &w.pins);
            8
        ]);
        for o in &outs {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let fresh = outs
            .iter()
            .filter(|o| !String::from_utf8_lossy(&o.stdout).contains("already attached"))
            .count();
        assert_eq!(fresh, 1);
        assert_consistent(&w.pins, "8 × attach sd");

        // Orphan it: the registry is lost, the link stays pinned.
        std::fs::remove_file(w.pins.path().join("xdp-forwarder/ports")).unwrap();
        let st = w.status();
        let warning = st["warnings"][0].as_str().unwrap();
        assert!(
            warning.contains("orphaned link") && warning.contains("detach"),
            "{st:#}"
        );
        let out = w.cli_ok(&["detach", "sd"]);
        assert!(out.contains("orphaned link"), "{out}");
        assert!(!xdp_running().contains_key("sd"));

        // Orphan it again; `attach` takes it over.
        w.attach("sd", "physical", &[]);
        std::fs::remove_file(w.pins.path().join("xdp-forwarder/ports")).unwrap();
        w.attach("sd", "physical", &[]);
        assert_consistent(&w.pins, "orphan taken over");
    });
}

/// The router slot follows the router: with the daemon running, a
/// detach and a `--replace` to another router interface never leave
/// `router_iface` empty under an attached router; an emptied slot is
/// refilled by SIGHUP. A failed `--replace` (native mode on a macvlan)
/// leaves the old attachment as it was.
#[test]
fn router_iface_follows_the_router_and_a_failed_replace_changes_nothing() {
    in_fresh_netns(|| {
        // Both ends of each pair in the net-vm; the daemon ignores the peers.
        let w = World::new("f3")
            .pair("r0", "r0x", Some("02:01:00:00:00:01"))
            .pair("r1", "r1x", Some("02:01:00:00:00:02"));
        let pins = &w.pins;
        let daemon = Daemon::start(pins, &["--mode", "skb", "--ignore", "*x"]);
        std::thread::sleep(Duration::from_millis(300));
        for round in 0..6 {
            let _ = w.cli(&["detach", "r0"]);
            let _ = w.cli(&[
                "attach",
                "r1",
                "--role",
                "router",
                "--replace",
                "--mode",
                "skb",
            ]);
            std::thread::sleep(Duration::from_millis(300));
            let st = assert_consistent(pins, &format!("round {round}"));
            let router = st["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["role"] == "router");
            let router = router.unwrap_or_else(|| panic!("round {round}: no router: {st:#}"));
            assert_eq!(
                st["router_iface"]["ifindex"], router["ifindex"],
                "round {round}"
            );
            let _ = w.cli(&["detach", "r1"]);
        }
        // Both routers were detached by hand: the daemon leaves them alone
        // until SIGHUP, which takes one back as the router: wait for it
        // before emptying the slot.
        daemon.hup();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !w.status()["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["role"] == "router" && p["attached"] == true)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no router attached again"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Emptied behind our back: SIGHUP puts it back.
        let dir = xdp_forwarder::pins::PinDir::open(pins.path()).unwrap();
        let slot = xdp_forwarder::pins::open_existing(
            &dir.router_iface(),
            xdp_forwarder::pins::MapSpec::ROUTER_IFACE,
        )
        .unwrap()
        .unwrap();
        // The scan SIGHUP started may still be under way (the standby
        // router after the active one) and refill the slot before status
        // reads it: empty it again until status has seen it empty.
        let warned = |st: &serde_json::Value| {
            st["ports"].as_array().unwrap().iter().any(|p| {
                p["warnings"].as_array().unwrap().iter().any(|w| {
                    w.as_str()
                        .unwrap()
                        .contains("router_iface does not point here")
                })
            })
        };
        let mut st = serde_json::Value::Null;
        for _ in 0..20 {
            slot.clear(0).unwrap();
            st = w.status();
            if warned(&st) || st["router_iface"].is_null() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(warned(&st), "{st:#}");
        daemon.hup();
        std::thread::sleep(Duration::from_millis(500));
        assert_consistent(pins, "after SIGHUP");
        drop(daemon);

        // A failed --replace restores everything.
        veth("lower", "lowerx");
        run(
            "ip",
            &[
                "link", "add", "mv0", "link", "lower", "type", "macvlan", "mode", "bridge",
            ],
        );
        w.attach("mv0", "physical", &["--mode", "skb", "--vid", "33"]);
        let before = (xdp_running()["mv0"], w.status());
        // The router must take native redirects (its peer with GRO on), or
        // the direction check refuses before the kernel is asked: this case
        // is about the kernel refusing native mode on the macvlan itself.
        // (Set while the peers are up: a veth recomputes its xdp-features
        // when its peer's features change, not when the peer comes up.)
        for peer in ["r0x", "r1x"] {
            run("ip", &["link", "set", peer, "up"]);
            run("ethtool", &["-K", peer, "gro", "on"]);
        }
        let err = w.attach_err("mv0", "physical", &["--mode", "native", "--replace"]);
        assert!(
            err.contains("native mode") && err.contains("os error") && err.contains("--mode tc"),
            "{err}"
        );
        assert_eq!(xdp_running()["mv0"], before.0, "the old program is back");
        assert!(promisc("mv0"));
        let after = assert_consistent(pins, "failed replace");
        let port = |st: &serde_json::Value| {
            st["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "mv0")
                .unwrap()
                .clone()
        };
        assert_eq!(port(&after)["vid"], 33);
        assert_eq!(port(&after)["mode"], "skb");
        assert_eq!(port(&before.1)["ifindex"], port(&after)["ifindex"]);
    });
}

/// Decisions from the kernel: after `bpftool link detach`, `status` says
/// not attached and `attach` re-attaches (it used to say "already
/// attached"); a new interface that reuses a removed port's ifindex is
/// not mistaken for it and does not inherit its counters.
#[test]
fn status_and_attach_believe_the_kernel_not_the_pins() {
    in_fresh_netns(|| {
        let w = World::new("f5")
            .nic("n1")
            .attached("n1", "physical", &["--mode", "skb"]);
        w.detach_link_by_hand("n1");
        let st = w.status();
        assert_eq!(st["ports"][0]["attached"], false, "{st:#}");
        assert!(
            st["ports"][0]["warnings"][0]
                .as_str()
                .unwrap()
                .contains("link was detached")
        );
        let out = w.attach("n1", "physical", &["--mode", "skb"]);
        assert!(!out.contains("already attached"), "{out}");
        assert_consistent(&w.pins, "after bpftool link detach");

        // Counters, then the interface goes and another takes its ifindex.
        let socket = w.socket("n1x");
        let f = support::packet::frame([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], &[0x88, 0xb5], 60);
        for _ in 0..5 {
            socket.send(&f);
        }
        std::thread::sleep(Duration::from_millis(100));
        let seen = w.status()["ports"][0]["counters"]["dropped_total"]
            .as_u64()
            .unwrap();
        assert_eq!(seen, 5, "no router yet: every frame counted as a drop");
        let index = support::ifindex("n1").to_string();
        run("ip", &["link", "del", "n1"]);
        run(
            "ip",
            &[
                "link", "add", "n2", "index", &index, "type", "veth", "peer", "name", "n2x",
            ],
        );
        let st = w.status();
        assert_eq!(st["ports"][0]["attached"], false, "{st:#}");
        assert_eq!(st["ports"][0]["name"], "n2");
        w.attach("n2", "physical", &["--mode", "skb"]);
        let st = assert_consistent(&w.pins, "reused ifindex");
        assert_eq!(
            st["ports"][0]["counters"]["dropped_total"], 0,
            "fresh counters: {st:#}"
        );
    });
}

/// One daemon per pin dir whatever the path's spelling, none shared
/// between different dirs, no lock file in /run; no bpffs mounted in a
/// private mount namespace.
#[test]
fn one_daemon_per_pin_dir_whatever_the_path_spelling() {
    in_fresh_netns(|| {
        let a = Bpffs::mount("f6a");
        let b = Bpffs::mount("f6b");
        let in_run = || -> Vec<std::ffi::OsString> {
            let mut names: Vec<_> = std::fs::read_dir("/run")
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            names.sort();
            names
        };
        let run_before = in_run();
        let _first = Daemon::start(&a, &["--ignore", "*"]);
        for spelling in [
            format!("{}/", a.arg()),
            a.arg().replacen("/tmp/", "/tmp//", 1),
        ] {
            let out = cli(&["run", "--ignore", "*", "--pin-dir", &spelling]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("another `xdp-forwarder run`"),
                "{spelling}: {err}"
            );
        }
        let _second = Daemon::start(&b, &["--ignore", "*"]);
        assert_eq!(in_run(), run_before, "nothing new in /run");

        let dir = std::env::temp_dir().join(format!("xdpfwd-f6-unmounted-{}", std::process::id()));
        let out = Command::new("timeout")
            .args([
                "10",
                "unshare",
                "-m",
                env!("CARGO_BIN_EXE_xdp-forwarder"),
                "run",
                "--pin-dir",
                dir.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("mount namespace of its own"),
            "{err}"
        );
        let _ = std::fs::remove_dir(&dir);
    });
}

/// The daemon mounts bpffs with mode 0700; a state dir someone else
/// made (or left writable) is refused with a clear error.
#[test]
fn the_daemon_mounts_bpffs_0700_and_refuses_a_state_dir_others_can_change() {
    in_fresh_netns(|| {
        let dir = std::env::temp_dir().join(format!("xdpfwd-f7-{}", std::process::id()));
        struct Unmount(std::path::PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg("-l").arg(&self.0).status();
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let _unmount = Unmount(dir.clone());
        let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_xdp-forwarder"))
            .args(["run", "--ignore", "*", "--pin-dir", dir.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !dir.join("xdp-forwarder").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon did not mount bpffs"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
        daemon.wait().unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);

        let w = World::new("f7").nic("n1");
        let state = w.pins.path().join("xdp-forwarder");
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        let err = w.attach_err("n1", "physical", &[]);
        assert!(
            err.contains("belongs to uid 65534") && err.contains("mode=0700"),
            "{err}"
        );
        std::os::unix::fs::chown(&state, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = w.attach_err("n1", "physical", &[]);
        assert!(err.contains("writable by its group or others"), "{err}");
        assert!(xdp_running().is_empty());
        assert!(
            !err.contains("rm -r"),
            "chmod suffices for a root-owned dir: {err}"
        );
        // The fix it proposes is enough.
        support::run_fix(&err, "make it root's alone (");
        w.attach("n1", "physical", &[]);
    });
}

/// The router MAC prefix: 1 to 6 hex octets, either case, in the daemon
/// and in the mdev hook alike.
#[test]
fn router_mac_prefixes_are_read_alike_by_the_daemon_and_the_hook() {
    in_fresh_netns(|| {
        let pins = Bpffs::mount("f8");
        for bad in ["", "zz", "02-01", "02:01:00:00:00:00:00"] {
            let out = cli(&["run", "--router-mac-prefix", bad, "--pin-dir", pins.arg()]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("1 to 6 octets"),
                "{bad:?}: {err}"
            );
        }
        assert!(
            xdp_running().is_empty(),
            "nothing attached by a refused daemon"
        );

        let ns = NamedNetns::add("f8");
        ns.ip(&[
            "link",
            "add",
            "rr",
            "address",
            "02:01:0a:00:00:01",
            "type",
            "veth",
            "peer",
            "name",
            "nn",
        ]);
        ns.ip(&["link", "set", "dev", "nn", "address", "52:54:00:00:00:01"]);
        let hook = concat!(env!("CARGO_MANIFEST_DIR"), "/../contrib/mdev/iface");
        let run_hook = |iface: &str, prefix: &str| {
            Command::new("ip")
                .args(["netns", "exec", &ns.name, "sh", hook])
                .env("INTERFACE", iface)
                .env("ACTION", "add")
                .env("XDP_FORWARDER", "echo")
                .env("ROUTER_MAC_PREFIX", prefix)
                .output()
                .unwrap()
        };
        for (prefix, iface, role) in [
            ("02:01:", "rr", "router"),
            ("02:01:0A", "rr", "router"),
            ("02:01:0a:00:00:01", "rr", "router"),
            ("02:01:0B", "rr", "physical"),
            ("02:01", "nn", "physical"),
        ] {
            let out = run_hook(iface, prefix);
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains(&format!("--role {role}")),
                "{prefix} {iface}: {said}"
            );
        }
        for bad in ["", "zz", "02-01", "02:01:00:00:00:00:00"] {
            let out = run_hook("rr", bad);
            assert_eq!(out.status.code(), Some(2), "{bad:?}");
            assert!(String::from_utf8_lossy(&out.stderr).contains("1 to 6 octets"));
        }
    });
}

/// Messages that say what happened: the kernel's errno, privilege advice
/// only for privilege errors, kernel names for map types, the right
/// command for a gone interface, the VID checked first, names too long,
/// set-router-iface's own help, names escaped in the table.
#[test]
fn messages_name_the_errno_and_the_fix_and_escape_names() {
    in_fresh_netns(|| {
        let w = World::new("f9").nic("n1");
        let p = w.pins.arg();
        let err = cli_err(&["export-objects", &format!("{p}/objs")]);
        assert!(
            err.contains("bpffs") && err.contains("regular directory") && !err.contains("CAP_BPF"),
            "{err}"
        );

        w.attach("n1", "physical", &["--vid", "5"]);
        let err = w.attach_err("n1", "physical", &["--vid", "70000"]);
        assert!(
            err.contains("not a usable VID") && !err.contains("--replace"),
            "{err}"
        );
        let err = w.attach_err("abcdefghijklmnopq", "physical", &[]);
        assert!(err.contains("too long"), "{err}");

        // A counters pin of another shape: `status` still works and says where.
        let counters = w
            .pins
            .path()
            .join(format!("xdp-forwarder/counters-{}", support::ifindex("n1")));
        std::fs::remove_file(&counters).unwrap();
        xdp_forwarder::pins::open_or_create(&counters, xdp_forwarder::pins::MapSpec::ROUTER_IFACE)
            .unwrap();
        let st = w.status();
        let said = st["ports"][0]["warnings"][0].as_str().unwrap();
        assert!(
            said.contains(counters.to_str().unwrap())
                && said.contains("type devmap")
                && said.contains("type percpu_array"),
            "{said}"
        );
        assert!(!said.contains("Ok("), "{said}");

        // Gone: the warning names --gone, not --all.
        run("ip", &["link", "del", "n1"]);
        let text = w.cli_ok(&["status"]);
        assert!(
            text.contains("detach --gone") && !text.contains("--all"),
            "{text}"
        );
        w.cli_ok(&["detach", "--gone"]);

        let out = Command::new(support::set_router_iface_bin())
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("router_iface") && !help.contains("inspect the xdp-forwarder data plane"),
            "{help}"
        );

        // A name with an escape sequence is shown escaped.
        let evil = "e\u{1b}[2Jx";
        run(
            "ip",
            &["link", "add", evil, "type", "veth", "peer", "name", "ex"],
        );
        w.attach(evil, "physical", &[]);
        let text = w.cli_ok(&["status"]);
        assert!(
            !text.contains('\u{1b}') && text.contains("e\\u{1b}[2Jx"),
            "{text:?}"
        );
        let json = w.status();
        assert_eq!(json["ports"][0]["name"], evil);
    });
}
