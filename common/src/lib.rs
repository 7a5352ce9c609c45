//! What the XDP programs and user space share: 802.1Q constants, the layout of
//! the pinned maps, and the frame logic itself.
//!
//! The frame logic is written once, against the [`Frame`] trait: the eBPF crate
//! implements it over `xdp_md`, and [`BufFrame`] implements it over a byte
//! buffer so that the same code is unit-tested, property-tested and fuzzed on
//! the host.
#![no_std]

pub mod counters;
pub mod drop_reason;
pub mod forward;
pub mod frame;
pub mod maps;
pub mod skb_path;
pub mod station_nat;
pub mod station_table;
pub mod vlan;

pub use counters::PortCounters;
pub use drop_reason::DropReason;
pub use forward::{RouterMode, pop_port_tag, push_port_tag};
pub use frame::{BufFrame, Frame};
pub use skb_path::{SkbTag, outer_port_vid, port_tag_tci};
pub use vlan::Vid;
