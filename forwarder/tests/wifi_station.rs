//! Issue 26: a Wi-Fi station as a port. First the tc programs the
//! forwarder attaches (`prog_router_tc`, `prog_physical_tc`: ebpf/src/tc.rs
//! and station.rs) under BPF_PROG_TEST_RUN: the kernel's verifier takes
//! them, and what they make of each frame for or from a station is exactly
//! what the shared logic makes of it on the host (common's station_nat,
//! `Checksums::Complete`), checksums recomputed from scratch; an Ethernet
//! port's frames are untouched. Then the product on veth in namespaces:
//! `attach --kind wifi`, the rewrites on real frames both ways, the
//! station's own frames kept, the table and counters in `status`, a MAC
//! change followed, and the modes a station refuses.

#[path = "../../common/tests/checksums/mod.rs"]
mod checksums;
mod support;

use std::time::{Duration, Instant};

use aya::{
    Ebpf, EbpfLoader, include_bytes_aligned,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues},
    programs::{SchedClassifier, TestRun as _, TestRunOptions},
};
use xdp_forwarder_common::{
    BufFrame, DropReason, PortCounters,
    maps::TcTarget,
    station_nat::{Checksums, IpKey, ToAir, ToRouter, toward_air, toward_router},
    station_table::{NatEntry, NatKey, StationCounters, StationSlot},
};

use support::{in_fresh_netns, packet::RawSocket, port, world::World};

static ROUTER_TC: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_router_tc"));
static PHYSICAL_TC: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_physical_tc"));

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

/// The station's port and an Ethernet port.
const VID: u16 = 7;
const ETHERNET_VID: u16 = 8;
const STATION: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const VM: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const OUTSIDE: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const VM_LL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 2];
const ROUTER_LL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const VM_IP: [u8; 4] = [192, 0, 2, 10];
const GATEWAY: [u8; 4] = [192, 0, 2, 1];

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = [dst, src].concat();
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    checksums::seal(&mut f);
    f
}

/// An NS from the VM for the router, with its source link-layer option.
fn neighbour_solicitation() -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0, 0, 32, 58, 255];
    ip.extend_from_slice(&VM_LL);
    ip.extend_from_slice(&ROUTER_LL);
    ip.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    ip.extend_from_slice(&ROUTER_LL);
    ip.extend_from_slice(&[1, 1]);
    ip.extend_from_slice(&VM);
    eth([0x33, 0x33, 0xff, 0, 0, 1], VM, 0x86dd, &ip)
}

/// A DHCPDISCOVER from the VM, UDP checksum on.
fn dhcp_discover() -> Vec<u8> {
    let mut bootp = vec![1, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0];
    bootp.extend_from_slice(&[0; 16]);
    bootp.extend_from_slice(&VM);
    bootp.extend_from_slice(&[0; 10 + 64 + 128]);
    bootp.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 255]);
    let udp_len = 8 + bootp.len();
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]);
    ip.extend_from_slice(&[0, 68, 0, 67]);
    ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
    ip.extend_from_slice(&[0xff, 0xff]); // non-zero: seal computes it
    ip.extend_from_slice(&bootp);
    eth([0xff; 6], VM, 0x0800, &ip)
}

fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    for part in [&sha[..], &spa, &tha, &tpa] {
        a.extend_from_slice(part);
    }
    a
}

/// A tc program loaded as our loader would (managed), with private maps
/// the test fills: `fwd_tc_targets` leads every VID (and the router, slot
/// 0) to `lo`, which takes any redirect under BPF_PROG_TEST_RUN;
/// `fwd_stations[VID]` holds the station's MAC.
struct Program {
    ebpf: Ebpf,
    name: &'static str,
}

impl Program {
    fn router() -> Self {
        Self::load(ROUTER_TC, "router", 0, 0)
    }

    fn physical(vid: u16, station: bool) -> Self {
        Self::load(PHYSICAL_TC, "physical", u32::from(vid), u8::from(station))
    }

