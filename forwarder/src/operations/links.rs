//! Loading a role's program and putting it on an interface: a new pinned
//! link, a program swap on the existing link (an upgrade: not one frame
//! without a program), or a move to another mode; and taking a link away.

use std::os::fd::{AsFd as _, OwnedFd};

use tracing::debug;
use xdp_forwarder_common::maps::COUNTERS;

use crate::{
    Error, Mode, ModeChoice, Result, Role,
    kernel::{
        clsact,
        mode::Hook,
        netdev::Interface,
        sys::{self, LinkInfo},
    },
    state::{
        attachment, objects,
        pins::{self, PinDir},
        undo::Undo,
    },
};

/// Attaches a new program of `role` to `link` in `mode`, pins the link
/// and its counters. The inner error: the kernel refused that mode, or
/// (unless `alone`, the only mode to try) its program did not load: another
/// mode may work. The outer one: anything else.
pub(crate) fn attach_new(
    pins: &PinDir,
    role: Role,
    vid: Option<u16>,
    mode: Mode,
    link: &Interface,
    alone: bool,
    undo: &mut Undo,
) -> Result<Result<(), Error>> {
    // A fresh load per attempt: a failed one is dropped whole. A mode
    // whose program this kernel refuses (an older verifier) is one more
    // refusal when others are left to try.
    let (ebpf, prog) = match objects::load_for(role, mode, vid, pins) {
        Ok(loaded) => loaded,
        Err(e) if !alone => {
            debug!(iface = %link.name, %mode, error = %e, "load failed");
            return Ok(Err(e));
        }
        Err(e) => return Err(e),
    };
    attach_loaded(pins, &ebpf, prog, link, mode, undo)
}

/// Why `--mode auto` ended in `mode` after the `failures` of the modes it
/// preferred and the modes it `skipped` (a direction would be dead).
pub(crate) fn auto_reason(mode: Mode, failures: &[Error], skipped: &[String]) -> String {
    let why = mode.auto_reason();
    let because: Vec<String> = failures
        .iter()
        .map(Error::to_string)
        .chain(skipped.iter().cloned())
        .collect();
    if because.is_empty() {
        format!("--mode auto: {mode}: {why}")
    } else {
        format!(
            "--mode auto: {mode} ({why}), because {}",
            because.join("; ")
        )
    }
}

/// Attaches the loaded program `prog` to `link` in `mode` and pins the
/// link and its counters. The inner error: the kernel refused that mode
/// (another may work); the outer one: anything else.
fn attach_loaded(
    pins: &PinDir,
    ebpf: &aya::Ebpf,
    prog: OwnedFd,
    link: &Interface,
    mode: Mode,
    undo: &mut Undo,
) -> Result<Result<(), Error>> {
    let path = pins.link(link.index);
    let hook = match attachment::attach(prog.as_fd(), link.index, mode, &path)? {
        Ok(hook) => hook,
        Err(e) => {
            debug!(iface = %link.name, %mode, error = %e, "attach failed");
            let (why, e) = match attachment::hook_for(mode, link.index) {
                Hook::ClsactIngress => (
                    format!("{mode} mode (clsact filter)"),
                    clsact::taken(e, link.index, &link.name),
                ),
                // Native XDP takes one page per frame: the kernel refuses
                // it for a larger MTU (veth: its own or its peer's).
                Hook::Xdp if mode.runs_in_driver() && e.raw_os_error() == Some(libc::ERANGE) => (
                    format!(
                        "{mode} mode: refused for the MTU: {}'s MTU is {} (or, on a veth, its \
                         peer's is larger), above what native XDP takes in one buffer (about \
                         3.5 kB on veth, a page less headroom); lower it (`ip link set {} mtu \
                         1500`, on both ends of a veth) or use --mode tc",
                        link.name,
                        link.mtu
                            .map_or_else(|| "unknown".to_owned(), |m| m.to_string()),
                        link.name
                    ),
                    e,
                ),
                Hook::Xdp | Hook::TcxIngress => (format!("{mode} mode"), e),
            };
            return Ok(Err(Error::kernel(why, e)));
        }
    };
    debug!(iface = %link.name, %mode, ?hook, "attached");
    undo.release_link(path, link.index);
    pin_counters(pins, ebpf, link, undo)?;
    Ok(Ok(()))
}

