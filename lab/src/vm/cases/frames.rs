//! Raw frames of every kind through each NIC and back, with the tags a NIC
//! or the outside puts on them, each accounted for in the counters; and a
//! tag-stripping feature switched on again behind the forwarder's back.

use super::*;

/// Raw frames into each NIC (to its own MAC, to a VM's MAC behind the
/// router, broadcast, already tagged) must reach the router NIC with one
/// more tag carrying the NIC's VID; tagged frames into the router NIC must
/// leave by that NIC without it (an inner tag kept), and nowhere else.
/// Then the counters must account for exactly those frames.
pub fn frames(lab: &mut NetVmLab, vids: &[u16], label: &str) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let before = frames_seen(&lab.status()?);
    let router = lab.router_socket()?;
    let outside: Vec<RawSocket> = lab.outside_sockets()?;
    let (mut into_nics, mut into_router) = (Vec::new(), 0u64);
    for (i, net) in lab.networks.iter().enumerate() {
        let vid = vids[i];
        let ext_mac = tap_mac(&net.ns, &net.tap)?;
        let nic_mac = parse_mac(&net.mac)?;
        let test_type = ETHERTYPE_TEST.to_be_bytes();
        let kinds: [(&str, [u8; 6], bool); 4] = [
            ("to the NIC's own MAC", nic_mac, false),
            ("to another MAC (a VM behind the router)", VM_MAC, false),
            ("broadcast", [0xff; 6], false),
            ("already tagged (VID 100)", VM_MAC, true),
        ];
        let mut sent = Vec::new();
        for (kind, (_, dst, inner)) in kinds.iter().enumerate() {
            for n in 0..PINGS as usize {
                // Payload byte 0 tells the frames apart.
                let mut rest = test_type.to_vec();
                rest.push((kind * 16 + n) as u8);
                let f = frame(*dst, ext_mac, &rest, 60 + 100 * n);
                let f = if *inner {
                    tagged(&f, 0x8100, INNER_VID)
                } else {
                    f
                };
                outside[i].send(&f)?;
                sent.push((kind, tagged(&f, 0x8100, vid)));
            }
        }
        into_nics.push((net.guest_if.clone(), sent.len() as u64));
        let got = router.drain_test_frames(ARRIVAL);
        for (kind, (name, _, _)) in kinds.iter().enumerate() {
            let want: Vec<&Vec<u8>> = sent
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, f)| f)
                .collect();
            let arrived = want.iter().filter(|f| got.contains(f)).count();
            let mut detail = format!("{arrived}/{} arrived tagged VID {vid}", want.len());
            // What came instead, by the frames' markers: e.g. a tag lost.
            let instead: Vec<String> = got
                .iter()
                .filter(|f| !want.contains(f))
                .filter_map(|f| tags_and_marker(f))
                .filter(|(_, marker)| usize::from(*marker) / 16 == kind)
                .map(|(vids, _)| format!("{vids:?}"))
                .collect();
            if !instead.is_empty() {
                detail.push_str(&format!(
                    "; {} arrived with other tags (VIDs, outer first): {}",
                    instead.len(),
                    instead.join(" ")
                ));
            }
            checks.push(check(
                format!("{label}: net {} → router, {name}", net.k),
                arrived == want.len(),
                detail,
            ));
        }
        // And back: untagged, then with an inner tag kept.
        let mut back = Vec::new();
        for n in 0..PINGS as usize {
            let mut rest = test_type.to_vec();
            rest.push(0x80 + n as u8);
            let f = frame(ext_mac, VM_MAC, &rest, 60 + 100 * n);
            back.push((false, f.clone()));
            back.push((true, tagged(&f, 0x8100, INNER_VID)));
        }
        for (_, f) in &back {
            router.send(&tagged(f, 0x8100, vid))?;
        }
        into_router += back.len() as u64;
        let got: Vec<Vec<Vec<u8>>> = outside
            .iter()
            .map(|s| s.drain_test_frames(ARRIVAL))
            .collect();
        for (inner, name) in [(false, "untagged"), (true, "inner tag kept")] {
            let want: Vec<&Vec<u8>> = back
                .iter()
                .filter(|(t, _)| *t == inner)
                .map(|(_, f)| f)
                .collect();
            let arrived = want.iter().filter(|f| got[i].contains(f)).count();
            checks.push(check(
                format!("{label}: router → net {}, {name}", net.k),
                arrived == want.len(),
                format!("{arrived}/{} arrived, outer tag removed", want.len()),
            ));
        }
        let stray: usize = got
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, g)| g.len())
            .sum();
        checks.push(check(
            format!("{label}: router → net {}, isolation", net.k),
            stray == 0,
            format!("{stray} frames reached another network"),
        ));
    }
    let after = frames_seen(&lab.status()?);
    let mut wrong = Vec::new();
    for (name, n) in into_nics
        .iter()
        .chain([(lab.router_if.clone(), into_router)].iter())
    {
        let d = delta(&before, &after, name);
        if d != *n {
            wrong.push(format!("{name}: {d} counted, {n} sent"));
        }
    }
    checks.push(no_problems(
        format!("{label}: counters"),
        &wrong,
        "every frame counted once, on the port it entered",
    ));
    Ok(checks)
}

