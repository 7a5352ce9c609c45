//! What each program does to a frame, independent of where it runs.
//!
//! Both functions only rewrite the frame and decide; the caller performs the
//! redirect (through `router_iface` or the VLAN port map) and counts.

use crate::{
    DropReason, Frame, Vid,
    frame::NoRoom,
    vlan::{ETH_HLEN, LOOPBACK_IFINDEX, MACS_LEN, TAGGED_HLEN, TPID_8021Q, VLAN_HLEN},
};

/// Physical program: push one 802.1Q tag carrying `vid` right after the MAC
/// addresses. Whatever the frame already carries (802.1Q or 802.1ad tags)
/// stays inside, untouched.
///
/// `vid` is `None` when the ingress interface has no usable VID.
#[inline(always)]
pub fn physical<F: Frame>(frame: &mut F, vid: Option<Vid>) -> Result<(), DropReason> {
    if frame.head::<ETH_HLEN>().is_none() {
        return Err(DropReason::TooShort);
    }
    let vid = vid.ok_or(DropReason::NoVid)?;
    frame
        .adjust_head(-(VLAN_HLEN as i32))
        .map_err(|NoRoom| DropReason::NoHeadroom)?;
    // Cannot fail after a successful grow of a complete header; the check is
    // what lets the verifier accept the writes below.
    let hdr = frame.head::<TAGGED_HLEN>().ok_or(DropReason::TooShort)?;
    // The EtherType already sits where the tagged header wants it.
    move_macs(hdr, VLAN_HLEN, 0);
    hdr[MACS_LEN..MACS_LEN + 2].copy_from_slice(&TPID_8021Q.to_be_bytes());
    hdr[MACS_LEN + 2..MACS_LEN + 4].copy_from_slice(&vid.tci().to_be_bytes());
    Ok(())
}

/// Frames up to this many bytes after the MACs are tagged by
/// [`physical_at_tail`] (longer ones by [`physical`]): moving the bytes
/// costs ~1.5 ns per 8-byte block here, the copy it avoids ~200 ns whatever
/// the size (see docs/benchmarks.md), so shifting wins up to about 1 kB.
pub const TAIL_SHIFT_MAX: usize = 1000;

/// Physical program in generic (skb) mode: the same frame as [`physical`]
/// makes, built by growing the frame at its tail and moving everything after
/// the MACs 4 bytes up, so that the frame start, and the headroom before it,
/// stay where they are. Generic XDP hands over frames with exactly the 256
/// bytes of headroom XDP needs; a push at the head leaves 252, and an XDP
/// program on the receiving side (a veth peer) then copies the frame into a
/// new page. Up to ~1 kB moving the bytes costs less than that copy; longer
/// frames, and frames without tailroom, get [`physical`].
#[inline(always)]
pub fn physical_at_tail<F: Frame>(frame: &mut F, vid: Option<Vid>) -> Result<(), DropReason> {
    if frame.head::<ETH_HLEN>().is_none() {
        return Err(DropReason::TooShort);
    }
    let Some(vid) = vid else {
        return Err(DropReason::NoVid);
    };
    let len = frame.size();
    if len > MACS_LEN + TAIL_SHIFT_MAX || frame.adjust_tail(VLAN_HLEN as i32).is_err() {
        return physical(frame, Some(vid));
    }
    // Everything after the MACs moves 4 bytes up, 8 bytes at a time: each
    // block is rewritten as the 4 bytes carried from the previous block and
    // its own first 4; its last 4 are carried on. Block 0's first 4 bytes are
    // the tag's place (written last).
    let body = len.saturating_sub(MACS_LEN); // the verifier must see it is >= 0
    let (blocks, mut rest) = (body / 8, body % 8);
    let mut carry = [0u8; 4];
    for i in 0..TAIL_SHIFT_MAX / 8 {
        if i >= blocks {
            break;
        }
        let block = frame
            .at::<8>(MACS_LEN + 8 * i)
            .ok_or(DropReason::TooShort)?;
        let old = *block;
        block[..4].copy_from_slice(&carry);
        block[4..].copy_from_slice(&old[..4]);
        carry.copy_from_slice(&old[4..]);
    }
    let mut end = MACS_LEN + 8 * blocks;
    if rest >= 4 {
        let word = frame.at::<4>(end).ok_or(DropReason::TooShort)?;
        core::mem::swap(word, &mut carry);
        end += 4;
        rest -= 4;
    }
    // The frame now ends `rest + 4` bytes after `end`: the carry, then the
    // last `rest` (0..=3) old bytes. Each case is a window of constant size
    // at `end`, never an offset derived from `len` again: Linux 6.1 does not
    // keep the bound of an unbounded scalar spilled to the stack, so a
    // reloaded `len` is "unbounded" there however it was checked before.
    match rest {
        0 => *frame.at::<4>(end).ok_or(DropReason::TooShort)? = carry,
        1 => carry_then_rest::<5, _>(frame, end, carry)?,
        2 => carry_then_rest::<6, _>(frame, end, carry)?,
        _ => carry_then_rest::<7, _>(frame, end, carry)?,
    }
    let hdr = frame.head::<TAGGED_HLEN>().ok_or(DropReason::TooShort)?;
    hdr[MACS_LEN..MACS_LEN + 2].copy_from_slice(&TPID_8021Q.to_be_bytes());
    hdr[MACS_LEN + 2..MACS_LEN + 4].copy_from_slice(&vid.tci().to_be_bytes());
    Ok(())
}

