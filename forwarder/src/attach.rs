//! Attaching and detaching ports, and pointing `router_iface`: each operation
//! either completes or leaves nothing behind.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use aya::programs::links::FdLink;
use tracing::{debug, info, warn};
use xdp_forwarder_common::{
    Vid,
    maps::{COUNTERS, ROUTER_IFACE_KEY},
};

use crate::{
    Error, Mode, ModeChoice, Result, Role,
    netdev::{Link, Netdev},
    objects::{self, Setting},
    pins::{self, MapSpec, PinDir, Pinned},
    ports::{FLAG_SET_PROMISC, PortRecord, Ports},
    privileges,
};

/// What `attach` is asked to do.
#[derive(Clone, Debug)]
pub struct AttachRequest {
    pub iface: String,
    pub role: Role,
    pub mode: ModeChoice,
    pub vid: Option<u32>,
    pub replace: bool,
}

/// What `attach` did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Attached {
    pub iface: String,
    pub ifindex: u32,
    pub role: Role,
    pub mode: Mode,
    /// The port's VID (physical only).
    pub vid: Option<u16>,
    /// `true` when it was already attached like this and nothing changed.
    pub unchanged: bool,
    /// With `--mode auto`: which mode it picked and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
}

/// The data plane of one pin dir, in the current network namespace.
pub struct Forwarder {
    pins: PinDir,
    net: Netdev,
}

impl Forwarder {
    /// Checks privileges and the pin dir; needs a tokio runtime (netlink).
    pub fn open(pin_dir: &Path) -> Result<Self> {
        privileges::require("xdp-forwarder")?;
        Ok(Self {
            pins: PinDir::open(pin_dir)?,
            net: Netdev::connect()?,
        })
    }

    pub fn pins(&self) -> &PinDir {
        &self.pins
    }

    pub fn netdev(&self) -> &Netdev {
        &self.net
    }

    /// Attaches `req.role` to `req.iface`: loads the program, pins its link
    /// and fills the maps. Idempotent for the same role.
    pub async fn attach(&self, req: &AttachRequest) -> Result<Attached> {
        let link = self.net.by_name(&req.iface).await?;
        if link.loopback {
            return Err(Error::Refused {
                iface: link.name,
                why: "the loopback interface never carries forwarded traffic".into(),
            });
        }
        let mut undo = Undo::default();
        let mut ports = Ports::open_or_create(&self.pins)?;
        if ports.created {
            undo.remove_pin(ports.pinned_path.clone());
        }
        self.prune_gone(&mut ports).await?;

        // What this interface runs now; replaced only once every check passed.
        let replacing = match ports.get(link.index)? {
            Some(rec) if self.pins.link(link.index).exists() => {
                if let Some(done) = already_attached(req, &link, &rec)? {
                    undo.commit();
                    return Ok(done);
                }
                Some(rec)
            }
            // Registered, but its link pin is gone: stale, just forget it.
            Some(rec) => Some(rec),
            None => {
                if let Some((prog_id, _)) = link.xdp {
                    return Err(Error::ForeignProgram {
                        iface: link.name,
                        prog_id,
                    });
                }
                None
            }
        };

        let router_iface = pins::open_or_create(&self.pins.router_iface(), MapSpec::ROUTER_IFACE)?;
        let vlan_ports = pins::open_or_create(&self.pins.vlan_ports(), MapSpec::VLAN_PORTS)?;
        for pinned in [&router_iface, &vlan_ports] {
            if pinned.created {
                undo.remove_pin(pinned.path.clone());
            }
        }
        let mut current_router = router_iface.get(ROUTER_IFACE_KEY)?;
        let all = ports.all()?;
        let vid = match req.role {
            Role::Physical => {
                let replacing_router = replacing.is_some_and(|r| r.role() == Role::Router);
                if current_router == Some(link.index) && !replacing_router {
                    return Err(Error::Refused {
                        iface: link.name,
                        why: "it is the router interface (router_iface); a port cannot send to itself".into(),
                    });
                }
                Some(self.choose_vid(req.vid, link.index, &all).await?)
            }
            Role::Router => {
                if let Some((other, _)) = all
                    .iter()
                    .find(|(i, r)| r.role() == Role::Router && *i != link.index)
                {
                    let other = self.name_of(*other).await;
                    return Err(Error::Refused {
                        iface: link.name,
                        why: format!("{other} is already the router interface; detach it first"),
                    });
                }
                None
            }
        };
        if let Some(rec) = replacing {
            info!(iface = %link.name, from = %rec.role(), to = %req.role, "replacing");
            self.release(&mut ports, link.index, &rec, Some(&link))
                .await?;
            // Release may have emptied the router slot; rollback restores this.
            current_router = router_iface.get(ROUTER_IFACE_KEY)?;
        }

        let (mode, mode_reason) = self.load_and_pin(req, &link, vid, &mut undo)?;

        let (slots, key, before) = match vid {
            Some(vid) => (vlan_ports, u32::from(vid), None),
            None => (router_iface, ROUTER_IFACE_KEY, current_router),
        };
        slots.set(key, link.index)?;
        undo.restore_slot(slots, key, before);

        self.net.set_up(&link).await?;
        // Both roles: a NIC's traffic is addressed to the VMs behind the
        // router (and often tagged), which its MAC and VLAN receive filters
        // drop before XDP runs; the router's carries every NIC's MACs.
        let mut flags = 0;
        if !link.promisc {
            self.net.set_promisc(&link, true).await?;
            flags |= FLAG_SET_PROMISC;
        }
        ports.insert(
            link.index,
            PortRecord::new(req.role, mode, vid.unwrap_or(0), flags),
        )?;
        undo.commit();
        debug!(iface = %link.name, role = %req.role, %mode, ?vid, "attached");
        Ok(Attached {
            iface: link.name,
            ifindex: link.index,
            role: req.role,
            mode,
            vid,
            unchanged: false,
            mode_reason,
        })
    }

