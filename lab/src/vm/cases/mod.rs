//! What the VM lab proves, as the demo's checks (the VM tests assert each
//! one, the VM demo prints them): raw frames of every kind through each NIC
//! and back, counters that account for each of them, pings, UDP (plain and
//! through UDP GSO) and bulk TCP both ways between the outside hosts and the
//! router VM's VLAN hosts (full-size frames too), isolation, and what
//! `--mode auto` picks. One file per thing proven ([`frames`],
//! [`ip_traffic`], [`queues`], [`refusals`]); here, attaching and the runs
//! that combine them per mode.

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use crate::demo::checks::{Check, PINGS, Receivers, UDP_PORT, summarize_ping};
use anyhow::Context as _;
use serde_json::Value;

use super::{EXT_ADDR, IN_NETNS, LAN_ADDR, NetVmLab, NicModel};
use crate::{
    packet::{ETHERTYPE_TEST, RawSocket, frame, parse_mac, tagged},
    traffic,
};

mod frames;
mod ip_traffic;
mod queues;
mod refusals;

pub use self::{frames::*, ip_traffic::*, queues::*, refusals::*};

/// Datagrams per network and direction (the guests run under emulation).
pub const DATAGRAMS: u32 = 200;
/// How long frames may take through two emulated guests.
const ARRIVAL: Duration = Duration::from_millis(1500);
/// A MAC behind the router that is nobody's NIC.
const VM_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x99, 0x99];
/// The inner tag of "already tagged" frames.
const INNER_VID: u16 = 100;

pub(crate) fn check(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        passed,
        detail: detail.into(),
    }
}

/// Passes when `problems` is empty (the detail then says `fine`).
fn no_problems(name: String, problems: &[String], fine: &str) -> Check {
    let detail = if problems.is_empty() {
        fine.to_owned()
    } else {
        problems.join("; ")
    };
    check(name, problems.is_empty(), detail)
}

/// Mounts bpffs in the net-vm (once: read from /proc/mounts, the guest's
/// busybox has no `mountpoint`) and attaches the router NIC and every NIC
/// in `mode`; returns each NIC's VID, and what attach said about the mode
/// it chose (`--mode auto`'s reasons, warnings, caveats), one line each.
pub fn attach_all(lab: &mut NetVmLab, mode: &str) -> anyhow::Result<(Vec<u16>, Vec<String>)> {
    let mut script = format!(
        "set -e\ngrep -q ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf -o mode=0700 bpf /sys/fs/bpf\n\
         xdp-forwarder attach {} --role router --mode {mode}\n",
        lab.router_if
    );
    for n in &lab.networks {
        script.push_str(&format!(
            "xdp-forwarder attach {} --role physical --mode {mode}\n",
            n.guest_if
        ));
    }
    let out = lab.net_vm.sh(&script)?;
    let mut said: Vec<String> = Vec::new();
    for line in out.lines().map(str::trim) {
        let l = line.to_lowercase();
        let worth = ["auto", "warning", "caveat"].iter().any(|w| l.contains(w));
        if worth && !said.iter().any(|s| s == line) {
            said.push(line.to_owned());
        }
    }
    let ks: Vec<usize> = lab.networks.iter().map(|n| n.k).collect();
    let vids = ks
        .into_iter()
        .map(|k| lab.vid(k))
        .collect::<anyhow::Result<_>>()?;
    Ok((vids, said))
}

pub fn detach_all(lab: &mut NetVmLab) -> anyhow::Result<()> {
    lab.net_vm.sh("xdp-forwarder detach --all")?;
    Ok(())
}

/// (forwarded + dropped) frames of each port, by interface name.
fn frames_seen(status: &Value) -> Vec<(String, u64)> {
    status["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let c = &p["counters"];
            let n = c["forwarded_frames"].as_u64().unwrap_or(0)
                + c["dropped_total"].as_u64().unwrap_or(0);
            (p["name"].as_str().unwrap_or_default().to_owned(), n)
        })
        .collect()
}

fn delta(before: &[(String, u64)], after: &[(String, u64)], name: &str) -> u64 {
    let get = |v: &[(String, u64)]| v.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c);
    get(after).saturating_sub(get(before))
}

