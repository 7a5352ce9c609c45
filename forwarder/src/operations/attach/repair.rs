//! An attached port attached again: the request checked against what it is
//! (role, VID, kind, mode), and what is missing put right.

use super::{AttachRequest, Attached, slots::Slots, steps::log_repairs};
use crate::{
    Error, Result, Role,
    kernel::netdev::Interface,
    state::{
        forwarder::Forwarder,
        ports::{PortRecord, Ports},
        station::{PortKind, StationMaps},
    },
};

impl Forwarder {
    /// An attached port attached again: puts right what is missing, where
    /// the fix is unambiguous (an empty slot, link down, promisc off).
    pub(super) async fn repair(
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
                crate::state::station::mac_string(&mac)
            ));
        }
        // A slot another port holds (a duplicate VID from an older version,
        // or router_iface pointed elsewhere by hand) is left: `status` warns.
        if slots.refill(rec, link.index)? {
            repaired.push(match rec.role() {
                Role::Physical => format!("VID {} slot", rec.vid),
                Role::Router => "router_iface".to_owned(),
            });
        }
        repaired.extend(self.bring_up(link, *rec, ports).await?);
        log_repairs(&repaired, link);
        Ok(repaired)
    }
}

/// `Some` when `iface` already is what `req` asks for; an error when it is
/// attached differently and `--replace` was not given.
pub(super) fn already_attached(
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
    let was = rec.kind();
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
