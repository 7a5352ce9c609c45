//! What a failed command takes back, newest first. Each step undoes exactly
//! what this command did (under the pin dir's writer lock, nobody else's
//! work is in between).

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::PathBuf,
};

use tracing::warn;
use xdp_forwarder_common::station_table::StationSlot;

use crate::{
    Mode, Result,
    attachment::{self, Swapped},
    pins::{self, MapSpec, PinDir, Pinned},
    ports::{PortRecord, Ports},
    sys,
};

pub(crate) struct Undo {
    pins: PinDir,
    steps: Vec<Step>,
}

enum Step {
    /// A pinned map this command created.
    RemovePin(PathBuf),
    /// A program this command attached (link or filter) and pinned:
    /// detach it, then unpin.
    Release { path: PathBuf, ifindex: u32 },
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
    /// A Wi-Fi station's slot in `fwd_stations` as it was.
    RestoreStation { vid: u16, slot: StationSlot },
    /// A program swapped on a port: swap the old one back.
    SwapBack(Swapped),
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

    pub fn release_link(&mut self, path: PathBuf, ifindex: u32) {
        self.steps.push(Step::Release { path, ifindex });
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

    pub fn restore_station(&mut self, vid: u16, slot: StationSlot) {
        self.steps.push(Step::RestoreStation { vid, slot });
    }

    pub fn swap_back(&mut self, swapped: Swapped) {
        self.steps.push(Step::SwapBack(swapped));
    }

    pub fn reattach(&mut self, prog: OwnedFd, ifindex: u32, mode: Mode, path: PathBuf) {
        self.steps.push(Step::Reattach {
            prog,
            ifindex,
            mode,
            path,
        });
    }

    /// Takes over the steps of `trial` (a tried alternative that worked):
    /// undone with this command's own, newest first.
    pub fn absorb(&mut self, mut trial: Undo) {
        self.steps.append(&mut trial.steps);
    }

    pub fn commit(mut self) {
        self.steps.clear();
    }

    fn run(&self, step: &Step) -> Result<()> {
        match step {
            Step::RemovePin(path) => pins::remove_pin(path),
            Step::Release { path, ifindex } => attachment::release(path, *ifindex),
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
            Step::RestoreStation { vid, slot } => {
                match crate::station::StationMaps::open(&self.pins)? {
                    Some(mut maps) => maps.restore(*vid, *slot),
                    None => Ok(()),
                }
            }
            Step::SwapBack(swapped) => swapped.undo(),
            Step::Reattach {
                prog,
                ifindex,
                mode,
                path,
            } => attachment::reattach(prog.as_fd(), *ifindex, *mode, path),
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
