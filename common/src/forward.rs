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
pub fn push_port_tag<F: Frame>(frame: &mut F, vid: Option<Vid>) -> Result<(), DropReason> {
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
pub fn pop_port_tag<F: Frame>(frame: &mut F, mode: RouterMode) -> Result<Vid, DropReason> {
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
    fn physical_pushes_one_tag_after_the_macs() {
        let (mut buf, len) = eth([0x08, 0x00], b"abcd");
        let mut f = BufFrame::new(&mut buf[..HEADROOM + len], HEADROOM);
        push_port_tag(&mut f, Vid::new(42)).unwrap();
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
        assert_eq!(
            push_port_tag(&mut f, Vid::new(1)),
            Err(DropReason::TooShort)
        );
        let (mut buf, len) = eth([0x08, 0x00], b"");
        let mut f = BufFrame::new(&mut buf[..HEADROOM + len], HEADROOM);
        assert_eq!(push_port_tag(&mut f, None), Err(DropReason::NoVid));
        assert_eq!(f.len(), 14, "a dropped frame is left as it was");
    }

    #[test]
    fn physical_needs_headroom() {
        let (mut buf, len) = eth([0x08, 0x00], b"");
        let mut f = BufFrame::new(&mut buf[HEADROOM - 3..HEADROOM + len], 3);
        assert_eq!(
            push_port_tag(&mut f, Vid::new(7)),
            Err(DropReason::NoHeadroom)
        );
    }

    #[test]
    fn router_pops_exactly_one_tag() {
        let (mut buf, len) = eth(
            [0x81, 0x00],
            &[0xe0, 0x05, 0x81, 0x00, 0x00, 0x09, 0x88, 0xb5],
        );
        let mut f = BufFrame::new(&mut buf[..HEADROOM + len], HEADROOM);
        // PCP 7, DEI 0 must not reach the VID.
        assert_eq!(
            pop_port_tag(&mut f, RouterMode::Managed).map(Vid::get),
            Ok(5)
        );
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
                pop_port_tag(&mut f, RouterMode::Managed),
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
            let got = pop_port_tag(
                &mut f,
                RouterMode::DropIn {
                    ingress_ifindex: ingress,
                },
            );
            assert_eq!(got.is_ok(), ok, "vid {vid} ingress {ingress}: {got:?}");
        }
    }
}
