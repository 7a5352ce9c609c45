//! The bench's private world: its own network namespace (entered by the
//! calling thread), its own bpffs mount, two veth pairs and spare veths.
//!
//! ```text
//! nic0x ── nic0 [physical]   router_iface → rtr0 ── rtr0x
//! (generator / sink)                                 (sink / generator)
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{Program, TestRun as _, TestRunOptions, TestRunResult, Xdp, XdpMode},
};
use xdp_forwarder_common::{
    PortCounters,
    maps::{COUNTERS, PROG_PHYSICAL, PROG_ROUTER, ROUTER_IFACE_KEY, TC_ROUTER_KEY, TC_TARGETS},
};

use crate::{
    cmd::run,
    netns::veth,
    objects::{self, FLOOR_PROGRAM, FLOOR_PUSH_PROGRAM, FLOOR_TC_PROGRAM},
};
use xdp_forwarder::{
    Mode, Role, counters,
    objects::{Setting, Tuning},
    pins::{self, MapSpec, PinDir},
};

/// The VID the bench's NIC gets.
pub const VID: u16 = 100;

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Physical {
        counting: bool,
    },
    Router {
        counting: bool,
    },
    Floor,
    /// The floor after `bpf_xdp_adjust_head(-4)`.
    FloorPush,
    /// The router's tc program on an Ethernet port's VID (counting, as
    /// attach loads it).
    RouterTc,
    /// `floor_tc`: a look-up in its `fwd_tc_targets` and `bpf_redirect`.
    FloorTc,
}

impl Subject {
    pub fn name(self) -> &'static str {
        match self {
            Subject::Physical { counting: true } => "physical",
            Subject::Physical { counting: false } => "physical, no counters",
            Subject::Router { counting: true } => "router",
            Subject::Router { counting: false } => "router, no counters",
            Subject::Floor => "floor",
            Subject::FloorPush => "floor + adjust_head",
            Subject::RouterTc => "tc router",
            Subject::FloorTc => "tc floor",
        }
    }

    fn program(self) -> &'static str {
        match self {
            Subject::Physical { .. } => PROG_PHYSICAL,
            Subject::Router { .. } | Subject::RouterTc => PROG_ROUTER,
            Subject::Floor => FLOOR_PROGRAM,
            Subject::FloorPush => FLOOR_PUSH_PROGRAM,
            Subject::FloorTc => FLOOR_TC_PROGRAM,
        }
    }

    pub fn counts(self) -> bool {
        matches!(
            self,
            Subject::Physical { counting: true }
                | Subject::Router { counting: true }
                | Subject::RouterTc
        )
    }

    /// A tc program (its verdicts and floor are tc's).
    pub fn is_tc(self) -> bool {
        matches!(self, Subject::RouterTc | Subject::FloorTc)
    }

    /// What it compares to.
    pub fn floor(self) -> Subject {
        if self.is_tc() {
            Subject::FloorTc
        } else {
            Subject::Floor
        }
    }
}

/// A loaded subject (its object keeps the program and its counters alive).
pub struct Loaded {
    pub subject: Subject,
    pub ebpf: Ebpf,
}

impl Loaded {
    pub fn prog(&mut self) -> &mut Xdp {
        prog(&mut self.ebpf, self.subject.program())
    }

    /// A BPF_PROG_TEST_RUN of the subject's program, XDP or tc.
    pub fn test_run(&self, opts: TestRunOptions<'_>) -> anyhow::Result<TestRunResult> {
        let name = self.subject.program();
        let result = match self.ebpf.program(name) {
            Some(Program::Xdp(p)) => p.test_run(opts),
            Some(Program::SchedClassifier(p)) => p.test_run(opts),
            _ => unreachable!("embedded objects hold {name}"),
        };
        result.with_context(|| format!("test run of {}", self.subject.name()))
    }

    pub fn counters(&self) -> anyhow::Result<PortCounters> {
        counted(&self.ebpf)
    }
}

/// The XDP program `name` of a loaded object.
pub fn prog<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    ebpf.program_mut(name)
        .and_then(|p| p.try_into().ok())
        .unwrap_or_else(|| unreachable!("embedded objects hold {name}"))
}

/// What the `fwd_counters` map of `ebpf` holds.
pub fn counted(ebpf: &Ebpf) -> anyhow::Result<PortCounters> {
    let map = ebpf.map(COUNTERS).context("no counters map")?;
    Ok(counters::sum(map)?)
}

pub struct Lab {
    pub pins: PinDir,
    mount: PathBuf,
    pub nic: u32,
    pub rtr: u32,
    pub nicx: u32,
    pub rtrx: u32,
    spares: usize,
}

/// Enters a new network namespace on the calling thread (a thread of its
/// own: the rest of the process stays where it was).
pub fn enter_private_netns() -> anyhow::Result<()> {
    crate::netns::unshare_thread()
}

