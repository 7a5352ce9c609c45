//! Roaming to a second BSS of the same network with the forwarder
//! attached (issue 26). The third hwsim radio, `wlan2`, sits in the
//! namespace `ap` beside the first AP's; a second hostapd runs there with
//! the first one's configuration (same SSID, passphrase, channel and
//! bridge `br0`; its own BSSID, control socket and log). It is started
//! only for these cases and stopped after them, so that every other case
//! associates to the one BSS it checks.
//!
//! The station is told which BSS to roam to: wpa_supplicant's `roam
//! BSSID`, iwd's `debug wlan0 roam BSSID` (the StationDebug interface of
//! its developer mode, `iwd -E`, which these cases alone start). A BSS
//! Transition Management request from the AP would leave the pick
//! between two equal BSSes to each supplicant's own ranking.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use super::{
    Eapol, IN_NETNS, RUN, Supplicant, WORLD_ADDR6, WifiLab, associated_script, check, ping_summary,
    station_script,
};
use crate::demo::checks::Check;

/// The second BSS's radio (in `ap`), and both APs' logs.
const BSS2_IFACE: &str = "wlan2";
const BSS1_LOG: &str = "/tmp/hostapd.log";
const BSS2_LOG: &str = "/tmp/hostapd2.log";
/// How long after the roam BSS 1 may still list the station: a group
/// rekey (`wpa_group_rekey=20`) and its retries.
const BSS1_LETS_GO: Duration = Duration::from_secs(35);
/// Bytes of TCP each way after the roam.
const ROAM_TCP_BYTES: u64 = 1 << 20;

impl WifiLab {
    /// The stations the access point on `iface` (namespace `ap`) lists
    /// (`iw dev IFACE station dump`).
    pub fn stations_of(&mut self, iface: &str) -> anyhow::Result<Vec<String>> {
        let out = self.ap(&format!("{RUN}iw dev {iface} station dump"))?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("Station "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect())
    }

    /// Starts the second BSS (hostapd on `wlan2`, the first one's
    /// configuration) and waits until it beacons; returns its BSSID.
    pub fn start_bss2(&mut self) -> anyhow::Result<String> {
        let out = self.lab.net_vm.sh_within(
            &format!(
                "set -e\n\
                 sed 's/^interface=wlan1$/interface={BSS2_IFACE}/' /tmp/hostapd.conf > /tmp/hostapd2.conf\n\
                 grep -q '^interface={BSS2_IFACE}$' /tmp/hostapd2.conf\n\
                 rm -f {BSS2_LOG}\n\
                 {IN_NETNS}ap {RUN}hostapd -d -B -P /run/hostapd2.pid -f {BSS2_LOG} /tmp/hostapd2.conf\n\
                 i=0; until grep -q AP-ENABLED {BSS2_LOG} 2>/dev/null; do i=$((i+1)); [ $i -lt 300 ]; sleep 0.1; done\n\
                 cat /run/ap2.mac"
            ),
            Duration::from_secs(60),
        )?;
        Ok(out.trim().to_owned())
    }

    /// Stops the second BSS's hostapd.
    pub fn stop_bss2(&mut self) -> anyhow::Result<()> {
        self.lab.net_vm.sh(
            "pid=$(cat /run/hostapd2.pid); rm -f /run/hostapd2.pid; kill $pid\n\
             i=0; while [ -e /proc/$pid ]; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done",
        )?;
        Ok(())
    }