/// Writes the `N` bytes at `end` as `carry` followed by their own first
/// `N - 4` bytes (the frame's last old bytes, moved 4 up).
#[inline(always)]
fn carry_then_rest<const N: usize, F: Frame>(
    frame: &mut F,
    end: usize,
    carry: [u8; 4],
) -> Result<(), DropReason> {
    let window = frame.at::<N>(end).ok_or(DropReason::TooShort)?;
    let old = *window;
    window[..4].copy_from_slice(&carry);
    window[4..].copy_from_slice(&old[..N - 4]);
    Ok(())
}

/// Moves the MAC addresses within the header, as three 32-bit words that are
/// all loaded before any is stored (the ranges overlap). Not `copy_within`, nor
/// a copy through a local array: LLVM turns both into a `memmove` call, which
/// BPF cannot make on packet memory.
#[inline(always)]
fn move_macs<const N: usize>(hdr: &mut [u8; N], from: usize, to: usize) {
    let word = |hdr: &[u8; N], at: usize| {
        u32::from_ne_bytes([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]])
    };
    let words = [word(hdr, from), word(hdr, from + 4), word(hdr, from + 8)];
    for (i, w) in words.into_iter().enumerate() {
        let at = to + 4 * i;
        [hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]] = w.to_ne_bytes();
    }
}

/// Where the router program may send a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterMode {
    /// Attached by our CLI: the VID is looked up in the VLAN port map, which
    /// only ever holds interfaces attached as physical.
    Managed,
    /// Loaded by a foreign loader: VID = egress ifindex, as in the original,
    /// but never `lo` and never back out of the ingress interface.
    DropIn { ingress_ifindex: u32 },
}

