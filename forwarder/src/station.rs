//! Wi-Fi station ports, in user space: recognising one by the kernel's own
//! marks, its slot in `fwd_stations` (the station's current MAC, which the
//! tc programs translate to), the translation table's upkeep (entries aged
//! out, flushed when the station's MAC changes) and what `status` shows of
//! it. The frame logic is common's `station_nat`; the programs that run it,
//! ebpf/src/station.rs; the design, docs/wifi.md.
//!
//! A station (managed, 3-address mode) carries one MAC, its own: what the
//! router sends out of it must say that MAC, so a station port runs tc
//! (the router's tc program translates; no mac80211 driver runs native
//! XDP, and a generic-XDP router would send frames untranslated), and the
//! router must run tc too ([`crate::directions`]).

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray};
use serde::{Deserialize, Serialize};
use xdp_forwarder_common::{
    station_nat::Mac,
    station_table::{NatEntry, NatKey, StationCounters, StationSlot},
};

use crate::{
    Error, Result,
    pins::{self, MapSpec, PinDir},
    undo::Undo,
};

/// What kind of link a port is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// Ethernet, or anything that takes frames of any source MAC.
    #[default]
    Ethernet,
    /// A Wi-Fi station (cfg80211 netdev): one MAC only, translated.
    Wifi,
}

impl PortKind {
    /// What the kernel says `iface` is: a cfg80211 netdev has `DEVTYPE=wlan`
    /// in `/sys/class/net/IFACE/uevent` (`SET_NETDEV_DEVTYPE(…, &wiphy_type)`
    /// in net/wireless/core.c) and a `phy80211` link beside it. Read from
    /// the sysfs mounted in the caller's namespace; Ethernet when it says
    /// nothing (no sysfs, or the interface went away).
    pub fn of(iface: &str) -> PortKind {
        let dir = Path::new("/sys/class/net").join(iface);
        let wlan = std::fs::read_to_string(dir.join("uevent"))
            .is_ok_and(|u| u.lines().any(|l| l == "DEVTYPE=wlan"))
            || dir.join("phy80211").exists();
        if wlan {
            PortKind::Wifi
        } else {
            PortKind::Ethernet
        }
    }

    /// The name `--kind` and `status` use.
    pub const fn name(self) -> &'static str {
        match self {
            PortKind::Ethernet => "ethernet",
            PortKind::Wifi => "wifi",
        }
    }
}

