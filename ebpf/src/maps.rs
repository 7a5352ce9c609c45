//! BTF map definitions, laid out as libbpf expects them in `.maps`.
//!
//! aya-ebpf's own BTF maps have no `pinning` member; without it
//! `xdp-loader -p DIR` would not pin `router_iface` by name, and exported
//! objects would not share it as the original's did.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_map_lookup_elem, bpf_map_update_elem, bpf_redirect_map},
};
use xdp_forwarder_common::{
    PortCounters,
    maps::{
        BPF_F_RDONLY_PROG, ROUTER_IFACE_ENTRIES, STATION_COUNTS_ENTRIES, STATION_NAT_ENTRIES,
        STATIONS_ENTRIES, TC_TARGETS_ENTRIES, VLAN_PORTS_ENTRIES,
    },
    station_table::{NatEntry, NatKey, StationCounters, StationSlot},
};

/// `LIBBPF_PIN_NONE` / `LIBBPF_PIN_BY_NAME`.
pub const PIN_NONE: usize = 0;
pub const PIN_BY_NAME: usize = 1;

/// A DEVMAP with 4-byte keys and values (as the original declares it).
/// Every member is a pointer whose pointee type carries the value in BTF.
#[repr(C)]
pub struct DevMap<const MAX_ENTRIES: usize, const PINNING: usize, const FLAGS: usize> {
    r#type: *const [i32; 14], // BPF_MAP_TYPE_DEVMAP
    key: *const u32,
    value: *const u32,
    max_entries: *const [i32; MAX_ENTRIES],
    map_flags: *const [i32; FLAGS],
    pinning: *const [i32; PINNING],
}

// SAFETY: the members are never dereferenced; the loader replaces the whole
// definition with a map reference.
unsafe impl<const M: usize, const P: usize, const F: usize> Sync for DevMap<M, P, F> {}

impl<const M: usize, const P: usize, const F: usize> DevMap<M, P, F> {
    pub const fn new() -> Self {
        Self {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
            map_flags: ptr::null(),
            pinning: ptr::null(),
        }
    }

    /// Prepares the redirect to the device in slot `key`; `false` for an
    /// empty slot (flags `XDP_DROP`: a clean drop, not the XDP_ABORTED of 0).
    #[inline(always)]
    pub fn redirect(&self, key: u32) -> bool {
        let map = ptr::from_ref(self).cast_mut().cast::<c_void>();
        // SAFETY: `map` is a map reference after relocation; the low bits of
        // flags are the action to return when the slot is empty.
        let ret = unsafe { bpf_redirect_map(map, key.into(), u64::from(xdp_action::XDP_DROP)) };
        ret == i64::from(xdp_action::XDP_REDIRECT)
    }
}

impl<const M: usize, const P: usize, const F: usize> Default for DevMap<M, P, F> {
    fn default() -> Self {
        Self::new()
    }
}

/// `router_iface`: the router interface in slot 0 (name, type, pinning as
/// the original's), with the map flags the object declares.
pub type RouterIface<const FLAGS: usize> =
    DevMap<{ ROUTER_IFACE_ENTRIES as usize }, PIN_BY_NAME, FLAGS>;

/// Flags of the objects we embed and export by default: none, as the
/// original. Every loader can create the map from them on a fresh bpffs,
/// and libbpf 1.3 and later reuse a pinned one (they add the
/// `BPF_F_RDONLY_PROG` the kernel reports before comparing).
pub const ROUTER_IFACE_FLAGS: usize = 0;

/// Flags of the objects exported for libbpf 1.1 (Debian 12): the ones the
/// kernel reports, because that libbpf compares them strictly when it
/// reuses the pin. No loader can create the map from them (the kernel
/// refuses the flag at creation), so the pin must exist first.
/// (`BPF_F_RDONLY_PROG`: the kernel ORs it into every DEVMAP's flags.)
pub const ROUTER_IFACE_FLAGS_LIBBPF_1_1: usize = BPF_F_RDONLY_PROG as usize;