/// Router program: check and pop the outer 802.1Q tag (inner tags stay) and
/// return its VID, which names the egress port.
#[inline(always)]
pub fn router<F: Frame>(frame: &mut F, mode: RouterMode) -> Result<Vid, DropReason> {
    let Some(hdr) = frame.head::<TAGGED_HLEN>() else {
        return Err(if frame.head::<ETH_HLEN>().is_none() {
            DropReason::TooShort
        } else {
            DropReason::BadTag
        });
    };
    // An outer 802.1ad tag is a service-provider tag: not ours.
    if u16::from_be_bytes([hdr[MACS_LEN], hdr[MACS_LEN + 1]]) != TPID_8021Q {
        return Err(DropReason::BadTag);
    }
    let vid = Vid::from_tci(u16::from_be_bytes([hdr[MACS_LEN + 2], hdr[MACS_LEN + 3]]))?;
    if let RouterMode::DropIn { ingress_ifindex } = mode {
        let egress = u32::from(vid.get());
        if egress == LOOPBACK_IFINDEX || egress == ingress_ifindex {
            return Err(DropReason::UnknownVid);
        }
    }
    move_macs(hdr, 0, VLAN_HLEN);
    frame
        .adjust_head(VLAN_HLEN as i32)
        .map_err(|NoRoom| DropReason::BadTag)?;
    Ok(vid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BufFrame;

    const HEADROOM: usize = 8;

    fn frame(bytes: &[u8]) -> [u8; 128] {
        let mut buf = [0u8; 128];
        buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
        buf
    }

    fn eth(ethertype: [u8; 2], payload: &[u8]) -> ([u8; 128], usize) {
        let mut b = [0u8; 64];
        b[..12].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        b[12..14].copy_from_slice(&ethertype);
        b[14..14 + payload.len()].copy_from_slice(payload);
        let len = 14 + payload.len();
        (frame(&b[..len]), len)
    }

    #[test]
    fn physical_at_tail_makes_the_same_frame_without_touching_the_headroom() {
        for len in [
            14usize, 15, 16, 17, 18, 19, 20, 21, 22, 60, 64, 700, 1011, 1012, 1013, 1514,
        ] {
            let mut original = [0u8; 2048];
            for (i, b) in original.iter_mut().enumerate() {
                *b = (i * 7 + 3) as u8;
            }
            let mut a = original;
            let mut b = original;
            let mut head = BufFrame::with_tailroom(&mut a, HEADROOM, HEADROOM + len);
            physical(&mut head, Vid::new(42)).unwrap();
            let mut tail = BufFrame::with_tailroom(&mut b, HEADROOM, HEADROOM + len);
            physical_at_tail(&mut tail, Vid::new(42)).unwrap();
            assert_eq!(tail.bytes(), head.bytes(), "len {len}");
            if len <= MACS_LEN + TAIL_SHIFT_MAX {
                let untouched = b[..HEADROOM] == original[..HEADROOM];
                assert!(untouched, "headroom used, len {len}");
            }
        }
    }

    #[test]
    fn physical_at_tail_falls_back_to_the_head_without_tailroom() {
        let (mut buf, len) = eth([0x08, 0x00], b"abcd");
        let mut f = BufFrame::new(&mut buf[..HEADROOM + len], HEADROOM);
        physical_at_tail(&mut f, Vid::new(42)).unwrap();
        assert_eq!(&f.bytes()[12..16], &[0x81, 0x00, 0x00, 42]);
        assert_eq!(f.len(), len + 4);
    }

    #[test]
    fn physical_pushes_one_tag_after_the_macs() {
        let (mut buf, len) = eth([0x08, 0x00], b"abcd");
        let mut f = BufFrame::new(&mut buf[..HEADROOM + len], HEADROOM);
        physical(&mut f, Vid::new(42)).unwrap();
        assert_eq!(
            f.bytes(),
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0, 42, 0x08, 0x00, b'a', b'b',
                b'c', b'd'
            ]
        );
    }

    #[test]
    fn physical_drops_short_frames_and_missing_vids() {
        let mut buf = frame(&[0; 13]);
        let mut f = BufFrame::new(&mut buf[..HEADROOM + 13], HEADROOM);
        assert_eq!(physical(&mut f, Vid::new(1)), Err(DropReason::TooShort));
        let (mut buf, len) = eth([0x08, 0x00], b"");
        let mut f = BufFrame::new(&mut buf[..HEADROOM + len], HEADROOM);
        assert_eq!(physical(&mut f, None), Err(DropReason::NoVid));
        assert_eq!(f.len(), 14, "a dropped frame is left as it was");
    }

    #[test]
    fn physical_needs_headroom() {
        let (mut buf, len) = eth([0x08, 0x00], b"");
        let mut f = BufFrame::new(&mut buf[HEADROOM - 3..HEADROOM + len], 3);
        assert_eq!(physical(&mut f, Vid::new(7)), Err(DropReason::NoHeadroom));
    }

    #[test]
    fn router_pops_exactly_one_tag() {
        let (mut buf, len) = eth(
            [0x81, 0x00],
            &[0xe0, 0x05, 0x81, 0x00, 0x00, 0x09, 0x88, 0xb5],
        );
        let mut f = BufFrame::new(&mut buf[..HEADROOM + len], HEADROOM);
        // PCP 7, DEI 0 must not reach the VID.
        assert_eq!(router(&mut f, RouterMode::Managed).map(Vid::get), Ok(5));
        assert_eq!(
            f.bytes(),
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0x00, 0x09, 0x88, 0xb5
            ]
        );
    }

    #[test]
    fn router_rejects_what_is_not_ours() {
        let cases: [(&[u8; 2], &[u8], DropReason); 5] = [
            (&[0x88, 0xa8], &[0x00, 0x05, 0x08, 0x00], DropReason::BadTag),
            (&[0x08, 0x00], &[0x00, 0x05, 0x08, 0x00], DropReason::BadTag),
            (&[0x81, 0x00], &[0x00, 0x05, 0x08], DropReason::BadTag),
            (
                &[0x81, 0x00],
                &[0xf0, 0x00, 0x08, 0x00],
                DropReason::ReservedVid,
            ),
            (
                &[0x81, 0x00],
                &[0x0f, 0xff, 0x08, 0x00],
                DropReason::ReservedVid,
            ),
        ];
        for (tpid, rest, reason) in cases {
            let (mut buf, len) = eth(*tpid, rest);
            let mut f = BufFrame::new(&mut buf[..HEADROOM + len], HEADROOM);
            assert_eq!(
                router(&mut f, RouterMode::Managed),
                Err(reason),
                "{tpid:x?} {rest:x?}"
            );
            assert_eq!(f.len(), len, "a dropped frame is left as it was");
        }
    }

    #[test]
    fn drop_in_router_never_reaches_lo_or_ingress() {
        for (vid, ingress, ok) in [(1u8, 3, false), (3, 3, false), (4, 3, true)] {
            let (mut buf, len) = eth([0x81, 0x00], &[0x00, vid, 0x08, 0x00]);
            let mut f = BufFrame::new(&mut buf[..HEADROOM + len], HEADROOM);
            let got = router(
                &mut f,
                RouterMode::DropIn {
                    ingress_ifindex: ingress,
                },
            );
            assert_eq!(got.is_ok(), ok, "vid {vid} ingress {ingress}: {got:?}");
        }
    }
}
