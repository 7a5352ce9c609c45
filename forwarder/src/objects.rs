//! The two XDP objects, embedded at build time, and their export.

use std::{fs, path::Path};

use anyhow::Context as _;
use aya::include_bytes_aligned;
use xdp_forwarder_common::maps::{PROG_PHYSICAL, PROG_ROUTER};

use crate::Role;

static PHYSICAL: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_physical"));
static ROUTER: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_router"));

/// The ELF object holding `role`'s program (and the maps it shares).
pub fn object(role: Role) -> &'static [u8] {
    match role {
        Role::Physical => PHYSICAL,
        Role::Router => ROUTER,
    }
}

/// The program's name inside its object (and its ELF section is `xdp`).
pub fn program_name(role: Role) -> &'static str {
    match role {
        Role::Physical => PROG_PHYSICAL,
        Role::Router => PROG_ROUTER,
    }
}

/// File names of the exported objects, as the original's.
pub fn file_name(role: Role) -> String {
    format!("prog_{}.o", program_name(role))
}

/// Writes `prog_physical.o` and `prog_router.o` into `dir` (created if
/// needed), loadable by `xdp-loader load IFACE DIR/prog_X.o -m skb -p /sys/fs/bpf`.
pub fn export(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    [Role::Physical, Role::Router]
        .into_iter()
        .map(|role| {
            let path = dir.join(file_name(role));
            fs::write(&path, object(role))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        })
        .collect()
}
