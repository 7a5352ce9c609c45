//! Issue 26's benchmark row: a VM's TCP through the Wi-Fi port against
//! the station's own.

use super::*;

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
