//! [`Forwarder`]: the data plane of one pin dir, seen from the current
//! network namespace, and what every command shares: the writer lock, the
//! namespace that owns the pin dir, the ports whose interface is gone.

use std::path::{Path, PathBuf};

use tracing::{info, warn};
use xdp_forwarder_common::maps::ROUTER_IFACE_KEY;

use crate::{
    Error, Result, Role,
    kernel::{
        ethtool::{self, TagFeature},
        netdev::{Interface, Netdev},
        privileges,
        sys::{self, LinkInfo},
    },
    state::{
        attachment,
        lock::WriterLock,
        pins::{self, MapSpec, PinDir, SlotMap},
        ports::{FLAG_SET_PROMISC, PortRecord, Ports},
    },
};

/// The data plane of one pin dir, in the current network namespace.
///
/// Its methods, one `impl` per concern: here the pin dir itself (open,
/// locks, the namespace rule, `set_router_iface`, releasing a port, our
/// own orphans); [`attach`](crate::operations::attach) (`attach`);
/// [`detach`](crate::operations::detach) (`detach`, `detach_all`, `forget_gone`);
/// [`status`](crate::operations::status) (`status`); [`vid`](crate::policy::vid) (the VID a
/// NIC gets).
pub struct Forwarder {
    pins: PinDir,
    net: Netdev,
    netns: u64,
}

impl Forwarder {
    /// Checks privileges and the pin dir; needs a tokio runtime (netlink).
    pub fn open(pin_dir: &Path) -> Result<Self> {
        privileges::require("xdp-forwarder")?;
        Ok(Self {
            pins: PinDir::open(pin_dir)?,
            net: Netdev::connect()?,
            netns: sys::netns_cookie()
                .map_err(|e| Error::kernel("cannot read the network namespace's cookie", e))?,
        })
    }

    pub fn pins(&self) -> &PinDir {
        &self.pins
    }

    pub fn netdev(&self) -> &Netdev {
        &self.net
    }

    /// The cookie of the network namespace this forwarder works in.
    pub fn netns(&self) -> u64 {
        self.netns
    }

    /// The pin dir's writer lock: held by every command that changes it.
    pub(crate) fn lock(&self) -> Result<WriterLock> {
        WriterLock::acquire(self.pins.root())
    }

    /// The writer lock and the interface `name` as it is once we hold it
    /// (looked up before too: an unknown name fails without waiting).
    pub(crate) async fn lock_for(&self, name: &str) -> Result<(WriterLock, Interface)> {
        self.net.by_name(name).await?;
        let lock = self.lock()?;
        Ok((lock, self.net.by_name(name).await?))
    }

    /// The loopback interface, refused as a port (`what` it cannot be).
    pub(crate) fn refuse_loopback(link: &Interface, what: &str) -> Result<()> {
        if link.loopback {
            return Err(Error::Refused {
                iface: link.name.clone(),
                why: format!("the loopback interface {what}"),
            });
        }
        Ok(())
    }

    /// A pin dir serves one network namespace at a time (its ifindexes mean
    /// nothing elsewhere, and `router_iface` has one slot). Ports registered
    /// from another namespace are never touched while one of their links is
    /// attached; once none is, that namespace runs nothing of ours and its
    /// records are forgotten.
    pub(crate) fn claim_netns(&self, ports: &mut Ports) -> Result<()> {
        let foreign: Vec<(u32, PortRecord)> = ports
            .all()?
            .into_iter()
            .filter(|(_, r)| r.netns != self.netns)
            .collect();
        let Some(owner) = foreign.first().map(|(_, r)| r.netns) else {
            return Ok(());
        };
        let live = foreign
            .iter()
            .filter(|(i, _)| {
                attachment::pinned(&self.pins.link(*i), *i)
                    .is_ok_and(|l| l.is_some_and(|l| l.ifindex != 0))
            })
            .count();
        if live > 0 {
            return Err(Error::OtherNetns {
                pin_dir: self.pins.root().to_owned(),
                owner,
                ours: self.netns,
                live,
            });
        }
        for (ifindex, rec) in foreign {
            warn!(
                ifindex,
                netns = rec.netns,
                "forgetting a port of a network namespace that runs nothing of ours any more"
            );
            self.release_pins(ifindex, &rec)?;
            ports.remove(ifindex)?;
        }
        Ok(())
    }

    /// Fails when another network namespace's ports are live in this pin
    /// dir (see [`Self::claim_netns`]).
    pub fn check_netns(&self) -> Result<()> {
        let _lock = self.lock()?;
        match Ports::open(&self.pins)? {
            Some(mut ports) => self.claim_netns(&mut ports),
            None => Ok(()),
        }
    }