    fn load(object: &[u8], name: &'static str, vid: u32, station: u8) -> Self {
        support::require_root();
        let mut ebpf = EbpfLoader::new()
            .override_global("MANAGED", &1u8, true)
            .override_global("PORT_VID", &vid, true)
            .override_global("PORT_STATION", &station, true)
            .load(object)
            .unwrap_or_else(|e| panic!("load {name}: {e}"));
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .unwrap_or_else(|| panic!("{name} in its object"))
            .try_into()
            .expect("a classifier");
        prog.load()
            .unwrap_or_else(|e| panic!("the verifier refused {name}: {e}"));
        let mut targets: Array<&mut MapData, u32> =
            Array::try_from(ebpf.map_mut("fwd_tc_targets").unwrap()).unwrap();
        for (slot, station) in [(0, false), (VID, true), (ETHERNET_VID, false)] {
            targets
                .set(u32::from(slot), TcTarget::new(1, station).raw(), 0)
                .unwrap();
        }
        // The Ethernet VID's slot too, as a port left it that was a station
        // once: the target's station bit decides, not this slot.
        let mut stations: Array<&mut MapData, StationSlot> =
            Array::try_from(ebpf.map_mut("fwd_stations").unwrap()).unwrap();
        for vid in [VID, ETHERNET_VID] {
            stations
                .set(u32::from(vid), StationSlot::station(STATION, 0), 0)
                .unwrap();
        }
        // The station's counters, as attach makes them.
        let mut counts: PerCpuHashMap<&mut MapData, u32, StationCounters> =
            PerCpuHashMap::try_from(ebpf.map_mut("fwd_station_counts").unwrap()).unwrap();
        let cpus = aya::util::nr_cpus().unwrap();
        let zeroes = PerCpuValues::try_from(vec![StationCounters::default(); cpus]).unwrap();
        counts.insert(u32::from(VID), zeroes, 0).unwrap();
        Self { ebpf, name }
    }

    /// One run on `frame`: (return value, frame out).
    fn run(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        let prog: &SchedClassifier = self.ebpf.program(self.name).unwrap().try_into().unwrap();
        let mut out = vec![0u8; frame.len() + 256];
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::new()
            })
            .unwrap_or_else(|e| panic!("test run of {}: {e}", self.name));
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    }

    fn station_counts(&self) -> StationCounters {
        let counts: PerCpuHashMap<&MapData, u32, StationCounters> =
            PerCpuHashMap::try_from(self.ebpf.map("fwd_station_counts").unwrap()).unwrap();
        let Ok(per_cpu) = counts.get(&u32::from(VID), 0) else {
            return StationCounters::default();
        };
        per_cpu.iter().fold(StationCounters::default(), |mut s, c| {
            s.add(c);
            s
        })
    }

    fn counters(&self) -> PortCounters {
        let counts: PerCpuArray<&MapData, PortCounters> =
            PerCpuArray::try_from(self.ebpf.map("fwd_counters").unwrap()).unwrap();
        counts
            .get(&0, 0)
            .unwrap()
            .iter()
            .fold(PortCounters::default(), |mut s, c| {
                s.add(c);
                s
            })
    }

    fn table(&self) -> Vec<(NatKey, NatEntry)> {
        let table: HashMap<&MapData, NatKey, NatEntry> =
            HashMap::try_from(self.ebpf.map("fwd_station_nat").unwrap()).unwrap();
        let mut entries: Vec<_> = table.iter().map(Result::unwrap).collect();
        entries.sort_by_key(|(k, _)| *k);
        entries
    }

    fn learn(&mut self, ip: IpKey, mac: [u8; 6]) {
        let mut table: HashMap<&mut MapData, NatKey, NatEntry> =
            HashMap::try_from(self.ebpf.map_mut("fwd_station_nat").unwrap()).unwrap();
        table
            .insert(
                NatKey::new(u32::from(VID), ip),
                NatEntry::new(mac, now_ns()),
                0,
            )
            .unwrap();
    }
}

