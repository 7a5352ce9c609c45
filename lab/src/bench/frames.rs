//! Frames built so that every run takes the forwarding path, whatever the
//! kernel leaves of the previous run.

use xdp_forwarder_common::vlan::{MACS_LEN as ETHERTYPE_OFFSET, TPID_8021Q as ETH_P_8021Q};

/// Local experimental EtherType: nothing answers it.
const ETHERTYPE_TEST: u16 = 0x88b5;

/// An untagged frame of `len` bytes.
pub fn untagged(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[ETHERTYPE_OFFSET..ETHERTYPE_OFFSET + 2].copy_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    f
}

/// `inner` under `tags` 802.1Q tags of `vid`: a non-live test run does not
/// reset the frame between repeats, so the router pops one tag per repeat
/// and needs one per repeat to stay on the forwarding path.
pub fn stacked(inner: &[u8], vid: u16, tags: usize) -> Vec<u8> {
    let mut f = inner[..ETHERTYPE_OFFSET].to_vec();
    for _ in 0..tags {
        f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&inner[ETHERTYPE_OFFSET..]);
    f
}

/// A frame of `len` bytes on the wire from the router's side: the
/// MACs of [`untagged`] swapped (unicast both ways, so a bridge learns and
/// forwards them), one 802.1Q tag of `vid`.
pub fn tagged(vid: u16, len: usize) -> Vec<u8> {
    let mut inner = untagged(len - 4);
    let (dst, src) = inner.split_at_mut(6);
    dst.swap_with_slice(&mut src[..6]);
    stacked(&inner, vid, 1)
}

/// A tagged frame of `len` bytes that a pop leaves byte-for-byte as it was.
/// Live frames recycle their pages with the data as the program left it; the
/// pop moves the 12 MAC bytes 4 bytes up, so bytes 0..16 repeat with period
/// 4 (`81 00 TCI`), which makes the moved bytes equal to those they cover.
/// (The MACs are then `81:00:..`, a group address: the sink does not care.)
pub fn pop_fixed_point(vid: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    let mut unit = ETH_P_8021Q.to_be_bytes().to_vec();
    unit.extend_from_slice(&vid.to_be_bytes());
    for chunk in f[..16].chunks_mut(4) {
        chunk.copy_from_slice(&unit);
    }
    f[16..18].copy_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pop_leaves_the_fixed_point_unchanged() {
        let f = pop_fixed_point(100, 64);
        // What the pop does in place: MACs (0..12) moved to 4..16.
        let mut after = f.clone();
        after.copy_within(0..12, 4);
        assert_eq!(after, f);
        assert_eq!(u16::from_be_bytes([f[12], f[13]]), ETH_P_8021Q);
        assert_eq!(u16::from_be_bytes([f[14], f[15]]) & 0xfff, 100);
    }

    #[test]
    fn a_tagged_frame_is_len_bytes_from_the_router_side() {
        let f = tagged(100, 64);
        assert_eq!(f.len(), 64);
        assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        assert_eq!(&f[12..18], &[0x81, 0, 0, 100, 0x88, 0xb5]);
    }

    #[test]
    fn stacked_tags_sit_between_macs_and_ethertype() {
        let inner = untagged(64);
        let f = stacked(&inner, 7, 3);
        assert_eq!(f.len(), 64 + 12);
        assert_eq!(&f[12..16], &[0x81, 0, 0, 7]);
        assert_eq!(&f[24..], &inner[12..]);
    }
}