    /// Loads the role's program in managed mode, attaches it and pins the
    /// link. Returns the mode and, for `--mode auto`, why that one.
    fn load_and_pin(
        &self,
        req: &AttachRequest,
        link: &Link,
        vid: Option<u16>,
        undo: &mut Undo,
    ) -> Result<(Mode, Option<String>)> {
        let name = objects::program_name(req.role);
        let candidates: &[Mode] = match req.mode {
            ModeChoice::Auto => &[Mode::Native, Mode::Skb],
            ModeChoice::Native => &[Mode::Native],
            ModeChoice::Skb => &[Mode::Skb],
        };
        let mut last_err: Option<Error> = None;
        for &mode in candidates {
            // A fresh load per attempt: a failed one is dropped whole.
            let mut ebpf = objects::load(req.role, Setting::Managed { vid }, &self.pins)?;
            let prog = objects::xdp(&mut ebpf, req.role)?;
            let link_id = match prog.attach_to_if_index(link.index, mode.xdp_mode()) {
                Ok(id) => id,
                Err(e) => {
                    debug!(iface = %link.name, %mode, error = %e, "attach failed");
                    last_err = Some(Error::kernel(
                        format!("cannot attach {name} to {} in {mode} mode", link.name),
                        e,
                    ));
                    continue;
                }
            };
            let xdp_link = prog
                .take_link(link_id)
                .map_err(|e| Error::kernel("cannot take the XDP link", e))?;
            let fd_link = FdLink::try_from(xdp_link).map_err(|e| {
                Error::kernel(
                    format!(
                        "{}: this kernel attached XDP without a bpf_link, which cannot be pinned",
                        link.name
                    ),
                    e,
                )
            })?;
            let path = self.pins.link(link.index);
            fd_link.pin(&path).map_err(|e| {
                Error::kernel(
                    format!("cannot pin the link of {} at {}", link.name, path.display()),
                    e,
                )
            })?;
            undo.remove_pin(path);
            self.pin_counters(&ebpf, link, undo)?;
            let reason = match (req.mode, &last_err) {
                (ModeChoice::Auto, None) => {
                    Some("--mode auto: the driver runs XDP natively".into())
                }
                (ModeChoice::Auto, Some(native)) => {
                    warn!(iface = %link.name, error = %native, "native XDP unavailable, using skb (generic) mode");
                    Some(format!(
                        "--mode auto: native XDP failed ({native}), so skb (generic) mode"
                    ))
                }
                _ => None,
            };
            return Ok((mode, reason));
        }
        Err(last_err.unwrap_or_else(|| Error::kernel("attach", "no mode to try")))
    }

