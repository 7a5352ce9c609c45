//! `xdp-forwarder inspect IFACE`: what decides the mode of a port, as the
//! kernel reports it: the driver, its XDP features (the netdev generic
//! netlink family, Linux 6.3 and later: what `xdp-loader features` shows),
//! whether tcx is there, the receive features that touch tags and
//! aggregates, promiscuous mode, MTU and queues, and what `--mode auto`
//! would try.

use std::{io, os::fd::AsRawFd as _};

use serde::Serialize;

use crate::{Mode, ModeChoice, Result, ethtool, netdev::Interface, station::PortKind, sys};

/// The receive features `inspect` shows: those that hide or filter tags,
/// and those that make aggregates (which generic XDP cannot redirect).
const FEATURES: [&str; 7] = [
    "rx-vlan-hw-parse",
    "rx-vlan-stag-hw-parse",
    "rx-vlan-filter",
    "rx-vlan-stag-filter",
    "rx-gro",
    "rx-lro",
    "rx-gro-hw",
];

/// One interface, as the kernel reports it.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub name: String,
    pub ifindex: u32,
    /// The driver (`ETHTOOL_GDRVINFO`), e.g. `virtio_net`, `e1000e`, `veth`.
    pub driver: Option<String>,
    /// The rtnetlink link kind (`veth`, …); `None` for a NIC.
    pub kind: Option<String>,
    /// What it is as a port: a Wi-Fi station (a cfg80211 netdev) runs tc
    /// only, its frames translated to its MAC ([`crate::station`]).
    pub port_kind: PortKind,
    pub mtu: Option<u32>,
    pub up: bool,
    pub promisc: bool,
    /// Receive and transmit queues (`/sys/class/net/IFACE/queues`).
    pub rx_queues: usize,
    pub tx_queues: usize,
    /// The driver's XDP features (`basic`, `redirect`, `ndo_xmit`, …);
    /// `None` before Linux 6.3, which does not report them. `ndo_xmit`: it
    /// takes native redirects (the Intel drivers, virtio-net and veth only
    /// while they run a native program themselves).
    pub xdp_features: Option<Vec<&'static str>>,
    /// What XDP may read from the receive descriptor (`vlan_tag`: the
    /// `bpf_xdp_metadata_rx_vlan_tag` kfunc); `None` as above.
    pub xdp_rx_metadata: Option<Vec<&'static str>>,
    /// Whether the kernel has tcx (mode tc).
    pub tcx: bool,
    /// The XDP program running, if any: id and mode.
    pub xdp_program: Option<(u32, Option<Mode>)>,
    /// The program of our clsact ingress filter (mode tc without tcx).
    pub clsact_program: Option<u32>,
    /// The programs at the tcx ingress, first to last (mode tc).
    pub tc_programs: Vec<u32>,
    /// Feature name → on, and whether it can be changed.
    pub features: Vec<Feature>,
    /// The modes `--mode auto` tries on it, in order, with why one is out.
    pub auto: Vec<(Mode, Option<String>)>,
}

#[derive(Debug, Serialize)]
pub struct Feature {
    pub name: &'static str,
    pub on: bool,
    pub fixed: bool,
}

