//! The forwarder in a real net-vm: QEMU guests on Debian 12's (Linux 6.1)
//! and Debian 13's (Linux 6.12) kernels, virtio-net NICs, the router VM on
//! Linux's own 802.1Q stack; every case (frames, counters, pings, UDP, UDP
//! GSO, bulk TCP) in native and skb mode, and on 6.12 in `auto` (tc); an
//! e1000e NIC (which strips tags into metadata, as hardware does) in the
//! mode `--mode auto` picks, tc (a tcx link on 6.12, a clsact filter on
//! 6.1), bulk TCP through it too; an igb NIC (strips tags too, runs native
//! XDP, several queues) in tc and native mode, with flows spread over its
//! queues and a multi-queue router NIC (these boots run QEMU from
//! bookworm-backports); a router NIC made like Spectrum's (no
//! `CTRL_GUEST_OFFLOADS`); mixed modes on 6.1 (refused redirects counted);
//! hot-plug of virtio-net, e1000e and igb NICs through QEMU's monitor with
//! the daemon and with mdev, next to an igb present at boot; and an aarch64
//! net-vm (QEMU's `virt` machine, Debian's arm64 6.1 and 6.12 kernels) with
//! the core cases, mixed modes on 6.1 and a hot-plug under the daemon.
//!
//! Every guest is what a Spectrum net-vm is: busybox-static, the kernel's
//! modules, contrib/ and static (musl) binaries, no C library at all (the
//! image refuses a dynamically linked ELF). The binaries come from
//! `XDP_FORWARDER_BINS` (x86_64) and `XDP_FORWARDER_BINS_AARCH64`:
//! `cargo xtask test` builds both and sets them; by hand, build with
//! `--target x86_64-unknown-linux-musl` / `aarch64-unknown-linux-musl`
//! (`--release --bins`, `-p xdp-forwarder` and `-p xdp-forwarder-lab`) and
//! point the variables at `target/TRIPLE/release`.
//!
//! Needs root, QEMU and the kernels in the lab cache (`cargo xtask test`
//! sets up and fetches everything). The guests run one lab at a time: two
//! emulated labs at once would starve each other on two cores.

use std::{sync::Mutex, time::Instant};

use xdp_forwarder_lab::demo::checks::{Check, Verdict};
use xdp_forwarder_lab::{
    debian::{Arch, GuestKernel},
    vm::{self, NetVmLab, NicModel, RouterNic, cases, hotplug, initramfs::Contents},
};

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

fn require_root() {
    xdp_forwarder_lab::require_root("the VM tests create namespaces, taps and guests");
}

fn with_lab(
    tag: &str,
    kernel: GuestKernel,
    arch: Arch,
    nics: Vec<NicModel>,
    router_nic: RouterNic,
    router_queues: u16,
    f: impl FnOnce(&mut NetVmLab) -> Vec<Check>,
) {
    require_root();
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("xfd-vm-{tag}-{}", std::process::id()));
    let started = Instant::now();
    let mut lab = NetVmLab::start(&vm::Options {
        kernel,
        arch,
        nics,
        router_nic,
        router_queues,
        prefix: format!("xv{tag}"),
        contents: Contents::for_arch(arch).unwrap_or_else(|e| panic!("{kernel} {arch}: {e:#}")),
        dir: dir.clone(),
    })
    .unwrap_or_else(|e| panic!("{kernel} {arch}: the lab did not start: {e:#}"));
    println!(
        "{kernel} {arch}: the lab started in {:.1} s (QEMU {})",
        started.elapsed().as_secs_f64(),
        lab.qemu.version
    );
    let checks = f(&mut lab);
    let verdict = Verdict::print(&checks);
    if !verdict.passed() {
        eprintln!("net-vm console:\n{}", lab.net_vm.console_tail(60));
    }
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    verdict.assert(&format!("{kernel} {arch}"));
}

