//! The CLI in a throw-away network namespace with veth pairs: round trips,
//! persistence after the process exits, and every error case.

mod support;

use support::{
    Bpffs, cli, cli_err, cli_ok, cli_with, in_fresh_netns, run, run_fix, status_json, veth,
    world::World,
};

/// Pins the link pinned at `pin` at `held` too (`bpftool link pin`), so
/// that it outlives its pin dir's pin: held by no pin dir.
fn pin_link_again(pin: &std::path::Path, held: &std::path::Path) {
    run(
        "bpftool",
        &[
            "link",
            "pin",
            "pinned",
            pin.to_str().unwrap(),
            held.to_str().unwrap(),
        ],
    );
}

fn xdp_prog_on(iface: &str) -> Option<String> {
    let out = run("ip", &["-d", "link", "show", "dev", iface]);
    out.split_whitespace()
        .skip_while(|w| *w != "prog/xdp")
        .nth(2)
        .map(str::to_owned)
}

/// Our own program on an interface, attached through another pin dir: the
/// message says so, names that pin dir, and its command frees the
/// interface; a link no pin dir here holds is freed by the `bpftool`
/// command the message gives (`ip link set … xdp off` fails on a link).
#[test]
fn our_program_from_another_pin_dir_is_named_with_a_fix_that_works() {
    in_fresh_netns(|| {
        // Pin dir A's net-vm; B, a second pin dir on the same interfaces.
        let w = World::new("cli-pin-a").nic("nic6").nic("nic7");
        let b = World::new("cli-pin-b");
        let a = &w.pins;
        let skb = ["--mode", "skb"];
        w.attach("nic6", "physical", &skb);
        let err = b.attach_err("nic6", "physical", &skb);
        assert!(
            err.contains(&format!("another pin dir, {}", a.arg()))
                && !err.contains("did not attach"),
            "{err}"
        );
        let off = std::process::Command::new("ip")
            .args(["link", "set", "dev", "nic6", "xdpgeneric", "off"])
            .output()
            .unwrap();
        assert!(!off.status.success(), "ip link cannot remove an XDP link");
        run_fix(&err, "detach it there first (");
        b.attach("nic6", "physical", &skb); // free once the fix ran

        // A link held elsewhere than in a pin dir (here: pinned by hand,
        // its pin dir's pin removed).
        w.attach("nic7", "physical", &skb);
        let pin = w.link_pin("nic7");
        let held = a.path().join("held");
        pin_link_again(&pin, &held);
        std::fs::remove_file(&pin).unwrap();
        let err = b.attach_err("nic7", "physical", &skb);
        assert!(err.contains("bpftool link detach id"), "{err}");
        run_fix(&err, "remove it first with");
        b.attach("nic7", "physical", &skb); // free once the fix ran
        b.cli_ok(&["detach", "--all"]);
        w.cli(&["detach", "--all"]);
    });
}

