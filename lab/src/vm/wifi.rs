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
//! addresses; [`transmitters`] counts the data frames per transmitter.
//! The third radio (`wlan2`, in `ap` too) is the second BSS of the same
//! network for the roaming cases (`wifi/roam.rs`); `wifi/mdev.rs` proves
//! the mdev hook with a radio made at run time.
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

mod mdev;
mod roam;

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

/// The radio world's setup: namespaces, the access point, the outside host.
fn world_script() -> String {
    let dhcp_server = dhcp_server();
    format!(
        r#"set -e
modprobe bridge
modprobe veth
for m in ccm gcm cmac ctr; do modprobe $m 2>/dev/null || true; done
# wlan2: the second BSS of the network (roam.rs), hostapd started there.
modprobe mac80211_hwsim radios=3
i=0; while [ ! -e /sys/class/net/wlan2 ]; do i=$((i+1)); [ $i -lt 100 ]; sleep 0.1; done
ip link set hwsim0 up
sysctl -qw net.ipv6.conf.wlan0.disable_ipv6=0
mkdir -p /run/netns /run/hostapd /var/lib/iwd /etc/iwd
for ns in ap world; do
  touch /run/netns/$ns
  unshare --net=/run/netns/$ns true
  {IN_NETNS}$ns sh -c 'ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=0; sysctl -qw net.ipv6.conf.default.disable_ipv6=0'
done
# sysfs shows this namespace's interfaces: the AP's MAC before it leaves.
cat /sys/class/net/wlan1/address > /run/ap.mac
{RUN}iw phy $(cat /sys/class/net/wlan1/phy80211/name) set netns name ap
cat /sys/class/net/wlan2/address > /run/ap2.mac
{RUN}iw phy $(cat /sys/class/net/wlan2/phy80211/name) set netns name ap
A="{IN_NETNS}ap"; O="{IN_NETNS}world"
rm -f /tmp/.in-world
$O sh -c 'touch /tmp/.in-world; exec sleep 1000000' >/dev/null 2>&1 &
echo $! > /run/world.pid
while [ ! -e /tmp/.in-world ]; do sleep 0.05; done
# busybox's ip names the peer veth0.
$A ip link add vap type veth peer name vworld
$A ip link set veth0 name vworld 2>/dev/null || true
$A ip link set vworld netns $(cat /run/world.pid)
$A ip link add br0 type bridge
$A ip link set vap master br0
$A ip link set vap up
$A ip link set br0 up
$O ip link set vworld up
$O ip addr add {WORLD_ADDR}/24 dev vworld
$O ip -6 addr add {WORLD_ADDR6}/64 dev vworld
$O sysctl -qw net.ipv6.conf.all.forwarding=1
cat > /tmp/hostapd.conf <<EOF
interface=wlan1
bridge=br0
driver=nl80211
ssid={SSID}
hw_mode=g
channel=1
wpa=2
wpa_passphrase={PASSPHRASE}
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_group_rekey=20
ctrl_interface=/run/hostapd
EOF
cat > /tmp/radvd.conf <<EOF
interface vworld {{
  AdvSendAdvert on;
  MinRtrAdvInterval 3;
  MaxRtrAdvInterval 4;
  prefix {WORLD_PREFIX}/64 {{ AdvOnLink on; AdvAutonomous on; }};
}};
EOF
chmod 644 /tmp/radvd.conf
cat > /tmp/udhcpc.script <<'EOF'
#!/bin/sh
case "$1" in bound|renew) ip addr add "$ip/${{mask:-24}}" dev "$interface" ;; esac
exit 0
EOF
chmod +x /tmp/udhcpc.script
$A {RUN}hostapd -d -B -P /run/hostapd.pid -f /tmp/hostapd.log /tmp/hostapd.conf
$O {RUN}radvd -C /tmp/radvd.conf -p /run/radvd.pid -n -m logfile -l /tmp/radvd.log >/dev/null 2>&1 &
$O {dhcp_server} >/dev/null 2>&1 &
i=0; until grep -q 'DHCP, IP range' {DHCP_LOG} 2>/dev/null; do i=$((i+1)); [ $i -lt 100 ]; sleep 0.1; done
i=0; until grep -q AP-ENABLED /tmp/hostapd.log; do i=$((i+1)); [ $i -lt 300 ]; sleep 0.1; done
echo AP up"#
    )
}

/// dnsmasq's log in the guest (namespace `world` shares the guest's files).
const DHCP_LOG: &str = "/tmp/dnsmasq.log";

/// The outside host's DHCPv4 server (namespace `world`): Debian's dnsmasq.
/// To a client without an address it answers by broadcast when the
/// request's broadcast flag is set, else by unicast to `yiaddr` at `chaddr`
/// (RFC 2131 4.1; dnsmasq's `src/dhcp.c`, seen in a capture: OFFER and ACK
/// to the client's MAC). A VM behind the station therefore gets a lease
/// only if the station translation set the flag: a unicast to the VM's MAC
/// is dropped by the AP (no associated station has it). busybox udhcpd,
/// the lab's server before, broadcast every such reply whatever the flag.
/// `--log-dhcp` writes "broadcast response" for each broadcast answer:
/// [`broadcast_answers`]. No DNS, no ping before an offer (3 s saved), no
/// privilege drop (the guest has no user `dnsmasq`).
fn dhcp_server() -> String {
    format!(
        "{RUN}dnsmasq --keep-in-foreground --conf-file=/dev/null --user= --pid-file= \
         --port=0 --no-hosts --no-resolv --no-ping --interface=vworld --bind-interfaces \
         --dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h \
         --dhcp-leasefile=/tmp/dnsmasq.leases --log-dhcp --log-facility={DHCP_LOG}"
    )
}