/// `attach --mode auto` on a virtio-net NIC next to a native router
/// attached with an explicit `--mode` (never moved): native, the only mode
/// whose redirects the router's native program can return to the NIC, and
/// why not tc.
pub fn mode_auto(lab: &mut NetVmLab) -> anyhow::Result<Check> {
    let nic = lab.networks[0].guest_if.clone();
    let out = lab.net_vm.sh(&format!(
        "xdp-forwarder detach {nic} >/dev/null && xdp-forwarder attach {nic} --role physical --mode auto"
    ))?;
    let passed = out.contains("native mode")
        && out.contains(
            "--mode auto: native (the driver runs XDP natively), because tc mode would leave \
             a direction dead",
        );
    Ok(check(
        "--mode auto on virtio-net",
        passed,
        out.trim().to_owned(),
    ))
}

/// Which mode each port runs, as one check: every port (the router and
/// each network's NIC) must run `expect`; with `None` the check only
/// reports (what `auto` picked where the lab has no expectation). The
/// detail also carries what attach `said` and what `status` warns about,
/// with each mode's caveat.
pub fn ports_run(
    lab: &mut NetVmLab,
    label: &str,
    expect: Option<&str>,
    said: &[String],
) -> anyhow::Result<Check> {
    let status = lab.status()?;
    let ports = status["ports"].as_array().cloned().unwrap_or_default();
    let mut modes = Vec::new();
    for p in &ports {
        let s = |f: &str| p[f].as_str().unwrap_or("?").to_owned();
        let mut line = format!("{} {}", s("name"), s("mode"));
        if let Some(c) = p["caveat"].as_str() {
            line.push_str(&format!(" (caveat: {c})"));
        }
        for w in p["warnings"].as_array().into_iter().flatten() {
            line.push_str(&format!(" (warning: {})", w.as_str().unwrap_or("?")));
        }
        modes.push(line);
    }
    let name = match expect {
        Some(mode) => format!("{label}: every port runs {mode}"),
        None => format!("{label}: what every port runs"),
    };
    let passed = expect.is_none_or(|mode| {
        ports.len() == lab.networks.len() + 1 && ports.iter().all(|p| p["mode"] == mode)
    });
    let mut detail = modes.join(", ");
    if !said.is_empty() {
        detail.push_str(&format!("; attach said: {}", said.join(" | ")));
    }
    Ok(check(name, passed, detail))
}

/// [`frames`] through the lab's networks with every port attached in
/// `mode`, each of which must then run `expect` (what `--mode auto` picks).
/// On a NIC that strips tags into metadata (e1000e, `rx-vlan-offload` on)
/// the already-tagged frames are the ones at stake: their VID 100 must
/// reach the router inside the port's tag, and come back out.
pub fn frames_in_mode(lab: &mut NetVmLab, mode: &str, expect: &str) -> anyhow::Result<Vec<Check>> {
    frames_and_maybe_flows(lab, mode, expect, false)
}

/// [`frames_in_mode`], then [`flows_across_queues`] in the same attachment.
pub fn frames_and_flows_in_mode(
    lab: &mut NetVmLab,
    mode: &str,
    expect: &str,
) -> anyhow::Result<Vec<Check>> {
    frames_and_maybe_flows(lab, mode, expect, true)
}