/// Where the pin dir is not a bpffs mount, the advice fits the situation
/// and works: a missing directory is said to be missing (and the proposed
/// commands mount bpffs there); under `ip netns exec`, whose fresh /sys
/// hides the host's /sys/fs/bpf, the proposed `nsenter --net=…` command
/// runs.
#[test]
fn pin_dir_advice_works_where_it_is_given() {
    support::require_root();
    let missing = std::env::temp_dir().join(format!("xdpfwd-test-missing-{}", std::process::id()));
    let m = missing.to_str().unwrap();
    let err = cli_err(&["status", "--pin-dir", m]);
    assert!(
        err.contains("does not exist") && err.contains("mode=0700"),
        "{err}"
    );
    run_fix(&err, "create it and mount bpffs on it (");
    let ok = cli(&["status", "--pin-dir", m]);
    let _ = std::process::Command::new("umount")
        .args(["-l", m])
        .status();
    let _ = std::fs::remove_dir(&missing);
    assert!(ok.status.success(), "status once the fix ran");

    // A mount namespace of our own, with bpffs on /sys/fs/bpf as a host has.
    let ns = support::netns::NamedNetns::add("pinadv");
    let bin = env!("CARGO_BIN_EXE_xdp-forwarder");
    let with_host_bpffs = |cmd: &str| {
        std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t bpf -o mode=0700 bpf /sys/fs/bpf && {cmd}"
            ))
            .output()
            .unwrap()
    };
    let out = with_host_bpffs(&format!(
        "ip netns exec {} {bin} status --pin-dir /sys/fs/bpf",
        ns.name
    ));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success()
            && err.contains("`ip netns exec` mounts a fresh /sys")
            && err.contains(&format!("nsenter --net=/run/netns/{} ", ns.name)),
        "{err}"
    );
    let fix = support::fix_command(&err, "keeps the host's mounts: ");
    let out = with_host_bpffs(&fix);
    assert!(
        out.status.success(),
        "the proposed `{fix}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `router_iface` pointed at an interface by `set-router-iface` alone can
/// be emptied again: the refusal to attach that interface as a NIC gives a
/// command that clears it (and it works), `set-router-iface --clear` does
/// too, and neither takes the router away from a router port of ours.
#[test]
fn router_iface_set_by_hand_can_be_cleared() {
    in_fresh_netns(|| {
        let w = World::new("cli-rclear").nic("nic8").nic("nic9");
        w.cli_ok(&["set-router-iface", "nic8"]);
        let err = w.attach_err("nic8", "physical", &[]);
        assert!(err.contains("router_iface"), "{err}");
        run_fix(&err, "Clear router_iface first (");
        assert!(w.status()["router_iface"]["ifindex"].is_null(), "cleared");
        w.attach("nic8", "physical", &[]);

        w.cli_ok(&["set-router-iface", "nic9"]);
        assert!(!w.status()["router_iface"]["ifindex"].is_null());
        let out = w.cli_ok(&["set-router-iface", "--clear"]);
        assert!(out.contains("router_iface cleared"), "{out}");
        assert!(w.status()["router_iface"]["ifindex"].is_null(), "cleared");

        // A router port of ours keeps it: detach that instead.
        w.attach("nic9", "router", &[]);
        let err = w.cli_err(&["set-router-iface", "--clear"]);
        assert!(err.contains("detach it instead"), "{err}");
        assert_eq!(
            w.status()["router_iface"]["name"],
            "nic9",
            "the router port keeps router_iface"
        );
        w.cli_ok(&["detach", "--all"]);
    });
}

/// `status --check`'s exit code: 0 when all is well, 3 with a warning.
fn check(p: &str) -> i32 {
    cli(&["status", "--check", "--pin-dir", p])
        .status
        .code()
        .unwrap()
}

/// `status` shows what an operator needs and `--check` exits 3 on it: a
/// port's link down or promiscuous mode off (and attach repairs both),
/// `router_iface` at an interface without the router program (and the
/// fix given empties it), the standby router (a note, not a warning), and
/// another namespace's port by that namespace's name, with the command
/// that shows it from there (which works).
#[test]
fn status_shows_what_attach_repairs_and_check_exits_3_on_warnings() {
    in_fresh_netns(|| {
        // The router's peer up: a router without carrier is a warning.
        let w = World::new("cli-stwarn")
            .nic("nic10")
            .nic("nic11")
            .router("rtr10", "02:01:00:00:00:10")
            .attached("nic10", "physical", &["--mode", "skb"])
            .attached("rtr10", "router", &["--mode", "skb"]);
        let p = w.pins.arg();
        assert_eq!(check(p), 0, "{}", w.cli_ok(&["status"]));

        for (breaks, says) in [
            (&["link", "set", "nic10", "down"][..], "link is down"),
            (
                &["link", "set", "nic10", "promisc", "off"][..],
                "promiscuous mode is off",
            ),
        ] {
            run("ip", breaks);
            let text = String::from_utf8_lossy(&w.cli(&["status"]).stdout).into_owned();
            assert!(text.contains(says), "{text}");
            assert_eq!(check(p), 3, "{says}");
            w.attach("nic10", "physical", &["--mode", "skb"]);
            assert_eq!(check(p), 0, "attach repaired {says}");
        }

        // A second router-prefix interface: what the daemon keeps aside.
        w.plug_bare("rtr11", Some("02:01:00:00:00:11"));
        let text = w.cli_ok(&["status"]);
        assert!(
            text.contains("standby router interface(s): rtr11"),
            "{text}"
        );
        assert_eq!(w.status()["standby_routers"][0], "rtr11");
        assert_eq!(check(p), 0, "a standby router is a note");

        // router_iface at an interface without the router program.
        w.cli_ok(&["detach", "rtr10"]);
        w.cli_ok(&["set-router-iface", "nic11"]);
        let text = String::from_utf8_lossy(&w.cli(&["status"]).stdout).into_owned();
        assert!(text.contains("nic11 (ifindex"), "{text}");
        assert!(text.contains("which runs no router program"), "{text}");
        assert_eq!(check(p), 3);
        w.cli_ok(&["detach", "nic11"]);
        // router_iface is empty now: nic10 drops everything, a warning too.
        let text = String::from_utf8_lossy(&w.cli(&["status"]).stdout).into_owned();
        assert!(text.contains("warning: no router"), "{text}");
        assert_eq!(check(p), 3, "detach emptied router_iface: no router");
        w.cli_ok(&["detach", "--all"]);
        assert_eq!(check(p), 0, "nothing attached, nothing wrong");

        // Another namespace's port, in words.
        let other = Bpffs::mount("cli-stwarn-ns");
        let ns = support::netns::NamedNetns::add("stwarn");
        ns.ip(&["link", "add", "o1", "type", "veth", "peer", "name", "o1x"]);
        let bin = env!("CARGO_BIN_EXE_xdp-forwarder");
        ns.exec(
            bin,
            &[
                "attach",
                "o1",
                "--role",
                "physical",
                "--mode",
                "skb",
                "--pin-dir",
                other.arg(),
            ],
        );
        let text = cli_ok(&["status", "--pin-dir", other.arg()]);
        assert!(text.contains(&format!("<netns {}>", ns.name)), "{text}");
        assert!(
            !text.contains("<gone>") && !text.contains(" down "),
            "{text}"
        );
        let fix = support::fix_command(&text, "seen from there (");
        let out = std::process::Command::new("sh")
            .args(["-c", &fix])
            .output()
            .unwrap();
        let seen = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && seen.contains("o1 "),
            "`{fix}`: {seen}"
        );
        ns.exec(bin, &["detach", "--all", "--pin-dir", other.arg()]);
    });
}