    /// Pins the new program's counters so that `status` finds them; a
    /// leftover pin of an earlier program is replaced.
    fn pin_counters(&self, ebpf: &aya::Ebpf, link: &Link, undo: &mut Undo) -> Result<()> {
        let path = self.pins.counters(link.index);
        let map = ebpf
            .map(COUNTERS)
            .ok_or_else(|| Error::kernel("corrupt embedded object", "no counters map"))?;
        std::fs::create_dir_all(self.pins.state_dir()).map_err(|e| {
            Error::kernel(
                format!("cannot create {}", self.pins.state_dir().display()),
                e,
            )
        })?;
        remove_pin(&path)?;
        map.pin(&path).map_err(|e| {
            Error::kernel(
                format!(
                    "cannot pin the counters of {} at {}",
                    link.name,
                    path.display()
                ),
                e,
            )
        })?;
        undo.remove_pin(path);
        Ok(())
    }

    async fn choose_vid(
        &self,
        requested: Option<u32>,
        ifindex: u32,
        ports: &[(u32, PortRecord)],
    ) -> Result<u16> {
        let used: BTreeMap<u16, u32> = ports
            .iter()
            .filter(|(i, r)| r.role() == Role::Physical && *i != ifindex)
            .map(|(i, r)| (r.vid, *i))
            .collect();
        if let Some(requested) = requested {
            let vid = Vid::new(requested)
                .ok_or(Error::InvalidVid(requested))?
                .get();
            return match used.get(&vid) {
                Some(owner) => Err(Error::VidInUse {
                    vid,
                    owner: self.name_of(*owner).await,
                }),
                None => Ok(vid),
            };
        }
        if let Some(vid) = Vid::new(ifindex).map(Vid::get)
            && !used.contains_key(&vid)
        {
            return Ok(vid);
        }
        (Vid::MIN..=Vid::MAX)
            .find(|v| !used.contains_key(v))
            .ok_or(Error::NoFreeVid)
    }

    async fn name_of(&self, ifindex: u32) -> String {
        match self.net.by_index(ifindex).await {
            Ok(Some(link)) => link.name,
            _ => format!("ifindex {ifindex}"),
        }
    }

    /// Forgets ports whose interface has disappeared (their links died with
    /// them): frees their VIDs and pins.
    async fn prune_gone(&self, ports: &mut Ports) -> Result<()> {
        for (ifindex, rec) in ports.all()? {
            if self.net.by_index(ifindex).await?.is_none() {
                info!(ifindex, role = %rec.role(), vid = rec.vid, "forgetting a port whose interface is gone");
                self.release(ports, ifindex, &rec, None).await?;
            }
        }
        Ok(())
    }

    /// Undoes everything `attach` did for one port.
    async fn release(
        &self,
        ports: &mut Ports,
        ifindex: u32,
        rec: &PortRecord,
        link: Option<&Link>,
    ) -> Result<()> {
        remove_pin(&self.pins.link(ifindex))?;
        remove_pin(&self.pins.counters(ifindex))?;
        let (path, spec, key) = match rec.role() {
            Role::Physical => (
                self.pins.vlan_ports(),
                MapSpec::VLAN_PORTS,
                u32::from(rec.vid),
            ),
            Role::Router => (
                self.pins.router_iface(),
                MapSpec::ROUTER_IFACE,
                ROUTER_IFACE_KEY,
            ),
        };
        if let Some(slots) = pins::open_existing(&path, spec)?
            && slots.get(key)? == Some(ifindex)
        {
            slots.clear(key)?;
        }
        if let Some(link) = link
            && rec.flags & FLAG_SET_PROMISC != 0
        {
            self.net.set_promisc(link, false).await?;
        }
        ports.remove(ifindex)
    }

