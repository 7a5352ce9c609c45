//! The map slots a port takes: the two DEVMAPs the XDP programs redirect
//! through and the tc programs' copy of their slots ([`SlotMap::of_port`]).

use crate::{
    Result, Role,
    state::{
        pins::{Pinned, SlotMap},
        undo::Undo,
    },
};

/// The maps every attach may write: the two DEVMAPs the XDP programs
/// redirect through, and the tc programs' copy of their slots.
pub(super) struct Slots {
    pub(super) router_iface: Pinned,
    pub(super) vlan_ports: Pinned,
    pub(super) tc_targets: Pinned,
}

impl Slots {
    /// The maps and keys of a port's slots ([`SlotMap::of_port`]).
    pub(super) fn of(&self, role: Role, vid: u16) -> [(&Pinned, u32); 2] {
        SlotMap::of_port(role, vid).map(|(map, key)| {
            let pinned = match map {
                SlotMap::RouterIface => &self.router_iface,
                SlotMap::VlanPorts => &self.vlan_ports,
                SlotMap::TcTargets => &self.tc_targets,
            };
            (pinned, key)
        })
    }

    /// Points the port's slots at `ifindex`, each step undone on failure.
    pub(super) fn take(&self, role: Role, vid: u16, ifindex: u32, undo: &mut Undo) -> Result<()> {
        for (map, key) in self.of(role, vid) {
            let before = map.get(key)?;
            map.set(key, ifindex)?;
            undo.restore_slot(map, key, before);
        }
        Ok(())
    }

    /// Empties the port's slots that still lead to `ifindex`.
    pub(super) fn give_up(
        &self,
        role: Role,
        vid: u16,
        ifindex: u32,
        undo: &mut Undo,
    ) -> Result<()> {
        for (map, key) in self.of(role, vid) {
            if map.get(key)? == Some(ifindex) {
                map.clear(key)?;
                undo.restore_slot(map, key, Some(ifindex));
            }
        }
        Ok(())
    }

    /// Fills the port's empty slots with `ifindex` (a slot another port
    /// holds is left: `status` warns); whether one was empty.
    pub(super) fn refill(&self, role: Role, vid: u16, ifindex: u32) -> Result<bool> {
        let mut refilled = false;
        for (map, key) in self.of(role, vid) {
            if map.get(key)?.is_none() {
                map.set(key, ifindex)?;
                refilled = true;
            }
        }
        Ok(refilled)
    }
}
