//! The two XDP objects, embedded at build time, and their export.

use std::{fs, path::Path};

use std::os::fd::{AsFd as _, OwnedFd};

use aya::{
    Ebpf, EbpfLoader, include_bytes_aligned,
    programs::{SchedClassifier, Xdp},
};
use xdp_forwarder_common::maps::{
    GLOBAL_COUNTING, GLOBAL_MANAGED, GLOBAL_PORT_STATION, GLOBAL_PORT_VID, PROG_PHYSICAL,
    PROG_ROUTER, ROUTER_IFACE, TC_TARGETS, VLAN_PORTS,
};

use crate::{Error, Mode, Result, Role, pins::PinDir};

static PHYSICAL: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_physical"));
static ROUTER: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_router"));
/// The same programs, `router_iface` declared for libbpf 1.1 (export only).
static PHYSICAL_LIBBPF_1_1: &[u8] =
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_physical_libbpf11"));
static ROUTER_LIBBPF_1_1: &[u8] =
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_router_libbpf11"));
/// The same roles as tc programs (mode `tc`; embedded, never exported).
static PHYSICAL_TC: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_physical_tc"));
static ROUTER_TC: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/prog_router_tc"));
/// The ELF object holding `role`'s program (and the maps it shares).
pub fn object(role: Role) -> &'static [u8] {
    match role {
        Role::Physical => PHYSICAL,
        Role::Router => ROUTER,
    }
}

/// The program's name inside its object (and its ELF section is `xdp`).
pub fn program_name(role: Role) -> &'static str {
    match role {
        Role::Physical => PROG_PHYSICAL,
        Role::Router => PROG_ROUTER,
    }
}

/// File names of the exported objects, as the original's.
pub fn file_name(role: Role) -> String {
    format!("prog_{}.o", program_name(role))
}

/// Which loader the exported objects are for: they differ only in the map
/// flags `router_iface` is declared with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportFor {
    /// libbpf 1.3 and later (what the original needs): the objects create
    /// `router_iface` on a fresh bpffs and reuse it once pinned, as the
    /// original's do.
    #[default]
    Libbpf,
    /// libbpf 1.1 (Debian 12), which compares a pinned DEVMAP's flags
    /// strictly: the objects declare the flag the kernel reports, so they
    /// reuse the pin but cannot create it; it must be pinned first.
    Libbpf1_1,
}

/// Writes `prog_physical.o` and `prog_router.o` into `dir` (created if
/// needed), loadable by `xdp-loader load IFACE DIR/prog_X.o -m skb -p /sys/fs/bpf`.
pub fn export(dir: &Path, target: ExportFor) -> Result<Vec<std::path::PathBuf>> {
    fs::create_dir_all(dir)
        .map_err(|e| Error::kernel(format!("cannot create {}", dir.display()), e))?;
    if crate::pins::is_bpffs(dir) {
        return Err(Error::PinDirRefused {
            path: dir.to_owned(),
            why: "it is on bpffs, which holds only pinned BPF objects, not files: \
                  export the objects into a regular directory"
                .into(),
        });
    }
    [Role::Physical, Role::Router]
        .into_iter()
        .map(|role| {
            let bytes = match (target, role) {
                (ExportFor::Libbpf, _) => object(role),
                (ExportFor::Libbpf1_1, Role::Physical) => PHYSICAL_LIBBPF_1_1,
                (ExportFor::Libbpf1_1, Role::Router) => ROUTER_LIBBPF_1_1,
            };
            let path = dir.join(file_name(role));
            fs::write(&path, bytes)
                .map_err(|e| Error::kernel(format!("cannot write {}", path.display()), e))?;
            Ok(path)
        })
        .collect()
}

/// How a program is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// By our CLI: physical gets its port's VID, the router only reaches
    /// ports in the VLAN port map.
    Managed { vid: Option<u16> },
    /// By our CLI, on a Wi-Fi station (tc only): the physical program
    /// keeps the station's own frames and translates replies.
    ManagedStation { vid: u16 },
    /// As a foreign loader would: the original's VID = ifindex convention.
    DropIn,
}

/// Loads `role`'s program into the kernel with its maps taken from `pins`
/// (which must already hold `router_iface` and, for managed use, the VLAN
/// port map: aya opens pins, it never creates `router_iface`).
pub fn load(role: Role, setting: Setting, pins: &PinDir) -> Result<Ebpf> {
    load_with(role, setting, pins, Tuning::default())
}

/// How a loaded program is built beyond its role and setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Count frames (the benchmark turns it off to measure its cost).
    pub counting: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { counting: true }
    }
}