/// CLOCK_MONOTONIC_COARSE, the programs' clock.
fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec the call may write.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) },
        0
    );
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// `frame` behind the router's 802.1Q tag of `vid`.
fn tag(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// What the shared logic makes of `frame` on the host.
fn on_host_to_air(frame: &[u8]) -> (Vec<u8>, ToAir) {
    let mut buf = frame.to_vec();
    let mut f = BufFrame::new(&mut buf, 0);
    let verdict = toward_air(&mut f, STATION, Checksums::Complete);
    (f.bytes().to_vec(), verdict)
}

fn mapped(ip: [u8; 4]) -> IpKey {
    IpKey::v4(ip)
}

fn ns_with_options() -> Vec<u8> {
    neighbour_solicitation()
}

#[test]
fn the_router_translates_what_it_sends_into_a_station_as_the_shared_logic_does() {
    let mut router = Program::router();
    let frames = [
        ("neighbour solicitation", ns_with_options()),
        ("dhcp discover", dhcp_discover()),
        (
            "arp request",
            eth([0xff; 6], VM, 0x0806, &arp(1, VM, VM_IP, [0; 6], GATEWAY)),
        ),
    ];
    for (what, frame) in &frames {
        assert_ne!(
            checksums::checksums_valid(frame),
            Some(false),
            "{what}: built right"
        );
        let (verdict, out) = router.run(&tag(frame, VID));
        let (expected, host) = on_host_to_air(frame);
        assert!(matches!(host, ToAir::Translated { .. }), "{what}: {host:?}");
        assert_eq!(verdict, TC_ACT_REDIRECT, "{what}");
        assert_eq!(out, expected, "{what}: the kernel's output, tag popped");
        assert_eq!(&out[6..12], &STATION, "{what}");
        assert_ne!(checksums::checksums_valid(&out), Some(false), "{what}");
    }
    let c = router.station_counts();
    assert_eq!((c.to_air, c.learned), (3, 2), "{c:?}");
    // Learned: the NS's source and the ARP sender (the DHCP client has no
    // address yet), for this port's VID, with the VM's MAC.
    let table = router.table();
    let keys: Vec<IpKey> = table.iter().map(|(k, _)| k.ip).collect();
    let mut want = vec![IpKey::v6(VM_LL), mapped(VM_IP)];
    want.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, want);
    for (k, e) in &table {
        assert_eq!((k.vid, e.vm_mac()), (u32::from(VID), VM));
        assert!(e.fresh(now_ns()), "seen now: {e:?}");
    }
    assert_eq!(router.counters().forwarded_frames, 3);

    // Malformed or the station's own: dropped, counted by reason.
    let mut bad = ns_with_options();
    bad[14 + 40 + 24 + 1] = 0;
    assert_eq!(router.run(&tag(&bad, VID)).0, TC_ACT_SHOT);
    let eapol = eth(OUTSIDE, VM, 0x888e, &[2, 1, 0, 0, 0, 0]);
    assert_eq!(router.run(&tag(&eapol, VID)).0, TC_ACT_SHOT);
    let c = router.counters();
    assert_eq!(c.drops(DropReason::Untranslatable), 1, "{c:?}");
    assert_eq!(c.drops(DropReason::StationProtocol), 1, "{c:?}");
    assert_eq!(c.forwarded_frames, 3);

    // An Ethernet port's frames leave byte for byte as they came.
    for (what, frame) in frames.iter().chain([("eapol", eapol)].iter()) {
        let (verdict, out) = router.run(&tag(frame, ETHERNET_VID));
        assert_eq!(verdict, TC_ACT_REDIRECT, "{what}");
        assert_eq!(&out, frame, "{what}: untouched on Ethernet");
    }
    assert_eq!(router.station_counts().to_air, 3);

    // The station's MAC gone from its slot (emptied by hand): what the
    // router sends there is dropped, never sent with the VM's MAC.
    let mut stations: Array<&mut MapData, StationSlot> =
        Array::try_from(router.ebpf.map_mut("fwd_stations").unwrap()).unwrap();
    stations
        .set(u32::from(VID), StationSlot::default(), 0)
        .unwrap();
    let (verdict, _) = router.run(&tag(&frames[0].1, VID));
    assert_eq!(verdict, TC_ACT_SHOT, "untranslatable without the MAC");
    let c = router.counters();
    assert_eq!(c.drops(DropReason::Untranslatable), 2, "{c:?}");
}

