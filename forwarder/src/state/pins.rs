//! Where things are pinned, and the pinned maps themselves: found and
//! checked when present, created when not.
//!
//! Layout under the pin dir (default `/sys/fs/bpf`):
//! - `router_iface`: the original's DEVMAP (1 entry, key 0 → router).
//! - `xdp-forwarder/fwd_vlan_ports`: DEVMAP VID → physical port.
//! - `xdp-forwarder/ports`: HASH ifindex → [`PortRecord`](crate::state::ports::PortRecord).
//! - `xdp-forwarder/link-IFINDEX`: the pinned XDP attachment of a port.
//! - `xdp-forwarder/counters-IFINDEX`: that program's per-CPU counters.
//! - `xdp-forwarder/fwd_redirect_errors`: program id → redirects the kernel
//!   refused after it returned, and `redirect-errors-link` /
//!   `devmap-xmit-link` the tracepoint links counting them
//!   ([`redirect_errors`](crate::state::redirect_errors)).

use std::{
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::maps::{MapData, MapType};
use xdp_forwarder_common::maps::{
    BPF_F_RDONLY_PROG, ROUTER_IFACE, ROUTER_IFACE_ENTRIES, ROUTER_IFACE_KEY, TC_ROUTER_KEY,
    TcTarget, VLAN_PORTS, VLAN_PORTS_ENTRIES,
};

use crate::{Error, Result, Role, kernel::sys};

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf";
const STATE_DIR: &str = "xdp-forwarder";

/// A checked pin directory on bpffs.
#[derive(Clone, Debug)]
pub struct PinDir {
    root: PathBuf,
}

impl PinDir {
    /// Opens `root`, which must be (inside) a bpffs mount.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !is_bpffs(&root) {
            return Err(not_bpffs(&root));
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn router_iface(&self) -> PathBuf {
        self.root.join(ROUTER_IFACE)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// `xdp-forwarder/fwd_tc_targets`.
    pub fn tc_targets(&self) -> PathBuf {
        self.state_dir()
            .join(xdp_forwarder_common::maps::TC_TARGETS)
    }

    pub fn vlan_ports(&self) -> PathBuf {
        self.state_dir().join(VLAN_PORTS)
    }

    pub fn ports(&self) -> PathBuf {
        self.state_dir().join("ports")
    }

    pub fn link(&self, ifindex: u32) -> PathBuf {
        self.state_dir().join(format!("link-{ifindex}"))
    }

    pub fn counters(&self, ifindex: u32) -> PathBuf {
        self.state_dir().join(format!("counters-{ifindex}"))
    }

    /// `xdp-forwarder/fwd_stations`, `fwd_station_nat`, `fwd_station_counts`:
    /// the Wi-Fi stations' slots, translation table and counters
    /// ([`crate::state::station`]).
    pub fn station_map(&self, spec: MapSpec) -> PathBuf {
        self.state_dir().join(spec.name)
    }

    /// `xdp-forwarder/fwd_redirect_errors`: refused redirects per program id.
    pub fn redirect_errors(&self) -> PathBuf {
        self.state_dir()
            .join(xdp_forwarder_common::maps::REDIRECT_ERRORS)
    }

    /// `xdp-forwarder/redirect-errors-link`: the link of the tracepoint
    /// program counting them (on `xdp:xdp_redirect_err`).
    pub fn redirect_errors_link(&self) -> PathBuf {
        self.state_dir().join("redirect-errors-link")
    }

    /// `xdp-forwarder/devmap-xmit-link`: the link of the raw tracepoint
    /// program counting native redirects the target refused (on
    /// `xdp_devmap_xmit`) into the same map.
    pub fn devmap_xmit_link(&self) -> PathBuf {
        self.state_dir().join("devmap-xmit-link")
    }

    /// The ifindexes of every `link-N` pin in the state dir.
    pub fn link_pins(&self) -> Result<Vec<u32>> {
        let entries = match std::fs::read_dir(self.state_dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::kernel(
                    format!("cannot list {}", self.state_dir().display()),
                    e,
                ));
            }
        };
        let mut found: Vec<u32> = entries
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_prefix("link-")?
                    .parse()
                    .ok()
            })
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// Creates the state dir (mode 0700) if needed and checks that nobody but
    /// root can change what is pinned in it.
    pub fn ensure_state_dir(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        // Never on the directory under a bpffs that went away (`umount -l`
        // while in use): state there would be split from the ports.
        if !is_bpffs(&self.root) {
            return Err(no_longer_bpffs(&self.root));
        }
        let dir = self.state_dir();
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::kernel(format!("cannot create {}", dir.display()), e)),
        }
        self.check_state_dir()
    }

    /// Checks an existing state dir: a directory, owned by root, writable by
    /// no one else (bpffs is world-writable by default: anyone may have made
    /// it first).
    pub fn check_state_dir(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let path = self.state_dir();
        let p = path.display();
        let remove = format!(
            "Check what it holds (`ls -la {p}`), then remove it (`rm -r {p}`: every port \
             pinned in it goes down) and attach again"
        );
        let unsafe_dir = |why: String, fix: &str| Error::UnsafeStateDir {
            path: path.clone(),
            why,
            fix: fix.to_owned(),
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::kernel(
                    format!("cannot inspect {}", path.display()),
                    e,
                ));
            }
        };
        if !meta.is_dir() {
            return Err(unsafe_dir(
                "is not a directory".into(),
                &format!("Check what it is (`ls -la {p}`), then remove it (`rm {p}`)"),
            ));
        }
        if meta.uid() != 0 {
            return Err(unsafe_dir(
                format!("belongs to uid {}, not root", meta.uid()),
                &remove,
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(unsafe_dir(
                format!(
                    "is writable by its group or others (mode {:o})",
                    meta.mode() & 0o7777
                ),
                &format!(
                    "It is root's: make it root's alone (`chmod 0700 {p}`), after checking that \
                     what it holds is ours (`ls -la {p}`)"
                ),
            ));
        }
        Ok(())
    }
}

