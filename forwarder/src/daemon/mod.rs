//! `xdp-forwarder run`: the net-vm's hot-plug daemon. It adopts what is
//! already pinned, attaches every interface by the net-vm's rules, then
//! follows rtnetlink link events; attachments outlive it (pinned links).
//!
//! It reconciles, it does not only react: every [`RECONCILE_PERIOD`] it
//! re-reads the pin dir and the kernel (what is mounted at the pin dir,
//! the state dir, each port's program, name and MAC) and, when anything
//! drifted (a program removed behind its back, the state dir removed, a
//! port renamed into `--ignore`, the router's MAC off the prefix), scans
//! and converges, logging each cause once.

mod classify;

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::Duration,
};

use futures::StreamExt as _;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error, info, warn};

pub use classify::{Decision, Rules, parse_mac_prefix};

use crate::{
    Error, ModeChoice, Result, Role,
    attach::AttachRequest,
    detach::Outcome,
    forwarder::Forwarder,
    health,
    lock::DaemonLock,
    netdev::{self, Interface, LinkEvent},
    pins::{self, Identity},
    ports::Ports,
    station::StationMaps,
};

/// When a second router-prefix interface appears while one is active.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RouterPolicy {
    /// Keep the active one; log a warning about the newcomer.
    #[default]
    First,
    /// Move the router role to the newcomer.
    Latest,
}

pub struct Options {
    pub pin_dir: PathBuf,
    /// Fail instead of mounting bpffs at the pin dir.
    pub no_mount: bool,
    pub rules: Rules,
    pub router_policy: RouterPolicy,
    pub mode: ModeChoice,
    pub detach_on_exit: bool,
}

