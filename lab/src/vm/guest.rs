//! One QEMU guest: booted from a Debian kernel and the lab's initramfs, with
//! NICs (virtio-net, or an emulated Intel e1000e) on tap devices, driven
//! through a shell on a virtio-serial port and through QMP (hot-plug).

use std::{
    io::{Read as _, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::debian::{Arch, Kernel, Qemu, path_str};

/// The device model QEMU emulates for a NIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NicModel {
    /// virtio-net: no VLAN offload, native XDP.
    #[default]
    VirtioNet,
    /// Intel 82574L (`e1000e` in QEMU 7.2 and Linux): strips the outer
    /// 802.1Q tag into the receive descriptor while `rx-vlan-offload` is on
    /// (the driver's default), as hardware NICs do; no XDP in its driver.
    E1000e,
    /// Intel 82576 (`igb`, QEMU ≥ 8.0: the lab runs QEMU from
    /// bookworm-backports for it): strips tags like e1000e, spreads flows
    /// over its queues (RSS, one queue pair per vCPU), and its driver runs
    /// native XDP.
    Igb,
}

impl NicModel {
    /// QEMU's `-device` driver.
    pub fn device(self) -> &'static str {
        match self {
            NicModel::VirtioNet => "virtio-net-pci",
            NicModel::E1000e => "e1000e",
            NicModel::Igb => "igb",
        }
    }

    /// Whether it strips the outer 802.1Q tag into its receive descriptor
    /// (`rx-vlan-hw-parse` on by default), as hardware NICs do.
    pub fn strips_tags(self) -> bool {
        matches!(self, NicModel::E1000e | NicModel::Igb)
    }

    /// Whether the machine's QEMU (7.2) lacks it.
    pub fn needs_newer_qemu(self) -> bool {
        self == NicModel::Igb
    }
}

impl std::fmt::Display for NicModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NicModel::VirtioNet => "virtio-net",
            NicModel::E1000e => "e1000e",
            NicModel::Igb => "igb",
        })
    }
}

/// A NIC on a tap device.
#[derive(Clone, Debug)]
pub struct Nic {
    /// QEMU's id for the device (the netdev is `ID-net`).
    pub id: String,
    /// The tap's name on the host (created by QEMU in the guest's namespace).
    pub tap: String,
    pub mac: String,
    pub model: NicModel,
    /// More `-device` properties (`name=value,…`), e.g. [`RouterNic::properties`].
    pub properties: &'static str,
    /// virtio-net queue pairs (`mq=on` and a multi-queue tap when > 1).
    pub queues: u16,
}

/// How the net-vm's router NIC is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RouterNic {
    /// QEMU's virtio-net-pci as it comes: every guest offload, and
    /// `CTRL_GUEST_OFFLOADS`, so the guest can switch them off for XDP.
    #[default]
    QemuDefault,
    /// As a VMM whose vhost-user backend offers only VERSION_1 + GUEST_CSUM
    /// makes it (Spectrum's router): no `CTRL_GUEST_OFFLOADS`, so virtio-net
    /// refuses native XDP and delivers the host's TSO aggregates whole; no
    /// mergeable receive buffers; one queue pair (QEMU's default).
    LikeSpectrum,
}

impl RouterNic {
    /// The `-device virtio-net-pci` properties that make it.
    pub fn properties(self) -> &'static str {
        match self {
            RouterNic::QemuDefault => "",
            RouterNic::LikeSpectrum => "ctrl_guest_offloads=off,mrg_rxbuf=off",
        }
    }
}

impl std::fmt::Display for RouterNic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RouterNic::QemuDefault => "QEMU's default router NIC",
            RouterNic::LikeSpectrum => "Spectrum-like router NIC",
        })
    }
}

