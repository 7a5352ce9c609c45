//! Shared pieces of the two XDP programs: the pinned maps, the load-time
//! globals, the [`Frame`] implementation over `xdp_md` and the programs'
//! bodies ([`programs`]); the objects are the thin entry points in `src/bin/`.
#![no_std]

pub mod maps;
pub mod programs;
pub mod station;
pub mod tc;
pub mod xdp_frame;

use aya_ebpf::bindings::xdp_action;
use xdp_forwarder_common::DropReason;
pub use xdp_frame::XdpFrame;

/// Set to 1 by our loader (managed mode); stays 0 under a foreign loader, which
/// gives the original's drop-in behaviour.
#[unsafe(no_mangle)]
static MANAGED: u8 = 0;

/// Managed physical program: the VID of the port it is attached to.
#[unsafe(no_mangle)]
static PORT_VID: u32 = 0;

/// Managed physical tc program: 1 when its port is a Wi-Fi station.
#[unsafe(no_mangle)]
static PORT_STATION: u8 = 0;

/// 0 turns counting off: the benchmark measures what counting costs.
#[unsafe(no_mangle)]
static COUNTING: u8 = 1;

/// Whether our own loader loaded this program.
#[inline(always)]
pub fn managed() -> bool {
    // SAFETY: reading a plain global; volatile so that the compiler keeps the
    // load (the loader sets the value, the verifier then prunes dead branches).
    unsafe { core::ptr::read_volatile(&MANAGED) != 0 }
}

/// The VID a managed physical program was loaded with.
#[inline(always)]
pub fn port_vid() -> u32 {
    // SAFETY: as in `managed`.
    unsafe { core::ptr::read_volatile(&PORT_VID) }
}

/// Whether the physical tc program's port is a Wi-Fi station.
#[inline(always)]
pub fn port_station() -> bool {
    // SAFETY: as in `managed`.
    unsafe { core::ptr::read_volatile(&PORT_STATION) != 0 }
}

/// Whether the loader left counting on.
#[inline(always)]
pub fn counting() -> bool {
    // SAFETY: as in `managed`.
    unsafe { core::ptr::read_volatile(&COUNTING) != 0 }
}

/// Counts the frame (`len` bytes as received) and turns the verdict into an
/// XDP action.
#[inline(always)]
pub fn account(len: usize, verdict: Result<(), DropReason>) -> u32 {
    if counting() {
        maps::COUNTERS.update(|c| c.record(len as u64, verdict));
    }
    match verdict {
        Ok(()) => xdp_action::XDP_REDIRECT,
        Err(_) => xdp_action::XDP_DROP,
    }
}

/// The kernel reads the program's license from this section.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Nothing in the programs can panic (the verifier would refuse the loop);
/// only the BPF build needs a handler, the host build uses std's.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
