//! What holds a port's program on its interface, whatever the hook: an XDP
//! link or a tcx link (pinned), or a `clsact` filter (kernels without tcx:
//! no link exists, the program is pinned in its place and the filter found
//! by its priority and handle). Attaching and pinning, what the kernel says
//! about it, swapping its program, detaching, attaching an old program
//! again (how a failed mode change is undone), our own orphan.

use std::{
    io,
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use tracing::debug;

use crate::{
    Error, Mode, Result,
    kernel::{
        clsact,
        mode::Hook,
        netdev::Interface,
        sys::{self, LinkInfo, Pinned},
    },
    state::pins,
};

/// The hook `mode` attaches to on `ifindex` on this kernel.
pub fn hook_for(mode: Mode, ifindex: u32) -> Hook {
    mode.hook(!mode.is_xdp() && sys::has_tcx(ifindex))
}

/// Attaches `prog` to `ifindex` in `mode` and pins what holds it at `path`.
/// The inner error: the kernel refused (another mode may work); the outer
/// one: the pin failed (and nothing stays attached).
pub fn attach(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    mode: Mode,
    path: &Path,
) -> Result<std::result::Result<Hook, io::Error>> {
    let pin_error = |e| Error::kernel(format!("cannot pin {}", path.display()), e);
    let hook = hook_for(mode, ifindex);
    match hook {
        Hook::Xdp | Hook::TcxIngress => {
            let link = match sys::link_create(prog, ifindex, mode) {
                Ok(link) => link,
                Err(e) => return Ok(Err(e)),
            };
            sys::obj_pin(link.as_fd(), path).map_err(pin_error)?;
        }
        Hook::ClsactIngress => {
            // Pinned first: a command killed after the filter is added
            // leaves an orphan the next one finds, not a stray filter.
            sys::obj_pin(prog, path).map_err(pin_error)?;
            let attached =
                clsact::ensure_qdisc(ifindex).and_then(|()| clsact::attach(ifindex, prog, false));
            if let Err(e) = attached {
                pins::remove_pin(path)?;
                return Ok(Err(e));
            }
        }
    }
    Ok(Ok(hook))
}

/// What the kernel says about what is pinned at `path` for the port at
/// `ifindex`; `None` when nothing is pinned. A clsact program whose filter
/// is gone (or runs another program) reads as detached (ifindex 0).
pub fn pinned(path: &Path, ifindex: u32) -> Result<Option<LinkInfo>> {
    if !path.exists() {
        return Ok(None);
    }
    let open = |e| Error::kernel(format!("cannot open {}", path.display()), e);
    let inspect = |e| Error::kernel(format!("cannot inspect {}", path.display()), e);
    match sys::obj_get_kind(path).map_err(open)? {
        Pinned::Link(fd) => sys::link_info(fd.as_fd()).map(Some).map_err(inspect),
        Pinned::Prog(fd) => {
            let prog_id = sys::prog_id(fd.as_fd()).map_err(inspect)?;
            let running = clsact::running(ifindex).map_err(|e| {
                Error::kernel(
                    format!("cannot list the tc filters of ifindex {ifindex}"),
                    e,
                )
            })?;
            Ok(Some(LinkInfo {
                id: 0,
                prog_id,
                ifindex: if running == Some(prog_id) { ifindex } else { 0 },
                hook: Hook::ClsactIngress,
            }))
        }
    }
}

/// Takes the program away from the interface now (a link detached, our
/// filter deleted if it runs the pinned program), then removes the pin.
/// (Removing a link's pin alone detaches it later, from a kernel work
/// queue: an attach right after could still find the old program there.)
pub fn release(path: &Path, ifindex: u32) -> Result<()> {
    match sys::obj_get_kind(path) {
        Ok(pinned) => detach_pinned(&pinned, path, ifindex)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        // Unreadable: the pin goes anyway.
        Err(e) => debug!(path = %path.display(), error = %e, "cannot open the pin to detach it"),
    }
    pins::remove_pin(path)
}

/// Detaches what `info` describes (pinned at `path`), leaving the pin: a
/// mode change, which pins its new link there next.
pub fn detach(path: &Path, ifindex: u32) -> Result<()> {
    let pinned = sys::obj_get_kind(path)
        .map_err(|e| Error::kernel(format!("cannot open {}", path.display()), e))?;
    detach_pinned(&pinned, path, ifindex)
}

fn detach_pinned(pinned: &Pinned, path: &Path, ifindex: u32) -> Result<()> {
    match pinned {
        Pinned::Link(fd) => match sys::link_detach(fd.as_fd()) {
            Err(e) if e.raw_os_error() != Some(libc::ENOLINK) => Err(Error::kernel(
                format!("cannot detach the link pinned at {}", path.display()),
                e,
            )),
            _ => Ok(()),
        },
        Pinned::Prog(fd) => {
            let prog_id = sys::prog_id(fd.as_fd())
                .map_err(|e| Error::kernel(format!("cannot inspect {}", path.display()), e))?;
            let filter = |e| {
                Error::kernel(
                    format!("cannot delete our tc filter of ifindex {ifindex}"),
                    e,
                )
            };
            // Someone else's program at our priority is left alone.
            if clsact::running(ifindex).map_err(filter)? == Some(prog_id) {
                clsact::detach(ifindex).map_err(filter)?;
            }
            Ok(())
        }
    }
}

/// A program swap, to swap back on rollback.
pub enum Swapped {
    /// `BPF_LINK_UPDATE` on a pinned link.
    Link {
        link: OwnedFd,
        old: OwnedFd,
        new: OwnedFd,
    },
    /// Our clsact filter replaced, the pin moved to the new program.
    Filter {
        ifindex: u32,
        path: PathBuf,
        old: OwnedFd,
    },
}

/// Swaps the program of the port's attachment pinned at `path` (which runs
/// `current.prog_id`) for `new`: atomic, no frame sees no program. A link
/// is updated only if it still runs the current program; our filter is
/// replaced in place.
pub fn swap(path: &Path, ifindex: u32, current: LinkInfo, new: OwnedFd) -> Result<Swapped> {
    let kernel = |what: &str, e| Error::kernel(format!("{what} ({})", path.display()), e);
    let old = sys::prog_fd_by_id(current.prog_id)
        .map_err(|e| kernel("cannot open the running program", e))?;
    match current.hook {
        Hook::Xdp | Hook::TcxIngress => {
            let link = sys::obj_get(path).map_err(|e| kernel("cannot open the link", e))?;
            sys::link_update(link.as_fd(), new.as_fd(), old.as_fd())
                .map_err(|e| kernel("cannot swap the program on the link", e))?;
            Ok(Swapped::Link { link, old, new })
        }
        Hook::ClsactIngress => {
            clsact::attach(ifindex, new.as_fd(), true)
                .map_err(|e| kernel("cannot replace the program of our tc filter", e))?;
            let swapped = Swapped::Filter {
                ifindex,
                path: path.to_owned(),
                old,
            };
            repin(path, new.as_fd())?;
            Ok(swapped)
        }
    }
}

impl Swapped {
    /// Puts the old program back.
    pub fn undo(&self) -> Result<()> {
        match self {
            Swapped::Link { link, old, new } => {
                sys::link_update(link.as_fd(), old.as_fd(), new.as_fd())
                    .map_err(|e| Error::kernel("cannot swap the old program back", e))
            }
            Swapped::Filter { ifindex, path, old } => {
                clsact::attach(*ifindex, old.as_fd(), true)
                    .map_err(|e| Error::kernel("cannot put the old tc program back", e))?;
                repin(path, old.as_fd())
            }
        }
    }
}

fn repin(path: &Path, prog: BorrowedFd<'_>) -> Result<()> {
    pins::remove_pin(path)?;
    sys::obj_pin(prog, path).map_err(|e| Error::kernel(format!("cannot pin {}", path.display()), e))
}

/// Attaches `prog` to `ifindex` again in its old `mode` and pins it at
/// `path`: how a failed mode change is undone.
pub fn reattach(prog: BorrowedFd<'_>, ifindex: u32, mode: Mode, path: &Path) -> Result<()> {
    pins::remove_pin(path)?;
    attach(prog, ifindex, mode, path)?.map(drop).map_err(|e| {
        Error::kernel(
            format!("cannot attach the old program to ifindex {ifindex} again"),
            e,
        )
    })
}

/// Our own attachment pinned at `path` and attached to `link`'s interface,
/// for an interface that has no registry record (a command killed between
/// pinning and recording, or records forgotten): `attach` takes it over,
/// `detach` removes it.
pub fn orphan(path: &Path, link: &Interface) -> Result<Option<LinkInfo>> {
    Ok(pinned(path, link.index)?.filter(|info| {
        info.ifindex == link.index
            && match info.hook {
                Hook::Xdp => link.xdp.is_some_and(|(id, _)| id == info.prog_id),
                // A tcx link cannot be displaced: attached is running (and
                // a filter reads as attached only while it runs ours).
                Hook::TcxIngress | Hook::ClsactIngress => true,
            }
    }))
}