    /// Detaches `iface`, returning what it was.
    pub async fn detach(&self, iface: &str) -> Result<Attached> {
        let link = self.net.by_name(iface).await?;
        let not_attached = || Error::NotAttached {
            iface: iface.to_owned(),
        };
        let mut ports = Ports::open(&self.pins)?.ok_or_else(not_attached)?;
        let rec = ports.get(link.index)?.ok_or_else(not_attached)?;
        self.release(&mut ports, link.index, &rec, Some(&link))
            .await?;
        self.drop_state_if_empty(&ports)?;
        debug!(iface, role = %rec.role(), "detached");
        Ok(attached_from(&link.name, link.index, &rec))
    }

    /// Detaches every port of this pin dir, including those whose interface
    /// is gone.
    pub async fn detach_all(&self) -> Result<Vec<Attached>> {
        let Some(mut ports) = Ports::open(&self.pins)? else {
            return Ok(Vec::new());
        };
        let mut done = Vec::new();
        for (ifindex, rec) in ports.all()? {
            let link = self.net.by_index(ifindex).await?;
            self.release(&mut ports, ifindex, &rec, link.as_ref())
                .await?;
            let name = link.map_or_else(|| format!("(gone, ifindex {ifindex})"), |l| l.name);
            done.push(attached_from(&name, ifindex, &rec));
        }
        self.drop_state_if_empty(&ports)?;
        Ok(done)
    }

    /// The interface attached as router, if it still exists.
    pub async fn active_router(&self) -> Result<Option<Link>> {
        let Some(ports) = Ports::open(&self.pins)? else {
            return Ok(None);
        };
        for (ifindex, rec) in ports.all()? {
            if rec.role() == Role::Router
                && let Some(link) = self.net.by_index(ifindex).await?
            {
                return Ok(Some(link));
            }
        }
        Ok(None)
    }

    /// Whether `ifindex` is a registered port of this pin dir.
    pub fn is_port(&self, ifindex: u32) -> Result<bool> {
        Ok(match Ports::open(&self.pins)? {
            Some(ports) => ports.get(ifindex)?.is_some(),
            None => false,
        })
    }

    /// Forgets the ports whose interface is gone (`detach --gone`, and the
    /// daemon when an interface is removed): map entries, VID and pins.
    pub async fn forget_gone(&self) -> Result<Vec<Attached>> {
        let Some(mut ports) = Ports::open(&self.pins)? else {
            return Ok(Vec::new());
        };
        let mut done = Vec::new();
        for (ifindex, rec) in ports.all()? {
            if self.net.by_index(ifindex).await?.is_none() {
                self.release(&mut ports, ifindex, &rec, None).await?;
                let name = format!("(gone, ifindex {ifindex})");
                done.push(attached_from(&name, ifindex, &rec));
            }
        }
        self.drop_state_if_empty(&ports)?;
        Ok(done)
    }

    /// With no port left, our private pins go; `router_iface` stays, as the
    /// original's did (foreign programs may share it).
    fn drop_state_if_empty(&self, ports: &Ports) -> Result<()> {
        if !ports.all()?.is_empty() {
            return Ok(());
        }
        remove_pin(&self.pins.vlan_ports())?;
        remove_pin(&self.pins.ports())?;
        match std::fs::remove_dir(self.pins.state_dir()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::kernel(
                format!("cannot remove {}", self.pins.state_dir().display()),
                e,
            )),
        }
    }

    /// Points `router_iface` at `iface`, creating the pinned map if needed.
    /// Returns the ifindex it pointed at before.
    pub async fn set_router_iface(&self, iface: &str) -> Result<(u32, Option<u32>)> {
        let link = self.net.by_name(iface).await?;
        if link.loopback {
            return Err(Error::Refused {
                iface: link.name,
                why: "the loopback interface cannot be the router interface".into(),
            });
        }
        if let Some(ports) = Ports::open(&self.pins)?
            && let Some(rec) = ports.get(link.index)?
            && rec.role() == Role::Physical
        {
            return Err(Error::Refused {
                iface: link.name,
                why: "it is attached as a physical port; frames would loop back into it (detach it first)".into(),
            });
        }
        let pinned = pins::open_or_create(&self.pins.router_iface(), MapSpec::ROUTER_IFACE)?;
        let before = pinned.get(ROUTER_IFACE_KEY)?;
        pinned.set(ROUTER_IFACE_KEY, link.index)?;
        info!(iface, ifindex = link.index, ?before, "router_iface set");
        Ok((link.index, before))
    }
}

