//! Attaching ports: a fresh attach, a repair of one that is registered but
//! not running, or a `--replace` (an upgrade swaps the program on the link).
//! Every step is taken under the pin dir's writer lock and undone if a later
//! one fails; the registry record is written first, so that a command killed
//! half-way leaves something `status` shows and the next `attach` completes.

use std::collections::BTreeMap;

use tracing::{debug, info, warn};
use xdp_forwarder_common::{Vid, maps::ROUTER_IFACE_KEY};

use crate::{
    Error, Mode, ModeChoice, Result, Role, attachment,
    directions::{self, RedirectTargets, dead_directions},
    ethtool,
    forwarder::Forwarder,
    health::{self, Health},
    links,
    netdev::Interface,
    pins::{self, Pinned, SlotMap},
    ports::{FLAG_AUTO_MODE, FLAG_SET_PROMISC, FLAG_STATION, PortRecord, Ports},
    station::{KindChoice, PortKind, StationMaps},
    sys::LinkInfo,
    undo::Undo,
};

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
    /// that every direction works ([`crate::directions::regroup`]).
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

/// A mode to try for a new port, and the ports `auto` moves along.
struct Candidate {
    mode: Mode,
    moves: Vec<u32>,
}

/// The modes to try, in order, and why `auto` skipped the others (a
/// direction dead that no move mends), for its reason line.
struct Candidates {
    list: Vec<Candidate>,
    skipped: Vec<String>,
}

impl Attached {
    pub(crate) fn from_record(name: &str, ifindex: u32, rec: &PortRecord) -> Self {
        Attached {
            iface: name.to_owned(),
            ifindex,
            role: rec.role(),
            mode: rec.mode(),
            kind: if rec.is_station() {
                PortKind::Wifi
            } else {
                PortKind::Ethernet
            },
            vid: (rec.role() == Role::Physical).then_some(rec.vid),
            unchanged: false,
            mode_reason: None,
            repaired: Vec::new(),
            caveat: None,
            moved: Vec::new(),
        }
    }
}

/// The maps every attach may write: the two DEVMAPs the XDP programs
/// redirect through, and the tc programs' copy of their slots.
struct Slots {
    router_iface: Pinned,
    vlan_ports: Pinned,
    tc_targets: Pinned,
}

impl Slots {
    /// The maps and keys of a port's slots ([`SlotMap::of_port`]).
    fn of(&self, role: Role, vid: u16) -> [(&Pinned, u32); 2] {
        SlotMap::of_port(role, vid).map(|(map, key)| {
            let pinned = match map {
                SlotMap::RouterIface => &self.router_iface,
                SlotMap::VlanPorts => &self.vlan_ports,
                SlotMap::TcTargets => &self.tc_targets,
            };
            (pinned, key)
        })
    }

    /// Points the port's slots at `ifindex`, each step undone on failure.
    fn take(&self, role: Role, vid: u16, ifindex: u32, undo: &mut Undo) -> Result<()> {
        for (map, key) in self.of(role, vid) {
            let before = map.get(key)?;
            map.set(key, ifindex)?;
            undo.restore_slot(map, key, before);
        }
        Ok(())
    }

    /// Empties the port's slots that still lead to `ifindex`.
    fn give_up(&self, role: Role, vid: u16, ifindex: u32, undo: &mut Undo) -> Result<()> {
        for (map, key) in self.of(role, vid) {
            if map.get(key)? == Some(ifindex) {
                map.clear(key)?;
                undo.restore_slot(map, key, Some(ifindex));
            }
        }
        Ok(())
    }