/// Inspects `link`.
pub fn inspect(link: &Interface) -> Result<Inspection> {
    let features = ethtool::Features::of(&link.name).ok();
    let netdev = match netdev_features(link.index) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(iface = %link.name, error = %e, "no netdev xdp-features");
            None
        }
    };
    let tcx = sys::has_tcx(link.index);
    let queues = |dir: &str| {
        std::fs::read_dir(format!("/sys/class/net/{}/queues", link.name))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with(dir))
                    .count()
            })
            .unwrap_or(0)
    };
    let port_kind = PortKind::of(&link.name);
    let auto = ModeChoice::Auto
        .candidates()
        .iter()
        .map(|&mode| {
            let out = match &netdev {
                _ if port_kind == PortKind::Wifi && mode != Mode::Tc => {
                    Some("a Wi-Fi station runs tc only (the router's tc program translates)".into())
                }
                Some((xdp, _)) if mode.runs_in_driver() && xdp & XDP_BASIC == 0 => {
                    Some("the driver has no native XDP".into())
                }
                _ => None,
            };
            (mode, out)
        })
        .collect();
    Ok(Inspection {
        name: link.name.clone(),
        ifindex: link.index,
        driver: driver(&link.name).ok(),
        kind: link.kind.clone(),
        port_kind,
        mtu: link.mtu,
        up: link.up,
        promisc: link.promisc,
        rx_queues: queues("rx-"),
        tx_queues: queues("tx-"),
        xdp_features: netdev.map(|(xdp, _)| names(xdp, &XDP_FEATURE_NAMES)),
        xdp_rx_metadata: netdev.map(|(_, meta)| names(meta, &RX_METADATA_NAMES)),
        tcx,
        xdp_program: link.xdp,
        clsact_program: crate::clsact::running(link.index).ok().flatten(),
        tc_programs: if tcx {
            aya::programs::SchedClassifier::query_tcx(
                &link.name,
                aya::programs::TcAttachType::Ingress,
            )
            .map(|(_, progs)| progs.iter().map(|p| p.id()).collect())
            .unwrap_or_default()
        } else {
            Vec::new()
        },
        features: FEATURES
            .iter()
            .filter_map(|&name| {
                let state = features.as_ref()?.get(name)?;
                Some(Feature {
                    name,
                    on: state.active,
                    fixed: !state.changeable,
                })
            })
            .collect(),
        auto,
    })
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        writeln!(
            f,
            "{} (ifindex {}): driver {}, kind {}, port kind {}, MTU {}, {}, promiscuous {}, queues \
             rx {} tx {}",
            crate::cli::output::printable(&self.name),
            self.ifindex,
            or(&self.driver),
            or(&self.kind),
            self.port_kind,
            self.mtu.map_or("-".into(), |m| m.to_string()),
            if self.up { "up" } else { "down" },
            if self.promisc { "on" } else { "off" },
            self.rx_queues,
            self.tx_queues
        )?;
        match (&self.xdp_features, &self.xdp_rx_metadata) {
            (Some(xdp), Some(meta)) => writeln!(
                f,
                "  xdp-features: {}; rx metadata: {}",
                list(xdp),
                list(meta)
            )?,
            _ => writeln!(f, "  xdp-features: not reported (Linux before 6.3)")?,
        }
        writeln!(
            f,
            "  tc hook: {}",
            if self.tcx {
                "tcx"
            } else {
                "clsact filter (no tcx: Linux before 6.6)"
            }
        )?;
        match self.xdp_program {
            Some((id, mode)) => writeln!(
                f,
                "  running: XDP program id {id}{}",
                mode.map_or(String::new(), |m| format!(" ({m} mode)"))
            )?,
            None => writeln!(f, "  running: no XDP program")?,
        }
        if !self.tc_programs.is_empty() {
            let ids: Vec<String> = self.tc_programs.iter().map(u32::to_string).collect();
            writeln!(f, "  running at tcx ingress: program id {}", ids.join(", "))?;
        }
        if let Some(id) = self.clsact_program {
            writeln!(f, "  running as our clsact filter: program id {id}")?;
        }
        let features: Vec<String> = self
            .features
            .iter()
            .map(|x| {
                format!(
                    "{} {}{}",
                    x.name,
                    if x.on { "on" } else { "off" },
                    if x.fixed { " [fixed]" } else { "" }
                )
            })
            .collect();
        writeln!(f, "  features: {}", features.join(", "))?;
        let auto: Vec<String> = self
            .auto
            .iter()
            .map(|(m, out)| match out {
                Some(why) => format!("{m} (no: {why})"),
                None => m.to_string(),
            })
            .collect();
        write!(f, "  --mode auto tries: {}", auto.join(", then "))
    }
}

