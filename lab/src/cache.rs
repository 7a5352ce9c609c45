//! The lab's download cache: Debian kernels and a recent libbpf, fetched or
//! built once and shared by every run on this machine (also across clones).

use std::{
    fs::{self, File},
    path::PathBuf,
};

use anyhow::Context as _;

/// `XDP_FORWARDER_LAB_CACHE`, else `/var/cache/xdp-forwarder-lab`.
pub fn root() -> PathBuf {
    std::env::var_os("XDP_FORWARDER_LAB_CACHE").map_or_else(
        || PathBuf::from("/var/cache/xdp-forwarder-lab"),
        PathBuf::from,
    )
}

/// Held while something is fetched into the cache: concurrent tests (and
/// a demo beside them) fetch each thing once, the others wait.
pub struct CacheLock {
    _file: File,
}

pub fn lock() -> anyhow::Result<CacheLock> {
    let root = root();
    fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let path = root.join("lock");
    let file = File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(CacheLock { _file: file })
}

/// A fresh, empty directory `name` under the cache root (for building
/// something that is renamed into place once complete).
pub fn scratch(name: &str) -> anyhow::Result<PathBuf> {
    let dir = root().join(format!("{name}.partial"));
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", dir.display())),
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Moves a completed [`scratch`] directory to its place.
pub fn commit(scratch: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    fs::rename(scratch, to)
        .with_context(|| format!("cannot move {} to {}", scratch.display(), to.display()))
}
