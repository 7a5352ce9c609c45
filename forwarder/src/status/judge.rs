//! What `status` warns about: each warning a small function of facts the
//! caller read from the kernel, with what repairs it.

use std::path::Path;

use crate::{Mode, ethtool};

/// A port attached from another network namespace than `status` runs in:
/// `name` is what `ip netns` calls it, when it has a name there.
pub fn other_netns(cookie: u64, name: Option<&str>, pin_dir: &str) -> String {
    match name {
        Some(name) => format!(
            "attached in another network namespace, {name:?} (ip netns; cookie {cookie}): \
             its interface, link and counters are seen from there \
             (`nsenter --net=/run/netns/{name} xdp-forwarder --pin-dir {pin_dir} status`)"
        ),
        None => format!(
            "attached in another network namespace (cookie {cookie}; not one `ip netns` names): \
             its interface, link and counters are seen only from there"
        ),
    }
}

/// A port whose interface is down (attach sets it up).
pub fn link_down(up: bool) -> Option<String> {
    (!up).then(|| "link is down: no frame passes; `attach` again sets it up".to_owned())
}

/// A port whose interface is not promiscuous (attach turns it on).
pub fn promisc_off(promisc: bool) -> Option<String> {
    (!promisc).then(|| {
        "promiscuous mode is off: the NIC's MAC and VLAN filters drop frames for the VMs \
         behind the router before the program sees them; `attach` again turns it on"
            .to_owned()
    })
}

/// `router_iface` points at `name` (ifindex `ifindex`), which runs no
/// router program: neither a router port of ours nor the router object
/// loaded by another loader (`runs_router`).
pub fn router_iface_without_router(
    ifindex: u32,
    name: Option<&str>,
    runs_router: bool,
) -> Option<String> {
    (!runs_router).then(|| {
        let what = name.map_or_else(
            || format!("ifindex {ifindex}, which no interface has any more"),
            |n| {
                format!(
                    "{} (ifindex {ifindex}), which runs no router program",
                    n.escape_debug()
                )
            },
        );
        format!(
            "router_iface points at {what}: the NICs' frames go there, and nothing sends the \
             router's frames back to the NICs; `attach IFACE --role router` attaches the \
             router, `detach IFACE` (or `set-router-iface --clear`) empties router_iface"
        )
    })
}

/// Router-prefix interfaces that are not ports while `active` is the
/// router: the daemon keeps them aside (standby), and takes the first one
/// when the active router goes.
pub fn standby_routers(active: &str, standby: &[String]) -> Option<String> {
    (!standby.is_empty()).then(|| {
        format!(
            "standby router interface(s): {} (router MAC prefix, not attached): the daemon \
             keeps them aside while {} is the router (`run --router-policy latest` moves the \
             role to the newest)",
            standby
                .iter()
                .map(|n| n.escape_debug().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            active.escape_debug()
        )
    })
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
    fn a_port_down_or_not_promiscuous_is_named_with_its_fix() {
        assert_eq!(link_down(true), None);
        assert!(
            link_down(false)
                .unwrap()
                .contains("`attach` again sets it up")
        );
        assert_eq!(promisc_off(true), None);
        assert!(
            promisc_off(false)
                .unwrap()
                .contains("`attach` again turns it on")
        );
    }

    #[test]
    fn router_iface_must_lead_to_a_router_program() {
        assert_eq!(router_iface_without_router(5, Some("eth1"), true), None);
        assert!(
            router_iface_without_router(5, Some("eth1"), false)
                .unwrap()
                .contains("eth1 (ifindex 5), which runs no router program")
        );
        assert!(
            router_iface_without_router(5, None, false)
                .unwrap()
                .contains("no interface has any more")
        );
    }

    #[test]
    fn standby_routers_and_other_namespaces_are_said_in_words() {
        assert_eq!(standby_routers("r0", &[]), None);
        assert!(
            standby_routers("r0", &["r1".into()])
                .unwrap()
                .contains("r1 (router MAC prefix, not attached)")
        );
        assert!(
            other_netns(7, Some("net-vm"), "/p")
                .contains("nsenter --net=/run/netns/net-vm xdp-forwarder --pin-dir /p status")
        );
        assert!(other_netns(7, None, "/p").contains("not one `ip netns` names"));
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
