//! The Wi-Fi station address translation (common/src/station_nat.rs), byte
//! for byte and over generated frames. Every expected frame is built from
//! scratch with the station's MAC, its checksums computed over the whole
//! message: a translated frame equal to it has correct checksums.

mod checksums;

use std::collections::HashMap;

use checksums::{apply_like_the_kernel, checksums_valid, fold, ipv6_pseudo, sum16};
use proptest::prelude::*;
use xdp_forwarder_common::{
    BufFrame,
    station_nat::{
        Checksums, ForStation, IpKey, Learn, Mac, ToAir, ToAirDrop, ToRouter, station_protocol,
        toward_air, toward_router,
    },
};

const STATION: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const VM: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const VM2: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x03];
const OUTSIDE: Mac = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];
const BROADCAST: Mac = [0xff; 6];

const VM_LL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 2];
const VM_GLOBAL: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const ROUTER_LL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const ALL_ROUTERS: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const UNSPECIFIED: [u8; 16] = [0; 16];

// ---------------------------------------------------------------- builders

fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = [dst, src].concat();
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The same frame behind an 802.1Q tag (VID 7).
fn tagged(frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    f.extend_from_slice(&frame[12..]);
    f
}

/// An IPv6 packet carrying ICMPv6 `body` (type, code, 2 bytes of checksum
/// written here, the rest), its checksum computed from scratch.
fn icmpv6(src: [u8; 16], dst: [u8; 16], mut body: Vec<u8>) -> Vec<u8> {
    body[2..4].copy_from_slice(&[0, 0]);
    let c = !fold(sum16(&body, ipv6_pseudo(&src, &dst, body.len(), 58)));
    body[2..4].copy_from_slice(&c.to_be_bytes());
    ipv6(src, dst, 58, &body)
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 255]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// An NDP option: a link-layer address one, or another kind filled with `fill`.
#[derive(Clone, Debug)]
enum Opt {
    Lla { kind: u8 },
    Other { kind: u8, units: u8, fill: u8 },
}

fn ndp_body(ty: u8, target: [u8; 16], options: &[Opt], lla: Mac) -> Vec<u8> {
    let mut b = vec![ty, 0, 0, 0];
    match ty {
        133 => b.extend_from_slice(&[0; 4]),
        134 => b.extend_from_slice(&[64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]),
        135 => {
            b.extend_from_slice(&[0; 4]);
            b.extend_from_slice(&target);
        }
        136 => {
            b.extend_from_slice(&[0x60, 0, 0, 0]);
            b.extend_from_slice(&target);
        }
        137 => {
            b.extend_from_slice(&[0; 4]);
            b.extend_from_slice(&target);
            b.extend_from_slice(&VM_GLOBAL);
        }
        _ => unreachable!(),
    }
    for o in options {
        match *o {
            Opt::Lla { kind } => {
                b.extend_from_slice(&[kind, 1]);
                b.extend_from_slice(&lla);
            }
            Opt::Other { kind, units, fill } => {
                b.extend_from_slice(&[kind, units]);
                b.extend(std::iter::repeat_n(fill, usize::from(units) * 8 - 2));
            }
        }
    }
    b
}

/// A whole NDP frame from `mac`, its link-layer options saying `lla`.
fn ndp(
    mac: Mac,
    lla: Mac,
    ty: u8,
    src: [u8; 16],
    dst: [u8; 16],
    target: [u8; 16],
    options: &[Opt],
) -> Vec<u8> {
    eth(
        ALL_NODES_MAC,
        mac,
        0x86dd,
        &icmpv6(src, dst, ndp_body(ty, target, options, lla)),
    )
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, options: usize, payload: &[u8]) -> Vec<u8> {
    let hlen = 20 + 4 * options;
    let mut h = vec![0x40 | (hlen / 4) as u8, 0];
    h.extend_from_slice(&((hlen + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    // IP options: NOPs, then End of options list.
    h.extend(std::iter::repeat_n(1u8, 4 * options));
    if options > 0 {
        h[hlen - 1] = 0;
    }
    let c = !fold(sum16(&h, 0));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A UDP datagram over IPv4, its checksum from scratch (or zero: none).
fn udp4(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    data: &[u8],
    checksum: bool,
) -> Vec<u8> {
    let len = 8 + data.len();
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    if checksum {
        let mut pseudo = [src, dst].concat();
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(len as u16).to_be_bytes());
        let c = match !fold(sum16(&u, sum16(&pseudo, 0))) {
            0 => 0xffff,
            c => c,
        };
        u[6..8].copy_from_slice(&c.to_be_bytes());
    }
    u
}

/// The first 240 bytes of a BOOTP/DHCP message (+ the magic cookie and an
/// end option).
fn bootp(op: u8, xid: u32, flags: u16, chaddr: Mac) -> Vec<u8> {
    let mut b = vec![op, 1, 6, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0, 0]); // secs
    b.extend_from_slice(&flags.to_be_bytes());
    b.extend_from_slice(&[0; 16]); // ciaddr, yiaddr, siaddr, giaddr
    b.extend_from_slice(&chaddr);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99, 255]);
    b
}

