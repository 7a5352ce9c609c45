//! Through the forwarder: the daemon attaching the station and the
//! router, the VMs' addresses, pings and TCP, `status`, the air and the
//! other VLAN, the DHCP broadcast flag at both ends.

use super::*;

impl WifiLab {
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
            script.push_str(&crate::vm::guest::move_to_netns(&format!("h{n}"), &ns));
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
}
