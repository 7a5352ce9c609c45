//! One pinned link of a port (XDP or tcx): what the kernel says about it,
//! taking it away now, and attaching an old program again (how a failed mode
//! change is undone).

use std::{
    os::fd::{AsFd as _, BorrowedFd},
    path::Path,
};

use tracing::debug;

use crate::{
    Error, Mode, Result,
    mode::Hook,
    netdev::Link,
    pins,
    sys::{self, LinkInfo},
};

/// The info of the link pinned at `path`; `None` when nothing is pinned.
pub fn pinned_link(path: &Path) -> Result<Option<LinkInfo>> {
    if !path.exists() {
        return Ok(None);
    }
    let fd = sys::obj_get(path)
        .map_err(|e| Error::kernel(format!("cannot open {}", path.display()), e))?;
    sys::link_info(std::os::fd::AsFd::as_fd(&fd))
        .map(Some)
        .map_err(|e| Error::kernel(format!("cannot inspect {}", path.display()), e))
}

/// Detaches the link pinned at `path` now, then removes the pin. (Removing
/// the pin alone detaches it later, from a kernel work queue: an attach
/// right after could still find the old program there.)
pub fn release(path: &Path) -> Result<()> {
    match sys::obj_get(path) {
        Ok(fd) => {
            if let Err(e) = sys::link_detach(fd.as_fd())
                && e.raw_os_error() != Some(libc::ENOLINK)
            {
                return Err(Error::kernel(
                    format!("cannot detach the link pinned at {}", path.display()),
                    e,
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // Not a link (or unreadable): the pin goes anyway.
        Err(e) => debug!(path = %path.display(), error = %e, "cannot open the pin to detach it"),
    }
    pins::remove_pin(path)
}

/// Attaches `prog` to `ifindex` again in its old `mode` and pins the new
/// link at `path`: how a failed mode change is undone.
pub fn reattach(prog: BorrowedFd<'_>, ifindex: u32, mode: Mode, path: &Path) -> Result<()> {
    let link = sys::link_create(prog, ifindex, mode).map_err(|e| {
        Error::kernel(
            format!("cannot attach the old program to ifindex {ifindex} again"),
            e,
        )
    })?;
    pins::remove_pin(path)?;
    sys::obj_pin(link.as_fd(), path)
        .map_err(|e| Error::kernel(format!("cannot pin {}", path.display()), e))
}

/// Our own link pinned at `path` and attached to `link`'s interface, for
/// an interface that has no registry record (a command killed between
/// pinning and recording, or records forgotten): `attach` takes it over,
/// `detach` removes it.
pub fn orphan(path: &Path, link: &Link) -> Result<Option<LinkInfo>> {
    Ok(pinned_link(path)?.filter(|info| {
        info.ifindex == link.index
            && match info.hook {
                Hook::Xdp => link.xdp.is_some_and(|(id, _)| id == info.prog_id),
                // A tcx link cannot be displaced: attached is running.
                Hook::TcxIngress => true,
            }
    }))
}
