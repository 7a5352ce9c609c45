//! A net-vm in a real virtual machine. QEMU runs two guests on a Debian
//! kernel: the **net-vm**, which owns K NICs (virtio-net, or an emulated
//! Intel e1000e or igb that strips VLAN tags as hardware does; one model
//! per network) and a virtio-net router NIC (MAC `02:01:…`, one or more
//! queue pairs) and runs the forwarder, and the **router VM**, whose Linux
//! 802.1Q stack (one VLAN sub-interface per VID, each in a namespace of its
//! own, all with the same address) consumes the tags. Each NIC's tap is
//! the outside network `K`, in a namespace of its own on the host; the
//! router NIC's tap and the router VM's trunk tap share a bridge.
//!
//! Both guests are what a Spectrum net-vm is: no C library at all. Their
//! initramfs ([`initramfs`]) holds busybox-static, the kernel's modules,
//! contrib/ and the static (musl) binaries of the forwarder and of the lab
//! (the guest-side traffic helpers); it refuses a dynamically linked ELF.
//! The router VM's VLAN hosts live in named namespaces made and entered
//! with busybox (`unshare --net=FILE`, `nsenter`), their VLANs made with
//! busybox's `ip`. Guests are x86_64 (QEMU's `pc` machine) or aarch64
//! ([`Options::arch`]: QEMU's `virt` machine under TCG, Debian's arm64
//! kernels and busybox-static, QEMU 10.0 from bookworm-backports; both
//! guests of a lab share the architecture).
//!
//! ```text
//!  host ns P-eK          QEMU (host ns P-t)                      router VM
//!  tap PnK 10.99.0.1 ── ethK ─[net-vm: +VID]─ router NIC ══ br ══ eth0 ── eth0.VID (ns lanK) 10.99.0.2
//! ```

pub mod cases;
pub mod guest;
pub mod hotplug;
pub mod initramfs;
pub mod nic_stats;
pub mod wifi;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{
    debian::{self, Arch, GuestKernel, Kernel, Qemu},
    netns::Netns,
};
pub use guest::{Accel, Guest, IN_NETNS, Nic, NicModel, RouterNic};
use initramfs::Contents;

/// The outside hosts' address, and the router VM's VLAN hosts' (the same in
/// every network, as in the demo: only the VLANs keep them apart).
pub const EXT_ADDR: &str = "10.99.0.1";
pub const LAN_ADDR: &str = "10.99.0.2";
/// The net-vm's router NIC: the router MAC prefix `02:01:`.
pub const ROUTER_MAC: &str = "02:01:00:00:00:01";
const TRUNK_MAC: &str = "52:54:00:00:01:01";
pub const MAX_NICS: usize = 6;

/// The MAC of the net-vm's NIC `k` (1-based), outside the router prefix.
pub fn nic_mac(k: usize) -> String {
    format!("52:54:00:00:00:{:02x}", 0x10 + k)
}

/// The router VM's VLAN host of network `k`: a MAC of its own (a VM behind
/// the router, not the NIC).
pub fn lan_mac(k: usize) -> String {
    format!("02:00:00:00:{k:02x}:02")
}

/// What the lab boots.
pub struct Options {
    pub kernel: GuestKernel,
    /// Both guests' CPU: x86_64, or aarch64 on QEMU's `virt` machine
    /// (QEMU from bookworm-backports; `contents` then holds aarch64
    /// binaries: [`Contents::for_arch`]).
    pub arch: Arch,
    /// The NIC of each outside network, in order (network 1 first). An
    /// igb among them boots both guests on QEMU from bookworm-backports
    /// ([`debian::qemu_backports`]), else they run on the machine's QEMU.
    pub nics: Vec<NicModel>,
    pub router_nic: RouterNic,
    /// Queue pairs of the router NIC (1: QEMU's default; more: `mq=on`, a
    /// multi-queue tap).
    pub router_queues: u16,
    /// Names every namespace, tap and file of this lab (≤ 6 characters).
    pub prefix: String,
    pub contents: Contents,
    /// Working directory (sockets, console logs, the initramfs).
    pub dir: PathBuf,
}

/// One outside network: the NIC's tap in a namespace of its own.
pub struct Network {
    pub k: usize,
    pub ns: Netns,
    pub tap: String,
    /// The NIC's name in the net-vm (found by its MAC).
    pub guest_if: String,
    pub mac: String,
    pub model: NicModel,
}

pub struct NetVmLab {
    pub prefix: String,
    pub kernel: Kernel,
    pub qemu: Qemu,
    pub accel: Accel,
    /// Where QEMU runs; holds the router NIC's tap and the trunk bridge.
    pub trunk: Netns,
    pub router_tap: String,
    /// The router NIC's name in the net-vm.
    pub router_if: String,
    pub router_nic: RouterNic,
    pub networks: Vec<Network>,
    pub net_vm: Guest,
    pub router: Guest,
    /// The VIDs the router VM's VLANs were configured with.
    /// The router VM's VLANs so far: network `k` → VID.
    pub router_vids: std::collections::BTreeMap<usize, u16>,
}

