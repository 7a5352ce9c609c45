//! The modes to try for a new port, in order, and `--mode auto`'s
//! regrouping: the ports it placed that move along so that every direction
//! works ([`directions::regroup`]); each candidate tried whole and undone
//! before the next.

use std::collections::BTreeMap;

use tracing::debug;

use super::{Moved, steps::running_mode};
use crate::{
    Error, Mode, ModeChoice, Result, Role,
    kernel::netdev::Interface,
    operations::links,
    policy::{
        directions::{self, RedirectTargets, dead_directions},
        health::{self, Health},
    },
    state::{
        forwarder::Forwarder,
        ports::{FLAG_AUTO_MODE, PortRecord, Ports},
        station::PortKind,
        undo::Undo,
    },
};

/// A mode to try for a new port, and the ports `auto` moves along.
pub(super) struct Candidate {
    pub(super) mode: Mode,
    pub(super) moves: Vec<u32>,
}

/// The modes to try, in order, and why `auto` skipped the others (a
/// direction dead that no move mends), for its reason line.
pub(super) struct Candidates {
    pub(super) list: Vec<Candidate>,
    pub(super) skipped: Vec<String>,
}

impl Forwarder {
    /// The modes of `choice` to try for `role` on `link`, in order: those
    /// in which both directions work next to the ports already attached
    /// (`all`), as far as the kernel tells ([`dead_directions`]); then, for
    /// `auto` only, those that work once the ports `auto` placed are moved
    /// along ([`directions::regroup`]). An explicit mode the kernel says
    /// leaves a direction dead is refused with the reason and the fix; one
    /// it cannot judge (before Linux 6.3) is taken, and `caveat` says what
    /// may break.
    pub(super) async fn candidates(
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
    pub(super) async fn attach_first(
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
}
