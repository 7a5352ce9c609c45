//! One writer at a time per pin dir. The lock is an `flock` on the pin
//! dir's own inode, so every spelling of the path (`/p`, `/p/`, `//p`, a
//! bind mount) is the same lock and two different dirs never share one.
//! `status` reads without it.

use std::{fs::File, io, path::Path};

use tracing::debug;

use crate::{Error, Result};

/// Held while a command changes the pin dir; released on drop (and by the
/// kernel when the process dies, so a killed command never blocks others).
#[derive(Debug)]
pub struct WriterLock {
    _dir: File,
}

impl WriterLock {
    /// Waits until no other writer holds `dir`.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let file = open_dir(dir)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                debug!(dir = %dir.display(), "waiting for another writer of the pin dir");
                file.lock().map_err(|e| lock_error(dir, e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(dir, e)),
        }
        Ok(Self { _dir: file })
    }
}

/// Held by `xdp-forwarder run` for its life, on the state directory: one
/// daemon per pin dir.
#[derive(Debug)]
pub struct DaemonLock {
    _dir: File,
    /// The locked state dir's inode: the daemon notices when the state dir
    /// at the path is no longer this one (removed by hand, rebuilt).
    ino: u64,
}

impl DaemonLock {
    /// `None` when another daemon holds it.
    pub fn try_acquire(state_dir: &Path) -> Result<Option<Self>> {
        use std::os::unix::fs::MetadataExt as _;
        let file = open_dir(state_dir)?;
        let ino = file.metadata().map_err(|e| lock_error(state_dir, e))?.ino();
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _dir: file, ino })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(lock_error(state_dir, e)),
        }
    }

    /// One daemon per pin dir: a lock on its state directory, held for the
    /// daemon's life (taken under the writer lock, so that no command removes
    /// the directory in between). Keyed by the directory itself, never by how
    /// the path is spelled, and nothing is left in /run.
    pub fn for_pin_dir(pin_dir: &Path) -> Result<DaemonLock> {
        let pins = crate::state::pins::PinDir::open(pin_dir)?;
        let _writer = WriterLock::acquire(pins.root())?;
        pins.ensure_state_dir()?;
        DaemonLock::try_acquire(&pins.state_dir())?.ok_or_else(|| Error::PinDirRefused {
            path: pin_dir.to_owned(),
            why: format!(
                "another `xdp-forwarder run` manages this pin dir (it holds a lock on {})",
                pins.state_dir().display()
            ),
        })
    }

    /// The inode of the state dir this lock holds.
    pub fn state_dir_ino(&self) -> u64 {
        self.ino
    }

    /// Whether a daemon holds the lock of `state_dir` now (checked by taking
    /// and dropping it; call under the writer lock so none can start meanwhile).
    pub fn is_held(state_dir: &Path) -> Result<bool> {
        Ok(Self::try_acquire(state_dir)?.is_none())
    }
}

fn open_dir(dir: &Path) -> Result<File> {
    File::open(dir).map_err(|e| Error::kernel(format!("cannot open {}", dir.display()), e))
}

fn lock_error(dir: &Path, e: io::Error) -> Error {
    Error::kernel(format!("cannot lock {}", dir.display()), e)
}
