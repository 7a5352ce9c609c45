//! Counts, per XDP program, the redirects the kernel refused after the
//! program had returned `XDP_REDIRECT`: a classic tracepoint program on
//! `xdp:xdp_redirect_err` (generic XDP: a frame over the target's MTU + 18,
//! EMSGSIZE; a target gone or unable to take it; map redirects report there
//! too), whose records name the redirecting program's id; and a raw
//! tracepoint program on `xdp_devmap_xmit` (native redirects the target's
//! driver refused when the queue was flushed), which finds that id from
//! the receiving device. Embedded, never exported: one
//! instance per pin dir, its counts in the pinned `fwd_redirect_errors`.
#![no_std]
#![no_main]

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    helpers::{bpf_map_lookup_elem, bpf_map_update_elem, bpf_probe_read_kernel},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
// The license section and the panic handler.
use xdp_forwarder_common::maps::REDIRECT_ERRORS_ENTRIES;
use xdp_forwarder_ebpf as _;

/// The offset of `prog_id` in the tracepoints' record; set by the loader
/// from the events' `format` file (8 from Linux 4.x to 6.18: right after
/// the common fields). A read-only global: the verifier sees a constant.
#[unsafe(no_mangle)]
static PROG_ID_OFFSET: u32 = 8;

/// `BPF_MAP_TYPE_LRU_PERCPU_HASH`, u32 program id → u64 refusals, as libbpf
/// lays a BTF map definition out.
#[repr(C)]
pub struct RedirectErrors {
    r#type: *const [i32; 10],
    key: *const u32,
    value: *const u64,
    max_entries: *const [i32; REDIRECT_ERRORS_ENTRIES as usize],
}

// SAFETY: the members are never dereferenced; the loader replaces the whole
// definition with a map reference.
unsafe impl Sync for RedirectErrors {}

#[unsafe(link_section = ".maps")]
#[unsafe(export_name = "fwd_redirect_errors")]
pub static REDIRECT_ERRORS: RedirectErrors = RedirectErrors {
    r#type: ptr::null(),
    key: ptr::null(),
    value: ptr::null(),
    max_entries: ptr::null(),
};

/// `BPF_NOEXIST`: a racing first insert on another CPU is not overwritten
/// (each CPU has its own value anyway).
const BPF_NOEXIST: u64 = 1;

#[tracepoint]
pub fn redirect_errors(ctx: TracePointContext) -> u32 {
    // SAFETY: a plain global the loader set; volatile so the load stays.
    let offset = unsafe { core::ptr::read_volatile(&PROG_ID_OFFSET) };
    // SAFETY: a probe read inside the tracepoint's record.
    let Ok(prog_id) = (unsafe { ctx.read_at::<u32>(offset as usize) }) else {
        return 0;
    };
    count(prog_id, 1);
    0
}

// Offsets in the running kernel's structures, set by the loader from its
// BTF (see `GLOBAL_DEVMAP_OFFSETS`); read-only globals.
#[unsafe(no_mangle)]
static OFF_DEV_DRV_LINK: u32 = 0;
#[unsafe(no_mangle)]
static OFF_DEV_DRV_PROG: u32 = 0;
#[unsafe(no_mangle)]
static OFF_XDP_LINK_PROG: u32 = 0;
#[unsafe(no_mangle)]
static OFF_PROG_AUX: u32 = 0;
#[unsafe(no_mangle)]
static OFF_AUX_ID: u32 = 0;

/// `xdp_devmap_xmit(from_dev, to_dev, sent, drops, err)`: the frames of a
/// native redirect that the target's driver refused at the flush (a
/// virtio-net or veth that runs no native program: -ENXIO; a full ring).
/// Counted by the id of the native program of the device they came in on,
/// the one that redirected them.
#[raw_tracepoint(tracepoint = "xdp_devmap_xmit")]
pub fn devmap_xmit_drops(ctx: RawTracePointContext) -> i32 {
    let drops: i32 = ctx.arg(3);
    if drops <= 0 {
        return 0;
    }
    let from_dev: *const u8 = ctx.arg(0);
    if let Some(id) = native_prog_id(from_dev) {
        count(id, drops as u64);
    }
    0
}

/// `dev_xdp_prog_id(dev, XDP_MODE_DRV)`: the program of the device's
/// native XDP link, or of its native program attached without one.
fn native_prog_id(dev: *const u8) -> Option<u32> {
    let off = |g: &u32| {
        // SAFETY: a plain global the loader set; volatile so the load stays.
        unsafe { core::ptr::read_volatile(g) as usize }
    };
    // SAFETY: probe reads of kernel memory: a bad pointer gives an error,
    // never a fault.
    unsafe {
        let link: *const u8 = bpf_probe_read_kernel(dev.add(off(&OFF_DEV_DRV_LINK)).cast()).ok()?;
        let prog: *const u8 = if link.is_null() {
            bpf_probe_read_kernel(dev.add(off(&OFF_DEV_DRV_PROG)).cast()).ok()?
        } else {
            bpf_probe_read_kernel(link.add(off(&OFF_XDP_LINK_PROG)).cast()).ok()?
        };
        if prog.is_null() {
            return None;
        }
        let aux: *const u8 = bpf_probe_read_kernel(prog.add(off(&OFF_PROG_AUX)).cast()).ok()?;
        bpf_probe_read_kernel(aux.add(off(&OFF_AUX_ID)).cast()).ok()
    }
}

/// Adds `n` to this CPU's count of program `prog_id`.
fn count(prog_id: u32, n: u64) {
    let map = ptr::from_ref(&REDIRECT_ERRORS).cast_mut().cast::<c_void>();
    let key = ptr::from_ref(&prog_id).cast::<c_void>();
    // SAFETY: `map` is a map reference after relocation and `key` lives
    // across the calls; a non-null result is this CPU's value, which only
    // this CPU touches.
    unsafe {
        match bpf_map_lookup_elem(map, key).cast::<u64>().as_mut() {
            Some(c) => *c += n,
            None => {
                let _ = bpf_map_update_elem(map, key, ptr::from_ref(&n).cast(), BPF_NOEXIST);
            }
        }
    }
}
