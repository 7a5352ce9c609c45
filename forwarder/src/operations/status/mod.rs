//! What is attached where, for humans (`status`) and machines (`status --json`).

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use xdp_forwarder_common::{DropReason, PortCounters, maps::ROUTER_IFACE_KEY};

mod judge;

use crate::{
    Mode, Result, Role,
    kernel::mode::Hook,
    operations::attach,
    policy::health,
    state::{
        attachment, counters,
        forwarder::Forwarder,
        pins::{self, MapSpec},
        ports::{FLAG_AUTO_MODE, PortRecord, Ports},
        redirect_errors::RedirectErrors,
        station::{PortKind, StationMaps, StationReport},
    },
};

/// `status --json` schema, version 1. Fields are only ever added.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub schema: u32,
    pub pin_dir: String,
    /// Where `router_iface` points, if anywhere.
    pub router_iface: Option<Iface>,
    pub ports: Vec<Port>,
    /// The cookie of the network namespace `status` ran in.
    pub netns: u64,
    /// What is wrong beyond one port (orphaned links, `router_iface`
    /// leading to no router program).
    pub warnings: Vec<String>,
    /// Interfaces with the router MAC prefix that are not ports while a
    /// router port is attached: what the daemon keeps aside (standby).
    #[serde(default)]
    pub standby_routers: Vec<String>,
}

impl Status {
    /// The line about standby routers, if any.
    pub fn standby_note(&self) -> Option<String> {
        let active = self
            .ports
            .iter()
            .find(|p| p.role == Role::Router && p.attached && p.netns == self.netns)?;
        judge::standby_routers(active.name.as_deref()?, &self.standby_routers)
    }

    /// How many warnings there are, on the status and on its ports.
    pub fn warning_count(&self) -> usize {
        self.warnings.len() + self.ports.iter().map(|p| p.warnings.len()).sum::<usize>()
    }

    /// Whether anything is wrong: a warning on the status or on a port
    /// (`status --check` exits 3 then). Notes (caveats) and standby
    /// routers are not warnings.
    pub fn has_warnings(&self) -> bool {
        !self.warnings.is_empty() || self.ports.iter().any(|p| !p.warnings.is_empty())
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Iface {
    pub ifindex: u32,
    /// `None` when no interface has that ifindex any more.
    pub name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Port {
    pub ifindex: u32,
    pub name: Option<String>,
    pub role: Role,
    pub mode: Mode,
    /// Ethernet, or a Wi-Fi station whose frames are translated.
    #[serde(default)]
    pub kind: PortKind,
    /// `--mode auto` chose the mode: a later `attach --mode auto` may move
    /// the port to another so that every direction works. `false`: an
    /// explicit `--mode`, never moved.
    pub auto: bool,
    pub vid: Option<u16>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// The kernel's carrier (IFLA_CARRIER): false when the link is up but
    /// nothing is at the other end (`NO-CARRIER`); false for another
    /// namespace's port.
    #[serde(default)]
    pub carrier: bool,
    /// Whether this port can forward at all: attached, up, with a
    /// carrier, and for a NIC a router (attached, up, with a carrier) to
    /// send to. `status --check` fails when one cannot (its warnings say
    /// why).
    #[serde(default)]
    pub can_forward: bool,
    /// The kernel says so: the port's pinned link is attached to this
    /// interface, which runs that link's program.
    pub attached: bool,
    /// The network namespace the port was attached in (its cookie).
    pub netns: u64,
    /// That namespace's name under `ip netns`, when it is not the one
    /// `status` ran in and has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_name: Option<String>,
    /// Whether the interface is promiscuous (attach turns it on); false
    /// for another namespace's port.
    #[serde(default)]
    pub promisc: bool,
    /// The id of the program the port's link runs (the kernel's link
    /// info), while attached: a new one after each upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog_id: Option<u32>,
    /// Where that program runs, while attached: `xdp`, `tcx` or `clsact`
    /// (mode tc on a kernel without tcx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<Hook>,
    /// What the port's program counted since it was attached; `None` when its
    /// counters are not pinned (attached by hand or by an older version).
    pub counters: Option<Counters>,
    /// A Wi-Fi station's address translation: the MAC it writes, its
    /// counters and its table ([`crate::state::station`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station_nat: Option<StationReport>,
    /// Per-second rates since the previous sample (`status --watch` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<Rates>,
    pub warnings: Vec<String>,
    /// What the port's mode cannot carry on this interface (explicit modes:
    /// e.g. TCP from offloading hosts through native XDP on veth), with the
    /// mode that can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caveat: Option<String>,
}

/// A port's counters, summed over the CPUs. `forwarded_*` are what the
/// program handed to the kernel for redirect, less the redirects the kernel
/// refused afterwards (the `xdp:xdp_redirect_err` tracepoint, by program
/// id, see [`redirect_errors`](crate::state::redirect_errors)): those are in
/// `dropped["redirect_failed"]`. Their bytes cannot be told apart (the
/// tracepoint carries no length) and stay in `forwarded_bytes`. The tc
/// programs count in `redirect_failed` themselves what the target's MTU
/// refuses (`bpf_check_mtu`, before the redirect).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counters {
    pub forwarded_frames: u64,
    pub forwarded_bytes: u64,
    /// Drops by reason; every reason is present (sorted by name).
    pub dropped: BTreeMap<String, u64>,
    pub dropped_total: u64,
}

impl From<PortCounters> for Counters {
    fn from(c: PortCounters) -> Self {
        Counters {
            forwarded_frames: c.forwarded_frames,
            forwarded_bytes: c.forwarded_bytes,
            dropped: DropReason::ALL
                .iter()
                .map(|&r| (r.name().to_owned(), c.drops(r)))
                .collect(),
            dropped_total: c.dropped_total(),
        }
    }
}

/// Forwarding and drop rates between two samples.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Rates {
    pub frames_per_sec: f64,
    pub bits_per_sec: f64,
    pub drops_per_sec: f64,
}

impl Rates {
    /// The rates from `before` to `now`, `elapsed` apart.
    pub fn between(before: &Counters, now: &Counters, elapsed: Duration) -> Rates {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let per_sec = |a: u64, b: u64| b.wrapping_sub(a) as f64 / secs;
        Rates {
            frames_per_sec: per_sec(before.forwarded_frames, now.forwarded_frames),
            bits_per_sec: 8.0 * per_sec(before.forwarded_bytes, now.forwarded_bytes),
            drops_per_sec: per_sec(before.dropped_total, now.dropped_total),
        }
    }
}

impl Status {
    /// Fills in every port's rates from an earlier sample taken `elapsed` ago
    /// (ports without counters then, or attached since, get none).
    pub fn set_rates(&mut self, earlier: &Status, elapsed: Duration) {
        for port in &mut self.ports {
            let before = earlier
                .ports
                .iter()
                .find(|p| p.ifindex == port.ifindex)
                .and_then(|p| p.counters.as_ref());
            port.rates = match (before, &port.counters) {
                (Some(b), Some(n)) if n.forwarded_frames >= b.forwarded_frames => {
                    Some(Rates::between(b, n, elapsed))
                }
                _ => None,
            };
        }
    }
}

impl Forwarder {
    /// What the kernel says runs where; reads without the writer lock.
    /// Standby routers are told by the default router MAC prefix.
    pub async fn status(&self) -> Result<Status> {
        self.status_with_prefix(&[0x02, 0x01]).await
    }