/// From dnsmasq's `--log-dhcp` log: per client MAC, how many DHCP
/// transactions (xids of its DISCOVERs and REQUESTs) it had, and how many
/// of them dnsmasq answered by broadcast ("XID broadcast response": the
/// request carried the broadcast flag).
pub fn broadcast_answers(log: &str) -> BTreeMap<String, (usize, usize)> {
    // "Dec  6 09:30:28 dnsmasq-dhcp[31953]: 917979921 DHCPDISCOVER(vworld) MAC"
    let entries = log
        .lines()
        .filter_map(|l| l.split_once("]: ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once(' '));
    let mut xids: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let mut broadcast = std::collections::BTreeSet::new();
    for (xid, what) in entries {
        if what.trim() == "broadcast response" {
            broadcast.insert(xid);
        } else if what.starts_with("DHCPDISCOVER(") || what.starts_with("DHCPREQUEST(") {
            // "DHCPREQUEST(IF) [ADDR ]MAC[ NAME or an error]"
            let mut words = what.split_whitespace();
            if let Some(mac) = words.find(|w| w.len() == 17 && w.matches(':').count() == 5) {
                xids.entry(mac.to_owned()).or_default().insert(xid);
            }
        }
    }
    xids.into_iter()
        .map(|(mac, x)| {
            let answered = x.iter().filter(|x| broadcast.contains(*x)).count();
            (mac, (x.len(), answered))
        })
        .collect()
}

/// Starts the station's supplicant on `wlan0`.
fn station_script(supplicant: Supplicant, eapol: Eapol) -> String {
    match supplicant {
        Supplicant::WpaSupplicant => {
            let param = match eapol {
                Eapol::ControlPort => "",
                Eapol::Netdev => "-p control_port=0",
            };
            format!(
                r#"set -e
cat > /tmp/wpa.conf <<EOF
ctrl_interface=/run/wpa_supplicant
network={{
  ssid="{SSID}"
  psk="{PASSPHRASE}"
  key_mgmt=WPA-PSK
  proto=RSN
  pairwise=CCMP
  group=CCMP
  scan_freq=2412
}}
EOF
{RUN}wpa_supplicant -B -i wlan0 -D nl80211 {param} -c /tmp/wpa.conf -f /tmp/wpa.log -P /run/wpa.pid"#
            )
        }
        Supplicant::Iwd => {
            let nl80211 = match eapol {
                Eapol::ControlPort => "true",
                Eapol::Netdev => "false",
            };
            format!(
                r#"set -e
mkdir -p /run/dbus /tmp/iwd /var/lib/iwd
[ -e /etc/machine-id ] || echo 0123456789abcdef0123456789abcdef > /etc/machine-id
cat > /tmp/dbus.conf <<'EOF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
[ -S /run/dbus/system_bus_socket ] || {RUN}dbus-daemon --config-file=/tmp/dbus.conf --fork --nopidfile --nosyslog
cat > /tmp/iwd/main.conf <<EOF
[General]
EnableNetworkConfiguration=false
ControlPortOverNL80211={nl80211}
[DriverQuirks]
DefaultInterface=*
EOF
cat > /var/lib/iwd/{SSID}.psk <<EOF
[Security]
Passphrase={PASSPHRASE}
EOF
modprobe -a af_alg algif_hash algif_skcipher md4 sha512_generic ecb des_generic 2>/dev/null || true
CONFIGURATION_DIRECTORY=/tmp/iwd STATE_DIRECTORY=/var/lib/iwd {RUN}iwd -i wlan0 -d >/tmp/iwd.log 2>&1 &
echo $! > /run/iwd.pid"#
            )
        }
    }
}

/// Whether the station has its keys (the 4-way handshake done).
fn associated_script(supplicant: Supplicant) -> &'static str {
    match supplicant {
        Supplicant::WpaSupplicant => {
            "/wifi-tools/run/wpa_cli -p /run/wpa_supplicant -i wlan0 status | grep -q wpa_state=COMPLETED"
        }
        Supplicant::Iwd => {
            "/wifi-tools/run/iwctl station wlan0 show 2>/dev/null | grep -q 'State *connected'"
        }
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

    /// After [`Self::station_traffic`], with another supplicant or EAPOL
    /// path: associated, the station pings the outside host (IPv4, IPv6)
    /// with the addresses it already has.
    pub fn station_pings(&mut self, label: &str) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();
        // A supplicant that took the link down took its IPv6 addresses
        // with it: SLAAC gives them back at the next RA (every 3-4 s).
        self.wait_for(
            "ip -6 addr show dev wlan0 | grep -v tentative | grep -o '2001:db8:77:[0-9a-f:]*'",
            Duration::from_secs(20),
        )?;
        for (what, cmd) in [
            ("IPv4", format!("ping -c 2 -W 2 {WORLD_ADDR}")),
            ("IPv6", format!("ping6 -c 2 -W 2 {WORLD_ADDR6}")),
        ] {
            let (code, out) = self.lab.net_vm.sh_status(&cmd, Duration::from_secs(30))?;
            checks.push(check(
                format!("{label}: ping station → outside, {what}"),
                code == 0,
                ping_summary(&out),
            ));
        }
        Ok(checks)
    }

    /// The station's own traffic, no forwarder: SLAAC and a DHCPv4 lease
    /// from the outside host, ping and ping6 both ways, TCP each way
    /// (every byte checked), one station at the AP, and only the station's
    /// and the AP's addresses as transmitters on the air.
    pub fn station_traffic(&mut self, label: &str, tcp_bytes: u64) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();
        let air = self.start_air_watch(120)?;
        // SLAAC: the RAs come every 3-4 s.
        let v6 = self.wait_for(
            "ip -6 addr show dev wlan0 | grep -o '2001:db8:77:[0-9a-f:]*' | head -n 1",
            Duration::from_secs(30),
        )?;
        checks.push(check(
            format!("{label}: the station gets a SLAAC address"),
            v6.is_some(),
            format!("wlan0: {v6:?}"),
        ));
        let (code, out) = self.lab.net_vm.sh_status(
            "udhcpc -i wlan0 -n -q -t 5 -T 2 -s /tmp/udhcpc.script >/tmp/udhcpc.log 2>&1\n\
             ip -4 addr show dev wlan0 | grep -o '10\\.77\\.0\\.[0-9]*' | head -n 1",
            Duration::from_secs(60),
        )?;
        let v4 = (code == 0 && !out.trim().is_empty()).then(|| out.trim().to_owned());
        checks.push(check(
            format!("{label}: the station gets a DHCPv4 lease"),
            v4.is_some(),
            format!("wlan0: {}", out.trim()),
        ));
        let mut pings = vec![
            (
                "station → outside, IPv4",
                format!("ping -c 3 -W 2 {WORLD_ADDR}"),
            ),
            (
                "station → outside, IPv6",
                format!("ping6 -c 3 -W 2 {WORLD_ADDR6}"),
            ),
        ];
        if let Some(v4) = &v4 {
            pings.push((
                "outside → station, IPv4",
                format!("{IN_NETNS}world ping -c 3 -W 2 {v4}"),
            ));
        }
        if let Some(v6) = &v6 {
            pings.push((
                "outside → station, IPv6",
                format!("{IN_NETNS}world ping6 -c 3 -W 2 {v6}"),
            ));
        }
        for (what, cmd) in pings {
            let (code, out) = self.lab.net_vm.sh_status(&cmd, Duration::from_secs(30))?;
            checks.push(check(
                format!("{label}: ping {what}"),
                code == 0,
                ping_summary(&out),
            ));
        }
        if let Some(v4) = &v4 {
            checks.push(self.tcp(
                label,
                "station → outside",
                (None, "world", WORLD_ADDR),
                tcp_bytes,
                1,
            )?);
            checks.push(self.tcp(
                label,
                "outside → station",
                (Some("world"), "", v4),
                tcp_bytes,
                2,
            )?);
        }
        let stations = self.ap_stations()?;
        checks.push(check(
            format!("{label}: the AP lists exactly the station"),
            stations == [self.station_mac.clone()],
            format!("station dump: {stations:?}"),
        ));
        let seen = self.air_transmitters(air)?;
        let strangers: Vec<_> = seen
            .keys()
            .filter(|m| **m != self.station_mac && **m != self.ap_mac)
            .collect();
        checks.push(check(
            format!("{label}: on the air only the station and the AP transmit data"),
            strangers.is_empty() && seen.contains_key(&self.station_mac),
            format!("data frames by transmitter: {seen:?}"),
        ));
        Ok(checks)
    }

    /// A bulk TCP transfer of `bytes` from the sender's namespace (`None`:
    /// the net-vm's own) to a receiver in `to_ns` ("" = own) at `to`.
    fn tcp(
        &mut self,
        label: &str,
        what: &str,
        (from_ns, to_ns, to): (Option<&str>, &str, &str),
        bytes: u64,
        seed: u32,
    ) -> anyhow::Result<Check> {
        let enter = |ns: &str| {
            if ns.is_empty() {
                String::new()
            } else {
                format!("{IN_NETNS}{ns} ")
            }
        };
        let script = format!(
            "rm -f /tmp/tcp.ready /tmp/tcp.out\n\
             {rx}xdp-forwarder-lab guest tcp-recv --port {TCP_PORT} --seed {seed} --seconds 100 \
             --ready /tmp/tcp.ready --out /tmp/tcp.out >/dev/null 2>&1 &\n\
             while [ ! -e /tmp/tcp.ready ]; do sleep 0.1; done\n\
             {tx}xdp-forwarder-lab guest tcp-send --to {to} --port {TCP_PORT} --bytes {bytes} \
             --seed {seed} --seconds 90 >/dev/null 2>&1\n\
             while [ ! -e /tmp/tcp.out ]; do sleep 0.2; done; cat /tmp/tcp.out",
            rx = enter(to_ns),
            tx = enter(from_ns.unwrap_or("")),
        );
        let t = Instant::now();
        let out = self
            .lab
            .net_vm
            .sh_within(&script, Duration::from_secs(150))?;
        let got = traffic::Received::parse(out.trim()).unwrap_or_default();
        Ok(check(
            format!("{label}: TCP {what}, every byte checked"),
            got.complete(bytes),
            format!(
                "{} of {bytes} bytes in {:.1} s ({})",
                got.bytes,
                t.elapsed().as_secs_f64(),
                out.trim()
            ),
        ))
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

    /// Starts counting the data frames on the air by transmitter (for at
    /// most `seconds`); [`Self::air_transmitters`] stops and reads it.
    pub fn start_air_watch(&mut self, seconds: u32) -> anyhow::Result<u32> {
        self.lab.net_vm.sh(&format!(
            "rm -f /tmp/air.ready /tmp/air.out\n\
             xdp-forwarder-lab guest air-transmitters --iface hwsim0 --seconds {seconds} \
             --ready /tmp/air.ready --out /tmp/air.out >/tmp/air.log 2>&1 &\n\
             echo $! > /run/air.pid\n\
             while [ ! -e /tmp/air.ready ]; do sleep 0.1; done"
        ))?;
        Ok(seconds)
    }

    /// What the watch started by [`Self::start_air_watch`] counted: data
    /// frames per transmitter address (802.11 addr2).
    pub fn air_transmitters(&mut self, _watch: u32) -> anyhow::Result<BTreeMap<String, u64>> {
        let out = self.lab.net_vm.sh_within(
            "sleep 0.6; kill $(cat /run/air.pid) 2>/dev/null || true\n\
             cat /tmp/air.out",
            Duration::from_secs(30),
        )?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(m, n)| Some((m.to_owned(), n.trim().parse().ok()?)))
            .collect())
    }

    /// In the router VM, the VMs behind the Wi-Fi port's VLAN `vid`: an
    /// 802.1Q interface of the trunk in a bridge, and per VM ([`VM_MACS`])
    /// a veth into a namespace `vmN` of its own (IPv6 on), MAC of its own.
    pub fn vm_hosts(&mut self, vid: u16) -> anyhow::Result<()> {
        let mut script = format!(
            "set -e\n\
             modprobe bridge\n\
             modprobe veth\n\
             ip link set eth0 up\n\
             ip link add link eth0 name wv type vlan id {vid}\n\
             ip link add wbr type bridge\n\
             ip link set wv master wbr\n\
             ip link set wv up\n\
             ip link set wbr up\n"
        );
        for (n, mac) in (1..).zip(VM_MACS) {
            let ns = format!("vm{n}");
            script.push_str(&format!(
                "mkdir -p /run/netns\n\
                 touch /run/netns/{ns}\n\
                 unshare --net=/run/netns/{ns} true\n\
                 {IN_NETNS}{ns} sh -c 'ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=0; sysctl -qw net.ipv6.conf.default.disable_ipv6=0'\n\
                 ip link add p{n} type veth peer name h{n}\n\
                 ip link set veth0 name h{n} 2>/dev/null || true\n\
                 ip link set h{n} address {mac}\n\
                 ip link set p{n} master wbr\n\
                 ip link set p{n} up\n"
            ));
            script.push_str(&super::guest::move_to_netns(&format!("h{n}"), &ns));
            script.push_str(&format!("{IN_NETNS}{ns} ip link set h{n} up\n"));
        }
        self.lab.router.sh(&script)?;
        Ok(())
    }

    /// Starts the daemon (`xdp-forwarder run`, `--mode auto`, as a
    /// service would; the lab's radio monitor `hwsim0` is no NIC and is
    /// left alone) and waits until it attached the router NIC, network 1's
    /// NIC and `wlan0`; returns the VIDs of network 1 and of `wlan0`.
    pub fn start_daemon(&mut self) -> anyhow::Result<(u16, u16)> {
        self.lab.net_vm.sh(
            "xdp-forwarder run --log-format json --ignore 'hwsim*' > /tmp/daemon.log 2>&1 &\n\
             echo $! > /run/daemon.pid",
        )?;
        let mut want = self.lab.port_names();
        want.push("wlan0".to_owned());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ports = self.ports()?;
            let attached = |name: &str| {
                ports
                    .iter()
                    .find(|p| p["name"] == name && p["attached"] == true)
            };
            if want.iter().all(|w| attached(w).is_some()) {
                let vid = |name: &str| {
                    attached(name)
                        .and_then(|p| p["vid"].as_u64())
                        .map(|v| v as u16)
                        .with_context(|| format!("{name} has no VID"))
                };
                let eth = self.lab.networks[0].guest_if.clone();
                return Ok((vid(&eth)?, vid("wlan0")?));
            }
            if Instant::now() > deadline {
                let log = self.lab.net_vm.sh("tail -n 20 /tmp/daemon.log; true")?;
                bail!("the daemon did not attach {want:?} in 30 s: ports {ports:?}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The ports `status --json` lists (none before anything is pinned).
    pub fn ports(&mut self) -> anyhow::Result<Vec<serde_json::Value>> {
        let (code, out) = self
            .lab
            .net_vm
            .sh_status("xdp-forwarder status --json", Duration::from_secs(30))?;
        if code != 0 {
            return Ok(Vec::new());
        }
        let st: serde_json::Value =
            serde_json::from_str(&out).with_context(|| format!("status --json printed {out:?}"))?;
        Ok(st["ports"].as_array().cloned().unwrap_or_default())
    }

    /// `wlan0`'s entry in `status --json`.
    pub fn wlan0_status(&mut self) -> anyhow::Result<serde_json::Value> {
        self.ports()?
            .into_iter()
            .find(|p| p["name"] == "wlan0")
            .context("status lists no wlan0")
    }

    /// Runs `script` in the router VM's namespace `ns`; exit status, output.
    fn in_vm(&mut self, ns: &str, script: &str, within: Duration) -> anyhow::Result<(i32, String)> {
        self.lab
            .router
            .sh_status(&format!("{IN_NETNS}{ns} sh -c '{script}'"), within)
    }

    /// The VMs' addresses through the Wi-Fi port: each VM's SLAAC address
    /// (from the outside's RAs) and DHCPv4 lease (busybox udhcpc, whose
    /// request the router translates: the broadcast flag). Checks; and the
    /// addresses found, per VM (IPv4, IPv6).
    pub fn vm_addresses(&mut self, label: &str) -> anyhow::Result<(Vec<Check>, Vec<VmAddresses>)> {
        self.lab.router.sh(
            "cat > /tmp/udhcpc.script <<'EOF'\n\
             #!/bin/sh\n\
             case \"$1\" in bound|renew) ip addr add \"$ip/${mask:-24}\" dev \"$interface\" ;; esac\n\
             exit 0\n\
             EOF\n\
             chmod +x /tmp/udhcpc.script",
        )?;
        let mut checks = Vec::new();
        let mut found = Vec::new();
        for n in 1..=VM_MACS.len() {
            let (code, out) = self.in_vm(
                &format!("vm{n}"),
                &format!(
                    "udhcpc -i h{n} -n -q -t 10 -T 3 -s /tmp/udhcpc.script >/tmp/udhcpc{n}.log 2>&1; \
                     ip -4 addr show dev h{n} | grep -o \"10\\.77\\.0\\.[0-9]*\" | head -n 1"
                ),
                Duration::from_secs(60),
            )?;
            let v4 = (code == 0 && !out.trim().is_empty()).then(|| out.trim().to_owned());
            checks.push(check(
                format!("{label}: VM {n} gets a DHCPv4 lease through the Wi-Fi port"),
                v4.is_some(),
                format!("h{n}: {}", out.trim()),
            ));
            let deadline = Instant::now() + Duration::from_secs(30);
            let v6 = loop {
                let (_, out) = self.in_vm(
                    &format!("vm{n}"),
                    &format!(
                        "ip -6 addr show dev h{n} | grep -v tentative | grep -o \"2001:db8:77:[0-9a-f:]*\" | head -n 1"
                    ),
                    Duration::from_secs(20),
                )?;
                if !out.trim().is_empty() {
                    break Some(out.trim().to_owned());
                }
                if Instant::now() > deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(500));
            };
            checks.push(check(
                format!("{label}: VM {n} gets a SLAAC address through the Wi-Fi port"),
                v6.is_some(),
                format!("h{n}: {v6:?}"),
            ));
            found.push((v4, v6));
        }
        Ok((checks, found))
    }

    /// Both VMs ping the outside host at once (IPv4 and IPv6: each must
    /// get its own replies), then the outside host pings each VM.
    pub fn vm_pings(&mut self, label: &str, addrs: &[VmAddresses]) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();
        for (family, ping, to) in [("IPv4", "ping", WORLD_ADDR), ("IPv6", "ping6", WORLD_ADDR6)] {
            let mut script = String::new();
            for n in 1..=VM_MACS.len() {
                script.push_str(&format!(
                    "({IN_NETNS}vm{n} {ping} -c 4 -W 3 {to} > /tmp/ping{n}.out 2>&1; echo \"rc=$?\" >> /tmp/ping{n}.out) &\n"
                ));
            }
            script.push_str("wait\n");
            for n in 1..=VM_MACS.len() {
                script.push_str(&format!("echo @{n}; cat /tmp/ping{n}.out\n"));
            }
            let out = self
                .lab
                .router
                .sh_within(&script, Duration::from_secs(60))?;
            for n in 1..=VM_MACS.len() {
                let part = out
                    .split(&format!("@{n}\n"))
                    .nth(1)
                    .and_then(|r| r.split('@').next())
                    .unwrap_or("");
                checks.push(check(
                    format!("{label}: VM {n} → outside, {family}, both VMs at once"),
                    part.contains("rc=0"),
                    ping_summary(part),
                ));
            }
        }
        for (n, (v4, v6)) in (1..).zip(addrs) {
            for (family, ping, addr) in [("IPv4", "ping", v4), ("IPv6", "ping6", v6)] {
                let Some(addr) = addr else { continue };
                let (code, out) = self.lab.net_vm.sh_status(
                    &format!("{IN_NETNS}world {ping} -c 3 -W 3 {addr}"),
                    Duration::from_secs(30),
                )?;
                checks.push(check(
                    format!("{label}: outside → VM {n}, {family}"),
                    code == 0,
                    ping_summary(&out),
                ));
            }
        }
        Ok(checks)
    }

    /// One bulk TCP transfer of `bytes` (pattern `seed`) to `to`: the
    /// receiver in `rx` (guest, namespace), the sender in `tx`. What the
    /// receiver counted (its clock: accept to end of stream), the wall time,
    /// and the sender's last words.
    pub fn transfer(
        &mut self,
        rx: (Side, &str),
        tx: (Side, &str),
        to: &str,
        bytes: u64,
        seed: u32,
    ) -> anyhow::Result<(traffic::Received, Duration, String)> {
        // "": the guest's own namespace (the station's).
        let enter = |ns: &str| {
            if ns.is_empty() {
                String::new()
            } else {
                format!("{IN_NETNS}{ns} ")
            }
        };
        self.guest(rx.0).sh(&format!(
            "rm -f /tmp/tcp.ready /tmp/tcp.out\n\
             {}xdp-forwarder-lab guest tcp-recv --port {TCP_PORT} --seed {seed} \
             --seconds 150 --ready /tmp/tcp.ready --out /tmp/tcp.out >/dev/null 2>&1 &\n\
             while [ ! -e /tmp/tcp.ready ]; do sleep 0.1; done",
            enter(rx.1)
        ))?;
        let t = Instant::now();
        let sent = self.guest(tx.0).sh_within(
            &format!(
                "{}xdp-forwarder-lab guest tcp-send --to {to} --port {TCP_PORT} \
                 --bytes {bytes} --seed {seed} --seconds 140",
                enter(tx.1)
            ),
            Duration::from_secs(160),
        );
        let took = t.elapsed();
        let out = self
            .guest(rx.0)
            .sh_within(
                "i=0; while [ ! -e /tmp/tcp.out ]; do i=$((i+1)); [ $i -lt 150 ] || exit 1; sleep 0.2; done; cat /tmp/tcp.out",
                Duration::from_secs(40),
            )
            .unwrap_or_else(|e| format!("{e:#}"));
        let got = traffic::Received::parse(out.trim()).unwrap_or_default();
        let sent = sent.map_or_else(|e| format!("{e:#}"), |s| s.trim().to_owned());
        Ok((got, took, sent))
    }

    fn guest(&mut self, side: Side) -> &mut Guest {
        match side {
            Side::NetVm => &mut self.lab.net_vm,
            Side::Router => &mut self.lab.router,
        }
    }

    /// `bytes` of TCP from VM 1 (IPv4 `vm1`) to the outside host and back,
    /// every byte checked.
    pub fn vm_tcp(&mut self, label: &str, vm1: &str, bytes: u64) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();
        for (what, rx, tx, to, seed) in [
            (
                "VM 1 → outside",
                (Side::NetVm, "world"),
                (Side::Router, "vm1"),
                WORLD_ADDR,
                11,
            ),
            (
                "outside → VM 1",
                (Side::Router, "vm1"),
                (Side::NetVm, "world"),
                vm1,
                12,
            ),
        ] {
            let (got, took, sent) = self.transfer(rx, tx, to, bytes, seed)?;
            checks.push(check(
                format!(
                    "{label}: TCP {what}, {} MiB, every byte checked",
                    bytes >> 20
                ),
                got.complete(bytes),
                format!(
                    "{} of {bytes} bytes in {:.1} s ({:.0} Mbit/s by the receiver's clock); \
                     receiver: {}; sender: {sent}",
                    got.bytes,
                    took.as_secs_f64(),
                    mbit(&got),
                    got.line(),
                ),
            ));
        }
        Ok(checks)
    }

    /// `status --json` of `wlan0`: kind `wifi`, the station's MAC, and a
    /// table entry for each VM that sent (`vms`: their MACs).
    pub fn status_check(&mut self, label: &str, vms: &[&str]) -> anyhow::Result<Check> {
        let port = self.wlan0_status()?;
        let nat = &port["station_nat"];
        let table: Vec<String> = nat["table"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some(format!("{} {}", e["address"].as_str()?, e["mac"].as_str()?)))
            .collect();
        let has = |mac: &str| table.iter().any(|e| e.ends_with(mac));
        Ok(check(
            format!("{label}: status shows wlan0 as a Wi-Fi port with both VMs in its table"),
            port["kind"] == "wifi"
                && nat["station_mac"] == self.station_mac.as_str()
                && vms.iter().all(|m| has(m)),
            format!(
                "kind {}, mode {} on {}, station_mac {}, entries {}, learned {}, misses {}, eapol {}; table: {}",
                port["kind"],
                port["mode"],
                port["hook"],
                nat["station_mac"],
                nat["entries"],
                nat["learned"],
                nat["misses"],
                nat["eapol"],
                table.join(", ")
            ),
        ))
    }

    /// What network 1's VLAN host (router VM, namespace `lan1`) received:
    /// its interface's rx_packets.
    pub fn other_vlan_rx(&mut self) -> anyhow::Result<u64> {
        let out = self
            .lab
            .router
            .sh(&format!("{IN_NETNS}lan1 cat /proc/net/dev"))?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix("vl1:"))
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .context("lan1 has no vl1")
    }

    /// The checks that the AP still lists the station alone and that only
    /// the station and the AP transmitted data on the air since `watch`.
    pub fn air_checks(&mut self, label: &str, watch: u32) -> anyhow::Result<Vec<Check>> {
        let seen = self.air_transmitters(watch)?;
        let stations = self.ap_stations()?;
        let strangers: Vec<_> = seen
            .keys()
            .filter(|m| **m != self.station_mac && **m != self.ap_mac)
            .cloned()
            .collect();
        Ok(vec![
            check(
                format!("{label}: the AP lists exactly the station"),
                stations == [self.station_mac.clone()],
                format!("station dump: {stations:?}"),
            ),
            check(
                format!("{label}: on the air only the station and the AP transmit data"),
                strangers.is_empty() && seen.get(&self.station_mac).is_some_and(|n| *n > 0),
                format!("data frames by transmitter: {seen:?}"),
            ),
        ])
    }

    /// VM 1 pings the outside host (IPv4; its neighbour entry flushed
    /// first, so the outside relearns it through an ARP request): after a
    /// reassociation, a rekey, a new station MAC.
    pub fn vm1_reaches_outside(&mut self, label: &str, after: &str) -> anyhow::Result<Check> {
        let (code, out) = self.in_vm(
            "vm1",
            &format!("ip neigh flush dev h1; ping -c 5 -W 3 {WORLD_ADDR}"),
            Duration::from_secs(40),
        )?;
        let ok = code == 0;
        Ok(check(
            format!("{label}: VM 1 reaches the outside after {after}"),
            ok,
            ping_summary(&out),
        ))
    }

    /// The supplicant reassociates (wpa_cli `reassociate`; iwd: disconnect,
    /// then it reconnects to the known network).
    pub fn reassociate(&mut self) -> anyhow::Result<()> {
        let (supplicant, _) = self.supplicant.context("no supplicant runs")?;
        let script = match supplicant {
            Supplicant::WpaSupplicant => format!(
                "{RUN}wpa_cli -p /run/wpa_supplicant -i wlan0 disconnect >/dev/null\n\
                 sleep 1\n\
                 {RUN}wpa_cli -p /run/wpa_supplicant -i wlan0 reassociate"
            ),
            Supplicant::Iwd => format!(
                "{RUN}iwctl station wlan0 disconnect\n\
                 sleep 1\n\
                 {RUN}iwctl station wlan0 connect {SSID}"
            ),
        };
        self.lab.net_vm.sh(&script)?;
        self.wait_associated(Duration::from_secs(60))
    }

    /// How many group-key handshakes hostapd completed (its debug log:
    /// the station's group state machine reached REKEYESTABLISHED).
    pub fn group_rekeys(&mut self) -> anyhow::Result<u64> {
        Ok(self
            .lab
            .net_vm
            .sh("grep -c 'WPA_PTK_GROUP entering state REKEYESTABLISHED' /tmp/hostapd.log || true")?
            .trim()
            .parse()
            .unwrap_or(0))
    }

    /// Waits for the AP's next group rekey (`wpa_group_rekey=20`: every
    /// 20 s) to complete with the station; how many completed meanwhile.
    pub fn rekey(&mut self) -> anyhow::Result<u64> {
        let before = self.group_rekeys()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.group_rekeys()?;
            if now > before {
                return Ok(now - before);
            }
            if Instant::now() > deadline {
                let log = self
                    .lab
                    .net_vm
                    .sh("grep -i 'rekey\\|group key' /tmp/hostapd.log | tail -n 10; true")?;
                bail!("no group-key handshake completed within 30 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Gives the station a new MAC while the forwarder is attached (down,
    /// `ip link set wlan0 address`, up) and lets the supplicant reconnect.
    pub fn change_station_mac(&mut self, mac: &str) -> anyhow::Result<()> {
        let (supplicant, _) = self.supplicant.context("no supplicant runs")?;
        let reconnect = match supplicant {
            Supplicant::WpaSupplicant => {
                format!("{RUN}wpa_cli -p /run/wpa_supplicant -i wlan0 reconnect")
            }
            Supplicant::Iwd => String::from("true"),
        };
        self.lab.net_vm.sh(&format!(
            "set -e\n\
             ip link set wlan0 down\n\
             ip link set wlan0 address {mac}\n\
             ip link set wlan0 up\n\
             sleep 1\n\
             {reconnect}"
        ))?;
        self.station_mac = mac.to_owned();
        self.wait_associated(Duration::from_secs(60))
    }

    /// The Wi-Fi cases through the forwarder, on the daemon, with the
    /// supplicant now running; `tcp_bytes` each way.
    pub fn forwarder_cases(&mut self, label: &str, tcp_bytes: u64) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();
        let started = Instant::now();
        let (eth_vid, wifi_vid) = self.start_daemon()?;
        self.timings
            .push(("daemon attached".to_owned(), started.elapsed()));
        self.lab.configure_router_vlans(&[eth_vid])?;
        self.vm_hosts(wifi_vid)?;
        let other_before = self.other_vlan_rx()?;
        let air = self.start_air_watch(600)?;
        let (c, addrs) = self.vm_addresses(label)?;
        checks.extend(c);
        checks.extend(self.vm_pings(label, &addrs)?);
        if let Some(v4) = addrs[0].0.clone() {
            let t = Instant::now();
            checks.extend(self.vm_tcp(label, &v4, tcp_bytes)?);
            self.timings.push(("TCP both ways".to_owned(), t.elapsed()));
        }
        checks.push(self.status_check(label, &VM_MACS)?);
        checks.extend(self.air_checks(label, air)?);
        let other_after = self.other_vlan_rx()?;
        checks.push(check(
            format!("{label}: nothing of the Wi-Fi VLAN reaches another VLAN's host"),
            other_after == other_before,
            format!(
                "network 1's VLAN host received {} frames meanwhile",
                other_after - other_before
            ),
        ));
        Ok(checks)
    }

    /// Reassociation, a group rekey and a new station MAC with the
    /// forwarder attached: the station stays (or comes back) associated,
    /// VM 1 reaches the outside each time, status follows the new MAC.
    pub fn station_events(&mut self, label: &str) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();
        let reassociated = self.reassociate();
        checks.push(check(
            format!("{label}: the station reassociates with the forwarder attached"),
            reassociated.is_ok(),
            reassociated.map_or_else(|e| format!("{e:#}"), |()| "keys again".to_owned()),
        ));
        checks.push(self.vm1_reaches_outside(label, "the reassociation")?);
        let rekeyed = self.rekey();
        checks.push(check(
            format!("{label}: a group rekey (every 20 s) completes with the forwarder attached"),
            rekeyed.is_ok(),
            rekeyed.map_or_else(
                |e| format!("{e:#}"),
                |n| format!("{n} group-key handshake(s)"),
            ),
        ));
        checks.push(self.vm1_reaches_outside(label, "the group rekey")?);
        let new_mac = "02:00:00:00:00:77";
        let changed = self.change_station_mac(new_mac);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = serde_json::Value::Null;
        while Instant::now() < deadline {
            seen = self.wlan0_status()?["station_nat"]["station_mac"].clone();
            if seen == new_mac {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        checks.push(check(
            format!("{label}: a new station MAC is followed (status, the AP)"),
            changed.is_ok() && seen == new_mac && self.ap_stations()? == [new_mac.to_owned()],
            format!(
                "{}; status station_mac {seen}",
                changed.map_or_else(|e| format!("{e:#}"), |()| "reassociated".to_owned())
            ),
        ));
        checks.push(self.vm1_reaches_outside(label, "the MAC change")?);
        Ok(checks)
    }

    /// With the forwarder attached, the supplicant restarted `supplicant`
    /// with `eapol`: it must associate (the EAPOL frames reach it, not the
    /// router) and VM 1 reach the outside.
    pub fn eapol_with_forwarder(
        &mut self,
        label: &str,
        supplicant: Supplicant,
        eapol: Eapol,
    ) -> anyhow::Result<Vec<Check>> {
        self.stop_station()?;
        // What of the handshake reaches the router VM's trunk: nothing may.
        self.start_eapol_watch()?;
        let eapol_before = self.eapol_kept()?;
        let associated = self.associate(supplicant, eapol);
        let eapol_after = self.eapol_kept()?;
        // From the netdev, the handshake's frames from the AP (messages 1
        // and 3) cross the port's program, which must keep them.
        let kept = eapol_after.saturating_sub(eapol_before);
        let at_router = self.eapol_at_router()?;
        let mut checks = vec![check(
            format!("{label}: {supplicant} associates, {eapol}, with the forwarder attached"),
            associated.is_ok() && (eapol == Eapol::ControlPort || kept >= 2) && at_router == 0,
            format!(
                "{}; EAPOL frames at the router VM: {at_router}; kept for the station: {}",
                associated.map_or_else(
                    |e| format!("{e:#}"),
                    |d| format!("{:.1} s", d.as_secs_f64())
                ),
                eapol_after.saturating_sub(eapol_before)
            ),
        )];
        if self.supplicant.is_some() {
            checks.push(
                self.vm1_reaches_outside(label, &format!("{supplicant} associated, {eapol}"))?,
            );
        }
        Ok(checks)
    }

    /// A Wi-Fi NIC hot-plugged: a hwsim radio made now; the daemon must
    /// attach its `wlanN` as a Wi-Fi port within 10 s.
    pub fn hotplug(&mut self, label: &str) -> anyhow::Result<Check> {
        let (new_if, port, took) = self.plug_radio()?;
        Ok(check(
            format!("{label}: a hot-plugged Wi-Fi NIC is attached by the daemon as a Wi-Fi port"),
            port["attached"] == true && port["kind"] == "wifi",
            format!(
                "{new_if:?} after {:.1} s: attached {}, kind {}, mode {}",
                took.as_secs_f64(),
                port["attached"],
                port["kind"],
                port["mode"]
            ),
        ))
    }

    /// The broadcast flag, both ends of the path. Each VM asks for its lease
    /// once more (busybox udhcpc without `-B`) while the router VM's bridge
    /// (`wbr`, what the VM sent) and the outside host's `vworld` (what
    /// crossed the station) record the requests' flags: clear at the VM,
    /// set outside. Then dnsmasq's log ([`broadcast_answers`]) over every
    /// transaction so far: the station's own requests (the same udhcpc, no
    /// translation) answered by unicast, each VM's by broadcast.
    pub fn dhcp_flag_checks(&mut self, label: &str) -> anyhow::Result<Vec<Check>> {
        let watch = |to: &str| {
            format!(
                "rm -f /tmp/dhcpq.ready /tmp/dhcpq.out\n\
                 {to}xdp-forwarder-lab guest dhcp-requests --iface {} --seconds 300 \
                 --ready /tmp/dhcpq.ready --out /tmp/dhcpq.out >/tmp/dhcpq.log 2>&1 &\n\
                 echo $! > /tmp/dhcpq.pid\n\
                 while [ ! -e /tmp/dhcpq.ready ]; do sleep 0.1; done",
                if to.is_empty() { "wbr" } else { "vworld" }
            )
        };
        self.lab.router.sh(&watch(""))?;
        self.lab.net_vm.sh(&watch(&format!("{IN_NETNS}world ")))?;
        for n in 1..=VM_MACS.len() {
            self.in_vm(
                &format!("vm{n}"),
                &format!("udhcpc -i h{n} -n -q -t 10 -T 3 -s /tmp/udhcpc.script >/dev/null 2>&1"),
                Duration::from_secs(60),
            )?;
        }
        let stop = "sleep 0.6; kill $(cat /tmp/dhcpq.pid) 2>/dev/null; cat /tmp/dhcpq.out";
        let sent = self.lab.router.sh(stop)?;
        let arrived = self.lab.net_vm.sh(stop)?;
        let flags = |text: &str, mac: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(mac))
                .map(|f| f.trim().to_owned())
                .collect()
        };
        let log = self.lab.net_vm.sh(&format!("cat {DHCP_LOG}"))?;
        let seen = broadcast_answers(&log);
        let of = |mac: &str| seen.get(mac).copied().unwrap_or_default();
        let (n, b) = of(&self.station_mac);
        let mut checks = vec![check(
            format!(
                "{label}: the station's own DHCP requests reach the outside without the broadcast flag (dnsmasq answers by unicast)"
            ),
            n > 0 && b == 0,
            format!(
                "{}: {n} transactions, {b} answered by broadcast",
                self.station_mac
            ),
        )];
        for (i, mac) in (1..).zip(VM_MACS) {
            let (sent, arrived) = (flags(&sent, mac), flags(&arrived, mac));
            let (n, b) = of(mac);
            checks.push(check(
                format!("{label}: VM {i}'s DHCP requests leave it without the broadcast flag and reach the outside with it (dnsmasq answers by broadcast)"),
                !sent.is_empty()
                    && sent.iter().all(|f| f == "0000")
                    && !arrived.is_empty()
                    && arrived.iter().all(|f| f == "8000")
                    && n > 0
                    && b == n,
                format!(
                    "{mac}: flags sent {sent:?}, arrived {arrived:?}; dnsmasq: {n} transactions, {b} answered by broadcast"
                ),
            ));
        }
        Ok(checks)
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

/// Counts the data frames on the radio monitor `iface` (`hwsim0`: radiotap
/// header, then the 802.11 header) by transmitter address (addr2) for
/// `seconds`; touches `ready` once the socket is bound, and keeps `out` up
/// to date (every half second, replaced whole) as "MAC COUNT" lines, so
/// the watch may be killed at any time.
pub fn watch_transmitters(
    iface: &str,
    seconds: u64,
    ready: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let sock = RawSocket::bind(iface).with_context(|| format!("a packet socket on {iface}"))?;
    std::fs::write(ready, "")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut counts: BTreeMap<[u8; 6], u64> = BTreeMap::new();
    let mut written = Instant::now();
    let write = |counts: &BTreeMap<[u8; 6], u64>| -> anyhow::Result<()> {
        let text: String = counts
            .iter()
            .map(|(m, n)| format!("{} {n}\n", format_mac(m)))
            .collect();
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        Ok(std::fs::rename(&tmp, out)?)
    };
    write(&counts)?;
    while Instant::now() < deadline {
        if let Some(frame) = sock.recv(Duration::from_millis(100))
            && let Some(ta) = data_transmitter(&frame)
        {
            *counts.entry(ta).or_default() += 1;
        }
        if written.elapsed() > Duration::from_millis(500) {
            write(&counts)?;
            written = Instant::now();
        }
    }
    write(&counts)
}

/// `MAC80211_HWSIM`'s generic-netlink command that makes a radio
/// (`HWSIM_CMD_NEW_RADIO`, drivers/net/wireless/mac80211_hwsim.h).
const HWSIM_CMD_NEW_RADIO: u8 = 4;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// Makes a `mac80211_hwsim` radio at run time (a Wi-Fi NIC hot-plugged:
/// its `wlanN` appears in the caller's namespace with the kernel's
/// uevent), through the module's generic-netlink family, as
/// `hwsim_mgmt` does. Errors name the step and the kernel's errno.
pub fn hwsim_new_radio() -> anyhow::Result<()> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: plain socket creation.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_GENERIC,
        )
    };
    if fd < 0 {
        bail!(
            "generic netlink socket: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let exchange = |msg: &[u8]| -> anyhow::Result<Vec<u8>> {
        // SAFETY: msg is valid for its length; the kernel is the peer
        // (no address: netlink sends to the kernel).
        if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
            bail!("netlink send: {}", std::io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            bail!("netlink recv: {}", std::io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf)
    };
    let reply = exchange(&genl_message(
        GENL_ID_CTRL,
        libc::NLM_F_REQUEST as u16,
        CTRL_CMD_GETFAMILY,
        &[(CTRL_ATTR_FAMILY_NAME, b"MAC80211_HWSIM\0")],
    ))?;
    check_ack(&reply)
        .context("looking up the MAC80211_HWSIM family (is mac80211_hwsim loaded?)")?;
    let family = genl_attrs(&reply)
        .find(|(kind, _)| *kind == CTRL_ATTR_FAMILY_ID)
        .and_then(|(_, v)| Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?)))
        .context("the MAC80211_HWSIM family's reply has no id")?;
    let reply = exchange(&genl_message(
        family,
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
        HWSIM_CMD_NEW_RADIO,
        &[],
    ))?;
    check_ack(&reply).context("HWSIM_CMD_NEW_RADIO")
}

