//! The steps fresh, repair and replace share: the VID and the router rules,
//! link up and promiscuous mode, the tag features, the station's slot, and
//! what the mode cannot carry.

use tracing::{info, warn};
use xdp_forwarder_common::maps::ROUTER_IFACE_KEY;

use super::{AttachRequest, slots::Slots};
use crate::{
    Error, Mode, Result, Role,
    kernel::{ethtool, netdev::Interface, sys::LinkInfo},
    policy::directions::{RedirectTargets, dead_directions},
    state::{
        forwarder::Forwarder,
        pins::Pinned,
        ports::{FLAG_SET_PROMISC, PortRecord, Ports},
        station::{PortKind, StationMaps},
        undo::Undo,
    },
};

impl Forwarder {
    /// The VID the port will have (physical: the requested one, else the one
    /// it had as `before`, else the default), once the router rules allow
    /// the role.
    pub(super) async fn vid_and_rules(
        &self,
        req: &AttachRequest,
        requested_vid: Option<u16>,
        before: Option<PortRecord>,
        link: &Interface,
        ports: &Ports,
        slots: &Slots,
    ) -> Result<Option<u16>> {
        let all = ports.all()?;
        self.check_router_rules(req.role, link, &all, &slots.router_iface)
            .await?;
        Ok(match req.role {
            Role::Physical => {
                let keep = before.filter(|r| r.role() == Role::Physical).map(|r| r.vid);
                Some(
                    self.choose_vid(requested_vid, keep, link.index, &all)
                        .await?,
                )
            }
            Role::Router => None,
        })
    }

