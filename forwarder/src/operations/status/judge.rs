//! What `status` warns about: each warning a small function of facts the
//! caller read from the kernel, with what repairs it.

use std::path::Path;

use crate::{Mode, kernel::ethtool};

/// A port attached from another network namespace than `status` runs in:
/// `name` is what `ip netns` calls it, when it has a name there; `live`:
/// its pinned link is still attached to an interface (false: the
/// interface, and most likely the namespace, is gone).
pub fn other_netns(cookie: u64, name: Option<&str>, pin_dir: &str, live: bool) -> String {
    if !live {
        let named = name.map_or_else(String::new, |n| format!(", {n:?}"));
        return format!(
            "attached in another network namespace (cookie {cookie}{named}) that runs it no \
             more: its link is detached, its interface gone{} — nothing of ours runs there; \
             `xdp-forwarder --pin-dir {pin_dir} detach --gone` forgets it (so does any \
             attach from here)",
            if name.is_none() {
                ", and no namespace `ip netns` names has that cookie: the namespace was \
                 deleted"
            } else {
                ""
            }
        );
    }
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

/// A port whose interface is administratively down (attach sets it up;
/// the daemon leaves a port taken down by hand down).
pub fn link_down(up: bool, iface: &str) -> Option<String> {
    let iface = iface.escape_debug();
    (!up).then(|| {
        format!(
            "link is down (administratively: `ip link set {iface} down`): no frame passes; \
             the daemon leaves it down; `ip link set {iface} up` (or `attach` again) sets it up"
        )
    })
}

/// A port that is up but has no carrier (IFLA_CARRIER: no cable, the peer
/// of a veth down, a NIC without link): `ip link` says NO-CARRIER.
pub fn no_carrier(up: bool, carrier: bool, iface: &str) -> Option<String> {
    let iface = iface.escape_debug();
    (up && !carrier).then(|| {
        format!(
            "no carrier (`ip link show {iface}` says NO-CARRIER: no cable or link partner, or \
             a veth whose peer is down): no frame passes until the carrier returns"
        )
    })
}

/// NICs attached while no router is: every frame they receive is dropped
/// (`no_router`). `nics`: how many NICs are attached.
pub fn no_router(nics: usize, router_iface_set: bool) -> Option<String> {
    (nics > 0 && !router_iface_set).then(|| {
        format!(
            "no router: router_iface is empty, so the {nics} NIC(s) attached drop every frame \
             they receive (counted as no_router); attach the router \
             (`attach IFACE --role router`), or plug in an interface with the router MAC \
             prefix while the daemon runs"
        )
    })
}

/// The router port `iface`, whose MAC `mac` no longer starts with the
/// router prefix, while `standby` interfaces do: the daemon hands the role
/// over to the first of them.
pub fn router_off_prefix(iface: &str, mac: [u8; 6], standby: &[String]) -> Option<String> {
    let iface = iface.escape_debug();
    (!standby.is_empty()).then(|| {
        format!(
            "router MAC {} no longer has the router MAC prefix, which {} has: the daemon hands \
             the router role over to it; by hand: `detach {iface}`, then `attach {} --role \
             router`",
            mac.map(|b| format!("{b:02x}")).join(":"),
            standby[0].escape_debug(),
            standby[0].escape_debug()
        )
    })
}

/// Our program running on `iface` (`what`: "XDP program id N …") held by
/// a link or filter that no pin dir mounted here holds: this pin dir was
/// mounted over (a second bpffs on it), lazily unmounted, or the program
/// was attached through a pin dir in another mount namespace.
pub fn unheld_program(iface: &str, what: &str, pin_dir: &str) -> String {
    let iface = iface.escape_debug();
    format!(
        "{iface} runs {what} of ours that this pin dir does not hold, nor any pin dir mounted \
         here: was another bpffs mounted over {pin_dir} (`grep {pin_dir} /proc/self/mountinfo` \
         lists two), or was it unmounted (`umount -l`)? Unmount the one on top (`umount \
         {pin_dir}`) to see the ports again; otherwise `xdp-forwarder detach` cannot reach it: \
         remove it with the command `attach {iface}` gives"
    )
}

/// Whether a port can forward at all: its program runs, its link is up
/// with a carrier, and a NIC has a router to send to.
pub fn can_forward(attached: bool, up: bool, carrier: bool, has_router: bool) -> bool {
    attached && up && carrier && has_router
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

/// A Wi-Fi station whose slot in `fwd_stations` is empty (`written`
/// `None`) or holds another MAC than the station has now (`link`): what
/// leaves is translated to a MAC the AP no longer knows.
pub fn station_mac(
    written: Option<&str>,
    link: Option<&crate::kernel::netdev::Interface>,
) -> Option<String> {
    let link = link?;
    let now = crate::state::station::mac_string(&link.mac?);
    match written {
        Some(w) if w == now => None,
        Some(w) => Some(format!(
            "the translation writes {w}, but {}'s MAC is {now} now: the daemon follows it \
             within a second; `attach {}` puts it right (and flushes the table)",
            link.name, link.name
        )),
        None => Some(format!(
            "its slot in fwd_stations is empty: what the router sends into {} is dropped \
             (untranslatable); `attach {}` puts it back",
            link.name, link.name
        )),
    }
}

/// A Wi-Fi station registered while the stations' maps are not pinned.
pub fn station_maps_missing(state_dir: std::path::PathBuf) -> String {
    format!(
        "the Wi-Fi stations' maps (fwd_stations, fwd_station_nat, fwd_station_counts) are not \
         pinned in {}: `attach IFACE --replace` on the station pins them again",
        state_dir.display()
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
        assert_eq!(link_down(true, "n1"), None);
        assert!(
            link_down(false, "n1")
                .unwrap()
                .contains("`ip link set n1 up` (or `attach` again) sets it up")
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
            other_netns(7, Some("net-vm"), "/p", true)
                .contains("nsenter --net=/run/netns/net-vm xdp-forwarder --pin-dir /p status")
        );
        assert!(other_netns(7, None, "/p", true).contains("not one `ip netns` names"));
        let gone = other_netns(7, None, "/p", false);
        assert!(gone.contains("the namespace was deleted"), "{gone}");
        assert!(gone.contains("--pin-dir /p detach --gone"), "{gone}");
        assert!(!gone.contains("seen only from there"), "{gone}");
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

    #[test]
    fn a_port_that_cannot_forward_is_a_warning_with_its_fix() {
        assert_eq!(no_carrier(true, true, "n1"), None);
        // Down is said once, by link_down.
        assert_eq!(no_carrier(false, false, "n1"), None);
        assert!(
            no_carrier(true, false, "n1")
                .unwrap()
                .contains("NO-CARRIER")
        );
        assert_eq!(no_router(0, false), None);
        assert_eq!(no_router(2, true), None);
        let w = no_router(2, false).unwrap();
        assert!(w.contains("2 NIC(s)") && w.contains("--role router"), "{w}");
        let mac = [0x52, 0x54, 0, 0, 0, 1];
        assert_eq!(router_off_prefix("r0", mac, &[]), None);
        let w = router_off_prefix("r0", mac, &["r1".into()]).unwrap();
        assert!(
            w.contains("52:54:00:00:00:01") && w.contains("attach r1 --role router"),
            "{w}"
        );
        let w = unheld_program("n1", "XDP program id 9", "/sys/fs/bpf");
        assert!(
            w.contains("mounted over /sys/fs/bpf") && w.contains("umount /sys/fs/bpf"),
            "{w}"
        );
        assert!(can_forward(true, true, true, true));
        for (a, u, c, r) in [
            (false, true, true, true),
            (true, false, true, true),
            (true, true, false, true),
            (true, true, true, false),
        ] {
            assert!(!can_forward(a, u, c, r));
        }
    }
}
