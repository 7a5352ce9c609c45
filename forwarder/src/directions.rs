//! Which directions between ports work in which modes: a native redirect
//! reaches a target only if its driver takes XDP frames ([`mode::reach`]);
//! the kernel says so in netdev xdp-features (`ndo_xmit`, Linux ≥ 6.3) and
//! the drivers' rule applies where it does not. A NIC's counterpart is the
//! router, the router's every NIC. `attach` keeps to modes in which both
//! directions of every pair work, and `--mode auto` may move the ports it
//! placed itself ([`regroup`]); `status` shows what is dead as a caveat.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    Mode, Role, inspect,
    mode::{self, Reach},
    netdev::Interface,
    ports::{FLAG_AUTO_MODE, PortRecord},
};

/// A direction between a port and one of its counterparts that does not
/// work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeadDirection {
    /// The counterpart's ifindex and mode.
    pub other: u32,
    pub other_mode: Mode,
    /// `true`: from the port to the counterpart; `false`: back.
    pub outbound: bool,
    pub reach: Reach,
}

impl DeadDirection {
    /// The direction in words, the port named `this`, its counterpart's
    /// name from `targets`.
    pub(crate) fn describe(&self, targets: &RedirectTargets, this: &str) -> String {
        let other = targets.name(self.other);
        let (from, to) = if self.outbound {
            (this, other.as_str())
        } else {
            (other.as_str(), this)
        };
        let why = match self.reach {
            Reach::Untranslated => {
                let (router, station) = if self.outbound {
                    (this, other.as_str())
                } else {
                    (other.as_str(), this)
                };
                return format!(
                    "the router {router} in {} mode would send into the Wi-Fi station {station} \
                     untranslated (the AP takes frames from the station's own MAC only, and \
                     only the router's tc program rewrites them): the router must run tc",
                    if self.outbound {
                        "this"
                    } else {
                        self.other_mode.name()
                    }
                );
            }
            Reach::No => "its netdev xdp-features lack ndo_xmit",
            Reach::Yes | Reach::Unlikely => {
                "it runs no native XDP program, and the drivers we know then refuse them"
            }
        };
        format!(
            "the native redirects from {from} would not reach {to} ({why}; {other} runs {} mode)",
            self.other_mode
        )
    }
}

/// For a set of ports: whether each takes native redirects now (`ndo_xmit`
/// in its netdev xdp-features; `None` where the kernel does not say),
/// asked of the kernel once per command rather than once per question.
#[derive(Clone, Debug)]
pub(crate) struct RedirectTargets {
    takes: BTreeMap<u32, Option<bool>>,
    /// Wi-Fi stations not (yet) registered as such: the port being attached.
    stations: BTreeSet<u32>,
}

impl RedirectTargets {
    pub(crate) fn ask(ifindexes: impl IntoIterator<Item = u32>) -> Self {
        Self {
            takes: ifindexes
                .into_iter()
                .map(|i| (i, inspect::takes_native_redirects(i)))
                .collect(),
            stations: BTreeSet::new(),
        }
    }

    /// `ifindex` is a Wi-Fi station (the port being attached, whose record
    /// does not say so yet).
    pub(crate) fn with_station(mut self, ifindex: u32) -> Self {
        self.stations.insert(ifindex);
        self
    }

    fn takes(&self, ifindex: u32) -> Option<bool> {
        self.takes.get(&ifindex).copied().flatten()
    }

    /// Whether `ifindex` is a Wi-Fi station, by its record in `all` or
    /// [`Self::with_station`].
    fn is_station(&self, ifindex: u32, all: &[(u32, PortRecord)]) -> bool {
        self.stations.contains(&ifindex) || all.iter().any(|(i, r)| *i == ifindex && r.is_station())
    }

    /// The interface's name in this namespace, else `ifindex N`: asked
    /// only for a message.
    pub(crate) fn name(&self, ifindex: u32) -> String {
        nix::net::if_::if_indextoname(ifindex)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("ifindex {ifindex}"))
    }

    /// What the kernel said of `ifindex` no longer holds (its native
    /// program is about to go): the drivers' rule decides.
    fn forget(&mut self, ifindex: u32) {
        if let Some(takes) = self.takes.get_mut(&ifindex) {
            *takes = None;
        }
    }
}