/// [`load`], tuned.
pub fn load_with(role: Role, setting: Setting, pins: &PinDir, tuning: Tuning) -> Result<Ebpf> {
    let mut ebpf = load_object(object(role), role, setting, pins, tuning)?;
    xdp(&mut ebpf, role)?
        .load()
        .map_err(|e| Error::verifier(format!("the kernel refused the {role} program"), e))?;
    Ok(ebpf)
}

/// The managed program of `role` for `mode`, loaded (verified), and its fd
/// (what a link is created with or swapped to).
pub fn load_for(
    role: Role,
    mode: Mode,
    vid: Option<u16>,
    pins: &PinDir,
) -> Result<(Ebpf, OwnedFd)> {
    let setting = match vid {
        Some(vid) if role == Role::Physical && !mode.is_xdp() && is_station(pins, vid)? => {
            Setting::ManagedStation { vid }
        }
        _ => Setting::Managed { vid },
    };
    let ebpf = if mode.is_xdp() {
        load(role, setting, pins)?
    } else {
        let bytes = match role {
            Role::Physical => PHYSICAL_TC,
            Role::Router => ROUTER_TC,
        };
        let mut ebpf = load_object(bytes, role, setting, pins, Tuning::default())?;
        debug_assert!(
            ebpf.map(TC_TARGETS).is_some(),
            "tc objects use {TC_TARGETS}"
        );
        let name = program_name(role);
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| corrupt(format!("no program {name}")))?
            .try_into()
            .map_err(corrupt)?;
        prog.load()
            .map_err(|e| Error::verifier(format!("the kernel refused the {role} tc program"), e))?;
        ebpf
    };
    let name = program_name(role);
    let fd = ebpf
        .program(name)
        .ok_or_else(|| corrupt(format!("no program {name}")))?
        .fd()
        .and_then(|fd| Ok(fd.as_fd().try_clone_to_owned()?))
        .map_err(|e| Error::kernel("cannot use the loaded program", e))?;
    Ok((ebpf, fd))
}

/// Whether `fwd_stations` marks `vid`'s port as a Wi-Fi station (attach
/// writes the slot before it loads the program).
fn is_station(pins: &PinDir, vid: u16) -> Result<bool> {
    Ok(match crate::station::StationMaps::open(pins)? {
        Some(maps) => maps.slot(vid)?.station_mac().is_some(),
        None => false,
    })
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::CorruptObject(e.to_string())
}

/// `bytes` loaded with its maps taken from `pins` and its globals set; its
/// program not yet verified.
fn load_object(
    bytes: &[u8],
    role: Role,
    setting: Setting,
    pins: &PinDir,
    tuning: Tuning,
) -> Result<Ebpf> {
    let router_iface = pins.router_iface();
    let vlan_ports = pins.vlan_ports();
    let tc_targets = pins.tc_targets();
    let (managed, vid, station): (u8, u32, u8) = match setting {
        Setting::Managed { vid } => (1, u32::from(vid.unwrap_or(0)), 0),
        Setting::ManagedStation { vid } => (1, u32::from(vid), 1),
        Setting::DropIn => (0, 0, 0),
    };
    let mut loader = EbpfLoader::new();
    let counting = u8::from(tuning.counting);
    loader
        .override_global(GLOBAL_MANAGED, &managed, true)
        .override_global(GLOBAL_COUNTING, &counting, true)
        .override_global(GLOBAL_PORT_VID, &vid, role == Role::Physical)
        // Only the tc objects have it.
        .override_global(GLOBAL_PORT_STATION, &station, false)
        .map_pin_path(ROUTER_IFACE, router_iface.as_path());
    if !matches!(setting, Setting::DropIn) {
        loader.map_pin_path(VLAN_PORTS, vlan_ports.as_path());
        loader.map_pin_path(TC_TARGETS, tc_targets.as_path());
        for spec in crate::pins::MapSpec::STATION_MAPS {
            loader.map_pin_path(spec.name, pins.station_map(spec));
        }
    }
    loader
        .load(bytes)
        .map_err(|e| Error::kernel(format!("cannot load the {role} object"), e))
}

/// The XDP program of `role` inside a loaded object.
pub fn xdp(ebpf: &mut Ebpf, role: Role) -> Result<&mut Xdp> {
    let name = program_name(role);
    ebpf.program_mut(name)
        .ok_or_else(|| corrupt(format!("no program {name}")))?
        .try_into()
        .map_err(corrupt)
}