/// Builds the initramfs for `kernel` in `dir` (fetching the kernel first if
/// needed) and finds how QEMU runs here.
pub fn prepare(
    which: GuestKernel,
    arch: Arch,
    contents: &Contents,
    dir: &Path,
) -> anyhow::Result<(Kernel, PathBuf, Accel)> {
    let kernel = if contents.wifi_tools.is_some() {
        debian::wifi_kernel(which)?
    } else {
        debian::kernel_for(which, arch)?
    };
    std::fs::create_dir_all(dir)?;
    let initrd = dir.join(format!(
        "initramfs-{}-{}.cpio",
        which.suite(),
        arch.debian()
    ));
    initramfs::build(&kernel, contents, &initrd)?;
    let accel = guest::accel(&kernel, &initrd, dir);
    Ok((kernel, initrd, accel))
}

impl NetVmLab {
    pub fn start(opts: &Options) -> anyhow::Result<Self> {
        if opts.nics.is_empty() || opts.nics.len() > MAX_NICS {
            bail!("1 to {MAX_NICS} NICs");
        }
        let p = &opts.prefix;
        let (kernel, initrd, accel) = prepare(opts.kernel, opts.arch, &opts.contents, &opts.dir)?;
        let qemu = if opts.arch != Arch::Amd64 {
            debian::qemu_backports_for(opts.arch)?
        } else if opts.nics.iter().any(|m| m.needs_newer_qemu()) {
            debian::qemu_backports()?
        } else {
            Qemu::system()
        };
        let trunk = Netns::add(&format!("{p}-t"))?;
        trunk.ip(&["link", "add", "br0", "type", "bridge"])?;
        trunk.ip(&["link", "set", "br0", "up"])?;
        let mut outside = Vec::new();
        for k in 1..=opts.nics.len() {
            outside.push(Netns::add(&format!("{p}-e{k}"))?);
        }
        let router_tap = format!("{p}r");
        let mut nics: Vec<Nic> = (1..)
            .zip(&opts.nics)
            .map(|(k, &model)| {
                Nic::new(format!("nic{k}"), format!("{p}n{k}"), nic_mac(k)).with_model(model)
            })
            .collect();
        nics.push(
            Nic::new("router", &router_tap, ROUTER_MAC)
                .with_properties(opts.router_nic.properties())
                .with_queues(opts.router_queues),
        );
        let net_vm_spec = guest::Spec {
            name: "net-vm",
            kernel: &kernel,
            qemu: &qemu,
            initrd: &initrd,
            netns: &trunk.name,
            nics,
            cpus: 2,
            mem_mb: 512,
            dir: &opts.dir,
        };
        let trunk_tap = format!("{p}t");
        let router_spec = guest::Spec {
            name: "router-vm",
            kernel: &kernel,
            qemu: &qemu,
            initrd: &initrd,
            netns: &trunk.name,
            nics: vec![Nic::new("trunk", &trunk_tap, TRUNK_MAC)],
            cpus: 1,
            mem_mb: 384,
            dir: &opts.dir,
        };
        let (net_vm, router) = std::thread::scope(|s| {
            let a = s.spawn(|| Guest::boot(&net_vm_spec, accel));
            let b = s.spawn(|| Guest::boot(&router_spec, accel));
            (a.join(), b.join())
        });
        let mut net_vm = net_vm.map_err(|_| anyhow::anyhow!("net-vm boot panicked"))??;
        let router = router.map_err(|_| anyhow::anyhow!("router VM boot panicked"))??;
        for tap in [&router_tap, &trunk_tap] {
            trunk.ip(&["link", "set", tap, "master", "br0", "up"])?;
        }
        let names = interfaces_by_mac(&mut net_vm)?;
        let find = |mac: &str| {
            names
                .iter()
                .find(|(_, m)| m == mac)
                .map(|(n, _)| n.clone())
                .with_context(|| format!("the net-vm has no NIC with MAC {mac}"))
        };
        let mut networks = Vec::new();
        for ((k, ns), &model) in (1..).zip(outside).zip(&opts.nics) {
            let tap = format!("{p}n{k}");
            trunk.ip(&["link", "set", &tap, "netns", &ns.name])?;
            ns.ip(&["link", "set", &tap, "up"])?;
            ns.ip(&["addr", "add", &format!("{EXT_ADDR}/24"), "dev", &tap])?;
            networks.push(Network {
                k,
                guest_if: find(&nic_mac(k))?,
                mac: nic_mac(k),
                model,
                tap,
                ns,
            });
        }
        let router_if = find(ROUTER_MAC)?;
        Ok(Self {
            prefix: p.clone(),
            kernel,
            qemu,
            accel,
            trunk,
            router_tap,
            router_if,
            router_nic: opts.router_nic,
            networks,
            net_vm,
            router,
            router_vids: std::collections::BTreeMap::new(),
        })
    }