impl std::fmt::Display for PortKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind asked for on the command line (`--kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KindChoice {
    /// What the kernel says ([`PortKind::of`]).
    #[default]
    Auto,
    /// This kind, whatever the kernel says: e.g. `wifi` for another link
    /// that takes one source MAC only, `ethernet` to forward a station's
    /// frames untranslated (a 4-address station, which an AP bridges).
    Fixed(PortKind),
}

impl KindChoice {
    /// The kind of `iface`.
    pub fn resolve(self, iface: &str) -> PortKind {
        match self {
            KindChoice::Auto => PortKind::of(iface),
            KindChoice::Fixed(kind) => kind,
        }
    }
}

/// The Wi-Fi stations' three pinned maps ([`MapSpec::STATION_MAPS`]).
pub(crate) struct StationMaps {
    slots: Map,
    table: Map,
    counts: Map,
}

impl StationMaps {
    /// Opens the pinned maps, or creates them (each creation undone with
    /// `undo`): every tc program uses them.
    pub(crate) fn open_or_create(pins: &PinDir, undo: &mut Undo) -> Result<Self> {
        let [slots, table, counts] = MapSpec::STATION_MAPS.map(|spec| {
            let pinned = pins::open_or_create(&pins.station_map(spec), spec)?;
            if pinned.created {
                undo.remove_pin(pinned.path.clone());
            }
            Ok::<_, Error>(pinned.map)
        });
        Ok(Self::from_data(slots?, table?, counts?))
    }

    /// The pinned maps; `None` when one is missing (no tc program was ever
    /// attached through this pin dir).
    pub(crate) fn open(pins: &PinDir) -> Result<Option<Self>> {
        let mut found = Vec::with_capacity(3);
        for spec in MapSpec::STATION_MAPS {
            match pins::open_existing(&pins.station_map(spec), spec)? {
                Some(p) => found.push(p.map),
                None => return Ok(None),
            }
        }
        let [slots, table, counts]: [MapData; 3] = found.try_into().ok().expect("three maps");
        Ok(Some(Self::from_data(slots, table, counts)))
    }

    fn from_data(slots: MapData, table: MapData, counts: MapData) -> Self {
        Self {
            slots: Map::Array(slots),
            table: Map::LruHashMap(table),
            counts: Map::PerCpuArray(counts),
        }
    }

    fn slots(&self) -> Result<Array<&MapData, StationSlot>> {
        Array::try_from(&self.slots).map_err(|e| shape(MapSpec::STATIONS, e))
    }

    /// The slot of `vid`.
    pub(crate) fn slot(&self, vid: u16) -> Result<StationSlot> {
        self.slots()?
            .get(&u32::from(vid), 0)
            .map_err(|e| kernel("read", MapSpec::STATIONS, e))
    }

    fn write_slot(&mut self, vid: u16, slot: StationSlot) -> Result<()> {
        let mut slots: Array<&mut MapData, StationSlot> =
            Array::try_from(&mut self.slots).map_err(|e| shape(MapSpec::STATIONS, e))?;
        slots
            .set(u32::from(vid), slot, 0)
            .map_err(|e| kernel("update", MapSpec::STATIONS, e))
    }

    /// Makes `vid`'s port a station with `mac` (its entries flushed when the
    /// MAC is new: they were learned for another network). Returns the slot
    /// before, for the undo.
    pub(crate) fn set_station(&mut self, vid: u16, mac: Mac) -> Result<StationSlot> {
        let before = self.slot(vid)?;
        if before.station_mac() == Some(mac) {
            return Ok(before);
        }
        let removed = self.flush(vid)?;
        self.write_slot(
            vid,
            StationSlot::station(mac, before.removed.wrapping_add(removed)),
        )?;
        Ok(before)
    }

    /// Puts `vid`'s slot back as it was (an undo).
    pub(crate) fn restore(&mut self, vid: u16, slot: StationSlot) -> Result<()> {
        self.write_slot(vid, slot)
    }

    /// `vid`'s port is no longer a station: its slot emptied, its entries
    /// deleted.
    pub(crate) fn clear(&mut self, vid: u16) -> Result<()> {
        self.flush(vid)?;
        self.write_slot(vid, StationSlot::default())
    }

    /// Deletes `vid`'s entries; how many.
    fn flush(&mut self, vid: u16) -> Result<u64> {
        self.remove_where(|k, _| k.vid == u32::from(vid))
    }

    /// Deletes every entry older than the programs' max age; how many, per
    /// VID, are added to each slot's `removed`.
    pub(crate) fn sweep_aged(&mut self) -> Result<u64> {
        let now = monotonic_coarse_ns();
        let mut per_vid = std::collections::BTreeMap::<u32, u64>::new();
        let removed = self.remove_where(|k, e| {
            let old = !e.fresh(now);
            if old {
                *per_vid.entry(k.vid).or_default() += 1;
            }
            old
        })?;
        for (vid, n) in per_vid {
            let Ok(vid) = u16::try_from(vid) else {
                continue;
            };
            let mut slot = self.slot(vid)?;
            if slot.station_mac().is_some() {
                slot.removed = slot.removed.wrapping_add(n);
                self.write_slot(vid, slot)?;
            }
        }
        Ok(removed)
    }

    fn remove_where(&mut self, mut pick: impl FnMut(&NatKey, &NatEntry) -> bool) -> Result<u64> {
        let mut table: HashMap<&mut MapData, NatKey, NatEntry> =
            HashMap::try_from(&mut self.table).map_err(|e| shape(MapSpec::STATION_NAT, e))?;
        let doomed: Vec<NatKey> = table
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(k, e)| pick(k, e))
            .map(|(k, _)| k)
            .collect();
        let mut removed = 0;
        for key in doomed {
            // Gone meanwhile (evicted): nothing to do.
            if table.remove(&key).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// What the translation did on `vid`'s port, and its table.
    pub(crate) fn report(&self, vid: u16) -> Result<StationReport> {
        let slot = self.slot(vid)?;
        let counts: PerCpuArray<&MapData, StationCounters> =
            PerCpuArray::try_from(&self.counts).map_err(|e| shape(MapSpec::STATION_COUNTS, e))?;
        let c = counts
            .get(&u32::from(vid), 0)
            .map_err(|e| kernel("read", MapSpec::STATION_COUNTS, e))?
            .iter()
            .fold(StationCounters::default(), |mut sum, cpu| {
                sum.add(cpu);
                sum
            });
        let table: HashMap<&MapData, NatKey, NatEntry> =
            HashMap::try_from(&self.table).map_err(|e| shape(MapSpec::STATION_NAT, e))?;
        let now = monotonic_coarse_ns();
        let mut entries: Vec<TableEntry> = table
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(k, _)| k.vid == u32::from(vid))
            .map(|(k, e)| TableEntry {
                address: address(&k.ip.0),
                mac: mac_string(&e.vm_mac()),
                age_ms: now.saturating_sub(e.seen_ns) / 1_000_000,
            })
            .collect();
        entries.sort_by(|a, b| a.address.cmp(&b.address));
        let count = entries.len() as u64;
        Ok(StationReport {
            station_mac: slot.station_mac().map(|m| mac_string(&m)),
            entries: count,
            learned: c.learned,
            misses: c.misses,
            evictions: c.learned.saturating_sub(count).saturating_sub(slot.removed),
            to_air: c.to_air,
            to_router: c.to_router,
            eapol: c.eapol,
            rsn_preauth: c.rsn_preauth,
            table: entries,
        })
    }
}

/// A Wi-Fi port's translation, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationReport {
    /// The MAC the translation writes (the station's, as attach or the
    /// daemon last saw it); `None` when the port's slot is empty.
    pub station_mac: Option<String>,
    /// Addresses the table holds for this port now.
    pub entries: u64,
    /// Addresses new to the table since the maps were created.
    pub learned: u64,
    /// Unicast to the station for an address no VM owns (passed to the
    /// net-vm's own stack).
    pub misses: u64,
    /// Entries the kernel's LRU evicted: learned, less those held and
    /// those aged out or flushed by user space.
    pub evictions: u64,
    /// Frames translated toward the AP, and toward the router.
    pub to_air: u64,
    pub to_router: u64,
    /// EAPOL and RSN pre-authentication frames kept for the station's
    /// supplicant (never sent to the router).
    pub eapol: u64,
    pub rsn_preauth: u64,
    /// The entries: address, the VM's MAC, milliseconds since a frame from
    /// it last proved it.
    pub table: Vec<TableEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub address: String,
    pub mac: String,
    pub age_ms: u64,
}

/// An IPv6 address, or an IPv4 one where the key is IPv4-mapped.
fn address(ip: &[u8; 16]) -> String {
    let v6 = Ipv6Addr::from(*ip);
    match v6.to_ipv4_mapped() {
        Some(v4) => Ipv4Addr::from(v4).to_string(),
        None => v6.to_string(),
    }
}

pub(crate) fn mac_string(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `CLOCK_MONOTONIC_COARSE` in ns: the clock of `bpf_ktime_get_coarse_ns`.
fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec the call may write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

fn shape(spec: MapSpec, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::kernel(format!("map {} has an unexpected shape", spec.name), e)
}

fn kernel(what: &str, spec: MapSpec, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::kernel(format!("cannot {what} map {}", spec.name), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_kind_overrides_what_the_kernel_says() {
        assert_eq!(
            KindChoice::Fixed(PortKind::Wifi).resolve("lo"),
            PortKind::Wifi
        );
        assert_eq!(KindChoice::Auto.resolve("lo"), PortKind::Ethernet);
    }

    #[test]
    fn addresses_show_ipv4_mapped_as_ipv4() {
        let mut v4 = [0u8; 16];
        v4[10..12].copy_from_slice(&[0xff, 0xff]);
        v4[12..].copy_from_slice(&[192, 0, 2, 10]);
        assert_eq!(address(&v4), "192.0.2.10");
        let mut ll = [0u8; 16];
        ll[..2].copy_from_slice(&[0xfe, 0x80]);
        ll[15] = 2;
        assert_eq!(address(&ll), "fe80::2");
    }

    #[test]
    fn a_loopback_is_no_station() {
        assert_eq!(PortKind::of("lo"), PortKind::Ethernet);
    }
}