    /// Fills the port's empty slots with `ifindex` (a slot another port
    /// holds is left: `status` warns); whether one was empty.
    fn refill(&self, role: Role, vid: u16, ifindex: u32) -> Result<bool> {
        let mut refilled = false;
        for (map, key) in self.of(role, vid) {
            if map.get(key)?.is_none() {
                map.set(key, ifindex)?;
                refilled = true;
            }
        }
        Ok(refilled)
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
        let mut stations = StationMaps::open_or_create(self.pins(), &mut undo)?;

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
                Attached::from_record(&link.name, link.index, &rec).kind
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
                        crate::redirect_errors::ensure(self.pins());
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
        crate::redirect_errors::ensure(self.pins());
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
                holder: crate::holder::foreign_program(link, prog_id, this),
            });
        }
        if let Some((program, holder)) = crate::holder::our_tc_program(link, this) {
            return Err(Error::ForeignProgram {
                iface: link.name.clone(),
                program,
                holder,
            });
        }
        Ok(())
    }

    /// The modes of `choice` to try for `role` on `link`, in order: those
    /// in which both directions work next to the ports already attached
    /// (`all`), as far as the kernel tells ([`dead_directions`]); then, for
    /// `auto` only, those that work once the ports `auto` placed are moved
    /// along ([`directions::regroup`]). An explicit mode the kernel says
    /// leaves a direction dead is refused with the reason and the fix; one
    /// it cannot judge (before Linux 6.3) is taken, and `caveat` says what
    /// may break.
    async fn candidates(
        &self,
        role: Role,
        choice: ModeChoice,
        link: &Interface,
        kind: PortKind,
        all: &[(u32, PortRecord)],
    ) -> Result<Candidates> {
        let mut targets = RedirectTargets::ask(all.iter().map(|(i, _)| *i).chain([link.index]));
        let station = kind == PortKind::Wifi;
        if station {
            if !choice.accepts(Mode::Tc) {
                return Err(Error::Refused {
                    iface: link.name.clone(),
                    why: format!(
                        "it is a Wi-Fi station, which runs tc only: the access point takes \
                         frames from the station's own MAC only, and the address translation \
                         runs on the tc path (no mac80211 driver runs native XDP); use --mode \
                         auto or --mode tc{}",
                        if choice == ModeChoice::Native || choice == ModeChoice::Skb {
                            ", or --kind ethernet to forward its frames untranslated (a \
                             4-address station)"
                        } else {
                            ""
                        }
                    ),
                });
            }
            targets = targets.with_station(link.index);
        }
        let mut ifaces = None;
        let (mut plain, mut regrouped, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        let (mut first_dead, mut blocked) = (None, None);
        for &mode in choice
            .candidates()
            .iter()
            .filter(|m| !station || **m == Mode::Tc)
        {
            let dead = dead_directions(mode, role, link, all, &targets);
            let refuse = match choice {
                ModeChoice::Auto => !dead.is_empty(),
                _ => dead.iter().any(|d| d.reach.is_certain()),
            };
            if !refuse {
                plain.push(Candidate {
                    mode,
                    moves: Vec::new(),
                });
                continue;
            }
            if choice == ModeChoice::Auto {
                if ifaces.is_none() {
                    ifaces = Some(self.registered_interfaces(all).await?);
                }
                let ifaces = ifaces.as_ref().expect("looked up above");
                match directions::regroup(mode, role, link, all, ifaces, &targets) {
                    Ok(moves) => regrouped.push(Candidate { mode, moves }),
                    Err(unmoved) => {
                        skipped.push(format!(
                            "{mode} mode would leave a direction dead ({})",
                            unmoved.describe(&targets, &link.name)
                        ));
                        blocked.get_or_insert(unmoved);
                    }
                }
            }
            first_dead.get_or_insert((mode, dead));
        }
        // Moving ports comes after every mode that needs no move.
        plain.extend(regrouped);
        if let (true, Some((mode, dead))) = (plain.is_empty(), first_dead) {
            let why: Vec<String> = dead
                .iter()
                .map(|d| d.describe(&targets, &link.name))
                .collect();
            let explicit = blocked
                .filter(|b| {
                    all.iter()
                        .any(|(i, r)| *i == b.other && r.flags & FLAG_AUTO_MODE == 0)
                })
                .map(|b| {
                    format!(
                        " ({} was attached with an explicit --mode, and --mode auto moves only \
                         the ports it placed)",
                        targets.name(b.other)
                    )
                })
                .unwrap_or_default();
            return Err(Error::Refused {
                iface: link.name.clone(),
                why: format!(
                    "{mode} mode would leave a direction dead: {}{explicit}; attach every port \
                     in one mode (--mode tc reaches every interface), or move the other port \
                     first with `attach IFACE --replace --mode MODE`",
                    why.join("; ")
                ),
            });
        }
        Ok(Candidates {
            list: plain,
            skipped,
        })
    }

    /// The registered ports of this namespace, as they are now.
    async fn registered_interfaces(
        &self,
        all: &[(u32, PortRecord)],
    ) -> Result<BTreeMap<u32, Interface>> {
        let mut ifaces = BTreeMap::new();
        for &(ifindex, rec) in all {
            if rec.netns == self.netns()
                && let Some(link) = self.netdev().by_index(ifindex).await?
            {
                ifaces.insert(ifindex, link);
            }
        }
        Ok(ifaces)
    }

    /// Attaches `role` to `link` in the first of `candidates` that the
    /// kernel accepts, moving the ports that candidate moves; a candidate
    /// that fails half-way is undone whole before the next is tried.
    /// Returns the mode, for `--mode auto` why that one, and the ports
    /// moved.
    async fn attach_first(
        &self,
        port: links::Placement<'_>,
        choice: ModeChoice,
        candidates: &Candidates,
        ports: &mut Ports,
        undo: &mut Undo,
    ) -> Result<(Mode, Option<String>, Vec<Moved>)> {
        let links::Placement { role, vid, link } = port;
        let mut failures = Vec::new();
        for candidate in &candidates.list {
            let mut trial = Undo::new(self.pins());
            let alone = candidates.list.len() == 1;
            if let Err(refused) = links::attach_new(
                self.pins(),
                role,
                vid,
                candidate.mode,
                link,
                alone,
                &mut trial,
            )? {
                failures.push(refused);
                continue;
            }
            let mut moved = Vec::new();
            for &other in &candidate.moves {
                match self
                    .move_port(other, candidate.mode, ports, &mut trial)
                    .await
                {
                    Ok(m) => moved.push(m),
                    Err(e) => {
                        failures.push(e);
                        break;
                    }
                }
            }
            if moved.len() < candidate.moves.len() {
                // Dropped: this candidate's steps are undone.
                continue;
            }
            undo.absorb(trial);
            let reason = (choice == ModeChoice::Auto)
                .then(|| links::auto_reason(candidate.mode, &failures, &candidates.skipped));
            return Ok((candidate.mode, reason, moved));
        }
        Err(links::refused(role, link, choice, &failures))
    }

    /// Moves the registered port `ifindex` to `to` (a port `auto` placed,
    /// for a [`directions::regroup`]): record first, then the program; both
    /// undone with `undo`.
    async fn move_port(
        &self,
        ifindex: u32,
        to: Mode,
        ports: &mut Ports,
        undo: &mut Undo,
    ) -> Result<Moved> {
        let gone = |name: &str, why: &str| Error::Refused {
            iface: name.to_owned(),
            why: format!("cannot move it to {to} mode: {why}"),
        };
        let link = self
            .netdev()
            .by_index(ifindex)
            .await?
            .ok_or_else(|| gone(&format!("ifindex {ifindex}"), "the interface is gone"))?;
        let rec = ports
            .get(ifindex)?
            .ok_or_else(|| gone(&link.name, "it is no longer registered"))?;
        let Health::Attached(running) =
            health::of(ifindex, Some(&link), &self.pins().link(ifindex))?
        else {
            return Err(gone(
                &link.name,
                &format!(
                    "its program is not running (`{}` repairs it)",
                    self.command(&format!("attach {}", link.name))
                ),
            ));
        };
        let from = running_mode(&running, &link, &rec);
        undo.restore_record(ifindex, Some(rec));
        ports.insert(ifindex, rec.with_mode(to))?;
        let port = links::Placement {
            role: rec.role(),
            vid: (rec.role() == Role::Physical).then_some(rec.vid),
            link: &link,
        };
        links::change_mode(self.pins(), port, running, from, to, undo)?;
        debug!(iface = %link.name, %from, %to, "moved by --mode auto so that every direction works");
        Ok(Moved {
            iface: link.name,
            ifindex,
            from,
            to,
        })
    }

    async fn attach_fresh(&self, job: Job<'_>, stale: Option<PortRecord>) -> Result<Attached> {
        let Job {
            req,
            requested_vid,
            link,
            kind,
            ports,
            slots,
            stations,
            undo,
        } = job;
        let vid = self
            .vid_and_rules(req, requested_vid, stale, link, ports, slots)
            .await?;
        let candidates = self
            .candidates(req.role, req.mode, link, kind, &ports.all()?)
            .await?;
        if let Some(rec) = stale {
            info!(iface = %link.name, role = %rec.role(), "registered but not running; attaching again");
            attachment::release(&self.pins().link(link.index), link.index)?;
            slots.give_up(rec.role(), rec.vid, link.index, undo)?;
        }
        // Promiscuous mode we turned on before is still ours to turn off.
        let mut flags = match stale {
            Some(rec) if link.promisc => rec.flags & FLAG_SET_PROMISC,
            _ => 0,
        };
        if req.mode == ModeChoice::Auto {
            flags |= FLAG_AUTO_MODE;
        }
        if kind == PortKind::Wifi {
            flags |= FLAG_STATION;
        }
        // The station's slot first: the physical program is loaded for it.
        if let Some(vid) = vid {
            station_slot(stations, link, kind, vid, undo)?;
        }
        let mut record = PortRecord::new(
            req.role,
            candidates.list[0].mode,
            vid.unwrap_or(0),
            flags,
            self.netns(),
        );
        undo.restore_record(link.index, stale);
        ports.insert(link.index, record)?;

        let port = links::Placement {
            role: req.role,
            vid,
            link,
        };
        let (mode, mode_reason, moved) = self
            .attach_first(port, req.mode, &candidates, ports, undo)
            .await?;
        record = record.with_mode(mode);
        ports.insert(link.index, record)?;
        slots.take(req.role, vid.unwrap_or(0), link.index, undo)?;
        self.bring_up(link, record, ports).await?;
        for m in &moved {
            // A move into an XDP mode may need more tag features off.
            if let (Some(l), Some(mut rec)) = (
                self.netdev().by_index(m.ifindex).await?,
                ports.get(m.ifindex)?,
            ) {
                tag_features_off(&l, &mut rec, ports)?;
            }
        }
        debug!(iface = %link.name, role = %req.role, %mode, ?vid, "attached");
        let mut done = Attached::from_record(&link.name, link.index, &record);
        done.mode_reason = mode_reason;
        done.moved = moved;
        let all = ports.all()?;
        // Asked again: the port now runs its program.
        let targets = RedirectTargets::ask(all.iter().map(|(i, _)| *i));
        done.caveat = caveat(mode, link, &all, &targets);
        Ok(done)
    }

    /// Link up and promiscuous mode, the last steps: nothing after them can
    /// fail. Both roles: a NIC's traffic is addressed to the VMs behind the
    /// router (and often tagged), which its MAC and VLAN receive filters drop
    /// before XDP runs; the router's carries every NIC's MACs.
    async fn bring_up(
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

    /// An attached port attached again: puts right what is missing, where
    /// the fix is unambiguous (an empty slot, link down, promisc off).
    async fn repair(
        &self,
        link: &Interface,
        rec: &PortRecord,
        ports: &mut Ports,
        slots: &Slots,
        stations: &mut StationMaps,
    ) -> Result<Vec<String>> {
        let mut repaired = Vec::new();
        // A station whose slot is empty or holds another MAC (changed
        // while nobody watched): the translation must write the current one.
        if rec.is_station()
            && let Some(mac) = link.mac
            && stations.slot(rec.vid)?.station_mac() != Some(mac)
        {
            stations.set_station(rec.vid, mac)?;
            repaired.push(format!(
                "station MAC {} (the table flushed)",
                crate::station::mac_string(&mac)
            ));
        }
        // A slot another port holds (a duplicate VID from an older version,
        // or router_iface pointed elsewhere by hand) is left: `status` warns.
        if slots.refill(rec.role(), rec.vid, link.index)? {
            repaired.push(match rec.role() {
                Role::Physical => format!("VID {} slot", rec.vid),
                Role::Router => "router_iface".to_owned(),
            });
        }
        repaired.extend(self.bring_up(link, *rec, ports).await?);
        log_repairs(&repaired, link);
        Ok(repaired)
    }

    /// `--replace` of an attached port: same mode, the program is swapped on
    /// its link; another mode, the old link makes way and comes back if the
    /// new one fails. Slots and record follow; all undone on failure.
    async fn replace(&self, job: Job<'_>, rec: PortRecord, running: LinkInfo) -> Result<Attached> {
        let Job {
            req,
            requested_vid,
            link,
            kind,
            ports,
            slots,
            stations,
            undo,
        } = job;
        let vid = self
            .vid_and_rules(req, requested_vid, Some(rec), link, ports, slots)
            .await?;
        let running_mode = running_mode(&running, link, &rec);
        let mode = req.mode.fixed().unwrap_or(running_mode);
        // A port becoming a station: tc, whatever it ran.
        let mode = if kind == PortKind::Wifi && req.mode == ModeChoice::Auto {
            Mode::Tc
        } else {
            mode
        };
        self.candidates(req.role, ModeChoice::from(mode), link, kind, &ports.all()?)
            .await?;
        info!(iface = %link.name, from = %rec.role(), to = %req.role, %mode, "replacing");
        // `--replace --mode auto` keeps the mode and leaves it to auto.
        let flags = match req.mode {
            ModeChoice::Auto => rec.flags | FLAG_AUTO_MODE,
            _ => rec.flags & !FLAG_AUTO_MODE,
        };
        let flags = match kind {
            PortKind::Wifi => flags | FLAG_STATION,
            PortKind::Ethernet => flags & !FLAG_STATION,
        };
        // The station's slot before the program that reads it; the old
        // VID's slot, a station's, is given up.
        if rec.is_station() && (rec.vid, req.role) != (vid.unwrap_or(0), Role::Physical) {
            let before = stations.slot(rec.vid)?;
            stations.clear(rec.vid)?;
            undo.restore_station(rec.vid, before);
        }
        if let Some(vid) = vid {
            station_slot(stations, link, kind, vid, undo)?;
        }
        let record = PortRecord::new(req.role, mode, vid.unwrap_or(0), flags, self.netns());
        undo.restore_record(link.index, Some(rec));
        ports.insert(link.index, record)?;
        if mode == running_mode {
            links::swap(self.pins(), req.role, vid, mode, link, running, undo)?;
        } else {
            let port = links::Placement {
                role: req.role,
                vid,
                link,
            };
            links::change_mode(self.pins(), port, running, running_mode, mode, undo)?;
        }
        if (rec.role(), rec.vid) != (req.role, vid.unwrap_or(0)) {
            slots.give_up(rec.role(), rec.vid, link.index, undo)?;
        }
        slots.take(req.role, vid.unwrap_or(0), link.index, undo)?;
        // An attach killed before its last steps, replaced: finish them.
        let repaired = self.bring_up(link, record, ports).await?;
        log_repairs(&repaired, link);
        let mut done = Attached::from_record(&link.name, link.index, &record);
        done.repaired = repaired;
        let all = ports.all()?;
        // Asked again: the port now runs its program.
        let targets = RedirectTargets::ask(all.iter().map(|(i, _)| *i));
        done.caveat = caveat(mode, link, &all, &targets);
        Ok(done)
    }

    /// The VID the port will have (physical: the requested one, else the one
    /// it had as `before`, else the default), once the router rules allow
    /// the role.
    async fn vid_and_rules(
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
}

/// The mode the port's program runs in, as the kernel says (`running`:
/// its link; `link`: the interface): a command killed in a mode change
/// leaves a record of the new mode on the old link.
fn running_mode(running: &LinkInfo, link: &Interface, rec: &PortRecord) -> Mode {
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
fn tag_features_off(
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
fn station_slot(
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

fn log_repairs(repaired: &[String], link: &Interface) {
    if !repaired.is_empty() {
        info!(iface = %link.name, ?repaired, "repaired");
    }
}

/// `Some` when `iface` already is what `req` asks for; an error when it is
/// attached differently and `--replace` was not given.
fn already_attached(
    req: &AttachRequest,
    requested_vid: Option<u16>,
    link: &Interface,
    kind: PortKind,
    rec: &PortRecord,
) -> Result<Attached> {
    if rec.role() != req.role {
        return Err(Error::RoleConflict {
            iface: link.name.clone(),
            current: rec.role(),
        });
    }
    if let Some(vid) = requested_vid
        && req.role == Role::Physical
        && vid != rec.vid
    {
        return Err(Error::VidConflict {
            iface: link.name.clone(),
            current: rec.vid,
        });
    }
    let was = Attached::from_record(&link.name, link.index, rec).kind;
    if req.role == Role::Physical && was != kind {
        return Err(Error::Refused {
            iface: link.name.clone(),
            why: format!(
                "it is attached as a port of kind {was}, and is of kind {kind} now; add \
                 --replace to attach it as such"
            ),
        });
    }
    if !req.mode.accepts(rec.mode()) {
        return Err(Error::Refused {
            iface: link.name.clone(),
            why: format!(
                "it is attached in {} mode; add --replace to change the mode",
                rec.mode()
            ),
        });
    }
    let mut done = Attached::from_record(&link.name, link.index, rec);
    done.unchanged = true;
    Ok(done)
}
