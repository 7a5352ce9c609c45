//! The port registry: which interface we attached, in which role, mode and
//! VID. Pinned as a BPF HASH map, so it lives exactly as long as the pins and
//! needs no file outside bpffs.

use aya::maps::{HashMap, Map, MapData, MapError, MapType};

use crate::{
    Error, Mode, Result, Role,
    state::{
        pins::{self, MapSpec, PinDir, Pinned},
        station::PortKind,
    },
};

/// At most this many ports per pin dir (one per usable VID, plus routers).
pub const PORTS_MAX: u32 = 4096;

/// We turned promiscuous mode on, so detaching turns it off again.
pub const FLAG_SET_PROMISC: u8 = 1;

/// `--mode auto` chose the port's mode: a later `attach --mode auto` may
/// move it to another mode so that every direction works
/// ([`crate::policy::directions::regroup`]). Bits 1–4 are the tag features
/// ([`crate::kernel::ethtool::TagFeature::flag`]).
pub const FLAG_AUTO_MODE: u8 = 1 << 5;

/// The port is a Wi-Fi station ([`crate::state::station`]): it runs tc, its slot
/// in `fwd_stations` holds its MAC, and the router must run tc.
pub const FLAG_STATION: u8 = 1 << 6;

/// One attached port, keyed by ifindex. Written before the port's program
/// is attached (it reserves the VID), so a command killed half-way leaves a
/// record that `status` reports and the next `attach` or `detach` completes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRecord {
    /// The port's VID (physical); 0 for the router.
    pub vid: u16,
    role: u8,
    mode: u8,
    pub flags: u8,
    _pad: [u8; 3],
    /// The network namespace the ifindex belongs to (its cookie).
    pub netns: u64,
}

// SAFETY: plain `repr(C)` integers with explicit padding; any bit pattern is valid.
unsafe impl aya::Pod for PortRecord {}

impl PortRecord {
    pub fn new(role: Role, mode: Mode, vid: u16, flags: u8, netns: u64) -> Self {
        Self {
            vid,
            role: role as u8,
            mode: mode as u8,
            flags,
            _pad: [0; 3],
            netns,
        }
    }

    pub fn with_mode(self, mode: Mode) -> Self {
        Self {
            mode: mode as u8,
            ..self
        }
    }

    pub fn with_flags(self, flags: u8) -> Self {
        Self { flags, ..self }
    }

    pub fn role(&self) -> Role {
        if self.role == Role::Router as u8 {
            Role::Router
        } else {
            Role::Physical
        }
    }

    /// Whether the port is a Wi-Fi station.
    pub fn is_station(&self) -> bool {
        self.flags & FLAG_STATION != 0
    }

    /// The port's kind, as its record says.
    pub fn kind(&self) -> PortKind {
        if self.is_station() {
            PortKind::Wifi
        } else {
            PortKind::Ethernet
        }
    }

    /// The port's mode; a value no mode of this version has (a record of a
    /// newer version) reads as skb, the mode whose redirects every port
    /// takes, until `attach --replace` rewrites it.
    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.mode).unwrap_or(Mode::Skb)
    }
}

impl MapSpec {
    /// The registry: ifindex → [`PortRecord`].
    pub const PORTS: MapSpec = MapSpec {
        name: "fwd_ports",
        kind: MapType::Hash,
        key_size: 4,
        value_size: size_of::<PortRecord>() as u32,
        max_entries: PORTS_MAX,
    };
}

pub struct Ports {
    map: HashMap<MapData, u32, PortRecord>,
    pub pinned_path: std::path::PathBuf,
    pub created: bool,
}

impl Ports {
    /// The registry of `pins`, created when absent.
    pub fn open_or_create(pins: &PinDir) -> Result<Self> {
        Self::wrap(pins::open_or_create(&pins.ports(), MapSpec::PORTS)?)
    }

    /// The registry of `pins`, `None` when nothing was ever attached there.
    pub fn open(pins: &PinDir) -> Result<Option<Self>> {
        pins::open_existing(&pins.ports(), MapSpec::PORTS)?
            .map(Self::wrap)
            .transpose()
    }

    fn wrap(pinned: Pinned) -> Result<Self> {
        let map = HashMap::try_from(Map::HashMap(pinned.map))
            .map_err(|e| Error::kernel(format!("cannot use {}", pinned.path.display()), e))?;
        Ok(Self {
            map,
            pinned_path: pinned.path,
            created: pinned.created,
        })
    }

    pub fn get(&self, ifindex: u32) -> Result<Option<PortRecord>> {
        match self.map.get(&ifindex, 0) {
            Ok(rec) => Ok(Some(rec)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(Error::kernel("cannot read the port registry", e)),
        }
    }

    /// Every port, by ifindex.
    pub fn all(&self) -> Result<Vec<(u32, PortRecord)>> {
        let mut ports = self
            .map
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::kernel("cannot read the port registry", e))?;
        ports.sort_by_key(|(ifindex, _)| *ifindex);
        Ok(ports)
    }

    pub fn insert(&mut self, ifindex: u32, rec: PortRecord) -> Result<()> {
        self.map
            .insert(ifindex, rec, 0)
            .map_err(|e| Error::kernel("cannot update the port registry", e))
    }

    pub fn remove(&mut self, ifindex: u32) -> Result<()> {
        match self.map.remove(&ifindex) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(Error::kernel("cannot update the port registry", e)),
        }
    }
}