impl Lab {
    /// Builds the lab in the current (private) namespace.
    pub fn new() -> anyhow::Result<Self> {
        let mount = PathBuf::from(format!("/run/xdp-forwarder-bench-{}", std::process::id()));
        std::fs::create_dir_all(&mount)
            .with_context(|| format!("cannot create {}", mount.display()))?;
        let m = mount.to_str().context("not UTF-8")?;
        run("mount", &["-t", "bpf", "bpf", m])?;
        let mut lab = Lab {
            pins: PinDir::open(&mount)?,
            mount,
            nic: 0,
            rtr: 0,
            nicx: 0,
            rtrx: 0,
            spares: 0,
        };
        (lab.nic, lab.nicx) = veth("nic0", "nic0x")?;
        (lab.rtr, lab.rtrx) = veth("rtr0", "rtr0x")?;
        lab.pins.ensure_state_dir()?;
        pins::open_or_create(&lab.pins.router_iface(), MapSpec::ROUTER_IFACE)?;
        let ports = pins::open_or_create(&lab.pins.vlan_ports(), MapSpec::VLAN_PORTS)?;
        ports.set(u32::from(VID), lab.nic)?;
        lab.point_router_iface(lab.rtr)?;
        Ok(lab)
    }

    /// The bench's bpffs mount (pin dirs of its own go below it).
    pub fn mount(&self) -> &std::path::Path {
        &self.mount
    }

    /// `router_iface` → `ifindex` (the floor redirects through it in both
    /// directions).
    pub fn point_router_iface(&self, ifindex: u32) -> anyhow::Result<()> {
        pins::open_existing(&self.pins.router_iface(), MapSpec::ROUTER_IFACE)?
            .context("router_iface is gone")?
            .set(ROUTER_IFACE_KEY, ifindex)?;
        Ok(())
    }

    /// Loads `subject` as `attach` would (the tc subjects redirect to the
    /// bench's NIC).
    pub fn load(&self, subject: Subject) -> anyhow::Result<Loaded> {
        self.load_to(subject, self.nic)
    }

    /// [`Lab::load`], the tc subjects redirecting to `target` (an ifindex).
    pub fn load_to(&self, subject: Subject, target: u32) -> anyhow::Result<Loaded> {
        let tuning = |counting| Tuning { counting };
        let ebpf = match subject {
            Subject::Physical { counting } => objects::load_with(
                Role::Physical,
                Setting::Managed { vid: Some(VID) },
                &self.pins,
                tuning(counting),
            )?,
            Subject::Router { counting } => objects::load_with(
                Role::Router,
                Setting::Managed { vid: None },
                &self.pins,
                tuning(counting),
            )?,
            Subject::Floor | Subject::FloorPush => objects::load_floor(&self.pins)?,
            // As attach loads it; its pinned `fwd_tc_targets` leads the
            // bench's VID to `target`.
            Subject::RouterTc => {
                let (ebpf, _fd) = objects::load_for(Role::Router, Mode::Tc, None, &self.pins)?;
                let targets = pins::open_existing(&self.pins.tc_targets(), MapSpec::TC_TARGETS)?
                    .context("the router's tc program left no fwd_tc_targets pinned")?;
                targets.set(u32::from(VID), target)?;
                ebpf
            }
            Subject::FloorTc => {
                let mut ebpf = objects::load_floor(&self.pins)?;
                point_floor_tc(&mut ebpf, target)?;
                ebpf
            }
        };
        Ok(Loaded { subject, ebpf })
    }

    /// A new veth pair used only to hold an attachment; returns its name.
    pub fn spare(&mut self) -> anyhow::Result<String> {
        self.spares += 1;
        let name = format!("spare{}", self.spares);
        veth(&name, &format!("{name}x"))?;
        Ok(name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The namespace (and its veths) dies with the thread; the mount does not.
        let _ = std::process::Command::new("umount")
            .arg(&self.mount)
            .status();
        let _ = std::fs::remove_dir(&self.mount);
    }
}

/// Points `floor_tc` (in the floor object `ebpf`) at `target`: slot 0 of
/// its own, unpinned `fwd_tc_targets`.
pub fn point_floor_tc(ebpf: &mut Ebpf, target: u32) -> anyhow::Result<()> {
    let mut targets: Array<&mut MapData, u32> = Array::try_from(
        ebpf.map_mut(TC_TARGETS)
            .context("floor_tc has no fwd_tc_targets")?,
    )?;
    targets.set(TC_ROUTER_KEY, target, 0)?;
    Ok(())
}

/// Attaches `prog` to `iface` in `mode`.
pub fn attach(prog: &mut Xdp, iface: &str, mode: XdpMode) -> anyhow::Result<()> {
    prog.attach(iface, mode)
        .with_context(|| format!("cannot attach to {iface} ({mode:?})"))?;
    Ok(())
}
