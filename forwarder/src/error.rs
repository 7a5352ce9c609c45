//! Errors a user can act on: each names the interface or pin path involved
//! and says what to do.

use std::path::PathBuf;

use crate::Role;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interface {0:?} does not exist in this network namespace (see `ip link`)")]
    UnknownInterface(String),

    #[error(
        "{path} is not a bpffs mount: mount it with `mount -t bpf bpf {path}` \
         (fstab: `bpffs {path} bpf defaults 0 0`), or choose another --pin-dir"
    )]
    NotBpffs { path: PathBuf },

    #[error(
        "{action} needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN: run it as root, e.g. with sudo"
    )]
    NotPrivileged { action: &'static str },

    #[error(
        "{path} holds {found}, not the {expected} xdp-forwarder expects; if nothing uses it, \
         remove it (`rm {path}`), or choose another --pin-dir"
    )]
    IncompatiblePin {
        path: PathBuf,
        found: String,
        expected: String,
    },

    #[error("VID {vid} is already used by interface {owner}; choose another with --vid")]
    VidInUse { vid: u16, owner: String },

    #[error("no free VID left (all of 1..=4094 are used)")]
    NoFreeVid,

    #[error("--vid {0} is not a usable VID: choose one in 1..=4094")]
    InvalidVid(u32),

    #[error("{iface} is already attached as {current}; detach it first or add --replace")]
    RoleConflict { iface: String, current: Role },

    #[error(
        "{iface} is already attached as physical with VID {current}; add --replace to change it"
    )]
    VidConflict { iface: String, current: u16 },

    #[error(
        "{iface} already runs XDP program id {prog_id}, which xdp-forwarder did not attach; \
         remove it first (`ip link set dev {iface} xdp off`)"
    )]
    ForeignProgram { iface: String, prog_id: u32 },

    #[error("{iface} is not attached by xdp-forwarder (see `xdp-forwarder status`)")]
    NotAttached { iface: String },

    #[error("the benchmark failed: {0}")]
    Bench(String),

    #[error("the demo failed: {0}")]
    Demo(String),

    #[error("a demo check failed (see FAIL above)")]
    DemoFailed,

    #[error("refusing to use {iface}: {why}")]
    Refused { iface: String, why: String },

    #[error("{context}: {source}")]
    Kernel {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// A failed kernel/netlink operation, with what we were doing; EPERM and
    /// EACCES become the privilege error, which says what to do.
    /// The verifier refused a program: EACCES there means "invalid
    /// program", never missing privileges (checked before loading).
    pub fn verifier(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Kernel {
            context: context.into(),
            source: source.into(),
        }
    }

    pub fn kernel(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = source.into();
        if is_permission_error(source.as_ref()) {
            return Error::NotPrivileged {
                action: "this operation",
            };
        }
        Error::Kernel {
            context: context.into(),
            source,
        }
    }
}

fn is_permission_error(mut e: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return true;
        }
        match e.source() {
            Some(next) => e = next,
            None => return false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