pub async fn run(opts: Options) -> Result<()> {
    crate::privileges::require("xdp-forwarder run")?;
    pins::ensure_bpffs(&opts.pin_dir, opts.no_mount)?;
    // Before anything is created there: a pin dir mounted over (or
    // remounted) while ports ran from the one below would split the state.
    refuse_unheld(&opts.pin_dir).await?;
    let lock = DaemonLock::for_pin_dir(&opts.pin_dir)?;
    let fwd = Forwarder::open(&opts.pin_dir)?;
    // The pin dir is an identity, not a path: what is mounted there now.
    let identity = fwd.pins().identity()?;
    // Another namespace's live ports: refuse now rather than fail on
    // every interface.
    fwd.check_netns()?;
    let signal_err = |e| Error::kernel("cannot install signal handlers", e);
    let mut term = signal(SignalKind::terminate()).map_err(signal_err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_err)?;
    let mut hup = signal(SignalKind::hangup()).map_err(signal_err)?;
    // Subscribe before the first scan, so that no change slips in between.
    let mut events = netdev::link_events()?;
    let daemon = Daemon {
        fwd,
        opts,
        standby: RefCell::default(),
        dirty: Cell::new(false),
        failing: RefCell::default(),
        seen_attached: RefCell::default(),
        hand_detached: RefCell::default(),
        names: RefCell::default(),
        lock: RefCell::new(lock),
        identity,
        moved_away: RefCell::default(),
        down_by_hand: RefCell::default(),
        drift: RefCell::default(),
        reconciles: Cell::new(0),
    };
    info!(pin_dir = %daemon.opts.pin_dir.display(), "started");
    daemon.scan().await;
    // Events are edge-triggered: after a failure nothing may come again for
    // that interface, so a failure schedules a full rescan, 1 s later, then
    // backing off (2, 4, … s) to a minute while it keeps failing.
    let (mut backoff, mut next_retry) = (RETRY_FIRST, None);
    let mut reconcile = tokio::time::interval(RECONCILE_PERIOD);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if daemon.dirty.get() && next_retry.is_none() {
            next_retry = Some(tokio::time::Instant::now() + backoff);
        }
        let retry = async {
            match next_retry {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = retry => {
                daemon.dirty.set(false);
                next_retry = None;
                debug!(after = ?backoff, "rescanning after an error");
                daemon.scan().await;
                backoff = if daemon.dirty.get() {
                    (backoff * 2).min(RETRY_MAX)
                } else {
                    RETRY_FIRST
                };
            }
            event = events.next() => match event {
                Some(_) if !daemon.pin_dir_is_ours() => {}
                Some(LinkEvent::Changed(link)) => daemon.changed(link).await,
                Some(LinkEvent::Removed(index)) => daemon.removed(index).await,
                Some(LinkEvent::Overrun) => {
                    warn!("link events were lost (burst too large); rescanning");
                    daemon.scan().await;
                }
                // Lost (e.g. the kernel dropped events under load): start over.
                None => {
                    warn!("link events stopped; subscribing again and rescanning");
                    events = netdev::link_events()?;
                    daemon.scan().await;
                }
            },
            _ = reconcile.tick() => daemon.reconcile().await,
            _ = hup.recv() => {
                info!("SIGHUP: rescanning (interfaces detached by hand are taken again)");
                daemon.hand_detached.borrow_mut().clear();
                // Also those whose detach it has not noticed yet.
                daemon.seen_attached.borrow_mut().clear();
                daemon.scan().await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if daemon.opts.detach_on_exit {
        for Outcome { port, error } in daemon.fwd.detach_all().await? {
            match error {
                None => {
                    info!(iface = %port.iface, role = %port.role, result = "detached", "exiting")
                }
                Some(e) => {
                    error!(iface = %port.iface, role = %port.role, error = %e, result = "failed", "exiting")
                }
            }
        }
    } else {
        info!(pin_dir = %daemon.opts.pin_dir.display(),
              "exiting; the attachments stay pinned there and keep forwarding");
    }
    Ok(())
}

/// The first rescan after a failure, and the longest wait between two.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// How often the daemon re-reads the pin dir and the kernel for what no
/// event tells it (a program removed, the state dir removed, a mount over
/// the pin dir): drift is repaired within this plus one attach (the
/// convergence bound, 2 s, is a test: `forwarder/tests/converge.rs`).
pub const RECONCILE_PERIOD: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);

struct Daemon {
    fwd: Forwarder,
    opts: Options,
    /// Router-prefix interfaces that do not hold the role (kept aside by the
    /// policy): left alone on their link events while another router is
    /// active, adopted when it goes.
    standby: RefCell<HashSet<u32>>,
    /// Something failed since the last scan: rescan on the next tick.
    dirty: Cell<bool>,
    /// Interfaces it saw attached (attached or adopted): one found without
    /// its registry record later was detached by hand.
    seen_attached: RefCell<HashSet<u32>>,
    /// Interfaces detached by hand while it ran: left alone until they are
    /// attached again by hand, re-plugged, or SIGHUP.
    hand_detached: RefCell<HashSet<u32>>,
    /// The names of the interfaces it handled, by ifindex: a removed one is
    /// logged by its name (the kernel no longer has it).
    names: RefCell<HashMap<u32, String>>,
    /// The last error logged per interface: a retry failing the same way
    /// is logged at debug only, a new cause at error again.
    failing: RefCell<HashMap<u32, String>>,
    /// The one-daemon lock, on the state dir it holds now (taken again when
    /// the state dir is rebuilt).
    lock: RefCell<DaemonLock>,
    /// What was mounted at the pin dir when it started.
    identity: Identity,
    /// Why the pin dir is no longer the one it started with (said once);
    /// `None` while it is. Nothing is attached meanwhile.
    moved_away: RefCell<Option<String>>,
    /// Ports taken down by hand (`ip link set X down`): left down, said once.
    down_by_hand: RefCell<HashSet<u32>>,
    /// The drift last logged by a reconcile: the same again is not news.
    drift: RefCell<Option<String>>,
    /// Reconciles so far: every [`SWEEP_EVERY`]th deletes the aged
    /// entries of the Wi-Fi stations' table.
    reconciles: Cell<u32>,
}

/// The stations' table is swept every this many reconciles (a minute):
/// the programs already take an aged entry for a miss, the sweep frees it.
const SWEEP_EVERY: u32 = 120;

/// A VID for the log line: the number, or `-`.
fn vid(v: Option<u16>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl Daemon {
    /// Forgets ports whose interface is gone, then handles every interface.
    async fn scan(&self) {
        if !self.pin_dir_is_ours() {
            return;
        }
        self.forget_gone().await;
        match self.fwd.netdev().all().await {
            Ok(links) => {
                for link in links {
                    self.handle(link).await;
                }
            }
            Err(e) => {
                error!(error = %e, "cannot list interfaces");
                self.dirty.set(true);
            }
        }
    }

    /// `link` as its event reported it: interfaces the rules leave alone are
    /// decided on that alone (no query: bursts of them stay cheap).
    async fn changed(&self, link: Interface) {
        if self.opts.rules.decide(&link) == Decision::LeaveAlone
            && !self.names.borrow().contains_key(&link.index)
        {
            debug!(iface = %link.name, "left alone");
            return;
        }
        match self.fwd.netdev().by_index(link.index).await {
            Ok(Some(link)) => self.handle(link).await,
            Ok(None) => self.removed(link.index).await,
            Err(e) => {
                error!(ifindex = link.index, error = %e, "cannot look the interface up");
                self.dirty.set(true);
            }
        }
    }

    async fn removed(&self, index: u32) {
        debug!(ifindex = index, "interface removed");
        self.standby.borrow_mut().remove(&index);
        self.failing.borrow_mut().remove(&index);
        self.seen_attached.borrow_mut().remove(&index);
        self.hand_detached.borrow_mut().remove(&index);
        // Only ports need releasing: skip the rest (bursts of them stay cheap).
        match self.fwd.is_port(index) {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                error!(ifindex = index, error = %e, "cannot read the port registry");
                self.dirty.set(true);
                return;
            }
        }
        if self
            .forget_gone()
            .await
            .iter()
            .any(|d| d.port.role == Role::Router)
        {
            // A standby router interface may be waiting.
            Box::pin(self.scan()).await;
        }
    }

    async fn forget_gone(&self) -> Vec<Outcome> {
        match self.fwd.forget_gone().await {
            Ok(gone) => {
                for Outcome { port: d, error } in &gone {
                    let name = self.names.borrow_mut().remove(&d.ifindex);
                    let iface = name.as_deref().unwrap_or(&d.iface);
                    match error {
                        None => {
                            info!(iface = %iface, ifindex = d.ifindex, role = %d.role, vid = %vid(d.vid),
                                      result = "released", "interface gone")
                        }
                        Some(e) => {
                            error!(iface = %iface, ifindex = d.ifindex, error = %e, result = "failed", "interface gone");
                            self.dirty.set(true);
                        }
                    }
                }
                gone
            }
            Err(e) => {
                error!(error = %e, "cannot release the ports of removed interfaces");
                self.dirty.set(true);
                Vec::new()
            }
        }
    }

    async fn handle(&self, link: Interface) {
        match self.opts.rules.decide(&link) {
            Decision::LeaveAlone => self.renamed_away(&link).await,
            Decision::Attach(Role::Router) => {
                if self.may_be_router(&link).await {
                    self.attach(&link, Role::Router).await;
                }
            }
            Decision::Attach(Role::Physical) => self.attach(&link, Role::Physical).await,
        }
    }

    /// Applies the router policy when another router interface is active.
    async fn may_be_router(&self, link: &Interface) -> bool {
        let other = match self.fwd.active_router().await {
            Ok(other) => other,
            Err(e) => {
                error!(iface = %link.name, error = %e, "cannot read the current state");
                self.dirty.set(true);
                return false;
            }
        };
        let Some(other) = other.filter(|o| o.index != link.index) else {
            self.standby.borrow_mut().remove(&link.index);
            return true;
        };
        if self.standby.borrow().contains(&link.index) {
            return false;
        }
        let other_name = other.name;
        match self.opts.router_policy {
            RouterPolicy::First => {
                self.standby.borrow_mut().insert(link.index);
                warn!(iface = %link.name, active = %other_name, result = "standby",
                      "a second router interface; keeping the active one (--router-policy latest switches)");
                false
            }
            RouterPolicy::Latest => match self.fwd.detach(&other_name).await {
                Ok(_) => {
                    self.seen_attached.borrow_mut().remove(&other.index);
                    self.standby.borrow_mut().insert(other.index);
                    info!(iface = %other_name, role = "router", result = "standby",
                          "the router role moves to {}", link.name);
                    true
                }
                Err(e) => {
                    error!(iface = %other_name, error = %e, "cannot hand the router role over");
                    self.dirty.set(true);
                    false
                }
            },
        }
    }

    /// Whether `link` was detached by hand while we ran (we saw it
    /// attached; its record is gone): a manual `detach` is honoured, the
    /// interface left alone until it is attached by hand again, re-plugged,
    /// or SIGHUP. Asked under the writer lock, so that a `detach` under way
    /// is finished first (its own link events come before its end).
    fn detached_by_hand(&self, link: &Interface) -> bool {
        let registered = match self
            .fwd
            .lock()
            .and_then(|_lock| self.fwd.is_port(link.index))
        {
            Ok(registered) => registered,
            Err(e) => {
                error!(iface = %link.name, error = %e, "cannot read the port registry");
                self.dirty.set(true);
                return true;
            }
        };
        if registered {
            self.hand_detached.borrow_mut().remove(&link.index);
            return false;
        }
        if self.hand_detached.borrow().contains(&link.index) {
            debug!(iface = %link.name, "left alone (detached by hand)");
            return true;
        }
        // The whole state dir went, not this port's record: the next
        // reconcile rebuilds it.
        let state_dir = self.fwd.pins().identity().ok().and_then(|i| i.state_dir);
        if state_dir != Some(self.lock.borrow().state_dir_ino()) {
            return false;
        }
        if self.seen_attached.borrow_mut().remove(&link.index) {
            self.hand_detached.borrow_mut().insert(link.index);
            info!(iface = %link.name, result = "left alone",
                  "detached by hand: left alone until attached again, re-plugged, or SIGHUP");
            return true;
        }
        false
    }

    async fn attach(&self, link: &Interface, role: Role) {
        if self.detached_by_hand(link) || self.down_by_hand(link) {
            return;
        }
        let mut req = AttachRequest {
            iface: link.name.clone(),
            role,
            mode: self.opts.mode,
            vid: None,
            replace: false,
            kind: crate::station::KindChoice::Auto,
        };
        let mut outcome = self.fwd.attach(&req).await;
        let mut was_router = false;
        if let Err(Error::RoleConflict { current, .. }) = outcome {
            // Its MAC changed sides: the rules win.
            info!(iface = %link.name, from = %current, to = %role,
                  "its MAC changed sides of the router MAC prefix: attaching it as {role}");
            was_router = current == Role::Router;
            req.replace = true;
            outcome = self.fwd.attach(&req).await;
        }
        if outcome.is_ok() && self.failing.borrow_mut().remove(&link.index).is_some() {
            info!(iface = %link.name, role = %role, "no longer failing");
        }
        let first_seen = outcome.is_ok() && self.seen_attached.borrow_mut().insert(link.index);
        let handed_over = was_router && outcome.is_ok();
        self.names
            .borrow_mut()
            .insert(link.index, link.name.clone());
        match outcome {
            // What a previous run or `attach` left: taken over as it is.
            Ok(d) if d.unchanged && first_seen => {
                info!(iface = %d.iface, role = %d.role, mode = %d.mode, vid = %vid(d.vid),
                      result = "adopted", "interface")
            }
            Ok(d) if d.unchanged => debug!(iface = %d.iface, role = %d.role, "already attached"),
            Ok(d) => {
                let reason = match (&d.mode_reason, self.opts.mode) {
                    (Some(r), _) => r.as_str(),
                    (None, ModeChoice::Auto) => "the mode it ran in (auto)",
                    (None, _) => "--mode given",
                };
                info!(iface = %d.iface, role = %d.role, mode = %d.mode, vid = %vid(d.vid),
                      %reason, result = "attached", "interface");
                if let Some(caveat) = &d.caveat {
                    warn!(iface = %d.iface, mode = %d.mode, %caveat, "what this mode cannot carry here");
                }
                for m in &d.moved {
                    info!(iface = %m.iface, from = %m.from, to = %m.to, because = %d.iface,
                          "moved so that every direction works");
                }
            }
            // One bad interface never stops the daemon; it is retried. The
            // same error again is not news: logged at debug.
            Err(e) => {
                let text = e.to_string();
                let mut failing = self.failing.borrow_mut();
                if failing.get(&link.index) == Some(&text) {
                    debug!(iface = %link.name, role = %role, error = %e, result = "failed",
                           "interface (still failing; retried with backoff)");
                } else {
                    error!(iface = %link.name, role = %role, error = %e, result = "failed", "interface");
                    failing.insert(link.index, text);
                }
                self.dirty.set(true);
            }
        }
        if handed_over {
            // The router left the prefix: a standby router takes the role.
            info!(iface = %link.name, "the router no longer has the router MAC prefix: handing \
                   the router role to a standby router interface, if one waits");
            self.standby.borrow_mut().clear();
            Box::pin(self.scan()).await;
        }
    }

    /// Whether the pin dir is still the bpffs it started with; when it is
    /// not, it says so once (with the fix) and nothing is attached: the
    /// state is never split between two mounts.
    fn pin_dir_is_ours(&self) -> bool {
        self.moved_away.borrow().is_none()
    }

    /// A port of ours whose interface was renamed into `--ignore`: detached
    /// (what attach changed, promiscuous mode and features, is restored).
    async fn renamed_away(&self, link: &Interface) {
        let old = self.names.borrow().get(&link.index).cloned();
        let Some(old) = old.filter(|o| *o != link.name) else {
            debug!(iface = %link.name, "left alone");
            return;
        };
        self.names.borrow_mut().remove(&link.index);
        self.seen_attached.borrow_mut().remove(&link.index);
        if !self.fwd.is_port(link.index).unwrap_or(false) {
            return;
        }
        match self.fwd.detach(&link.name).await {
            Ok(d) => info!(iface = %link.name, was = %old, role = %d.role, result = "detached",
                           "renamed into an --ignore pattern: detached, what attach changed restored"),
            Err(e) => {
                error!(iface = %link.name, was = %old, error = %e, result = "failed",
                       "renamed into an --ignore pattern: cannot detach it");
                self.dirty.set(true);
            }
        }
    }

    /// A port taken down by hand (`ip link set X down`) is left down: the
    /// operator's intent, said once; `ip link set X up` resumes it. A new
    /// interface (not a port yet) is brought up by its attach, as hot-plug
    /// wants.
    fn down_by_hand(&self, link: &Interface) -> bool {
        if link.up || !self.fwd.is_port(link.index).unwrap_or(false) {
            if self.down_by_hand.borrow_mut().remove(&link.index) {
                info!(iface = %link.name, "up again: forwarding resumes");
            }
            return false;
        }
        if self.down_by_hand.borrow_mut().insert(link.index) {
            info!(iface = %link.name, result = "left down",
                  "taken down by hand (`ip link set {0} down`): left down; `ip link set {0} up` \
                   resumes it", link.name.escape_debug());
        }
        true
    }

    /// Re-reads the pin dir and the kernel; scans when anything drifted.
    async fn reconcile(&self) {
        let now = match self.fwd.pins().identity() {
            Ok(now) => now,
            Err(e) => {
                self.moved(Some(e.to_string()));
                return;
            }
        };
        let pin_dir = self.opts.pin_dir.display().to_string();
        if !now.bpffs {
            self.moved(Some(format!(
                "the pin dir {pin_dir} is no longer a bpffs mount (unmounted, e.g. `umount -l`): \
                 the ports attached from it keep running while this daemon holds the old \
                 mount, but nothing new is attached; fix: mount bpffs there again (`mount -t \
                 bpf -o mode=0700 bpf {pin_dir}`) and restart the daemon, which attaches every \
                 port again"
            )));
            return;
        }
        if now.dev != self.identity.dev {
            self.moved(Some(format!(
                "another bpffs is mounted over the pin dir {pin_dir} (device {} → {}): the \
                 ports attached from the one below keep running, but this daemon stops \
                 attaching rather than split its state between two mounts; fix: unmount the \
                 one on top (`umount {pin_dir}`), and the daemon resumes",
                dev(self.identity.dev),
                dev(now.dev)
            )));
            return;
        }
        if !self.pin_dir_is_ours() {
            self.moved(None);
            self.scan().await;
            return;
        }
        let n = self.reconciles.get().wrapping_add(1);
        self.reconciles.set(n);
        if n % SWEEP_EVERY == 0 {
            self.sweep_stations();
        }
        if let Some(cause) = self.drift(now).await {
            if self.drift.borrow().as_ref() != Some(&cause) {
                info!(%cause, "reconciling");
                *self.drift.borrow_mut() = Some(cause);
            }
            self.scan().await;
        } else {
            *self.drift.borrow_mut() = None;
        }
    }

    /// Deletes the Wi-Fi stations' aged table entries.
    fn sweep_stations(&self) {
        let Ok(Some(mut maps)) = StationMaps::open(self.fwd.pins()) else {
            return;
        };
        match maps.sweep_aged() {
            Ok(0) => {}
            Ok(n) => debug!(entries = n, "aged out of the stations' table"),
            Err(e) => warn!(error = %e, "cannot sweep the stations' table"),
        }
    }

    /// Says (once) that the pin dir is no longer the one it started with,
    /// or (`None`) that it is again.
    fn moved(&self, why: Option<String>) {
        let mut moved = self.moved_away.borrow_mut();
        match why {
            Some(why) => {
                if moved.as_ref() != Some(&why) {
                    error!(pin_dir = %self.opts.pin_dir.display(), "{why}");
                    *moved = Some(why);
                }
            }
            None => {
                if moved.take().is_some() {
                    info!(pin_dir = %self.opts.pin_dir.display(),
                          "the pin dir is again the bpffs the daemon started with: attaching again");
                }
            }
        }
    }

    /// What drifted from what the daemon made, if anything: the state dir
    /// gone or replaced, a port not running its program, a port renamed
    /// into `--ignore`, the router off the prefix.
    async fn drift(&self, now: Identity) -> Option<String> {
        let locked = self.lock.borrow().state_dir_ino();
        if now.state_dir != Some(locked) {
            warn!(state_dir = %self.fwd.pins().state_dir().display(),
                  "the pin dir's state was removed (or replaced) behind the daemon's back: \
                   rebuilding it, every port attached again");
            match DaemonLock::for_pin_dir(&self.opts.pin_dir) {
                Ok(lock) => *self.lock.borrow_mut() = lock,
                Err(e) => {
                    error!(error = %e, "cannot take the daemon lock on the new state dir");
                    self.dirty.set(true);
                }
            }
            // Not detached by hand: the whole state went (also what a scan
            // under way took for that meanwhile).
            self.seen_attached.borrow_mut().clear();
            self.hand_detached.borrow_mut().clear();
            return Some("the state dir was removed".into());
        }
        let ports = match Ports::open(self.fwd.pins()).and_then(|p| match p {
            Some(p) => p.all(),
            None => Ok(Vec::new()),
        }) {
            Ok(ports) => ports,
            Err(e) => return Some(format!("cannot read the port registry: {e}")),
        };
        if ports.is_empty() && !self.seen_attached.borrow().is_empty() {
            self.seen_attached.borrow_mut().clear();
            return Some("the port registry was emptied or removed".into());
        }
        for (ifindex, rec) in ports {
            if rec.netns != self.fwd.netns() {
                continue;
            }
            let link = match self.fwd.netdev().by_index(ifindex).await {
                Ok(link) => link,
                Err(e) => return Some(e.to_string()),
            };
            let Some(link) = link else {
                return Some(format!("ifindex {ifindex} is gone"));
            };
            // Left alone by the rules, or by their own backoff.
            if self.down_by_hand.borrow().contains(&ifindex)
                || self.failing.borrow().contains_key(&ifindex)
                || self.standby.borrow().contains(&ifindex)
            {
                continue;
            }
            if self.opts.rules.decide(&link) == Decision::LeaveAlone {
                if self
                    .names
                    .borrow()
                    .get(&ifindex)
                    .is_some_and(|n| *n != link.name)
                {
                    return Some(format!("{} was renamed into --ignore", link.name));
                }
                continue;
            }
            if let Decision::Attach(role) = self.opts.rules.decide(&link)
                && role != rec.role()
            {
                return Some(format!(
                    "{}'s MAC puts it on the {role} side of the router MAC prefix",
                    link.name
                ));
            }
            // A station's MAC changed (iwd randomises it per network): the
            // translation must write the new one, and forget the old
            // network's entries (`attach` repairs both).
            if rec.is_station()
                && let Some(mac) = link.mac
                && let Ok(Some(maps)) = StationMaps::open(self.fwd.pins())
                && maps
                    .slot(rec.vid)
                    .is_ok_and(|s| s.station_mac() != Some(mac))
            {
                return Some(format!(
                    "the Wi-Fi station {}'s MAC is {} now",
                    link.name,
                    crate::station::mac_string(&mac)
                ));
            }
            match health::of(ifindex, Some(&link), &self.fwd.pins().link(ifindex)) {
                Ok(h) if !h.is_attached() => {
                    return Some(format!(
                        "{}: {}",
                        link.name,
                        h.problem().unwrap_or_default()
                    ));
                }
                Ok(_) => {}
                Err(e) => return Some(e.to_string()),
            }
        }
        None
    }
}

/// Fails when programs of ours run, held by links or filters that no pin
/// dir mounted here holds: the pin dir was mounted over, or unmounted,
/// while they ran; a daemon on it would attach every new port into a state
/// without them (and no router).
async fn refuse_unheld(pin_dir: &std::path::Path) -> Result<()> {
    let net = netdev::Netdev::connect()?;
    let unheld: Vec<String> = net
        .all()
        .await?
        .iter()
        .filter(|l| !l.loopback)
        .filter_map(|l| {
            crate::holder::unheld(l, pin_dir)
                .map(|what| format!("{}: {what}", l.name.escape_debug()))
        })
        .collect();
    if unheld.is_empty() {
        return Ok(());
    }
    let p = pin_dir.display();
    Err(Error::PinDirRefused {
        path: pin_dir.to_owned(),
        why: format!(
            "programs of ours run that no pin dir mounted here holds ({}): another bpffs is \
             mounted over {p}, or it was unmounted while they ran; unmount the one on top \
             (`umount {p}`) and start again, or remove them first (the commands `xdp-forwarder \
             attach IFACE` names)",
            unheld.join("; ")
        ),
    })
}

/// A device number as `major:minor`, as /proc/self/mountinfo writes it.
fn dev(d: u64) -> String {
    format!("{}:{}", libc::major(d), libc::minor(d))
}