    /// The guest kernel as the checks' names say it: "6.1", "6.12", and
    /// "6.1 aarch64" for an aarch64 lab.
    pub fn linux(&self) -> String {
        match self.kernel.arch {
            Arch::Amd64 => self.kernel.which.linux().to_owned(),
            arch => format!("{} {arch}", self.kernel.which.linux()),
        }
    }

    /// The forwarder's ports in the net-vm (`status --json`).
    pub fn status(&mut self) -> anyhow::Result<Value> {
        let out = self.net_vm.sh("xdp-forwarder status --json")?;
        serde_json::from_str(&out).with_context(|| format!("status --json printed {out:?}"))
    }

    /// Runs `f` with [`Self::networks`] cut down to those whose NIC is a
    /// `model`: every case then leaves the others alone (their NICs stay
    /// unattached, their taps unused). The router VM's VLAN hosts are
    /// numbered by position ([`Self::configure_router_vlans`]): keep the
    /// networks a ping or UDP case runs on first (1 to N).
    pub fn only<R>(&mut self, model: NicModel, f: impl FnOnce(&mut Self) -> R) -> R {
        let (these, others) = std::mem::take(&mut self.networks)
            .into_iter()
            .partition(|n| n.model == model);
        self.networks = these;
        let result = f(self);
        self.networks.extend(others);
        self.networks.sort_by_key(|n| n.k);
        result
    }

    /// The net-vm's interfaces the forwarder takes: each network's NIC, in
    /// network order, then the router NIC.
    pub fn port_names(&self) -> Vec<String> {
        self.networks
            .iter()
            .map(|n| n.guest_if.clone())
            .chain([self.router_if.clone()])
            .collect()
    }

    /// An AF_PACKET socket on the router NIC's tap (in the trunk namespace).
    pub fn router_socket(&self) -> anyhow::Result<crate::packet::RawSocket> {
        self.trunk
            .within(|| crate::packet::RawSocket::bind(&self.router_tap))
            .context("router tap")
    }

    /// An AF_PACKET socket on each network's tap, in network order.
    pub fn outside_sockets(&self) -> anyhow::Result<Vec<crate::packet::RawSocket>> {
        self.networks
            .iter()
            .map(|n| n.ns.within(|| crate::packet::RawSocket::bind(&n.tap)))
            .collect()
    }

    /// The VID the net-vm gave the NIC of network `k`.
    pub fn vid(&mut self, k: usize) -> anyhow::Result<u16> {
        let name = self
            .networks
            .iter()
            .find(|n| n.k == k)
            .with_context(|| format!("no network {k}"))?
            .guest_if
            .clone();
        let st = self.status()?;
        st["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name.as_str()))
            .and_then(|p| p["vid"].as_u64())
            .map(|v| v as u16)
            .with_context(|| format!("{name} is not attached as physical: {st}"))
    }

    /// The router VM's side: one 802.1Q sub-interface of the trunk per
    /// network of the lab's (`vids`: their VIDs, in order), VID as the
    /// net-vm gave it, MAC and namespace `lanK` of its own, address
    /// [`LAN_ADDR`], IPv6 off (its chatter would cross the forwarder at
    /// moments of its own and spoil the counter checks). Networks set up
    /// before are kept; a network whose VID changed is an error.
    pub fn configure_router_vlans(&mut self, vids: &[u16]) -> anyhow::Result<()> {
        let mut script = "set -e\nip link set eth0 up\n".to_owned();
        let ks: Vec<usize> = self.networks.iter().map(|n| n.k).collect();
        if ks.len() != vids.len() {
            bail!("{} VIDs for {} networks", vids.len(), ks.len());
        }
        let mut added = Vec::new();
        for (&k, &vid) in ks.iter().zip(vids) {
            match self.router_vids.get(&k) {
                Some(&done) if done == vid => continue,
                Some(&done) => bail!("network {k}'s VID changed from {done} to {vid}"),
                None => added.push((k, vid)),
            }
        }
        if added.is_empty() {
            return Ok(());
        }
        for &(k, vid) in &added {
            let mac = lan_mac(k);
            let ns = format!("lan{k}");
            script.push_str(&guest::add_netns(&ns));
            script.push_str(&format!(
                "ip link add link eth0 name vl{k} address {mac} type vlan id {vid}\n"
            ));
            script.push_str(&guest::move_to_netns(&format!("vl{k}"), &ns));
            script.push_str(&format!(
                "{IN_NETNS}{ns} ip addr add {LAN_ADDR}/24 dev vl{k}\n\
                 {IN_NETNS}{ns} ip link set vl{k} up\n"
            ));
        }
        self.router.sh(&script)?;
        self.router_vids.extend(added);
        Ok(())
    }
}

/// (name, MAC) of every interface but `lo` in `guest`.
pub fn interfaces_by_mac(guest: &mut Guest) -> anyhow::Result<Vec<(String, String)>> {
    let out =
        guest.sh("for i in /sys/class/net/*; do echo \"${i##*/} $(cat $i/address)\"; done")?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| *n != "lo")
        .map(|(n, m)| (n.to_owned(), m.trim().to_owned()))
        .collect())
}
