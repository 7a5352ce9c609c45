//! End to end through real kernel stacks. The test thread's own network
//! namespace plays the net-vm: the forwarder's NICs (`nic1`..) and router
//! interface (`rtr`, MAC `02:01:…`) live there. Their veth peers (`nic1x`..,
//! `rtrx`) live in a second, named namespace: the outside world, where raw
//! frames are injected and captured with AF_PACKET (the receiving kernel
//! hands the outer tag over in PACKET_AUXDATA; the socket puts it back, so the
//! assertions see what was on the wire).
//!
//! Every test runs in skb and in native mode. Native: a native XDP_REDIRECT
//! into a veth only delivers when the receiving peer has an XDP program or GRO
//! enabled, so the outside peers get `ethtool -K PEER gro on` (what a real
//! stack behind a veth would do).

mod support;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use support::{
    in_fresh_netns,
    packet::{ETHERTYPE_TEST, RawSocket, frame, tagged},
    run,
    world::World,
};

const WAIT: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(300);
const ROUTER_MAC: &str = "02:01:00:00:00:0a";
const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];

/// Runs `$body(mode)` as two tests, `skb` and `native`.
macro_rules! both_modes {
    ($name:ident, $body:expr) => {
        mod $name {
            #[test]
            fn skb() {
                $body("skb")
            }
            #[test]
            fn native() {
                $body("native")
            }
        }
    };
}

/// The order in which the net-vm's interfaces get their programs.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    NicsFirst,
    RouterFirst,
}

/// The VID of `nic{k}`: 10, 20, ...
fn vid(k: usize) -> u16 {
    10 * k as u16
}

/// An empty net-vm for `mode`: in native mode the outside peers plugged
/// later must take native redirects ([`plug`]).
fn world(tag: &str, mode: &str) -> World {
    World::new(&format!("{tag}-{mode}"))
}

/// Plugs `name` (the router `rtr` with [`ROUTER_MAC`]); in native mode its
/// peer gets GRO on.
fn plug(w: World, mode: &str, name: &str) -> World {
    let w = if name == "rtr" {
        w.router(name, ROUTER_MAC)
    } else {
        w.nic(name)
    };
    if mode == "native" {
        w.gro_on(&[&format!("{name}x")])
    } else {
        w
    }
}

/// `nic{k}` attached with [`vid`]`(k)` in `mode`.
fn attach_nic(w: &World, mode: &str, k: usize) {
    let vid = vid(k).to_string();
    w.attach(
        &format!("nic{k}"),
        "physical",
        &["--vid", &vid, "--mode", mode],
    );
}

/// A net-vm with NICs `nic1..=nicN` (VIDs 10, 20, ...) and the router
/// interface `rtr`, their links at `mtu`, attached in `mode` in `order`.
fn net_vm(tag: &str, mode: &str, nics: usize, order: Order, mtu: Option<u32>) -> World {
    let mut w = world(tag, mode);
    let mut names: Vec<String> = (1..=nics).map(|k| format!("nic{k}")).collect();
    names.push("rtr".to_owned());
    for name in &names {
        w = plug(w, mode, name);
        if let Some(mtu) = mtu {
            w.set_mtu(name, mtu);
        }
    }
    if order == Order::RouterFirst {
        w.attach("rtr", "router", &["--mode", mode]);
    }
    for k in 1..=nics {
        attach_nic(&w, mode, k);
    }
    if order == Order::NicsFirst {
        w.attach("rtr", "router", &["--mode", mode]);
    }
    w
}

/// A test frame to `dst` carrying `id` in its payload.
fn test_frame(dst: [u8; 6], id: u32, len: usize) -> Vec<u8> {
    let mut rest = ETHERTYPE_TEST.to_be_bytes().to_vec();
    rest.extend_from_slice(&id.to_be_bytes());
    frame(dst, SRC, &rest, len)
}

/// The id of a frame built by [`test_frame`], after `tags` tags.
fn frame_id(f: &[u8], tags: usize) -> u32 {
    let at = 14 + 4 * tags;
    u32::from_be_bytes(f[at..at + 4].try_into().unwrap())
}

