//! The Wi-Fi lab (issue 26): a radio world inside the net-vm guest.
//!
//! `mac80211_hwsim` makes three radios that hear each other. The second
//! one is moved into the namespace `ap`, where Debian's hostapd runs a
//! WPA2-PSK (CCMP) access point bridged (`br0`) to a veth whose other end
//! is the outside host, namespace `world`: it sends router advertisements
//! (radvd, prefix [`WORLD_PREFIX`]) and serves DHCPv4 (Debian's dnsmasq).
//! The first radio stays in the net-vm's own namespace as `wlan0`, the
//! station, run by wpa_supplicant or iwd ([`Supplicant`]), taking EAPOL
//! over the nl80211 control port or from the netdev ([`Eapol`]). The
//! `hwsim0` monitor shows every frame on the air with its 802.11
//! addresses; [`watch_transmitters`] counts the data frames per
//! transmitter.
//! The third radio (`wlan2`, in `ap` too) is the second BSS of the same
//! network for the roaming cases (`wifi/roam.rs`); `wifi/mdev.rs` proves
//! the mdev hook with a radio made at run time.
//!
//! One file per part: `world.rs` (the scripts: access points, outside
//! host, supplicants), `station.rs` (the station's own traffic),
//! `forwarder.rs` (the VMs through the forwarder), `events.rs`
//! (reassociation, rekey, a new MAC, each EAPOL way, hot-plug), `roam.rs`,
//! `mdev.rs`, `air.rs` (the radio monitor and the wire watches),
//! `hwsim.rs` (a radio made at run time), `bench.rs` (issue 26's row).
//!
//! The Debian programs run through their own loader from
//! [`WIFI_TOOLS`](super::initramfs::WIFI_TOOLS) (the image's one exemption
//! from "no dynamic ELF").
//!
//! ```text
//!  net-vm guest
//!   ns world: vworld 10.77.0.1 2001:db8:77::1 (radvd, dnsmasq)
//!        │ veth
//!   ns ap:    vap ── br0 ── wlan1 (hostapd, WPA2-PSK)
//!                             ┆ air (hwsim0 sees it)
//!   main ns:                 wlan0 (station) ── forwarder ── router NIC ══ router VM
//! ```

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{Guest, IN_NETNS, NetVmLab, NicModel, RouterNic, cases::check, initramfs::Contents};
use crate::{debian::GuestKernel, demo::checks::Check, packet::RawSocket, traffic};

mod air;
mod bench;
mod events;
mod forwarder;
mod hwsim;
mod mdev;
mod roam;
mod station;
mod world;

pub use air::{
    Watch, data_transmitter, dhcp_request, watch_dhcp_requests, watch_ethertype, watch_transmitters,
};
pub use bench::bench;
pub use hwsim::hwsim_new_radio;
pub use world::broadcast_answers;
use world::{DHCP_LOG, associated_script, station_script, world_script};

/// The network's name and passphrase (WPA2-PSK).
pub const SSID: &str = "xfd-lab";
const PASSPHRASE: &str = "xfd-lab-passphrase";

/// The outside host's addresses, and the prefix its RAs announce.
pub const WORLD_ADDR: &str = "10.77.0.1";
pub const WORLD_ADDR6: &str = "2001:db8:77::1";
pub const WORLD_PREFIX: &str = "2001:db8:77::";

/// Runs a Wi-Fi program: `{RUN}hostapd …`.
const RUN: &str = "/wifi-tools/run/";
const TCP_PORT: u16 = 5201;

/// The MACs of the VMs behind the router on the Wi-Fi port's VLAN.
pub const VM_MACS: [&str; 2] = ["02:00:00:00:aa:01", "02:00:00:00:bb:01"];

/// Who runs the station.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supplicant {
    /// Debian's wpa_supplicant 2.10.
    WpaSupplicant,
    /// Debian's iwd 2.3 (what Spectrum's net-vm ships, built there with
    /// musl), on a D-Bus system bus of its own.
    Iwd,
}

impl std::fmt::Display for Supplicant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Supplicant::WpaSupplicant => "wpa_supplicant",
            Supplicant::Iwd => "iwd",
        })
    }
}

/// How the supplicant takes the 4-way handshake's EAPOL frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eapol {
    /// Over nl80211 (the control port): both programs' default.
    ControlPort,
    /// From the netdev, a packet socket on `wlan0` (wpa_supplicant `-p
    /// control_port=0`, iwd `ControlPortOverNL80211=false`): what the
    /// forwarder's programs on the port see too.
    Netdev,
}

impl std::fmt::Display for Eapol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Eapol::ControlPort => "EAPOL over nl80211",
            Eapol::Netdev => "EAPOL from the netdev",
        })
    }
}

/// The lab: the net-vm with the radio world, one Ethernet network (a
/// second VID, for isolation), the router VM.
pub struct WifiLab {
    pub lab: NetVmLab,
    /// The station's MAC (`wlan0`) and the access point's (`wlan1`).
    pub station_mac: String,
    pub ap_mac: String,
    pub supplicant: Option<(Supplicant, Eapol)>,
    /// What took how long (boot, the radio world, association…).
    pub timings: Vec<(String, Duration)>,
}

