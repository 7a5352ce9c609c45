//! Layer 2 of 5: the pinned state, what we keep in bpffs and how it is held.
//!
//! Owns: the pin dir and the maps' paths and shapes ([`pins`]), the registry
//! ([`ports`]), the locks ([`lock`]), the counters
//! ([`counters`], [`redirect_errors`]), what holds a port's program
//! ([`attachment`], and [`holder`]: who holds one we did not attach), the Wi-Fi
//! stations' maps ([`station`]), the embedded objects ([`objects`]), the rollback
//! log ([`undo`]) and [`forwarder::Forwarder`], one pin dir seen from this
//! network namespace.
//! May use: [`crate::kernel`], [`crate::error`], [`crate::role`].

pub mod attachment;
pub mod counters;
pub mod forwarder;
pub(crate) mod holder;
pub mod lock;
pub mod objects;
pub mod pins;
pub mod ports;
pub mod redirect_errors;
pub mod station;
pub(crate) mod undo;
