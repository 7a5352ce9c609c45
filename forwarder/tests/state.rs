//! The state model under stress: many writers at once, writers killed at
//! random moments, upgrades under traffic, and two network namespaces on
//! one pin dir. After each, the registry must equal what the kernel runs
//! (`support::assert_consistent`).

mod support;

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use support::{
    Bpffs, assert_consistent, cli, cli_err,
    daemon::Daemon,
    in_fresh_netns,
    netns::NamedNetns,
    packet::{ETHERTYPE_TEST, frame},
    promisc,
    world::World,
    xdp_running,
};

/// A small deterministic generator: the same rounds on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn spawn_cli(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_xdp-forwarder"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xdp-forwarder")
}

/// 32 CLI processes at once, 20 rounds, against a running daemon: they
/// attach, replace (VID and mode) and detach six NICs with three contended
/// VIDs, on a fresh pin dir every fifth round and on the same one otherwise.
/// Each may be refused (VID taken, router elsewhere); none may panic, and
/// afterwards the pin dir is consistent with the kernel.
#[test]
fn thirty_two_writers_and_the_daemon() {
    in_fresh_netns(|| {
        // The daemon owns the router and the d* NICs (both ends of each
        // pair are in the net-vm); the CLI fights over c*.
        let mut w = World::new("conc");
        for k in 0..6 {
            w = w.pair(&format!("c{k}"), &format!("c{k}x"), None);
        }
        let mut w = w
            .pair("d0", "d0x", None)
            .pair("r0", "r0x", Some("02:01:00:00:00:09"));
        // The c* NICs go native and back: the skb router must take their
        // native redirects, which a veth does while its peer has GRO on
        // (set while up: the veth recomputes its xdp-features then).
        support::run("ethtool", &["-K", "r0x", "gro", "on"]);
        let daemon_args = ["--ignore", "c*", "--mode", "skb"];
        let mut rng = Lcg(7);
        let mut daemon = Daemon::start(&w.pins, &daemon_args);
        for round in 0..20 {
            if round > 0 && round % 5 == 0 {
                drop(daemon);
                w.cli_ok(&["detach", "--all"]);
                assert!(xdp_running().is_empty(), "round {round}: detach --all");
                // A fresh pin dir.
                w.pins = Bpffs::mount("conc");
                daemon = Daemon::start(&w.pins, &daemon_args);
            }
            let p = w.pins.arg().to_owned();
            let children: Vec<(Vec<String>, Child)> = (0..32)
                .map(|_| {
                    let nic = format!("c{}", rng.next(6));
                    let vid = (100 + rng.next(3)).to_string();
                    let args: Vec<&str> = match rng.next(20) {
                        0..=7 => vec!["attach", &nic, "--role", "physical", "--vid", &vid],
                        8..=10 => vec!["attach", &nic, "--role", "physical"],
                        11..=13 => vec![
                            "attach",
                            &nic,
                            "--role",
                            "physical",
                            "--vid",
                            &vid,
                            "--replace",
                        ],
                        14 => vec![
                            "attach",
                            &nic,
                            "--role",
                            "physical",
                            "--mode",
                            "skb",
                            "--replace",
                        ],
                        15 => vec![
                            "attach",
                            &nic,
                            "--role",
                            "physical",
                            "--mode",
                            "native",
                            "--replace",
                        ],
                        16 => vec!["set-router-iface", &nic],
                        17 => vec!["detach", "--gone"],
                        _ => vec!["detach", &nic],
                    };
                    let mut args: Vec<String> = args.into_iter().map(str::to_owned).collect();
                    args.extend(["--pin-dir".to_owned(), p.clone()]);
                    let child = spawn_cli(&args);
                    (args, child)
                })
                .collect();
            daemon.hup();
            let mut outputs = Vec::new();
            for (args, child) in children {
                let out = child.wait_with_output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                outputs.push(format!(
                    "{:?}: {}{}",
                    &args[..args.len() - 2],
                    String::from_utf8_lossy(&out.stdout).trim(),
                    stderr.trim()
                ));
                assert!(
                    !stderr.contains("panicked") && out.status.code().is_some(),
                    "round {round}: {args:?}: {stderr}"
                );
                if !out.status.success() {
                    // Refusals only: a kernel failure is a bug here.
                    assert!(
                        [
                            "already used by",
                            "already attached",
                            "not attached",
                            "is attached as",
                            "add --replace",
                            "already the router",
                            "is the router interface"
                        ]
                        .iter()
                        .any(|m| stderr.contains(m)),
                        "round {round}: {args:?}: {stderr}"
                    );
                }
            }
            // Let the daemon finish what the SIGHUP (or its start, on a fresh
            // pin dir) began: it takes turns with 32 writers. Then check.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                let st = w.status();
                let ports = st["ports"].as_array().unwrap();
                let ready = ["d0", "d0x", "r0", "r0x"].iter().all(|m| {
                    ports
                        .iter()
                        .any(|p| p["name"] == *m && p["attached"] == true)
                });
                if ready {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let st = assert_consistent(&w.pins, &format!("round {round}"));
            let names: Vec<&str> = st["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for managed in ["d0", "d0x", "r0", "r0x"] {
                assert!(
                    names.contains(&managed),
                    "round {round}: the daemon's {managed}: {names:?}\n{}\n{}",
                    outputs.join("\n"),
                    daemon.log()
                );
            }
            assert!(
                daemon.running(),
                "round {round}: the daemon died:\n{}",
                daemon.log()
            );
            assert!(
                !daemon.log().contains("ERROR"),
                "round {round}:\n{}",
                daemon.log()
            );
        }
    });
}

/// An outside namespace with `nic1x`, `nic2x` and `rtrx`, peers of `nic1`,
/// `nic2` and `rtr` here; `nic1` and `rtr` attached in skb mode. What
/// reaches `rtrx` is its own receive counter (nothing else sends there:
/// IPv6 is off in both namespaces).
struct Traffic {
    w: World,
    baseline: u64,
}

impl Traffic {
    fn new(tag: &str) -> Self {
        // nic2 goes native and back next to the skb router: the router must
        // take native redirects, which a veth does while its peer has GRO on.
        let w = World::new(tag)
            .nic("nic1")
            .nic("nic2")
            .router("rtr", "02:01:00:00:00:0a")
            .gro_on(&["rtrx"])
            .attached("rtr", "router", &["--mode", "skb"])
            .attached("nic1", "physical", &["--vid", "10", "--mode", "skb"]);
        let mut t = Self { w, baseline: 0 };
        t.baseline = t.delivered();
        t
    }

    /// Frames that reached `rtrx` since `new`.
    fn delivered(&self) -> u64 {
        let links: serde_json::Value = serde_json::from_str(
            &self
                .w
                .outside
                .ip(&["-s", "-j", "link", "show", "dev", "rtrx"]),
        )
        .unwrap();
        links[0]["stats64"]["rx"]["packets"].as_u64().unwrap() - self.baseline
    }

    /// Sends frames into `nic1` on a thread until `stop`, no further than
    /// `allowed` permits; returns how many it sent.
    fn stream(
        &self,
        stop: Arc<AtomicBool>,
        allowed: Arc<AtomicU64>,
    ) -> std::thread::JoinHandle<u64> {
        let socket = self.w.socket("nic1x");
        std::thread::spawn(move || {
            let f = frame(
                [0x02, 0, 0, 0, 0, 0xbb],
                [0x02, 0, 0, 0, 0, 0xaa],
                &ETHERTYPE_TEST.to_be_bytes(),
                60,
            );
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                if sent >= allowed.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                socket.send(&f);
                sent += 1;
            }
            sent
        })
    }

    /// Waits until `delivered` stops growing (the last frames are in flight).
    fn settled(&self, expected: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.delivered() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        self.delivered()
    }
}