impl WifiLab {
    /// Boots the guests on `kernel` (the Wi-Fi kernel and programs) and
    /// sets up the radio world; no station program runs yet.
    pub fn start(kernel: GuestKernel, prefix: &str, dir: &Path) -> anyhow::Result<Self> {
        let started = Instant::now();
        let lab = NetVmLab::start(&super::Options {
            kernel,
            arch: crate::debian::Arch::Amd64,
            nics: vec![NicModel::VirtioNet],
            router_nic: RouterNic::QemuDefault,
            router_queues: 1,
            prefix: prefix.to_owned(),
            contents: Contents::with_wifi()?,
            dir: dir.to_path_buf(),
        })?;
        let mut me = Self {
            lab,
            station_mac: String::new(),
            ap_mac: String::new(),
            supplicant: None,
            timings: vec![("boot".to_owned(), started.elapsed())],
        };
        let t = Instant::now();
        me.lab
            .net_vm
            .sh_within(&world_script(), Duration::from_secs(120))
            .context("the radio world did not come up")?;
        me.timings.push(("radio world".to_owned(), t.elapsed()));
        me.station_mac = me
            .lab
            .net_vm
            .sh("cat /sys/class/net/wlan0/address")?
            .trim()
            .to_owned();
        me.ap_mac = me.lab.net_vm.sh("cat /run/ap.mac")?.trim().to_owned();
        Ok(me)
    }

    /// Runs `script` in the access point's namespace.
    pub fn ap(&mut self, script: &str) -> anyhow::Result<String> {
        self.lab
            .net_vm
            .sh(&format!("{IN_NETNS}ap sh -c '{script}'"))
    }

    /// Starts `supplicant` on the station and waits until it has its keys
    /// (3 minutes at most: emulation is slow); returns how long it took.
    pub fn associate(&mut self, supplicant: Supplicant, eapol: Eapol) -> anyhow::Result<Duration> {
        let t = Instant::now();
        self.lab.net_vm.sh(&station_script(supplicant, eapol))?;
        self.supplicant = Some((supplicant, eapol));
        self.wait_associated(Duration::from_secs(180))?;
        let took = t.elapsed();
        self.timings
            .push((format!("association ({supplicant}, {eapol})"), took));
        Ok(took)
    }

    /// Waits until the station has its keys again.
    pub fn wait_associated(&mut self, within: Duration) -> anyhow::Result<()> {
        let (supplicant, _) = self.supplicant.context("no supplicant runs")?;
        let deadline = Instant::now() + within;
        let script = associated_script(supplicant);
        while self
            .lab
            .net_vm
            .sh_status(script, Duration::from_secs(30))?
            .0
            != 0
        {
            if Instant::now() > deadline {
                let log = self
                    .lab
                    .net_vm
                    .sh("tail -n 30 /tmp/wpa.log /tmp/iwd.log 2>/dev/null; grep -v 'RX\\|TX\\|nl80211' /tmp/hostapd.log | tail -n 20; true")
                    .unwrap_or_default();
                bail!("the station ({supplicant}) did not associate in {within:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    /// The stations the access point lists (`iw dev wlan1 station dump`).
    pub fn ap_stations(&mut self) -> anyhow::Result<Vec<String>> {
        self.stations_of("wlan1")
    }

    /// Stops the station's supplicant and waits until the AP lists no
    /// station (wlan0 keeps its addresses).
    pub fn stop_station(&mut self) -> anyhow::Result<()> {
        self.lab.net_vm.sh(
            "for p in /run/wpa.pid /run/iwd.pid; do\n\
               [ -e $p ] || continue\n\
               pid=$(cat $p); rm -f $p; kill $pid 2>/dev/null || continue\n\
               i=0; while [ -e /proc/$pid ]; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done\n\
             done\n\
             ip link set wlan0 up",
        )?;
        self.supplicant = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ap_stations()?.is_empty() {
            if Instant::now() > deadline {
                bail!("the AP still lists a station after the supplicant stopped");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    }

    /// Polls `script` (in the net-vm) until it prints something.
    fn wait_for(&mut self, script: &str, within: Duration) -> anyhow::Result<Option<String>> {
        let deadline = Instant::now() + within;
        loop {
            let (_, out) = self.lab.net_vm.sh_status(script, Duration::from_secs(30))?;
            if !out.trim().is_empty() {
                return Ok(Some(out.trim().to_owned()));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs `script` in the router VM's namespace `ns`; exit status, output.
    fn in_vm(&mut self, ns: &str, script: &str, within: Duration) -> anyhow::Result<(i32, String)> {
        self.lab
            .router
            .sh_status(&format!("{IN_NETNS}{ns} sh -c '{script}'"), within)
    }

    fn guest(&mut self, side: Side) -> &mut Guest {
        match side {
            Side::NetVm => &mut self.lab.net_vm,
            Side::Router => &mut self.lab.router,
        }
    }

    /// A summary of [`Self::timings`].
    pub fn timing_line(&self) -> String {
        self.timings
            .iter()
            .map(|(what, d)| format!("{what} {:.1} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A VM's addresses through the Wi-Fi port: its DHCPv4 lease and its
/// SLAAC address, if it got them.
pub type VmAddresses = (Option<String>, Option<String>);

/// Which guest runs a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    NetVm,
    Router,
}

/// A transfer's rate by the receiver's clock (accept to end of stream).
fn mbit(got: &traffic::Received) -> f64 {
    got.bytes as f64 * 8.0 / 1000.0 / (got.millis.max(1) as f64)
}

/// ping's summary line, else its whole output.
fn ping_summary(out: &str) -> String {
    out.lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or(out.trim())
        .to_owned()
}