fn dhcp_frame(
    mac: Mac,
    src: [u8; 4],
    op: u8,
    xid: u32,
    flags: u16,
    checksum: bool,
    ip_options: usize,
) -> Vec<u8> {
    let udp = udp4(src, [255; 4], 68, 67, &bootp(op, xid, flags, VM), checksum);
    eth(
        BROADCAST,
        mac,
        0x0800,
        &ipv4(src, [255; 4], 17, ip_options, &udp),
    )
}

fn arp(op: u16, sha: Mac, spa: [u8; 4], tha: Mac, tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa);
    a
}

fn out_with(frame: &[u8], checksums: Checksums) -> (Vec<u8>, ToAir) {
    let mut buf = frame.to_vec();
    let mut f = BufFrame::new(&mut buf, 0);
    let verdict = toward_air(&mut f, STATION, checksums);
    (f.bytes().to_vec(), verdict)
}

fn out(frame: &[u8]) -> (Vec<u8>, ToAir) {
    out_with(frame, Checksums::Complete)
}

fn back(frame: &[u8], table: &HashMap<IpKey, Mac>) -> (Vec<u8>, ToRouter) {
    let mut buf = frame.to_vec();
    let mut f = BufFrame::new(&mut buf, 0);
    let verdict = toward_router(&mut f, STATION, |ip| table.get(ip).copied());
    (f.bytes().to_vec(), verdict)
}

fn learned(ip: IpKey, mac: Mac) -> ToAir {
    ToAir::Translated {
        learn: Some(Learn { ip, mac }),
        checksum: None,
    }
}

/// The frame translated in `Checksums::Report` mode, its fix then applied
/// as the kernel would: must equal the `Complete` translation.
fn out_reported(frame: &[u8]) -> (Vec<u8>, ToAir) {
    let (mut bytes, verdict) = out_with(frame, Checksums::Report);
    if let ToAir::Translated {
        learn,
        checksum: Some(fix),
    } = verdict
    {
        assert_eq!(
            bytes[fix.offset..fix.offset + 2],
            frame[fix.offset..fix.offset + 2],
            "reported, not written"
        );
        apply_like_the_kernel(&mut bytes, fix);
        return (
            bytes,
            ToAir::Translated {
                learn,
                checksum: None,
            },
        );
    }
    (bytes, verdict)
}

// ---------------------------------------------------- classify (from the air)

#[test]
fn eapol_and_preauth_go_to_the_station_also_behind_a_tag() {
    let pae_group = [0x01, 0x80, 0xc2, 0, 0, 3];
    for (ethertype, own) in [
        (0x888e, ForStation::Eapol),
        (0x88c7, ForStation::RsnPreAuth),
    ] {
        for dst in [STATION, pae_group] {
            let plain = eth(dst, OUTSIDE, ethertype, &[2, 3, 0, 0x5f]);
            for frame in [plain.clone(), tagged(&plain)] {
                let mut buf = frame.clone();
                assert_eq!(station_protocol(&mut BufFrame::new(&mut buf, 0)), Some(own));
                // Even for an address a VM owns: the table is never asked.
                let (bytes, verdict) = back(&frame, &HashMap::new());
                assert_eq!(verdict, ToRouter::Station(own), "{frame:02x?}");
                assert_eq!(bytes, frame, "left as it was");
            }
        }
    }
    for ethertype in [0x0800u16, 0x86dd, 0x0806, 0x88b5] {
        let mut buf = eth(STATION, OUTSIDE, ethertype, &[0; 46]);
        assert_eq!(station_protocol(&mut BufFrame::new(&mut buf, 0)), None);
    }
}

// ------------------------------------------------------------- toward the AP

#[test]
fn the_ethernet_source_becomes_the_station_s_and_nothing_else_moves() {
    let udp = ipv6(
        VM_GLOBAL,
        ROUTER_LL,
        17,
        &[0x12, 0x34, 0, 53, 0, 12, 0xab, 0xcd, 1, 2, 3, 4],
    );
    let frame = eth(OUTSIDE, VM, 0x86dd, &udp);
    let (bytes, verdict) = out(&frame);
    assert_eq!(verdict, learned(IpKey::v6(VM_GLOBAL), VM));
    assert_eq!(bytes, eth(OUTSIDE, STATION, 0x86dd, &udp));

    // An EtherType it does not look into: the source only, nothing learned.
    let frame = eth(OUTSIDE, VM, 0x88b5, b"payload");
    let (bytes, verdict) = out(&frame);
    assert_eq!(
        verdict,
        ToAir::Translated {
            learn: None,
            checksum: None
        }
    );
    assert_eq!(bytes, eth(OUTSIDE, STATION, 0x88b5, b"payload"));
}

