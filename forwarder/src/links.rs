//! Loading a role's program and putting it on an interface: a new pinned
//! link, a program swap on the existing link (an upgrade: not one frame
//! without a program), or a move to another mode; and taking a link away.

use std::os::fd::{AsFd as _, OwnedFd};

use aya::programs::links::FdLink;
use tracing::debug;
use xdp_forwarder_common::maps::COUNTERS;

use crate::{
    Error, Mode, ModeChoice, Result, Role,
    netdev::Link,
    objects::{self, Setting},
    pins::{self, PinDir},
    sys::{self, XdpLinkInfo},
    undo::Undo,
};

/// XDP attach flags of `mode` (`XDP_FLAGS_DRV_MODE` / `XDP_FLAGS_SKB_MODE`).
pub fn xdp_flags(mode: Mode) -> u32 {
    match mode {
        Mode::Native => aya_obj::generated::XDP_FLAGS_DRV_MODE,
        Mode::Skb => aya_obj::generated::XDP_FLAGS_SKB_MODE,
    }
}

/// The loaded program of `role` for a port with `vid`, and its fd (to
/// swap it onto a link).
fn load_with_fd(role: Role, vid: Option<u16>, pins: &PinDir) -> Result<(aya::Ebpf, OwnedFd)> {
    let mut ebpf = objects::load(role, Setting::Managed { vid }, pins)?;
    let fd = objects::xdp(&mut ebpf, role)?
        .fd()
        .and_then(|fd| Ok(fd.as_fd().try_clone_to_owned()?))
        .map_err(|e| Error::kernel("cannot use the loaded program", e))?;
    Ok((ebpf, fd))
}

/// Attaches a new program of `role` to `link` in the first mode of `choice`
/// that works, pins the link and its counters. Returns the mode and, for
/// `--mode auto`, why that one.
pub(crate) fn attach_new(
    pins: &PinDir,
    role: Role,
    vid: Option<u16>,
    choice: ModeChoice,
    link: &Link,
    undo: &mut Undo,
) -> Result<(Mode, Option<String>)> {
    let candidates: &[Mode] = match choice {
        ModeChoice::Auto => &[Mode::Native, Mode::Skb],
        ModeChoice::Native => &[Mode::Native],
        ModeChoice::Skb => &[Mode::Skb],
    };
    let mut failures: Vec<Error> = Vec::new();
    for &mode in candidates {
        // A fresh load per attempt: a failed one is dropped whole.
        let mut ebpf = objects::load(role, Setting::Managed { vid }, pins)?;
        if let Err(refused) = attach_loaded(pins, &mut ebpf, role, link, mode, undo)? {
            failures.push(refused);
            continue;
        }
        let reason = match (choice, failures.first()) {
            (ModeChoice::Auto, None) => Some("--mode auto: the driver runs XDP natively".into()),
            (ModeChoice::Auto, Some(native)) => {
                tracing::warn!(iface = %link.name, error = %native, "native XDP unavailable, using skb (generic) mode");
                Some(format!(
                    "--mode auto: native XDP failed ({native}), so skb (generic) mode"
                ))
            }
            _ => None,
        };
        return Ok((mode, reason));
    }
    Err(refused(role, link, choice, &failures))
}

/// Attaches the loaded program of `role` to `link` in `mode` and pins the
/// link and its counters. The inner error: the kernel refused that mode
/// (another may work); the outer one: anything else.
fn attach_loaded(
    pins: &PinDir,
    ebpf: &mut aya::Ebpf,
    role: Role,
    link: &Link,
    mode: Mode,
    undo: &mut Undo,
) -> Result<Result<(), Error>> {
    let prog = objects::xdp(ebpf, role)?;
    let link_id = match prog.attach_to_if_index(link.index, mode.xdp_mode()) {
        Ok(id) => id,
        Err(e) => {
            debug!(iface = %link.name, %mode, error = %e, "attach failed");
            return Ok(Err(Error::kernel(format!("{mode} mode"), e)));
        }
    };
    let xdp_link = prog
        .take_link(link_id)
        .map_err(|e| Error::kernel("cannot take the XDP link", e))?;
    let fd_link = FdLink::try_from(xdp_link).map_err(|e| {
        Error::kernel(
            format!(
                "{}: this kernel attached XDP without a bpf_link, which cannot be pinned",
                link.name
            ),
            e,
        )
    })?;
    let path = pins.link(link.index);
    fd_link.pin(&path).map_err(|e| {
        Error::kernel(
            format!("cannot pin the link of {} at {}", link.name, path.display()),
            e,
        )
    })?;
    undo.release_link(path);
    pin_counters(pins, ebpf, link, undo)?;
    Ok(Ok(()))
}

