//! A fresh attach: a new port, or one registered whose program is not
//! running. Record first, then the program in the first mode the kernel
//! takes, the slots, link up and promiscuous mode.

use tracing::{debug, info};

use super::{
    Attached, Job,
    steps::{caveat, station_slot, tag_features_off},
};
use crate::{
    ModeChoice, Result,
    operations::links,
    policy::directions::RedirectTargets,
    state::{
        attachment,
        forwarder::Forwarder,
        ports::{FLAG_AUTO_MODE, FLAG_SET_PROMISC, FLAG_STATION, PortRecord},
        station::PortKind,
    },
};

impl Forwarder {
    pub(super) async fn attach_fresh(
        &self,
        job: Job<'_>,
        stale: Option<PortRecord>,
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
            .vid_and_rules(req, requested_vid, stale, link, ports, slots)
            .await?;
        let candidates = self
            .candidates(req.role, req.mode, link, kind, &ports.all()?)
            .await?;
        if let Some(rec) = stale {
            info!(iface = %link.name, role = %rec.role(), "registered but not running; attaching again");
            attachment::release(&self.pins().link(link.index), link.index)?;
            slots.give_up(&rec, link.index, undo)?;
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
        slots.take(&record, link.index, undo)?;
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
}
