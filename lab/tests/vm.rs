//! The forwarder in a real net-vm: QEMU guests on Debian 12's (Linux 6.1)
//! and Debian 13's (Linux 6.12) kernels, virtio-net NICs, the router VM on
//! Linux's own 802.1Q stack; every case in native and skb mode, and
//! hot-plug through QEMU's monitor with the daemon and with mdev.
//!
//! Needs root, QEMU and the kernels in the lab cache (`cargo xtask test`
//! sets up and fetches everything). The guests run one lab at a time: two
//! emulated labs at once would starve each other on two cores.

use std::sync::Mutex;

use xdp_forwarder_lab::demo::checks::Check;
use xdp_forwarder_lab::{
    debian::GuestKernel,
    vm::{self, NetVmLab, cases, hotplug, initramfs::Contents},
};

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

fn require_root() {
    xdp_forwarder_lab::require_root("the VM tests create namespaces, taps and guests");
}

fn with_lab(
    tag: &str,
    kernel: GuestKernel,
    nics: usize,
    f: impl FnOnce(&mut NetVmLab) -> Vec<Check>,
) {
    require_root();
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("xfd-vm-{tag}-{}", std::process::id()));
    let mut lab = NetVmLab::start(&vm::Options {
        kernel,
        nics,
        prefix: format!("xv{tag}"),
        contents: Contents::of_this_build().unwrap(),
        dir: dir.clone(),
    })
    .unwrap_or_else(|e| panic!("{kernel}: the lab did not start: {e:#}"));
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

fn every_case(tag: &str, kernel: GuestKernel) {
    with_lab(tag, kernel, 2, |lab| {
        let mut checks = Vec::new();
        for mode in ["native", "skb"] {
            checks.extend(
                cases::all_in_mode(lab, mode).unwrap_or_else(|e| panic!("{kernel}, {mode}: {e:#}")),
            );
        }
        checks
    });
}

#[test]
fn linux_6_1_every_case_native_and_skb() {
    every_case("61", GuestKernel::Debian12);
}

#[test]
fn linux_6_12_every_case_native_and_skb() {
    every_case("612", GuestKernel::Debian13);
}

fn hot_plug(tag: &str, kernel: GuestKernel, manager: hotplug::Manager) {
    with_lab(tag, kernel, 1, |lab| {
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