#[test]
fn a_station_port_gives_replies_their_vms_mac_and_keeps_its_own_frames() {
    let mut station = Program::physical(VID, true);
    station.learn(IpKey::v6(VM_LL), VM);
    station.learn(mapped(VM_IP), VM);
    // An entry older than the max age is a miss.
    let stale_ip = [192, 0, 2, 77];
    {
        let mut table: HashMap<&mut MapData, NatKey, NatEntry> =
            HashMap::try_from(station.ebpf.map_mut("fwd_station_nat").unwrap()).unwrap();
        let old = now_ns().saturating_sub(xdp_forwarder_common::station_table::NAT_MAX_AGE_NS + 1);
        table
            .insert(
                NatKey::new(u32::from(VID), mapped(stale_ip)),
                NatEntry::new(VM, old),
                0,
            )
            .unwrap();
    }

    let mut na = vec![0x60, 0, 0, 0, 0, 32, 58, 255];
    na.extend_from_slice(&ROUTER_LL);
    na.extend_from_slice(&VM_LL);
    na.extend_from_slice(&[136, 0, 0, 0, 0x60, 0, 0, 0]);
    na.extend_from_slice(&ROUTER_LL);
    na.extend_from_slice(&[2, 1]);
    na.extend_from_slice(&OUTSIDE);
    let replies = [
        (
            "neighbour advertisement",
            eth(STATION, OUTSIDE, 0x86dd, &na),
        ),
        (
            "arp reply",
            eth(
                STATION,
                OUTSIDE,
                0x0806,
                &arp(2, OUTSIDE, GATEWAY, STATION, VM_IP),
            ),
        ),
    ];
    let table = |ip: &IpKey| (ip.0 == VM_LL || ip.0[12..] == VM_IP).then_some(VM);
    for (what, frame) in &replies {
        let (verdict, out) = station.run(frame);
        let mut expected = frame.clone();
        let host = toward_router(&mut BufFrame::new(&mut expected, 0), STATION, table);
        assert_eq!(host, ToRouter::Translated { mac: VM }, "{what}");
        assert_eq!(verdict, TC_ACT_REDIRECT, "{what}");
        // Under BPF_PROG_TEST_RUN the pushed tag is in the skb's metadata:
        // the frame out is the translated frame.
        assert_eq!(out, expected, "{what}: the kernel's output");
        assert_eq!(&out[..6], &VM, "{what}");
    }
    assert_eq!(station.station_counts().to_router, 2);

    // EAPOL and unicast for no VM (an unknown address, an aged entry):
    // the net-vm's own, passed to its stack unchanged and counted.
    let own = [
        eth(STATION, OUTSIDE, 0x888e, &[2, 3, 0, 0x5f]),
        eth(STATION, OUTSIDE, 0x88c7, &[2, 3, 0, 0x5f]),
        eth(
            STATION,
            OUTSIDE,
            0x0806,
            &arp(1, OUTSIDE, GATEWAY, [0; 6], [192, 0, 2, 99]),
        ),
        eth(
            STATION,
            OUTSIDE,
            0x0806,
            &arp(1, OUTSIDE, GATEWAY, [0; 6], stale_ip),
        ),
    ];
    for frame in &own {
        assert_eq!(station.run(frame), (TC_ACT_OK, frame.clone()));
    }
    let c = station.station_counts();
    assert_eq!((c.eapol, c.rsn_preauth, c.misses), (1, 1, 2), "{c:?}");
    // Broadcast crosses to the router unchanged.
    let who_has = eth(
        [0xff; 6],
        OUTSIDE,
        0x0806,
        &arp(1, OUTSIDE, GATEWAY, [0; 6], VM_IP),
    );
    assert_eq!(station.run(&who_has), (TC_ACT_REDIRECT, who_has.clone()));
    assert_eq!(station.counters().forwarded_frames, 3);

    // The same program on an Ethernet port (PORT_STATION 0): EAPOL and
    // frames for the station's MAC go to the router as they came.
    let ethernet = Program::physical(VID, false);
    for frame in own.iter().chain(replies.iter().map(|(_, f)| f)) {
        assert_eq!(ethernet.run(frame), (TC_ACT_REDIRECT, frame.clone()));
    }
    assert_eq!(ethernet.station_counts(), StationCounters::default());

    // A station whose slot was emptied (no MAC to translate to) still
    // keeps the supplicant's frames; the rest crosses untranslated.
    let mut bare = Program::physical(VID, true);
    let mut slots: Array<&mut MapData, StationSlot> =
        Array::try_from(bare.ebpf.map_mut("fwd_stations").unwrap()).unwrap();
    slots
        .set(u32::from(VID), StationSlot::default(), 0)
        .unwrap();
    assert_eq!(bare.run(&own[0]), (TC_ACT_OK, own[0].clone()));
    assert_eq!(
        bare.run(&replies[1].1),
        (TC_ACT_REDIRECT, replies[1].1.clone())
    );
    assert_eq!(bare.station_counts().eapol, 1);
}