/// Declares `ROUTER_IFACE`, the `router_iface` map, in a program's object.
/// Each object declares it (an object's maps are what a loader pins), and
/// the two export variants differ only in its flags, so it lives in the
/// entry points rather than in this library.
#[macro_export]
macro_rules! router_iface {
    ($flags:expr) => {
        #[unsafe(link_section = ".maps")]
        #[unsafe(export_name = "router_iface")]
        pub static ROUTER_IFACE: $crate::maps::RouterIface<{ $flags }> =
            $crate::maps::DevMap::new();
    };
}

/// VID → physical port, for the managed router. Pinned by our loader at a path
/// of its choosing, so a foreign loader leaves it private and unused.
#[unsafe(link_section = ".maps")]
#[unsafe(export_name = "fwd_vlan_ports")]
pub static VLAN_PORTS: DevMap<{ VLAN_PORTS_ENTRIES as usize }, PIN_NONE, 0> = DevMap::new();

/// An ARRAY of `N` ifindexes (0: empty).
pub type IfindexArray<const N: usize> = KeyedMap<u32, u32, ARRAY, N>;

impl<const N: usize> IfindexArray<N> {
    /// The ifindex in slot `key`; `None` when it is empty or out of range.
    #[inline(always)]
    pub fn ifindex(&self, key: u32) -> Option<u32> {
        self.get(&key).copied().filter(|&ifindex| ifindex != 0)
    }
}

/// `fwd_tc_targets`: the tc programs' copy of the DEVMAPs' slots (key 0:
/// the router, key VID: that NIC), each a [`TcTarget`](xdp_forwarder_common::maps::TcTarget) (bit 31:
/// a Wi-Fi station). Pinned by our loader.
#[unsafe(link_section = ".maps")]
#[unsafe(export_name = "fwd_tc_targets")]
pub static TC_TARGETS: IfindexArray<{ TC_TARGETS_ENTRIES as usize }> = IfindexArray::new();

/// A one-entry PERCPU_ARRAY holding `V`.
#[repr(C)]
pub struct PerCpuCell<V> {
    r#type: *const [i32; 6], // BPF_MAP_TYPE_PERCPU_ARRAY
    key: *const u32,
    value: *const V,
    max_entries: *const [i32; 1],
}

// SAFETY: as for `DevMap`, the members are never dereferenced.
unsafe impl<V> Sync for PerCpuCell<V> {}

impl<V> PerCpuCell<V> {
    pub const fn new() -> Self {
        Self {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
        }
    }

    /// Runs `f` on this CPU's copy (skipped only if the map was not loaded
    /// as declared). A closure, not a `&mut` out of `&self`: the borrow ends here.
    #[inline(always)]
    pub fn update(&self, f: impl FnOnce(&mut V)) {
        let map = ptr::from_ref(self).cast_mut().cast::<c_void>();
        let key = 0u32;
        // SAFETY: `map` is a map reference after relocation and `key` lives
        // across the call; the helper returns null or this CPU's value.
        let value = unsafe { bpf_map_lookup_elem(map, ptr::from_ref(&key).cast()) };
        // SAFETY: a non-null result points at a `V` that only this CPU
        // touches while the program runs (no preemption inside XDP).
        if let Some(v) = unsafe { value.cast::<V>().as_mut() } {
            f(v);
        }
    }
}

impl<V> Default for PerCpuCell<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// This program instance's counters (private: each load creates its own;
/// our loader pins it beside the port's link).
#[unsafe(link_section = ".maps")]
#[unsafe(export_name = "fwd_counters")]
pub static COUNTERS: PerCpuCell<PortCounters> = PerCpuCell::new();

/// A BTF map of `N` entries of type `TYPE` (`BPF_MAP_TYPE_*`), keys `K`,
/// values `V`, for the maps only our loader loads (it pins them by path).
#[repr(C)]
pub struct KeyedMap<K, V, const TYPE: usize, const N: usize> {
    r#type: *const [i32; TYPE],
    key: *const K,
    value: *const V,
    max_entries: *const [i32; N],
}