/// A generic-netlink request: header, `cmd` (version 1), attributes.
fn genl_message(kind: u16, flags: u16, cmd: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&[cmd, 1, 0, 0]);
    for (kind, value) in attrs {
        let len = 4 + value.len();
        m.extend_from_slice(&(len as u16).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(value);
        m.resize(m.len().next_multiple_of(4), 0);
    }
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// Fails if the first message of `reply` is a netlink error (an ack with
/// a negative errno); anything else passes.
fn check_ack(reply: &[u8]) -> anyhow::Result<()> {
    let kind = u16::from_ne_bytes(
        reply
            .get(4..6)
            .context("a short netlink reply")?
            .try_into()?,
    );
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = i32::from_ne_bytes(reply.get(16..20).context("a short error")?.try_into()?);
        if errno < 0 {
            return Err(std::io::Error::from_raw_os_error(-errno).into());
        }
    }
    Ok(())
}

/// The attributes of the first generic-netlink message of `reply`.
fn genl_attrs(reply: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let end = reply
        .get(..4)
        .map_or(0, |l| u32::from_ne_bytes(l.try_into().unwrap()) as usize)
        .min(reply.len());
    let mut at = 20;
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(reply.get(at..at + 2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(reply.get(at + 2..at + 4)?.try_into().ok()?) & 0x3fff;
        if len < 4 || at + len > end {
            return None;
        }
        let value = &reply[at + 4..at + len];
        at += len.next_multiple_of(4);
        Some((kind, value))
    })
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

/// Issue 26's benchmark row: bulk TCP (`bytes` a transfer, `rounds`
/// times each way) from a VM behind the router through the Wi-Fi port to
/// the outside host, against the station's own TCP to the same host, in
/// the same guests and run (wpa_supplicant, the daemon, `--mode auto`).
/// Returns the Markdown section for docs/benchmarks.md.
pub fn bench(kernel: GuestKernel, bytes: u64, rounds: u32, dir: &Path) -> anyhow::Result<String> {
    let mut lab = WifiLab::start(kernel, "xwb", dir)?;
    lab.associate(Supplicant::WpaSupplicant, Eapol::ControlPort)?;
    let v4 = lab
        .wait_for(
            "udhcpc -i wlan0 -n -q -t 5 -T 2 -s /tmp/udhcpc.script >/tmp/udhcpc.log 2>&1;              ip -4 addr show dev wlan0 | grep -o '10\\.77\\.0\\.[0-9]*' | head -n 1",
            Duration::from_secs(60),
        )?
        .context("the station got no DHCPv4 lease")?;
    let (_, wifi_vid) = lab.start_daemon()?;
    lab.vm_hosts(wifi_vid)?;
    let (_, addrs) = lab.vm_addresses("bench")?;
    let vm1 = addrs[0].0.clone().context("VM 1 got no DHCPv4 lease")?;
    let paths = [
        (
            "station → outside",
            (Side::NetVm, "world"),
            (Side::NetVm, ""),
            WORLD_ADDR.to_owned(),
        ),
        (
            "VM 1 → outside",
            (Side::NetVm, "world"),
            (Side::Router, "vm1"),
            WORLD_ADDR.to_owned(),
        ),
        (
            "outside → station",
            (Side::NetVm, ""),
            (Side::NetVm, "world"),
            v4.clone(),
        ),
        (
            "outside → VM 1",
            (Side::Router, "vm1"),
            (Side::NetVm, "world"),
            vm1.clone(),
        ),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        for (i, (what, rx, tx, to)) in paths.iter().enumerate() {
            let (got, _, sent) = lab.transfer(*rx, *tx, to, bytes, 100 + round * 10 + i as u32)?;
            if !got.complete(bytes) {
                bail!("{what}: {} of {bytes} bytes ({sent})", got.bytes);
            }
            rates[i].push(mbit(&got));
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from(
        "| direction | station's own TCP (Mbit/s, median; runs) | VM through the router and the Wi-Fi port | ratio (goal ≥ 0.8) |\n|---|---|---|---|\n",
    );
    for (dir_name, own, vm) in [("to the outside", 0, 1), ("from the outside", 2, 3)] {
        let (a, b) = (median(&rates[own]), median(&rates[vm]));
        out.push_str(&format!(
            "| {dir_name} | {a:.0} ({}) | {b:.0} ({}) | {:.2}× |\n",
            fmt(&rates[own]),
            fmt(&rates[vm]),
            b / a
        ));
    }
    out.push_str(&format!(
        "\n{} MiB a transfer, {rounds} rounds, {kernel}, wpa_supplicant, `xdp-forwarder run` (`--mode auto`); {}.\n",
        bytes >> 20,
        lab.timing_line()
    ));
    Ok(out)
}

/// ping's summary line, else its whole output.
fn ping_summary(out: &str) -> String {
    out.lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or(out.trim())
        .to_owned()
}

/// Counts the frames of EtherType `ethertype` (untagged, or behind one
/// 802.1Q tag: the router VM's trunk) received on `iface` for `seconds`;
/// touches `ready` once bound and keeps `out` up to date (the count).
pub fn watch_ethertype(
    iface: &str,
    ethertype: u16,
    seconds: u64,
    ready: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let sock = RawSocket::bind(iface).with_context(|| format!("a packet socket on {iface}"))?;
    std::fs::write(ready, "")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let want = ethertype.to_be_bytes();
    let mut n = 0u64;
    let mut written = Instant::now();
    let write = |n: u64| -> anyhow::Result<()> {
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, format!("{n}\n"))?;
        Ok(std::fs::rename(&tmp, out)?)
    };
    write(n)?;
    while Instant::now() < deadline {
        if let Some(f) = sock.recv(Duration::from_millis(100)) {
            let tagged = f.get(12..14) == Some(&[0x81, 0x00][..]);
            let at = if tagged { 16 } else { 12 };
            if f.get(at..at + 2) == Some(&want[..]) {
                n += 1;
                write(n)?;
            }
        }
        if written.elapsed() > Duration::from_millis(500) {
            write(n)?;
            written = Instant::now();
        }
    }
    write(n)
}

/// Records the DHCPv4 requests `iface` receives for `seconds` (untagged
/// Ethernet, IPv4, UDP 68 → 67, BOOTREQUEST): one "CHADDR FLAGS" line each
/// (FLAGS in hex); touches `ready` once bound and keeps `out` up to date.
pub fn watch_dhcp_requests(
    iface: &str,
    seconds: u64,
    ready: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let sock = RawSocket::bind(iface).with_context(|| format!("a packet socket on {iface}"))?;
    std::fs::write(ready, "")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut text = String::new();
    let write = |text: &str| -> anyhow::Result<()> {
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        Ok(std::fs::rename(&tmp, out)?)
    };
    write(&text)?;
    while Instant::now() < deadline {
        if let Some((chaddr, flags)) = sock
            .recv(Duration::from_millis(100))
            .and_then(|f| dhcp_request(&f))
        {
            text.push_str(&format!("{} {flags:04x}\n", format_mac(&chaddr)));
            write(&text)?;
        }
    }
    Ok(())
}

/// The client hardware address (`chaddr`) and `flags` of a DHCPv4 request
/// (BOOTREQUEST, UDP 68 → 67) in an untagged Ethernet frame.
pub fn dhcp_request(frame: &[u8]) -> Option<([u8; 6], u16)> {
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(23)? != 17 {
        return None;
    }
    let udp = 14 + usize::from(frame.get(14)? & 0x0f) * 4;
    let ports = frame.get(udp..udp + 4)?;
    if ports != [0, 68, 0, 67] {
        return None;
    }
    let bootp = frame.get(udp + 8..)?;
    if *bootp.first()? != 1 {
        return None;
    }
    let flags = u16::from_be_bytes(bootp.get(10..12)?.try_into().ok()?);
    Some((bootp.get(28..34)?.try_into().ok()?, flags))
}

/// The transmitter address (addr2) of an 802.11 data frame behind a
/// radiotap header; `None` for management and control frames and for
/// anything cut short.
pub fn data_transmitter(frame: &[u8]) -> Option<[u8; 6]> {
    let rt_len = usize::from(u16::from_le_bytes(frame.get(2..4)?.try_into().ok()?));
    let wifi = frame.get(rt_len..)?;
    let fc = *wifi.first()?;
    // Frame control: protocol version 0, type 2 (data).
    if fc & 0x03 != 0 || (fc >> 2) & 0x03 != 2 {
        return None;
    }
    wifi.get(10..16)?.try_into().ok()
}

fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A radiotap header of `len` bytes, then an 802.11 header with frame
    /// control byte `fc` and transmitter `ta`.
    fn air_frame(len: u16, fc: u8, ta: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; usize::from(len)];
        f[2..4].copy_from_slice(&len.to_le_bytes());
        let mut h = vec![0u8; 24];
        h[0] = fc;
        h[10..16].copy_from_slice(&ta);
        f.extend(h);
        f
    }

    #[test]
    fn a_dhcp_request_gives_its_client_address_and_flags() {
        let chaddr = [2, 0, 0, 0, 0xaa, 1];
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0xaa, 1, 0x08, 0x00]);
        // IPv4, IHL 5, protocol UDP; UDP 68 → 67.
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[9] = 17;
        f.extend(ip);
        f.extend([0, 68, 0, 67, 0, 0, 0, 0]);
        let mut bootp = vec![0u8; 240];
        bootp[0] = 1;
        bootp[10] = 0x80;
        bootp[28..34].copy_from_slice(&chaddr);
        let at = f.len();
        f.extend(bootp);
        assert_eq!(dhcp_request(&f), Some((chaddr, 0x8000)));
        // A reply (BOOTREPLY), another port, cut short: none.
        let mut reply = f.clone();
        reply[at] = 2;
        assert_eq!(dhcp_request(&reply), None);
        let mut other = f.clone();
        other[37] = 69;
        assert_eq!(dhcp_request(&other), None);
        assert_eq!(dhcp_request(&f[..at + 20]), None);
    }

    #[test]
    fn dnsmasq_broadcast_answers_are_counted_per_client_and_transaction() {
        let log = "\
Dec  6 09:30:23 dnsmasq-dhcp[7]: DHCP, IP range 10.77.0.100 -- 10.77.0.150, lease time 1h
Dec  6 09:30:28 dnsmasq-dhcp[7]: 11 DHCPDISCOVER(vworld) 02:00:00:00:aa:01
Dec  6 09:30:28 dnsmasq-dhcp[7]: 11 DHCPOFFER(vworld) 10.77.0.111 02:00:00:00:aa:01
Dec  6 09:30:28 dnsmasq-dhcp[7]: 11 broadcast response
Dec  6 09:30:28 dnsmasq-dhcp[7]: 11 DHCPREQUEST(vworld) 10.77.0.111 02:00:00:00:aa:01
Dec  6 09:30:28 dnsmasq-dhcp[7]: 11 broadcast response
Dec  6 09:30:29 dnsmasq-dhcp[7]: 12 DHCPDISCOVER(vworld) 02:00:00:00:bb:01
Dec  6 09:30:29 dnsmasq-dhcp[7]: 12 DHCPOFFER(vworld) 10.77.0.112 02:00:00:00:bb:01
Dec  6 09:30:31 dnsmasq-dhcp[7]: 13 DHCPDISCOVER(vworld) 02:00:00:00:bb:01
Dec  6 09:30:31 dnsmasq-dhcp[7]: 13 broadcast response
Dec  6 09:30:32 dnsmasq-dhcp[7]: 14 DHCPREQUEST(vworld) 10.77.0.113 02:00:00:00:00:01 station
";
        let seen = broadcast_answers(log);
        assert_eq!(seen["02:00:00:00:aa:01"], (1, 1));
        assert_eq!(seen["02:00:00:00:bb:01"], (2, 1));
        assert_eq!(seen["02:00:00:00:00:01"], (1, 0));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn the_transmitter_of_data_frames_is_read_behind_radiotap() {
        let ta = [2, 0, 0, 0, 1, 0];
        // Data (0x08) and QoS data (0x88) frames count.
        assert_eq!(data_transmitter(&air_frame(18, 0x08, ta)), Some(ta));
        assert_eq!(data_transmitter(&air_frame(26, 0x88, ta)), Some(ta));
        // Beacons (management, 0x80) and ACKs (control, 0xd4) do not.
        assert_eq!(data_transmitter(&air_frame(18, 0x80, ta)), None);
        assert_eq!(data_transmitter(&air_frame(18, 0xd4, ta)), None);
        // Cut short.
        assert_eq!(data_transmitter(&air_frame(18, 0x08, ta)[..30]), None);
        assert_eq!(data_transmitter(&[0, 0, 0xff, 0xff]), None);
    }
}
