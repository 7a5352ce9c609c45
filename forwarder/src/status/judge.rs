//! What `status` warns about: each warning a small function of facts the
//! caller read from the kernel, with what repairs it.

use std::path::Path;

use crate::{Mode, ethtool};

/// A port attached from another network namespace than `status` runs in.
pub fn other_netns(cookie: u64) -> String {
    format!(
        "attached from another network namespace (cookie {cookie}); its interface is not \
         visible here"
    )
}

/// A NIC with `vid` whose slot in `fwd_vlan_ports` holds `slot`, not the
/// NIC's `ifindex`.
pub fn vid_slot(vid: u16, slot: Option<u32>, ifindex: u32) -> Option<String> {
    (slot != Some(ifindex)).then(|| {
        format!(
            "VID {vid} does not lead here ({}): the router cannot send to this port; \
             `attach` again repairs it",
            slot.map_or("its slot is empty".to_owned(), |i| format!(
                "it leads to ifindex {i}"
            ))
        )
    })
}

/// A router port at `ifindex` that `router_iface` does not point at.
pub fn router_slot(router_iface: Option<u32>, ifindex: u32) -> Option<String> {
    (router_iface != Some(ifindex)).then(|| {
        format!(
            "router_iface does not point here ({}): the NICs' frames go {}; `attach` again \
             repairs an empty one",
            router_iface.map_or("it is empty".to_owned(), |i| format!(
                "it points at ifindex {i}"
            )),
            if router_iface.is_some() {
                "elsewhere"
            } else {
                "nowhere"
            }
        )
    })
}

/// A NIC whose `vid` other registered NICs (`twins`, by ifindex) share.
pub fn twin_vids(vid: u16, twins: &[u32]) -> Option<String> {
    (!twins.is_empty()).then(|| {
        let twins: Vec<String> = twins.iter().map(|i| format!("ifindex {i}")).collect();
        format!(
            "VID {vid} is also registered for {}: their frames are indistinguishable at the \
             router; `attach IFACE --role physical --vid N --replace` gives one of them another VID",
            twins.join(", ")
        )
    })
}

/// A NIC whose MTU exceeds the router interface's.
pub fn mtu(nic_mtu: Option<u32>, router_mtu: Option<u32>) -> Option<String> {
    match (nic_mtu, router_mtu) {
        (Some(nic), Some(router)) if router < nic => Some(format!(
            "router MTU {router} < this NIC's MTU {nic}: full-size frames will be dropped at \
             the router"
        )),
        _ => None,
    }
}

/// Our link pinned at `path` for `ifindex`, which no record names.
pub fn orphaned_link(path: &Path, ifindex: u32) -> String {
    format!(
        "orphaned link {} (pinned, not registered): `detach IFACE` on the interface with \
         ifindex {ifindex} removes it",
        path.display()
    )
}

/// The receive features that hide or filter tags and are on although the
/// port's mode needs them off (switched on again by hand, or fixed by the
/// driver), each with its fix.
pub fn tag_features(iface: &str, mode: Mode) -> Vec<String> {
    let Ok(features) = ethtool::Features::of(iface) else {
        return Vec::new();
    };
    mode.tag_features_off()
        .iter()
        .filter_map(|f| {
            let state = features.get(f.name()).filter(|s| s.active)?;
            // A VLAN filter the driver keeps on is off while the interface
            // is promiscuous (virtio-net, e1000e: ethtool still says on).
            if !state.changeable && f.is_filter() {
                return None;
            }
            Some(if state.changeable {
                format!(
                    "{} is on: tagged frames are stripped or filtered before the program \
                     sees them; `attach` again switches it off",
                    f.name()
                )
            } else {
                format!(
                    "{} is fixed on by the driver: tagged frames are stripped or filtered \
                     before the program sees them; --mode tc reads stripped tags",
                    f.name()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vid_slot_is_fine_only_when_it_leads_to_the_port() {
        assert_eq!(vid_slot(7, Some(3), 3), None);
        assert!(vid_slot(7, None, 3).unwrap().contains("its slot is empty"));
        assert!(
            vid_slot(7, Some(4), 3)
                .unwrap()
                .contains("leads to ifindex 4")
        );
    }

    #[test]
    fn router_iface_must_point_at_the_router_port() {
        assert_eq!(router_slot(Some(5), 5), None);
        assert!(router_slot(None, 5).unwrap().contains("go nowhere"));
        assert!(router_slot(Some(6), 5).unwrap().contains("go elsewhere"));
    }

    #[test]
    fn shared_vids_and_small_router_mtus_are_named() {
        assert_eq!(twin_vids(7, &[]), None);
        assert!(
            twin_vids(7, &[4, 9])
                .unwrap()
                .contains("ifindex 4, ifindex 9")
        );
        assert_eq!(mtu(Some(1500), Some(1500)), None);
        assert_eq!(mtu(Some(1500), None), None);
        assert!(
            mtu(Some(9000), Some(1500))
                .unwrap()
                .contains("MTU 1500 < this NIC's MTU 9000")
        );
    }
}
