//! Counts, per XDP program, the redirects the kernel refused after the
//! program had returned `XDP_REDIRECT` (generic XDP: a frame over the
//! target's MTU + 18, EMSGSIZE; a target gone or unable to take it): a
//! classic tracepoint program, attached by our loader to
//! `xdp:xdp_redirect_err` (map redirects report there too), whose records
//! name the redirecting program's id. Embedded, never exported: one
//! instance per pin dir, its counts in the pinned `fwd_redirect_errors`.
#![no_std]
#![no_main]

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    helpers::{bpf_map_lookup_elem, bpf_map_update_elem},
    macros::tracepoint,
    programs::TracePointContext,
};
// The license section and the panic handler.
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
    max_entries: *const [i32; 4096],
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
    let map = ptr::from_ref(&REDIRECT_ERRORS).cast_mut().cast::<c_void>();
    let key = ptr::from_ref(&prog_id).cast::<c_void>();
    // SAFETY: `map` is a map reference after relocation and `key` lives
    // across the calls; a non-null result is this CPU's value, which only
    // this CPU touches.
    unsafe {
        match bpf_map_lookup_elem(map, key).cast::<u64>().as_mut() {
            Some(count) => *count += 1,
            None => {
                let one = 1u64;
                let _ = bpf_map_update_elem(map, key, ptr::from_ref(&one).cast(), BPF_NOEXIST);
            }
        }
    }
    0
}