#[test]
fn attach_status_detach_round_trip() {
    in_fresh_netns(|| {
        // Both down: attach brings them up.
        let w = World::new("cli-roundtrip").nic("nic1");
        w.plug_bare("rtr1", Some("02:01:00:00:00:01"));
        run("ip", &["link", "set", "nic1", "down"]);
        let (p, nic) = (w.pins.arg(), support::ifindex("nic1"));

        // XDP (skb mode), so that `ip link` shows the programs.
        let out = w.attach("nic1", "physical", &["--mode", "skb"]);
        assert!(
            out.contains(&format!("VID {nic}")),
            "default VID is the ifindex: {out}"
        );
        w.attach("rtr1", "router", &["--mode", "skb"]);

        // The CLI has exited: the attachments live on in the pinned links.
        assert!(
            xdp_prog_on("nic1").is_some(),
            "physical program gone after exit"
        );
        assert!(
            xdp_prog_on("rtr1").is_some(),
            "router program gone after exit"
        );
        let link = run("ip", &["link", "show", "dev", "rtr1"]);
        assert!(
            link.contains("PROMISC") && link.contains(",UP"),
            "router is promisc and up: {link}"
        );
        let nic_link = run("ip", &["link", "show", "dev", "nic1"]);
        assert!(
            nic_link.contains(",UP") && nic_link.contains("PROMISC"),
            "NIC brought up and promiscuous (its frames are for the VMs behind the router): {nic_link}"
        );

        let st = w.status();
        assert_eq!(st["router_iface"]["name"], "rtr1");
        let ports = st["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 2);
        let nic1 = ports.iter().find(|p| p["name"] == "nic1").unwrap();
        assert_eq!(
            (nic1["role"].as_str(), nic1["vid"].as_u64()),
            (Some("physical"), Some(u64::from(nic)))
        );
        let rtr1 = ports.iter().find(|p| p["name"] == "rtr1").unwrap();
        assert_eq!(
            (rtr1["role"].as_str(), rtr1["mode"].as_str()),
            (Some("router"), Some("skb"))
        );
        assert!(ports.iter().all(|p| p["attached"] == true));
        for port in ports {
            let c = &port["counters"];
            assert_eq!(c["forwarded_frames"], 0, "{port}");
            assert_eq!(c["dropped_total"], 0, "{port}");
            assert_eq!(
                c["dropped"].as_object().map(|d| d.len()),
                Some(xdp_forwarder_common::DropReason::ALL.len()),
                "every drop reason is listed: {port}"
            );
        }
        // --watch: one JSON line per refresh, rates from the second on.
        let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_xdp-forwarder"))
            .args(["status", "--json", "--watch", "0.2", "--pin-dir", p])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(watch.stdout.take().unwrap()));
        let first: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let second: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        watch.kill().unwrap();
        watch.wait().unwrap();
        assert!(first["ports"][0].get("rates").is_none());
        assert_eq!(second["ports"][0]["rates"]["frames_per_sec"], 0.0);
        assert!(
            w.cli_err(&["status", "--watch", "0"])
                .contains("between 0.1"),
            "a zero interval is refused"
        );
        // The table refreshed into a pipe: samples one after the other,
        // no terminal codes.
        let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_xdp-forwarder"))
            .args(["status", "--watch", "0.1", "--pin-dir", p])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(400));
        watch.kill().unwrap();
        let out = watch.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.matches("pin dir:").count() >= 2 && !text.contains('\x1b'),
            "{text:?}"
        );
        let text = w.cli_ok(&["status"]);
        assert!(
            text.contains("nic1")
                && text.contains("physical")
                && text.contains("router_iface: rtr1"),
            "{text}"
        );

        // Idempotent: same role again changes nothing.
        let prog = xdp_prog_on("nic1");
        let out = w.attach("nic1", "physical", &[]);
        assert!(out.contains("already attached"), "{out}");
        assert_eq!(
            xdp_prog_on("nic1"),
            prog,
            "re-attaching the same role must not reload"
        );

        w.cli_ok(&["detach", "nic1"]);
        assert!(xdp_prog_on("nic1").is_none(), "detach removes the program");
        assert!(
            !run("ip", &["link", "show", "dev", "nic1"]).contains("PROMISC"),
            "promisc we set on the NIC is undone"
        );
        // Promiscuous mode someone else turned on stays on.
        run("ip", &["link", "set", "nic1", "promisc", "on"]);
        w.attach("nic1", "physical", &[]);
        w.cli_ok(&["detach", "nic1"]);
        assert!(
            run("ip", &["link", "show", "dev", "nic1"]).contains("PROMISC"),
            "promisc we did not set is left alone"
        );
        assert!(
            !w.pins
                .path()
                .join("xdp-forwarder")
                .join(format!("link-{nic}"))
                .exists()
        );
        w.cli_ok(&["detach", "--all"]);
        assert!(xdp_prog_on("rtr1").is_none());
        assert!(
            !run("ip", &["link", "show", "dev", "rtr1"]).contains("PROMISC"),
            "promisc we set is undone"
        );
        assert!(
            !w.pins.path().join("xdp-forwarder").exists(),
            "no private state left"
        );
        assert!(w.status()["ports"].as_array().unwrap().is_empty());
    });
}