// On veth in namespaces: the forwarder's side here, the "AP" (wl0x) and
// the "router VM" (rt0x) outside.

const ROUTER_MAC: &str = "02:01:00:00:26:01";
const STATION_MAC: &str = "52:54:00:12:34:56";

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The next frame on `sock` that satisfies `want`, within 2 s.
fn wait_frame(sock: &RawSocket, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Some(f) = sock.recv(deadline.saturating_duration_since(Instant::now())) {
        if want(&f) {
            return Some(f);
        }
    }
    None
}

/// A station `wl0` (its peer `wl0x` outside: the AP) and a router `rt0`
/// (its peer `rt0x`: the router VM's trunk), attached by hand, the station
/// with `--kind wifi` and VID [`VID`].
fn station_world(tag: &str) -> World {
    let w = World::new(tag);
    w.plug("wl0", Some(STATION_MAC));
    w.plug("rt0", Some(ROUTER_MAC));
    w.attach("rt0", "router", &[]);
    let vid = VID.to_string();
    let out = w.attach("wl0", "physical", &["--kind", "wifi", "--vid", &vid]);
    assert!(
        out.contains("tc mode") && out.contains("Wi-Fi station"),
        "{out}"
    );
    w
}

/// A station runs tc only (its frames are translated on the tc path), and
/// a router attached with an explicit XDP mode leaves it refused: it would
/// send into the station untranslated.
#[test]
fn a_station_refuses_the_xdp_modes_and_a_router_not_in_tc() {
    in_fresh_netns(|| {
        let w = World::new("wsr");
        w.plug("wl0", Some(STATION_MAC));
        w.plug("rt0", Some(ROUTER_MAC));
        // A station runs tc only; the router's translation needs tc too.
        let err = w.attach_err("wl0", "physical", &["--kind", "wifi", "--mode", "skb"]);
        assert!(
            err.contains("Wi-Fi station") && err.contains("--mode tc"),
            "{err}"
        );
        w.attach("rt0", "router", &["--mode", "skb"]);
        let vid = VID.to_string();
        let err = w.attach_err("wl0", "physical", &["--kind", "wifi", "--vid", &vid]);
        assert!(
            err.contains("untranslated") && err.contains("explicit --mode"),
            "{err}"
        );
        assert!(
            w.status()["ports"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["name"] != "wl0")
        );
        w.cli_ok(&["detach", "rt0"]);
    });
}

