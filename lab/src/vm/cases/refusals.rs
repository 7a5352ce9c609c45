//! What the kernel refuses, said and counted: native XDP on a router NIC
//! that cannot run it, and native redirects the target's driver refuses.

use super::*;

/// `attach --mode native` on a router NIC made like Spectrum's (no
/// `CTRL_GUEST_OFFLOADS`) must fail with EOPNOTSUPP and leave nothing
/// attached. virtio-net refuses with it; its reason ("Can't set XDP while host is
/// implementing GRO_HW/CSUM") goes to netlink's extack only, which a BPF
/// link never sees.
pub fn native_refused_on_router(lab: &mut NetVmLab) -> anyhow::Result<Check> {
    let (code, out) = lab.net_vm.sh_status(
        &format!(
            "grep -q ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf -o mode=0700 bpf /sys/fs/bpf\n\
             xdp-forwarder attach {} --role router --mode native",
            lab.router_if
        ),
        Duration::from_secs(60),
    )?;
    let left = lab.status()?["ports"]
        .as_array()
        .map_or(0, std::vec::Vec::len);
    let said = out.lines().last().unwrap_or_default().trim().to_owned();
    Ok(check(
        format!(
            "{}, {}: --mode native on the router NIC is refused",
            lab.linux(),
            lab.router_nic
        ),
        // By errno: its text is the C library's ("Operation not supported"
        // in glibc, "Not supported" in musl).
        code != 0 && out.contains(&format!("(os error {})", libc::EOPNOTSUPP)) && left == 0,
        format!("attach exited {code}: {said}; ports left attached: {left}"),
    ))
}

/// Linux 6.1 reports no netdev xdp-features, so `attach` cannot tell that
/// a native router's redirects will not reach a NIC in skb mode: it takes
/// explicit modes with a caveat. virtio-net then refuses the router's
/// frames when the devmap queue is flushed (ENXIO), after the program
/// returned: the `xdp_devmap_xmit` counter must show each as the router
/// port's `redirect_failed`, none as forwarded.
pub fn refused_redirects_counted(lab: &mut NetVmLab) -> anyhow::Result<Vec<Check>> {
    let label = format!("{}, router native + NIC skb", lab.linux());
    let (router_if, nic) = (lab.router_if.clone(), lab.networks[0].guest_if.clone());
    let attached = lab.net_vm.sh(&format!(
        "xdp-forwarder attach {router_if} --role router --mode native 2>&1 && \
         xdp-forwarder attach {nic} --role physical --mode skb 2>&1"
    ))?;
    let vid = lab.vid(lab.networks[0].k)?;
    let port = |status: &Value, key: &str| -> u64 {
        status["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == router_if.as_str())
            .map_or(0, |p| match key {
                "forwarded" => p["counters"]["forwarded_frames"].as_u64().unwrap_or(0),
                _ => p["counters"]["dropped"]["redirect_failed"]
                    .as_u64()
                    .unwrap_or(0),
            })
    };
    let before = lab.status()?;
    let router = lab.router_socket()?;
    let net = &lab.networks[0];
    let outside = net.ns.within(|| RawSocket::bind(&net.tap))?;
    let ext_mac = tap_mac(&net.ns, &net.tap)?;
    let sent = 5u64;
    for n in 0..sent {
        let mut rest = ETHERTYPE_TEST.to_be_bytes().to_vec();
        rest.push(0xf0 + n as u8);
        router.send(&tagged(&frame(ext_mac, VM_MAC, &rest, 100), 0x8100, vid))?;
    }
    let arrived = outside.drain_test_frames(ARRIVAL).len();
    let after = lab.status()?;
    let refused = port(&after, "refused") - port(&before, "refused");
    let forwarded = port(&after, "forwarded") - port(&before, "forwarded");
    detach_all(lab)?;
    Ok(vec![
        check(
            format!("{label}: attach says what may break"),
            attached.contains("warning:"),
            attached.trim().to_owned(),
        ),
        check(
            format!("{label}: router → NIC refused by the driver, counted"),
            arrived == 0 && refused == sent && forwarded == 0,
            format!(
                "{sent} sent, {arrived} arrived; router port: redirect_failed +{refused}, \
                 forwarded +{forwarded}"
            ),
        ),
    ])
}