fn frames_cross(mode: &'static str) {
    in_fresh_netns(|| {
        let vm = net_vm("cross", mode, 2, Order::NicsFirst, None);
        let nics = [vm.socket("nic1x"), vm.socket("nic2x")];
        let r = vm.socket("rtrx");
        let broadcast = [0xff; 6];
        let multicast = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];

        // 1. NIC K → router: exactly one added tag with NIC K's VID, payload
        //    intact — unicast, broadcast, multicast, smallest and full size.
        for (k, sock) in nics.iter().enumerate() {
            for (dst, len) in [(DST, 60), (broadcast, 60), (multicast, 100), (DST, 1514)] {
                let f = test_frame(dst, k as u32, len);
                sock.send(&f);
                assert_eq!(
                    r.recv(WAIT),
                    Some(tagged(&f, 0x8100, vid(k + 1))),
                    "{mode}: NIC {k} → router, dst {dst:02x?}, {len} bytes"
                );
            }
        }
        // 2. Router → NIC K: tag removed, on NIC K only.
        for (k, sock) in nics.iter().enumerate() {
            for (dst, len) in [(DST, 60), (broadcast, 60), (multicast, 100), (DST, 1514)] {
                let f = test_frame(dst, k as u32, len);
                r.send(&tagged(&f, 0x8100, vid(k + 1)));
                assert_eq!(
                    sock.recv(WAIT),
                    Some(f),
                    "{mode}: router → NIC {k}, dst {dst:02x?}, {len} bytes"
                );
                assert!(
                    nics[1 - k].drain(QUIET / 6).is_empty(),
                    "{mode}: leaked to the other NIC"
                );
            }
        }
        // 5. Already-tagged frames from outside (802.1Q and 802.1ad) keep
        //    their tag inside ours, and come back out unchanged.
        for tpid in [0x8100, 0x88a8] {
            let inner = tagged(&test_frame(DST, 5, 100), tpid, 300);
            nics[0].send(&inner);
            let out = r.recv(WAIT);
            assert_eq!(
                out,
                Some(tagged(&inner, 0x8100, vid(1))),
                "{mode}: {tpid:#x} out"
            );
            r.send(&out.unwrap());
            assert_eq!(nics[0].recv(WAIT), Some(inner), "{mode}: {tpid:#x} back");
        }
        for sock in nics.iter().chain([&r]) {
            assert!(sock.drain(QUIET).is_empty(), "{mode}: stray frames");
        }
        let c = vm.counters("nic1");
        assert_eq!(c["forwarded_frames"], 6, "{mode}: {c}");
        assert_eq!(c["dropped_total"], 0, "{mode}: {c}");
        assert_eq!(vm.counters("rtr")["forwarded_frames"], 10, "{mode}");
    });
}
both_modes!(frames_cross_both_ways, super::frames_cross);

/// 3. Three NICs at once, interleaved: no frame crosses to the wrong NIC.
fn interleaved(mode: &'static str) {
    in_fresh_netns(|| {
        let vm = net_vm("interleave", mode, 3, Order::NicsFirst, None);
        let nics: Vec<RawSocket> = (1..=3)
            .map(|k| vm.socket(&format!("nic{k}x")).with_big_buffer())
            .collect();
        let r = vm.socket("rtrx").with_big_buffer();
        const ROUNDS: u32 = 200;
        for i in 0..ROUNDS {
            for (k, sock) in nics.iter().enumerate() {
                sock.send(&test_frame(DST, k as u32, 64 + i as usize));
            }
        }
        let mut seen = [0u32; 3];
        while let Some(f) = r.recv(WAIT) {
            let k = frame_id(&f, 1) as usize;
            assert_eq!(
                u16::from_be_bytes([f[14], f[15]]),
                vid(k + 1),
                "{mode}: frame of NIC {k} carries another VID"
            );
            assert_eq!(
                f.len(),
                64 + 4 + seen[k] as usize,
                "{mode}: order or payload"
            );
            seen[k] += 1;
            if seen.iter().sum::<u32>() == 3 * ROUNDS {
                break;
            }
        }
        assert_eq!(seen, [ROUNDS; 3], "{mode}: towards the router");

        for i in 0..ROUNDS {
            for k in 0..3 {
                r.send(&tagged(
                    &test_frame(DST, k as u32, 64 + i as usize),
                    0x8100,
                    vid(k + 1),
                ));
            }
        }
        for (k, sock) in nics.iter().enumerate() {
            let got = sock.drain(QUIET * 2);
            assert_eq!(got.len(), ROUNDS as usize, "{mode}: NIC {k}");
            assert!(
                got.iter().all(|f| frame_id(f, 0) == k as u32),
                "{mode}: NIC {k} got another NIC's frame"
            );
        }
    });
}
both_modes!(three_nics_interleaved, super::interleaved);