impl Nic {
    /// A virtio-net NIC.
    pub fn new(id: impl Into<String>, tap: impl Into<String>, mac: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            tap: tap.into(),
            mac: mac.into(),
            model: NicModel::VirtioNet,
            properties: "",
            queues: 1,
        }
    }

    pub fn with_model(self, model: NicModel) -> Self {
        Self { model, ..self }
    }

    pub fn with_properties(self, properties: &'static str) -> Self {
        Self { properties, ..self }
    }

    /// `queues` queue pairs on a virtio-net NIC.
    pub fn with_queues(self, queues: u16) -> Self {
        Self { queues, ..self }
    }

    fn netdev_args(&self) -> String {
        let mut args = format!(
            "tap,id={}-net,ifname={},script=no,downscript=no",
            self.id, self.tap
        );
        if self.queues > 1 {
            args.push_str(&format!(",queues={}", self.queues));
        }
        args
    }

    fn device_args(&self) -> String {
        // romfile=: no iPXE option ROM, nothing to boot from the network.
        let mut args = format!(
            "{},netdev={}-net,mac={},id={},romfile=",
            self.model.device(),
            self.id,
            self.mac,
            self.id
        );
        if !self.properties.is_empty() {
            args.push(',');
            args.push_str(self.properties);
        }
        if self.queues > 1 {
            // A vector per queue (rx and tx), one for config, one for the
            // control queue. Each tap queue feeds its virtqueue: the host's
            // tun driver spreads flows over them by their hash.
            args.push_str(&format!(",mq=on,vectors={}", 2 * self.queues + 2));
        }
        args
    }
}

/// What to boot.
pub struct Spec<'a> {
    /// Short name, for messages and file names.
    pub name: &'a str,
    pub kernel: &'a Kernel,
    pub qemu: &'a Qemu,
    pub initrd: &'a Path,
    /// The network namespace QEMU runs in (and creates its taps in).
    pub netns: &'a str,
    pub nics: Vec<Nic>,
    pub cpus: u32,
    pub mem_mb: u32,
    /// Where the sockets and the console log go.
    pub dir: &'a Path,
}

/// How QEMU runs guests here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// QEMU's machine, accelerator and CPU for a guest of `arch`.
    fn args(self, arch: Arch) -> Vec<&'static str> {
        match (arch, self) {
            // `-cpu host` aborts on an MSR on this kind of machine.
            (Arch::Amd64, Accel::Kvm) => vec!["-accel", "kvm", "-cpu", "max"],
            (Arch::Amd64, Accel::Tcg) => vec!["-accel", "tcg,thread=multi", "-cpu", "max"],
            // The `virt` machine (PCIe, PL011 UART, GICv2), booted directly
            // from the kernel Image: no firmware. The emulated CPU's own
            // pointer authentication is costly under TCG: QEMU's cheaper
            // implementation-defined one does the same for the guest.
            (Arch::Arm64, _) => vec![
                "-machine",
                "virt",
                "-accel",
                "tcg,thread=multi",
                "-cpu",
                "max,pauth-impdef=on",
            ],
        }
    }
}

/// PCIe root ports an aarch64 guest gets for hot-plug (`hp1`…): `virt`'s
/// root bus takes no hot-plugged device, a root port does (the guest's
/// `pciehp`).
pub const HOTPLUG_PORTS: usize = 3;

/// The `device_add` properties that put a hot-plugged NIC of cycle `n`
/// (1-based) where the guest's machine takes it: nothing on x86_64 (`pc`'s
/// PCI bus), root port `hpN` on aarch64.
pub fn hotplug_bus(arch: Arch, n: usize) -> Option<String> {
    (arch == Arch::Arm64).then(|| format!("hp{}", (n - 1) % HOTPLUG_PORTS + 1))
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG (emulation)",
        })
    }
}

const READY: &str = "@@XFD-READY@@";
/// Runs the rest of the command line in the guest's named network
/// namespace NAME (`{IN_NETNS}NAME cmd …`): busybox's `nsenter` on the
/// namespace file [`add_netns`] bound under `/run/netns`, as iproute2's
/// `ip netns exec` would (the guests have busybox, no iproute2).
pub const IN_NETNS: &str = "nsenter --net=/run/netns/";

