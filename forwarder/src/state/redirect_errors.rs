//! Redirects the kernel refused after a program had returned
//! `XDP_REDIRECT`, which the program itself counted as forwarded, as
//! xdp-tools' xdp-monitor reads them:
//! - `xdp:xdp_redirect_err` (see [`TRACEPOINT`]), with the redirecting
//!   program's id: in generic XDP (`--mode skb`) a frame over the target's
//!   MTU + 18 (EMSGSIZE: a GSO aggregate from a veth peer, a host's TSO
//!   segment), a target gone; in native mode a target without
//!   `ndo_xdp_xmit` (e1000e: EOPNOTSUPP);
//! - `xdp_devmap_xmit` (see [`DEVMAP_XMIT`]): native redirects queued for a
//!   target whose driver refused them at the flush (a virtio-net or veth
//!   that runs no native program: ENXIO; a full ring). Its record names
//!   devices, not programs: a raw tracepoint program follows the receiving
//!   device to its native program's id, with structure offsets read from
//!   the running kernel's BTF ([`devmap_offsets`]).
//!
//! One instance per pin dir (`prog_redirect_errors`) counts both per
//! program id in the pinned `xdp-forwarder/fwd_redirect_errors`; `status`
//! moves each port's count from forwarded to the drops (`redirect_failed`).
//! Best effort: attached with the first port (any mode: tc's redirects
//! fail before the program returns, and are counted by it), repaired by any
//! `attach`, never failing one; removed with the last port. Without BTF
//! only the first is counted.

use std::path::{Path, PathBuf};

use aya::{
    EbpfLoader, include_bytes_aligned,
    maps::{Map, MapError, PerCpuHashMap},
    programs::{RawTracePoint, TracePoint, links::FdLink},
};
use tracing::{debug, info, warn};
use xdp_forwarder_common::maps::{
    GLOBAL_DEVMAP_OFFSETS, GLOBAL_PROG_ID_OFFSET, PROG_DEVMAP_XMIT_DROPS, PROG_REDIRECT_ERRORS,
    REDIRECT_ERRORS,
};

use crate::{
    Error, Result,
    kernel::sys,
    state::{
        pins,
        pins::{MapSpec, PinDir},
    },
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
/// The raw tracepoint of native redirects flushed to a target
/// (`TP_PROTO(from_dev, to_dev, sent, drops, err)`).
pub const DEVMAP_XMIT: &str = "xdp_devmap_xmit";
/// The running kernel's BTF.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

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
    let tp_link = pins.redirect_errors_link();
    let xmit_link = pins.devmap_xmit_link();
    let have = |link: &Path| pins.redirect_errors().exists() && sys::obj_get(link).is_ok();
    let (need_tp, need_xmit) = (!have(&tp_link), !have(&xmit_link));
    if !need_tp && !need_xmit {
        return Ok(false);
    }
    let offset = prog_id_offset(&tracefs()?)?;
    let devmap = devmap_offsets();
    let zeroes = [0u32; 5];
    let map_path = pins.redirect_errors();
    let mut loader = EbpfLoader::new();
    loader
        .override_global(GLOBAL_PROG_ID_OFFSET, &offset, true)
        .map_pin_path(REDIRECT_ERRORS, map_path.as_path());
    for (name, value) in GLOBAL_DEVMAP_OFFSETS
        .iter()
        .zip(devmap.as_ref().unwrap_or(&zeroes))
    {
        loader.override_global(name, value, true);
    }
    let mut ebpf = loader
        .load(OBJECT)
        .map_err(|e| Error::kernel("cannot load the redirect-errors object", e))?;
    let corrupt = Error::CorruptObject;
    if need_tp {
        let prog: &mut TracePoint = ebpf
            .program_mut(PROG_REDIRECT_ERRORS)
            .ok_or_else(|| corrupt(format!("no {PROG_REDIRECT_ERRORS} program")))?
            .try_into()
            .map_err(|e| corrupt(format!("{e}")))?;
        prog.load()
            .map_err(|e| Error::verifier("the kernel refused the redirect-errors program", e))?;
        pins::remove_pin(&tp_link)?;
        let id = prog
            .attach("xdp", TRACEPOINT)
            .map_err(|e| Error::kernel(format!("cannot attach to xdp:{TRACEPOINT}"), e))?;
        let link = prog
            .take_link(id)
            .map_err(|e| Error::kernel("lost the tracepoint link", e))?;
        let link = FdLink::try_from(link)
            .map_err(|e| Error::kernel("tracepoint link without an fd (Linux < 5.15)", e))?;
        pin_link(link, &tp_link)?;
    }
    match devmap {
        _ if !need_xmit => {}
        Ok(_) => {
            let prog: &mut RawTracePoint = ebpf
                .program_mut(PROG_DEVMAP_XMIT_DROPS)
                .ok_or_else(|| corrupt(format!("no {PROG_DEVMAP_XMIT_DROPS} program")))?
                .try_into()
                .map_err(|e| corrupt(format!("{e}")))?;
            prog.load()
                .map_err(|e| Error::verifier("the kernel refused the devmap-xmit program", e))?;
            pins::remove_pin(&xmit_link)?;
            let id = prog
                .attach(DEVMAP_XMIT)
                .map_err(|e| Error::kernel(format!("cannot attach to {DEVMAP_XMIT}"), e))?;
            let link = prog
                .take_link(id)
                .map_err(|e| Error::kernel("lost the raw tracepoint link", e))?;
            pin_link(link.into(), &xmit_link)?;
        }
        Err(e) => warn!(
            error = %e,
            "native redirects a target refuses at the flush will not be counted"
        ),
    }
    Ok(true)
}

