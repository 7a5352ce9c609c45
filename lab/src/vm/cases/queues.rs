//! Flows spread over a multi-queue NIC's queues and the router NIC's queue
//! pairs, every frame delivered and counted once.

use super::*;

/// Flows of [`FLOW_FRAMES`] IPv4 frames per direction (different source
/// MACs, addresses and ports, so that RSS and the tap's queue selection
/// spread them) into each NIC and back from the router NIC: each must
/// arrive exactly once where it belongs, the NICs must have received them
/// on more than one queue (their `rx_queue_N_packets` statistics: a
/// multi-queue NIC in the lab's networks, a multi-queue router NIC), and
/// the forwarder's counters must count each once.
pub fn flows_across_queues(
    lab: &mut NetVmLab,
    vids: &[u16],
    label: &str,
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let router = lab.router_socket()?;
    let outside: Vec<RawSocket> = lab.outside_sockets()?;
    // Frames for the router NIC enter the trunk bridge, as the router VM's
    // do, through a veth of their own: the router tap then picks a queue
    // by each flow's hash. (Sent on the tap itself by a packet socket, a
    // tagged frame's flow hash misses its addresses, and every frame takes
    // queue 0.)
    let (port, peer) = (format!("{}q", lab.prefix), format!("{}Q", lab.prefix));
    if lab.trunk.ip(&["link", "show", &port]).is_err() {
        lab.trunk
            .ip(&["link", "add", &port, "type", "veth", "peer", "name", &peer])?;
        lab.trunk
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        lab.trunk.ip(&["link", "set", &peer, "up"])?;
    }
    let bridged = lab
        .trunk
        .within(|| RawSocket::bind(&peer))
        .context("the trunk bridge's sending veth")?;
    let networks: Vec<(usize, String)> = lab
        .networks
        .iter()
        .map(|n| (n.k, n.guest_if.clone()))
        .collect();
    for (i, (k, guest_if)) in networks.into_iter().enumerate() {
        let vid = vids[i];
        let ifs = [guest_if.clone(), lab.router_if.clone()];
        // Into the NIC, out of the router NIC.
        let before = (queue_counts(lab, &ifs)?, frames_seen(&lab.status()?));
        let out: Vec<Vec<u8>> = (0..FLOW_FRAMES)
            .map(|n| flow_frame(VM_MAC, flow_mac(n), n, 0))
            .collect();
        send_paced(&outside[i], &out)?;
        let got = router.drain(ARRIVAL);
        let want: Vec<Vec<u8>> = out.iter().map(|f| tagged(f, 0x8100, vid)).collect();
        checks.push(exactly_once(
            format!("{label}: {FLOW_FRAMES} frames of {FLOWS} flows, net {k} → router"),
            &want,
            &got,
        ));
        // And back: into the router NIC, out of the NIC.
        let middle = (queue_counts(lab, &ifs)?, frames_seen(&lab.status()?));
        let back: Vec<Vec<u8>> = (0..FLOW_FRAMES)
            .map(|n| flow_frame(flow_mac(n), VM_MAC, n, 1))
            .collect();
        let tagged_back: Vec<Vec<u8>> = back.iter().map(|f| tagged(f, 0x8100, vid)).collect();
        send_paced(&bridged, &tagged_back)?;
        let got = outside[i].drain(ARRIVAL);
        checks.push(exactly_once(
            format!("{label}: {FLOW_FRAMES} frames of {FLOWS} flows, router → net {k}"),
            &back,
            &got,
        ));
        let after = (queue_counts(lab, &ifs)?, frames_seen(&lab.status()?));
        for (name, from, to) in [
            (&guest_if, &before, &middle),
            (&lab.router_if, &middle, &after),
        ] {
            let (spread, counted) = queue_delta(&from.0, &to.0, name);
            let used = spread.iter().filter(|(_, n)| *n > 0).count();
            let total: u64 = spread.iter().map(|(_, n)| n).sum();
            // Frames: each one on some queue; interrupts: fewer than frames.
            let all = counted != "frames" || total >= u64::from(FLOW_FRAMES);
            checks.push(check(
                format!("{label}: {name} received the flows on more than one queue"),
                used > 1 && all,
                format!(
                    "{counted} per rx queue: {}",
                    spread
                        .iter()
                        .map(|(q, n)| format!("{q}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            let counted = delta(&from.1, &to.1, name);
            checks.push(check(
                format!("{label}: {name} counted each flow frame once"),
                counted == u64::from(FLOW_FRAMES),
                format!("{counted} counted, {FLOW_FRAMES} sent"),
            ));
        }
    }
    Ok(checks)
}

/// Flows per direction in [`flows_across_queues`], and frames in all.
pub(super) const FLOWS: u32 = 64;
pub(super) const FLOW_FRAMES: u32 = 4 * FLOWS;
/// Marks the flow frames' UDP payload.
pub(super) const FLOW_MAGIC: &[u8; 4] = b"XFDQ";

/// A source MAC per flow (outside) or destination MAC (back).
pub(super) fn flow_mac(n: u32) -> [u8; 6] {
    [0x02, 0x00, 0x00, 0x01, 0x00, (n % FLOWS) as u8]
}

/// Frame `n` of the flows: IPv4/UDP from 10.98.0.F:(10000+F) to
/// 10.97.0.1:9 (back: 10.96.0.F to 10.95.0.1; nobody's addresses), F = n
/// mod [`FLOWS`]; the payload holds [`FLOW_MAGIC`], the direction and `n`.
pub(super) fn flow_frame(dst: [u8; 6], src: [u8; 6], n: u32, direction: u8) -> Vec<u8> {
    let flow = (n % FLOWS) as u8;
    // Other addresses each way: a multi-queue tap sends a flow the guest
    // transmitted back on the queue it came from (its flow table), which
    // would spread the way back only as much as the guest spread the way
    // out.
    let (from, to) = if direction == 0 { (98, 97) } else { (96, 95) };
    let mut payload = FLOW_MAGIC.to_vec();
    payload.push(direction);
    payload.extend_from_slice(&n.to_be_bytes());
    payload.resize(32, 0);
    let udp_len = 8 + payload.len() as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    ip[4..6].copy_from_slice(&(n as u16).to_be_bytes());
    ip.extend_from_slice(&[10, from, 0, flow]);
    ip.extend_from_slice(&[10, to, 0, 1]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&(10000 + u16::from(flow)).to_be_bytes());
    ip.extend_from_slice(&9u16.to_be_bytes());
    ip.extend_from_slice(&udp_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0]); // no UDP checksum (IPv4 allows it)
    ip.extend_from_slice(&payload);
    let mut rest = 0x0800u16.to_be_bytes().to_vec();
    rest.extend_from_slice(&ip);
    frame(dst, src, &rest, 14 + rest.len() - 2)
}

/// Sends `frames` in bursts of 16, a pause between: the emulated NICs'
/// rings hold a few hundred frames, and a guest under emulation empties
/// them slowly.
pub(super) fn send_paced(socket: &RawSocket, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    for burst in frames.chunks(16) {
        for f in burst {
            socket.send(f)?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Passes when every frame of `want` is in `got` exactly once and `got`
/// holds no other flow frame.
pub(super) fn exactly_once(name: String, want: &[Vec<u8>], got: &[Vec<u8>]) -> Check {
    let ours: Vec<&Vec<u8>> = got
        .iter()
        .filter(|f| f.windows(FLOW_MAGIC.len()).any(|w| w == FLOW_MAGIC))
        .collect();
    let times = |f: &Vec<u8>| ours.iter().filter(|g| **g == f).count();
    let once = want.iter().filter(|f| times(f) == 1).count();
    let missing = want.iter().filter(|f| times(f) == 0).count();
    let repeated = want.iter().filter(|f| times(f) > 1).count();
    let other = ours.iter().filter(|g| !want.contains(g)).count();
    check(
        name,
        once == want.len() && other == 0,
        format!(
            "{once}/{} arrived exactly once; {missing} missing, {repeated} more than once, \
             {other} changed or unknown",
            want.len()
        ),
    )
}

/// What each interface's receive queues took (queue, count), by name, and
/// whether the counts are frames or interrupts.
pub(super) type QueueCounts = Vec<(String, Vec<(u32, u64)>, String)>;

/// Each interface's per-queue receive counters, read in the net-vm.
pub(super) fn queue_counts(lab: &mut NetVmLab, ifs: &[String]) -> anyhow::Result<QueueCounts> {
    ifs.iter()
        .map(|i| {
            let out = lab
                .net_vm
                .sh(&format!("xdp-forwarder-lab guest rx-queues {i}"))?;
            let mut lines = out.lines().filter(|l| !l.trim().is_empty());
            let counted = lines.next().unwrap_or_default().trim().to_owned();
            let queues = lines
                .filter_map(|l| {
                    let (q, n) = l.split_once(' ')?;
                    Some((q.parse().ok()?, n.trim().parse().ok()?))
                })
                .collect();
            Ok((i.clone(), queues, counted))
        })
        .collect()
}

pub(super) fn queue_delta(
    before: &QueueCounts,
    after: &QueueCounts,
    name: &str,
) -> (Vec<(u32, u64)>, String) {
    let of = |v: &QueueCounts| {
        v.iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, q, c)| (q.clone(), c.clone()))
            .unwrap_or_default()
    };
    let (before, _) = of(before);
    let (after, counted) = of(after);
    let delta = after
        .into_iter()
        .map(|(q, n)| {
            let was = before.iter().find(|(b, _)| *b == q).map_or(0, |(_, c)| *c);
            (q, n.saturating_sub(was))
        })
        .collect();
    (delta, counted)
}
