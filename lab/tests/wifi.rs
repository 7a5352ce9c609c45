//! The Wi-Fi lab (issue 26): a net-vm guest whose uplink is a Wi-Fi
//! station. `mac80211_hwsim` radios, Debian's hostapd (WPA2-PSK, CCMP) in
//! a namespace of its own bridged to an outside host (router
//! advertisements, DHCPv4), the station run by wpa_supplicant or iwd, the
//! router VM with two VMs (MACs of their own) behind the Wi-Fi port's VLAN.
//! One boot per kernel, shared by every case of that kernel.
//!
//! Needs root, QEMU, the lab cache (the Wi-Fi kernel and programs are
//! fetched on first use) and the static binaries (`XDP_FORWARDER_BINS`,
//! as for lab/tests/vm.rs).

use std::{sync::Mutex, time::Instant};

use xdp_forwarder_lab::{
    debian::GuestKernel,
    demo::checks::Check,
    vm::wifi::{Eapol, Supplicant, WifiLab},
};

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Bytes of each TCP transfer of the station's own traffic.
const STATION_TCP_BYTES: u64 = 256 << 10;

fn with_wifi_lab(tag: &str, kernel: GuestKernel, f: impl FnOnce(&mut WifiLab) -> Vec<Check>) {
    xdp_forwarder_lab::require_root("the Wi-Fi lab creates namespaces, taps and guests");
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("xfd-wifi-{tag}-{}", std::process::id()));
    let started = Instant::now();
    let mut lab = WifiLab::start(kernel, &format!("xw{tag}"), &dir)
        .unwrap_or_else(|e| panic!("{kernel}: the Wi-Fi lab did not start: {e:#}"));
    let checks = f(&mut lab);
    println!(
        "{kernel}: {} (whole: {:.1} s)",
        lab.timing_line(),
        started.elapsed().as_secs_f64()
    );
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
        eprintln!("net-vm console:\n{}", lab.lab.net_vm.console_tail(40));
    }
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!checks.is_empty(), "no check ran");
    assert!(failed.is_empty(), "{kernel}:\n{}", failed.join("\n"));
}

/// The rig on one kernel with one supplicant: the station associates
/// (WPA2-PSK) and its own traffic works (SLAAC, DHCPv4, pings both ways,
/// TCP each way, one station at the AP, only its and the AP's MAC on the
/// air); then, with the forwarder attached and nothing translated, a VM's
/// frames are refused by the AP, as issue 26 measured.
fn rig(tag: &str, kernel: GuestKernel, supplicant: Supplicant) {
    with_wifi_lab(tag, kernel, |lab| {
        let label = format!("{}, {supplicant}", kernel.linux());
        let mut checks = Vec::new();
        let steps = (|| -> anyhow::Result<()> {
            lab.associate(supplicant, Eapol::ControlPort)?;
            checks.extend(lab.station_traffic(&label, STATION_TCP_BYTES)?);
            let vid = lab.attach()?;
            lab.vm_hosts(vid)?;
            checks.extend(lab.vm_refused_by_the_ap(&label)?);
            Ok(())
        })();
        if let Err(e) = steps {
            checks.push(Check {
                name: format!("{label}: the cases ran to their end"),
                passed: false,
                detail: format!("{e:#}"),
            });
        }
        checks
    });
}

#[test]
fn linux_6_1_wpa_supplicant_station_works_and_the_ap_refuses_an_untranslated_vm() {
    rig("61", GuestKernel::Debian12, Supplicant::WpaSupplicant);
}

#[test]
fn linux_6_12_iwd_station_works_and_the_ap_refuses_an_untranslated_vm() {
    rig("612", GuestKernel::Debian13, Supplicant::Iwd);
}