/// Pins a tracepoint link just taken from its program.
fn pin_link(link: FdLink, path: &Path) -> Result<()> {
    link.pin(path)
        .map(drop)
        .map_err(|e| Error::kernel(format!("cannot pin the link at {}", path.display()), e))
}

/// BTF bytes read whole, as btfparse reads them.
struct Bytes<'a>(&'a [u8]);

impl btfparse::Readable for Bytes<'_> {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start
            .checked_add(buffer.len())
            .and_then(|end| self.0.get(start..end))
        {
            Some(src) => {
                buffer.copy_from_slice(src);
                Ok(())
            }
            None => Err(btfparse::Error::new(
                btfparse::ErrorKind::EOF,
                "read past the end of the BTF",
            )),
        }
    }
}

/// The offsets [`GLOBAL_DEVMAP_OFFSETS`] names, from the running kernel's
/// BTF: they change with the kernel's version and configuration.
fn devmap_offsets() -> Result<[u32; 5]> {
    let btf_error = |e: &str| Error::kernel(format!("the BTF in {VMLINUX_BTF}"), e.to_owned());
    let bytes = std::fs::read(VMLINUX_BTF)
        .map_err(|e| Error::kernel(format!("cannot read {VMLINUX_BTF}"), e))?;
    let types =
        btfparse::TypeInformation::new(&Bytes(&bytes)).map_err(|e| btf_error(e.message()))?;
    let offset = |ty: &str, path: &str| -> Result<u32> {
        let id = types
            .id_of(ty)
            .ok_or_else(|| btf_error(&format!("no struct {ty}")))?;
        match types
            .offset_of(id, path)
            .map_err(|e| btf_error(e.message()))?
        {
            (_, btfparse::Offset::ByteOffset(bytes)) => Ok(bytes),
            _ => Err(btf_error(&format!("{ty}.{path} is a bit field"))),
        }
    };
    // XDP_MODE_DRV = 1 in `enum bpf_xdp_mode`.
    Ok([
        offset("net_device", "xdp_state[1].link")?,
        offset("net_device", "xdp_state[1].prog")?,
        offset("bpf_xdp_link", "link.prog")?,
        offset("bpf_prog", "aux")?,
        offset("bpf_prog_aux", "id")?,
    ])
}

/// Removes the link (which ends the counting) and the counts.
pub(crate) fn remove(pins: &PinDir) -> Result<()> {
    pins::remove_pin(&pins.redirect_errors_link())?;
    pins::remove_pin(&pins.devmap_xmit_link())?;
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
