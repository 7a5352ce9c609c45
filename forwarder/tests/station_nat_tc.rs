//! Golden frames for `prog_station_nat_tc` (ebpf/src/bin/prog_station_nat_tc.rs),
//! the Wi-Fi station translation on the tc path, under BPF_PROG_TEST_RUN: the
//! kernel's verifier takes both programs, and what they make of each frame is
//! exactly what the shared logic makes of it on the host (common's
//! station_nat, `Checksums::Complete`), checksums recomputed from scratch;
//! the table the first program fills is the one the second reads.

#[path = "../../common/tests/checksums/mod.rs"]
mod checksums;

use aya::{
    Ebpf, EbpfLoader, include_bytes_aligned,
    maps::{HashMap, MapData, PerCpuArray},
    programs::{SchedClassifier, TestRun as _, TestRunOptions},
};
use xdp_forwarder_common::{
    BufFrame,
    station_nat::{Checksums, ToAir, ToRouter, toward_air, toward_router},
};

static OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_station_nat_tc"));

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;

const STATION: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const VM: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const OUTSIDE: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const VM_LL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 2];
const ROUTER_LL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const VM_IP: [u8; 4] = [192, 0, 2, 10];
const GATEWAY: [u8; 4] = [192, 0, 2, 1];

/// Count slots of `fwd_station_nat_counts` (see the program's doc).
const SLOT_TO_AIR: u32 = 0;
const SLOT_BAD_NDP_OPTION: u32 = 4;
const SLOT_STATION_PROTOCOL: u32 = 6;
const SLOT_TO_ROUTER: u32 = 7;
const SLOT_UNCHANGED: u32 = 8;
const SLOT_EAPOL: u32 = 9;
const SLOT_NO_OWNER: u32 = 11;
const SLOT_NEW_ENTRY: u32 = 12;

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

struct Programs {
    ebpf: Ebpf,
}

impl Programs {
    fn load() -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "BPF_PROG_TEST_RUN needs root"
        );
        let mut ebpf = EbpfLoader::new()
            .override_global("STATION_MAC", &STATION, true)
            .load(OBJECT)
            .unwrap_or_else(|e| panic!("load prog_station_nat_tc: {e}"));
        for name in ["station_nat_to_air", "station_nat_to_router"] {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .unwrap_or_else(|| panic!("{name} in its object"))
                .try_into()
                .expect("a classifier");
            prog.load()
                .unwrap_or_else(|e| panic!("the verifier refused {name}: {e}"));
        }
        Self { ebpf }
    }

    /// One run of `name` on `frame`: (return value, frame out).
    fn run(&self, name: &str, frame: &[u8]) -> (u32, Vec<u8>) {
        let prog: &SchedClassifier = self.ebpf.program(name).unwrap().try_into().unwrap();
        let mut out = vec![0u8; frame.len() + 256];
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::new()
            })
            .unwrap_or_else(|e| panic!("test run of {name}: {e}"));
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    }

    fn count(&self, slot: u32) -> u64 {
        let counts: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map("fwd_station_nat_counts").unwrap()).unwrap();
        counts.get(&slot, 0).unwrap().iter().sum()
    }

    fn table(&self) -> Vec<([u8; 16], [u8; 8])> {
        let table: HashMap<&MapData, [u8; 16], [u8; 8]> =
            HashMap::try_from(self.ebpf.map("fwd_station_nat").unwrap()).unwrap();
        let mut entries: Vec<_> = table.iter().map(Result::unwrap).collect();
        entries.sort();
        entries
    }
}

/// What the shared logic makes of `frame` on the host.
fn on_host_to_air(frame: &[u8]) -> (Vec<u8>, ToAir) {
    let mut buf = frame.to_vec();
    let mut f = BufFrame::new(&mut buf, 0);
    let verdict = toward_air(&mut f, STATION, Checksums::Complete);
    (f.bytes().to_vec(), verdict)
}

