//! User space of xdp-forwarder: loads the XDP programs, attaches them to
//! interfaces with pinned links (so they outlive this process), and keeps the
//! pinned maps that tie physical ports and the router together.
//!
//! - [`forwarder`]: one pin dir seen from this network namespace, its
//!   writer [`lock`]; [`attach`], [`detach`] (all-or-nothing, resumable),
//!   [`vid`] policy, [`links`] (load, pin, swap), [`undo`].
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
pub mod error;
pub mod ethtool;
pub mod forwarder;
pub mod health;
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
pub mod status;
mod sys;
mod undo;
mod vid;

pub use error::{Error, Result};
pub use forwarder::Forwarder;
pub use mode::{Mode, ModeChoice};

/// What a port does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Role {
    /// A NIC: frames get its VID and go to the router interface.
    Physical = 0,
    /// The router-facing interface: frames lose their tag and go to the NIC
    /// the VID names.
    Router = 1,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Physical => "physical",
            Role::Router => "router",
        })
    }
}
