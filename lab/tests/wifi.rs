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
    demo::checks::{Check, Verdict},
    vm::wifi::{Eapol, Supplicant, WifiLab},
};

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Bytes of each TCP transfer of the station's own traffic, and through
/// the forwarder.
const STATION_TCP_BYTES: u64 = 256 << 10;
const VM_TCP_BYTES: u64 = 8 << 20;

fn with_wifi_lab(tag: &str, kernel: GuestKernel, f: impl FnOnce(&mut WifiLab) -> Vec<Check>) {
    xdp_forwarder_lab::require_root("the Wi-Fi lab creates namespaces, taps and guests");
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("xfd-wifi-{tag}-{}", std::process::id()));
    let started = Instant::now();
    // The process id keeps two labs of two checkouts (parallel work on one
    // machine) out of each other's namespaces; 4 digits keep the taps'
    // names (`{prefix}n1`) within IFNAMSIZ.
    let prefix = format!("xw{tag}-{}", std::process::id() % 10_000);
    let mut lab = WifiLab::start(kernel, &prefix, &dir).unwrap_or_else(|e| {
        let _ = std::fs::remove_dir_all(&dir);
        panic!("{kernel}: the Wi-Fi lab did not start: {e:#}")
    });
    let checks = f(&mut lab);
    println!(
        "{kernel}: {} (whole: {:.1} s)",
        lab.timing_line(),
        started.elapsed().as_secs_f64()
    );
    let verdict = Verdict::print(&checks);
    if !verdict.passed() {
        eprintln!("net-vm console:\n{}", lab.lab.net_vm.console_tail(40));
    }
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    verdict.assert(&kernel.to_string());
}

/// Every case on one kernel, `first` the supplicant of the main cases:
/// without the forwarder, the station associates (WPA2-PSK) and its own
/// traffic works (SLAAC, DHCPv4, pings both ways, TCP each way, one
/// station at the AP, only its and the AP's MAC on the air), and every
/// supplicant and EAPOL path associates and pings. Then through the
/// daemon (`--mode auto`): two VMs behind the router get SLAAC and DHCPv4
/// through the Wi-Fi port, ping both ways (both at once), 8 MiB of TCP
/// each way, status shows the port and both VMs' entries, the AP sees one
/// station and the air only its MAC, no other VLAN sees any of it; a
/// reassociation, a group rekey and a new station MAC; each supplicant
/// and EAPOL path associating again with the forwarder attached; a Wi-Fi
/// NIC hot-plugged; each supplicant roaming to a second BSS and back with
/// the forwarder attached (one EAPOL way each, the other on the other
/// kernel); a Wi-Fi NIC attached by the mdev hook with the daemon stopped.
fn every_case(tag: &str, kernel: GuestKernel, first: Supplicant) {
    let other = match first {
        Supplicant::WpaSupplicant => Supplicant::Iwd,
        Supplicant::Iwd => Supplicant::WpaSupplicant,
    };
    with_wifi_lab(tag, kernel, |lab| {
        let linux = kernel.linux();
        let label = format!("{linux}, {first}");
        let mut checks = Vec::new();
        let steps = (|| -> anyhow::Result<()> {
            lab.associate(first, Eapol::ControlPort)?;
            checks
                .extend(lab.station_traffic(&format!("{label}, no forwarder"), STATION_TCP_BYTES)?);
            for (supplicant, eapol) in [
                (first, Eapol::Netdev),
                (other, Eapol::ControlPort),
                (other, Eapol::Netdev),
            ] {
                lab.stop_station()?;
                lab.associate(supplicant, eapol)?;
                checks.extend(
                    lab.station_pings(&format!("{linux}, {supplicant}, {eapol}, no forwarder"))?,
                );
            }
            lab.stop_station()?;
            lab.associate(first, Eapol::ControlPort)?;
            checks.extend(lab.forwarder_cases(&label, VM_TCP_BYTES)?);
            checks.extend(lab.dhcp_flag_checks(&label)?);
            checks.extend(lab.station_events(&label)?);
            for (supplicant, eapol) in [
                (first, Eapol::Netdev),
                (other, Eapol::ControlPort),
                (other, Eapol::Netdev),
            ] {
                checks.extend(lab.eapol_with_forwarder(linux, supplicant, eapol)?);
            }
            checks.push(lab.hotplug(&label)?);
            // Roaming to a second BSS and back, with the forwarder
            // attached: each supplicant on each kernel, the EAPOL ways
            // swapped between the kernels (`first` differs), so the two
            // kernels roam every supplicant and EAPOL pair once (a round
            // takes ~30 s, most of it BSS 1 letting the station go). Then
            // the mdev hook alone.
            for (supplicant, eapol) in [(first, Eapol::Netdev), (other, Eapol::ControlPort)] {
                checks.extend(lab.roam_round(linux, supplicant, eapol)?);
            }
            checks.push(lab.mdev_hook(&label)?);
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
fn wifi_port_on_linux_6_1_with_wpa_supplicant_then_iwd() {
    every_case("61", GuestKernel::Debian12, Supplicant::WpaSupplicant);
}

#[test]
fn wifi_port_on_linux_6_12_with_iwd_then_wpa_supplicant() {
    every_case("612", GuestKernel::Debian13, Supplicant::Iwd);
}
