//! Hot-plug as a net-vm sees it: NICs of each model ([`PLUGGED`]) added
//! and removed at run time through QEMU's monitor while NIC 1 carries a
//! stream of frames, with either `xdp-forwarder run` as the guest's service
//! or busybox mdev calling `contrib/mdev/iface`. The NICs present at boot
//! must be attached (by the daemon's first scan, or mdev's coldplug) and
//! forward; each added NIC must forward within 2 s (virtio-net) or 4 s
//! (e1000e, igb), a removed one must leave no pin, and the stream must
//! lose nothing.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use crate::demo::checks::Check;
use anyhow::{Context as _, bail};
use serde_json::json;

use super::{
    NetVmLab, NicModel, cases::check, guest::hotplug_bus, initramfs::GUEST_CONTRIB, nic_mac,
};
use crate::{
    netns::Netns,
    packet::{ETHERTYPE_TEST, RawSocket, frame, parse_mac},
};

/// Who reacts to the guest's link events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    /// `xdp-forwarder run`, started as a service would start it.
    Daemon,
    /// The kernel's hotplug helper is busybox mdev, whose rule runs the hook.
    Mdev,
}

/// In-place upgrades of NIC 1's program during the stream.
const UPGRADES: usize = 5;
/// How soon an added (or just attached) NIC must forward: an emulated
/// e1000e or igb brings its link up (carrier) a few seconds after the
/// driver binds.
fn ready_within(model: NicModel) -> Duration {
    match model {
        NicModel::VirtioNet => Duration::from_secs(2),
        NicModel::E1000e | NicModel::Igb => Duration::from_secs(4),
    }
}

/// The NIC hot-plugged in each cycle (add, forward, remove), in order: a
/// virtio-net NIC, an e1000e (no native XDP, strips tags: the daemon and
/// the hook must still give it a working mode), an igb (strips tags, runs
/// native XDP, several queues; QEMU ≥ 8.0: a lab with an igb among its
/// boot NICs runs QEMU from bookworm-backports).
pub const PLUGGED: [NicModel; 3] = [NicModel::VirtioNet, NicModel::E1000e, NicModel::Igb];
/// Stream marker and the probe marker (payload byte 0; a probe's byte 1 is
/// the number of the network whose NIC it enters).
const STREAM: u8 = 0xee;
const PROBE: u8 = 0xdd;

/// Starts `manager` in the net-vm; it must take the router NIC and every
/// NIC present at boot, and each NIC but NIC 1 (whose stream [`cycles`]
/// checks) must then forward as soon as a hot-plugged one of its model.
pub fn start(lab: &mut NetVmLab, manager: Manager) -> anyhow::Result<Vec<Check>> {
    match manager {
        Manager::Daemon => {
            lab.net_vm.sh(
                "xdp-forwarder run --log-format json > /tmp/daemon.log 2>&1 &\n\
                 echo started",
            )?;
        }
        Manager::Mdev => {
            // The rule contrib/mdev/iface documents, mdev as a netlink
            // daemon (Debian's kernels have no uevent helper); the NICs
            // present at boot get the hook from the product's coldplug
            // script, as docs/net-vm.md says.
            let coldplug = format!("{GUEST_CONTRIB}/mdev/coldplug");
            lab.net_vm.sh(&format!(
                "set -e\n\
                 mount -t bpf -o mode=0700 bpf /sys/fs/bpf\n\
                 {}\
                 cat /etc/mdev.conf\n\
                 mdev -d\n\
                 {coldplug}",
                mdev_conf_script()
            ))?;
        }
    }
    let want = lab.port_names();
    let ports = wait_for(lab, Duration::from_secs(20), |ports| {
        want.iter().all(|w| ports.iter().any(|p| p.name == *w))
    })
    .with_context(|| format!("{manager:?} did not attach the router NIC and every NIC"))?;
    let attached_at = Instant::now();
    let label = label(lab, manager);
    let router = lab.router_socket()?;
    let mut checks = Vec::new();
    for net in &lab.networks[1..] {
        let sock = net.ns.within(|| RawSocket::bind(&net.tap))?;
        let probed = probe(
            &router,
            &sock,
            &net.mac,
            net.k,
            attached_at,
            &mut Vec::new(),
        )?;
        checks.push(forwards(
            format!("{label}: {} NIC present at boot forwards", net.model),
            net.model,
            &net.guest_if,
            (probed.forwarded, "it was seen attached"),
            &ports,
        ));
        checks.extend(nothing_else(&label, "at boot", &probed.stray));
    }
    Ok(checks)
}

fn label(lab: &NetVmLab, manager: Manager) -> String {
    format!("{}, hot-plug with {manager:?}", lab.linux()).to_lowercase()
}