    /// The BSS the station is associated to (`iw dev wlan0 link`).
    pub fn link_bssid(&mut self) -> anyhow::Result<Option<String>> {
        let out = self.lab.net_vm.sh(&format!("{RUN}iw dev wlan0 link"))?;
        Ok(out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Connected to "))
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_lowercase))
    }

    /// How often the AP whose debug log is `log` authorized `sta`
    /// (`AP-STA-CONNECTED`: with WPA2-PSK, once the 4-way handshake is
    /// done).
    fn ap_connects(&mut self, log: &str, sta: &str) -> anyhow::Result<u64> {
        Ok(self
            .lab
            .net_vm
            .sh(&format!("grep -c 'AP-STA-CONNECTED {sta}' {log} || true"))?
            .trim()
            .parse()
            .unwrap_or(0))
    }

    /// Starts counting the EAPOL frames (EtherType 0x888E, tagged or not)
    /// the router VM's trunk receives; [`Self::eapol_at_router`] reads it.
    pub fn start_eapol_watch(&mut self) -> anyhow::Result<()> {
        self.lab.router.sh("rm -f /tmp/pae.ready /tmp/pae.out\n\
             xdp-forwarder-lab guest count-ethertype --iface eth0 --ethertype 34958 --seconds 400 \
             --ready /tmp/pae.ready --out /tmp/pae.out >/tmp/pae.log 2>&1 &\n\
             echo $! > /tmp/pae.pid\n\
             while [ ! -e /tmp/pae.ready ]; do sleep 0.1; done")?;
        Ok(())
    }

    /// Stops the count [`Self::start_eapol_watch`] started: the EAPOL
    /// frames the router VM's trunk received meanwhile (`u64::MAX` if the
    /// count cannot be read).
    pub fn eapol_at_router(&mut self) -> anyhow::Result<u64> {
        Ok(self
            .lab
            .router
            .sh("sleep 0.6; kill $(cat /tmp/pae.pid) 2>/dev/null; cat /tmp/pae.out")?
            .trim()
            .parse()
            .unwrap_or(u64::MAX))
    }

    /// The EAPOL frames `wlan0`'s program kept for the station so far
    /// (`status --json`: `station_nat.eapol`).
    pub fn eapol_kept(&mut self) -> anyhow::Result<u64> {
        Ok(self.wlan0_status()?["station_nat"]["eapol"]
            .as_u64()
            .unwrap_or(0))
    }

    /// Starts `supplicant` as [`Self::associate`] does, iwd in developer
    /// mode (`-E`: its StationDebug interface), and waits for its keys.
    fn associate_roaming(&mut self, supplicant: Supplicant, eapol: Eapol) -> anyhow::Result<()> {
        let script = station_script(supplicant, eapol);
        let script = match supplicant {
            Supplicant::WpaSupplicant => script,
            Supplicant::Iwd => {
                let developer = script.replace("run/iwd -i wlan0", "run/iwd -E -i wlan0");
                ensure!(
                    developer != script,
                    "iwd's command line changed: no -E added"
                );
                developer
            }
        };
        let t = Instant::now();
        self.lab.net_vm.sh(&script)?;
        self.supplicant = Some((supplicant, eapol));
        if supplicant == Supplicant::Iwd {
            // In developer mode iwd does not connect on its own: its
            // StationDebug AutoConnect starts off (measured: no scan in
            // 180 s). Switched on (again until the station is up to take
            // it), it connects to the known network as it does outside
            // developer mode.
            let on = format!("{RUN}iwctl debug wlan0 autoconnect on");
            let connected = associated_script(supplicant);
            let deadline = Instant::now() + Duration::from_secs(60);
            while self
                .lab
                .net_vm
                .sh_status(connected, Duration::from_secs(30))?
                .0
                != 0
                && Instant::now() < deadline
            {
                self.lab.net_vm.sh_status(&on, Duration::from_secs(30))?;
                std::thread::sleep(Duration::from_secs(2));
            }
        }
        self.wait_associated(Duration::from_secs(180))?;
        self.timings.push((
            format!("association for roaming ({supplicant}, {eapol})"),
            t.elapsed(),
        ));
        Ok(())
    }

    /// Makes the running supplicant roam to `bssid`: it scans (again every
    /// 5 s, 30 s at most) until it knows that BSS, is told to roam there,
    /// and then must be associated to it with its keys, and the AP whose
    /// log is `log` must have authorized the station once more (the 4-way
    /// handshake done), within 60 s. Returns how long the roam took.
    pub fn roam_to(&mut self, bssid: &str, log: &str) -> anyhow::Result<Duration> {
        let (supplicant, _) = self.supplicant.context("no supplicant runs")?;
        let sta = self.station_mac.clone();
        let connects = self.ap_connects(log, &sta)?;
        let (scan, knows, roam) = match supplicant {
            Supplicant::WpaSupplicant => {
                let cli = format!("{RUN}wpa_cli -p /run/wpa_supplicant -i wlan0");
                (
                    format!("{cli} scan freq=2412"),
                    format!("{cli} scan_results | grep -qi {bssid}"),
                    format!("{cli} roam {bssid}"),
                )
            }
            Supplicant::Iwd => (
                format!("{RUN}iwctl station wlan0 scan"),
                format!("{RUN}iwctl debug wlan0 get-networks | grep -qi {bssid}"),
                format!("{RUN}iwctl debug wlan0 roam {bssid}"),
            ),
        };
        let seen_by = Instant::now() + Duration::from_secs(30);
        let mut scanned: Option<Instant> = None;
        loop {
            if scanned.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                self.lab.net_vm.sh_status(&scan, Duration::from_secs(30))?;
                scanned = Some(Instant::now());
            }
            if self
                .lab
                .net_vm
                .sh_status(&knows, Duration::from_secs(30))?
                .0
                == 0
            {
                break;
            }
            if Instant::now() > seen_by {
                bail!("{supplicant} did not see BSS {bssid} in 30 s of scans");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let t = Instant::now();
        let (code, said) = self.lab.net_vm.sh_status(&roam, Duration::from_secs(30))?;
        ensure!(
            code == 0 && !said.contains("FAIL"),
            "`{roam}` exited {code}: {}",
            said.trim()
        );
        let done = format!(
            "{RUN}iw dev wlan0 link | grep -qi 'Connected to {bssid}' && {} && \
             [ \"$(grep -c 'AP-STA-CONNECTED {sta}' {log})\" -gt {connects} ]",
            associated_script(supplicant)
        );
        while self.lab.net_vm.sh_status(&done, Duration::from_secs(30))?.0 != 0 {
            if t.elapsed() > Duration::from_secs(60) {
                let log = self
                    .lab
                    .net_vm
                    .sh(&format!(
                        "{RUN}iw dev wlan0 link; tail -n 20 /tmp/wpa.log /tmp/iwd.log 2>/dev/null; \
                         grep -v 'RX\\|TX\\|nl80211' {log} | tail -n 15; true"
                    ))
                    .unwrap_or_default();
                bail!(
                    "{supplicant} did not complete the roam to {bssid} in 60 s (`{roam}` said {:?}):\n{log}",
                    said.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let took = t.elapsed();
        self.timings
            .push((format!("roam to {bssid} ({supplicant})"), took));
        Ok(took)
    }

    /// Waits (until `deadline` at most) until the AP on `iface` no longer
    /// lists `sta`; what it lists then.
    fn wait_gone_from(
        &mut self,
        iface: &str,
        sta: &str,
        deadline: Instant,
    ) -> anyhow::Result<Vec<String>> {
        loop {
            let listed = self.stations_of(iface)?;
            if !listed.iter().any(|s| s == sta) || Instant::now() > deadline {
                return Ok(listed);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// One roaming round with the forwarder attached: `supplicant`,
    /// taking EAPOL by `eapol`, restarted on BSS 1 (the only one up); BSS
    /// 2 started; the station roams to BSS 2. It must be associated there
    /// with its keys (`iw dev wlan0 link`, BSS 2's station dump lists it,
    /// BSS 1's no longer does, BSS 2's hostapd authorized it), and, from
    /// the netdev, the port must have kept the handshake's frames from
    /// the AP; VM 1 behind the router then reaches the outside (ping,
    /// ping6, TCP each way). It roams back to BSS 1 and VM 1 reaches the
    /// outside again; through it all, no EAPOL frame reaches the router
    /// VM's trunk. BSS 2 is stopped at the end.
    pub fn roam_round(
        &mut self,
        linux: &str,
        supplicant: Supplicant,
        eapol: Eapol,
    ) -> anyhow::Result<Vec<Check>> {
        let label = format!("{linux}, {supplicant}, {eapol}, roaming");
        let mut checks = Vec::new();
        self.stop_station()?;
        self.associate_roaming(supplicant, eapol)?;
        self.station_mac = self
            .lab
            .net_vm
            .sh("cat /sys/class/net/wlan0/address")?
            .trim()
            .to_owned();
        let sta = self.station_mac.clone();
        let bss1 = self.ap_mac.clone();
        self.start_eapol_watch()?;
        let bss2 = self.start_bss2()?;
        let was_on = self.link_bssid()?;
        let kept_before = self.eapol_kept()?;
        let roamed = self.roam_to(&bss2, BSS2_LOG);
        let roamed_at = Instant::now();
        let kept = self.eapol_kept()?.saturating_sub(kept_before);
        let on = self.link_bssid()?;
        let at_bss2 = self.stations_of(BSS2_IFACE)?;
        let ok = roamed.is_ok();
        checks.push(check(
            format!(
                "{label}: the station roams from BSS 1 to BSS 2, 4-way handshake done, with the \
                 forwarder attached"
            ),
            ok && was_on.as_deref() == Some(bss1.as_str())
                && on.as_deref() == Some(bss2.as_str())
                && at_bss2 == [sta.clone()]
                && (eapol == Eapol::ControlPort || kept >= 2),
            format!(
                "{}; on {was_on:?} before, {on:?} after (BSS 1 {bss1}, BSS 2 {bss2}); BSS 2 lists \
                 {at_bss2:?}; EAPOL frames kept for the station: {kept}",
                roamed.map_or_else(
                    |e| format!("{e:#}"),
                    |d| format!("roamed in {:.1} s", d.as_secs_f64())
                ),
            ),
        ));
        if ok {
            checks.push(self.vm1_reaches_outside(&label, "the roam to BSS 2")?);
            let (code, out) = self.in_vm(
                "vm1",
                &format!("ping6 -c 3 -W 3 {WORLD_ADDR6}"),
                Duration::from_secs(30),
            )?;
            checks.push(check(
                format!("{label}: VM 1 → outside, IPv6, after the roam to BSS 2"),
                code == 0,
                ping_summary(&out),
            ));
            let (_, v4) = self.in_vm(
                "vm1",
                "ip -4 addr show dev h1 | grep -o \"10\\.77\\.0\\.[0-9]*\" | head -n 1",
                Duration::from_secs(20),
            )?;
            checks.extend(self.vm_tcp(&format!("{label}, on BSS 2"), v4.trim(), ROAM_TCP_BYTES)?);
            // A reassociation elsewhere sends the old AP nothing (mac80211
            // builds the deauthentication for its own books, never sends
            // it); BSS 1 lets the station go when its group rekey (every
            // 20 s) gets no answer.
            let at_bss1 = self.wait_gone_from("wlan1", &sta, roamed_at + BSS1_LETS_GO)?;
            let why = self.lab.net_vm.sh(&format!(
                "grep -i 'group key handshake\\|deauth\\|Delete station' {BSS1_LOG} | tail -n 3; true"
            ))?;
            checks.push(check(
                format!("{label}: BSS 1 no longer lists the station"),
                !at_bss1.contains(&sta),
                format!(
                    "{:.1} s after the roam BSS 1 lists {at_bss1:?}; its log: {}",
                    roamed_at.elapsed().as_secs_f64(),
                    why.trim().replace('\n', " / ")
                ),
            ));
            let back = self.roam_to(&bss1, BSS1_LOG);
            let on = self.link_bssid()?;
            let at_bss1 = self.stations_of("wlan1")?;
            checks.push(check(
                format!("{label}: the station roams back to BSS 1"),
                back.is_ok() && on.as_deref() == Some(bss1.as_str()) && at_bss1 == [sta.clone()],
                format!(
                    "{}; on {on:?}; BSS 1 lists {at_bss1:?}",
                    back.map_or_else(
                        |e| format!("{e:#}"),
                        |d| format!("roamed in {:.1} s", d.as_secs_f64())
                    ),
                ),
            ));
            checks.push(self.vm1_reaches_outside(&label, "the roam back to BSS 1")?);
        }
        let at_router = self.eapol_at_router()?;
        checks.push(check(
            format!("{label}: no EAPOL frame reaches the router VM's trunk"),
            at_router == 0,
            format!(
                "EAPOL frames at the router VM through the association and the roams: {at_router}"
            ),
        ));
        self.stop_bss2()?;
        Ok(checks)
    }
}