/// Pins `router_iface` in `pin_dir` if nothing is pinned there, so that
/// objects loaded by a foreign loader can share it. Returns its path.
pub fn prepare_router_iface(pin_dir: &Path) -> Result<PathBuf> {
    privileges::require("pinning router_iface")?;
    let pins = PinDir::open(pin_dir)?;
    Ok(pins::open_or_create(&pins.router_iface(), MapSpec::ROUTER_IFACE)?.path)
}

/// `Some` when `iface` already is what `req` asks for; an error when it is
/// attached differently and `--replace` was not given; `None` to re-attach.
fn already_attached(
    req: &AttachRequest,
    link: &Link,
    rec: &PortRecord,
) -> Result<Option<Attached>> {
    if req.replace {
        return Ok(None);
    }
    if rec.role() != req.role {
        return Err(Error::RoleConflict {
            iface: link.name.clone(),
            current: rec.role(),
        });
    }
    if let Some(vid) = req.vid
        && req.role == Role::Physical
        && vid != u32::from(rec.vid)
    {
        return Err(Error::VidConflict {
            iface: link.name.clone(),
            current: rec.vid,
        });
    }
    let mode_ok = match req.mode {
        ModeChoice::Auto => true,
        ModeChoice::Native => rec.mode() == Mode::Native,
        ModeChoice::Skb => rec.mode() == Mode::Skb,
    };
    if !mode_ok {
        return Err(Error::Refused {
            iface: link.name.clone(),
            why: format!(
                "it is attached in {} mode; add --replace to change the mode",
                rec.mode()
            ),
        });
    }
    let mut done = attached_from(&link.name, link.index, rec);
    done.unchanged = true;
    Ok(Some(done))
}

fn attached_from(name: &str, ifindex: u32, rec: &PortRecord) -> Attached {
    Attached {
        iface: name.to_owned(),
        ifindex,
        role: rec.role(),
        mode: rec.mode(),
        vid: (rec.role() == Role::Physical).then_some(rec.vid),
        unchanged: false,
        mode_reason: None,
    }
}

fn remove_pin(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::kernel(
            format!("cannot remove {}", path.display()),
            e,
        )),
    }
}

/// Steps to take back, newest first, unless the operation commits.
#[derive(Default)]
struct Undo {
    steps: Vec<UndoStep>,
}

enum UndoStep {
    RemovePin(PathBuf),
    /// Reopened only if the rollback happens.
    RestoreSlot {
        path: PathBuf,
        spec: MapSpec,
        key: u32,
        value: Option<u32>,
    },
}

impl Undo {
    fn remove_pin(&mut self, path: PathBuf) {
        self.steps.push(UndoStep::RemovePin(path));
    }

    fn restore_slot(&mut self, slots: Pinned, key: u32, value: Option<u32>) {
        self.steps.push(UndoStep::RestoreSlot {
            path: slots.path,
            spec: slots.spec,
            key,
            value,
        });
    }

    fn commit(mut self) {
        self.steps.clear();
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        while let Some(step) = self.steps.pop() {
            let result = match &step {
                UndoStep::RemovePin(path) => remove_pin(path),
                UndoStep::RestoreSlot {
                    path,
                    spec,
                    key,
                    value,
                } => pins::open_existing(path, *spec)
                    .and_then(|slots| slots.map_or(Ok(()), |s| s.restore(*key, *value))),
            };
            if let Err(error) = result {
                warn!(%error, "rollback step failed");
            }
        }
    }
}
