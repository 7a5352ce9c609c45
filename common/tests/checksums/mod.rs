//! Internet checksums recomputed from scratch, for the station_nat tests and
//! the fuzz target (fuzz/fuzz_targets/frame_logic.rs includes this file): the
//! reference the incremental fixes (RFC 1624) are checked against.
#![allow(dead_code)]

use xdp_forwarder_common::station_nat::ChecksumFix;

/// The one's-complement sum of `data` (odd length padded with a zero byte),
/// starting from `sum`, not folded.
pub fn sum16(data: &[u8], mut sum: u64) -> u64 {
    for chunk in data.chunks(2) {
        sum += u64::from(u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]));
    }
    sum
}

pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

pub fn ipv6_pseudo(src: &[u8; 16], dst: &[u8; 16], len: usize, next: u8) -> u64 {
    let mut p = Vec::new();
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, next]);
    sum16(&p, 0)
}

/// Whether every checksum the frame carries (IPv4 header, UDP over IPv4,
/// ICMPv6) verifies, recomputed from scratch over the lengths the headers
/// give. `None`: none of them is there to check.
pub fn checksums_valid(frame: &[u8]) -> Option<bool> {
    let (ethertype, l3) = match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
        0x8100 | 0x88a8 => (u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]), 18),
        t => (t, 14),
    };
    let p = frame.get(l3..)?;
    match ethertype {
        0x86dd => {
            p.get(..40)?;
            let len = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
            if p[0] >> 4 != 6 || p[6] != 58 || len < 4 {
                return None;
            }
            let msg = p.get(40..40 + len)?;
            let pseudo = ipv6_pseudo(
                p[8..24].try_into().unwrap(),
                p[24..40].try_into().unwrap(),
                len,
                58,
            );
            Some(fold(sum16(msg, pseudo)) == 0xffff)
        }
        0x0800 => {
            p.get(..20)?;
            let ihl = usize::from(*p.first()? & 0x0f) * 4;
            if p[0] >> 4 != 4 || ihl < 20 {
                return None;
            }
            let header_ok = fold(sum16(p.get(..ihl)?, 0)) == 0xffff;
            if p[9] != 17 || u16::from_be_bytes([p[6], p[7]]) & 0x1fff != 0 {
                return Some(header_ok);
            }
            let udp = p.get(ihl..)?;
            udp.get(..8)?;
            let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
            if len < 8 || u16::from_be_bytes([udp[6], udp[7]]) == 0 {
                return Some(header_ok);
            }
            let mut pseudo = p[12..20].to_vec();
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(len as u16).to_be_bytes());
            Some(header_ok && fold(sum16(udp.get(..len)?, sum16(&pseudo, 0))) == 0xffff)
        }
        _ => None,
    }
}

/// Applies a reported checksum fix as `bpf_l4_csum_replace(skb, offset, 0,
/// fix.wsum(), BPF_F_MARK_MANGLED_0 for UDP)` does to an skb that is not
/// `CHECKSUM_PARTIAL` (`inet_proto_csum_replace_by_diff`:
/// `*sum = csum_fold(csum_add(diff, ~csum_unfold(*sum)))`), in the kernel's
/// arithmetic: 16-bit words read from memory in the CPU's byte order.
pub fn apply_like_the_kernel(frame: &mut [u8], fix: ChecksumFix) {
    let at = fix.offset;
    let old = u16::from_ne_bytes([frame[at], frame[at + 1]]);
    if fix.udp && old == 0 {
        return;
    }
    let mut new = !fold(u64::from(fix.wsum()) + u64::from(!old));
    if fix.udp && new == 0 {
        new = 0xffff; // CSUM_MANGLED_0
    }
    frame[at..at + 2].copy_from_slice(&new.to_ne_bytes());
}

/// Writes every checksum `checksums_valid` checks (IPv4 header, UDP over
/// IPv4 unless zero, ICMPv6), computed from scratch; a frame whose headers
/// do not parse that far is left as it is.
pub fn seal(frame: &mut [u8]) {
    let Some(&[t0, t1]) = frame.get(12..14).map(|t| <&[u8; 2]>::try_from(t).unwrap()) else {
        return;
    };
    let (ethertype, l3) = match u16::from_be_bytes([t0, t1]) {
        0x8100 | 0x88a8 if frame.len() >= 18 => (u16::from_be_bytes([frame[16], frame[17]]), 18),
        t => (t, 14),
    };
    let Some(p) = frame.get_mut(l3..) else {
        return;
    };
    match ethertype {
        0x86dd if p.len() >= 40 && p[0] >> 4 == 6 && p[6] == 58 => {
            let len = usize::from(u16::from_be_bytes([p[4], p[5]]));
            if len < 4 || p.len() < 40 + len {
                return;
            }
            p[42..44].copy_from_slice(&[0, 0]);
            let pseudo = ipv6_pseudo(
                p[8..24].try_into().unwrap(),
                p[24..40].try_into().unwrap(),
                len,
                58,
            );
            let c = !fold(sum16(&p[40..40 + len], pseudo));
            p[42..44].copy_from_slice(&c.to_be_bytes());
        }
        0x0800 if p.len() >= 20 && p[0] >> 4 == 4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if ihl < 20 || p.len() < ihl {
                return;
            }
            p[10..12].copy_from_slice(&[0, 0]);
            let c = !fold(sum16(&p[..ihl], 0));
            p[10..12].copy_from_slice(&c.to_be_bytes());
            if p[9] != 17 || u16::from_be_bytes([p[6], p[7]]) & 0x1fff != 0 || p.len() < ihl + 8 {
                return;
            }
            let len = usize::from(u16::from_be_bytes([p[ihl + 4], p[ihl + 5]]));
            if len < 8 || p.len() < ihl + len || p[ihl + 6..ihl + 8] == [0, 0] {
                return;
            }
            let mut pseudo = p[12..20].to_vec();
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(len as u16).to_be_bytes());
            p[ihl + 6..ihl + 8].copy_from_slice(&[0, 0]);
            let c = match !fold(sum16(&p[ihl..ihl + len], sum16(&pseudo, 0))) {
                0 => 0xffff,
                c => c,
            };
            p[ihl + 6..ihl + 8].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}