/// A guest shell script that makes the named network namespace `name`,
/// persistent (busybox's `unshare --net=FILE` binds it to the file, as
/// `ip netns add` does), with `lo` up and IPv6 off (its chatter would
/// cross the forwarder at moments of its own and spoil counter checks).
pub fn add_netns(name: &str) -> String {
    format!(
        "mkdir -p /run/netns\n\
         touch /run/netns/{name}\n\
         unshare --net=/run/netns/{name} true\n\
         {IN_NETNS}{name} ip link set lo up\n\
         {IN_NETNS}{name} sysctl -qw net.ipv6.conf.all.disable_ipv6=1\n\
         {IN_NETNS}{name} sysctl -qw net.ipv6.conf.default.disable_ipv6=1\n"
    )
}

/// A guest shell script that moves interface `link` into the named
/// namespace `name`. busybox's `ip link set … netns` takes a process, not a
/// name: a shell entered into the namespace serves, once it is in (it
/// writes a file then), and ends after the move.
pub fn move_to_netns(link: &str, name: &str) -> String {
    format!(
        "rm -f /tmp/.in-{name}\n\
         {IN_NETNS}{name} sh -c 'touch /tmp/.in-{name}; exec sleep 60' &\n\
         while [ ! -e /tmp/.in-{name} ]; do sleep 0.05; done\n\
         ip link set {link} netns $!\n\
         kill $!\n"
    )
}
/// How long a boot may take under emulation (~5-10 s when the machine is
/// idle; two guests boot at once).
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Guest {
    pub name: String,
    pub arch: Arch,
    child: Child,
    ctl: UnixStream,
    /// Read from `ctl`, not yet consumed.
    pending: Vec<u8>,
    qmp: Option<UnixStream>,
    qmp_path: PathBuf,
    console: PathBuf,
}

impl Guest {
    /// Boots the guest and waits for its shell.
    /// A boot that fails is tried once more: under host load TCG guests
    /// on QEMU 10.0 have hung in RCU stalls until the timeout, and QEMU
    /// has aborted (`iotlb_to_section: Assertion … failed`), both before
    /// the guest ran anything of ours. The first failure is printed.
    pub fn boot(spec: &Spec, accel: Accel) -> anyhow::Result<Self> {
        Self::boot_within(spec, accel, BOOT_TIMEOUT).or_else(|first| {
            eprintln!(
                "{}: the boot failed, booting once more: {first:#}",
                spec.name
            );
            Self::boot_within(spec, accel, BOOT_TIMEOUT)
                .with_context(|| format!("booted twice; the first time: {first:#}"))
        })
    }