/// The VIDs of a test frame's 802.1Q/802.1ad tags, outer first, and its
/// marker (the byte after [`ETHERTYPE_TEST`]).
pub(super) fn tags_and_marker(f: &[u8]) -> Option<(Vec<u16>, u8)> {
    let mut at = 12;
    let mut vids = Vec::new();
    while matches!(f.get(at..at + 2), Some([0x81, 0x00] | [0x88, 0xa8])) {
        vids.push(u16::from_be_bytes([*f.get(at + 2)?, *f.get(at + 3)?]) & 0x0fff);
        at += 4;
    }
    (f.get(at..at + 2)? == ETHERTYPE_TEST.to_be_bytes()).then_some((vids, *f.get(at + 2)?))
}

/// The MAC of `tap` in `ns`.
pub(super) fn tap_mac(ns: &crate::netns::Netns, tap: &str) -> anyhow::Result<[u8; 6]> {
    let out = ns.exec("cat", &[&format!("/sys/class/net/{tap}/address")])?;
    parse_mac(out.trim())
}

/// The control of what attach does for XDP on a NIC that strips tags:
/// switched on again behind the forwarder's back, `rx-vlan-hw-parse` makes
/// an outside tag vanish before the program runs (the frame reaches the
/// router with our tag alone), `status` warns about it, and `attach` again
/// switches it off.
pub(super) fn stripping_on_again(
    lab: &mut NetVmLab,
    vids: &[u16],
    mode: &str,
    label: &str,
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let router = lab.router_socket()?;
    let strippers: Vec<(usize, String, String)> = lab
        .networks
        .iter()
        .enumerate()
        .filter(|(_, n)| n.model.strips_tags())
        .map(|(i, n)| (i, n.guest_if.clone(), n.tap.clone()))
        .collect();
    for (i, guest_if, tap) in strippers {
        let vid = vids[i];
        lab.net_vm.sh(&format!(
            "xdp-forwarder-lab guest set-feature {guest_if} rx-vlan-hw-parse on"
        ))?;
        let warned = port_warnings(&lab.status()?, &guest_if)
            .iter()
            .any(|w| w.starts_with("rx-vlan-hw-parse is on"));
        checks.push(check(
            format!("{label}: {guest_if}: status warns when rx-vlan-hw-parse is on again"),
            warned,
            port_warnings(&lab.status()?, &guest_if).join("; "),
        ));
        let net = &lab.networks[i];
        let outside = net.ns.within(|| RawSocket::bind(&tap))?;
        let ext_mac = tap_mac(&net.ns, &tap)?;
        let mut lost = Vec::new();
        for n in 0..PINGS as usize {
            let mut rest = ETHERTYPE_TEST.to_be_bytes().to_vec();
            rest.push(0x70 + n as u8);
            let f = frame(VM_MAC, ext_mac, &rest, 60 + 100 * n);
            outside.send(&tagged(&f, 0x8100, INNER_VID))?;
            lost.push(tagged(&f, 0x8100, vid));
        }
        let got = router.drain_test_frames(ARRIVAL);
        let n = lost.iter().filter(|f| got.contains(f)).count();
        checks.push(check(
            format!(
                "{label}: {guest_if}: with rx-vlan-hw-parse on again, {mode} loses the outside tag (the control)"
            ),
            n == lost.len(),
            format!("{n}/{} arrived with VID {vid} alone", lost.len()),
        ));
        lab.net_vm.sh(&format!(
            "xdp-forwarder attach {guest_if} --role physical --mode {mode} >/dev/null"
        ))?;
        let left = port_warnings(&lab.status()?, &guest_if);
        checks.push(check(
            format!("{label}: {guest_if}: attach again switches rx-vlan-hw-parse off"),
            !left.iter().any(|w| w.starts_with("rx-vlan-hw-parse")),
            if left.is_empty() {
                "no warning left".to_owned()
            } else {
                left.join("; ")
            },
        ));
    }
    Ok(checks)
}

/// The warnings `status --json` gives the port on `name`.
pub(super) fn port_warnings(status: &Value, name: &str) -> Vec<String> {
    status["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .flat_map(|p| p["warnings"].as_array().cloned().unwrap_or_default())
        .filter_map(|w| w.as_str().map(str::to_owned))
        .collect()
}