/// The directions that would not work with `role` on `link` in `mode`
/// next to the other ports of `all` (all of one network namespace), as
/// `targets` says. A NIC gains native redirects with a native program of
/// its own; a veth from its peer's XDP program or GRO, whatever runs on
/// the veth itself.
pub(crate) fn dead_directions(
    mode: Mode,
    role: Role,
    link: &Interface,
    all: &[(u32, PortRecord)],
    targets: &RedirectTargets,
) -> Vec<DeadDirection> {
    // A NIC takes them once its own native program runs.
    let this_takes = if is_veth(link) || !mode.runs_in_driver() {
        targets.takes(link.index)
    } else {
        None
    };
    let mut dead = Vec::new();
    for &(other, rec) in all {
        if other == link.index || rec.role() == role {
            continue;
        }
        // Only the router's tc program translates for a Wi-Fi station.
        let (router_mode, station) = match role {
            Role::Router => (mode, other),
            Role::Physical => (rec.mode(), link.index),
        };
        if router_mode != Mode::Tc && targets.is_station(station, all) {
            dead.push(DeadDirection {
                other,
                other_mode: rec.mode(),
                outbound: role == Role::Router,
                reach: Reach::Untranslated,
            });
            continue;
        }
        let other_takes = targets.takes(other);
        for (outbound, reach) in [
            (true, mode::reach(mode, rec.mode(), other_takes)),
            (false, mode::reach(rec.mode(), mode, this_takes)),
        ] {
            if reach != Reach::Yes {
                dead.push(DeadDirection {
                    other,
                    other_mode: rec.mode(),
                    outbound,
                    reach,
                });
            }
        }
    }
    dead
}

fn is_veth(link: &Interface) -> bool {
    link.kind.as_deref() == Some("veth")
}

