//! What the lab and the tests share, written once: the system's tools
//! ([`cmd`]), network namespaces and veth pairs ([`netns`]), raw Ethernet
//! frames over AF_PACKET ([`packet`]). Never part of the product.

pub mod cmd;
pub mod netns;
pub mod packet;

pub use cmd::{ifindex, run};
