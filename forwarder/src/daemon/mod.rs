//! `xdp-forwarder run`: the net-vm's hot-plug daemon. It adopts what is
//! already pinned, attaches every interface by the net-vm's rules, then
//! follows rtnetlink link events; attachments outlive it (pinned links).

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
    lock::DaemonLock,
    netdev::{self, Interface, LinkEvent},
    pins,
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
    let _lock = DaemonLock::for_pin_dir(&opts.pin_dir)?;
    let fwd = Forwarder::open(&opts.pin_dir)?;
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
    };
    info!(pin_dir = %daemon.opts.pin_dir.display(), "started");
    daemon.scan().await;
    // Events are edge-triggered: after a failure nothing may come again for
    // that interface, so a failure schedules a full rescan, 1 s later, then
    // backing off (2, 4, … s) to a minute while it keeps failing.
    let (mut backoff, mut next_retry) = (RETRY_FIRST, None);
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
}

/// A VID for the log line: the number, or `-`.
fn vid(v: Option<u16>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl Daemon {
    /// Forgets ports whose interface is gone, then handles every interface.
    async fn scan(&self) {
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
        if self.opts.rules.decide(&link) == Decision::LeaveAlone {
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
            Decision::LeaveAlone => debug!(iface = %link.name, "left alone"),
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
        if self.seen_attached.borrow_mut().remove(&link.index) {
            self.hand_detached.borrow_mut().insert(link.index);
            info!(iface = %link.name, result = "left alone",
                  "detached by hand: left alone until attached again, re-plugged, or SIGHUP");
            return true;
        }
        false
    }

    async fn attach(&self, link: &Interface, role: Role) {
        if self.detached_by_hand(link) {
            return;
        }
        let mut req = AttachRequest {
            iface: link.name.clone(),
            role,
            mode: self.opts.mode,
            vid: None,
            replace: false,
        };
        let mut outcome = self.fwd.attach(&req).await;
        if let Err(Error::RoleConflict { .. }) = outcome {
            // Its MAC changed sides: the rules win.
            req.replace = true;
            outcome = self.fwd.attach(&req).await;
        }
        if outcome.is_ok() && self.failing.borrow_mut().remove(&link.index).is_some() {
            info!(iface = %link.name, role = %role, "no longer failing");
        }
        let first_seen = outcome.is_ok() && self.seen_attached.borrow_mut().insert(link.index);
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
                info!(iface = %d.iface, role = %d.role, mode = %d.mode, vid = %vid(d.vid),
                      reason = d.mode_reason.as_deref().unwrap_or("--mode given"),
                      result = "attached", "interface");
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
    }
}