/// What is mounted at a pin dir, to notice when it changes under a
/// running daemon: the device of the directory (each bpffs mount has its
/// own), whether it is a bpffs, and the inode of its state dir (`None`
/// while there is none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub bpffs: bool,
    pub state_dir: Option<u64>,
}

impl PinDir {
    /// What is mounted at the pin dir now.
    pub fn identity(&self) -> Result<Identity> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(&self.root)
            .map_err(|e| Error::kernel(format!("cannot inspect {}", self.root.display()), e))?;
        Ok(Identity {
            dev: meta.dev(),
            bpffs: is_bpffs(&self.root),
            state_dir: std::fs::symlink_metadata(self.state_dir())
                .ok()
                .filter(|m| m.is_dir())
                .map(|m| m.ino()),
        })
    }
}

/// `path` was a bpffs and is no longer one: unmounted while in use.
pub fn no_longer_bpffs(path: &Path) -> Error {
    let p = path.display();
    Error::NotBpffs {
        path: path.to_owned(),
        why: "is not a bpffs mount (any more? unmounted while in use, e.g. `umount -l`): \
              nothing is created on the directory underneath"
            .into(),
        fix: format!(
            "mount bpffs there again (`mount -t bpf -o mode=0700 bpf {p}`); a running \
             `xdp-forwarder run` must then be restarted, and attaches every port again"
        ),
    }
}

