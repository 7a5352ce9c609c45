//! The Wi-Fi station address translation (`xdp_forwarder_common::station_nat`)
//! on the tc path, the first of the Wi-Fi programs (docs/wifi.md):
//! - `station_nat_to_air`: a frame about to leave through the station is
//!   translated (`toward_air`), its VM's address learned into
//!   `fwd_station_nat`; a frame that cannot be translated whole is shot;
//! - `station_nat_to_router`: a frame the station received gets the MAC
//!   the table holds for its destination (`toward_router`).
//!
//! Neither redirects: the router and physical programs are to call the same
//! code before their redirect (docs/wifi.md, "Where the translation hooks
//! in"); here every frame that is not shot is `TC_ACT_OK`. Each verdict is
//! counted in `fwd_station_nat_counts` (slots: `slot_*` below). The station's
//! MAC is a load-time global for now. Not attached by the forwarder yet;
//! golden frames under BPF_PROG_TEST_RUN: forwarder/tests/station_nat_tc.rs.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    macros::{classifier, map},
    maps::{LruHashMap, PerCpuArray},
    programs::TcContext,
};
use xdp_forwarder_common::{
    Frame,
    frame::NoRoom,
    station_nat::{
        Checksums, ForStation, IpKey, Mac, ToAir, ToAirDrop, ToRouter, toward_air, toward_router,
    },
};
// The license section and the panic handler.
use xdp_forwarder_ebpf as _;

/// The station's MAC, set by the loader.
#[unsafe(no_mangle)]
static STATION_MAC: Mac = [0; 6];

/// IP (IPv4-mapped for IPv4) → the VM's MAC in the first 6 of 8 bytes (a
/// `u64` here: BPF refuses the unaligned stack stores LLVM makes of a byte
/// array built in pieces).
#[map(name = "fwd_station_nat")]
static TABLE: LruHashMap<[u8; 16], u64> = LruHashMap::with_max_entries(4096, 0);

/// Slot 0: translated toward the AP; 1..=6: dropped, by `ToAirDrop` (in
/// `ToAirDrop::ALL`'s order); 7: translated toward the router; 8: crossed
/// unchanged; 9..=11: for the station, by `ForStation` (in
/// `ForStation::ALL`'s order); 12: a learned address new to the table.
#[map(name = "fwd_station_nat_counts")]
static COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(13, 0);

const SLOT_TO_AIR: u32 = 0;
const SLOT_TO_ROUTER: u32 = 7;
const SLOT_UNCHANGED: u32 = 8;
const SLOT_NEW_ENTRY: u32 = 12;

/// `BPF_F_MARK_MANGLED_0`: a zero UDP checksum stays zero, a computed zero
/// is written 0xffff.
const BPF_F_MARK_MANGLED_0: u64 = 1 << 5;
/// `BPF_NOEXIST`.
const NOEXIST: u64 = 1;

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
        let start = self.0.data() + offset;
        if start + N > self.0.data_end() {
            return None;
        }
        // SAFETY: the check above (which the verifier sees too) proves the N
        // bytes from `start` lie inside the linear data, and nothing else
        // refers to them while the reference lives.
        Some(unsafe { &mut *(start as *mut [u8; N]) })
    }
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(n) = COUNTS.get_ptr_mut(slot) {
        // SAFETY: this CPU's own slot; a program is not preempted by itself.
        unsafe { *n += 1 };
    }
}

#[inline(always)]
fn station() -> Mac {
    // SAFETY: a plain global the loader set; volatile so the load stays.
    unsafe { core::ptr::read_volatile(&STATION_MAC) }
}

/// Makes the whole frame linear, so the headers can be read directly.
#[inline(always)]
fn pull(ctx: &TcContext) -> bool {
    ctx.pull_data(ctx.len()).is_ok()
}

#[classifier]
pub fn station_nat_to_air(ctx: TcContext) -> i32 {
    if !pull(&ctx) {
        count(1 + ToAirDrop::TooShort as u32);
        return TC_ACT_SHOT;
    }
    let verdict = toward_air(&mut TcFrame(&ctx), station(), Checksums::Report);
    match verdict {
        ToAir::Translated { learn, checksum } => {
            if let Some(fix) = checksum {
                let flags = if fix.udp { BPF_F_MARK_MANGLED_0 } else { 0 };
                // Size 0 in the flags: add `diff`; the kernel leaves a
                // CHECKSUM_PARTIAL skb's field alone.
                if ctx
                    .l4_csum_replace(fix.offset, 0, u64::from(fix.wsum()), flags)
                    .is_err()
                {
                    count(1 + ToAirDrop::BadHeader as u32);
                    return TC_ACT_SHOT;
                }
            }
            if let Some(learn) = learn {
                let [a, b, c, d, e, f] = learn.mac;
                let value = u64::from_ne_bytes([a, b, c, d, e, f, 0, 0]);
                if TABLE.insert(&learn.ip.0, &value, NOEXIST).is_ok() {
                    count(SLOT_NEW_ENTRY);
                } else {
                    let _ = TABLE.insert(&learn.ip.0, &value, 0);
                }
            }
            count(SLOT_TO_AIR);
            TC_ACT_OK
        }
        ToAir::Drop(why) => {
            count(1 + why as u32);
            TC_ACT_SHOT
        }
    }
}

#[classifier]
pub fn station_nat_to_router(ctx: TcContext) -> i32 {
    if !pull(&ctx) {
        count(SLOT_UNCHANGED);
        return TC_ACT_OK;
    }
    let lookup = |ip: &IpKey| {
        // SAFETY: the value is copied out before anything else runs.
        unsafe { TABLE.get(&ip.0) }.map(|v| {
            let [a, b, c, d, e, f, _, _] = v.to_ne_bytes();
            [a, b, c, d, e, f]
        })
    };
    match toward_router(&mut TcFrame(&ctx), station(), lookup) {
        ToRouter::Translated { .. } => count(SLOT_TO_ROUTER),
        ToRouter::Unchanged => count(SLOT_UNCHANGED),
        ToRouter::Station(why) => count(9 + why as u32),
    }
    TC_ACT_OK
}

// The slots above follow the enums' order.
const _: () = {
    assert!(ToAirDrop::ALL.len() == 6 && ToAirDrop::StationProtocol as u32 == 5);
    assert!(ForStation::ALL.len() == 3 && ForStation::NoOwner as u32 == 2);
};