#[test]
fn ndp_link_layer_options_become_the_station_s_with_the_icmpv6_checksum_fixed() {
    let sll = Opt::Lla { kind: 1 };
    let tll = Opt::Lla { kind: 2 };
    let nonce = Opt::Other {
        kind: 14,
        units: 1,
        fill: 0xa5,
    };
    let prefix = Opt::Other {
        kind: 3,
        units: 4,
        fill: 0x40,
    };
    /// What, ICMPv6 type, source, destination, options.
    type Case = (&'static str, u8, [u8; 16], [u8; 16], Vec<Opt>);
    let cases: [Case; 6] = [
        (
            "router solicitation",
            133,
            VM_LL,
            ALL_ROUTERS,
            vec![sll.clone()],
        ),
        (
            "router advertisement",
            134,
            VM_LL,
            ALL_NODES,
            vec![sll.clone(), prefix],
        ),
        (
            "neighbour solicitation",
            135,
            VM_GLOBAL,
            ROUTER_LL,
            vec![sll.clone(), nonce.clone()],
        ),
        (
            "neighbour advertisement",
            136,
            VM_GLOBAL,
            ROUTER_LL,
            vec![tll.clone()],
        ),
        (
            "redirect",
            137,
            VM_LL,
            ROUTER_LL,
            vec![
                tll.clone(),
                Opt::Other {
                    kind: 4,
                    units: 2,
                    fill: 0,
                },
            ],
        ),
        (
            "both kinds, twice",
            135,
            VM_LL,
            ROUTER_LL,
            vec![nonce, sll.clone(), tll.clone(), sll],
        ),
    ];
    for (what, ty, src, dst, options) in cases {
        let frame = ndp(VM, VM, ty, src, dst, VM_GLOBAL, &options);
        assert_eq!(checksums_valid(&frame), Some(true));
        let (bytes, verdict) = out(&frame);
        assert_eq!(verdict, learned(IpKey::v6(src), VM), "{what}");
        assert_eq!(
            bytes,
            ndp(STATION, STATION, ty, src, dst, VM_GLOBAL, &options),
            "{what}"
        );
        assert_eq!(checksums_valid(&bytes), Some(true), "{what}");

        // The same behind a tag left inside by the router program.
        let (bytes, _) = out(&tagged(&frame));
        assert_eq!(
            bytes,
            tagged(&ndp(STATION, STATION, ty, src, dst, VM_GLOBAL, &options)),
            "{what}"
        );
    }
}

#[test]
fn a_dad_probe_teaches_its_target() {
    let solicited_node = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2];
    let frame = ndp(VM, VM, 135, UNSPECIFIED, solicited_node, VM_GLOBAL, &[]);
    let (bytes, verdict) = out(&frame);
    assert_eq!(verdict, learned(IpKey::v6(VM_GLOBAL), VM));
    assert_eq!(
        bytes,
        ndp(
            STATION,
            STATION,
            135,
            UNSPECIFIED,
            solicited_node,
            VM_GLOBAL,
            &[]
        )
    );
    // An MLD report from `::` teaches nothing.
    let mld = icmpv6(
        UNSPECIFIED,
        [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16],
        vec![143, 0, 0, 0, 0, 0, 0, 0],
    );
    let (_, verdict) = out(&eth(ALL_NODES_MAC, VM, 0x86dd, &mld));
    assert_eq!(
        verdict,
        ToAir::Translated {
            learn: None,
            checksum: None
        }
    );
}

#[test]
fn partial_checksums_are_left_alone() {
    let frame = ndp(
        VM,
        VM,
        136,
        VM_GLOBAL,
        ROUTER_LL,
        VM_GLOBAL,
        &[Opt::Lla { kind: 2 }],
    );
    let (bytes, _) = out_with(&frame, Checksums::Partial);
    let mut expected = ndp(
        STATION,
        STATION,
        136,
        VM_GLOBAL,
        ROUTER_LL,
        VM_GLOBAL,
        &[Opt::Lla { kind: 2 }],
    );
    // The checksum field as it came: the device sums the payload later.
    expected[14 + 40 + 2..14 + 40 + 4].copy_from_slice(&frame[14 + 40 + 2..14 + 40 + 4]);
    assert_eq!(bytes, expected);

    let frame = dhcp_frame(VM, [0; 4], 1, 7, 0, true, 0);
    let (bytes, _) = out_with(&frame, Checksums::Partial);
    let at = 14 + 20 + 6;
    assert_eq!(bytes[at..at + 2], frame[at..at + 2]);
    assert_eq!(
        bytes[14 + 20 + 8 + 10],
        0x80,
        "the flag is set all the same"
    );
}

#[test]
fn reported_checksum_fixes_give_what_complete_mode_writes() {
    let options = [Opt::Lla { kind: 1 }, Opt::Lla { kind: 2 }];
    let cases = [
        ndp(VM, VM, 135, VM_LL, ROUTER_LL, VM_GLOBAL, &options),
        dhcp_frame(VM, [0; 4], 1, 0xdead_beef, 0, true, 1),
        dhcp_frame(VM, [0; 4], 1, 0xdead_beef, 0, false, 0),
    ];
    for frame in cases {
        let (bytes, verdict) = out_reported(&frame);
        assert_eq!((bytes, verdict), out(&frame));
    }
    // Nothing to fix: nothing reported.
    let frame = eth(
        OUTSIDE,
        VM,
        0x0806,
        &arp(1, VM, [192, 0, 2, 10], [0; 6], [192, 0, 2, 1]),
    );
    assert!(matches!(
        out_with(&frame, Checksums::Report).1,
        ToAir::Translated { checksum: None, .. }
    ));
}