    /// One router per pin dir, and the router interface is never a NIC.
    async fn check_router_rules(
        &self,
        role: Role,
        link: &Interface,
        all: &[(u32, PortRecord)],
        router_iface: &Pinned,
    ) -> Result<()> {
        match role {
            Role::Physical => {
                let registered_router = all
                    .iter()
                    .any(|(i, r)| *i == link.index && r.role() == Role::Router);
                if router_iface.get(ROUTER_IFACE_KEY)? == Some(link.index) && !registered_router {
                    return Err(Error::Refused {
                        iface: link.name.clone(),
                        why: format!(
                            "it is the router interface (router_iface, set by set-router-iface); \
                             a port cannot send to itself. Clear router_iface first (`{}`), or \
                             attach the router interface with --role router",
                            self.command(&format!("detach {}", link.name))
                        ),
                    });
                }
            }
            Role::Router => {
                if let Some((other, _)) = all
                    .iter()
                    .find(|(i, r)| r.role() == Role::Router && *i != link.index)
                {
                    let other = self.name_of(*other).await;
                    return Err(Error::Refused {
                        iface: link.name.clone(),
                        why: format!("{other} is already the router interface; detach it first"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Link up and promiscuous mode, the last steps: nothing after them can
    /// fail. Both roles: a NIC's traffic is addressed to the VMs behind the
    /// router (and often tagged), which its MAC and VLAN receive filters drop
    /// before XDP runs; the router's carries every NIC's MACs.
    pub(super) async fn bring_up(
        &self,
        link: &Interface,
        record: PortRecord,
        ports: &mut Ports,
    ) -> Result<Vec<String>> {
        let mut done = Vec::new();
        if !link.up {
            self.netdev().set_up(link).await?;
            done.push("link up".to_owned());
        }
        let mut record = record;
        if !link.promisc {
            // Recorded first: killed in between, `detach` still turns it off.
            record = record.with_flags(record.flags | FLAG_SET_PROMISC);
            ports.insert(link.index, record)?;
            self.netdev().set_promisc(link, true).await?;
            done.push("promiscuous mode".to_owned());
        }
        done.extend(tag_features_off(link, &mut record, ports)?);
        Ok(done)
    }
}

/// The mode the port's program runs in, as the kernel says (`running`:
/// its link; `link`: the interface): a command killed in a mode change
/// leaves a record of the new mode on the old link.
pub(super) fn running_mode(running: &LinkInfo, link: &Interface, rec: &PortRecord) -> Mode {
    running
        .hook
        .mode(link.xdp.and_then(|(_, m)| m).or(Some(rec.mode())))
}

/// What `mode` on `link` cannot carry, alone ([`Mode::caveat`]) or next to
/// the other ports of the pin dir (`all`, where `link`'s own record gives
/// its role; [`dead_directions`]).
pub(crate) fn caveat(
    mode: Mode,
    link: &Interface,
    all: &[(u32, PortRecord)],
    targets: &RedirectTargets,
) -> Option<String> {
    let mut notes: Vec<String> = mode
        .caveat(link.kind.as_deref(), fixed_aggregates(&link.name))
        .map(str::to_owned)
        .into_iter()
        .collect();
    if let Some((_, rec)) = all.iter().find(|(i, _)| *i == link.index) {
        for d in dead_directions(mode, rec.role(), link, all, targets) {
            notes.push(format!(
                "{}; `attach IFACE --replace --mode tc` on every port makes both directions work",
                d.describe(targets, &link.name)
            ));
        }
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// Whether `iface` has hardware GRO or LRO on and fixed: it hands the
/// stack aggregates nothing of ours can switch off.
fn fixed_aggregates(iface: &str) -> bool {
    ethtool::Features::of(iface).is_ok_and(|f| {
        ["rx-gro-hw", "large-receive-offload"]
            .iter()
            .any(|name| f.get(name).is_some_and(|s| s.active && !s.changeable))
    })
}

/// Switches off the receive features that would hide or filter tags from
/// the port's mode ([`Mode::tag_features_off`]), each recorded first so that
/// `detach` switches it on again. A feature the driver keeps (fixed, or it
/// refuses) is left, logged, and shown by `status`: the port still forwards
/// what reaches it.
pub(super) fn tag_features_off(
    link: &Interface,
    record: &mut PortRecord,
    ports: &mut Ports,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let mut features = match ethtool::Features::of(&link.name) {
        Ok(f) => f,
        Err(error) => {
            warn!(iface = %link.name, %error, "cannot read the interface's features");
            return Ok(done);
        }
    };
    for feature in record.mode().tag_features_off() {
        let name = feature.name();
        match features.get(name) {
            Some(state) if state.active && state.changeable => {}
            _ => continue,
        }
        *record = record.with_flags(record.flags | feature.flag());
        ports.insert(link.index, *record)?;
        match features.set(name, false) {
            Ok(true) => done.push(format!("{name} off")),
            Ok(false) => warn!(iface = %link.name, feature = name, "the driver kept it on"),
            Err(error) => warn!(iface = %link.name, %error, "cannot switch it off"),
        }
    }
    Ok(done)
}

/// Writes the slot of `vid` in `fwd_stations` for a port of `kind`: a
/// station's MAC, or empty for an Ethernet port (a station's slot left by
/// a port killed half-way); undone with `undo`.
pub(super) fn station_slot(
    stations: &mut StationMaps,
    link: &Interface,
    kind: PortKind,
    vid: u16,
    undo: &mut Undo,
) -> Result<()> {
    match kind {
        PortKind::Wifi => {
            let mac = link.mac.ok_or_else(|| Error::Refused {
                iface: link.name.clone(),
                why: "it is a Wi-Fi station without a MAC address: the translation writes \
                      the station's MAC into what it sends"
                    .into(),
            })?;
            let before = stations.set_station(vid, mac)?;
            undo.restore_station(vid, before);
        }
        PortKind::Ethernet => {
            let before = stations.slot(vid)?;
            if before.station_mac().is_some() {
                stations.clear(vid)?;
                undo.restore_station(vid, before);
            }
        }
    }
    Ok(())
}

pub(super) fn log_repairs(repaired: &[String], link: &Interface) {
    if !repaired.is_empty() {
        info!(iface = %link.name, ?repaired, "repaired");
    }
}