fn list(v: &[&str]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// `NETDEV_XDP_ACT_*` and `NETDEV_XDP_RX_METADATA_*` (linux/netdev.h).
const XDP_BASIC: u64 = 1;
const XDP_NDO_XMIT: u64 = 1 << 2;
const XDP_FEATURE_NAMES: [&str; 7] = [
    "basic",
    "redirect",
    "ndo_xmit",
    "xsk_zerocopy",
    "hw_offload",
    "rx_sg",
    "ndo_xmit_sg",
];
const RX_METADATA_NAMES: [&str; 3] = ["timestamp", "hash", "vlan_tag"];

fn names(bits: u64, names: &[&'static str]) -> Vec<&'static str> {
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// Whether `ifindex` takes native XDP redirects now (`ndo_xmit` in its
/// netdev xdp-features); `None` where the kernel does not report it
/// (before Linux 6.3) or cannot be asked.
pub fn takes_native_redirects(ifindex: u32) -> Option<bool> {
    netdev_features(ifindex)
        .ok()
        .flatten()
        .map(|(xdp, _)| xdp & XDP_NDO_XMIT != 0)
}

/// The driver's name (`ETHTOOL_GDRVINFO`).
fn driver(iface: &str) -> io::Result<String> {
    // struct ethtool_drvinfo: cmd, then driver[32] first; 196 bytes.
    let mut info = [0u8; 196];
    info[..4].copy_from_slice(&3u32.to_ne_bytes());
    ethtool::ioctl(iface, info.as_mut_ptr().cast())?;
    let name = &info[4..36];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

// Generic netlink, just enough for one `netdev` `dev-get` request.
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_RX_METADATA_FEATURES: u16 = 5;

/// The netdev family's `xdp-features` and `xdp-rx-metadata-features` of
/// `ifindex`; `None` when the kernel has no netdev family (before 6.3).
fn netdev_features(ifindex: u32) -> io::Result<Option<(u64, u64)>> {
    let socket = GenlSocket::open()?;
    let reply = match socket.request(
        GENL_ID_CTRL,
        CTRL_CMD_GETFAMILY,
        &attr(CTRL_ATTR_FAMILY_NAME, b"netdev\0"),
    ) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(family) = find(&reply, CTRL_ATTR_FAMILY_ID)
        .and_then(|v| v.get(..2))
        .map(|v| u16::from_ne_bytes([v[0], v[1]]))
    else {
        return Ok(None);
    };
    let reply = socket.request(
        family,
        NETDEV_CMD_DEV_GET,
        &attr(NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes()),
    )?;
    let u64_of = |t| {
        find(&reply, t)
            .and_then(|v| v.get(..8))
            .map_or(0, |v| u64::from_ne_bytes(v.try_into().unwrap_or([0; 8])))
    };
    Ok(Some((
        u64_of(NETDEV_A_DEV_XDP_FEATURES),
        u64_of(NETDEV_A_DEV_XDP_RX_METADATA_FEATURES),
    )))
}

/// One netlink attribute: length, type, value, padded to 4 bytes.
fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut out = Vec::with_capacity(len.next_multiple_of(4));
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(len.next_multiple_of(4), 0);
    out
}

/// The value of the first top-level attribute `kind` in `attrs`.
fn find(attrs: &[u8], kind: u16) -> Option<&[u8]> {
    let mut rest = attrs;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let t = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if t == kind {
            return Some(&rest[4..len]);
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    None
}

struct GenlSocket(std::os::fd::OwnedFd);

impl GenlSocket {
    fn open() -> io::Result<GenlSocket> {
        nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Netlink,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            nix::sys::socket::SockProtocol::NetlinkGeneric,
        )
        .map(GenlSocket)
        .map_err(io::Error::from)
    }

    /// Sends one request (`cmd` of `family`, with `attrs`) and returns the
    /// reply's attributes; a netlink error comes back as its errno.
    fn request(&self, family: u16, cmd: u8, attrs: &[u8]) -> io::Result<Vec<u8>> {
        const NLM_F_REQUEST: u16 = 1;
        const NLMSG_ERROR: u16 = 2;
        let len = 16 + 4 + attrs.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&family.to_ne_bytes());
        msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
        msg.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
        msg.extend_from_slice(&[cmd, 1, 0, 0]); // genlmsghdr: cmd, version
        msg.extend_from_slice(attrs);
        let fd = self.0.as_raw_fd();
        nix::sys::socket::send(fd, &msg, nix::sys::socket::MsgFlags::empty())
            .map_err(io::Error::from)?;
        let mut buf = vec![0u8; 8192];
        let n = nix::sys::socket::recv(fd, &mut buf, nix::sys::socket::MsgFlags::empty())
            .map_err(io::Error::from)?;
        let reply = buf.get(..n).unwrap_or_default();
        if reply.len() < 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "short netlink reply",
            ));
        }
        if u16::from_ne_bytes([reply[4], reply[5]]) == NLMSG_ERROR {
            let errno = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
            return Err(io::Error::from_raw_os_error(-errno));
        }
        Ok(reply[20..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding() {
        let mut attrs = attr(7, b"ab");
        attrs.extend(attr(3, &42u64.to_ne_bytes()));
        assert_eq!(attrs.len(), 8 + 12);
        assert_eq!(find(&attrs, 7), Some(&b"ab"[..]));
        assert_eq!(find(&attrs, 3), Some(&42u64.to_ne_bytes()[..]));
        assert_eq!(find(&attrs, 9), None);
        assert_eq!(find(&attrs[..3], 7), None, "a cut attribute is not read");
    }

    #[test]
    fn feature_bits_name_the_kernels_flags() {
        assert_eq!(names(0b101, &XDP_FEATURE_NAMES), ["basic", "ndo_xmit"]);
        assert_eq!(names(4, &RX_METADATA_NAMES), ["vlan_tag"]);
    }
}