    /// [`Self::status`], with the daemon's `--router-mac-prefix`.
    pub async fn status_with_prefix(&self, router_prefix: &[u8]) -> Result<Status> {
        let pins = self.pins();
        let net = self.netdev();
        let router_iface = match pins::open_existing(&pins.router_iface(), MapSpec::ROUTER_IFACE)? {
            Some(map) => map.get(ROUTER_IFACE_KEY)?,
            None => None,
        };
        let router_link = match router_iface {
            Some(index) => net.by_index(index).await?,
            None => None,
        };
        let records = match Ports::open(pins)? {
            Some(ports) => ports.all()?,
            None => Vec::new(),
        };
        let vlan_ports = pins::open_existing(&pins.vlan_ports(), MapSpec::VLAN_PORTS)?;
        // Read per port: a broken pin is that port's warning, not a failure.
        let redirect_errors = RedirectErrors::open(pins);
        let stations = if records.iter().any(|(_, r)| r.is_station()) {
            StationMaps::open(pins)
        } else {
            Ok(None)
        };
        let mut warnings = Vec::new();
        let mut ports = Vec::new();
        // This namespace's ports, and whether each takes native redirects:
        // asked once for every port's caveat.
        let ours: Vec<(u32, PortRecord)> = records
            .iter()
            .filter(|(_, r)| r.netns == self.netns())
            .copied()
            .collect();
        let targets = crate::policy::directions::RedirectTargets::ask(ours.iter().map(|(i, _)| *i));
        let pin_dir = pins.root().display().to_string();
        let netns_names = if records.iter().any(|(_, r)| r.netns != self.netns()) {
            crate::kernel::sys::netns_names()
        } else {
            BTreeMap::new()
        };
        for &(ifindex, rec) in &records {
            let mut port_warnings = Vec::new();
            let physical = rec.role() == Role::Physical;
            if rec.netns != self.netns() {
                let netns_name = netns_names.get(&rec.netns).cloned();
                let attached = attachment::pinned(&pins.link(ifindex), ifindex)
                    .is_ok_and(|l| l.is_some_and(|l| l.ifindex == ifindex));
                port_warnings.push(judge::other_netns(
                    rec.netns,
                    netns_name.as_deref(),
                    &pin_dir,
                    attached,
                ));
                ports.push(Port {
                    ifindex,
                    name: None,
                    role: rec.role(),
                    mode: rec.mode(),
                    kind: rec.kind(),
                    auto: rec.flags & FLAG_AUTO_MODE != 0,
                    vid: physical.then_some(rec.vid),
                    mtu: None,
                    up: false,
                    carrier: false,
                    can_forward: false,
                    attached,
                    netns: rec.netns,
                    netns_name,
                    promisc: false,
                    prog_id: None,
                    hook: None,
                    counters: None,
                    station_nat: None,
                    rates: None,
                    warnings: port_warnings,
                    caveat: None,
                });
                continue;
            }
            let link = net.by_index(ifindex).await?;
            let health = health::of(ifindex, link.as_ref(), &pins.link(ifindex))?;
            port_warnings.extend(health.problem());
            if health.is_attached() {
                match rec.role() {
                    Role::Physical => {
                        let slot = match &vlan_ports {
                            Some(m) => m.get(u32::from(rec.vid))?,
                            None => None,
                        };
                        port_warnings.extend(judge::vid_slot(rec.vid, slot, ifindex));
                    }
                    Role::Router => {
                        port_warnings.extend(judge::router_slot(router_iface, ifindex));
                    }
                }
            }
            if physical {
                let twins: Vec<u32> = records
                    .iter()
                    .filter(|(i, r)| {
                        *i != ifindex && r.role() == Role::Physical && r.vid == rec.vid
                    })
                    .map(|(i, _)| *i)
                    .collect();
                port_warnings.extend(judge::twin_vids(rec.vid, &twins));
                port_warnings.extend(judge::mtu(
                    link.as_ref().and_then(|l| l.mtu),
                    router_link.as_ref().and_then(|l| l.mtu),
                ));
            }
            if let Some(l) = link.as_ref().filter(|_| health.is_attached()) {
                port_warnings.extend(judge::link_down(l.up, &l.name));
                port_warnings.extend(judge::no_carrier(l.up, l.carrier, &l.name));
                port_warnings.extend(judge::promisc_off(l.promisc));
                port_warnings.extend(judge::tag_features(&l.name, rec.mode()));
            }
            let prog_id = match &health {
                health::Health::Attached(info) => Some(info.prog_id),
                _ => None,
            };
            let counters = match counters::read_pinned(&pins.counters(ifindex)) {
                Ok(Some(mut c)) => {
                    // The program counted these as forwarded; the kernel
                    // refused them afterwards (see `redirect_errors`).
                    match (&redirect_errors, prog_id) {
                        (Ok(Some(errors)), Some(id)) => match errors.refused(id) {
                            Ok(n) => c.refused_redirects(n),
                            Err(e) => port_warnings.push(e.to_string()),
                        },
                        (Err(e), _) => port_warnings.push(e.to_string()),
                        _ => {}
                    }
                    Some(Counters::from(c))
                }
                Ok(None) => None,
                Err(e) => {
                    port_warnings.push(e.to_string());
                    None
                }
            };
            let station_nat = match (&stations, rec.is_station()) {
                (_, false) => None,
                (Ok(Some(maps)), true) => match maps.report(rec.vid) {
                    Ok(report) => {
                        port_warnings.extend(judge::station_mac(
                            report.station_mac.as_deref(),
                            link.as_ref(),
                        ));
                        Some(report)
                    }
                    Err(e) => {
                        port_warnings.push(e.to_string());
                        None
                    }
                },
                (Ok(None), true) => {
                    port_warnings.push(judge::station_maps_missing(pins.state_dir()));
                    None
                }
                (Err(e), true) => {
                    port_warnings.push(e.to_string());
                    None
                }
            };
            ports.push(Port {
                ifindex,
                name: link.as_ref().map(|l| l.name.clone()),
                role: rec.role(),
                mode: rec.mode(),
                kind: rec.kind(),
                auto: rec.flags & FLAG_AUTO_MODE != 0,
                vid: physical.then_some(rec.vid),
                mtu: link.as_ref().and_then(|l| l.mtu),
                up: link.as_ref().is_some_and(|l| l.up),
                carrier: link.as_ref().is_some_and(|l| l.carrier),
                // Set below, once the router is known.
                can_forward: false,
                attached: health.is_attached(),
                netns: rec.netns,
                netns_name: None,
                promisc: link.as_ref().is_some_and(|l| l.promisc),
                prog_id,
                hook: match &health {
                    health::Health::Attached(info) => Some(info.hook),
                    _ => None,
                },
                counters,
                station_nat,
                rates: None,
                warnings: port_warnings,
                caveat: link
                    .as_ref()
                    .and_then(|l| attach::caveat(rec.mode(), l, &ours, &targets)),
            });
        }
        for ifindex in pins.link_pins()? {
            if !records.iter().any(|(i, _)| *i == ifindex) {
                warnings.push(judge::orphaned_link(&pins.link(ifindex), ifindex));
            }
        }
        // router_iface names an ifindex of this namespace, unless another
        // namespace's ports own the pin dir.
        let active_router = ports
            .iter()
            .find(|p| p.role == Role::Router && p.attached && p.netns == self.netns());
        if let Some(ri) = router_iface
            && records.iter().all(|(_, r)| r.netns == self.netns())
        {
            let runs_router = active_router.is_some_and(|p| p.ifindex == ri)
                || router_link.as_ref().is_some_and(|l| {
                    l.xdp.is_some_and(|(id, _)| {
                        crate::kernel::sys::prog_name(id).is_ok_and(|n| n == "router")
                    })
                });
            warnings.extend(judge::router_iface_without_router(
                ri,
                router_link.as_ref().map(|l| l.name.as_str()),
                runs_router,
            ));
        }
        let links = net.all().await?;
        let mut standby_routers = Vec::new();
        if active_router.is_some_and(|p| p.name.is_some()) {
            for l in &links {
                if !l.loopback
                    && l.mac.is_some_and(|m| m.starts_with(router_prefix))
                    && !records.iter().any(|(i, _)| *i == l.index)
                {
                    standby_routers.push(l.name.clone());
                }
            }
        }
        // The router no longer has the prefix while another interface does:
        // the daemon hands the role over (said on the router port).
        let off_prefix = active_router.and_then(|p| {
            let l = links.iter().find(|l| l.index == p.ifindex)?;
            let mac = l.mac.filter(|m| !m.starts_with(router_prefix))?;
            judge::router_off_prefix(&l.name, mac, &standby_routers).map(|w| (p.ifindex, w))
        });
        // A router to send to: the router port, up with a carrier, or the
        // router program of another loader where router_iface points.
        let router_ok = router_iface.is_some_and(|ri| {
            let usable = router_link.as_ref().is_some_and(|l| l.up && l.carrier);
            usable
                && (active_router.is_some_and(|p| p.ifindex == ri)
                    || router_link.as_ref().is_some_and(|l| {
                        l.xdp.is_some_and(|(id, _)| {
                            crate::kernel::sys::prog_name(id).is_ok_and(|n| n == "router")
                        })
                    }))
        });
        let nics = ports
            .iter()
            .filter(|p| p.role == Role::Physical && p.attached && p.netns == self.netns())
            .count();
        warnings.extend(judge::no_router(nics, router_iface.is_some()));
        for p in &mut ports {
            if p.netns != self.netns() {
                continue;
            }
            if let Some((_, w)) = off_prefix.as_ref().filter(|(i, _)| *i == p.ifindex) {
                p.warnings.push(w.clone());
            }
            p.can_forward = judge::can_forward(
                p.attached,
                p.up,
                p.carrier,
                p.role == Role::Router || router_ok,
            );
        }
        // Programs of ours that this pin dir does not hold: it was mounted
        // over, or unmounted, while they ran.
        let pinned_here = pins.link_pins()?;
        for l in &links {
            if !l.loopback
                && !records.iter().any(|(i, _)| *i == l.index)
                && !pinned_here.contains(&l.index)
                && let Some(what) = crate::state::holder::unheld(l, pins.root())
            {
                warnings.push(judge::unheld_program(&l.name, &what, &pin_dir));
            }
        }
        Ok(Status {
            schema: 1,
            pin_dir: pins.root().display().to_string(),
            router_iface: router_iface.map(|ifindex| Iface {
                ifindex,
                name: router_link.map(|l| l.name),
            }),
            ports,
            netns: self.netns(),
            warnings,
            standby_routers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(frames: u64, bytes: u64, dropped: u64) -> Counters {
        Counters {
            forwarded_frames: frames,
            forwarded_bytes: bytes,
            dropped: BTreeMap::new(),
            dropped_total: dropped,
        }
    }

    #[test]
    fn rates_are_per_second_bits_from_bytes_and_survive_a_wrap() {
        let r = Rates::between(
            &counters(100, 1000, 5),
            &counters(300, 3000, 9),
            Duration::from_secs(2),
        );
        assert_eq!(
            (r.frames_per_sec, r.bits_per_sec, r.drops_per_sec),
            (100.0, 8000.0, 2.0)
        );
        // A counter that wrapped still moved forward.
        let r = Rates::between(
            &counters(u64::MAX, 0, 0),
            &counters(1, 0, 0),
            Duration::from_secs(1),
        );
        assert_eq!(r.frames_per_sec, 2.0);
    }
}