#[test]
fn attached_as_a_wifi_station_a_port_translates_both_ways_and_follows_its_mac() {
    in_fresh_netns(|| {
        let w = station_world("wst");
        let (air, trunk) = (w.socket("wl0x"), w.socket("rt0x"));

        // Out: every rewrite, on the wire as the shared logic makes it.
        let frames = [
            ns_with_options(),
            dhcp_discover(),
            eth([0xff; 6], VM, 0x0806, &arp(1, VM, VM_IP, [0; 6], GATEWAY)),
        ];
        for frame in &frames {
            trunk.send(&tag(frame, VID));
            let (expected, _) = on_host_to_air(frame);
            let got = wait_frame(&air, |f| f[12..] == expected[12..]);
            assert_eq!(got.as_deref(), Some(&expected[..]), "out of the station");
        }
        // A VM's EAPOL never reaches the AP.
        trunk.send(&tag(&eth(OUTSIDE, VM, 0x888e, &[2, 1, 0, 0, 0, 0]), VID));
        assert!(wait_frame(&air, |f| f[12..14] == [0x88, 0x8e]).is_none());

        // Back: a reply to the station's MAC reaches the VM's MAC, tagged.
        let reply = eth(
            STATION,
            OUTSIDE,
            0x0806,
            &arp(2, OUTSIDE, GATEWAY, STATION, VM_IP),
        );
        air.send(&reply);
        let got = wait_frame(&trunk, |f| f.len() > 16 && f[16..18] == [0x08, 0x06])
            .expect("the ARP reply reaches the router");
        assert_eq!(&got[..6], &VM);
        assert_eq!(&got[12..16], &[0x81, 0x00, 0, VID as u8]);
        assert_eq!(
            &got[16 + 2 + 18..16 + 2 + 24],
            &VM,
            "target hardware address"
        );
        // The AP's EAPOL stays with the station.
        air.send(&eth(STATION, OUTSIDE, 0x888e, &[2, 3, 0, 0x5f]));
        assert!(wait_frame(&trunk, |f| f.len() > 18 && f[16..18] == [0x88, 0x8e]).is_none());

        let st = w.status();
        let p = port(&st, "wl0");
        assert_eq!(p["kind"], "wifi", "{p}");
        assert_eq!(p["mode"], "tc", "{p}");
        let nat = &p["station_nat"];
        assert_eq!(nat["station_mac"], STATION_MAC, "{nat}");
        assert_eq!(nat["entries"], 2, "{nat}");
        assert_eq!(nat["learned"], 2, "{nat}");
        assert_eq!(nat["eapol"], 1, "{nat}");
        assert_eq!(nat["to_router"], 1, "{nat}");
        let table: Vec<&str> = nat["table"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["address"].as_str().unwrap())
            .collect();
        assert!(
            table.contains(&"192.0.2.10") && table.contains(&"fe80::ff:fe00:2"),
            "{nat}"
        );
        assert!(
            nat["table"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["mac"] == mac_str(VM)),
            "{nat}"
        );
        let rt = port(&st, "rt0");
        assert_eq!(rt["counters"]["dropped"]["station_protocol"], 1, "{rt}");
        assert!(
            st["ports"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["warnings"].as_array().unwrap().is_empty()),
            "{st}"
        );
        let text = w.cli_ok(&["status"]);
        assert!(
            text.contains(&format!("wifi station {STATION_MAC}: table 2 entries")),
            "{text}"
        );
        let metrics = w.cli_ok(&["status", "--format", "openmetrics"]);
        assert!(
            metrics.contains("xdp_forwarder_station_nat_entries{")
                && metrics.contains("kind=\"wifi\""),
            "{metrics}"
        );

        // The station's MAC changes (iwd randomises it per network):
        // `status` says so, `attach` again writes it and flushes the table.
        let new_mac = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc];
        support::run("ip", &["link", "set", "wl0", "address", &mac_str(new_mac)]);
        let st = w.status();
        let warnings = port(&st, "wl0")["warnings"].to_string();
        assert!(warnings.contains("the translation writes"), "{warnings}");
        let out = w.attach("wl0", "physical", &[]);
        assert!(out.contains("station MAC"), "{out}");
        let st = w.status();
        let nat = &port(&st, "wl0")["station_nat"];
        assert_eq!(nat["station_mac"], mac_str(new_mac), "{nat}");
        assert_eq!(nat["entries"], 0, "flushed: {nat}");
        trunk.send(&tag(&frames[2], VID));
        let got = wait_frame(&air, |f| f[12..14] == [0x08, 0x06]).expect("ARP out");
        assert_eq!(&got[6..12], &new_mac);

        // The station's mark gone from its tc target (written by hand as an
        // Ethernet port's): the router would send the VM's MAC out;
        // `attach` puts the mark back.
        let state = w.pins.path().join("xdp-forwarder");
        let targets =
            aya::maps::Map::Array(MapData::from_pin(state.join("fwd_tc_targets")).unwrap());
        let mut targets: Array<MapData, u32> = Array::try_from(targets).unwrap();
        let marked = TcTarget::from_raw(targets.get(&u32::from(VID), 0).unwrap());
        assert!(marked.station(), "{marked:?}");
        targets.set(u32::from(VID), marked.ifindex(), 0).unwrap();
        let out = w.attach("wl0", "physical", &[]);
        assert!(out.contains(&format!("VID {VID} slot")), "{out}");
        assert_eq!(targets.get(&u32::from(VID), 0).unwrap(), marked.raw());

        // Detach: the slot and the table go with the port (the router
        // keeps the state dir).
        trunk.send(&tag(&frames[2], VID));
        assert!(wait_frame(&air, |f| f[12..14] == [0x08, 0x06]).is_some());
        w.cli_ok(&["detach", "wl0"]);
        let slots = aya::maps::Map::Array(MapData::from_pin(state.join("fwd_stations")).unwrap());
        let slots: Array<&MapData, StationSlot> = Array::try_from(&slots).unwrap();
        assert_eq!(
            slots.get(&u32::from(VID), 0).unwrap(),
            StationSlot::default()
        );
        let table =
            aya::maps::Map::LruHashMap(MapData::from_pin(state.join("fwd_station_nat")).unwrap());
        let table: HashMap<&MapData, NatKey, NatEntry> = HashMap::try_from(&table).unwrap();
        assert_eq!(table.keys().count(), 0, "the port's entries are gone");
        let counts = aya::maps::Map::PerCpuHashMap(
            MapData::from_pin(state.join("fwd_station_counts")).unwrap(),
        );
        let counts: PerCpuHashMap<&MapData, u32, StationCounters> =
            PerCpuHashMap::try_from(&counts).unwrap();
        assert_eq!(counts.keys().count(), 0, "and its counters");
        w.cli_ok(&["detach", "rt0"]);
    });
}