#[test]
fn malformed_ndp_options_are_dropped() {
    let ok = ndp(
        VM,
        VM,
        135,
        VM_LL,
        ROUTER_LL,
        VM_GLOBAL,
        &[Opt::Lla { kind: 1 }],
    );
    let options = 14 + 40 + 24;
    let zero_length = {
        let mut f = ok.clone();
        f[options + 1] = 0;
        f
    };
    let past_the_end = {
        let mut f = ok.clone();
        f[options + 1] = 2;
        f
    };
    let long_address = ndp(
        VM,
        VM,
        135,
        VM_LL,
        ROUTER_LL,
        VM_GLOBAL,
        &[Opt::Other {
            kind: 1,
            units: 2,
            fill: 2,
        }],
    );
    let nine = vec![
        Opt::Other {
            kind: 14,
            units: 1,
            fill: 1
        };
        9
    ];
    let too_many = ndp(VM, VM, 135, VM_LL, ROUTER_LL, VM_GLOBAL, &nine);
    let eight = ndp(VM, VM, 135, VM_LL, ROUTER_LL, VM_GLOBAL, &nine[1..]);
    for (frame, reason) in [
        (zero_length, ToAirDrop::BadNdpOption),
        (past_the_end, ToAirDrop::BadNdpOption),
        (long_address, ToAirDrop::BadNdpOption),
        (too_many, ToAirDrop::TooManyNdpOptions),
    ] {
        assert_eq!(out(&frame).1, ToAir::Drop(reason), "{frame:02x?}");
    }
    assert_eq!(out(&eight).1, learned(IpKey::v6(VM_LL), VM));
    // Longer than any message of at most eight options (jumbo frames).
    let huge = vec![
        Opt::Other {
            kind: 14,
            units: 255,
            fill: 1
        };
        9
    ];
    let huge = ndp(VM, VM, 135, VM_LL, ROUTER_LL, VM_GLOBAL, &huge);
    assert_eq!(out(&huge).1, ToAir::Drop(ToAirDrop::TooManyNdpOptions));

    // An IPv6 payload length past the frame's end, or no room for the
    // message's fixed part.
    let mut beyond = ok.clone();
    beyond[14 + 5] += 1;
    assert_eq!(out(&beyond).1, ToAir::Drop(ToAirDrop::BadHeader));
    let short_ns = eth(
        ALL_NODES_MAC,
        VM,
        0x86dd,
        &icmpv6(VM_LL, ROUTER_LL, vec![135, 0, 0, 0, 0, 0, 0, 0]),
    );
    assert_eq!(out(&short_ns).1, ToAir::Drop(ToAirDrop::BadHeader));
}

#[test]
fn a_dhcp_request_gets_the_broadcast_flag_with_its_udp_checksum_fixed() {
    for ip_options in [0, 2] {
        let frame = dhcp_frame(VM, [0; 4], 1, 0xdead_beef, 0, true, ip_options);
        let (bytes, verdict) = out(&frame);
        assert_eq!(
            verdict,
            ToAir::Translated {
                learn: None,
                checksum: None
            },
            "0.0.0.0 is nobody's"
        );
        assert_eq!(
            bytes,
            dhcp_frame(STATION, [0; 4], 1, 0xdead_beef, 0x8000, true, ip_options)
        );
        assert_eq!(checksums_valid(&bytes), Some(true));
    }
    // A renewal from its leased address teaches it; chaddr stays the VM's.
    let frame = dhcp_frame(VM, [192, 0, 2, 10], 1, 1, 0, true, 0);
    let (bytes, verdict) = out(&frame);
    assert_eq!(verdict, learned(IpKey::v4([192, 0, 2, 10]), VM));
    assert_eq!(
        bytes,
        dhcp_frame(STATION, [192, 0, 2, 10], 1, 1, 0x8000, true, 0)
    );
    assert_eq!(bytes[14 + 20 + 8 + 28..14 + 20 + 8 + 34], VM);
}

#[test]
fn a_zero_udp_checksum_stays_zero() {
    let frame = dhcp_frame(VM, [0; 4], 1, 9, 0, false, 0);
    let (bytes, _) = out(&frame);
    assert_eq!(bytes, dhcp_frame(STATION, [0; 4], 1, 9, 0x8000, false, 0));
    assert_eq!(bytes[14 + 20 + 6..14 + 20 + 8], [0, 0]);
}