/// SIGKILL the CLI at random moments of attach, detach and replace on
/// `nic2`, 200 times, while `nic1` streams to the router: after each kill
/// `status` tells the kernel's truth, the same command again completes the
/// work, and `nic1` lost no frame.
#[test]
fn killed_writers_leave_a_state_the_next_command_completes() {
    in_fresh_netns(|| {
        let t = Traffic::new("kill");
        let p = t.w.pins.arg().to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let sender = t.stream(stop.clone(), Arc::new(AtomicU64::new(u64::MAX)));
        let mut rng = Lcg(42);
        let mut outcomes = [0u32; 2];
        let mut history: Vec<String> = Vec::new();
        for round in 0..200 {
            let cmd: Vec<&str> = match rng.next(4) {
                0 => vec!["detach", "nic2"],
                1 => vec![
                    "attach",
                    "nic2",
                    "--role",
                    "physical",
                    "--mode",
                    "skb",
                    "--replace",
                ],
                2 => vec![
                    "attach",
                    "nic2",
                    "--role",
                    "physical",
                    "--mode",
                    "native",
                    "--replace",
                ],
                _ => vec!["attach", "nic2", "--role", "physical"],
            };
            let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            args.extend(["--pin-dir".to_owned(), p.clone()]);
            let before = pin_inodes(&t.w.pins, "nic2");
            let mut child = spawn_cli(&args);
            if round % 2 == 0 {
                std::thread::sleep(Duration::from_micros(rng.next(60_000)));
            } else {
                // Aim at the few milliseconds in which the pins and maps
                // change: from the moment the first pin does, plus a little.
                let deadline = Instant::now() + Duration::from_secs(2);
                while pin_inodes(&t.w.pins, "nic2") == before
                    && child.try_wait().unwrap().is_none()
                    && Instant::now() < deadline
                {
                    std::hint::spin_loop();
                }
                let until = Instant::now() + Duration::from_micros(rng.next(3_000));
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let status = child.wait().unwrap();
            outcomes[usize::from(status.code().is_some())] += 1;
            history.push(format!(
                "round {round}: {cmd:?} killed: {}",
                status.code().is_none()
            ));

            // `status` tells the truth about nic2, whatever the moment.
            let st = t.w.status();
            let running = xdp_running().contains_key("nic2");
            match st["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "nic2")
            {
                Some(port) => assert_eq!(
                    port["attached"].as_bool(),
                    Some(running),
                    "round {round} {cmd:?}: {port:#}"
                ),
                None => assert!(
                    !running,
                    "round {round} {cmd:?}: unregistered nic2 runs XDP"
                ),
            }

            // The same command again completes it.
            let again = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let stderr = String::from_utf8_lossy(&again.stderr);
            if cmd[0] == "detach" {
                assert!(
                    again.status.success() || stderr.contains("not attached"),
                    "round {round}: {stderr}"
                );
                assert!(!xdp_running().contains_key("nic2"), "round {round}");
                assert!(
                    !promisc("nic2"),
                    "round {round}: promisc left on; {stderr}\n{}\n{:#}",
                    history[history.len().saturating_sub(4)..].join("\n"),
                    t.w.status()
                );
            } else {
                assert!(again.status.success(), "round {round} {cmd:?}: {stderr}");
                assert!(
                    promisc("nic2"),
                    "round {round}: promisc off; {}{stderr}\n{}\n{:#}",
                    String::from_utf8_lossy(&again.stdout),
                    history[history.len().saturating_sub(4)..].join("\n"),
                    t.w.status()
                );
            }
            assert_consistent(&t.w.pins, &format!("round {round} {cmd:?}"));
        }
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        let delivered = t.settled(sent);
        eprintln!(
            "kills: {} during the command, {} after it ended; nic1: {sent} sent",
            outcomes[0], outcomes[1]
        );
        assert!(
            outcomes[0] > 40,
            "most kills must land mid-command: {outcomes:?}"
        );
        assert!(sent > 1000, "the stream ran: {sent}");
        assert_eq!(delivered, sent, "nic1 lost frames");
    });
}

/// The inodes of the link and counters pins of `iface` (0: none): every
/// attach, replace and detach changes at least one.
fn pin_inodes(pins: &Bpffs, iface: &str) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let ifindex = support::ifindex(iface);
    let dir = pins.path().join("xdp-forwarder");
    let ino = |name: String| std::fs::metadata(dir.join(name)).map_or(0, |m| m.ino());
    (
        ino(format!("link-{ifindex}")),
        ino(format!("counters-{ifindex}")),
    )
}

/// 1,000,000 frames through `nic1` while it is upgraded 100 times
/// (`attach --replace`, same role and mode: the program is swapped on its
/// link): every frame is delivered, and the link stays the same.
#[test]
fn upgrades_lose_no_frame() {
    in_fresh_netns(|| {
        const UPGRADES: u64 = 100;
        const PER_UPGRADE: u64 = 10_000;
        let t = Traffic::new("upgrade");
        let link_before = std::fs::metadata(t.w.link_pin("nic1")).unwrap();
        let prog_before = xdp_running()["nic1"];
        let stop = Arc::new(AtomicBool::new(false));
        let allowed = Arc::new(AtomicU64::new(PER_UPGRADE));
        let sender = t.stream(stop.clone(), allowed.clone());
        let mut progs = std::collections::BTreeSet::new();
        for n in 1..=UPGRADES {
            let out = t.w.attach("nic1", "physical", &["--replace"]);
            assert!(
                out.contains("attached as physical (skb mode, VID 10)"),
                "{out}"
            );
            progs.insert(xdp_running()["nic1"]);
            allowed.store((n + 1).min(UPGRADES) * PER_UPGRADE, Ordering::Relaxed);
        }
        // Let the sender reach the total, then stop it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while t.delivered() < UPGRADES * PER_UPGRADE && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        let delivered = t.settled(sent);
        assert_eq!(sent, UPGRADES * PER_UPGRADE);
        assert_eq!(delivered, sent, "frames lost during upgrades");
        assert_eq!(
            progs.len() as u64,
            UPGRADES,
            "every upgrade loaded a new program"
        );
        assert!(!progs.contains(&prog_before));
        let link_after = std::fs::metadata(t.w.link_pin("nic1")).unwrap();
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(
            link_before.ino(),
            link_after.ino(),
            "the same pinned link throughout"
        );
        assert_consistent(&t.w.pins, "after the upgrades");
    });
}

/// Two network namespaces on one pin dir: the second is refused every
/// change while the first's ports run, its status shows them as another
/// namespace's, and a daemon started there refuses to start; once the first
/// detached everything, the second may use the pin dir.
#[test]
fn a_second_network_namespace_never_touches_the_first() {
    in_fresh_netns(|| {
        let t = Traffic::new("twons");
        let p = t.w.pins.arg().to_owned();
        let other = NamedNetns::add("twons-b");
        other.ip(&[
            "link", "add", "nic1", "type", "veth", "peer", "name", "nic9",
        ]);
        other.ip(&[
            "link",
            "add",
            "rtr",
            "address",
            "02:01:00:00:00:0b",
            "type",
            "veth",
            "peer",
            "name",
            "rtr9",
        ]);
        let before = t.w.status();
        let in_b = |args: &[&str]| {
            let mut all = vec![
                "netns",
                "exec",
                &other.name,
                env!("CARGO_BIN_EXE_xdp-forwarder"),
            ];
            all.extend_from_slice(args);
            all.extend(["--pin-dir", &p]);
            Command::new("ip").args(&all).output().unwrap()
        };
        for args in [
            &["attach", "nic1", "--role", "physical"][..],
            &["attach", "rtr", "--role", "router"],
            &["detach", "--all"],
            &["detach", "--gone"],
            &["detach", "nic1"],
            &["set-router-iface", "rtr"],
        ] {
            let out = in_b(args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{args:?} succeeded in the other namespace"
            );
            assert!(
                err.contains("another network namespace") && err.contains("--pin-dir"),
                "{args:?}: {err}"
            );
        }
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &other.name,
                env!("CARGO_BIN_EXE_xdp-forwarder"),
                "run",
                "--pin-dir",
                &p,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("another network namespace"));
        let seen = String::from_utf8_lossy(&in_b(&["status", "--json"]).stdout).into_owned();
        let seen: serde_json::Value = serde_json::from_str(&seen).unwrap();
        for port in seen["ports"].as_array().unwrap() {
            assert_eq!(port["attached"], true, "{port:#}");
            assert!(
                port["warnings"][0]
                    .as_str()
                    .unwrap()
                    .contains("another network namespace")
            );
        }
        // The first namespace saw nothing change, and still forwards.
        assert_eq!(t.w.status()["ports"], before["ports"]);
        assert_eq!(
            other
                .exec("ip", &["-j", "-d", "link", "show"])
                .matches("\"prog\"")
                .count(),
            0
        );
        assert!(
            !other
                .ip(&["link", "show", "dev", "rtr"])
                .contains("PROMISC")
        );
        let stop = Arc::new(AtomicBool::new(false));
        let sender = t.stream(stop.clone(), Arc::new(AtomicU64::new(100)));
        let delivered = t.settled(100);
        stop.store(true, Ordering::Relaxed);
        assert_eq!(sender.join().unwrap(), 100);
        assert_eq!(delivered, 100);

        // Once the first namespace runs nothing of ours, the second may.
        t.w.cli_ok(&["detach", "--all"]);
        let out = in_b(&["attach", "rtr", "--role", "router", "--mode", "skb"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = cli_err(&["attach", "nic2", "--role", "physical", "--pin-dir", &p]);
        assert!(err.contains("another network namespace"), "{err}");
        in_b(&["detach", "--all"]);
    });
}
