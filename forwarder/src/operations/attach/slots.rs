//! The map slots a port takes: the two DEVMAPs the XDP programs redirect
//! through and the tc programs' copy of their slots ([`SlotMap::of_port`]).

use crate::{
    Result, Role,
    state::{
        pins::{Pinned, SlotMap},
        ports::PortRecord,
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
    pub(super) fn of(&self, role: Role, vid: u16) -> [(SlotMap, &Pinned, u32); 2] {
        SlotMap::of_port(role, vid).map(|(map, key)| {
            let pinned = match map {
                SlotMap::RouterIface => &self.router_iface,
                SlotMap::VlanPorts => &self.vlan_ports,
                SlotMap::TcTargets => &self.tc_targets,
            };
            (map, pinned, key)
        })
    }

    /// Points the slots of the port `rec` describes at `ifindex` (a Wi-Fi
    /// station's marked as such: [`SlotMap::value`]), each step undone on
    /// failure.
    pub(super) fn take(&self, rec: &PortRecord, ifindex: u32, undo: &mut Undo) -> Result<()> {
        for (slot_map, map, key) in self.of(rec.role(), rec.vid) {
            let before = map.get(key)?;
            map.set(key, slot_map.value(ifindex, rec.is_station()))?;
            undo.restore_slot(map, key, before);
        }
        Ok(())
    }

    /// Empties the slots of the port `rec` describes that still lead to
    /// `ifindex`.
    pub(super) fn give_up(&self, rec: &PortRecord, ifindex: u32, undo: &mut Undo) -> Result<()> {
        for (slot_map, map, key) in self.of(rec.role(), rec.vid) {
            if let Some(value) = map.get(key)?
                && slot_map.ifindex(value) == ifindex
            {
                map.clear(key)?;
                undo.restore_slot(map, key, Some(value));
            }
        }
        Ok(())
    }

    /// Fills the port's empty slots with `ifindex`, and puts right one that
    /// leads to it with the wrong station mark (a slot another port holds
    /// is left: `status` warns); whether one changed.
    pub(super) fn refill(&self, rec: &PortRecord, ifindex: u32) -> Result<bool> {
        let mut refilled = false;
        for (slot_map, map, key) in self.of(rec.role(), rec.vid) {
            let want = slot_map.value(ifindex, rec.is_station());
            match map.get(key)? {
                Some(value) if value == want || slot_map.ifindex(value) != ifindex => {}
                _ => {
                    map.set(key, want)?;
                    refilled = true;
                }
            }
        }
        Ok(refilled)
    }
}
