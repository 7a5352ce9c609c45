//! User space of xdp-forwarder: loads the XDP and tc programs, attaches them to
//! interfaces with pinned links (so they outlive this process), and keeps the
//! pinned maps that tie physical ports and the router together.
//!
//! Five layers, each a folder; imports only go down (forwarder/tests/layers.rs):
//!
//! 5. [`presentation`]: the command line and OpenMetrics, the only code that
//!    prints.
//! 4. [`operations`]: attach, detach, status, the daemon.
//! 3. [`policy`]: directions, VIDs, health, what an interface can do.
//! 2. [`state`]: the pin dir, the registry, locks, counters, attachments,
//!    stations, the embedded objects, [`Forwarder`].
//! 1. [`kernel`]: `bpf(2)`, rtnetlink, ethtool, clsact, capabilities, modes.
//!
//! [`error`] and [`role`] are beside them, for all: the errors every layer
//! returns, and what a port does, which the errors and the pins name. The crate root re-exports [`Role`],
//! [`Mode`], [`Error`] and [`Forwarder`], and every module under its path from
//! before the layers.

pub mod error;
pub mod kernel;
pub mod operations;
pub mod policy;
pub mod presentation;
pub mod role;
pub mod state;

// The modules' paths before the layers (`xdp_forwarder::status::Status`, …),
// kept for the binaries, the lab and the tests. Inside the crate, name the
// layer (forwarder/tests/layers.rs checks it).
pub use kernel::{clsact, ethtool, mode, netdev, privileges};
pub use operations::{attach, daemon, detach, links, status};
pub use policy::{health, inspect};
pub use presentation::{cli, metrics};
pub use state::{
    attachment, counters, forwarder, lock, objects, pins, ports, redirect_errors, station,
};

pub use error::{Error, Result};
pub use kernel::mode::{Mode, ModeChoice};
pub use role::Role;
pub use state::forwarder::Forwarder;
