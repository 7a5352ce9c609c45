//! Layer 3 of 5: the rules, decided from facts the kernel and the pins give.
//!
//! Owns: which directions between ports work in which modes and which ports
//! `auto` must move ([`directions`]), which VID a NIC gets ([`vid`]), whether a
//! port really runs our program ([`health`]), what an interface can do
//! ([`inspect`]).
//! May use: [`crate::state`], [`crate::kernel`], [`crate::error`], [`crate::role`].

pub(crate) mod directions;
pub mod health;
pub mod inspect;
pub(crate) mod vid;