// SAFETY: as for `DevMap`, the members are never dereferenced.
unsafe impl<K, V, const T: usize, const N: usize> Sync for KeyedMap<K, V, T, N> {}

impl<K, V, const T: usize, const N: usize> KeyedMap<K, V, T, N> {
    pub const fn new() -> Self {
        Self {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
        }
    }

    /// The value of `key` (this CPU's, in a per-CPU map); `None` when there
    /// is none.
    #[inline(always)]
    pub fn get(&self, key: &K) -> Option<&V> {
        // SAFETY: as in `lookup`; read only.
        unsafe { self.lookup(key).as_ref() }
    }

    /// Runs `f` on the value of `key` (this CPU's, in a per-CPU map), if
    /// there is one. A closure, not a `&mut` out of `&self`: the borrow
    /// ends here.
    #[inline(always)]
    pub fn update(&self, key: &K, f: impl FnOnce(&mut V)) {
        // SAFETY: a non-null result is the value, which the kernel keeps
        // alive while the program runs; a per-CPU value only this CPU
        // touches (no preemption inside a BPF program).
        if let Some(v) = unsafe { self.lookup(key).as_mut() } {
            f(v);
        }
    }

    /// The value's address, or null.
    #[inline(always)]
    fn lookup(&self, key: &K) -> *mut V {
        let map = ptr::from_ref(self).cast_mut().cast::<c_void>();
        // SAFETY: `map` is a map reference after relocation and `key` lives
        // across the call; the helper returns null or the value (kept alive
        // by the kernel, RCU, while the program runs).
        unsafe { bpf_map_lookup_elem(map, ptr::from_ref(key).cast()) }.cast::<V>()
    }

    /// Writes `value` at `key` with `flags` (`BPF_ANY`, `BPF_NOEXIST`…);
    /// whether the kernel took it.
    #[inline(always)]
    pub fn insert(&self, key: &K, value: &V, flags: u64) -> bool {
        let map = ptr::from_ref(self).cast_mut().cast::<c_void>();
        // SAFETY: as in `lookup`; the helper copies key and value.
        let ret = unsafe {
            bpf_map_update_elem(
                map,
                ptr::from_ref(key).cast(),
                ptr::from_ref(value).cast(),
                flags,
            )
        };
        ret == 0
    }
}

impl<K, V, const T: usize, const N: usize> Default for KeyedMap<K, V, T, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// `BPF_MAP_TYPE_ARRAY`, `BPF_MAP_TYPE_PERCPU_HASH`, `BPF_MAP_TYPE_LRU_HASH`.
pub const ARRAY: usize = 2;
pub const PERCPU_HASH: usize = 5;
pub const LRU_HASH: usize = 9;

/// `fwd_stations`: which VIDs' ports are Wi-Fi stations, and their MACs.
#[unsafe(link_section = ".maps")]
#[unsafe(export_name = "fwd_stations")]
pub static STATIONS: KeyedMap<u32, StationSlot, ARRAY, { STATIONS_ENTRIES as usize }> =
    KeyedMap::new();

/// `fwd_station_nat`: the translation's table, (VID, IP) → the VM's MAC.
#[unsafe(link_section = ".maps")]
#[unsafe(export_name = "fwd_station_nat")]
pub static STATION_NAT: KeyedMap<NatKey, NatEntry, LRU_HASH, { STATION_NAT_ENTRIES as usize }> =
    KeyedMap::new();

/// `fwd_station_counts`: per VID, what the translation did.
#[unsafe(link_section = ".maps")]
#[unsafe(export_name = "fwd_station_counts")]
pub static STATION_COUNTS: KeyedMap<
    u32,
    StationCounters,
    PERCPU_HASH,
    { STATION_COUNTS_ENTRIES as usize },
> = KeyedMap::new();