#[test]
fn roles_vids_and_replace() {
    in_fresh_netns(|| {
        // rtr2's peer is here too: attaching it is one of the errors.
        let w = World::new("cli-roles")
            .nic("nic2")
            .nic("nic3")
            .pair("rtr2", "rtr2x", None)
            .attached("nic2", "physical", &["--vid", "100"]);

        let err = w.attach_err("nic3", "physical", &["--vid", "100"]);
        assert!(
            err.contains("VID 100 is already used by interface nic2"),
            "{err}"
        );
        assert!(
            xdp_prog_on("nic3").is_none(),
            "nothing half-attached: {err}"
        );
        // Out of range or too large to be a number: the same usage error.
        for bad in ["0", "4095", "70000", "5000", "99999999999", "x"] {
            let out = w.cli(&["attach", "nic3", "--role", "physical", "--vid", bad]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.code() == Some(2)
                    && err.contains("not a usable VID: choose one in 1..=4094"),
                "{bad}: {err}"
            );
        }
        let err = w.attach_err("nic2", "router", &[]);
        assert!(
            err.contains("already attached as physical") && err.contains("--replace"),
            "{err}"
        );
        let err = w.attach_err("nic2", "physical", &["--vid", "101"]);
        assert!(err.contains("--replace"), "{err}");

        w.attach("nic2", "physical", &["--vid", "101", "--replace"]);
        let st = w.status();
        assert_eq!(st["ports"][0]["vid"], 101);
        // VID 100 is free again.
        w.attach("nic3", "physical", &["--vid", "100"]);

        // A failed --replace leaves the old attachment as it was.
        let prog = xdp_prog_on("nic2");
        let err = w.attach_err("nic2", "physical", &["--vid", "100", "--replace"]);
        assert!(
            err.contains("VID 100 is already used by interface nic3"),
            "{err}"
        );
        assert_eq!(xdp_prog_on("nic2"), prog, "still attached, same program");
        assert_eq!(w.port("nic2")["vid"], 101);

        w.attach("rtr2", "router", &[]);
        let err = w.attach_err("nic3", "router", &[]);
        assert!(err.contains("--replace"), "{err}");
        let err = w.attach_err("rtr2x", "router", &[]);
        assert!(
            err.contains("rtr2 is already the router interface"),
            "{err}"
        );
        assert!(xdp_prog_on("rtr2x").is_none());
        let err = w.cli_err(&["set-router-iface", "nic3"]);
        assert!(err.contains("attached as a physical port"), "{err}");
        // The router can become a NIC: router_iface no longer points at it.
        w.attach("rtr2", "physical", &["--replace"]);
        let st = w.status();
        assert!(st["router_iface"].is_null(), "{st}");
        assert_eq!(st["ports"].as_array().unwrap().len(), 3);

        w.cli_ok(&["detach", "--all"]);
    });
}