/// Every mode the kernel refused, and a hint when native was asked for.
fn refused(role: Role, link: &Link, choice: ModeChoice, failures: &[Error]) -> Error {
    let why = failures
        .iter()
        .map(Error::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let hint = if choice == ModeChoice::Native {
        format!(
            " (the driver of {} may not run XDP natively: use --mode skb, or --mode auto)",
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
/// (BPF_LINK_UPDATE, only if the link still runs `current.prog_id`).
pub(crate) fn swap(
    pins: &PinDir,
    role: Role,
    vid: Option<u16>,
    link: &Link,
    current: XdpLinkInfo,
    undo: &mut Undo,
) -> Result<()> {
    let (ebpf, new_prog) = load_with_fd(role, vid, pins)?;
    let path = pins.link(link.index);
    let kernel = |what: &str, e| Error::kernel(format!("{what} ({})", path.display()), e);
    let link_fd = sys::obj_get(&path).map_err(|e| kernel("cannot open the link", e))?;
    let old_prog = sys::prog_fd_by_id(current.prog_id)
        .map_err(|e| kernel("cannot open the running program", e))?;
    sys::link_update(link_fd.as_fd(), new_prog.as_fd(), old_prog.as_fd())
        .map_err(|e| kernel("cannot swap the program on the link", e))?;
    undo.swap_back(link_fd, old_prog, new_prog);
    pin_counters(pins, &ebpf, link, undo)
}

/// Moves the port to another mode: the old link is detached (the kernel
/// allows one mode at a time), a new one attached; undone by attaching the
/// old program again in its old mode.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument distinct"
)]
pub(crate) fn change_mode(
    pins: &PinDir,
    role: Role,
    vid: Option<u16>,
    link: &Link,
    current: XdpLinkInfo,
    from: Mode,
    to: Mode,
    undo: &mut Undo,
) -> Result<()> {
    let path = pins.link(link.index);
    let kernel = |what: &str, e| Error::kernel(format!("{what} ({})", path.display()), e);
    let link_fd = sys::obj_get(&path).map_err(|e| kernel("cannot open the link", e))?;
    let old_prog = sys::prog_fd_by_id(current.prog_id)
        .map_err(|e| kernel("cannot open the running program", e))?;
    // Loaded (and verified) before anything changes.
    let mut ebpf = objects::load(role, Setting::Managed { vid }, pins)?;
    sys::link_detach(link_fd.as_fd()).map_err(|e| kernel("cannot detach the link", e))?;
    undo.reattach(old_prog, link.index, xdp_flags(from), path.clone());
    pins::remove_pin(&path)?;
    attach_loaded(pins, &mut ebpf, role, link, to, undo)?.map_err(|e| {
        let choice = match to {
            Mode::Native => ModeChoice::Native,
            Mode::Skb => ModeChoice::Skb,
        };
        refused(role, link, choice, &[e])
    })
}

/// Pins the new program's counters so that `status` finds them; the pin of
/// an earlier program is replaced (and put back by the undo).
fn pin_counters(pins: &PinDir, ebpf: &aya::Ebpf, link: &Link, undo: &mut Undo) -> Result<()> {
    let path = pins.counters(link.index);
    let map = ebpf
        .map(COUNTERS)
        .ok_or_else(|| Error::kernel("corrupt embedded object", "no counters map"))?;
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