/// What [`probe`] saw on the router NIC.
struct Probed {
    /// How long after `since` a probe came out, and its outer VID.
    forwarded: Option<(Duration, u16)>,
    /// Frames that were neither a probe nor the stream.
    stray: Vec<Vec<u8>>,
}

/// Sends a probe frame to `mac` (the NIC of network `k`) through `sock`
/// every 100 ms until one comes out of the router NIC (15 s at most after
/// `since`: the NIC appeared, or was seen attached). The
/// stream's frames read meanwhile go to `stream`; a probe of an earlier
/// network, sent while its first one was on the way and still queued on
/// the router's socket, is not a stray frame.
fn probe(
    router: &RawSocket,
    sock: &RawSocket,
    mac: &str,
    k: usize,
    since: Instant,
    stream: &mut Vec<Vec<u8>>,
) -> anyhow::Result<Probed> {
    let mut rest = ETHERTYPE_TEST.to_be_bytes().to_vec();
    rest.extend_from_slice(&[PROBE, k as u8]);
    let probe = frame(parse_mac(mac)?, [0x02, 0, 0, 0, 0x77, 2], &rest, 64);
    let mut probed = Probed {
        forwarded: None,
        stray: Vec::new(),
    };
    while since.elapsed() < Duration::from_secs(15) && probed.forwarded.is_none() {
        sock.send(&probe)?;
        for f in router.drain_test_frames(Duration::from_millis(100)) {
            if f.get(18..20) == Some(&[PROBE, k as u8][..]) {
                probed.forwarded =
                    Some((since.elapsed(), u16::from_be_bytes([f[14], f[15]]) & 0xfff));
            } else if f.get(18) == Some(&STREAM) {
                stream.push(f);
            } else if f.get(18) == Some(&PROBE) && f.get(19).is_some_and(|&c| usize::from(c) < k) {
                // An earlier network's probe.
            } else {
                probed.stray.push(f);
            }
        }
    }
    Ok(probed)
}

/// The check that the NIC `new_if` forwarded (`forwarded`: how long after
/// `since`, with which VID) within `ready_within` its model, with the VID
/// it is registered with among the attached `ports` (whose modes the
/// detail lists: what the manager's `--mode auto` gave each).
fn forwards(
    name: String,
    model: NicModel,
    new_if: &str,
    (forwarded, since): (Option<(Duration, u16)>, &str),
    ports: &[Port],
) -> Check {
    let vid = ports.iter().find(|p| p.name == new_if).map(|p| p.vid);
    let modes = ports
        .iter()
        .map(|p| format!("{} {}", p.name, p.mode))
        .collect::<Vec<_>>()
        .join(", ");
    match forwarded {
        Some((after, tag)) => check(
            name,
            after <= ready_within(model) && Some(u64::from(tag)) == vid,
            format!(
                "{new_if} forwarded {:.1} s after {since}, VID {tag} (registered: {vid:?}); \
                 ports: {modes}",
                after.as_secs_f64()
            ),
        ),
        None => check(
            name,
            false,
            format!("{new_if}: nothing within 15 s; ports: {modes}"),
        ),
    }
}

