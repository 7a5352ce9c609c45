//! Errors a user can act on: each names the interface or pin path involved
//! and says what to do.

use std::path::PathBuf;

use crate::Role;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interface {0:?} does not exist in this network namespace (see `ip link`)")]
    UnknownInterface(String),

    #[error("interface name {0:?} is too long: Linux names have at most 15 bytes")]
    InterfaceNameTooLong(String),

    #[error(
        "{pin_dir} is in use from another network namespace (cookie {owner}, where \
         {live} port(s) still run our programs); this one is cookie {ours}. Use one pin dir \
         per network namespace (--pin-dir), or run this command in that namespace"
    )]
    OtherNetns {
        pin_dir: PathBuf,
        owner: u64,
        ours: u64,
        live: usize,
    },

    /// `fix`: `chmod 0700` where the directory is root's, else removing
    /// it (which unpins every port in it).
    #[error(
        "{path} {why}: another user could have replaced our pins. {fix}; and mount bpffs \
         with mode=0700 (`mount -t bpf -o mode=0700 bpf DIR`)"
    )]
    UnsafeStateDir {
        path: PathBuf,
        why: String,
        fix: String,
    },

    #[error(
        "--router-mac-prefix {0:?} is not a MAC prefix: give 1 to 6 octets of two hex \
         digits separated by colons, e.g. 02:01 or 02:01:"
    )]
    InvalidMacPrefix(String),

    /// `why` and `fix` depend on where we run ([`crate::state::pins::not_bpffs`]):
    /// a missing directory, a mount namespace that hides the host's bpffs
    /// (`ip netns exec`), or a directory to mount bpffs on.
    #[error("{path} {why}: {fix}")]
    NotBpffs {
        path: PathBuf,
        why: String,
        fix: String,
    },

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

    /// `program`: what runs ("XDP program id N", "tc program id N …");
    /// `holder` says who holds it and the command that removes it
    /// ([`crate::state::holder`]).
    #[error("{iface} already runs {program}, {holder}")]
    ForeignProgram {
        iface: String,
        program: String,
        holder: String,
    },

    #[error("{iface} is not attached by xdp-forwarder (see `xdp-forwarder status`)")]
    NotAttached { iface: String },

    #[error("{0}")]
    Failed(String),

    /// `status --check`: the status was printed, and it has warnings.
    #[error("status: {0} warning(s) (see above)")]
    StatusWarnings(usize),

    #[error("refusing to use {iface}: {why}")]
    Refused { iface: String, why: String },

    #[error("refusing to use {path}: {why}")]
    PinDirRefused { path: PathBuf, why: String },

    #[error("{context}: {cause}")]
    Kernel { context: String, cause: Cause },

    #[error(
        "the eBPF object built into this binary is corrupt ({0}): a build problem, not a \
         setting; rebuild xdp-forwarder (`cargo xtask install`) or reinstall the package"
    )]
    CorruptObject(String),

    #[error("cannot write the output as JSON: {0}")]
    Output(String),
}

impl Error {
    /// The verifier refused a program: EACCES there means "invalid
    /// program", never missing privileges (checked before loading).
    pub fn verifier(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::kernel(context, source)
    }

    /// A failed kernel or netlink operation, with what we were doing. The
    /// privileges were checked before (see [`crate::kernel::privileges`]), so an
    /// EPERM here is the kernel's own refusal and is shown as such, errno
    /// included.
    pub fn kernel(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = source.into();
        Error::Kernel {
            context: context.into(),
            cause: chain(source.as_ref()),
        }
    }

    /// The errno at the bottom of a kernel error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { cause, .. } => cause.errno,
            _ => None,
        }
    }
}

/// An error and every cause below it, in one line: aya and anyhow keep the
/// errno in a source that `Display` alone does not show.
#[derive(Debug)]
pub struct Cause {
    pub message: String,
    pub errno: Option<i32>,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn chain(mut e: &(dyn std::error::Error + 'static)) -> Cause {
    let mut message = String::new();
    let mut errno = None;
    loop {
        let text = e.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            errno = io.raw_os_error().or(errno);
        }
        match e.source() {
            Some(next) => e = next,
            None => return Cause { message, errno },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The exit code of `status --check` when the status has warnings.
pub const EXIT_WARNINGS: u8 = 3;
