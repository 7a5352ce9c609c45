//! `--replace`: the program swapped on the port's link (same mode) or the
//! port moved to another mode, slots and record following.

use tracing::info;

use super::{
    Attached, Job,
    steps::{caveat, log_repairs, running_mode, station_slot},
};
use crate::{
    Mode, ModeChoice, Result, Role,
    kernel::sys::LinkInfo,
    operations::links,
    policy::directions::RedirectTargets,
    state::{
        forwarder::Forwarder,
        ports::{FLAG_AUTO_MODE, FLAG_STATION, PortRecord},
        station::PortKind,
    },
};

impl Forwarder {
    /// `--replace` of an attached port: same mode, the program is swapped on
    /// its link; another mode, the old link makes way and comes back if the
    /// new one fails. Slots and record follow; all undone on failure.
    pub(super) async fn replace(
        &self,
        job: Job<'_>,
        rec: PortRecord,
        running: LinkInfo,
    ) -> Result<Attached> {
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
            slots.give_up(&rec, link.index, undo)?;
        }
        slots.take(&record, link.index, undo)?;
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
}
