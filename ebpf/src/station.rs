//! The Wi-Fi station address translation on the tc path
//! (`xdp_forwarder_common::station_nat`, docs/wifi.md), called by the tc
//! programs of `tc.rs`:
//! - [`to_air`]: the router's program, after the pop, on a frame for a
//!   port `fwd_stations` marks as a station: the rewrites, the checksum
//!   fix, what the frame teaches the table;
//! - [`to_router`]: the physical program of a station port, before the
//!   push: EAPOL and RSN pre-authentication, and unicast to the station for
//!   an address no VM owns, stay with the net-vm's own stack; a reply to a
//!   VM gets the VM's MAC back.
//!
//! Each port's counts are in `fwd_station_counts[VID]`.

use aya_ebpf::{helpers::bpf_ktime_get_coarse_ns, programs::TcContext};
use xdp_forwarder_common::{
    DropReason, Frame,
    frame::NoRoom,
    station_nat::{
        Checksums, ETH_P_PAE, ETH_P_PREAUTH, ForStation, IpKey, Mac, ToAir, ToRouter, toward_air,
        toward_router,
    },
    station_table::{NAT_REFRESH_NS, NatEntry, NatKey, StationCounters, station_mac},
};

use crate::maps::{STATION_COUNTS, STATION_NAT, STATIONS};

/// `BPF_F_MARK_MANGLED_0`: a zero UDP checksum stays zero, a computed zero
/// is written 0xffff.
const BPF_F_MARK_MANGLED_0: u64 = 1 << 5;
/// `BPF_ANY`, `BPF_NOEXIST`.
const ANY: u64 = 0;
const NOEXIST: u64 = 1;

/// Frames up to this many bytes are made linear whole before the
/// translation reads them: every NDP, ARP and DHCP message real stacks
/// send fits (an NDP message that does not is dropped as untranslatable,
/// counted). Longer ones (TCP aggregates) get only their headers pulled,
/// [`PULL_HEADERS`] bytes: an Ethernet header, one tag and an IPv4 header
/// with options or an IPv6 header.
const PULL_WHOLE: u32 = 1536;
const PULL_HEADERS: u32 = 128;

/// [`Frame`] over the skb's linear data (direct packet access).
struct TcFrame<'a>(&'a TcContext);

impl Frame for TcFrame<'_> {
    #[inline(always)]
    fn adjust_head(&mut self, _delta: i32) -> Result<(), NoRoom> {
        // The translation never changes a frame's size.
        Err(NoRoom)
    }

    #[inline(always)]
    fn at<const N: usize>(&mut self, offset: usize) -> Option<&mut [u8; N]> {
        // The skb's linear data, as pulled.
        crate::xdp_frame::packet_at(self.0.data(), self.0.data_end(), offset)
    }
}

/// The MAC of the station on the port of `vid`; `None`: its slot is empty.
#[inline(always)]
pub fn station(vid: u32) -> Option<Mac> {
    STATIONS.get(&vid).and_then(|slot| station_mac(slot.mac))
}

#[inline(always)]
fn count(vid: u32, f: impl FnOnce(&mut StationCounters)) {
    STATION_COUNTS.update(&vid, f);
}

/// Makes the headers (or the whole of a short frame) linear.
#[inline(always)]
fn pull(ctx: &TcContext) -> bool {
    let len = ctx.len();
    let want = if len <= PULL_WHOLE { len } else { PULL_HEADERS };
    ctx.pull_data(want).is_ok()
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: plain helper call.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// Router → the station of `vid` (MAC `station`): translates the frame
/// (the router's tag already popped), applies the checksum fix, learns.
/// `Err`: do not send it.
#[inline(always)]
pub fn to_air(ctx: &TcContext, vid: u32, station: Mac) -> Result<(), DropReason> {
    if !pull(ctx) {
        return Err(DropReason::Untranslatable);
    }
    let (learn, checksum) = match toward_air(&mut TcFrame(ctx), station, Checksums::Report) {
        ToAir::Translated { learn, checksum } => (learn, checksum),
        ToAir::Drop(why) => return Err(why.into()),
    };
    if let Some(fix) = checksum {
        let flags = if fix.udp { BPF_F_MARK_MANGLED_0 } else { 0 };
        // Size 0 in the flags: add the difference; the kernel leaves a
        // CHECKSUM_PARTIAL skb's field alone (the device sums the payload).
        if ctx
            .l4_csum_replace(fix.offset, 0, u64::from(fix.wsum()), flags)
            .is_err()
        {
            return Err(DropReason::Untranslatable);
        }
    }
    let mut learned = false;
    if let Some(learn) = learn {
        let key = NatKey::new(vid, learn.ip);
        let entry = NatEntry::new(learn.mac, now());
        match STATION_NAT.get(&key) {
            Some(old) => {
                if old.mac != entry.mac || entry.seen_ns.wrapping_sub(old.seen_ns) > NAT_REFRESH_NS
                {
                    STATION_NAT.insert(&key, &entry, ANY);
                }
            }
            None => learned = STATION_NAT.insert(&key, &entry, NOEXIST),
        }
    }
    count(vid, |c| {
        c.to_air += 1;
        if learned {
            c.learned += 1;
        }
    });
    Ok(())
}

/// The station of `vid` → router: `Some`: the frame is the net-vm's own
/// (pass it to the stack, counted); `None`: forward it, with the VM's MAC
/// put back where the table knows it.
#[inline(always)]
pub fn to_router(ctx: &TcContext, vid: u32) -> Option<ForStation> {
    // The supplicant's frames first, by the EtherType the kernel read
    // (`skb->protocol`, past a tag it took into metadata): kept even if
    // the headers cannot be pulled or the slot was emptied.
    let own = match u16::from_be(ctx.skb.protocol() as u16) {
        ETH_P_PAE => Some(ForStation::Eapol),
        ETH_P_PREAUTH => Some(ForStation::RsnPreAuth),
        _ => None,
    };
    if let Some(why) = own {
        count(vid, |c| c.record_pass(why));
        return own;
    }
    // No MAC to translate to: forwarded as an Ethernet port's.
    let station = station(vid)?;
    if !pull(ctx) {
        // Nothing readable: the physical program's own checks decide.
        return None;
    }
    let now = now();
    let lookup = |ip: &IpKey| {
        let key = NatKey::new(vid, *ip);
        STATION_NAT
            .get(&key)
            .filter(|e| e.fresh(now))
            .map(|e| e.vm_mac())
    };
    match toward_router(&mut TcFrame(ctx), station, lookup) {
        ToRouter::Translated { .. } => {
            count(vid, |c| c.to_router += 1);
            None
        }
        ToRouter::Unchanged => None,
        ToRouter::Station(why) => {
            count(vid, |c| c.record_pass(why));
            Some(why)
        }
    }
}