/// Every case (frames, counters, pings, UDP, UDP GSO, bulk TCP) through
/// two virtio-net NICs in each of `modes` (mode, what every port must then
/// run); first, with `e1000e_auto_picks`, the frames through a third
/// network's e1000e NIC with `--mode auto`, which must pick that mode; then
/// the frames through a fourth network's igb NIC with `--mode auto` (tc),
/// `--mode native` and `--mode skb`, in the first two with flows spread
/// over igb's queues and the router NIC's two queue pairs; in native and
/// skb mode, the control: stripping switched on again behind attach's back
/// loses the outside tag, `status` says so, attach repairs it; last the
/// frames and bulk TCP through the e1000e and the igb NIC in `auto` (one
/// boot for all, on QEMU from bookworm-backports: 7.2 has no igb). First:
/// until the virtio cases configure them, the router VM's VLAN hosts are
/// down, so nothing of theirs (an ARP probe left over from the UDP cases)
/// crosses the router NIC and spoils its counters; the e1000e and igb
/// networks' VLAN hosts come up last for the same reason.
fn every_case(
    tag: &str,
    kernel: GuestKernel,
    modes: &[(&str, &str)],
    e1000e_auto_picks: Option<&str>,
) {
    let mut nics = vec![NicModel::VirtioNet; 2];
    nics.extend(e1000e_auto_picks.map(|_| NicModel::E1000e));
    nics.push(NicModel::Igb);
    with_lab(
        tag,
        kernel,
        Arch::Amd64,
        nics,
        RouterNic::QemuDefault,
        2,
        |lab| {
            let mut checks = Vec::new();
            if let Some(auto_picks) = e1000e_auto_picks {
                checks.extend(
                    lab.only(NicModel::E1000e, |lab| {
                        cases::frames_in_mode(lab, "auto", auto_picks)
                    })
                    .unwrap_or_else(|e| panic!("{kernel}, e1000e, auto: {e:#}")),
                );
            }
            // (mode, what every port must run, whether flows spread over the
            // queues too: the driver's RSS, the same whichever XDP mode runs.)
            for (mode, picks, flows) in [
                ("auto", "tc", true),
                ("native", "native", true),
                ("skb", "skb", false),
            ] {
                let started = Instant::now();
                checks.extend(
                    lab.only(NicModel::Igb, |lab| {
                        if flows {
                            cases::frames_and_flows_in_mode(lab, mode, picks)
                        } else {
                            cases::frames_in_mode(lab, mode, picks)
                        }
                    })
                    .unwrap_or_else(|e| panic!("{kernel}, igb, {mode}: {e:#}")),
                );
                println!(
                    "{kernel}: igb, {mode}: {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            for &(mode, runs) in modes {
                checks.extend(
                    lab.only(NicModel::VirtioNet, |lab| {
                        cases::all_in_mode(lab, mode, Some(runs))
                    })
                    .unwrap_or_else(|e| panic!("{kernel}, {mode}: {e:#}")),
                );
            }
            if kernel == GuestKernel::Debian12 {
                checks.extend(
                    lab.only(NicModel::VirtioNet, cases::refused_redirects_counted)
                        .unwrap_or_else(|e| panic!("{kernel}, mixed modes: {e:#}")),
                );
            }
            if e1000e_auto_picks.is_some() {
                // Bulk TCP through the e1000e NIC too (its VLAN host added now:
                // the virtio cases above have counted their frames).
                checks.extend(
                    lab.only(NicModel::E1000e, |lab| {
                        cases::frames_and_tcp_in_mode(lab, "auto", e1000e_auto_picks)
                    })
                    .unwrap_or_else(|e| panic!("{kernel}, e1000e, TCP: {e:#}")),
                );
            }
            // And through the igb NIC, in the mode auto picks.
            checks.extend(
                lab.only(NicModel::Igb, |lab| {
                    cases::frames_and_tcp_in_mode(lab, "auto", Some("tc"))
                })
                .unwrap_or_else(|e| panic!("{kernel}, igb, TCP: {e:#}")),
            );
            checks
        },
    );
}

/// On 6.1 (no tcx) tc runs as a clsact filter: `--mode auto` picks it
/// for the e1000e and igb NICs too, and the outside tag survives the
/// stripping; igb in native and skb mode keeps it too (attach switched
/// stripping off), and spreads flows over its queues.
#[test]
fn linux_6_1_every_case_native_and_skb_and_e1000e_and_igb_keep_outside_tags_carry_tcp_and_spread_flows_with_auto_tc_on_clsact()
 {
    every_case(
        "61",
        GuestKernel::Debian12,
        &[("native", "native"), ("skb", "skb")],
        Some("tc"),
    );
}

/// Issue 16: a NIC that strips the outside tag into metadata (QEMU's
/// e1000e and igb, `rx-vlan-offload` on) must still deliver it inside the
/// port's tag; `--mode auto` picks tc on 6.12, which keeps it; igb in
/// native and skb mode keeps it too (attach switched stripping off); flows
/// spread over igb's and the router NIC's queues arrive once each.
#[test]
fn linux_6_12_every_case_native_skb_and_auto_tc_and_e1000e_and_igb_keep_outside_tags_carry_tcp_and_spread_flows()
 {
    every_case(
        "612",
        GuestKernel::Debian13,
        &[("native", "native"), ("skb", "skb"), ("auto", "tc")],
        Some("tc"),
    );
}

/// What a run through the Spectrum-like router NIC must show.
#[derive(Clone, Copy)]
enum Tcp {
    /// Every transfer passes.
    Carried,
    /// Transfers from the router VM stall: this NIC delivers the router
    /// VM's TSO aggregates whole, and a generic-XDP redirect refuses
    /// anything over the outside NIC's MTU (counted as `redirect_failed`).
    /// Everything else must pass.
    StallsFromTheRouter,
}

/// Issue 16: the net-vm's router NIC as Spectrum's VMM makes it
/// ([`RouterNic::LikeSpectrum`]: no `CTRL_GUEST_OFFLOADS`), through two
/// virtio-net NICs: native XDP refused on it, then frames, counters and
/// bulk TCP in each of `modes` (mode, what every port must run if known,
/// what TCP does).
fn spectrum_router_nic(tag: &str, kernel: GuestKernel, modes: &[(&str, Option<&str>, Tcp)]) {
    with_lab(
        tag,
        kernel,
        Arch::Amd64,
        vec![NicModel::VirtioNet; 2],
        RouterNic::LikeSpectrum,
        1,
        |lab| {
            let mut checks = vec![
                cases::native_refused_on_router(lab)
                    .unwrap_or_else(|e| panic!("{kernel}, native: {e:#}")),
            ];
            for &(mode, runs, tcp) in modes {
                let these = cases::frames_and_tcp_in_mode(lab, mode, runs)
                    .unwrap_or_else(|e| panic!("{kernel}, {mode}: {e:#}"));
                checks.extend(these.into_iter().map(|c| match tcp {
                    Tcp::StallsFromTheRouter if c.name.contains("TCP VLAN host →") => Check {
                        name: format!("{} stalls", c.name),
                        passed: !c.passed && c.detail.contains("redirect_failed"),
                        detail: c.detail,
                    },
                    _ => c,
                }));
            }
            checks
        },
    );
}

/// virtio-net refuses native XDP on this NIC; `auto` picks tc on 6.12:
/// frames and bulk TCP pass both ways. An explicit `--mode skb` is accepted, passes frames
/// and TCP towards the router VM, and stalls TCP from it.
#[test]
fn linux_6_12_spectrum_router_nic_refuses_native_carries_tcp_with_auto_tc_stalls_it_in_skb() {
    spectrum_router_nic(
        "s612",
        GuestKernel::Debian13,
        &[
            ("auto", Some("tc"), Tcp::Carried),
            ("skb", Some("skb"), Tcp::StallsFromTheRouter),
        ],
    );
}

/// On 6.1 (no tcx) `auto` picks tc on a clsact filter for every port:
/// native is refused on this NIC, skb would stall TCP from the router VM;
/// tc carries frames and bulk TCP both ways.
#[test]
fn linux_6_1_spectrum_router_nic_refuses_native_carries_tcp_with_auto_tc_on_clsact() {
    spectrum_router_nic(
        "s61",
        GuestKernel::Debian12,
        &[("auto", Some("tc"), Tcp::Carried)],
    );
}

/// `manager` must attach the NICs present at boot (NIC 1, virtio-net,
/// which streams throughout; NIC 2, an igb, which must forward: this boot
/// runs QEMU from bookworm-backports), then each NIC of
/// [`hotplug::PLUGGED`] hot-plugged in turn.
fn hot_plug(tag: &str, kernel: GuestKernel, manager: hotplug::Manager) {
    with_lab(
        tag,
        kernel,
        Arch::Amd64,
        vec![NicModel::VirtioNet, NicModel::Igb],
        RouterNic::QemuDefault,
        1,
        |lab| {
            let mut checks =
                hotplug::start(lab, manager).unwrap_or_else(|e| panic!("{manager:?}: {e:#}"));
            checks.extend(
                hotplug::cycles(lab, manager).unwrap_or_else(|e| panic!("{manager:?}: {e:#}")),
            );
            checks
        },
    );
}

#[test]
fn hot_plug_with_the_daemon() {
    hot_plug("hd", GuestKernel::Debian13, hotplug::Manager::Daemon);
}

#[test]
fn hot_plug_with_mdev_and_the_hook() {
    hot_plug("hm", GuestKernel::Debian12, hotplug::Manager::Mdev);
}

/// Issue 24: the aarch64 static binaries in an aarch64 net-vm (QEMU's
/// `virt` machine under TCG, Debian's arm64 kernel, busybox-static for
/// arm64; the router VM is an aarch64 guest too), one boot for all: the
/// kernel JIT-compiles BPF; raw
/// frames of every kind both ways through two virtio-net NICs (an outside
/// VID 100 tag kept inside the port's), counters exact and bulk TCP both
/// ways, in `--mode auto` (tc: clsact on 6.1, tcx on 6.12) and in native
/// mode; on 6.1 the mixed modes whose refused redirects the raw tracepoint
/// counts (structure offsets read from arm64's BTF); then the daemon takes
/// every NIC and a virtio-net NIC hot-plugged through QMP (on a PCIe root
/// port) forwards, and NIC 1 is upgraded in place, its stream losing
/// nothing.
fn aarch64_core_cases(tag: &str, kernel: GuestKernel) {
    with_lab(
        tag,
        kernel,
        Arch::Arm64,
        vec![NicModel::VirtioNet; 2],
        RouterNic::QemuDefault,
        1,
        |lab| {
            // The programs run JIT-compiled to arm64 code, not interpreted.
            let jit = lab
                .net_vm
                .sh("cat /proc/sys/net/core/bpf_jit_enable")
                .unwrap_or_else(|e| format!("{e:#}"));
            let mut checks = vec![Check {
                name: format!("{} aarch64: the kernel JIT-compiles BPF", kernel.linux()),
                passed: jit.trim() == "1",
                detail: format!("net.core.bpf_jit_enable = {}", jit.trim()),
            }];
            for (mode, picks) in [("auto", "tc"), ("native", "native")] {
                let started = Instant::now();
                checks.extend(
                    cases::frames_and_tcp_in_mode(lab, mode, Some(picks))
                        .unwrap_or_else(|e| panic!("{kernel} aarch64, {mode}: {e:#}")),
                );
                println!(
                    "{kernel} aarch64: {mode}: {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            if kernel == GuestKernel::Debian12 {
                let started = Instant::now();
                checks.extend(
                    cases::refused_redirects_counted(lab)
                        .unwrap_or_else(|e| panic!("{kernel} aarch64, mixed modes: {e:#}")),
                );
                println!(
                    "{kernel} aarch64: mixed modes: {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            let started = Instant::now();
            let daemon = hotplug::Manager::Daemon;
            checks.extend(
                hotplug::start(lab, daemon)
                    .unwrap_or_else(|e| panic!("{kernel} aarch64, daemon: {e:#}")),
            );
            checks.extend(
                hotplug::cycles_of(lab, daemon, &[NicModel::VirtioNet])
                    .unwrap_or_else(|e| panic!("{kernel} aarch64, hot-plug: {e:#}")),
            );
            println!(
                "{kernel} aarch64: hot-plug: {:.1} s",
                started.elapsed().as_secs_f64()
            );
            checks
        },
    );
}

#[test]
fn aarch64_linux_6_1_frames_outside_tag_counters_tcp_in_auto_and_native_refused_redirects_counted_and_hot_plug_with_the_daemon()
 {
    aarch64_core_cases("a61", GuestKernel::Debian12);
}

#[test]
fn aarch64_linux_6_12_frames_outside_tag_counters_tcp_in_auto_and_native_and_hot_plug_with_the_daemon()
 {
    aarch64_core_cases("a612", GuestKernel::Debian13);
}