/// The daemon keeps a port attached by hand as a Wi-Fi station one (its
/// repairs keep the kind), and follows the station's MAC when it changes
/// (iwd's per-network address): the new MAC is written, the old network's
/// entries flushed, within the convergence bound.
#[test]
fn the_daemon_follows_a_stations_mac_change_and_flushes_its_table() {
    in_fresh_netns(|| {
        let w = station_world("wsd");
        let d = support::daemon::Daemon::start(&w.pins, &[]);
        let vid = w.wait_for(&[("wl0", "physical"), ("rt0", "router")], Some("rt0"))[0].unwrap();
        // A VM's address learned on the way out.
        let (air, trunk) = (w.socket("wl0x"), w.socket("rt0x"));
        let arp_out = eth([0xff; 6], VM, 0x0806, &arp(1, VM, VM_IP, [0; 6], GATEWAY));
        trunk.send(&tag(&arp_out, vid));
        assert!(wait_frame(&air, |f| f[12..14] == [0x08, 0x06]).is_some());
        let nat = |w: &World| port(&w.status(), "wl0")["station_nat"].clone();
        assert_eq!(nat(&w)["entries"], 1, "{}", nat(&w));

        let new_mac = [0x52, 0x54, 0x00, 0x0d, 0xae, 0x01];
        support::run("ip", &["link", "set", "wl0", "address", &mac_str(new_mac)]);
        let changed = Instant::now();
        loop {
            let n = nat(&w);
            if n["station_mac"] == mac_str(new_mac) {
                assert_eq!(n["entries"], 0, "flushed with the new MAC: {n}");
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_secs(2),
                "the daemon did not follow the MAC: {n}\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("station MAC followed after {:?}", changed.elapsed());
        assert_eq!(port(&w.status(), "wl0")["kind"], "wifi");
        trunk.send(&tag(&arp_out, vid));
        let got = wait_frame(&air, |f| f[12..14] == [0x08, 0x06]).expect("ARP out");
        assert_eq!(&got[6..12], &new_mac);
        drop(d);
        w.cli_ok(&["detach", "--all"]);
    });
}
