//! The shared frame logic on arbitrary bytes: never panics, a dropped frame is
//! left untouched, and the router undoes exactly what the physical program did.
//! The Wi-Fi station translation (station_nat) on the same bytes: a frame
//! sent toward the AP leaves with the station's MAC as its source and keeps
//! every checksum that was right; one toward the router gets the MAC the
//! table gave, or is left as it was.
//!
//! Run: `cargo +nightly fuzz run frame_logic` (from the repository root).
#![no_main]

// Checksums recomputed from scratch, shared with common's tests.
#[path = "../../common/tests/checksums/mod.rs"]
mod checksums;

use libfuzzer_sys::fuzz_target;
use xdp_forwarder_common::{
    BufFrame, RouterMode, Vid, pop_port_tag, push_port_tag,
    station_nat::{Checksums, ToAir, ToRouter, toward_air, toward_router},
};

const STATION: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fuzz_target!(|input: &[u8]| {
    let [headroom, a, b, c, d, frame @ ..] = input else {
        return;
    };
    let headroom = usize::from(*headroom % 16);
    let word = u32::from_le_bytes([*a, *b, *c, *d]);

    for mode in [
        RouterMode::Managed,
        RouterMode::DropIn {
            ingress_ifindex: word,
        },
    ] {
        let mut buf = [vec![0; headroom], frame.to_vec()].concat();
        let mut f = BufFrame::new(&mut buf, headroom);
        if pop_port_tag(&mut f, mode).is_err() {
            assert_eq!(f.bytes(), frame);
        }
    }

    let mut buf = [vec![0; headroom], frame.to_vec()].concat();
    let mut f = BufFrame::new(&mut buf, headroom);
    match push_port_tag(&mut f, Vid::new(word)) {
        Ok(()) => {
            assert_eq!(f.len(), frame.len() + 4);
            assert_eq!(
                pop_port_tag(&mut f, RouterMode::Managed),
                Ok(Vid::new(word).unwrap())
            );
            assert_eq!(f.bytes(), frame);
        }
        Err(_) => assert_eq!(f.bytes(), frame),
    }

    station_nat(frame, word);
    // Random bytes rarely make a frame whose checksums are right; shaped
    // ones reach the rewrites with checksums to keep.
    station_nat(&shaped(*d, frame), word);
});

/// `frame` made into an NDP message, a DHCP request or an ARP packet
/// (chosen by `kind`) with correct lengths and checksums, the rest of its
/// bytes (NDP options, BOOTP fields, addresses) left as the fuzzer made them.
fn shaped(kind: u8, frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let len = f.len();
    match kind % 3 {
        0 if len >= 14 + 40 + 8 => {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f[14] = 0x60;
            f[18..20].copy_from_slice(&((len - 54) as u16).to_be_bytes());
            f[20] = 58;
            f[54] = 133 + f[54] % 5;
        }
        1 if len >= 14 + 20 + 8 + 12 => {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
            f[20..22].copy_from_slice(&[0, 0]);
            f[23] = 17;
            f[34..38].copy_from_slice(&[0, 68, 0, 67]);
            f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
            f[42] = 1;
        }
        2 if len >= 14 + 28 => {
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            f[14..20].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        }
        _ => {}
    }
    checksums::seal(&mut f);
    f
}

fn station_nat(frame: &[u8], word: u32) {
    let valid_before = checksums::checksums_valid(frame);
    let mut complete = None;
    for mode in [Checksums::Complete, Checksums::Partial, Checksums::Report] {
        let mut buf = frame.to_vec();
        let mut f = BufFrame::new(&mut buf, 0);
        let verdict = toward_air(&mut f, STATION, mode);
        if let ToAir::Translated { checksum, .. } = verdict {
            assert_eq!(&f.bytes()[6..12], &STATION);
            assert_eq!(f.len(), frame.len());
            if mode != Checksums::Report {
                assert_eq!(checksum, None);
            }
            if mode == Checksums::Complete && valid_before == Some(true) {
                assert_eq!(checksums::checksums_valid(f.bytes()), Some(true));
            }
        }
        match mode {
            Checksums::Complete => complete = Some((buf, verdict)),
            // Applied as the kernel would, the reported fix gives what
            // Complete mode wrote, and the verdict is the same.
            Checksums::Report => {
                let (expected, expected_verdict) = complete.take().unwrap();
                match verdict {
                    ToAir::Translated { learn, checksum } => {
                        if let Some(fix) = checksum {
                            checksums::apply_like_the_kernel(&mut buf, fix);
                        }
                        assert_eq!(
                            ToAir::Translated {
                                learn,
                                checksum: None
                            },
                            expected_verdict
                        );
                        assert_eq!(buf, expected);
                    }
                    ToAir::Drop(_) => assert_eq!(verdict, expected_verdict),
                }
            }
            Checksums::Partial => {}
        }
    }

    // The fuzzer finds the station's MAC as a destination faster when the
    // frame may start with it.
    for dst_is_station in [false, true] {
        let mut buf = frame.to_vec();
        if dst_is_station && buf.len() >= 6 {
            buf[..6].copy_from_slice(&STATION);
        }
        let before = buf.clone();
        let owner = [
            0x02,
            0,
            word as u8,
            (word >> 8) as u8,
            (word >> 16) as u8,
            1,
        ];
        let known = word & 1 == 0;
        let mut f = BufFrame::new(&mut buf, 0);
        match toward_router(&mut f, STATION, |_| known.then_some(owner)) {
            ToRouter::Translated { mac } => {
                assert_eq!(mac, owner);
                assert_eq!(&f.bytes()[..6], &owner);
                // Only the destination and an ARP target hardware address move.
                let moved = f
                    .bytes()
                    .iter()
                    .zip(&before)
                    .enumerate()
                    .filter(|(_, (a, b))| a != b);
                for (at, _) in moved {
                    assert!(
                        at < 6 || (32..38).contains(&at) || (36..42).contains(&at),
                        "byte {at} moved"
                    );
                }
            }
            ToRouter::Unchanged | ToRouter::Station(_) => assert_eq!(f.bytes(), &before[..]),
        }
    }
}
