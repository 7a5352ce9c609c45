//! Who holds an XDP program this pin dir did not attach, and the command
//! that removes it: our own link pinned in another pin dir (detach it
//! there), a link nobody here can reach (`bpftool link detach`), or a
//! program attached over netlink without a link (`ip link set … off`). An
//! XDP *link* refuses `ip link set dev X xdp off` ("Can't replace active
//! BPF XDP link"), so the fix depends on which it is.

use std::path::{Path, PathBuf};

use crate::{
    mode::Hook,
    netdev::Interface,
    pins::{self, PinDir},
    sys,
};

/// The names our XDP programs have in the kernel (prog_physical,
/// prog_router and their libbpf-1.1 variants).
const OUR_PROGRAM_NAMES: [&str; 2] = ["physical", "router"];

/// What holds `prog_id` on `link`, and how to remove it, as one clause for
/// an error message ("…, which … ; remove it …"). `this` is the pin dir
/// of the command asking.
pub fn foreign_program(link: &Interface, prog_id: u32, this: &Path) -> String {
    let ours = sys::prog_name(prog_id).is_ok_and(|n| OUR_PROGRAM_NAMES.contains(&n.as_str()));
    let held_by = sys::all_links()
        .into_iter()
        .find(|l| l.hook == Hook::Xdp && l.ifindex == link.index && l.prog_id == prog_id);
    let iface = &link.name;
    match held_by {
        Some(held) => {
            if let Some(other) = pin_dir_holding(held.id, link.index, this) {
                let other = other.display();
                return format!(
                    "which xdp-forwarder attached through another pin dir, {other} (XDP link id \
                     {}); detach it there first (`xdp-forwarder --pin-dir {other} detach \
                     {iface}`), or run this command with --pin-dir {other}",
                    held.id
                );
            }
            let whose = if ours {
                "xdp-forwarder's, held by XDP link id {id} that no pin dir mounted here \
                 holds (pinned in another mount namespace, or by another tool)"
            } else {
                "not xdp-forwarder's, held by XDP link id {id}"
            }
            .replace("{id}", &held.id.to_string());
            format!(
                "{whose}; remove it first with `bpftool link detach id {}` (an XDP link \
                 refuses `ip link set dev {iface} xdp off`)",
                held.id
            )
        }
        None => {
            let off = link
                .xdp
                .and_then(|(_, mode)| mode?.ip_link_keyword())
                .unwrap_or("xdp");
            let whose = if ours {
                "loaded from xdp-forwarder's objects by another loader (no link)"
            } else {
                "which xdp-forwarder did not attach"
            };
            format!("{whose}; remove it first (`ip link set dev {iface} {off} off`)")
        }
    }
}

/// The pin dir, other than `this`, whose `xdp-forwarder/link-IFINDEX` pins
/// link `link_id`: a bpffs mount point, or a directory right under one.
fn pin_dir_holding(link_id: u32, ifindex: u32, this: &Path) -> Option<PathBuf> {
    let this = std::fs::canonicalize(this).ok();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut candidates = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split(' ').next() != Some("bpf") {
            continue;
        }
        let Some(mount) = left.split(' ').nth(4) else {
            continue;
        };
        let mount = PathBuf::from(unescape(mount));
        if let Ok(entries) = std::fs::read_dir(&mount) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && entry.file_name() != "xdp-forwarder"
                {
                    candidates.push(entry.path());
                }
            }
        }
        candidates.push(mount);
    }
    candidates.into_iter().find(|dir| {
        std::fs::canonicalize(dir).ok() != this
            && pins::is_bpffs(dir)
            && PinDir::open(dir).is_ok_and(|p| {
                sys::obj_get(&p.link(ifindex))
                    .ok()
                    .and_then(|fd| sys::link_info(std::os::fd::AsFd::as_fd(&fd)).ok())
                    .is_some_and(|info| info.id == link_id)
            })
    })
}

/// A mountinfo path: spaces, tabs, newlines and backslashes come as octal
/// escapes (`\040`).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(Ok(digits)) = bytes.get(i + 1..i + 4).map(std::str::from_utf8)
            && let Ok(b) = u8::from_str_radix(digits, 8)
        {
            out.push(b);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(super::unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(super::unescape(r"/plain"), "/plain");
        assert_eq!(super::unescape(r"/end\04"), r"/end\04");
    }
}