    fn boot_within(spec: &Spec, accel: Accel, timeout: Duration) -> anyhow::Result<Self> {
        let ctl_path = spec.dir.join(format!("{}.ctl", spec.name));
        let qmp_path = spec.dir.join(format!("{}.qmp", spec.name));
        let console = spec.dir.join(format!("{}.console", spec.name));
        // A file, not a pipe: nobody reads QEMU's stderr while it runs.
        let stderr_path = spec.dir.join(format!("{}.stderr", spec.name));
        let stderr = std::fs::File::create(&stderr_path)
            .with_context(|| format!("cannot create {}", stderr_path.display()))?;
        for p in [&ctl_path, &qmp_path] {
            let _ = std::fs::remove_file(p);
        }
        let arch = spec.kernel.arch;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", spec.netns])
            .arg(&spec.qemu.binary)
            .args(accel.args(arch));
        for dir in &spec.qemu.firmware {
            cmd.arg("-L").arg(dir);
        }
        if let Some(dir) = &spec.qemu.module_dir {
            cmd.env("QEMU_MODULE_DIR", dir);
        }
        cmd.args(["-m", &spec.mem_mb.to_string()])
            .args(["-smp", &spec.cpus.to_string()])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .arg("-no-reboot")
            .args(["-kernel", path_str(&spec.kernel.vmlinuz)?])
            .args(["-initrd", path_str(spec.initrd)?])
            .args([
                "-append",
                &format!(
                    "console={} quiet panic=-1 net.ifnames=0 biosdevname=0",
                    match arch {
                        Arch::Amd64 => "ttyS0",
                        Arch::Arm64 => "ttyAMA0",
                    }
                ),
            ])
            .args([
                "-chardev",
                &format!("file,id=con,path={}", path_str(&console)?),
                "-serial",
                "chardev:con",
            ])
            // The control shell's port. The host connects before the guest
            // starts (wait=on), and QEMU holds what the host sends until
            // the guest opens the port: nothing is lost either way.
            .args(["-device", "virtio-serial-pci,id=vser"])
            .args([
                "-chardev",
                &format!(
                    "socket,id=ctl,path={},server=on,wait=on",
                    path_str(&ctl_path)?
                ),
                "-device",
                "virtserialport,chardev=ctl,name=xfd-ctl",
            ])
            .args([
                "-qmp",
                &format!("unix:{},server=on,wait=off", path_str(&qmp_path)?),
            ]);
        for nic in &spec.nics {
            cmd.args(["-netdev", &nic.netdev_args()])
                .args(["-device", &nic.device_args()]);
        }
        if arch == Arch::Arm64 {
            for n in 1..=HOTPLUG_PORTS {
                cmd.args(["-device", &format!("pcie-root-port,id=hp{n},chassis={n}")]);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {} (install qemu-system-x86: `cargo xtask setup`; \
                     `xdp-forwarder-lab fetch` fetches QEMU 10.0)",
                    spec.qemu.binary.display()
                )
            })?;
        let mut guest = Guest {
            name: spec.name.to_owned(),
            arch,
            child,
            // Replaced below once QEMU listens.
            ctl: UnixStream::pair()?.0,
            pending: Vec::new(),
            qmp: None,
            qmp_path,
            console,
        };
        let deadline = Instant::now() + timeout;
        guest.ctl = loop {
            if let Ok(s) = UnixStream::connect(&ctl_path) {
                break s;
            }
            if let Some(st) = guest.child.try_wait()? {
                let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                bail!("QEMU for {} exited ({st}): {}", spec.name, err.trim());
            }
            if Instant::now() > deadline {
                bail!("QEMU for {} did not open its control socket", spec.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        guest
            .read_until(READY, deadline)
            .with_context(|| format!("{} did not boot", spec.name))?;
        Ok(guest)
    }

    /// Reads the control channel up to and including `marker`; returns
    /// what came before it.
    fn read_until(&mut self, marker: &str, deadline: Instant) -> anyhow::Result<String> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = find(&self.pending, marker.as_bytes()) {
                let text = String::from_utf8_lossy(&self.pending[..at]).into_owned();
                self.pending.drain(..at + marker.len());
                return Ok(text);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{}: no {marker:?} in time; got {:?}\nconsole:\n{}",
                    self.name,
                    String::from_utf8_lossy(&self.pending),
                    self.console_tail(40)
                );
            }
            self.ctl.set_read_timeout(Some(left))?;
            match self.ctl.read(&mut buf) {
                Ok(0) => bail!(
                    "{}: the guest closed its shell\nconsole:\n{}",
                    self.name,
                    self.console_tail(40)
                ),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e).context("reading the guest's shell"),
            }
        }
    }

    /// Runs `script` in a subshell of the guest's shell (stdin /dev/null,
    /// stderr merged; `set -e` and `exit` end only the script); returns its
    /// exit status and output. The guests' commands are busybox's applets
    /// and the lab's static binaries (no C library, no iproute2).
    pub fn sh_status(&mut self, script: &str, timeout: Duration) -> anyhow::Result<(i32, String)> {
        let end = "@@XFD-END";
        write!(
            self.ctl,
            "(\n{script}\n) </dev/null 2>&1; echo \"{end} $?@@\"\n"
        )?;
        let out = self.read_until(&format!("{end} "), Instant::now() + timeout)?;
        let code = self.read_until("@@", Instant::now() + Duration::from_secs(5))?;
        let code = code.trim().parse().unwrap_or(-1);
        Ok((code, out))
    }

    /// [`Self::sh_status`], failing unless the script exits 0.
    pub fn sh(&mut self, script: &str) -> anyhow::Result<String> {
        self.sh_within(script, Duration::from_secs(60))
    }

    pub fn sh_within(&mut self, script: &str, timeout: Duration) -> anyhow::Result<String> {
        let (code, out) = self.sh_status(script, timeout)?;
        if code != 0 {
            bail!(
                "{}: `{}` exited {code}: {}",
                self.name,
                script.trim(),
                out.trim()
            );
        }
        Ok(out)
    }

    /// One QMP command; returns its `return` value.
    pub fn qmp(&mut self, execute: &str, arguments: Value) -> anyhow::Result<Value> {
        if self.qmp.is_none() {
            let s = UnixStream::connect(&self.qmp_path)
                .with_context(|| format!("cannot connect to {}", self.qmp_path.display()))?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.qmp = Some(s);
            self.qmp_exchange(None)?; // the greeting
            self.qmp_exchange(Some(json!({"execute": "qmp_capabilities"})))?;
        }
        self.qmp_exchange(Some(json!({"execute": execute, "arguments": arguments})))
    }

    fn qmp_exchange(&mut self, msg: Option<Value>) -> anyhow::Result<Value> {
        let s = self.qmp.as_mut().context("QMP not connected")?;
        if let Some(msg) = &msg {
            writeln!(s, "{msg}")?;
        }
        let mut line = Vec::new();
        let mut byte = [0u8];
        loop {
            s.read_exact(&mut byte)
                .with_context(|| format!("{}: no QMP answer", self.name))?;
            if byte[0] != b'\n' {
                line.push(byte[0]);
                continue;
            }
            let v: Value = serde_json::from_slice(&line).context("QMP sent bad JSON")?;
            line.clear();
            if msg.is_none() && v.get("QMP").is_some() {
                return Ok(v);
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                bail!("{}: QMP {msg:?} failed: {e}", self.name);
            }
            // An event (DEVICE_DELETED, ...): not our answer.
        }
    }

    /// The last `lines` lines of the kernel console.
    pub fn console_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.console).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// KVM when `/dev/kvm` really runs a guest, else TCG. Probed once per
