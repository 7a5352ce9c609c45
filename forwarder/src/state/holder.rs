//! Who holds an XDP program this pin dir did not attach, and the command
//! that removes it: our own link pinned in another pin dir (detach it
//! there), a link nobody here can reach (`bpftool link detach`), or a
//! program attached over netlink without a link (`ip link set … off`). An
//! XDP *link* refuses `ip link set dev X xdp off` ("Can't replace active
//! BPF XDP link"), so the fix depends on which it is.
//!
//! The same for our tc program run from another pin dir, on either tc
//! hook (a tcx link, or the clsact filter at our priority): tcx would run
//! both forwarders one after the other, and any mode of ours next to it
//! would make two forwarders on one interface.

use std::{
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use crate::{
    kernel::{
        clsact,
        mode::Hook,
        netdev::Interface,
        sys::{self, Pinned},
    },
    state::pins::{self, PinDir},
};

/// The names our XDP programs have in the kernel (prog_physical,
/// prog_router and their libbpf-1.1 variants).
const OUR_PROGRAM_NAMES: [&str; 2] = ["physical", "router"];

/// What a pin dir pins at `link-IFINDEX`: a link (XDP, tcx) by its id, or
/// a clsact filter's program by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pin {
    Link(u32),
    Prog(u32),
}

/// Our program (by its name) on `link`'s tc ingress that the pin dir
/// `this` did not attach — on its tcx ingress, or in the clsact filter at
/// our priority, both asked whichever hook this command would use (each
/// runs beside the other, and beside XDP): what runs ("tc program id N …")
/// and, as one clause for an error message, who holds it and the command
/// that removes it. `None` when none runs there.
pub fn our_tc_program(link: &Interface, this: &Path) -> Option<(String, String)> {
    let iface = &link.name;
    let tcx = sys::tcx_ingress(link.index).unwrap_or_default();
    if let Some(&(prog_id, link_id)) = tcx.iter().find(|(prog, _)| is_ours(*prog)) {
        let program = format!("tc program id {prog_id} (on its tcx ingress)");
        if link_id == 0 {
            return Some((
                program,
                "xdp-forwarder's, attached without a link by another tool (BPF_PROG_ATTACH); \
                 remove it with that tool"
                    .into(),
            ));
        }
        let holder = match pin_dir_holding(Pin::Link(link_id), link.index, this) {
            Some(other) => in_other_pin_dir(&other, &format!("tcx link id {link_id}"), iface),
            None => format!(
                "xdp-forwarder's, held by tcx link id {link_id} that no pin dir mounted here \
                 holds (pinned in another mount namespace, or by another tool); remove it \
                 first with `bpftool link detach id {link_id}`"
            ),
        };
        return Some((program, holder));
    }
    let prog_id = clsact::running(link.index).ok().flatten()?;
    if !is_ours(prog_id) {
        // Another tool's filter in our place: the attach says so, with
        // the command that removes it (tc mode cannot add ours).
        return None;
    }
    let program = format!(
        "tc program id {prog_id} (its clsact ingress filter pref {} handle {})",
        clsact::PRIORITY,
        clsact::HANDLE
    );
    let holder = match pin_dir_holding(Pin::Prog(prog_id), link.index, this) {
        Some(other) => in_other_pin_dir(&other, "the filter's program pinned there", iface),
        None => format!(
            "xdp-forwarder's, pinned in no pin dir mounted here (another mount namespace, or \
             a pin removed by hand); remove it first with `{}`",
            clsact::delete_command(iface)
        ),
    };
    Some((program, holder))
}

/// Whether the loaded program `prog_id` has the name of one of ours.
fn is_ours(prog_id: u32) -> bool {
    sys::prog_name(prog_id).is_ok_and(|n| OUR_PROGRAM_NAMES.contains(&n.as_str()))
}

/// The clause for our program held through the pin dir `other`.
fn in_other_pin_dir(other: &Path, what: &str, iface: &str) -> String {
    let other = other.display();
    format!(
        "which xdp-forwarder attached through another pin dir, {other} ({what}), and two \
         forwarders must not both run on one interface; detach it there first \
         (`xdp-forwarder --pin-dir {other} detach {iface}`), or run this command with \
         --pin-dir {other}"
    )
}

/// What holds `prog_id` on `link`, and how to remove it, as one clause for
/// an error message ("…, which … ; remove it …"). `this` is the pin dir
/// of the command asking.
pub fn foreign_program(link: &Interface, prog_id: u32, this: &Path) -> String {
    let ours = is_ours(prog_id);
    let held_by = sys::all_links()
        .into_iter()
        .find(|l| l.hook == Hook::Xdp && l.ifindex == link.index && l.prog_id == prog_id);
    let iface = &link.name;
    match held_by {
        Some(held) => {
            if let Some(other) = pin_dir_holding(Pin::Link(held.id), link.index, this) {
                return in_other_pin_dir(&other, &format!("XDP link id {}", held.id), iface);
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

/// Our program on `link` held by a link (XDP, tcx) or clsact filter that
/// no pin dir mounted here holds, `this` included: what runs ("XDP
/// program id N (XDP link id L)"). The trace of a pin dir mounted over or
/// lazily unmounted while ports ran from it (`status` warns). Programs
/// another loader attached without a link (xdp-loader) are not counted.
pub fn unheld(link: &Interface, this: &Path) -> Option<String> {
    let held_here =
        |pin: Pin| PinDir::open(this).is_ok_and(|p| pinned(&p.link(link.index)) == Some(pin));
    let unheld = |pin: Pin| !held_here(pin) && pin_dir_holding(pin, link.index, this).is_none();
    if let Some((prog_id, _)) = link.xdp.filter(|(id, _)| is_ours(*id))
        && let Some(held) = sys::all_links()
            .into_iter()
            .find(|l| l.hook == Hook::Xdp && l.ifindex == link.index && l.prog_id == prog_id)
        && unheld(Pin::Link(held.id))
    {
        return Some(format!(
            "XDP program id {prog_id} (XDP link id {})",
            held.id
        ));
    }
    let tcx = sys::tcx_ingress(link.index).unwrap_or_default();
    if let Some(&(prog_id, link_id)) = tcx
        .iter()
        .find(|(prog, link_id)| *link_id != 0 && is_ours(*prog))
        && unheld(Pin::Link(link_id))
    {
        return Some(format!(
            "tc program id {prog_id} (on its tcx ingress, tcx link id {link_id})"
        ));
    }
    let prog_id = clsact::running(link.index).ok().flatten()?;
    (is_ours(prog_id) && unheld(Pin::Prog(prog_id)))
        .then(|| format!("tc program id {prog_id} (its clsact ingress filter)"))
}

/// The pin dir, other than `this`, whose `xdp-forwarder/link-IFINDEX` pins
/// `pin`: a bpffs mount point, or a directory right under one.
fn pin_dir_holding(pin: Pin, ifindex: u32, this: &Path) -> Option<PathBuf> {
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
            && PinDir::open(dir).is_ok_and(|p| pinned(&p.link(ifindex)) == Some(pin))
    })
}

/// What is pinned at `path`, if it is a link or a program.
fn pinned(path: &Path) -> Option<Pin> {
    match sys::obj_get_kind(path).ok()? {
        Pinned::Link(fd) => sys::link_info(fd.as_fd()).ok().map(|i| Pin::Link(i.id)),
        Pinned::Prog(fd) => sys::prog_id(fd.as_fd()).ok().map(Pin::Prog),
    }
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
