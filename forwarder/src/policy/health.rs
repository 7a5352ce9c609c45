//! Whether a registered port really runs our program: asked of the kernel
//! (the pinned link, the program on the interface), never of the pins alone.

use std::path::Path;

use crate::{
    Result,
    kernel::{mode::Hook, netdev::Interface, sys::LinkInfo},
    state::attachment,
};

/// What the kernel says about one registered port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Its pinned link is attached to the interface, which runs the link's
    /// program.
    Attached(LinkInfo),
    /// No interface has that ifindex any more.
    Gone,
    /// The port's link is not pinned (a command was killed before it pinned
    /// it, or the pin was removed by hand).
    NoLink,
    /// The link is pinned but detached: `bpftool link detach`, or the
    /// interface was removed and the ifindex since reused.
    LinkDetached,
    /// Our clsact filter is gone or runs another program: `tc filter del`,
    /// the clsact qdisc deleted, or the ifindex reused.
    FilterGone,
    /// The interface runs another program than the link's, or none.
    NotRunning { running: Option<u32> },
}

impl Health {
    pub fn is_attached(&self) -> bool {
        matches!(self, Health::Attached(_))
    }

    /// For `status` and the logs: what is wrong, and what repairs it.
    pub fn problem(&self) -> Option<String> {
        Some(match self {
            Health::Attached(_) => return None,
            Health::Gone => "interface is gone; `detach --gone` forgets it".into(),
            Health::NoLink => "not attached (its link is not pinned: an attach was interrupted?); \
                 `attach` again completes it, `detach` removes it"
                .into(),
            Health::LinkDetached => {
                "not attached (its link was detached: `bpftool link detach`, or the \
                 ifindex belongs to a new interface); `attach` again repairs it"
                    .into()
            }
            Health::FilterGone => {
                "not attached (its tc filter was deleted, or the clsact qdisc; or the ifindex \
                 belongs to a new interface); `attach` again repairs it"
                    .into()
            }
            Health::NotRunning { running: Some(id) } => format!(
                "not attached: the interface runs XDP program id {id}, not ours; \
                 `attach` again re-attaches it"
            ),
            Health::NotRunning { running: None } => {
                "not attached: the interface runs no XDP program; `attach` again re-attaches it"
                    .into()
            }
        })
    }
}

/// The health of the port registered at `ifindex`, whose link is pinned at
/// `link_pin`; `link` is the interface with that ifindex now, if any.
pub fn of(ifindex: u32, link: Option<&Interface>, link_pin: &Path) -> Result<Health> {
    let Some(link) = link else {
        return Ok(Health::Gone);
    };
    let Some(info) = attachment::pinned(link_pin, ifindex)? else {
        return Ok(Health::NoLink);
    };
    if info.ifindex != ifindex {
        return Ok(match info.hook {
            Hook::Xdp | Hook::TcxIngress => Health::LinkDetached,
            Hook::ClsactIngress => Health::FilterGone,
        });
    }
    match info.hook {
        Hook::Xdp => {
            let running = link.xdp.map(|(id, _)| id);
            if running != Some(info.prog_id) {
                return Ok(Health::NotRunning { running });
            }
        }
        // tcx runs every attached link's program, and a filter of ours
        // reads as attached only while it runs the pinned program.
        Hook::TcxIngress | Hook::ClsactIngress => {}
    }
    Ok(Health::Attached(info))
}