/// The ports `--mode auto` must move to `mode` too so that every direction
/// works with `role` on `link` in `mode`: each counterpart a dead direction
/// leads to, then theirs (a NIC's native program going takes its native
/// redirect target away), each moved once. `ifaces` holds the registered
/// ports of this namespace. The error: the dead direction that no move
/// mends (its counterpart was attached with an explicit `--mode`, is
/// already in `mode`, or is not here).
pub(crate) fn regroup(
    mode: Mode,
    role: Role,
    link: &Interface,
    all: &[(u32, PortRecord)],
    ifaces: &BTreeMap<u32, Interface>,
    targets: &RedirectTargets,
) -> Result<Vec<u32>, DeadDirection> {
    let mut all: Vec<(u32, PortRecord)> = all
        .iter()
        .filter(|(i, _)| *i != link.index)
        .copied()
        .collect();
    all.push((link.index, PortRecord::new(role, mode, 0, 0, 0)));
    let mut targets = targets.clone();
    let mut moved = Vec::new();
    let mut queue = vec![link.index];
    while let Some(port) = queue.pop() {
        let Some(&(_, rec)) = all.iter().find(|(i, _)| *i == port) else {
            continue;
        };
        let iface = if port == link.index {
            link
        } else {
            &ifaces[&port]
        };
        for dead in dead_directions(rec.mode(), rec.role(), iface, &all, &targets) {
            let station = targets.is_station(dead.other, &all);
            let Some((_, other)) = all.iter_mut().find(|(i, _)| *i == dead.other) else {
                return Err(dead);
            };
            // A station runs tc only.
            let movable = other.flags & FLAG_AUTO_MODE != 0
                && other.mode() != mode
                && ifaces.contains_key(&dead.other)
                && !(station && mode != Mode::Tc);
            if !movable {
                return Err(dead);
            }
            *other = other.with_mode(mode);
            if !is_veth(&ifaces[&dead.other]) {
                targets.forget(dead.other);
            }
            moved.push(dead.other);
            queue.push(dead.other);
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(index: u32, kind: Option<&str>) -> Interface {
        Interface {
            index,
            name: format!("if{index}"),
            mac: None,
            mtu: Some(1500),
            up: true,
            carrier: true,
            promisc: false,
            loopback: false,
            kind: kind.map(str::to_owned),
            xdp: None,
        }
    }

    fn targets(takes: &[(u32, Option<bool>)]) -> RedirectTargets {
        RedirectTargets {
            takes: takes.iter().copied().collect(),
            stations: BTreeSet::new(),
        }
    }

    fn auto(role: Role, mode: Mode) -> PortRecord {
        PortRecord::new(role, mode, 0, FLAG_AUTO_MODE, 0)
    }

    /// Two NICs auto placed native, then a router that can run only skb:
    /// both NICs must follow (their native redirects would not reach it),
    /// and nothing else.
    #[test]
    fn a_router_in_skb_moves_the_native_nics_auto_placed() {
        let router = iface(1, None);
        let ifaces: BTreeMap<u32, Interface> = [(2, iface(2, None)), (3, iface(3, None))].into();
        let all = [
            (2, auto(Role::Physical, Mode::Native)),
            (3, auto(Role::Physical, Mode::Native)),
        ];
        let t = targets(&[(1, Some(false)), (2, Some(true)), (3, Some(true))]);
        let mut moved =
            regroup(Mode::Skb, Role::Router, &router, &all, &ifaces, &t).expect("movable");
        moved.sort();
        assert_eq!(moved, [2, 3]);
    }

    /// A new NIC in skb next to a native router: the router must move, and
    /// with it the other native NIC, whose redirects the router in skb no
    /// longer takes (the kernel's answer for the router was about its
    /// native program).
    #[test]
    fn moving_the_router_moves_the_nics_whose_redirects_it_no_longer_takes() {
        let nic = iface(3, None);
        let ifaces: BTreeMap<u32, Interface> = [(1, iface(1, None)), (2, iface(2, None))].into();
        let all = [
            (1, auto(Role::Router, Mode::Native)),
            (2, auto(Role::Physical, Mode::Native)),
        ];
        let t = targets(&[(1, Some(true)), (2, Some(true)), (3, Some(false))]);
        let mut moved =
            regroup(Mode::Skb, Role::Physical, &nic, &all, &ifaces, &t).expect("movable");
        moved.sort();
        assert_eq!(moved, [1, 2]);
    }

    /// A port attached with an explicit `--mode` is never moved: the dead
    /// direction to it is the answer.
    #[test]
    fn a_port_of_an_explicit_mode_blocks_the_regroup() {
        let router = iface(1, None);
        let ifaces: BTreeMap<u32, Interface> = [(2, iface(2, None)), (3, iface(3, None))].into();
        let all = [
            (2, auto(Role::Physical, Mode::Native)),
            (3, PortRecord::new(Role::Physical, Mode::Native, 0, 0, 0)),
        ];
        let t = targets(&[(1, Some(false)), (2, Some(true)), (3, Some(true))]);
        let blocked = regroup(Mode::Skb, Role::Router, &router, &all, &ifaces, &t)
            .expect_err("nic 3 is explicit");
        assert_eq!((blocked.other, blocked.outbound), (3, false));
    }

    /// A Wi-Fi station next to a router auto placed native: the router
    /// must move to tc (only its tc program translates); an explicit
    /// native router blocks the station instead.
    #[test]
    fn a_station_moves_an_auto_router_to_tc_and_an_explicit_one_blocks_it() {
        let station = iface(3, None);
        let ifaces: BTreeMap<u32, Interface> = [(1, iface(1, None))].into();
        let t = targets(&[(1, Some(true)), (3, None)]).with_station(3);
        let all = [(1, auto(Role::Router, Mode::Native))];
        let dead = dead_directions(Mode::Tc, Role::Physical, &station, &all, &t);
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].reach, dead[0].outbound),
            (Reach::Untranslated, false)
        );
        assert_eq!(
            regroup(Mode::Tc, Role::Physical, &station, &all, &ifaces, &t),
            Ok(vec![1])
        );
        let explicit = [(1, PortRecord::new(Role::Router, Mode::Native, 0, 0, 0))];
        assert!(regroup(Mode::Tc, Role::Physical, &station, &explicit, &ifaces, &t).is_err());
        // A router in tc: nothing dead.
        let tc = [(1, auto(Role::Router, Mode::Tc))];
        assert!(dead_directions(Mode::Tc, Role::Physical, &station, &tc, &t).is_empty());
    }

    /// Nothing dead, nothing moved.
    #[test]
    fn a_set_that_works_moves_nobody() {
        let router = iface(1, None);
        let ifaces: BTreeMap<u32, Interface> = [(2, iface(2, None))].into();
        let all = [(2, auto(Role::Physical, Mode::Skb))];
        let t = targets(&[(1, Some(false)), (2, Some(false))]);
        assert_eq!(
            regroup(Mode::Skb, Role::Router, &router, &all, &ifaces, &t),
            Ok(vec![])
        );
    }
}
