//! What a failed command takes back, newest first. Each step undoes exactly
//! what this command did (under the pin dir's writer lock, nobody else's
//! work is in between).

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::PathBuf,
};

use tracing::warn;

use crate::{
    Mode, Result,
    pins::{self, MapSpec, PinDir, Pinned},
    ports::{PortRecord, Ports},
    sys, xdp_link,
};

pub(crate) struct Undo {
    pins: PinDir,
    steps: Vec<Step>,
}

enum Step {
    /// A pinned map this command created.
    RemovePin(PathBuf),
    /// A link this command attached and pinned: detach it, then unpin.
    ReleaseLink(PathBuf),
    /// An object this command unpinned: pin it back.
    Repin { path: PathBuf, fd: OwnedFd },
    /// Reopened only if the rollback happens.
    RestoreSlot {
        path: PathBuf,
        spec: MapSpec,
        key: u32,
        value: Option<u32>,
    },
    RestoreRecord {
        ifindex: u32,
        record: Option<PortRecord>,
    },
    /// A program swapped on a link: swap the old one back.
    SwapBack {
        link: OwnedFd,
        old: OwnedFd,
        new: OwnedFd,
    },
    /// A link this command detached (to change the mode): attach the old
    /// program again, in its old mode, and pin it where it was.
    Reattach {
        prog: OwnedFd,
        ifindex: u32,
        mode: Mode,
        path: PathBuf,
    },
}

impl Undo {
    pub fn new(pins: &PinDir) -> Self {
        Self {
            pins: pins.clone(),
            steps: Vec::new(),
        }
    }

    pub fn remove_pin(&mut self, path: PathBuf) {
        self.steps.push(Step::RemovePin(path));
    }

    pub fn release_link(&mut self, path: PathBuf) {
        self.steps.push(Step::ReleaseLink(path));
    }

    pub fn repin(&mut self, path: PathBuf, fd: OwnedFd) {
        self.steps.push(Step::Repin { path, fd });
    }

    pub fn restore_slot(&mut self, slots: &Pinned, key: u32, value: Option<u32>) {
        self.steps.push(Step::RestoreSlot {
            path: slots.path.clone(),
            spec: slots.spec,
            key,
            value,
        });
    }

    pub fn restore_record(&mut self, ifindex: u32, record: Option<PortRecord>) {
        self.steps.push(Step::RestoreRecord { ifindex, record });
    }

    pub fn swap_back(&mut self, link: OwnedFd, old: OwnedFd, new: OwnedFd) {
        self.steps.push(Step::SwapBack { link, old, new });
    }

    pub fn reattach(&mut self, prog: OwnedFd, ifindex: u32, mode: Mode, path: PathBuf) {
        self.steps.push(Step::Reattach {
            prog,
            ifindex,
            mode,
            path,
        });
    }

    pub fn commit(mut self) {
        self.steps.clear();
    }

    fn run(&self, step: &Step) -> Result<()> {
        match step {
            Step::RemovePin(path) => pins::remove_pin(path),
            Step::ReleaseLink(path) => xdp_link::release(path),
            Step::Repin { path, fd } => {
                pins::remove_pin(path)?;
                sys::obj_pin(fd.as_fd(), path).map_err(|e| {
                    crate::Error::kernel(format!("cannot pin {} again", path.display()), e)
                })
            }
            Step::RestoreSlot {
                path,
                spec,
                key,
                value,
            } => pins::open_existing(path, *spec)
                .and_then(|slots| slots.map_or(Ok(()), |s| s.restore(*key, *value))),
            Step::RestoreRecord { ifindex, record } => match Ports::open(&self.pins)? {
                Some(mut ports) => match record {
                    Some(rec) => ports.insert(*ifindex, *rec),
                    None => ports.remove(*ifindex),
                },
                None => Ok(()),
            },
            Step::SwapBack { link, old, new } => {
                sys::link_update(link.as_fd(), old.as_fd(), new.as_fd())
                    .map_err(|e| crate::Error::kernel("cannot swap the old program back", e))
            }
            Step::Reattach {
                prog,
                ifindex,
                mode,
                path,
            } => xdp_link::reattach(prog.as_fd(), *ifindex, *mode, path),
        }
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        while let Some(step) = self.steps.pop() {
            if let Err(error) = self.run(&step) {
                warn!(%error, "rollback step failed");
            }
        }
    }
}