    /// Forgets ports whose interface has disappeared (their links died with
    /// them): frees their VIDs and pins.
    pub(crate) async fn prune_gone(&self, ports: &mut Ports) -> Result<Vec<(u32, PortRecord)>> {
        let mut gone = Vec::new();
        for (ifindex, rec) in ports.all()? {
            if rec.netns == self.netns && self.net.by_index(ifindex).await?.is_none() {
                warn!(ifindex, role = %rec.role(), vid = rec.vid, "forgetting a port whose interface is gone");
                self.release(ports, ifindex, &rec, None).await?;
                gone.push((ifindex, rec));
            }
        }
        Ok(gone)
    }

    /// The name of `ifindex` for a message.
    pub(crate) async fn name_of(&self, ifindex: u32) -> String {
        match self.net.by_index(ifindex).await {
            Ok(Some(link)) => link.name,
            _ => format!("ifindex {ifindex}"),
        }
    }

    /// The interface attached as router in this namespace, if it still exists.
    pub async fn active_router(&self) -> Result<Option<Interface>> {
        let Some(ports) = Ports::open(&self.pins)? else {
            return Ok(None);
        };
        for (ifindex, rec) in ports.all()? {
            if rec.role() == Role::Router
                && rec.netns == self.netns
                && let Some(link) = self.net.by_index(ifindex).await?
            {
                return Ok(Some(link));
            }
        }
        Ok(None)
    }

    /// Whether `ifindex` is a registered port of this pin dir and namespace.
    pub fn is_port(&self, ifindex: u32) -> Result<bool> {
        Ok(match Ports::open(&self.pins)? {
            Some(ports) => ports.get(ifindex)?.is_some_and(|r| r.netns == self.netns),
            None => false,
        })
    }

    /// `xdp-forwarder ARGS` as a user types it for this pin dir (with
    /// `--pin-dir` unless it is the default): a fix in a message.
    pub(crate) fn command(&self, args: &str) -> String {
        let root = self.pins.root();
        if root == Path::new(pins::DEFAULT_PIN_DIR) {
            format!("xdp-forwarder {args}")
        } else {
            format!("xdp-forwarder --pin-dir {} {args}", root.display())
        }
    }

    /// Empties `router_iface` (and the tc programs' copy of it), unless it
    /// leads to a router port of ours (`detach` that instead). `only`: clear
    /// it only if it points at that ifindex. Returns what it pointed at.
    pub async fn clear_router_iface(&self, only: Option<u32>) -> Result<Option<u32>> {
        let _lock = self.lock()?;
        self.clear_router_iface_locked(only).await
    }

    pub(crate) async fn clear_router_iface_locked(&self, only: Option<u32>) -> Result<Option<u32>> {
        let Some(pinned) = pins::open_existing(&self.pins.router_iface(), MapSpec::ROUTER_IFACE)?
        else {
            return Ok(None);
        };
        let Some(before) = pinned.get(ROUTER_IFACE_KEY)? else {
            return Ok(None);
        };
        if only.is_some_and(|i| i != before) {
            return Ok(None);
        }
        if let Some(mut ports) = Ports::open(&self.pins)? {
            self.claim_netns(&mut ports)?;
            if let Some(rec) = ports.get(before)?
                && rec.role() == Role::Router
                && self.net.by_index(before).await?.is_some()
            {
                let name = self.name_of(before).await;
                return Err(Error::Refused {
                    iface: name.clone(),
                    why: format!(
                        "router_iface leads to the router port xdp-forwarder attached; detach \
                         it instead (`{}`)",
                        self.command(&format!("detach {name}"))
                    ),
                });
            }
        }
        pinned.clear(ROUTER_IFACE_KEY)?;
        let [_, (tc_map, tc_key)] = SlotMap::of_port(Role::Router, 0);
        let (path, spec) = tc_map.pin(&self.pins);
        if let Some(tc) = pins::open_existing(&path, spec)?
            && tc.get(tc_key)? == Some(before)
        {
            tc.clear(tc_key)?;
        }
        info!(ifindex = before, "router_iface cleared");
        Ok(Some(before))
    }

