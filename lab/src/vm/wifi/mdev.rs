//! The mdev hook with a real Wi-Fi netdev (issue 26): the daemon stopped
//! (SIGTERM leaves the data plane running), busybox `mdev -d` with the rule
//! contrib/mdev/iface documents, as lab/src/vm/hotplug.rs sets it up for
//! Ethernet NICs; a hwsim radio made at run time must be attached by the
//! hook alone.

use std::time::{Duration, Instant};

use super::{WifiLab, check};
use crate::demo::checks::Check;

impl WifiLab {
    /// Makes a hwsim radio now and waits (10 s at most) until `status`
    /// lists its new `wlanN` attached as a Wi-Fi port. Returns its name
    /// (if one appeared), its `status --json` entry (`Null` if none) and
    /// how long after the radio was made the wait ended.
    pub fn plug_radio(&mut self) -> anyhow::Result<(Option<String>, serde_json::Value, Duration)> {
        let before = self.lab.net_vm.sh("ls /sys/class/net")?;
        self.lab
            .net_vm
            .sh("xdp-forwarder-lab guest hwsim-new-radio")?;
        let plugged = Instant::now();
        let mut new_if = None;
        let mut port = serde_json::Value::Null;
        while plugged.elapsed() < Duration::from_secs(10) {
            let now = self.lab.net_vm.sh("ls /sys/class/net")?;
            new_if = now
                .split_whitespace()
                .find(|n| n.starts_with("wlan") && !before.split_whitespace().any(|b| b == *n))
                .map(str::to_owned);
            if let Some(name) = &new_if {
                port = self
                    .ports()?
                    .into_iter()
                    .find(|p| p["name"] == name.as_str())
                    .unwrap_or_default();
                if port["attached"] == true && port["kind"] == "wifi" {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok((new_if, port, plugged.elapsed()))
    }

    /// The hook as the only actor: the daemon ([`Self::start_daemon`])
    /// stopped, `mdev -d` started with the hook's rule; a radio made now
    /// must be attached by the hook within 10 s as a Wi-Fi port in tc,
    /// the router in tc beside it.
    pub fn mdev_hook(&mut self, label: &str) -> anyhow::Result<Check> {
        let stopped = self.lab.net_vm.sh_status(
            "pid=$(cat /run/daemon.pid); kill $pid\n\
             i=0; while [ -e /proc/$pid ]; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done",
            Duration::from_secs(30),
        )?;
        let rule = self.lab.net_vm.sh(&format!(
            "set -e\n{}mdev -d\ncat /etc/mdev.conf",
            crate::vm::hotplug::mdev_conf_script()
        ))?;
        let (new_if, port, took) = self.plug_radio()?;
        let router = self
            .ports()?
            .into_iter()
            .find(|p| p["role"] == "router")
            .unwrap_or_default();
        Ok(check(
            format!(
                "{label}: a hot-plugged Wi-Fi NIC is attached by the mdev hook (the daemon \
                 stopped) as a Wi-Fi port in tc, the router in tc"
            ),
            stopped.0 == 0
                && port["attached"] == true
                && port["kind"] == "wifi"
                && port["mode"] == "tc"
                && router["mode"] == "tc",
            format!(
                "daemon stopped: {}; mdev.conf: {}; {new_if:?} after {:.1} s: attached {}, kind \
                 {}, mode {}; router {} in {}",
                stopped.0 == 0,
                rule.trim(),
                took.as_secs_f64(),
                port["attached"],
                port["kind"],
                port["mode"],
                router["name"],
                router["mode"],
            ),
        ))
    }
}