#[test]
fn the_tc_program_translates_toward_the_ap_as_the_shared_logic_does() {
    let progs = Programs::load();
    let frames = [
        ("neighbour solicitation", neighbour_solicitation()),
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
        let (verdict, out) = progs.run("station_nat_to_air", frame);
        let (expected, host) = on_host_to_air(frame);
        assert!(matches!(host, ToAir::Translated { .. }), "{what}: {host:?}");
        assert_eq!(verdict, TC_ACT_OK, "{what}");
        assert_eq!(out, expected, "{what}: the kernel's output");
        assert_eq!(&out[6..12], &STATION, "{what}");
        assert_ne!(checksums::checksums_valid(&out), Some(false), "{what}");
    }
    assert_eq!(progs.count(SLOT_TO_AIR), 3);
    // Learned: the NS's source and the ARP sender (the DHCP client has no
    // address yet).
    let mapped = |ip: [u8; 4]| {
        let mut key = [0u8; 16];
        key[10..12].copy_from_slice(&[0xff, 0xff]);
        key[12..].copy_from_slice(&ip);
        key
    };
    let vm = [VM[0], VM[1], VM[2], VM[3], VM[4], VM[5], 0, 0];
    let mut expected = vec![(mapped(VM_IP), vm), (VM_LL, vm)];
    expected.sort();
    assert_eq!(progs.table(), expected);
    assert_eq!(progs.count(SLOT_NEW_ENTRY), 2);

    // Malformed or the station's own: shot, counted.
    let mut bad = neighbour_solicitation();
    let opt = 14 + 40 + 24;
    bad[opt + 1] = 0;
    assert_eq!(progs.run("station_nat_to_air", &bad).0, TC_ACT_SHOT);
    assert_eq!(progs.count(SLOT_BAD_NDP_OPTION), 1);
    let eapol = eth(OUTSIDE, VM, 0x888e, &[2, 1, 0, 0, 0, 0]);
    assert_eq!(progs.run("station_nat_to_air", &eapol).0, TC_ACT_SHOT);
    assert_eq!(progs.count(SLOT_STATION_PROTOCOL), 1);
}

#[test]
fn the_tc_program_gives_replies_the_mac_it_learned() {
    let progs = Programs::load();
    // Learn the VM's addresses on the way out.
    progs.run("station_nat_to_air", &neighbour_solicitation());
    progs.run(
        "station_nat_to_air",
        &eth([0xff; 6], VM, 0x0806, &arp(1, VM, VM_IP, [0; 6], GATEWAY)),
    );

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
    let table = |ip: &xdp_forwarder_common::station_nat::IpKey| {
        let known = ip.0 == VM_LL || ip.0[12..] == VM_IP;
        known.then_some(VM)
    };
    for (what, frame) in &replies {
        let (verdict, out) = progs.run("station_nat_to_router", frame);
        let mut expected = frame.clone();
        let host = toward_router(&mut BufFrame::new(&mut expected, 0), STATION, table);
        assert_eq!(host, ToRouter::Translated { mac: VM }, "{what}");
        assert_eq!(verdict, TC_ACT_OK, "{what}");
        assert_eq!(out, expected, "{what}: the kernel's output");
        assert_eq!(&out[..6], &VM, "{what}");
    }
    assert_eq!(progs.count(SLOT_TO_ROUTER), 2);

    // EAPOL, an address nobody behind the router owns, broadcast: unchanged.
    let others = [
        (eth(STATION, OUTSIDE, 0x888e, &[2, 3, 0, 0x5f]), SLOT_EAPOL),
        (
            eth(
                STATION,
                OUTSIDE,
                0x0806,
                &arp(1, OUTSIDE, GATEWAY, [0; 6], [192, 0, 2, 99]),
            ),
            SLOT_NO_OWNER,
        ),
        (
            eth(
                [0xff; 6],
                OUTSIDE,
                0x0806,
                &arp(1, OUTSIDE, GATEWAY, [0; 6], VM_IP),
            ),
            SLOT_UNCHANGED,
        ),
    ];
    for (frame, slot) in others {
        assert_eq!(
            progs.run("station_nat_to_router", &frame),
            (TC_ACT_OK, frame.clone())
        );
        assert_eq!(progs.count(slot), 1, "slot {slot}");
    }
}
