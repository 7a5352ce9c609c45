//! What the daemon makes of an interface: the net-vm's rules.

use crate::{Role, netdev::Link};

/// The rules, from the command line.
#[derive(Clone, Debug)]
pub struct Rules {
    /// MAC prefix of the router interface, lower case, e.g. `02:01:`.
    pub router_mac_prefix: String,
    /// Interface name patterns (`*` and `?` wildcards) left alone.
    pub ignore: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Attach(Role),
    /// `lo`, or matched by `--ignore`.
    LeaveAlone,
}

impl Rules {
    pub fn decide(&self, link: &Link) -> Decision {
        if link.loopback || link.name == "lo" || self.ignore.iter().any(|p| glob(p, &link.name)) {
            return Decision::LeaveAlone;
        }
        if link
            .mac_string()
            .starts_with(&self.router_mac_prefix.to_ascii_lowercase())
        {
            Decision::Attach(Role::Router)
        } else {
            Decision::Attach(Role::Physical)
        }
    }
}

/// Shell-style matching of `*` (any run) and `?` (any one character).
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic iterative matcher with one backtrack point for the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, mac: [u8; 6]) -> Link {
        Link {
            index: 2,
            name: name.into(),
            mac: Some(mac),
            mtu: Some(1500),
            up: false,
            promisc: false,
            loopback: false,
            xdp: None,
        }
    }

    fn rules(ignore: &[&str]) -> Rules {
        Rules {
            router_mac_prefix: "02:01:".into(),
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn router_prefix_lo_ignore_and_the_rest() {
        let r = rules(&["mgmt*", "eth?9"]);
        let router = [0x02, 0x01, 0, 0, 0, 1];
        let nic = [0x52, 0x54, 0, 0, 0, 1];
        assert_eq!(
            r.decide(&link("eth0", router)),
            Decision::Attach(Role::Router)
        );
        assert_eq!(
            r.decide(&link("eth0", nic)),
            Decision::Attach(Role::Physical)
        );
        assert_eq!(r.decide(&link("lo", [0; 6])), Decision::LeaveAlone);
        assert_eq!(r.decide(&link("mgmt0", nic)), Decision::LeaveAlone);
        assert_eq!(r.decide(&link("eth19", nic)), Decision::LeaveAlone);
        assert_eq!(
            r.decide(&link("eth1", nic)),
            Decision::Attach(Role::Physical)
        );
        let upper = Rules {
            router_mac_prefix: "02:01:AB".into(),
            ..r
        };
        assert_eq!(
            upper.decide(&link("x", [0x02, 0x01, 0xab, 0, 0, 0])),
            Decision::Attach(Role::Router)
        );
    }

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b", "aXXc"));
        assert!(glob("veth?", "veth1"));
        assert!(!glob("veth?", "veth12"));
        assert!(glob("exact", "exact"));
    }
}