/// The refusals of the modes tried, in order, as one line.
fn joined(failures: &[Error]) -> String {
    failures
        .iter()
        .map(Error::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every mode the kernel refused, and a hint when native was asked for.
pub(crate) fn refused(
    role: Role,
    link: &Interface,
    choice: ModeChoice,
    failures: &[Error],
) -> Error {
    let why = joined(failures);
    let for_mtu = failures.iter().any(|f| f.errno() == Some(libc::ERANGE));
    let hint = if choice == ModeChoice::Native && !for_mtu {
        format!(
            " (the driver of {} may not run XDP natively, or not on this device: virtio-net \
             refuses it while the device offers guest offloads without CTRL_GUEST_OFFLOADS; \
             use --mode tc, or --mode auto)",
            link.name
        )
    } else {
        String::new()
    };
    Error::Refused {
        iface: link.name.clone(),
        why: format!(
            "cannot attach the {} program: {why}{hint}",
            objects::program_name(role)
        ),
    }
}

/// Swaps the program on the port's pinned link for a new one of `role`
/// in the same `mode` (BPF_LINK_UPDATE, only if the link still runs
/// `current.prog_id`).
pub(crate) fn swap(
    pins: &PinDir,
    role: Role,
    vid: Option<u16>,
    mode: Mode,
    link: &Interface,
    current: LinkInfo,
    undo: &mut Undo,
) -> Result<()> {
    let (ebpf, new_prog) = objects::load_for(role, mode, vid, pins)?;
    let swapped = attachment::swap(&pins.link(link.index), link.index, current, new_prog)?;
    undo.swap_back(swapped);
    pin_counters(pins, &ebpf, link, undo)
}

/// A port's program and where it runs: what a mode change moves.
pub(crate) struct Placement<'a> {
    pub role: Role,
    pub vid: Option<u16>,
    pub link: &'a Interface,
}

/// Moves the port to another mode: the old link is detached (XDP allows one
/// mode at a time, and one hook at a time is what we run), a new one
/// attached; undone by attaching the old program again in its old mode.
pub(crate) fn change_mode(
    pins: &PinDir,
    port: Placement<'_>,
    current: LinkInfo,
    from: Mode,
    to: Mode,
    undo: &mut Undo,
) -> Result<()> {
    let Placement { role, vid, link } = port;
    let path = pins.link(link.index);
    let kernel = |what: &str, e| Error::kernel(format!("{what} ({})", path.display()), e);
    let old_prog = sys::prog_fd_by_id(current.prog_id)
        .map_err(|e| kernel("cannot open the running program", e))?;
    // Loaded (and verified) before anything changes.
    let (ebpf, prog) = objects::load_for(role, to, vid, pins)?;
    attachment::detach(&path, link.index)?;
    undo.reattach(old_prog, link.index, from, path.clone());
    pins::remove_pin(&path)?;
    attach_loaded(pins, &ebpf, prog, link, to, undo)?
        .map_err(|e| refused(role, link, ModeChoice::from(to), &[e]))
}

/// Pins the new program's counters so that `status` finds them; the pin of
/// an earlier program is replaced (and put back by the undo).
fn pin_counters(pins: &PinDir, ebpf: &aya::Ebpf, link: &Interface, undo: &mut Undo) -> Result<()> {
    let path = pins.counters(link.index);
    let map = ebpf
        .map(COUNTERS)
        .ok_or_else(|| Error::CorruptObject("no counters map".into()))?;
    if let Ok(old) = sys::obj_get(&path) {
        pins::remove_pin(&path)?;
        undo.repin(path.clone(), old);
    }
    map.pin(&path).map_err(|e| {
        Error::kernel(
            format!(
                "cannot pin the counters of {} at {}",
                link.name,
                path.display()
            ),
            e,
        )
    })?;
    undo.remove_pin(path);
    Ok(())
}