#[test]
fn a_udp_checksum_that_comes_to_zero_is_sent_as_all_ones() {
    // Find a request whose flagged form sums to zero: its checksum field
    // must then read 0xffff (RFC 768), not 0 ("no checksum").
    let xid = (0..=u32::from(u16::MAX))
        .find(|&xid| {
            let f = dhcp_frame(STATION, [0; 4], 1, xid, 0x8000, true, 0);
            f[14 + 20 + 6..14 + 20 + 8] == [0xff, 0xff]
        })
        .expect("some xid sums to zero");
    let (bytes, _) = out(&dhcp_frame(VM, [0; 4], 1, xid, 0, true, 0));
    assert_eq!(bytes[14 + 20 + 6..14 + 20 + 8], [0xff, 0xff]);
    assert_eq!(checksums_valid(&bytes), Some(true));
}

#[test]
fn dhcp_replies_and_flagged_requests_are_left_alone() {
    for (op, flags, sport, dport) in [
        (2u8, 0u16, 68, 67),
        (1, 0x8000, 68, 67),
        (1, 0, 67, 68),
        (1, 0, 68, 53),
    ] {
        let udp = udp4(
            [0; 4],
            [255; 4],
            sport,
            dport,
            &bootp(op, 3, flags, VM),
            true,
        );
        let ip = ipv4([0; 4], [255; 4], 17, 0, &udp);
        let (bytes, _) = out(&eth(BROADCAST, VM, 0x0800, &ip));
        assert_eq!(
            bytes,
            eth(BROADCAST, STATION, 0x0800, &ip),
            "op {op} flags {flags:x} {sport}->{dport}"
        );
    }
    // A UDP length too short to cover the flags: a checksum fixed for them
    // would be wrong, so nothing moves.
    let mut udp = udp4([0; 4], [255; 4], 68, 67, &bootp(1, 3, 0, VM), false);
    udp[4..6].copy_from_slice(&12u16.to_be_bytes());
    let ip = ipv4([0; 4], [255; 4], 17, 0, &udp);
    let (bytes, _) = out(&eth(BROADCAST, VM, 0x0800, &ip));
    assert_eq!(bytes, eth(BROADCAST, STATION, 0x0800, &ip));
}

#[test]
fn the_arp_sender_hardware_address_becomes_the_station_s() {
    let vm_ip = [192, 0, 2, 10];
    let gw = [192, 0, 2, 1];
    let request = arp(1, VM, vm_ip, [0; 6], gw);
    let (bytes, verdict) = out(&eth(BROADCAST, VM, 0x0806, &request));
    assert_eq!(verdict, learned(IpKey::v4(vm_ip), VM));
    assert_eq!(
        bytes,
        eth(
            BROADCAST,
            STATION,
            0x0806,
            &arp(1, STATION, vm_ip, [0; 6], gw)
        )
    );

    // A reply keeps the asker's MAC as its target.
    let reply = arp(2, VM, vm_ip, OUTSIDE, gw);
    let (bytes, _) = out(&eth(OUTSIDE, VM, 0x0806, &reply));
    assert_eq!(
        bytes,
        eth(
            OUTSIDE,
            STATION,
            0x0806,
            &arp(2, STATION, vm_ip, OUTSIDE, gw)
        )
    );

    // A probe (RFC 5227) teaches the address it claims.
    let (_, verdict) = out(&eth(
        BROADCAST,
        VM,
        0x0806,
        &arp(1, VM, [0; 4], [0; 6], vm_ip),
    ));
    assert_eq!(verdict, learned(IpKey::v4(vm_ip), VM));

    // Not Ethernet/IPv4: its addresses cannot be translated.
    let mut other = request.clone();
    other[1] = 6; // IEEE 802
    assert_eq!(
        out(&eth(BROADCAST, VM, 0x0806, &other)).1,
        ToAir::Drop(ToAirDrop::BadHeader)
    );
}

#[test]
fn ipv4_teaches_unicast_sources_only() {
    let cases: [([u8; 4], bool); 5] = [
        ([192, 0, 2, 10], true),
        ([10, 1, 2, 3], true),
        ([0, 0, 0, 0], false),
        ([224, 0, 0, 1], false),
        ([255, 255, 255, 255], false),
    ];
    for (src, learns) in cases {
        let frame = eth(
            OUTSIDE,
            VM,
            0x0800,
            &ipv4(src, [192, 0, 2, 1], 6, 0, &[0; 20]),
        );
        let expected = if learns {
            learned(IpKey::v4(src), VM)
        } else {
            ToAir::Translated {
                learn: None,
                checksum: None,
            }
        };
        assert_eq!(out(&frame).1, expected, "{src:?}");
    }
}

