//! The forwarder in a real net-vm: QEMU guests on Debian 12's (Linux 6.1)
//! and Debian 13's (Linux 6.12) kernels, virtio-net NICs, the router VM on
//! Linux's own 802.1Q stack; every case in native and skb mode; an e1000e
//! NIC (which strips tags into metadata, as hardware does) in the mode
//! `--mode auto` picks, tc (a tcx link on 6.12, a clsact filter on 6.1);
//! an igb NIC (strips tags too, runs native XDP, several queues) in tc and
//! native mode, with flows spread over its queues and a multi-queue router
//! NIC (these boots run QEMU from bookworm-backports);
//! hot-plug through QEMU's monitor with the
//! daemon and with mdev.
//!
//! Needs root, QEMU and the kernels in the lab cache (`cargo xtask test`
//! sets up and fetches everything). The guests run one lab at a time: two
//! emulated labs at once would starve each other on two cores.

use std::{sync::Mutex, time::Instant};

use xdp_forwarder_lab::demo::checks::Check;
use xdp_forwarder_lab::{
    debian::GuestKernel,
    vm::{self, NetVmLab, NicModel, cases, hotplug, initramfs::Contents},
};

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

fn require_root() {
    xdp_forwarder_lab::require_root("the VM tests create namespaces, taps and guests");
}

fn with_lab(
    tag: &str,
    kernel: GuestKernel,
    nics: Vec<NicModel>,
    router_queues: u16,
    f: impl FnOnce(&mut NetVmLab) -> Vec<Check>,
) {
    require_root();
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("xfd-vm-{tag}-{}", std::process::id()));
    let started = Instant::now();
    let mut lab = NetVmLab::start(&vm::Options {
        kernel,
        nics,
        router_queues,
        prefix: format!("xv{tag}"),
        contents: Contents::of_this_build().unwrap(),
        dir: dir.clone(),
    })
    .unwrap_or_else(|e| panic!("{kernel}: the lab did not start: {e:#}"));
    println!(
        "{kernel}: the lab started in {:.1} s (QEMU {})",
        started.elapsed().as_secs_f64(),
        lab.qemu.version
    );
    let checks = f(&mut lab);
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("FAIL {}: {}", c.name, c.detail))
        .collect();
    for c in &checks {
        println!(
            "{} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    if !failed.is_empty() {
        eprintln!("net-vm console:\n{}", lab.net_vm.console_tail(60));
    }
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!checks.is_empty(), "no check ran");
    assert!(failed.is_empty(), "{kernel}:\n{}", failed.join("\n"));
}

/// Every case in native and skb mode through two virtio-net NICs; first,
/// with `e1000e_auto_picks`, the frames through a third network's e1000e
/// NIC with `--mode auto`, which must pick that mode; then the frames
/// through a fourth network's igb NIC with `--mode auto` (tc) and
/// `--mode native`, and in both, flows spread over igb's queues and the
/// router NIC's two queue pairs; in native mode, the control: stripping
/// switched on again behind attach's back loses the outside tag, `status`
/// says so, attach repairs it (one boot for all, on QEMU from
/// bookworm-backports: 7.2 has no igb).
/// First: until the virtio cases configure them, the router VM's VLAN
/// hosts are down, so nothing of theirs (an ARP probe left over from the
/// UDP cases) crosses the router NIC and spoils its counters.
fn every_case(tag: &str, kernel: GuestKernel, e1000e_auto_picks: Option<&str>) {
    let mut nics = vec![NicModel::VirtioNet; 2];
    nics.extend(e1000e_auto_picks.map(|_| NicModel::E1000e));
    nics.push(NicModel::Igb);
    with_lab(tag, kernel, nics, 2, |lab| {
        let mut checks = Vec::new();
        if let Some(auto_picks) = e1000e_auto_picks {
            checks.extend(
                lab.only(NicModel::E1000e, |lab| {
                    cases::frames_in_mode(lab, "auto", auto_picks)
                })
                .unwrap_or_else(|e| panic!("{kernel}, e1000e, auto: {e:#}")),
            );
        }
        for (mode, picks) in [("auto", "tc"), ("native", "native")] {
            let started = Instant::now();
            checks.extend(
                lab.only(NicModel::Igb, |lab| {
                    cases::frames_and_flows_in_mode(lab, mode, picks)
                })
                .unwrap_or_else(|e| panic!("{kernel}, igb, {mode}: {e:#}")),
            );
            println!(
                "{kernel}: igb, {mode}: {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        for mode in ["native", "skb"] {
            checks.extend(
                lab.only(NicModel::VirtioNet, |lab| cases::all_in_mode(lab, mode))
                    .unwrap_or_else(|e| panic!("{kernel}, {mode}: {e:#}")),
            );
        }
        checks
    });
}

/// On 6.1 (no tcx) tc runs as a clsact filter: `--mode auto` picks it
/// for the e1000e and igb NICs too, and the outside tag survives the
/// stripping; igb in native mode keeps it too (attach switched stripping
/// off), and spreads flows over its queues.
#[test]
fn linux_6_1_every_case_native_and_skb_and_e1000e_and_igb_keep_outside_tags_and_spread_flows_over_queues()
 {
    every_case("i61", GuestKernel::Debian12, Some("tc"));
}

/// Issue 16: a NIC that strips the outside tag into metadata (QEMU's
/// e1000e and igb, `rx-vlan-offload` on) must still deliver it inside the
/// port's tag; `--mode auto` picks tc on 6.12, which keeps it; igb in
/// native mode keeps it too (attach switched stripping off); flows spread
/// over igb's and the router NIC's queues arrive once each.
#[test]
fn linux_6_12_every_case_native_and_skb_and_e1000e_and_igb_keep_outside_tags_and_spread_flows_over_queues()
 {
    every_case("i612", GuestKernel::Debian13, Some("tc"));
}

fn hot_plug(tag: &str, kernel: GuestKernel, manager: hotplug::Manager) {
    with_lab(tag, kernel, vec![NicModel::VirtioNet], 1, |lab| {
        hotplug::start(lab, manager).unwrap_or_else(|e| panic!("{manager:?}: {e:#}"));
        hotplug::cycles(lab, manager).unwrap_or_else(|e| panic!("{manager:?}: {e:#}"))
    });
}

#[test]
fn hot_plug_with_the_daemon() {
    hot_plug("hd", GuestKernel::Debian13, hotplug::Manager::Daemon);
}

#[test]
fn hot_plug_with_mdev_and_the_hook() {
    hot_plug("hm", GuestKernel::Debian12, hotplug::Manager::Mdev);
}
