//! Names and layouts of the maps and load-time globals both sides use.

/// DEVMAP, 1 entry, key 0 → the router interface. Name, type and pin path are
/// those of the original, so its tools keep working.
pub const ROUTER_IFACE: &str = "router_iface";
pub const ROUTER_IFACE_ENTRIES: u32 = 1;
/// The only key of `router_iface`.
pub const ROUTER_IFACE_KEY: u32 = 0;

/// DEVMAP, key VID → the interface attached as physical with that VID. The
/// managed router redirects through it, so it can only reach those ports.
pub const VLAN_PORTS: &str = "fwd_vlan_ports";
/// One slot per 12-bit VID (0 and 4095 stay empty).
pub const VLAN_PORTS_ENTRIES: u32 = 4096;

/// ARRAY, key → [`TcTarget`] (0: empty): what the tc programs redirect to. Slot
/// [`TC_ROUTER_KEY`] mirrors `router_iface`'s slot 0, slot VID mirrors
/// `fwd_vlan_ports`. A tc program cannot use the DEVMAPs themselves: a map
/// that can hold programs (PROG_ARRAY, DEVMAP, CPUMAP) belongs to the type
/// of the first program that uses it (`__bpf_prog_map_compatible`), and
/// the XDP programs share them.
pub const TC_TARGETS: &str = "fwd_tc_targets";
pub const TC_TARGETS_ENTRIES: u32 = VLAN_PORTS_ENTRIES;
/// VID 0 is reserved, so its slot holds the router.
pub const TC_ROUTER_KEY: u32 = 0;

/// A [`TC_TARGETS`] value: the ifindex the tc programs redirect to, and
/// bit 31 set when that port is a Wi-Fi station, toward which the router's
/// tc program translates (its MAC in `fwd_stations`). One look-up gives
/// the router both, so an Ethernet port's frames pay nothing for stations.
/// An ifindex is a positive `int` (`dev_new_index` in net/core/dev.c):
/// bit 31 is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcTarget(u32);

impl TcTarget {
    const STATION: u32 = 1 << 31;

    /// The slot's value for the port at `ifindex`.
    pub const fn new(ifindex: u32, station: bool) -> Self {
        Self(ifindex | if station { Self::STATION } else { 0 })
    }

    /// A value read from the map.
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    /// What the map holds.
    pub const fn raw(self) -> u32 {
        self.0
    }

    pub const fn ifindex(self) -> u32 {
        self.0 & !Self::STATION
    }

    /// The port is a Wi-Fi station: translate what goes to it.
    pub const fn station(self) -> bool {
        self.0 & Self::STATION != 0
    }
}

/// PERCPU_ARRAY of one [`PortCounters`](crate::PortCounters), private to each
/// loaded program; our loader pins it beside the port's link.
pub const COUNTERS: &str = "fwd_counters";

/// Read-only global: 0 turns counting off (the benchmark measures its cost).
pub const GLOBAL_COUNTING: &str = "COUNTING";
/// Read-only global: 1 when our CLI loaded the object (managed mode), 0 when a
/// foreign loader did (drop-in mode, the original's behaviour).
pub const GLOBAL_MANAGED: &str = "MANAGED";
/// Read-only global of the physical program in managed mode: its port's VID.
pub const GLOBAL_PORT_VID: &str = "PORT_VID";

/// The kernel ORs this into every DEVMAP's flags (programs may not write to
/// it); ignore it when comparing a pinned map with what we expect.
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;

/// The program (ELF section `xdp`) and object names, as in the original.
pub const PROG_PHYSICAL: &str = "physical";
pub const PROG_ROUTER: &str = "router";

