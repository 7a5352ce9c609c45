//! Layer 1 of 5, the bottom: the kernel's interfaces, as the kernel names them.
//!
//! Owns: the raw `bpf(2)` commands aya lacks ([`sys`]), rtnetlink ([`netdev`]),
//! `SIOCETHTOOL` ([`ethtool`]), the clsact `cls_bpf` filter ([`clsact`]), the
//! capability check ([`privileges`]), and the ways the kernel can run a program
//! ([`mode`]: hooks, link flags, what each mode switches off, `auto`'s order).
//! May use: [`crate::error`], [`crate::role`] and other crates only. Knows
//! nothing of our pin dir.

pub mod clsact;
pub mod ethtool;
pub mod mode;
pub mod netdev;
pub mod privileges;
pub(crate) mod sys;
