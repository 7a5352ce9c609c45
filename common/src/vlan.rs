//! 802.1Q framing constants and the VLAN identifier.

use crate::DropReason;

/// Destination + source MAC addresses.
pub const MACS_LEN: usize = 12;
/// An untagged Ethernet header: MACs + EtherType.
pub const ETH_HLEN: usize = 14;
/// One 802.1Q tag: TPID + TCI.
pub const VLAN_HLEN: usize = 4;
/// An Ethernet header with one tag: MACs + TPID + TCI + EtherType.
pub const TAGGED_HLEN: usize = ETH_HLEN + VLAN_HLEN;
/// The TPID the physical program pushes and the router program accepts.
pub const TPID_8021Q: u16 = 0x8100;
/// Service-provider tag (QinQ): never ours.
pub const TPID_8021AD: u16 = 0x88a8;
/// The VID bits of a TCI; the top four are PCP (3) and DEI (1).
pub const VID_MASK: u16 = 0x0fff;
/// `lo` is ifindex 1 in every network namespace.
pub const LOOPBACK_IFINDEX: u32 = 1;

/// A usable VLAN identifier: 1..=4094 (0 and 4095 are reserved by 802.1Q).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vid(u16);

impl Vid {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 4094;

    /// `Some` when `value` is a usable VID.
    #[inline(always)]
    pub const fn new(value: u32) -> Option<Vid> {
        if value >= Vid::MIN as u32 && value <= Vid::MAX as u32 {
            Some(Vid(value as u16))
        } else {
            None
        }
    }

    /// The VID carried by a TCI; PCP and DEI never leak into it.
    #[inline(always)]
    pub const fn from_tci(tci: u16) -> Result<Vid, DropReason> {
        match Vid::new((tci & VID_MASK) as u32) {
            Some(vid) => Ok(vid),
            None => Err(DropReason::ReservedVid),
        }
    }

    #[inline(always)]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The TCI we push: PCP 0, DEI 0.
    #[inline(always)]
    pub const fn tci(self) -> u16 {
        self.0
    }
}