/// 4. Every VID from the router: only the owner's NIC gets it; nothing
///    reaches any interface of the net-vm (taps on `lo`, `rtr`, the NICs);
///    the counters account for every dropped frame.
fn every_vid(mode: &'static str) {
    in_fresh_netns(|| {
        let vm = net_vm("everyvid", mode, 2, Order::NicsFirst, None);
        let vids = [vid(1), vid(2)];
        let nics = [
            vm.socket("nic1x").with_big_buffer(),
            vm.socket("nic2x").with_big_buffer(),
        ];
        let r = vm.socket("rtrx").with_big_buffer();
        let taps: Vec<(&str, RawSocket)> = ["lo", "rtr", "nic1", "nic2"]
            .into_iter()
            .map(|i| (i, RawSocket::bind(i).with_big_buffer()))
            .collect();
        let mut sent = 0u32;
        let mut expected: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        let mut send = |vid: u16, pcp: u16, dei: u16| {
            let f = test_frame(DST, sent, 60);
            r.send(&tagged(&f, 0x8100, pcp << 13 | dei << 12 | vid));
            if let Some(k) = vids.iter().position(|v| *v == vid) {
                expected.entry(k).or_default().push(f);
            }
            sent += 1;
            // Pace: the veth rings hold a few hundred frames.
            if sent.is_multiple_of(64) {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        for vid in 0..=4095u16 {
            // A sample of PCP/DEI on every VID, every combination on the owned ones.
            send(vid, vid % 8, (vid / 8) % 2);
        }
        for &vid in &vids {
            for pcp in 0..8 {
                for dei in 0..2 {
                    send(vid, pcp, dei);
                }
            }
        }
        for (k, sock) in nics.iter().enumerate() {
            let got = sock.drain(QUIET * 2);
            assert_eq!(
                got, expected[&k],
                "{mode}: NIC {k} gets exactly its VID's frames"
            );
        }
        for (iface, tap) in &taps {
            assert!(
                tap.drain(Duration::ZERO).is_empty(),
                "{mode}: a frame reached {iface} in the net-vm"
            );
        }
        assert!(
            r.drain(Duration::ZERO).is_empty(),
            "{mode}: echoed to the router"
        );
        let c = vm.counters("rtr");
        let forwarded: usize = expected.values().map(Vec::len).sum();
        assert_eq!(c["forwarded_frames"], forwarded as u64, "{mode}: {c}");
        assert_eq!(
            c["dropped"]["reserved_vid"], 2,
            "{mode}: VIDs 0 and 4095: {c}"
        );
        assert_eq!(
            c["dropped"]["unknown_vid"],
            u64::from(sent) - forwarded as u64 - 2,
            "{mode}: {c}"
        );
        assert_eq!(c["dropped_total"], u64::from(sent) - forwarded as u64);
    });
}
both_modes!(every_vid_reaches_only_its_owner, super::every_vid);

/// 6. Full-size frames with default MTUs, jumbo frames with jumbo MTUs, and a
///    router MTU too small for the NICs: reported by `status`.
fn mtus(mode: &'static str) {
    in_fresh_netns(|| {
        // Native XDP on veth is single-buffer: no MTU above ~3.5 kB.
        let jumbo: u32 = if mode == "native" { 3000 } else { 9000 };
        let vm = net_vm("mtu", mode, 1, Order::NicsFirst, Some(jumbo));
        let (nic, r) = (
            vm.socket("nic1x").with_big_buffer(),
            vm.socket("rtrx").with_big_buffer(),
        );
        let len = jumbo as usize + 14;
        let f = test_frame(DST, 1, len);
        nic.send(&f);
        assert_eq!(
            r.recv(WAIT),
            Some(tagged(&f, 0x8100, 10)),
            "{mode}: {len} out"
        );
        r.send(&tagged(&f, 0x8100, 10));
        assert_eq!(nic.recv(WAIT), Some(f), "{mode}: {len} back");
        let status = vm.status();
        assert!(
            status["ports"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["warnings"].as_array().unwrap().is_empty()),
            "{mode}: {status}"
        );

        // Router MTU below the NIC's: full-size frames cannot cross; status says so.
        run("ip", &["link", "set", "rtr", "mtu", "1400"]);
        let text = vm.cli_ok(&["status"]);
        assert!(
            text.contains(&format!(
                "warning: router MTU 1400 < this NIC's MTU {jumbo}"
            )),
            "{mode}: {text}"
        );
        let f = test_frame(DST, 2, 1400 + 14 + 100);
        nic.send(&f);
        assert_eq!(
            r.recv(QUIET),
            None,
            "{mode}: a frame over the router MTU crossed"
        );
    });
}
both_modes!(mtu_full_size_jumbo_and_too_small, super::mtus);

/// A default-MTU test: 1500-byte payloads in a net-vm with default MTUs.
fn full_size_default_mtu(mode: &'static str) {
    in_fresh_netns(|| {
        let vm = net_vm("fullsize", mode, 1, Order::NicsFirst, None);
        let (nic, r) = (vm.socket("nic1x"), vm.socket("rtrx"));
        let f = test_frame(DST, 1, 1514);
        nic.send(&f);
        assert_eq!(r.recv(WAIT), Some(tagged(&f, 0x8100, 10)), "{mode}");
        r.send(&tagged(&f, 0x8100, 10));
        assert_eq!(nic.recv(WAIT), Some(f), "{mode}");
    });
}
both_modes!(
    full_size_frames_with_default_mtus,
    super::full_size_default_mtu
);

/// Sends `count` frames made by `make(i)` on `tx` while a thread counts
/// what `rx` receives (checked by `check`), in windows so that no ring
/// overflows; returns how many arrived.
fn stream(
    tx: &RawSocket,
    rx: RawSocket,
    count: u32,
    make: impl Fn(u32) -> Vec<u8>,
    check: impl Fn(u32, &[u8]) -> bool + Send + 'static,
) -> usize {
    let received = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counter = {
        let (received, bad, done) = (received.clone(), bad.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(f) = rx.recv(Duration::from_millis(50)) {
                    let i = received.fetch_add(1, Ordering::Relaxed) as u32;
                    if !check(i, &f) {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    const WINDOW: u32 = 128;
    let mut sent = 0;
    while sent < count {
        for _ in 0..WINDOW.min(count - sent) {
            tx.send(&make(sent));
            sent += 1;
        }
        let deadline = Instant::now() + WAIT;
        while received.load(Ordering::Relaxed) < sent as usize && Instant::now() < deadline {
            std::thread::yield_now();
        }
        if received.load(Ordering::Relaxed) < sent as usize {
            break; // lost frames: stop, the caller reports the counts
        }
    }
    std::thread::sleep(QUIET);
    done.store(true, Ordering::Relaxed);
    counter.join().unwrap();
    assert_eq!(bad.load(Ordering::Relaxed), 0, "frames arrived altered");
    received.load(Ordering::Relaxed)
}

/// 8. 100,000 frames each way: delivered == sent, in order, intact.
fn hundred_thousand(mode: &'static str) {
    in_fresh_netns(|| {
        const N: u32 = 100_000;
        let vm = net_vm("bulk", mode, 1, Order::NicsFirst, None);
        let (nic_tx, r_tx) = (vm.socket("nic1x"), vm.socket("rtrx"));
        let (nic_rx, r_rx) = (
            vm.socket("nic1x").with_big_buffer(),
            vm.socket("rtrx").with_big_buffer(),
        );
        let got = stream(
            &nic_tx,
            r_rx,
            N,
            |i| test_frame(DST, i, 64),
            |i, f| f.len() == 68 && f[14..16] == [0, 10] && frame_id(f, 1) == i,
        );
        assert_eq!(got, N as usize, "{mode}: NIC → router");
        let got = stream(
            &r_tx,
            nic_rx,
            N,
            |i| tagged(&test_frame(DST, i, 64), 0x8100, 10),
            |i, f| f.len() == 64 && frame_id(f, 0) == i,
        );
        assert_eq!(got, N as usize, "{mode}: router → NIC");
        assert_eq!(vm.counters("nic1")["forwarded_frames"], u64::from(N));
        assert_eq!(vm.counters("rtr")["forwarded_frames"], u64::from(N));
    });
}
both_modes!(hundred_thousand_frames_each_way, super::hundred_thousand);

/// 9. The net-vm integration path in both orders: traffic flows once both
///    the NICs and the router interface exist; before the router, NIC frames
///    are dropped and counted as such.
fn orders(mode: &'static str) {
    for order in [Order::NicsFirst, Order::RouterFirst] {
        in_fresh_netns(|| {
            let vm = net_vm("order", mode, 2, order, None);
            let r = vm.socket("rtrx");
            for k in 1..=2 {
                let nic = vm.socket(&format!("nic{k}x"));
                let f = test_frame(DST, k, 80);
                nic.send(&f);
                assert_eq!(r.recv(WAIT), Some(tagged(&f, 0x8100, vid(k as usize))));
                r.send(&tagged(&f, 0x8100, vid(k as usize)));
                assert_eq!(nic.recv(WAIT), Some(f));
            }
        });
    }
    // NICs without a router yet: a clean, counted drop.
    in_fresh_netns(|| {
        let vm = plug(world("norouter", mode), mode, "nic1");
        attach_nic(&vm, mode, 1);
        let nic = vm.socket("nic1x");
        nic.send(&test_frame(DST, 1, 60));
        std::thread::sleep(QUIET);
        assert_eq!(vm.counters("nic1")["dropped"]["no_router"], 1, "{mode}");
        let vm = plug(vm, mode, "rtr").attached("rtr", "router", &["--mode", mode]);
        let r = vm.socket("rtrx");
        let f = test_frame(DST, 2, 60);
        nic.send(&f);
        assert_eq!(r.recv(WAIT), Some(tagged(&f, 0x8100, 10)), "{mode}");
    });
}
both_modes!(router_before_or_after_the_nics, super::orders);

/// The exported objects, loaded by Debian 12's xdp-loader (libbpf 1.1, so
/// the `--libbpf-1.1` export) exactly like the originals, share
/// `router_iface` with each other and with our CLI, and forward with the
/// original's VID = ifindex convention. (lab/tests/hook.rs runs the
/// original hook on a fresh bpffs with libbpf 1.6 and the default export.)
#[test]
fn exported_objects_work_under_xdp_loader() {
    in_fresh_netns(|| {
        let w = World::new("compat")
            .nic("nicA")
            .nic("nicB")
            .nic("rtr")
            .nic("nicC");
        let p = w.pins.arg();
        let objs = std::env::temp_dir().join(format!("xdpfwd-compat-objs-{}", std::process::id()));
        w.cli_ok(&["export-objects", objs.to_str().unwrap(), "--libbpf-1.1"]);
        let phys = objs.join("prog_physical.o");
        let router = objs.join("prog_router.o");
        let (nic_a, nic_b) = (support::ifindex("nicA"), support::ifindex("nicB"));
        // Our CLI attaches one NIC (managed); xdp-loader the rest (drop-in):
        // all of them must reuse the one pinned router_iface.
        w.attach("nicC", "physical", &["--vid", "99", "--mode", "skb"]);
        for (iface, obj) in [("nicA", &phys), ("nicB", &phys), ("rtr", &router)] {
            run(
                "xdp-loader",
                &["load", iface, obj.to_str().unwrap(), "-m", "skb", "-p", p],
            );
        }
        support::run(
            support::set_router_iface_bin().to_str().unwrap(),
            &["rtr", "--pin-dir", p],
        );

        let (a, c, r) = (w.socket("nicAx"), w.socket("nicCx"), w.socket("rtrx"));
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
        // VID 1 names ifindex 1: lo, which must never get a frame.
        let lo = RawSocket::bind("lo");
        r.send(&tagged(&f, 0x8100, 1));
        assert!(lo.drain(QUIET).is_empty(), "never to lo");
        let _ = nic_b;

        for iface in ["nicA", "nicB", "rtr"] {
            run("xdp-loader", &["unload", iface, "--all"]);
        }
        w.cli_ok(&["detach", "--all"]);
        std::fs::remove_dir_all(&objs).unwrap();
    });
}