fn frames_and_maybe_flows(
    lab: &mut NetVmLab,
    mode: &str,
    expect: &str,
    flows: bool,
) -> anyhow::Result<Vec<Check>> {
    let mut models: Vec<String> = lab.networks.iter().map(|n| n.model.to_string()).collect();
    models.dedup();
    let label = format!("{}, {mode}, {}", lab.linux(), models.join("+"));
    let (vids, said) = attach_all(lab, mode)?;
    // attach brought the NICs up; an e1000e takes a moment to get its
    // carrier, and transmits nothing without it.
    let ifs = lab.port_names();
    let wait = format!(
        "for i in $(seq 100); do\n\
         down=0\n\
         for f in {}; do [ \"$(cat /sys/class/net/$f/operstate)\" = up ] || down=1; done\n\
         [ $down = 0 ] && exit 0\n\
         sleep 0.1\n\
         done\n\
         exit 1",
        ifs.join(" ")
    );
    lab.net_vm
        .sh_within(&wait, Duration::from_secs(60))
        .context("the NICs did not get their carrier within 10 s")?;
    let mut checks = vec![ports_run(lab, &label, Some(expect), &said)?];
    // What makes the case worth running: a NIC that strips tags (an
    // e1000e with rx-vlan-offload on, as hardware has it) while the
    // frames cross. tc leaves stripping on; the XDP modes switch it off.
    let nics: Vec<(String, NicModel)> = lab
        .networks
        .iter()
        .map(|n| (n.guest_if.clone(), n.model))
        .collect();
    for (guest_if, model) in nics {
        let found: Value = serde_json::from_str(
            &lab.net_vm
                .sh(&format!("xdp-forwarder inspect {guest_if} --json"))?,
        )?;
        let stripping = found["features"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == "rx-vlan-hw-parse")
            .map(|f| f["on"] == true);
        if model.strips_tags() && expect == "tc" {
            checks.push(check(
                format!("{label}: {guest_if} ({model}) strips tags into its descriptors meanwhile"),
                stripping == Some(true),
                format!("rx-vlan-hw-parse on: {stripping:?}"),
            ));
        } else if model.strips_tags() {
            checks.push(check(
                format!("{label}: {guest_if} ({model}) stopped stripping tags for XDP"),
                stripping == Some(false),
                format!("rx-vlan-hw-parse on: {stripping:?}"),
            ));
        }
    }
    checks.extend(frames(lab, &vids, &label)?);
    if flows {
        checks.extend(flows_across_queues(lab, &vids, &label)?);
    }
    if mode != "tc" && expect != "tc" {
        checks.extend(stripping_on_again(lab, &vids, mode, &label)?);
    }
    detach_all(lab)?;
    Ok(checks)
}

/// Everything above in one attach mode, in which every port must then run
/// `expect` (`None`: whatever it is): attach, frames and counters, pings,
/// full-size pings, UDP, UDP GSO, TCP; detach.
pub fn all_in_mode(
    lab: &mut NetVmLab,
    mode: &str,
    expect: Option<&str>,
) -> anyhow::Result<Vec<Check>> {
    let mut label = format!("{}, {mode}", lab.linux());
    if lab.router_nic != super::RouterNic::QemuDefault {
        label.push_str(&format!(", {}", lab.router_nic));
    }
    let (vids, said) = attach_all(lab, mode)?;
    let mut checks = vec![ports_run(lab, &label, expect, &said)?];
    checks.extend(frames(lab, &vids, &label)?);
    lab.configure_router_vlans(&vids)?;
    checks.extend(pings(lab, 56, &label)?);
    checks.extend(pings(lab, 1472, &label)?);
    checks.extend(udp(lab, &label, Udp::Plain)?);
    checks.extend(udp(lab, &label, Udp::Gso)?);
    checks.extend(tcp(lab, &label)?);
    if mode == "native" {
        checks.push(mode_auto(lab)?);
    }
    detach_all(lab)?;
    Ok(checks)
}

/// The router NIC's own cases, for a router NIC made otherwise than QEMU's
/// default ([`super::RouterNic`]): attach in `mode` (every port must then
/// run `expect`, if given), raw frames both ways and counters, bulk TCP
/// both ways; detach.
pub fn frames_and_tcp_in_mode(
    lab: &mut NetVmLab,
    mode: &str,
    expect: Option<&str>,
) -> anyhow::Result<Vec<Check>> {
    let label = format!("{}, {mode}, {}", lab.linux(), lab.router_nic);
    let (vids, said) = attach_all(lab, mode)?;
    let mut checks = vec![ports_run(lab, &label, expect, &said)?];
    checks.extend(frames(lab, &vids, &label)?);
    lab.configure_router_vlans(&vids)?;
    checks.extend(tcp(lab, &label)?);
    detach_all(lab)?;
    Ok(checks)
}
