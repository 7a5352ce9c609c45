//! Which VID a physical port gets: one port per VID in a pin dir.

use std::collections::BTreeMap;

use xdp_forwarder_common::Vid;

use crate::{
    Error, Result, Role,
    state::{forwarder::Forwarder, ports::PortRecord},
};

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
        match choose(requested, keep, ifindex, &used) {
            Ok(vid) => Ok(vid),
            Err(Refusal::InUse { vid, owner }) => Err(Error::VidInUse {
                vid,
                owner: self.name_of(owner).await,
            }),
            Err(Refusal::NoneFree) => Err(Error::NoFreeVid),
        }
    }
}

/// Why no VID could be given.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// The requested VID belongs to the port at ifindex `owner`.
    InUse {
        vid: u16,
        owner: u32,
    },
    NoneFree,
}

/// The VID rule over `used` (VID → the ifindex that has it, the port
/// itself left out).
fn choose(
    requested: Option<u16>,
    keep: Option<u16>,
    ifindex: u32,
    used: &BTreeMap<u16, u32>,
) -> std::result::Result<u16, Refusal> {
    if let Some(vid) = requested {
        return match used.get(&vid) {
            Some(&owner) => Err(Refusal::InUse { vid, owner }),
            None => Ok(vid),
        };
    }
    let by_ifindex = Vid::new(ifindex).map(Vid::get);
    keep.into_iter()
        .chain(by_ifindex)
        .chain(Vid::MIN..=Vid::MAX)
        .find(|v| !used.contains_key(v))
        .ok_or(Refusal::NoneFree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(pairs: &[(u16, u32)]) -> BTreeMap<u16, u32> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_requested_vid_is_given_unless_another_port_has_it() {
        assert_eq!(choose(Some(7), None, 3, &used(&[])), Ok(7));
        assert_eq!(
            choose(Some(7), None, 3, &used(&[(7, 9)])),
            Err(Refusal::InUse { vid: 7, owner: 9 })
        );
    }

    #[test]
    fn otherwise_the_port_keeps_its_vid_then_gets_its_ifindex_then_the_lowest_free() {
        assert_eq!(choose(None, Some(12), 3, &used(&[])), Ok(12));
        assert_eq!(choose(None, Some(12), 3, &used(&[(12, 9)])), Ok(3));
        assert_eq!(choose(None, None, 3, &used(&[])), Ok(3));
        assert_eq!(choose(None, None, 3, &used(&[(3, 9), (1, 8)])), Ok(2));
        // An ifindex beyond the VID range: the lowest free VID.
        assert_eq!(choose(None, None, 5000, &used(&[(1, 8)])), Ok(2));
    }

    #[test]
    fn no_vid_is_given_when_all_are_used() {
        let all: BTreeMap<u16, u32> = (Vid::MIN..=Vid::MAX).map(|v| (v, 1)).collect();
        assert_eq!(choose(None, None, 3, &all), Err(Refusal::NoneFree));
    }
}