#[test]
fn errors_name_the_problem_and_leave_nothing_behind() {
    in_fresh_netns(|| {
        let w = World::new("cli-errors").nic("nic4");
        let p = w.pins.arg();

        let err = w.attach_err("nosuch0", "physical", &[]);
        assert!(err.contains("\"nosuch0\" does not exist"), "{err}");
        let err = w.attach_err("lo", "physical", &[]);
        assert!(err.contains("loopback"), "{err}");
        let err = w.cli_err(&["detach", "nic4"]);
        assert!(err.contains("not attached by xdp-forwarder"), "{err}");

        // bpffs not mounted there.
        let plain = tempdir("cli-notbpffs");
        let err = cli_err(&[
            "attach",
            "nic4",
            "--role",
            "physical",
            "--pin-dir",
            plain.to_str().unwrap(),
        ]);
        assert!(
            err.contains("is not a bpffs mount")
                && err.contains("mount -t bpf -o mode=0700 bpf")
                && err.contains("bpf mode=0700 0 0")
                && !err.contains("defaults"),
            "{err}"
        );
        assert!(xdp_prog_on("nic4").is_none());
        std::fs::remove_dir(&plain).unwrap();

        // A map pinned under our name by someone else, with another shape.
        run(
            "bpftool",
            &[
                "map",
                "create",
                &format!("{p}/router_iface"),
                "type",
                "hash",
                "key",
                "4",
                "value",
                "8",
                "entries",
                "4",
                "name",
                "router_iface",
            ],
        );
        let err = w.attach_err("nic4", "physical", &[]);
        assert!(
            err.contains("router_iface") && err.contains("not the") && err.contains("rm "),
            "{err}"
        );
        assert!(xdp_prog_on("nic4").is_none(), "nothing half-attached");
        assert!(
            !w.pins
                .path()
                .join("xdp-forwarder")
                .join("fwd_vlan_ports")
                .exists(),
            "no new pin left behind"
        );
        std::fs::remove_file(w.pins.path().join("router_iface")).unwrap();

        // An XDP program we did not attach.
        let objs = tempdir("cli-foreign");
        w.cli_ok(&["export-objects", objs.to_str().unwrap()]);
        run(
            "xdp-loader",
            &[
                "load",
                "nic4",
                objs.join("prog_router.o").to_str().unwrap(),
                "-m",
                "skb",
                "-p",
                p,
            ],
        );
        let err = w.attach_err("nic4", "physical", &[]);
        assert!(
            err.contains("by another loader (no link)"),
            "loaded without a link: {err}"
        );
        // The fix it proposes works.
        run_fix(&err, "remove it first (");
        w.attach("nic4", "physical", &[]);
        w.cli_ok(&["detach", "nic4"]);
        std::fs::remove_dir_all(&objs).unwrap();
    });
}

