//! What each program decides on the kernel's socket-buffer path (the tc
//! hook), where the kernel, not the program, moves the bytes.
//!
//! At tc ingress the kernel has already taken the outer tag out of the frame
//! into the skb's metadata (`skb_vlan_untag` in `__netif_receive_skb_core`),
//! and so has every NIC with receive VLAN offload on. The programs push and
//! pop with `bpf_skb_vlan_push` / `bpf_skb_vlan_pop`, which keep a tag in
//! metadata in its place (a pushed tag becomes the outer one, the tag that
//! was outer goes back into the frame behind it), and keep GSO and checksum
//! state intact. So these functions only decide; the tags of the frame are
//! never lost nor reordered.

use crate::{DropReason, Vid, vlan::ETH_HLEN, vlan::TPID_8021Q};

/// A VLAN tag as the skb carries it: TPID and TCI in host order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkbTag {
    pub tpid: u16,
    pub tci: u16,
}

/// Physical port: the TCI to push on a frame of `len` bytes (without a tag
/// held in metadata), whose port has `vid`.
#[inline(always)]
pub fn port_tag_tci(len: u32, vid: Option<Vid>) -> Result<u16, DropReason> {
    if len < ETH_HLEN as u32 {
        return Err(DropReason::TooShort);
    }
    vid.map(Vid::tci).ok_or(DropReason::NoVid)
}

/// Router: the VID of the frame's outer tag, which must be 802.1Q (an
/// 802.1ad tag is a service provider's, never ours); `None` when the frame
/// has no tag at all.
#[inline(always)]
pub fn outer_port_vid(len: u32, outer: Option<SkbTag>) -> Result<Vid, DropReason> {
    if len < ETH_HLEN as u32 {
        return Err(DropReason::TooShort);
    }
    match outer {
        Some(SkbTag { tpid, tci }) if tpid == TPID_8021Q => Vid::from_tci(tci),
        _ => Err(DropReason::BadTag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vlan::TPID_8021AD;

    #[test]
    fn physical_tags_with_the_port_vid() {
        assert_eq!(port_tag_tci(60, Vid::new(7)), Ok(7));
        assert_eq!(port_tag_tci(13, Vid::new(7)), Err(DropReason::TooShort));
        assert_eq!(port_tag_tci(60, None), Err(DropReason::NoVid));
    }

    #[test]
    fn router_takes_only_an_outer_8021q_tag() {
        let tag = |tpid, tci| Some(SkbTag { tpid, tci });
        // PCP 7 and DEI never reach the VID.
        assert_eq!(
            outer_port_vid(60, tag(TPID_8021Q, 0xf005)).map(Vid::get),
            Ok(5)
        );
        assert_eq!(
            outer_port_vid(60, tag(TPID_8021AD, 5)),
            Err(DropReason::BadTag)
        );
        assert_eq!(outer_port_vid(60, None), Err(DropReason::BadTag));
        assert_eq!(
            outer_port_vid(60, tag(TPID_8021Q, 0)),
            Err(DropReason::ReservedVid)
        );
        assert_eq!(
            outer_port_vid(60, tag(TPID_8021Q, 0x0fff)),
            Err(DropReason::ReservedVid)
        );
        assert_eq!(
            outer_port_vid(10, tag(TPID_8021Q, 5)),
            Err(DropReason::TooShort)
        );
    }
}
