//! User space of xdp-forwarder: loads the XDP programs, attaches them to
//! interfaces with pinned links (so they outlive this process), and keeps the
//! pinned maps that tie physical ports and the router together.
//!
//! The crate root only names the modules and re-exports the types every
//! caller needs ([`Role`], [`Mode`], [`Error`], [`Forwarder`]).
//!
//! - [`forwarder`]: one pin dir seen from this network namespace, its
//!   writer [`lock`]; [`attach`], [`detach`] (all-or-nothing, resumable),
//!   [`vid`] policy, [`links`] (load, pin, swap), [`attachment`] (what holds
//!   a port's program: XDP link, tcx link, [`clsact`] filter), [`undo`].
//! - [`role`] and [`mode`]: what a port does and how its program runs;
//!   [`station`]: Wi-Fi station ports (their kind, translation table).
//! - [`health`]: whether a port really runs our program (asked of the kernel).
//! - [`status`]: what runs where; [`metrics`]: the same as OpenMetrics.
//! - [`pins`], [`ports`]: the pinned state; [`netdev`]: interfaces via rtnetlink.
//! - [`objects`]: the embedded eBPF objects and their export.
//! - [`daemon`]: `run`, the hot-plug daemon.

pub mod attach;
pub mod attachment;
pub mod cli;
pub mod clsact;
pub mod counters;
pub mod daemon;
pub mod detach;
mod directions;
pub mod error;
pub mod ethtool;
pub mod forwarder;
pub mod health;
mod holder;
pub mod inspect;
pub mod links;
pub mod lock;
pub mod metrics;
pub mod mode;
pub mod netdev;
pub mod objects;
pub mod pins;
pub mod ports;
pub mod privileges;
pub mod redirect_errors;
pub mod role;
pub mod station;
pub mod status;
mod sys;
mod undo;
mod vid;

pub use error::{Error, Result};
pub use forwarder::Forwarder;
pub use mode::{Mode, ModeChoice};
pub use role::Role;
