//! Which VID a physical port gets: one port per VID in a pin dir.

use std::collections::BTreeMap;

use xdp_forwarder_common::Vid;

use crate::{Error, Result, Role, forwarder::Forwarder, ports::PortRecord};

impl Forwarder {
    /// `requested` if free; else the port's current VID (`keep`) if it has
    /// one; else its ifindex when free and in range; else the lowest free VID.
    pub(crate) async fn choose_vid(
        &self,
        requested: Option<u16>,
        keep: Option<u16>,
        ifindex: u32,
        ports: &[(u32, PortRecord)],
    ) -> Result<u16> {
        let used: BTreeMap<u16, u32> = ports
            .iter()
            .filter(|(i, r)| r.role() == Role::Physical && *i != ifindex)
            .map(|(i, r)| (r.vid, *i))
            .collect();
        if let Some(vid) = requested {
            return match used.get(&vid) {
                Some(owner) => Err(Error::VidInUse {
                    vid,
                    owner: self.name_of(*owner).await,
                }),
                None => Ok(vid),
            };
        }
        let by_ifindex = Vid::new(ifindex).map(Vid::get);
        if let Some(vid) = keep
            .into_iter()
            .chain(by_ifindex)
            .find(|v| !used.contains_key(v))
        {
            return Ok(vid);
        }
        (Vid::MIN..=Vid::MAX)
            .find(|v| !used.contains_key(v))
            .ok_or(Error::NoFreeVid)
    }
}