#[test]
fn what_cannot_be_translated_whole_is_dropped() {
    let group = eth(OUTSIDE, [0x03, 0, 0, 0, 0, 1], 0x88b5, &[0; 46]);
    let cases = [
        (vec![0u8; 13], ToAirDrop::TooShort),
        (
            tagged(&eth(OUTSIDE, VM, 0x88b5, &[]))[..16].to_vec(),
            ToAirDrop::TooShort,
        ),
        (group, ToAirDrop::GroupSource),
        (eth(OUTSIDE, VM, 0x86dd, &[0x60; 39]), ToAirDrop::BadHeader),
        (eth(OUTSIDE, VM, 0x86dd, &[0x40; 60]), ToAirDrop::BadHeader),
        (eth(OUTSIDE, VM, 0x0800, &[0x45; 19]), ToAirDrop::BadHeader),
        (eth(OUTSIDE, VM, 0x0800, &[0x44; 40]), ToAirDrop::BadHeader),
        (
            eth(
                OUTSIDE,
                VM,
                0x0806,
                &arp(1, VM, [1; 4], [0; 6], [2; 4])[..27],
            ),
            ToAirDrop::BadHeader,
        ),
        (
            eth(OUTSIDE, VM, 0x888e, &[2, 1, 0, 0]),
            ToAirDrop::StationProtocol,
        ),
        (
            tagged(&eth(OUTSIDE, VM, 0x88c7, &[2, 1, 0, 0])),
            ToAirDrop::StationProtocol,
        ),
    ];
    for (frame, reason) in cases {
        assert_eq!(out(&frame).1, ToAir::Drop(reason), "{frame:02x?}");
    }
    for reason in ToAirDrop::ALL {
        assert!(!reason.name().is_empty());
    }
}

// ---------------------------------------------------------- toward the router

fn table() -> HashMap<IpKey, Mac> {
    HashMap::from([
        (IpKey::v6(VM_GLOBAL), VM),
        (IpKey::v6(VM_LL), VM),
        (IpKey::v4([192, 0, 2, 10]), VM),
        (IpKey::v4([192, 0, 2, 11]), VM2),
    ])
}

#[test]
fn unicast_to_the_station_gets_the_mac_its_destination_was_learned_with() {
    let v6 = ipv6(ROUTER_LL, VM_GLOBAL, 17, &[0; 12]);
    let (bytes, verdict) = back(&eth(STATION, OUTSIDE, 0x86dd, &v6), &table());
    assert_eq!(verdict, ToRouter::Translated { mac: VM });
    assert_eq!(bytes, eth(VM, OUTSIDE, 0x86dd, &v6));

    for (dst, vm) in [([192, 0, 2, 10], VM), ([192, 0, 2, 11], VM2)] {
        let v4 = ipv4([192, 0, 2, 1], dst, 1, 0, &[0; 8]);
        let (bytes, verdict) = back(&tagged(&eth(STATION, OUTSIDE, 0x0800, &v4)), &table());
        assert_eq!(verdict, ToRouter::Translated { mac: vm });
        assert_eq!(bytes, tagged(&eth(vm, OUTSIDE, 0x0800, &v4)));
    }
}

#[test]
fn an_arp_reply_gets_its_target_hardware_address_too() {
    let gw = [192, 0, 2, 1];
    let reply = arp(2, OUTSIDE, gw, STATION, [192, 0, 2, 11]);
    let (bytes, verdict) = back(&eth(STATION, OUTSIDE, 0x0806, &reply), &table());
    assert_eq!(verdict, ToRouter::Translated { mac: VM2 });
    assert_eq!(
        bytes,
        eth(
            VM2,
            OUTSIDE,
            0x0806,
            &arp(2, OUTSIDE, gw, VM2, [192, 0, 2, 11])
        )
    );

    // A unicast request (a reachability check): the Ethernet destination only.
    let request = arp(1, OUTSIDE, gw, [0; 6], [192, 0, 2, 10]);
    let (bytes, _) = back(&eth(STATION, OUTSIDE, 0x0806, &request), &table());
    assert_eq!(bytes, eth(VM, OUTSIDE, 0x0806, &request));

    // The defence of a probed address (sender: that address, target 0.0.0.0)
    // goes to the prober.
    let defence = arp(2, OUTSIDE, [192, 0, 2, 10], STATION, [0; 4]);
    let (bytes, _) = back(&eth(STATION, OUTSIDE, 0x0806, &defence), &table());
    assert_eq!(
        bytes,
        eth(
            VM,
            OUTSIDE,
            0x0806,
            &arp(2, OUTSIDE, [192, 0, 2, 10], VM, [0; 4])
        )
    );
}

#[test]
fn group_addressed_and_foreign_frames_cross_unchanged() {
    let ra = ndp(
        OUTSIDE,
        OUTSIDE,
        134,
        ROUTER_LL,
        ALL_NODES,
        UNSPECIFIED,
        &[Opt::Lla { kind: 1 }],
    );
    let v4 = eth(
        BROADCAST,
        OUTSIDE,
        0x0800,
        &ipv4([192, 0, 2, 1], [192, 0, 2, 10], 17, 0, &[0; 8]),
    );
    let foreign = eth(
        OUTSIDE,
        VM,
        0x0800,
        &ipv4([192, 0, 2, 1], [192, 0, 2, 10], 17, 0, &[0; 8]),
    );
    for frame in [ra, v4, foreign, vec![0; 13]] {
        let (bytes, verdict) = back(&frame, &table());
        assert_eq!(verdict, ToRouter::Unchanged);
        assert_eq!(bytes, frame);
    }
}

