//! Layer 4 of 5: the commands, each a method of [`crate::Forwarder`] or a loop,
//! returning data and errors, never printing.
//!
//! Owns: [`attach`] (fresh, repair, `--replace`, `auto`'s regrouping),
//! [`links`] (load, attach, swap, change mode), [`detach`], [`status`] (what runs
//! where, and its warnings), [`daemon`] (`run`: hot-plug and reconcile).
//! May use: [`crate::policy`], [`crate::state`], [`crate::kernel`],
//! [`crate::error`], [`crate::role`].

pub mod attach;
pub mod daemon;
pub mod detach;
pub mod links;
pub mod status;