    /// Points `router_iface` at `iface`, creating the pinned map if needed.
    /// Returns the ifindex it pointed at before.
    pub async fn set_router_iface(&self, iface: &str) -> Result<(u32, Option<u32>)> {
        let (_lock, link) = self.lock_for(iface).await?;
        Self::refuse_loopback(&link, "cannot be the router interface")?;
        if let Some(mut ports) = Ports::open(&self.pins)? {
            self.claim_netns(&mut ports)?;
            for (ifindex, rec) in ports.all()? {
                let refuse = |why: String| Error::Refused {
                    iface: link.name.clone(),
                    why,
                };
                if ifindex == link.index && rec.role() == Role::Physical {
                    return Err(refuse(
                        "it is attached as a physical port; frames would loop back into it (detach it first)".into(),
                    ));
                }
                if ifindex != link.index
                    && rec.role() == Role::Router
                    && self.net.by_index(ifindex).await?.is_some()
                {
                    let other = self.name_of(ifindex).await;
                    return Err(refuse(format!(
                        "{other} is attached as the router by xdp-forwarder; detach it first, \
                         or attach {} --role router --replace after that",
                        link.name
                    )));
                }
            }
        }
        let pinned = pins::open_or_create(&self.pins.router_iface(), MapSpec::ROUTER_IFACE)?;
        let before = pinned.get(ROUTER_IFACE_KEY)?;
        pinned.set(ROUTER_IFACE_KEY, link.index)?;
        // The tc programs' copy, where ports of ours exist to read it.
        let [_, (tc_map, tc_key)] = SlotMap::of_port(Role::Router, 0);
        let (path, spec) = tc_map.pin(&self.pins);
        if let Some(tc) = pins::open_existing(&path, spec)? {
            tc.set(tc_key, link.index)?;
        }
        info!(iface, ifindex = link.index, ?before, "router_iface set");
        Ok((link.index, before))
    }

    /// Undoes everything `attach` did for one port, in an order a killed
    /// command can resume: the record goes last. `link` is the interface
    /// when it is still there (promiscuous mode we set is turned off).
    pub(crate) async fn release(
        &self,
        ports: &mut Ports,
        ifindex: u32,
        rec: &PortRecord,
        link: Option<&Interface>,
    ) -> Result<()> {
        self.release_pins(ifindex, rec)?;
        if let Some(link) = link
            && rec.flags & FLAG_SET_PROMISC != 0
            && link.promisc
        {
            self.net.set_promisc(link, false).await?;
        }
        if let Some(link) = link {
            restore_tag_features(link, rec)?;
        }
        ports.remove(ifindex)
    }

    /// The port's link (detached now), counters pin and map slot.
    /// Our own orphaned attachment on `link` (pinned, not registered: a
    /// command killed between pinning and recording), taken away with its
    /// counters; what it was, if there was one.
    pub(crate) fn remove_orphan(&self, link: &Interface) -> Result<Option<LinkInfo>> {
        let path = self.pins.link(link.index);
        let orphan = attachment::orphan(&path, link)?;
        if orphan.is_some() {
            info!(iface = %link.name, path = %path.display(), "removing our own orphaned link");
            attachment::release(&path, link.index)?;
            pins::remove_pin(&self.pins.counters(link.index))?;
        }
        Ok(orphan)
    }

    pub(crate) fn release_pins(&self, ifindex: u32, rec: &PortRecord) -> Result<()> {
        attachment::release(&self.pins.link(ifindex), ifindex)?;
        pins::remove_pin(&self.pins.counters(ifindex))?;
        for (slot_map, key) in SlotMap::of_port(rec.role(), rec.vid) {
            let (path, spec) = slot_map.pin(&self.pins);
            if let Some(map) = pins::open_existing(&path, spec)?
                && map.get(key)?.map(|v| slot_map.ifindex(v)) == Some(ifindex)
            {
                map.clear(key)?;
            }
        }
        // A station's slot and table go with it (another port may have
        // taken the VID since: its slot is its own).
        if rec.is_station()
            && let Some(mut stations) = crate::state::station::StationMaps::open(&self.pins)?
            && !self.vid_taken_by_other(ifindex, rec.vid)?
        {
            stations.clear(rec.vid)?;
        }
        Ok(())
    }

    /// Whether another registered port has `vid`.
    fn vid_taken_by_other(&self, ifindex: u32, vid: u16) -> Result<bool> {
        Ok(match crate::state::ports::Ports::open(&self.pins)? {
            Some(ports) => ports
                .all()?
                .iter()
                .any(|(i, r)| *i != ifindex && r.role() == Role::Physical && r.vid == vid),
            None => false,
        })
    }
}

/// Switches on again the receive features `attach` switched off (the
/// record's flags), before the record goes.
fn restore_tag_features(link: &Interface, rec: &PortRecord) -> Result<()> {
    let ours: Vec<TagFeature> = TagFeature::ALL
        .into_iter()
        .filter(|f| rec.flags & f.flag() != 0)
        .collect();
    if ours.is_empty() {
        return Ok(());
    }
    let mut features = ethtool::Features::of(&link.name)?;
    for feature in ours {
        if features.get(feature.name()).is_some_and(|s| !s.active) {
            features.set(feature.name(), true)?;
        }
    }
    Ok(())
}

/// Pins `router_iface` in `pin_dir` if nothing is pinned there, so that
/// objects loaded by a foreign loader can share it. Returns its path.
pub fn prepare_router_iface(pin_dir: &Path) -> Result<PathBuf> {
    privileges::require("pinning router_iface")?;
    let pins = PinDir::open(pin_dir)?;
    let _lock = WriterLock::acquire(pins.root())?;
    Ok(pins::open_or_create(&pins.router_iface(), MapSpec::ROUTER_IFACE)?.path)
}