#[test]
fn unicast_for_an_address_no_vm_owns_goes_to_the_station() {
    let station_ip = ipv4([192, 0, 2, 1], [192, 0, 2, 99], 6, 0, &[0; 20]);
    let cases = [
        eth(STATION, OUTSIDE, 0x0800, &station_ip),
        eth(
            STATION,
            OUTSIDE,
            0x86dd,
            &ipv6(ROUTER_LL, ALL_NODES, 17, &[0; 8]),
        ),
        eth(
            STATION,
            OUTSIDE,
            0x0806,
            &arp(1, OUTSIDE, [192, 0, 2, 1], [0; 6], [192, 0, 2, 99]),
        ),
        eth(STATION, OUTSIDE, 0x88b5, &[0; 46]),
        eth(STATION, OUTSIDE, 0x86dd, &[0x60; 39]),
        tagged(&eth(STATION, OUTSIDE, 0x88b5, &[]))[..16].to_vec(),
    ];
    for frame in cases {
        let (bytes, verdict) = back(&frame, &table());
        assert_eq!(
            verdict,
            ToRouter::Station(ForStation::NoOwner),
            "{frame:02x?}"
        );
        assert_eq!(bytes, frame, "left as it was");
    }
    for why in ForStation::ALL {
        assert!(!why.name().is_empty());
    }
}

// ------------------------------------------------------------------ properties

/// A frame a VM behind the router sends, described by what matters.
#[derive(Clone, Debug)]
enum Spec {
    Ndp {
        ty: u8,
        src: [u8; 16],
        dst: [u8; 16],
        target: [u8; 16],
        options: Vec<Opt>,
    },
    Dhcp {
        src: [u8; 4],
        xid: u32,
        flags: u16,
        checksum: bool,
        ip_options: usize,
    },
    Ipv4 {
        src: [u8; 4],
        dst: [u8; 4],
        payload: Vec<u8>,
    },
    Arp {
        op: u16,
        spa: [u8; 4],
        tha: Mac,
        tpa: [u8; 4],
    },
}

impl Spec {
    /// The frame from `mac`; `translated`: as it must leave.
    fn build(&self, mac: Mac, translated: bool) -> Vec<u8> {
        match self {
            Spec::Ndp {
                ty,
                src,
                dst,
                target,
                options,
            } => ndp(mac, mac, *ty, *src, *dst, *target, options),
            Spec::Dhcp {
                src,
                xid,
                flags,
                checksum,
                ip_options,
            } => {
                let flags = if translated { flags | 0x8000 } else { *flags };
                dhcp_frame(mac, *src, 1, *xid, flags, *checksum, *ip_options)
            }
            Spec::Ipv4 { src, dst, payload } => {
                eth(OUTSIDE, mac, 0x0800, &ipv4(*src, *dst, 6, 0, payload))
            }
            Spec::Arp { op, spa, tha, tpa } => {
                eth(BROADCAST, mac, 0x0806, &arp(*op, mac, *spa, *tha, *tpa))
            }
        }
    }

    /// The address the VM proves it owns.
    fn owns(&self) -> Option<IpKey> {
        let v4 = |a: [u8; 4]| (a != [0; 4] && a[0] < 224).then_some(IpKey::v4(a));
        match self {
            Spec::Ndp {
                ty: 135,
                src,
                target,
                ..
            } if *src == UNSPECIFIED => Some(IpKey::v6(*target)),
            Spec::Ndp { src, .. } => (*src != [0; 16] && src[0] != 0xff).then_some(IpKey::v6(*src)),
            Spec::Dhcp { src, .. } | Spec::Ipv4 { src, .. } => v4(*src),
            Spec::Arp {
                spa: [0, 0, 0, 0],
                tpa,
                ..
            } => v4(*tpa),
            Spec::Arp { spa, .. } => v4(*spa),
        }
    }

    /// What the outside sends back to the address the VM proved it owns,
    /// addressed to the MAC it saw (the station's): for ARP, a reply.
    fn answer(&self, owner: IpKey, seen: Mac) -> Vec<u8> {
        let ip = owner.0;
        match self {
            Spec::Ndp { .. } => eth(seen, OUTSIDE, 0x86dd, &ipv6(ROUTER_LL, ip, 17, &[0; 8])),
            Spec::Arp { spa, .. } => {
                let (sender, target) = if *spa == [0; 4] {
                    (ip[12..].try_into().unwrap(), [0; 4])
                } else {
                    ([192, 0, 2, 1], ip[12..].try_into().unwrap())
                };
                eth(
                    seen,
                    OUTSIDE,
                    0x0806,
                    &arp(2, OUTSIDE, sender, seen, target),
                )
            }
            _ => eth(
                seen,
                OUTSIDE,
                0x0800,
                &ipv4([192, 0, 2, 1], ip[12..].try_into().unwrap(), 17, 0, &[0; 8]),
            ),
        }
    }
}