pub(crate) fn is_bpffs(path: &Path) -> bool {
    // nix's constant has the C library's own `f_type` width (wider on musl).
    nix::sys::statfs::statfs(path)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// Mounts bpffs at `dir` (mode 0700: only root may pin there) unless it is
/// one already, or fails with `no_mount`. Refuses in a mount namespace of
/// its own (e.g. under `ip netns exec`): the mount, and every attachment
/// pinned in it, would vanish with that namespace.
pub fn ensure_bpffs(dir: &Path, no_mount: bool) -> Result<()> {
    if is_bpffs(dir) {
        return Ok(());
    }
    if no_mount || private_mount_namespace() {
        return Err(not_bpffs(dir));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::kernel(format!("cannot create {}", dir.display()), e))?;
    nix::mount::mount(
        Some("bpf"),
        dir,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        Some("mode=0700"),
    )
    .map_err(|e| {
        Error::kernel(
            format!("cannot mount bpffs at {}", dir.display()),
            std::io::Error::from(e),
        )
    })?;
    tracing::info!(path = %dir.display(), "mounted bpffs (mode 0700)");
    Ok(())
}

/// `path` is not a bpffs mount: why, and what works from where we run.
///
/// - In a mount namespace of our own (`ip netns exec` gives one, with a
///   fresh /sys that hides the host's /sys/fs/bpf; `unshare -m`), a bpffs
///   mounted here would vanish with the namespace and every pinned
///   attachment with it: enter only the network namespace (`nsenter
///   --net=…`), or mount bpffs in the host's mount namespace outside /sys.
/// - A directory that does not exist is said to be missing.
/// - Otherwise: mount bpffs there, mode 0700 as everywhere else.
pub fn not_bpffs(path: &Path) -> Error {
    let p = path.display().to_string();
    let mount = format!("mount -t bpf -o mode=0700 bpf {p}");
    let fstab = format!("fstab: `bpffs {p} bpf mode=0700 0 0`");
    let (why, fix) = if private_mount_namespace() {
        let ns = netns_name();
        let ns_path = format!("/run/netns/{}", ns.as_deref().unwrap_or("NAME"));
        let rerun = format!("nsenter --net={ns_path} {}", this_command());
        let in_host = |dir: &str| {
            format!(
                "`nsenter --mount=/proc/1/ns/mnt sh -c 'mkdir -p {dir} && mount -t bpf -o \
                 mode=0700 bpf {dir}'`"
            )
        };
        let private = "is not a bpffs mount, and this process runs in a mount namespace of its \
                       own (`ip netns exec`, `unshare -m`): a bpffs mounted from here would \
                       vanish with that namespace, and every pinned attachment with it";
        if host_has_bpffs(path) {
            (
                "is a bpffs mount in the host's mount namespace, but not in this one: \
                 `ip netns exec` mounts a fresh /sys, which hides it"
                    .to_owned(),
                format!(
                    "enter only the network namespace, which keeps the host's mounts: \
                     `{rerun}`; or use a --pin-dir outside /sys, mounted in the host's mount \
                     namespace ({})",
                    in_host("/run/xdp-forwarder/pins")
                ),
            )
        } else if path.starts_with("/sys") {
            (
                format!("{private}; and `ip netns exec` hides whatever the host mounts under /sys"),
                format!(
                    "use a --pin-dir outside /sys, mounted in the host's mount namespace ({}; \
                     mounts there reach `ip netns exec`), or mount bpffs on {p} in the host's \
                     mount namespace and enter only the network namespace (`{rerun}`)",
                    in_host("/run/xdp-forwarder/pins")
                ),
            )
        } else {
            (
                private.to_owned(),
                format!(
                    "mount it in the host's mount namespace ({}; {fstab}): mounts there reach \
                     this namespace",
                    in_host(&p)
                ),
            )
        }
    } else if std::fs::symlink_metadata(path).is_err() {
        (
            "does not exist".to_owned(),
            format!(
                "create it and mount bpffs on it (`mkdir -p {p} && {mount}`; {fstab}), or choose another --pin-dir"
            ),
        )
    } else {
        (
            "is not a bpffs mount".to_owned(),
            format!("mount bpffs on it (`{mount}`; {fstab}), or choose another --pin-dir"),
        )
    };
    Error::NotBpffs {
        path: path.to_owned(),
        why,
        fix,
    }
}

/// Whether the mount namespace we came from (init's, or our parent's:
/// `ip netns exec` runs the command as a child of the caller) has bpffs at
/// `path`.
fn host_has_bpffs(path: &Path) -> bool {
    let rel = path.strip_prefix("/").unwrap_or(path);
    [
        "1".to_owned(),
        std::os::unix::process::parent_id().to_string(),
    ]
    .iter()
    .any(|pid| is_bpffs(&Path::new("/proc").join(pid).join("root").join(rel)))
}

/// The name `ip netns` gives the network namespace we run in, if any.
fn netns_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let own = std::fs::metadata("/proc/self/ns/net").ok()?;
    std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .find_map(|e| {
            let m = std::fs::metadata(e.path()).ok()?;
            (m.dev() == own.dev() && m.ino() == own.ino())
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
}

/// This command line as a user would type it again (`xdp-forwarder …`),
/// each argument quoted for a POSIX shell where it needs to be.
fn this_command() -> String {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let name = Path::new(&argv0).file_name().map_or_else(
        || "xdp-forwarder".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    std::iter::once(name)
        .chain(args)
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Whether this process runs in a mount namespace of its own: one that
/// differs from init's or, where init's cannot be read (a container), from
/// the parent's (`unshare -m`, `ip netns exec` and systemd's PrivateMounts
/// all give the command a namespace its parent does not share).
fn private_mount_namespace() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let ns = |pid: String| {
        std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
            .map(|m| (m.dev(), m.ino()))
            .ok()
    };
    let own = ns("self".into());
    let other = ns("1".into()).or_else(|| ns(std::os::unix::process::parent_id().to_string()));
    matches!((own, other), (Some(own), Some(other)) if own != other)
}

/// A map a port's slot lives in: the DEVMAPs the XDP programs redirect
/// through, and the tc programs' copy of both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotMap {
    RouterIface,
    VlanPorts,
    TcTargets,
}

impl SlotMap {
    /// Where a port of `role` with `vid` has its slots, as (map, key): its
    /// DEVMAP slot, and the same slot in `fwd_tc_targets` (written together,
    /// so the tc programs see what the XDP programs see).
    pub fn of_port(role: Role, vid: u16) -> [(SlotMap, u32); 2] {
        match role {
            Role::Physical => [
                (SlotMap::VlanPorts, u32::from(vid)),
                (SlotMap::TcTargets, u32::from(vid)),
            ],
            Role::Router => [
                (SlotMap::RouterIface, ROUTER_IFACE_KEY),
                (SlotMap::TcTargets, TC_ROUTER_KEY),
            ],
        }
    }

    /// What the port at `ifindex` writes into its slot here: the ifindex;
    /// in `fwd_tc_targets` with the mark of a Wi-Fi `station`
    /// ([`TcTarget`]), which tells the router's tc program to translate.
    pub fn value(self, ifindex: u32, station: bool) -> u32 {
        match self {
            SlotMap::RouterIface | SlotMap::VlanPorts => ifindex,
            SlotMap::TcTargets => TcTarget::new(ifindex, station).raw(),
        }
    }

    /// The ifindex a slot's `value` leads to.
    pub fn ifindex(self, value: u32) -> u32 {
        match self {
            SlotMap::RouterIface | SlotMap::VlanPorts => value,
            SlotMap::TcTargets => TcTarget::from_raw(value).ifindex(),
        }
    }

    /// Its pin in `pins` and its shape.
    pub fn pin(self, pins: &PinDir) -> (PathBuf, MapSpec) {
        match self {
            SlotMap::RouterIface => (pins.router_iface(), MapSpec::ROUTER_IFACE),
            SlotMap::VlanPorts => (pins.vlan_ports(), MapSpec::VLAN_PORTS),
            SlotMap::TcTargets => (pins.tc_targets(), MapSpec::TC_TARGETS),
        }
    }
}

/// What a pinned map must look like for us to share it.
#[derive(Clone, Copy, Debug)]
pub struct MapSpec {
    pub name: &'static str,
    /// Its discriminant is the kernel's `BPF_MAP_TYPE_*`.
    pub kind: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

impl MapSpec {
    pub const ROUTER_IFACE: MapSpec = MapSpec::devmap(ROUTER_IFACE, ROUTER_IFACE_ENTRIES);
    pub const VLAN_PORTS: MapSpec = MapSpec::devmap(VLAN_PORTS, VLAN_PORTS_ENTRIES);
    /// The tc programs' copy of both DEVMAPs' slots (see
    /// [`TC_TARGETS`](xdp_forwarder_common::maps::TC_TARGETS)).
    pub const TC_TARGETS: MapSpec = MapSpec {
        name: xdp_forwarder_common::maps::TC_TARGETS,
        kind: MapType::Array,
        key_size: 4,
        value_size: 4,
        max_entries: xdp_forwarder_common::maps::TC_TARGETS_ENTRIES,
    };

    /// `fwd_redirect_errors`: per CPU, program id → redirects the kernel
    /// refused ([`redirect_errors`](crate::state::redirect_errors)).
    pub const REDIRECT_ERRORS: MapSpec = MapSpec {
        name: xdp_forwarder_common::maps::REDIRECT_ERRORS,
        kind: MapType::LruPerCpuHash,
        key_size: 4,
        value_size: 8,
        max_entries: xdp_forwarder_common::maps::REDIRECT_ERRORS_ENTRIES,
    };

    /// `fwd_stations`: VID → [`StationSlot`](xdp_forwarder_common::station_table::StationSlot).
    pub const STATIONS: MapSpec = MapSpec {
        name: xdp_forwarder_common::maps::STATIONS,
        kind: MapType::Array,
        key_size: 4,
        value_size: size_of::<xdp_forwarder_common::station_table::StationSlot>() as u32,
        max_entries: xdp_forwarder_common::maps::STATIONS_ENTRIES,
    };

    /// `fwd_station_nat`: (VID, IP) → the VM's MAC, LRU.
    pub const STATION_NAT: MapSpec = MapSpec {
        name: xdp_forwarder_common::maps::STATION_NAT,
        kind: MapType::LruHash,
        key_size: size_of::<xdp_forwarder_common::station_table::NatKey>() as u32,
        value_size: size_of::<xdp_forwarder_common::station_table::NatEntry>() as u32,
        max_entries: xdp_forwarder_common::maps::STATION_NAT_ENTRIES,
    };

    /// `fwd_station_counts`: VID → what the translation did, per CPU.
    pub const STATION_COUNTS: MapSpec = MapSpec {
        name: xdp_forwarder_common::maps::STATION_COUNTS,
        kind: MapType::PerCpuHash,
        key_size: 4,
        value_size: size_of::<xdp_forwarder_common::station_table::StationCounters>() as u32,
        max_entries: xdp_forwarder_common::maps::STATION_COUNTS_ENTRIES,
    };

    /// The three maps of the Wi-Fi stations, which every tc program shares.
    pub const STATION_MAPS: [MapSpec; 3] = [
        MapSpec::STATIONS,
        MapSpec::STATION_NAT,
        MapSpec::STATION_COUNTS,
    ];

    /// A port program's `fwd_counters`: one [`PortCounters`] per CPU.
    ///
    /// [`PortCounters`]: xdp_forwarder_common::PortCounters
    pub const COUNTERS: MapSpec = MapSpec {
        name: xdp_forwarder_common::maps::COUNTERS,
        kind: MapType::PerCpuArray,
        key_size: 4,
        value_size: size_of::<xdp_forwarder_common::PortCounters>() as u32,
        max_entries: 1,
    };

    const fn devmap(name: &'static str, max_entries: u32) -> Self {
        MapSpec {
            name,
            kind: MapType::DevMap,
            key_size: 4,
            value_size: 4,
            max_entries,
        }
    }

    fn describe(&self) -> String {
        format!(
            "map {} (type {}, key {} B, value {} B, {} entries)",
            self.name,
            type_name::<()>(Ok(self.kind)),
            self.key_size,
            self.value_size,
            self.max_entries
        )
    }
}

/// A pinned map we opened or created. `created` says whether this call
/// pinned it, so that a failed operation can take it back.
#[derive(Debug)]
pub struct Pinned {
    pub map: MapData,
    pub path: PathBuf,
    /// What it was checked against (or created as).
    pub spec: MapSpec,
    pub created: bool,
}

impl Pinned {
    /// Slot `key` of a map with 4-byte values; `None` when it is empty (in
    /// an ARRAY, whose slots always exist: 0, which no interface has).
    pub fn get(&self, key: u32) -> Result<Option<u32>> {
        let value = sys::lookup(self.map.fd().as_fd(), key).map_err(|e| self.error("read", e))?;
        Ok(value.filter(|&v| !(self.spec.kind == MapType::Array && v == 0)))
    }

    pub fn set(&self, key: u32, value: u32) -> Result<()> {
        sys::update(self.map.fd().as_fd(), key, value).map_err(|e| self.error("update", e))
    }

    /// Empties slot `key` (already empty is fine).
    pub fn clear(&self, key: u32) -> Result<()> {
        if self.spec.kind == MapType::Array {
            return self.set(key, 0);
        }
        sys::delete(self.map.fd().as_fd(), key).map_err(|e| self.error("update", e))
    }

    /// Puts slot `key` back to `value` (`None`: empty).
    pub fn restore(&self, key: u32, value: Option<u32>) -> Result<()> {
        match value {
            Some(v) => self.set(key, v),
            None => self.clear(key),
        }
    }

    fn error(&self, what: &str, e: std::io::Error) -> Error {
        Error::kernel(format!("cannot {what} {}", self.path.display()), e)
    }
}

/// Opens the map pinned at `path` if it matches `spec` (ignoring the
/// `BPF_F_RDONLY_PROG` the kernel adds to DEVMAPs), or creates and pins it.
pub fn open_or_create(path: &Path, spec: MapSpec) -> Result<Pinned> {
    if let Some(pinned) = open_existing(path, spec)? {
        return Ok(pinned);
    }
    let obj = aya_obj::Map::new_from_params(
        spec.kind as u32,
        spec.key_size,
        spec.value_size,
        spec.max_entries,
        0,
    );
    let map = MapData::create(obj, spec.name, None)
        .map_err(|e| Error::kernel(format!("cannot create map {}", spec.name), e))?;
    map.pin(path).map_err(|e| {
        Error::kernel(
            format!("cannot pin map {} at {}", spec.name, path.display()),
            e,
        )
    })?;
    Ok(Pinned {
        map,
        path: path.to_owned(),
        spec,
        created: true,
    })
}

/// The map pinned at `path`, checked against `spec`; `None` when nothing is
/// pinned there.
pub fn open_existing(path: &Path, spec: MapSpec) -> Result<Option<Pinned>> {
    if !path.exists() {
        return Ok(None);
    }
    let incompatible = |found: String| Error::IncompatiblePin {
        path: path.to_owned(),
        found,
        expected: spec.describe(),
    };
    let map =
        MapData::from_pin(path).map_err(|_| incompatible("an object that is not a map".into()))?;
    let info = map
        .info()
        .map_err(|e| Error::kernel(format!("cannot inspect {}", path.display()), e))?;
    let type_ok = info.map_type().is_ok_and(|t| t == spec.kind);
    if !type_ok
        || info.key_size() != spec.key_size
        || info.value_size() != spec.value_size
        || info.max_entries() != spec.max_entries
        || info.map_flags() & !BPF_F_RDONLY_PROG != 0
    {
        return Err(incompatible(format!(
            "map {:?} (type {}, key {} B, value {} B, {} entries, flags {:#x})",
            info.name_as_str().unwrap_or("?"),
            type_name(info.map_type()),
            info.key_size(),
            info.value_size(),
            info.max_entries(),
            info.map_flags()
        )));
    }
    Ok(Some(Pinned {
        map,
        path: path.to_owned(),
        spec,
        created: false,
    }))
}

/// A map type as the kernel's headers spell it (`BPF_MAP_TYPE_` left off).
fn type_name<E>(kind: std::result::Result<MapType, E>) -> String {
    match kind {
        Ok(MapType::DevMap) => "devmap".into(),
        Ok(MapType::Hash) => "hash".into(),
        Ok(MapType::Array) => "array".into(),
        Ok(MapType::PerCpuArray) => "percpu_array".into(),
        Ok(other) => format!("{other:?}").to_lowercase(),
        Err(_) => "unknown".into(),
    }
}

/// Removes the pin at `path`; nothing there is fine.
pub fn remove_pin(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::kernel(
            format!("cannot remove {}", path.display()),
            e,
        )),
    }
}
