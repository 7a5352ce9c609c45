//! Attaching ports: a fresh attach, a repair of one that is registered but
//! not running, or a `--replace` (an upgrade swaps the program on the link).
//! Every step is taken under the pin dir's writer lock and undone if a later
//! one fails; the registry record is written first, so that a command killed
//! half-way leaves something `status` shows and the next `attach` completes.
//!
//! Here: the request, the answer and `attach` itself, which takes the lock,
//! opens the maps and picks one of [`fresh`] (a new port, or one registered
//! but not running), [`repair`] (attached already) or [`replace`]
//! (`--replace`). [`regroup`]: the modes to try and the ports `auto` moves
//! along; [`slots`]: the map slots a port takes; [`steps`]: what fresh,
//! repair and replace share (VID and router rules, link up, promiscuous
//! mode, tag features, the station's slot, the caveat).

use xdp_forwarder_common::Vid;

use crate::{
    Error, Mode, ModeChoice, Result, Role,
    kernel::netdev::Interface,
    policy::health::{self, Health},
    state::{
        forwarder::Forwarder,
        pins::{self, Pinned, SlotMap},
        ports::{PortRecord, Ports},
        station::{KindChoice, PortKind, StationMaps},
        undo::Undo,
    },
};

use repair::already_attached;
use slots::Slots;

mod fresh;
mod regroup;
mod repair;
mod replace;
mod slots;
mod steps;

pub(crate) use steps::caveat;

/// What `attach` is asked to do.
#[derive(Clone, Debug)]
pub struct AttachRequest {
    pub iface: String,
    pub role: Role,
    pub mode: ModeChoice,
    pub vid: Option<u32>,
    pub replace: bool,
    /// Ethernet or Wi-Fi station (physical ports only); `Auto`: what the
    /// kernel says ([`PortKind::of`]).
    pub kind: KindChoice,
}

/// What `attach` (or `detach`) did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Attached {
    pub iface: String,
    pub ifindex: u32,
    pub role: Role,
    pub mode: Mode,
    /// Ethernet, or a Wi-Fi station whose frames are translated.
    pub kind: PortKind,
    /// The port's VID (physical only).
    pub vid: Option<u16>,
    /// `true` when it was already attached like this and nothing changed.
    pub unchanged: bool,
    /// With `--mode auto`: which mode it picked and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
    /// What an `attach` of an attached port put right (e.g. an empty slot).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
    /// What the mode cannot carry on this interface ([`Mode::caveat`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caveat: Option<String>,
    /// With `--mode auto`: the other ports it moved to this port's mode so
    /// that every direction works ([`crate::policy::directions::regroup`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<Moved>,
}

/// A port `--mode auto` moved to another mode.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    pub iface: String,
    pub ifindex: u32,
    pub from: Mode,
    pub to: Mode,
}

impl Attached {
    pub(crate) fn from_record(name: &str, ifindex: u32, rec: &PortRecord) -> Self {
        Attached {
            iface: name.to_owned(),
            ifindex,
            role: rec.role(),
            mode: rec.mode(),
            kind: rec.kind(),
            vid: (rec.role() == Role::Physical).then_some(rec.vid),
            unchanged: false,
            mode_reason: None,
            repaired: Vec::new(),
            caveat: None,
            moved: Vec::new(),
        }
    }
}

/// One attach under the writer lock: the request, the interface as found
/// under the lock, and the state it changes (each change logged in `undo`).
struct Job<'a> {
    req: &'a AttachRequest,
    /// `--vid`, checked.
    requested_vid: Option<u16>,
    link: &'a Interface,
    /// What the port is (a router: always Ethernet).
    kind: PortKind,
    ports: &'a mut Ports,
    slots: &'a Slots,
    stations: &'a mut StationMaps,
    undo: &'a mut Undo,
}

