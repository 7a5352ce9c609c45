//! Redirects the kernel refused after a program had returned
//! `XDP_REDIRECT`, which the program itself counted as forwarded: in
//! generic XDP (`--mode skb`) a frame over the target's MTU + 18 (EMSGSIZE:
//! a GSO aggregate from a veth peer, a host's TSO segment), a target gone;
//! in native mode what the redirect refuses at once. The kernel reports
//! each in the tracepoint `xdp:xdp_redirect_err` with the redirecting
//! program's id (see [`TRACEPOINT`]). One tracepoint program per pin dir
//! (`prog_redirect_errors`) counts them per program id in the pinned
//! `xdp-forwarder/fwd_redirect_errors`; `status` moves each port's count
//! from forwarded to the drops (`redirect_failed`).
//!
//! Best effort: attached with the first port (any mode: tc's redirects are
//! not reported there, and fail before the program returns anyway),
//! repaired by any `attach`, never failing one; removed with the last port.
//! Not seen: what fails later, without a program id (native mode's
//! `xdp:xdp_devmap_xmit` drops at the target driver, a full queue).

use std::path::{Path, PathBuf};

use aya::{
    EbpfLoader, include_bytes_aligned,
    maps::{Map, MapError, PerCpuHashMap},
    programs::{TracePoint, links::FdLink},
};
use tracing::{debug, info, warn};
use xdp_forwarder_common::maps::{GLOBAL_PROG_ID_OFFSET, PROG_REDIRECT_ERRORS, REDIRECT_ERRORS};

use crate::{
    Error, Result, pins,
    pins::{MapSpec, PinDir},
    sys,
};

static OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_redirect_errors"));

/// Where tracefs is mounted by default (and where we mount it if missing).
const TRACEFS: &str = "/sys/kernel/tracing";
/// Where older setups have it (debugfs mounted, tracefs auto-mounted inside).
const TRACEFS_IN_DEBUGFS: &str = "/sys/kernel/debug/tracing";

/// The tracepoint (category `xdp`). Redirects through a map report there
/// too (`_trace_xdp_redirect_map_err` feeds it since Linux 5.6); the
/// `xdp_redirect_map_err` event itself has carried nothing since then and
/// is gone in 6.16.
pub const TRACEPOINT: &str = "xdp_redirect_err";

/// Makes sure the counting runs for `pins`' pin dir: a warning, never an
/// error, when it cannot (no tracefs, a kernel refusing the program).
pub(crate) fn ensure(pins: &PinDir) {
    match try_ensure(pins) {
        Ok(true) => info!("counting refused redirects (tracepoint xdp:{TRACEPOINT})"),
        Ok(false) => {}
        Err(e) => warn!(
            error = %e,
            "refused redirects will not be counted: status may show them as forwarded"
        ),
    }
}

/// `true` when it attached (something was missing).
fn try_ensure(pins: &PinDir) -> Result<bool> {
    let link_path = pins.redirect_errors_link();
    if pins.redirect_errors().exists() && sys::obj_get(&link_path).is_ok() {
        return Ok(false);
    }
    let offset = prog_id_offset(&tracefs()?)?;
    let map_path = pins.redirect_errors();
    let mut ebpf = EbpfLoader::new()
        .override_global(GLOBAL_PROG_ID_OFFSET, &offset, true)
        .map_pin_path(REDIRECT_ERRORS, map_path.as_path())
        .load(OBJECT)
        .map_err(|e| Error::kernel("cannot load the redirect-errors object", e))?;
    let prog: &mut TracePoint = ebpf
        .program_mut(PROG_REDIRECT_ERRORS)
        .ok_or_else(|| Error::kernel("corrupt embedded object", "no redirect_errors program"))?
        .try_into()
        .map_err(|e| Error::kernel("corrupt embedded object", e))?;
    prog.load()
        .map_err(|e| Error::verifier("the kernel refused the redirect-errors program", e))?;
    pins::remove_pin(&link_path)?;
    let id = prog
        .attach("xdp", TRACEPOINT)
        .map_err(|e| Error::kernel(format!("cannot attach to xdp:{TRACEPOINT}"), e))?;
    let link = FdLink::try_from(
        prog.take_link(id)
            .map_err(|e| Error::kernel("lost the tracepoint link", e))?,
    )
    .map_err(|e| Error::kernel("tracepoint link without an fd (Linux < 5.15)", e))?;
    link.pin(&link_path)
        .map_err(|e| Error::kernel(format!("cannot pin the link at {}", link_path.display()), e))?;
    Ok(true)
}