fn unicast_mac() -> impl Strategy<Value = Mac> {
    any::<Mac>().prop_map(|mut m| {
        m[0] &= 0xfe;
        m
    })
}

fn v6_source() -> impl Strategy<Value = [u8; 16]> {
    prop_oneof![
        Just(UNSPECIFIED),
        any::<[u8; 8]>().prop_map(|iid| {
            let mut a = VM_LL;
            a[8..].copy_from_slice(&iid);
            a
        }),
        any::<[u8; 16]>(),
    ]
}

fn v4_addr() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        Just([0; 4]),
        any::<[u8; 4]>(),
        (1u8..224, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| [a, b, c, d])
    ]
}

fn option() -> impl Strategy<Value = Opt> {
    prop_oneof![
        (1u8..=2).prop_map(|kind| Opt::Lla { kind }),
        (3u8..=40, 1u8..=4, any::<u8>()).prop_map(|(kind, units, fill)| Opt::Other {
            kind,
            units,
            fill
        }),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (
            133u8..=137,
            v6_source(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            proptest::collection::vec(option(), 0..=8)
        )
            .prop_map(|(ty, src, dst, target, options)| Spec::Ndp {
                ty,
                src,
                dst,
                target,
                options
            }),
        (
            v4_addr(),
            any::<u32>(),
            any::<u16>(),
            any::<bool>(),
            0usize..=10
        )
            .prop_map(|(src, xid, flags, checksum, ip_options)| Spec::Dhcp {
                src,
                xid,
                flags,
                checksum,
                ip_options
            }),
        (
            v4_addr(),
            any::<[u8; 4]>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(src, dst, payload)| Spec::Ipv4 { src, dst, payload }),
        (1u16..=2, v4_addr(), unicast_mac(), v4_addr()).prop_map(|(op, spa, tha, tpa)| Spec::Arp {
            op,
            spa,
            tha,
            tpa
        }),
    ]
}

proptest! {
    #[test]
    fn a_translated_frame_is_the_frame_built_with_the_station_s_mac(spec in spec(), vm in unicast_mac(), tag in any::<bool>()) {
        let wrap = |f: Vec<u8>| if tag { tagged(&f) } else { f };
        let frame = wrap(spec.build(vm, false));
        let (bytes, verdict) = out(&frame);
        prop_assert_eq!(verdict, ToAir::Translated { learn: spec.owns().map(|ip| Learn { ip, mac: vm }), checksum: None });
        // Built from scratch: every checksum recomputed over the message.
        prop_assert_eq!(&bytes, &wrap(spec.build(STATION, true)));
        prop_assert_ne!(checksums_valid(&bytes), Some(false));
        prop_assert_eq!(out_reported(&frame), (bytes, verdict));
    }

    #[test]
    fn out_and_back_restores_each_vm_s_address(specs in proptest::collection::vec((spec(), unicast_mac()), 1..6)) {
        let mut table = HashMap::new();
        let mut owners = Vec::new();
        for (spec, vm) in &specs {
            let (_, verdict) = out(&spec.build(*vm, false));
            if let ToAir::Translated { learn: Some(Learn { ip, mac }), .. } = verdict {
                table.insert(ip, mac);
                owners.push((spec, ip));
            }
        }
        for (spec, ip) in owners {
            // The last VM to claim an address owns it.
            let owner = table[&ip];
            let (bytes, verdict) = back(&spec.answer(ip, STATION), &table);
            prop_assert_eq!(verdict, ToRouter::Translated { mac: owner });
            prop_assert_eq!(&bytes[..6], &owner[..]);
            if let Spec::Arp { .. } = spec {
                prop_assert_eq!(&bytes[14 + 18..14 + 24], &owner[..]);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(spec in spec(), vm in unicast_mac(),
                                   edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                                   cut in any::<usize>(), raw in proptest::collection::vec(any::<u8>(), 0..100),
                                   owner in proptest::option::of(unicast_mac())) {
        let mut frame = spec.build(vm, false);
        for (at, byte) in edits {
            let len = frame.len();
            frame[at % len] = byte;
        }
        frame.truncate(cut % (frame.len() + 1));
        for frame in [frame, raw] {
            let valid_before = checksums_valid(&frame);
            let (bytes, verdict) = out(&frame);
            if let ToAir::Translated { .. } = verdict {
                prop_assert_eq!(&bytes[6..12], &STATION[..]);
                // Checksums that were right stay right.
                if valid_before == Some(true) {
                    prop_assert_eq!(checksums_valid(&bytes), Some(true));
                }
            }
            let mut buf = frame.clone();
            let verdict = toward_router(&mut BufFrame::new(&mut buf, 0), STATION, |_| owner);
            match verdict {
                ToRouter::Translated { mac } => prop_assert_eq!(&buf[..6], &mac[..]),
                ToRouter::Unchanged | ToRouter::Station(_) => prop_assert_eq!(&buf, &frame),
            }
        }
    }
}