/// process (and remembered for this boot of the machine): here `/dev/kvm`
/// opens but a KVM guest hangs before its kernel starts.
pub fn accel(kernel: &Kernel, initrd: &Path, dir: &Path) -> Accel {
    // An aarch64 guest on this x86_64 machine: emulation.
    if kernel.arch != Arch::Amd64 {
        return Accel::Tcg;
    }
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| {
        if std::env::var_os("XDP_FORWARDER_LAB_TCG").is_some() || !Path::new("/dev/kvm").exists() {
            return Accel::Tcg;
        }
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let memo = crate::cache::root().join(format!("kvm-probe-{boot_id}"));
        if let Ok(v) = std::fs::read_to_string(&memo) {
            return if v == "kvm" { Accel::Kvm } else { Accel::Tcg };
        }
        let probe = (|| {
            let ns = crate::netns::Netns::add(&format!("xfdkvm{}", std::process::id()))?;
            let ns = ns.name.as_str();
            let qemu = Qemu::system();
            let spec = Spec {
                name: "kvm-probe",
                kernel,
                qemu: &qemu,
                initrd,
                netns: ns,
                nics: Vec::new(),
                cpus: 1,
                mem_mb: 256,
                dir,
            };
            let mut g = Guest::boot_within(&spec, Accel::Kvm, Duration::from_secs(15))?;
            g.sh_within("true", Duration::from_secs(5))
        })();
        let accel = if probe.is_ok() {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
        let _ = std::fs::write(&memo, if accel == Accel::Kvm { "kvm" } else { "tcg" });
        accel
    })
}