/// Removes the link (which ends the counting) and the counts.
pub(crate) fn remove(pins: &PinDir) -> Result<()> {
    pins::remove_pin(&pins.redirect_errors_link())?;
    pins::remove_pin(&pins.redirect_errors())
}

/// The tracefs root with an `events` directory: found, or mounted at
/// [`TRACEFS`].
fn tracefs() -> Result<PathBuf> {
    let has_events = |dir: &str| Path::new(dir).join("events").is_dir();
    if let Some(dir) = [TRACEFS, TRACEFS_IN_DEBUGFS]
        .into_iter()
        .find(|d| has_events(d))
    {
        return Ok(PathBuf::from(dir));
    }
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| {
        Error::kernel(
            format!("no tracefs, and cannot mount it at {TRACEFS}"),
            std::io::Error::from(e),
        )
    })?;
    debug!(path = TRACEFS, "mounted tracefs");
    if has_events(TRACEFS) {
        Ok(PathBuf::from(TRACEFS))
    } else {
        Err(Error::kernel(
            format!("tracefs at {TRACEFS}"),
            "it has no events directory",
        ))
    }
}

/// The offset of `prog_id` in the tracepoint's record, from its `format`.
fn prog_id_offset(tracefs: &Path) -> Result<u32> {
    let path = tracefs.join("events/xdp").join(TRACEPOINT).join("format");
    let format = std::fs::read_to_string(&path)
        .map_err(|e| Error::kernel(format!("cannot read {}", path.display()), e))?;
    parse_prog_id_offset(&format).ok_or_else(|| {
        Error::kernel(
            format!("{}", path.display()),
            "no 4-byte field prog_id in it",
        )
    })
}

/// `field:int prog_id;\toffset:8;\tsize:4;\tsigned:1;` → 8.
fn parse_prog_id_offset(format: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';').map(str::trim);
        let field = parts.next()?.strip_prefix("field:")?;
        if field.split_whitespace().last()? != "prog_id" {
            return None;
        }
        let mut offset = None;
        let mut size = None;
        for part in parts {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse::<u32>().ok();
            }
        }
        (size == Some(4)).then_some(offset?)
    })
}

/// The pinned counts of a pin dir.
pub struct RedirectErrors {
    map: Map,
}

impl RedirectErrors {
    /// The counts pinned in `pins`; `None` when nothing is pinned (counting
    /// never started, or an older version attached the ports).
    pub fn open(pins: &PinDir) -> Result<Option<Self>> {
        Ok(
            pins::open_existing(&pins.redirect_errors(), MapSpec::REDIRECT_ERRORS)?.map(|pinned| {
                Self {
                    map: Map::PerCpuLruHashMap(pinned.map),
                }
            }),
        )
    }

    /// The redirects of program `prog_id` the kernel refused, summed over
    /// the CPUs.
    pub fn refused(&self, prog_id: u32) -> Result<u64> {
        let map = PerCpuHashMap::<_, u32, u64>::try_from(&self.map)
            .map_err(|e| Error::kernel("the redirect-errors map has an unexpected shape", e))?;
        match map.get(&prog_id, 0) {
            Ok(per_cpu) => Ok(per_cpu.iter().fold(0u64, |a, v| a.wrapping_add(*v))),
            Err(MapError::KeyNotFound) => Ok(0),
            Err(e) => Err(Error::kernel("cannot read the redirect errors", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prog_id_offset_is_read_from_the_format() {
        let format = "name: xdp_redirect_err\nID: 1234\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
            \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
            \tfield:int prog_id;\toffset:8;\tsize:4;\tsigned:1;\n\
            \tfield:u32 act;\toffset:12;\tsize:4;\tsigned:0;\n\
            \tfield:int ifindex;\toffset:16;\tsize:4;\tsigned:1;\n";
        assert_eq!(parse_prog_id_offset(format), Some(8));
        let moved = format.replace("prog_id;\toffset:8", "prog_id;\toffset:16");
        assert_eq!(parse_prog_id_offset(&moved), Some(16));
        let wide = format.replace("prog_id;\toffset:8;\tsize:4", "prog_id;\toffset:8;\tsize:8");
        assert_eq!(parse_prog_id_offset(&wide), None);
        assert_eq!(parse_prog_id_offset("format:\n"), None);
    }
}
