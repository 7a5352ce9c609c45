//! End to end through real veths: raw frames injected with AF_PACKET on the
//! outside peer of a NIC come out tagged on the outside peer of the router
//! interface, and back, in skb and in native mode.
//!
//! Native mode: a native XDP_REDIRECT into a veth only delivers when the
//! receiving peer has an XDP program or GRO enabled, so the outside peers get
//! `ethtool -K PEER gro on` (what a real stack behind a veth would do).

mod support;

use std::time::Duration;

use support::{
    Bpffs, cli_ok, in_fresh_netns,
    packet::{ETHERTYPE_TEST, RawSocket, frame, tagged},
    run, veth,
};

const WAIT: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(300);

/// Two NICs (`nicA`, `nicB`, outside peers `nicAx`, `nicBx`) and a router
/// interface `rtr` (outside peer `rtrx`), attached in `mode`.
struct Topology {
    pins: Bpffs,
    vid_a: u16,
    vid_b: u16,
}

fn topology(mode: &str) -> Topology {
    let pins = Bpffs::mount(&format!("e2e-{mode}"));
    let p = pins.arg();
    veth("nicA", "nicAx");
    veth("nicB", "nicBx");
    run(
        "ip",
        &[
            "link",
            "add",
            "rtr",
            "address",
            "02:01:00:00:00:0a",
            "type",
            "veth",
            "peer",
            "name",
            "rtrx",
        ],
    );
    run("ip", &["link", "set", "rtrx", "up"]);
    if mode == "native" {
        for peer in ["nicAx", "nicBx", "rtrx"] {
            run("ethtool", &["-K", peer, "gro", "on"]);
        }
    }
    cli_ok(&[
        "attach",
        "nicA",
        "--role",
        "physical",
        "--vid",
        "10",
        "--mode",
        mode,
        "--pin-dir",
        p,
    ]);
    cli_ok(&[
        "attach",
        "nicB",
        "--role",
        "physical",
        "--vid",
        "20",
        "--mode",
        mode,
        "--pin-dir",
        p,
    ]);
    cli_ok(&[
        "attach",
        "rtr",
        "--role",
        "router",
        "--mode",
        mode,
        "--pin-dir",
        p,
    ]);
    Topology {
        pins,
        vid_a: 10,
        vid_b: 20,
    }
}

fn both_directions(mode: &str) {
    in_fresh_netns(|| {
        let t = topology(mode);
        let (a, b, r) = (
            RawSocket::bind("nicAx"),
            RawSocket::bind("nicBx"),
            RawSocket::bind("rtrx"),
        );
        let dst = [0x02, 0, 0, 0, 0, 0xbb];
        let src = [0x02, 0, 0, 0, 0, 0xaa];

        // NIC → router: exactly one tag with the NIC's VID, payload intact.
        for (sock, vid) in [(&a, t.vid_a), (&b, t.vid_b)] {
            let f = frame(dst, src, &ETHERTYPE_TEST.to_be_bytes(), 100);
            sock.send(&f);
            let got = r.recv(WAIT).unwrap_or_else(|| {
                panic!("{mode}: nothing reached the router peer from VID {vid}")
            });
            assert_eq!(got, tagged(&f, 0x8100, vid), "{mode}: VID {vid}");
        }

        // Router → NIC: tag removed, delivered on that NIC only.
        for (to, other, vid) in [(&a, &b, t.vid_a), (&b, &a, t.vid_b)] {
            let f = frame(src, dst, &ETHERTYPE_TEST.to_be_bytes(), 100);
            r.send(&tagged(&f, 0x8100, vid));
            assert_eq!(
                to.recv(WAIT).as_deref(),
                Some(&f[..]),
                "{mode}: VID {vid} back"
            );
            assert!(
                other.drain(QUIET).is_empty(),
                "{mode}: VID {vid} leaked to the other NIC"
            );
        }

        // Already-tagged frames from outside keep their tag inside ours.
        let inner = tagged(
            &frame(dst, src, &ETHERTYPE_TEST.to_be_bytes(), 100),
            0x88a8,
            300,
        );
        a.send(&inner);
        assert_eq!(
            r.recv(WAIT),
            Some(tagged(&inner, 0x8100, t.vid_a)),
            "{mode}: QinQ out"
        );
        r.send(&tagged(&inner, 0x8100, t.vid_a));
        assert_eq!(a.recv(WAIT), Some(inner), "{mode}: QinQ back");

        cli_ok(&["detach", "--all", "--pin-dir", t.pins.arg()]);
    });
}

#[test]
fn frames_cross_in_skb_mode() {
    both_directions("skb");
}

#[test]
fn frames_cross_in_native_mode() {
    both_directions("native");
}

/// The exported objects, loaded by Debian's xdp-loader exactly like the
/// originals, share `router_iface` with each other and with our CLI, and
/// forward with the original's VID = ifindex convention.
#[test]
fn exported_objects_work_under_xdp_loader() {
    in_fresh_netns(|| {
        let pins = Bpffs::mount("compat");
        let p = pins.arg();
        let objs = std::env::temp_dir().join(format!("xdpfwd-compat-objs-{}", std::process::id()));
        cli_ok(&["export-objects", objs.to_str().unwrap(), "--pin-dir", p]);
        let phys = objs.join("prog_physical.o");
        let router = objs.join("prog_router.o");
        let (nic_a, _) = veth("nicA", "nicAx");
        let (nic_b, _) = veth("nicB", "nicBx");
        veth("rtr", "rtrx");
        veth("nicC", "nicCx");
        // Our CLI attaches one NIC (managed); xdp-loader the rest (drop-in):
        // all of them must reuse the one pinned router_iface.
        cli_ok(&[
            "attach",
            "nicC",
            "--role",
            "physical",
            "--vid",
            "99",
            "--mode",
            "skb",
            "--pin-dir",
            p,
        ]);
        for (iface, obj) in [("nicA", &phys), ("nicB", &phys), ("rtr", &router)] {
            run(
                "xdp-loader",
                &["load", iface, obj.to_str().unwrap(), "-m", "skb", "-p", p],
            );
        }
        support::run(
            env!("CARGO_BIN_EXE_set-router-iface"),
            &["rtr", "--pin-dir", p],
        );

        let (a, c, r) = (
            RawSocket::bind("nicAx"),
            RawSocket::bind("nicCx"),
            RawSocket::bind("rtrx"),
        );
        let f = frame(
            [0x02, 0, 0, 0, 0, 1],
            [0x02, 0, 0, 0, 0, 2],
            &ETHERTYPE_TEST.to_be_bytes(),
            80,
        );
        a.send(&f);
        assert_eq!(
            r.recv(WAIT),
            Some(tagged(&f, 0x8100, nic_a as u16)),
            "drop-in VID = ifindex"
        );
        c.send(&f);
        assert_eq!(
            r.recv(WAIT),
            Some(tagged(&f, 0x8100, 99)),
            "managed NIC shares router_iface"
        );
        r.send(&tagged(&f, 0x8100, nic_a as u16));
        assert_eq!(
            a.recv(WAIT),
            Some(f.clone()),
            "drop-in router pops and sends to ifindex = VID"
        );
        r.send(&tagged(&f, 0x8100, 1));
        assert!(a.drain(QUIET).is_empty(), "never to lo");
        let _ = nic_b;

        for iface in ["nicA", "nicB", "rtr"] {
            run("xdp-loader", &["unload", iface, "--all"]);
        }
        cli_ok(&["detach", "--all", "--pin-dir", p]);
        std::fs::remove_dir_all(&objs).unwrap();
    });
}
