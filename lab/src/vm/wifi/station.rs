//! The station's own traffic, without the forwarder: pings both ways,
//! SLAAC and DHCPv4, TCP each way.

use super::*;

impl WifiLab {
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
    pub(super) fn tcp(
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
}