/// A failed check naming the `stray` frames the router NIC sent, if any.
fn nothing_else(label: &str, when: &str, stray: &[Vec<u8>]) -> Option<Check> {
    (!stray.is_empty()).then(|| {
        check(
            format!("{label}: nothing else on the router link ({when})"),
            false,
            format!(
                "{} unexpected frames: {}",
                stray.len(),
                stray
                    .iter()
                    .map(|f| f
                        .iter()
                        .take(22)
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        )
    })
}

/// An attached port, as `status --json` shows it.
#[derive(Debug)]
struct Port {
    name: String,
    vid: u64,
    mode: String,
}

/// Attached ports until `done` says yes.
fn wait_for(
    lab: &mut NetVmLab,
    within: Duration,
    done: impl Fn(&[Port]) -> bool,
) -> anyhow::Result<Vec<Port>> {
    let deadline = Instant::now() + within;
    loop {
        let ports = attached(lab)?;
        if done(&ports) {
            return Ok(ports);
        }
        if Instant::now() > deadline {
            bail!(
                "ports now {ports:?}; guest log:\n{}",
                lab.net_vm
                    .sh("tail -n 20 /tmp/daemon.log 2>/dev/null; true")
                    .unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn attached(lab: &mut NetVmLab) -> anyhow::Result<Vec<Port>> {
    let (code, out) = lab
        .net_vm
        .sh_status("xdp-forwarder status --json", Duration::from_secs(30))?;
    if code != 0 {
        return Ok(Vec::new()); // nothing pinned yet
    }
    let st: serde_json::Value = serde_json::from_str(&out).context("status --json")?;
    Ok(st["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["attached"] == true)
        .map(|p| Port {
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            vid: p["vid"].as_u64().unwrap_or(0),
            mode: p["mode"].as_str().unwrap_or("?").to_owned(),
        })
        .collect())
}

/// The hot-plug cycles of [`PLUGGED`], with NIC 1 streaming throughout.
pub fn cycles(lab: &mut NetVmLab, manager: Manager) -> anyhow::Result<Vec<Check>> {
    cycles_of(lab, manager, &PLUGGED)
}

/// The hot-plug cycles of the NICs `plugged`, in order, with NIC 1
/// streaming throughout; then NIC 1's in-place upgrades.
pub fn cycles_of(
    lab: &mut NetVmLab,
    manager: Manager,
    plugged: &[NicModel],
) -> anyhow::Result<Vec<Check>> {
    let label = label(lab, manager);
    let mut checks = Vec::new();
    let router = lab.router_socket()?;
    let busy = &lab.networks[0];
    let busy_sock = busy.ns.within(|| RawSocket::bind(&busy.tap))?;
    let busy_mac = parse_mac(&busy.mac)?;
    let stop = AtomicBool::new(false);
    // Everything the router NIC sent (the probes' reads keep the stream's).
    let mut got = Vec::new();
    let sent = std::thread::scope(|s| -> anyhow::Result<u32> {
        let streamer = s.spawn(|| -> anyhow::Result<u32> {
            let mut seq = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let mut rest = ETHERTYPE_TEST.to_be_bytes().to_vec();
                rest.push(STREAM);
                rest.extend_from_slice(&seq.to_be_bytes());
                busy_sock.send(&frame(busy_mac, [0x02, 0, 0, 0, 0x77, 1], &rest, 64))?;
                seq += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(seq)
        });
        let result = (|| {
            for (cycle, &model) in (1..).zip(plugged) {
                checks.extend(one_cycle(lab, &router, &mut got, cycle, model, &label)?);
            }
            checks.push(upgrades(lab, &label)?);
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let sent = streamer
            .join()
            .map_err(|_| anyhow::anyhow!("streamer panicked"))??;
        result.map(|()| sent)
    })?;
    got.extend(router.drain_test_frames(Duration::from_secs(2)));
    let mut seen = vec![0u32; sent as usize];
    for f in &got {
        // Outer tag (4) + inner EtherType at 16, marker at 18, seq at 19.
        if f.get(18) == Some(&STREAM)
            && let Some(seq) = f.get(19..23)
        {
            let seq = u32::from_be_bytes(seq.try_into().unwrap()) as usize;
            if let Some(n) = seen.get_mut(seq) {
                *n += 1;
            }
        }
    }
    let lost = seen.iter().filter(|n| **n == 0).count();
    let dup = seen.iter().filter(|n| **n > 1).count();
    checks.push(check(
        format!("{label}: the busy NIC's stream"),
        lost == 0 && dup == 0 && sent > 0,
        format!(
            "{sent} frames sent through NIC 1 across the cycles, {lost} lost, {dup} duplicated"
        ),
    ));
    Ok(checks)
}

/// Upgrades NIC 1's program in place (`attach --replace`: the program is
/// swapped on its pinned link) while it streams; the stream check then
/// proves no frame was lost.
fn upgrades(lab: &mut NetVmLab, label: &str) -> anyhow::Result<Check> {
    let nic = lab.networks[0].guest_if.clone();
    // The program the port's link runs, XDP or tc, as `status` reads it
    // from the kernel.
    let prog = |lab: &mut NetVmLab| -> anyhow::Result<String> {
        let status: serde_json::Value =
            serde_json::from_str(&lab.net_vm.sh("xdp-forwarder status --json")?)?;
        Ok(status["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == nic.as_str())
            .map(|p| p["prog_id"].to_string())
            .unwrap_or_default())
    };
    let mut progs = vec![prog(lab)?];
    let mut outputs = Vec::new();
    for _ in 0..UPGRADES {
        outputs.push(lab.net_vm.sh(&format!(
            "xdp-forwarder attach {nic} --role physical --replace 2>&1"
        ))?);
        progs.push(prog(lab)?);
    }
    progs.dedup();
    Ok(check(
        format!("{label}: NIC 1 upgraded in place while streaming"),
        progs.len() == UPGRADES + 1 && outputs.iter().all(|o| o.contains("attached as physical")),
        format!(
            "{UPGRADES} upgrades, program ids {progs:?}; {}",
            outputs.last().map_or("", |o| o.trim())
        ),
    ))
}

fn one_cycle(
    lab: &mut NetVmLab,
    router: &RawSocket,
    stream: &mut Vec<Vec<u8>>,
    cycle: usize,
    model: NicModel,
    label: &str,
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let k = lab.networks.len() + cycle;
    let (id, tap, mac) = (
        format!("hot{cycle}"),
        format!("{}h{cycle}", lab.prefix),
        nic_mac(k),
    );
    let ns = Netns::add(&format!("{}-h{cycle}", lab.prefix))?;
    let before = lab.net_vm.sh("ls /sys/class/net")?;
    let plugged = Instant::now();
    lab.net_vm.qmp(
        "netdev_add",
        json!({"type": "tap", "id": format!("{id}-net"), "ifname": tap, "script": "no", "downscript": "no"}),
    )?;
    let mut device = json!({"driver": model.device(), "netdev": format!("{id}-net"), "mac": mac, "id": id, "romfile": ""});
    if let Some(bus) = hotplug_bus(lab.net_vm.arch, cycle) {
        device["bus"] = bus.into();
    }
    lab.net_vm.qmp("device_add", device)?;
    lab.trunk.ip(&["link", "set", &tap, "netns", &ns.name])?;
    ns.ip(&["link", "set", &tap, "up"])?;
    let sock = ns.within(|| RawSocket::bind(&tap))?;
    let probed = probe(router, &sock, &mac, k, plugged, stream)?;
    let now = lab.net_vm.sh("ls /sys/class/net")?;
    let new_if = now
        .split_whitespace()
        .find(|n| !before.split_whitespace().any(|b| b == *n))
        .map(str::to_owned);
    let ports = attached(lab)?;
    let mut added = forwards(
        format!("{label}: added {model} NIC forwards (cycle {cycle})"),
        model,
        new_if.as_deref().unwrap_or("?"),
        (probed.forwarded, "device_add"),
        &ports,
    );
    if probed.forwarded.is_none() {
        added.detail.push_str(&format!("; the guest sees {now:?}"));
    }
    checks.push(added);
    let Some(new_if) = new_if else {
        bail!("the hot-plugged NIC never appeared in the guest");
    };
    lab.net_vm.qmp("device_del", json!({"id": id}))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let gone_script = format!("[ ! -e /sys/class/net/{new_if} ]");
    while lab
        .net_vm
        .sh_status(&gone_script, Duration::from_secs(10))?
        .0
        != 0
    {
        if Instant::now() > deadline {
            bail!("{new_if} was not removed by device_del");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Only the router's and the boot NICs' pins may stay.
    let keep = |ports: &[Port]| ports.iter().all(|p| p.name != new_if);
    let left = wait_for(lab, Duration::from_secs(5), keep);
    let pins = lab
        .net_vm
        .sh("ls /sys/fs/bpf/xdp-forwarder | sort | tr '\\n' ' '")?;
    let allowed: Vec<String> = attached(lab)?.into_iter().map(|p| p.name).collect();
    let ifindexes = lab.net_vm.sh(&format!(
        "for i in {}; do cat /sys/class/net/$i/ifindex; done",
        allowed.join(" ")
    ))?;
    let mut expected: Vec<String> = [
        "devmap-xmit-link".to_owned(),
        "fwd_redirect_errors".to_owned(),
        "fwd_station_counts".to_owned(),
        "fwd_station_nat".to_owned(),
        "fwd_stations".to_owned(),
        "fwd_tc_targets".to_owned(),
        "fwd_vlan_ports".to_owned(),
        "ports".to_owned(),
        "redirect-errors-link".to_owned(),
    ]
    .into_iter()
    .chain(
        ifindexes
            .split_whitespace()
            .flat_map(|i| [format!("link-{i}"), format!("counters-{i}")]),
    )
    .collect();
    expected.sort();
    let mut found: Vec<String> = pins.split_whitespace().map(str::to_owned).collect();
    found.sort();
    checks.push(check(
        format!("{label}: removed NIC leaves no pin (cycle {cycle})"),
        left.is_ok() && found == expected && allowed.len() == lab.networks.len() + 1,
        format!("pins: {}", found.join(" ")),
    ));
    lab.net_vm
        .qmp("netdev_del", json!({"id": format!("{id}-net")}))?;
    checks.extend(nothing_else(
        label,
        &format!("cycle {cycle}"),
        &probed.stray,
    ));
    Ok(checks)
}

/// Shell lines that write the guest's /etc/mdev.conf with the rule
/// contrib/mdev/iface documents in its header, pointed at the guest's copy
/// of the hook, and fail unless it is there.
pub fn mdev_conf_script() -> String {
    let hook = format!("{GUEST_CONTRIB}/mdev/iface");
    format!(
        "grep -o '^#   -SUBSYSTEM=net.*' {hook} | sed 's/^#   //; s#/etc/mdev/iface#{hook}#' > /etc/mdev.conf\n\
         grep -q {hook} /etc/mdev.conf\n"
    )
}