impl Forwarder {
    /// Attaches `req.role` to `req.iface`: loads the program, pins its link
    /// and fills the maps. Idempotent for the same role; repairs what the
    /// kernel says is missing.
    pub async fn attach(&self, req: &AttachRequest) -> Result<Attached> {
        let requested_vid = match req.vid {
            Some(_) if req.role == Role::Router => {
                return Err(Error::Refused {
                    iface: req.iface.clone(),
                    why: "--vid only applies to --role physical".into(),
                });
            }
            Some(v) => Some(Vid::new(v).ok_or(Error::InvalidVid(v))?.get()),
            None => None,
        };
        let (_lock, link) = self.lock_for(&req.iface).await?;
        Self::refuse_loopback(&link, "never carries forwarded traffic")?;
        let kind = match (req.role, req.kind) {
            (Role::Physical, choice) => choice.resolve(&link.name),
            (Role::Router, KindChoice::Fixed(PortKind::Wifi)) => {
                return Err(Error::Refused {
                    iface: req.iface.clone(),
                    why: "--kind wifi only applies to --role physical: the router interface \
                          faces the router VM, not an access point"
                        .into(),
                });
            }
            (Role::Router, _) => PortKind::Ethernet,
        };
        let mut undo = Undo::new(self.pins());
        self.pins().ensure_state_dir()?;
        let mut ports = Ports::open_or_create(self.pins())?;
        if ports.created {
            undo.remove_pin(ports.pinned_path.clone());
        }
        self.claim_netns(&mut ports)?;
        self.prune_gone(&mut ports).await?;
        let slots = Slots {
            router_iface: self.open_slots(SlotMap::RouterIface, &mut undo)?,
            vlan_ports: self.open_slots(SlotMap::VlanPorts, &mut undo)?,
            tc_targets: self.open_slots(SlotMap::TcTargets, &mut undo)?,
        };
        // Every tc program shares them, stations or not.
        let mut stations = StationMaps::open_or_create(self.pins(), |pin| undo.remove_pin(pin))?;

        let current = ports.get(link.index)?;
        // Attached already and not asked otherwise: the kind it has (an
        // `--kind` given by hand then stays through the daemon's repairs).
        let kind = match current {
            Some(rec)
                if req.role == Role::Physical
                    && req.kind == KindChoice::Auto
                    && !req.replace
                    && rec.role() == Role::Physical =>
            {
                rec.kind()
            }
            _ => kind,
        };
        let stale = match current {
            Some(rec) => {
                match health::of(link.index, Some(&link), &self.pins().link(link.index))? {
                    Health::Attached(info) => {
                        let done = if req.replace {
                            let job = Job {
                                req,
                                requested_vid,
                                link: &link,
                                kind,
                                ports: &mut ports,
                                slots: &slots,
                                stations: &mut stations,
                                undo: &mut undo,
                            };
                            self.replace(job, rec, info).await?
                        } else {
                            let mut done = already_attached(req, requested_vid, &link, kind, &rec)?;
                            done.repaired = self
                                .repair(&link, &rec, &mut ports, &slots, &mut stations)
                                .await?;
                            done
                        };
                        undo.commit();
                        crate::state::redirect_errors::ensure(self.pins());
                        return Ok(done);
                    }
                    // Registered, but our program is not running: start over.
                    _ => {
                        self.refuse_foreign(&link)?;
                        Some(rec)
                    }
                }
            }
            None => {
                self.refuse_foreign(&link)?;
                None
            }
        };
        let job = Job {
            req,
            requested_vid,
            link: &link,
            kind,
            ports: &mut ports,
            slots: &slots,
            stations: &mut stations,
            undo: &mut undo,
        };
        let done = self.attach_fresh(job, stale).await?;
        undo.commit();
        crate::state::redirect_errors::ensure(self.pins());
        Ok(done)
    }

    fn open_slots(&self, map: SlotMap, undo: &mut Undo) -> Result<Pinned> {
        let (path, spec) = map.pin(self.pins());
        let pinned = pins::open_or_create(&path, spec)?;
        if pinned.created {
            undo.remove_pin(pinned.path.clone());
        }
        Ok(pinned)
    }

    /// An interface running an XDP program that is not ours is left alone,
    /// and so is one running our program through another pin dir, in any
    /// hook (whatever mode this attach asks for: two forwarders on one
    /// interface would both handle every frame); our own orphaned link
    /// (pinned, unregistered) is taken away first. Another tool's tc
    /// programs may run beside ours (tcx runs them in turn; a filter in
    /// our clsact place fails tc mode with its own fix).
    fn refuse_foreign(&self, link: &Interface) -> Result<()> {
        let orphan = self.remove_orphan(link)?;
        let this = self.pins().root();
        if let Some((prog_id, _)) = link.xdp
            && orphan.is_none_or(|o| o.prog_id != prog_id)
        {
            return Err(Error::ForeignProgram {
                iface: link.name.clone(),
                program: format!("XDP program id {prog_id}"),
                holder: crate::state::holder::foreign_program(link, prog_id, this),
            });
        }
        if let Some((program, holder)) = crate::state::holder::our_tc_program(link, this) {
            return Err(Error::ForeignProgram {
                iface: link.name.clone(),
                program,
                holder,
            });
        }
        Ok(())
    }
}