/// LRU_PERCPU_HASH, key: the id of the XDP program that redirected (u32),
/// value: how many of its redirects the kernel refused afterwards (u64 per
/// CPU), counted by `prog_redirect_errors` from the tracepoint
/// `xdp:xdp_redirect_err`. One per pin dir, pinned at
/// `xdp-forwarder/fwd_redirect_errors`; LRU, so that the ids of programs
/// long replaced make room.
pub const REDIRECT_ERRORS: &str = "fwd_redirect_errors";
pub const REDIRECT_ERRORS_ENTRIES: u32 = 4096;
/// The tracepoint program of `prog_redirect_errors` (ELF section `tracepoint`).
pub const PROG_REDIRECT_ERRORS: &str = "redirect_errors";
/// Read-only global of `prog_redirect_errors`: the offset of `prog_id` in
/// the tracepoints' record, as their `format` file says.
pub const GLOBAL_PROG_ID_OFFSET: &str = "PROG_ID_OFFSET";
/// The raw tracepoint program of `prog_redirect_errors` on
/// `xdp_devmap_xmit`: frames a native redirect queued that the target's
/// driver then refused, counted into the same map by the id of the program
/// running natively on the receiving device.
pub const PROG_DEVMAP_XMIT_DROPS: &str = "devmap_xmit_drops";
/// Read-only globals of `prog_redirect_errors`: the kernel's structure
/// offsets (bytes, from the running kernel's BTF) that lead from a
/// `struct net_device *` to the id of its native XDP program:
/// `net_device.xdp_state[XDP_MODE_DRV].link`, `….prog`,
/// `bpf_xdp_link.link.prog`, `bpf_prog.aux`, `bpf_prog_aux.id`.
pub const GLOBAL_DEVMAP_OFFSETS: [&str; 5] = [
    "OFF_DEV_DRV_LINK",
    "OFF_DEV_DRV_PROG",
    "OFF_XDP_LINK_PROG",
    "OFF_PROG_AUX",
    "OFF_AUX_ID",
];

/// ARRAY, key VID → [`StationSlot`](crate::station_table::StationSlot):
/// whether the port of that VID is a Wi-Fi station and its current MAC.
/// Written by user space (attach, detach, the daemon when the station's
/// MAC changes), read by the tc programs; pinned at
/// `xdp-forwarder/fwd_stations`.
pub const STATIONS: &str = "fwd_stations";
pub const STATIONS_ENTRIES: u32 = VLAN_PORTS_ENTRIES;

/// LRU_HASH, [`NatKey`](crate::station_table::NatKey) (port VID, IP) →
/// [`NatEntry`](crate::station_table::NatEntry) (the VM's MAC, last seen):
/// the station address translation's table, one map for every Wi-Fi port
/// of a pin dir, written only by the router's tc program (toward the AP);
/// pinned at `xdp-forwarder/fwd_station_nat`.
pub const STATION_NAT: &str = "fwd_station_nat";
pub const STATION_NAT_ENTRIES: u32 = 4096;

/// PERCPU_HASH, key VID → [`StationCounters`](crate::station_table::StationCounters):
/// what the translation did per Wi-Fi port; pinned at
/// `xdp-forwarder/fwd_station_counts`. User space inserts a port's entry
/// when it makes the port a station and deletes it with the port: a hash
/// of a few entries, not an array of 4096 VIDs, which would take 196 KB
/// per possible CPU.
pub const STATION_COUNTS: &str = "fwd_station_counts";
/// Wi-Fi stations per pin dir whose frames are counted (more are
/// translated, not counted).
pub const STATION_COUNTS_ENTRIES: u32 = 64;

/// Read-only global of the physical tc program: 1 when its port is a Wi-Fi
/// station (the station path is then compiled in by the verifier's pruning;
/// 0 on Ethernet ports, which pay nothing for it).
pub const GLOBAL_PORT_STATION: &str = "PORT_STATION";

#[cfg(test)]
mod tests {
    use super::TcTarget;

    #[test]
    fn a_tc_target_keeps_its_ifindex_and_says_whether_it_is_a_station() {
        for ifindex in [1, 7, 0x7fff_ffff] {
            for station in [false, true] {
                let t = TcTarget::from_raw(TcTarget::new(ifindex, station).raw());
                assert_eq!((t.ifindex(), t.station()), (ifindex, station));
            }
        }
        // What attach wrote before stations existed reads as Ethernet.
        assert!(!TcTarget::from_raw(42).station());
        assert_eq!(TcTarget::new(42, false).raw(), 42);
    }
}
