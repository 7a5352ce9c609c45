//! What happens to a station while the forwarder is attached: a
//! reassociation, a group rekey, a new MAC, each supplicant and EAPOL
//! way, a radio hot-plugged under the daemon.

use super::*;

impl WifiLab {
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
}
