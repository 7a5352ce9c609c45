//! The station address translation's table and counters as the kernel
//! holds them (the frame logic is [`station_nat`](crate::station_nat)):
//! the layouts the tc programs and user space share, and the table's
//! timing rules. docs/wifi.md has the design.

use crate::station_nat::{ForStation, IpKey, Mac};

/// A table entry not seen for this long is a miss for the programs and
/// deleted by user space (the daemon's reconcile): above IPv6's and ARP's
/// reachable and stale times, so a quiet VM that is still there refreshes
/// its entry with its own neighbour traffic first. Nanoseconds of
/// `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC_COARSE).
pub const NAT_MAX_AGE_NS: u64 = 600_000_000_000;

/// A translated frame rewrites its entry only when the VM's MAC changed
/// or the entry is older than this (ns): the per-frame cost stays a lookup.
pub const NAT_REFRESH_NS: u64 = 1_000_000_000;

/// `fwd_stations[VID]`: the port's station MAC in the first 6 bytes of
/// `mac` (wire order, in memory), [`StationSlot::ACTIVE`] in byte 6; all
/// zero for a port that is not a Wi-Fi station. A `u64`, not a byte array:
/// BPF refuses the unaligned stack stores LLVM makes of an array copied in
/// pieces.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StationSlot {
    pub mac: u64,
    /// Entries user space deleted (aged out or flushed): with `learned`
    /// and the entries left, what the kernel's LRU evicted.
    pub removed: u64,
}

// SAFETY: `repr(C)` u64s only: no padding, any bit pattern valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for StationSlot {}

impl StationSlot {
    /// Byte 6 of `mac`: the slot is in use.
    pub const ACTIVE: u8 = 1;

    /// The slot of a station whose MAC is `mac`.
    pub const fn station(mac: Mac, removed: u64) -> Self {
        let [a, b, c, d, e, f] = mac;
        StationSlot {
            mac: u64::from_ne_bytes([a, b, c, d, e, f, Self::ACTIVE, 0]),
            removed,
        }
    }

    /// The station's MAC, if the slot is in use.
    #[inline(always)]
    pub fn station_mac(&self) -> Option<Mac> {
        station_mac(self.mac)
    }
}

/// The MAC in a slot's `mac` word, if the slot is in use.
#[inline(always)]
pub fn station_mac(word: u64) -> Option<Mac> {
    let [a, b, c, d, e, f, active, _] = word.to_ne_bytes();
    (active == StationSlot::ACTIVE).then_some([a, b, c, d, e, f])
}

/// A key of `fwd_station_nat`: an address on the Wi-Fi port of `vid`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatKey {
    pub ip: IpKey,
    pub vid: u32,
    pub _pad: u32,
}

// SAFETY: `repr(C)`, explicit padding; any bit pattern valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for NatKey {}

impl NatKey {
    #[inline(always)]
    pub const fn new(vid: u32, ip: IpKey) -> Self {
        NatKey { ip, vid, _pad: 0 }
    }
}

/// A value of `fwd_station_nat`: the VM's MAC (first 6 bytes of `mac`, in
/// memory) and when a frame from it last proved it (`bpf_ktime_get_coarse_ns`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatEntry {
    pub mac: u64,
    pub seen_ns: u64,
}

// SAFETY: `repr(C)` u64s only.
#[cfg(feature = "user")]
unsafe impl aya::Pod for NatEntry {}

impl NatEntry {
    #[inline(always)]
    pub const fn new(mac: Mac, seen_ns: u64) -> Self {
        let [a, b, c, d, e, f] = mac;
        NatEntry {
            mac: u64::from_ne_bytes([a, b, c, d, e, f, 0, 0]),
            seen_ns,
        }
    }

    #[inline(always)]
    pub fn vm_mac(&self) -> Mac {
        let [a, b, c, d, e, f, _, _] = self.mac.to_ne_bytes();
        [a, b, c, d, e, f]
    }

    /// Whether the entry still names its VM at `now_ns`.
    #[inline(always)]
    pub fn fresh(&self, now_ns: u64) -> bool {
        now_ns.saturating_sub(self.seen_ns) <= NAT_MAX_AGE_NS
    }
}

/// What the translation did on one Wi-Fi port, on one CPU (or summed).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StationCounters {
    /// Frames translated toward the AP (by the router's program).
    pub to_air: u64,
    /// Frames for the station's MAC given a VM's MAC (toward the router).
    pub to_router: u64,
    /// Addresses new to the table (an insert that found no entry).
    pub learned: u64,
    /// Frames passed to the net-vm's own stack, by [`ForStation`]:
    /// EAPOL, RSN pre-authentication, and `misses` (unicast to the station
    /// for an address no VM owns).
    pub eapol: u64,
    pub rsn_preauth: u64,
    pub misses: u64,
}

// SAFETY: `repr(C)` u64s only.
#[cfg(feature = "user")]
unsafe impl aya::Pod for StationCounters {}

impl StationCounters {
    /// Counts a frame passed to the station's own stack.
    #[inline(always)]
    pub fn record_pass(&mut self, why: ForStation) {
        match why {
            ForStation::Eapol => self.eapol += 1,
            ForStation::RsnPreAuth => self.rsn_preauth += 1,
            ForStation::NoOwner => self.misses += 1,
        }
    }

    /// Frames passed to the station's stack for `why`.
    pub fn passed(&self, why: ForStation) -> u64 {
        match why {
            ForStation::Eapol => self.eapol,
            ForStation::RsnPreAuth => self.rsn_preauth,
            ForStation::NoOwner => self.misses,
        }
    }

    /// Adds another CPU's counters (wrapping, as the kernel's would).
    pub fn add(&mut self, o: &StationCounters) {
        self.to_air = self.to_air.wrapping_add(o.to_air);
        self.to_router = self.to_router.wrapping_add(o.to_router);
        self.learned = self.learned.wrapping_add(o.learned);
        self.eapol = self.eapol.wrapping_add(o.eapol);
        self.rsn_preauth = self.rsn_preauth.wrapping_add(o.rsn_preauth);
        self.misses = self.misses.wrapping_add(o.misses);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_holds_the_mac_and_says_it_is_in_use() {
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        assert_eq!(StationSlot::station(mac, 3).station_mac(), Some(mac));
        assert_eq!(StationSlot::default().station_mac(), None);
        assert_eq!(NatEntry::new(mac, 7).vm_mac(), mac);
    }

    #[test]
    fn entries_age_out_after_the_max_age() {
        let e = NatEntry::new([2, 0, 0, 0, 0, 1], 1_000);
        assert!(e.fresh(1_000 + NAT_MAX_AGE_NS));
        assert!(!e.fresh(1_001 + NAT_MAX_AGE_NS));
        // A clock behind the entry (another CPU's coarse time) is fresh.
        assert!(e.fresh(10));
    }

    #[test]
    fn passes_count_by_reason() {
        let mut c = StationCounters::default();
        for why in ForStation::ALL {
            c.record_pass(why);
        }
        c.record_pass(ForStation::NoOwner);
        assert_eq!(
            ForStation::ALL.map(|w| c.passed(w)),
            [1, 1, 2],
            "eapol, rsn_preauth, misses"
        );
    }
}
