//! What the daemon makes of an interface: the net-vm's rules.

use crate::{Error, Result, Role, kernel::netdev::Interface};

/// The rules, from the command line.
#[derive(Clone, Debug)]
pub struct Rules {
    /// The first octets of the router interface's MAC.
    router_mac_prefix: Vec<u8>,
    /// Interface name patterns (`*` and `?` wildcards) left alone.
    ignore: Vec<String>,
}

/// `02:01` or `02:01:` → `[2, 1]`: 1 to 6 octets of two hex digits (either
/// case), colon-separated, one trailing colon allowed. The mdev hook
/// (contrib/mdev/iface) applies the same rule.
pub fn parse_mac_prefix(text: &str) -> Result<Vec<u8>> {
    let invalid = || Error::InvalidMacPrefix(text.to_owned());
    let body = text.strip_suffix(':').unwrap_or(text);
    let octets: Vec<u8> = body
        .split(':')
        .map(|o| {
            (o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u8::from_str_radix(o, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()
        .ok_or_else(invalid)?;
    if !(1..=6).contains(&octets.len()) {
        return Err(invalid());
    }
    Ok(octets)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Attach(Role),
    /// `lo`, or matched by `--ignore`.
    LeaveAlone,
}

impl Rules {
    pub fn new(router_mac_prefix: &str, ignore: Vec<String>) -> Result<Self> {
        Ok(Self {
            router_mac_prefix: parse_mac_prefix(router_mac_prefix)?,
            ignore,
        })
    }

    pub fn decide(&self, link: &Interface) -> Decision {
        if link.loopback || link.name == "lo" || self.ignore.iter().any(|p| glob(p, &link.name)) {
            return Decision::LeaveAlone;
        }
        if link
            .mac
            .is_some_and(|mac| mac.starts_with(&self.router_mac_prefix))
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

    fn link(name: &str, mac: [u8; 6]) -> Interface {
        Interface {
            index: 2,
            name: name.into(),
            mac: Some(mac),
            mtu: Some(1500),
            up: false,
            carrier: true,
            promisc: false,
            loopback: false,
            kind: None,
            xdp: None,
        }
    }

    fn rules(ignore: &[&str]) -> Rules {
        Rules::new("02:01:", ignore.iter().map(|s| s.to_string()).collect()).unwrap()
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
        let upper = Rules::new("02:01:AB", vec![]).unwrap();
        assert_eq!(
            upper.decide(&link("x", [0x02, 0x01, 0xab, 0, 0, 0])),
            Decision::Attach(Role::Router)
        );
    }

    #[test]
    fn mac_prefixes_are_one_to_six_hex_octets() {
        for (text, octets) in [
            ("02", vec![2]),
            ("02:01", vec![2, 1]),
            ("02:01:", vec![2, 1]),
            ("0A:bC", vec![10, 0xbc]),
            ("02:01:00:00:00:01", vec![2, 1, 0, 0, 0, 1]),
        ] {
            assert_eq!(parse_mac_prefix(text).unwrap(), octets, "{text}");
        }
        for bad in [
            "",
            ":",
            "zz",
            "02-01",
            "2:1",
            "002:01",
            "02:01:00:00:00:00:00",
            "02::01",
            "02:01::",
        ] {
            let err = parse_mac_prefix(bad).unwrap_err().to_string();
            assert!(err.contains("1 to 6 octets"), "{bad:?}: {err}");
        }
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
