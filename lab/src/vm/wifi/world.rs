//! The radio world's scripts: the access point and the outside host
//! ([`world_script`], DHCPv4 by dnsmasq), and the station's supplicant
//! ([`station_script`]).

use super::*;

/// The radio world's setup: namespaces, the access point, the outside host.
pub(super) fn world_script() -> String {
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
pub(super) const DHCP_LOG: &str = "/tmp/dnsmasq.log";

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
pub(super) fn dhcp_server() -> String {
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
pub(super) fn station_script(supplicant: Supplicant, eapol: Eapol) -> String {
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
pub(super) fn associated_script(supplicant: Supplicant) -> &'static str {
    match supplicant {
        Supplicant::WpaSupplicant => {
            "/wifi-tools/run/wpa_cli -p /run/wpa_supplicant -i wlan0 status | grep -q wpa_state=COMPLETED"
        }
        Supplicant::Iwd => {
            "/wifi-tools/run/iwctl station wlan0 show 2>/dev/null | grep -q 'State *connected'"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