#[test]
fn unprivileged_callers_are_told_what_to_do() {
    in_fresh_netns(|| {
        let w = World::new("cli-unpriv").nic("nic5");
        // `setpriv` drops every capability while staying uid 0.
        let out = std::process::Command::new("setpriv")
            .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
            .arg(env!("CARGO_BIN_EXE_xdp-forwarder"))
            .args([
                "attach",
                "nic5",
                "--role",
                "physical",
                "--pin-dir",
                w.pins.arg(),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("needs CAP_BPF") && err.contains("root"),
            "{err}"
        );
        assert!(xdp_prog_on("nic5").is_none());
    });
}

#[test]
fn set_router_iface_binary_is_argument_compatible() {
    in_fresh_netns(|| {
        let w = World::new("cli-setrouter").nic("rtr6");
        let rtr = support::ifindex("rtr6");
        let out = std::process::Command::new(support::set_router_iface_bin())
            .args(["rtr6", "--pin-dir", w.pins.arg()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(w.status()["router_iface"]["ifindex"], rtr);
        let out = w.cli(&["set-router-iface", "nosuch1"]);
        assert!(!out.status.success());
    });
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("xdpfwd-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `inspect` reports what the kernel says decides a port's mode: the
/// driver, its netdev xdp-features (which change with the peer's GRO on
/// veth: a native redirect then reaches it), tcx, the tag features.
#[test]
fn inspect_reports_the_driver_its_xdp_features_and_what_auto_tries() {
    in_fresh_netns(|| {
        veth("v1", "v1x");
        run("ip", &["link", "set", "v1", "up"]);
        run("ip", &["link", "set", "v1x", "up"]);
        let json = |iface: &str| -> serde_json::Value {
            serde_json::from_str(&cli_ok(&["inspect", iface, "--json"])).unwrap()
        };
        let v1 = json("v1");
        assert_eq!(v1["driver"], "veth", "{v1:#}");
        assert_eq!(v1["tcx"], true, "{v1:#}");
        let xdp = |v: &serde_json::Value| -> Vec<String> {
            v["xdp_features"]
                .as_array()
                .unwrap_or_else(|| panic!("xdp-features reported on 6.18: {v:#}"))
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect()
        };
        assert!(xdp(&v1).contains(&"basic".to_owned()), "{v1:#}");
        assert!(!xdp(&v1).contains(&"ndo_xmit".to_owned()), "{v1:#}");
        run("ethtool", &["-K", "v1x", "gro", "on"]);
        assert!(
            xdp(&json("v1")).contains(&"ndo_xmit".to_owned()),
            "the peer's GRO lets v1 take native redirects"
        );
        assert!(
            v1["features"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == "rx-vlan-hw-parse" && f["on"] == true),
            "{v1:#}"
        );
        let text = cli_ok(&["inspect", "lo"]);
        assert!(
            text.contains("native (no: the driver has no native XDP)"),
            "{text}"
        );
        assert!(cli_err(&["inspect", "nope0"]).contains("does not exist"));
    });
}

/// `--pin-dir` is a global option: before the subcommand (as iproute2 and
/// bpftool take theirs) it means what it means after it.
#[test]
fn the_pin_dir_is_accepted_before_the_subcommand() {
    in_fresh_netns(|| {
        let w = World::new("globalopt").nic("gnic");
        let p = w.pins.arg();
        cli_ok(&["--pin-dir", p, "attach", "gnic", "--role", "physical"]);
        let after: serde_json::Value =
            serde_json::from_str(&cli_ok(&["status", "--json", "--pin-dir", p])).unwrap();
        let before: serde_json::Value =
            serde_json::from_str(&cli_ok(&["--pin-dir", p, "status", "--json"])).unwrap();
        assert_eq!(before["ports"], after["ports"]);
        assert_eq!(before["ports"][0]["name"], "gnic", "{before:#}");
        cli_ok(&["--pin-dir", p, "detach", "gnic"]);
    });
}

/// What runs on `iface`, as the kernel says: its XDP program, the programs
/// on its tcx ingress, and the filters at our clsact priority.
fn programs_on(iface: &str) -> (Option<String>, Vec<u32>, Vec<String>) {
    let tcx =
        aya::programs::SchedClassifier::query_tcx(iface, aya::programs::TcAttachType::Ingress)
            .map(|(_, progs)| progs.iter().map(|p| p.id()).collect())
            .unwrap_or_default();
    let filters = run("tc", &["filter", "show", "dev", iface, "ingress"])
        .lines()
        .filter(|l| l.contains("pref 30790") && l.contains("handle"))
        .map(str::to_owned)
        .collect();
    (xdp_prog_on(iface), tcx, filters)
}

/// What `status` says of each port of a pin dir, but its counters (frames
/// may arrive meanwhile): name, whether attached, mode, hook, program.
fn ports_of(pins: &Bpffs) -> Vec<String> {
    status_json(pins)["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let fields = ["name", "attached", "mode", "hook", "prog_id", "warnings"];
            fields.map(|f| p[f].to_string()).join(" ")
        })
        .collect()
}

/// The entries of a pin dir's state dir (none, or no state dir: nothing
/// pinned there).
fn state_entries(pins: &Bpffs) -> Vec<String> {
    std::fs::read_dir(pins.path().join("xdp-forwarder"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// One forwarder per interface: our program attached through pin dir A,
/// in any hook (tc on tcx, tc on a clsact filter, skb, native), makes an
/// attach of the same interface through pin dir B fail in every mode and
/// with either tc hook, naming A and the command that frees the interface;
/// B leaves nothing behind (no pin, the interface runs what it ran); the
/// command it proposes works, and B attaches then.
#[test]
fn our_program_from_another_pin_dir_in_any_hook_refuses_every_mode_with_a_fix_that_works() {
    in_fresh_netns(|| {
        let w = World::new("cli-onefwd-a")
            .nic("onefwd0")
            .nic("onefwd1")
            .nic("onefwd2")
            .nic("onefwd3");
        let (a, b) = (&w.pins, Bpffs::mount("cli-onefwd-b"));
        const TCX: &[(&str, &str)] = &[];
        const CLSACT: &[(&str, &str)] = &[("XDP_FORWARDER_TC_HOOK", "clsact")];
        let attach = |iface: &str, pins: &Bpffs, mode: &str, env: &[(&str, &str)]| {
            cli_with(
                &[
                    "attach",
                    iface,
                    "--role",
                    "physical",
                    "--mode",
                    mode,
                    "--pin-dir",
                    pins.arg(),
                ],
                env,
            )
        };
        for (n, (a_mode, a_env, runs)) in [
            ("tc", TCX, "on its tcx ingress"),
            ("tc", CLSACT, "clsact ingress filter pref 30790"),
            ("skb", TCX, "XDP program id"),
            ("native", TCX, "XDP program id"),
        ]
        .into_iter()
        .enumerate()
        {
            let iface = format!("onefwd{n}");
            let ok = attach(&iface, a, a_mode, a_env);
            assert!(ok.status.success(), "{ok:?}");
            let before = programs_on(&iface);
            let a_before = ports_of(a);
            for (b_mode, b_env) in [
                ("tc", TCX),
                ("tc", CLSACT),
                ("auto", TCX),
                ("auto", CLSACT),
                ("native", TCX),
                ("skb", TCX),
            ] {
                let context = format!("A: {a_mode} {a_env:?}, B: {b_mode} {b_env:?}");
                let out = attach(&iface, &b, b_mode, b_env);
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "{context}: B attached too: {out:?}");
                assert!(
                    err.contains(&format!("{iface} already runs"))
                        && err.contains(runs)
                        && err.contains(&format!("another pin dir, {}", a.arg()))
                        && err.contains(&format!(
                            "`xdp-forwarder --pin-dir {} detach {iface}`",
                            a.arg()
                        )),
                    "{context}: {err}"
                );
                assert_eq!(
                    programs_on(&iface),
                    before,
                    "{context}: B changed the kernel"
                );
                assert!(
                    state_entries(&b).is_empty(),
                    "{context}: B left {:?}",
                    state_entries(&b)
                );
                assert_eq!(ports_of(a), a_before, "A's ports as they were: {context}");
            }
            let err = String::from_utf8_lossy(&attach(&iface, &b, "tc", TCX).stderr).into_owned();
            run_fix(&err, "detach it there first (");
            assert_eq!(
                programs_on(&iface),
                (None, vec![], vec![]),
                "A's fix frees {iface}"
            );
            for (b_mode, b_env) in [("tc", TCX), ("tc", CLSACT), ("skb", TCX)] {
                let ok = attach(&iface, &b, b_mode, b_env);
                assert!(ok.status.success(), "free once the fix ran: {ok:?}");
                cli_ok(&["detach", &iface, "--pin-dir", b.arg()]);
            }
        }
    });
}

/// Our tc program held by no pin dir mounted here (its pin removed; a tcx
/// link kept by a pin elsewhere, a clsact filter by itself) is refused
/// with the command that removes it, which works.
#[test]
fn our_tc_program_no_pin_dir_holds_is_refused_with_the_command_that_removes_it() {
    in_fresh_netns(|| {
        let w = World::new("cli-tcorphan-a").nic("tcorph0").nic("tcorph1");
        let (a, b) = (&w.pins, Bpffs::mount("cli-tcorphan-b"));
        for (n, env, fix) in [
            (0, &[][..], "bpftool link detach id"),
            (
                1,
                &[("XDP_FORWARDER_TC_HOOK", "clsact")][..],
                "tc filter del dev",
            ),
        ] {
            let iface = format!("tcorph{n}");
            let attach = |pins: &Bpffs| {
                cli_with(
                    &[
                        "attach",
                        &iface,
                        "--role",
                        "physical",
                        "--mode",
                        "tc",
                        "--pin-dir",
                        pins.arg(),
                    ],
                    env,
                )
            };
            assert!(attach(a).status.success());
            let pin = w.link_pin(&iface);
            if n == 0 {
                // A tcx link lives while something holds it.
                let held = a.path().join("held");
                pin_link_again(&pin, &held);
            }
            std::fs::remove_file(&pin).unwrap();
            let out = attach(&b);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!out.status.success(), "{out:?}");
            assert!(
                err.contains("no pin dir mounted here") && err.contains(fix),
                "{err}"
            );
            assert!(
                state_entries(&b).is_empty(),
                "B left {:?}",
                state_entries(&b)
            );
            run_fix(&err, "remove it first with");
            assert_eq!(
                programs_on(&iface),
                (None, vec![], vec![]),
                "the fix frees {iface}"
            );
            assert!(attach(&b).status.success(), "free once the fix ran");
            cli_ok(&["detach", "--all", "--pin-dir", b.arg()]);
            w.cli(&["detach", "--all"]);
        }
    });
}
