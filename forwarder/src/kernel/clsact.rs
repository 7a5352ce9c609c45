//! The tc hook of kernels without tcx (before Linux 6.6): a direct-action
//! `cls_bpf` filter on the interface's `clsact` ingress, through rtnetlink.
//! Such a filter has no bpf_link to pin: it stays attached until deleted, and
//! is found again by its fixed priority and handle (what `tc filter show dev
//! IFACE ingress` lists as `pref 30790 handle 0x1 bpf direct-action`).
//!
//! Synchronous (a blocking socket): the callers include a rollback that runs
//! in `Drop`.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
};

use rtnetlink::{
    packet_core::{
        NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
        NetlinkMessage, NetlinkPayload,
    },
    packet_route::{
        RouteNetlinkMessage,
        tc::{TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcMessage, TcOption},
    },
    sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE},
};

/// Our filter's priority (`tc … pref`): one no hand-written filter is likely
/// to use (0x7846, "xF"). Filters of lower priority values run before ours.
pub const PRIORITY: u16 = 0x7846;
/// Our filter's handle within that priority.
pub const HANDLE: u32 = 1;
/// `ETH_P_ALL`, in network byte order as `tcm_info` wants it.
const ALL_PROTOCOLS: u16 = (libc::ETH_P_ALL as u16).to_be();

/// `clsact`'s ingress hook: `TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)`.
const INGRESS_PARENT: TcHandle = TcHandle {
    major: 0xffff,
    minor: TcHandle::MIN_INGRESS,
};

/// Adds the `clsact` qdisc to `ifindex` unless it has one. (It is left in
/// place on detach: an empty clsact changes nothing, and another tool's
/// filters may sit in it by then.)
pub fn ensure_qdisc(ifindex: u32) -> io::Result<()> {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = TcHandle::CLSACT;
    msg.header.handle = TcHandle {
        major: 0xffff,
        minor: 0,
    };
    msg.attributes.push(TcAttribute::Kind("clsact".into()));
    match request(
        RouteNetlinkMessage::NewQueueDiscipline(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(missing(e, "sch_ingress")),
        other => other.map(drop),
    }
}

/// The name our filter gives its program (`tc filter show` lists it).
const NAME: &str = "xdp-forwarder";

/// Attaches `prog` as our filter on `ifindex`'s ingress.
/// `replace`: swap the program of our existing filter (atomic for the
/// traffic: the classifier switches from one program to the other);
/// otherwise EEXIST if our filter is there already.
pub fn attach(ifindex: u32, prog: BorrowedFd<'_>, replace: bool) -> io::Result<()> {
    let mut msg = filter(ifindex);
    msg.attributes.push(TcAttribute::Kind("bpf".into()));
    msg.attributes.push(TcAttribute::Options(vec![
        TcOption::Bpf(TcFilterBpfOption::ProgFd(prog.as_raw_fd() as u32)),
        TcOption::Bpf(TcFilterBpfOption::ProgName(NAME.into())),
        TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
    ]));
    let flags = if replace {
        NLM_F_CREATE | NLM_F_REPLACE
    } else {
        NLM_F_CREATE | NLM_F_EXCL
    };
    match request(RouteNetlinkMessage::NewTrafficFilter(msg), flags) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(missing(e, "cls_bpf")),
        other => other.map(drop),
    }
}

/// The `tc` command that deletes our filter from `iface` (or a filter in its
/// place: every filter at our priority).
pub fn delete_command(iface: &str) -> String {
    format!("tc filter del dev {iface} ingress pref {PRIORITY}")
}

/// Why [`attach`] failed on `iface` (`ifindex`), when another tool's filter
/// holds our priority (the kernel's EEXIST for a `bpf` filter at our
/// handle, EINVAL for another classifier or protocol there): `e` with what
/// holds it and the command that removes it; `e` alone otherwise.
pub fn taken(e: io::Error, ifindex: u32, iface: &str) -> io::Error {
    if !matches!(e.raw_os_error(), Some(libc::EEXIST | libc::EINVAL)) {
        return e;
    }
    let filters = match at_our_priority(ifindex) {
        Ok(filters) if !filters.is_empty() => filters,
        _ => return e,
    };
    let held: Vec<String> = filters
        .iter()
        .map(|f| {
            let prog = f
                .prog_id
                .map(|id| {
                    let name = crate::kernel::sys::prog_name(id).unwrap_or_default();
                    format!(" running program id {id} {name:?}")
                })
                .unwrap_or_default();
            format!("a {} filter (handle {:#x}){prog}", f.kind, f.handle)
        })
        .collect();
    io::Error::new(
        e.kind(),
        format!(
            "{e}: pref {PRIORITY} of {iface}'s clsact ingress, where our filter goes, holds {} \
             that this pin dir did not add; remove it first (`{}`), or use another --mode",
            held.join(" and "),
            delete_command(iface)
        ),
    )
}

/// ENOENT for a qdisc or classifier kind: the kernel has no such kind
/// (a module not loaded, and none loaded on demand).
fn missing(e: io::Error, module: &str) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{e}: the kernel lacks {module} (load it: `modprobe {module}`)"),
    )
}

/// Deletes our filter from `ifindex`; fine if it is not there (or the
/// clsact qdisc is gone).
pub fn detach(ifindex: u32) -> io::Result<()> {
    let mut msg = filter(ifindex);
    msg.attributes.push(TcAttribute::Kind("bpf".into()));
    match request(RouteNetlinkMessage::DelTrafficFilter(msg), 0) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINVAL)) => Ok(()),
        other => other.map(drop),
    }
}

/// The id of the program our filter on `ifindex` runs; `None` without our
/// filter (or without clsact, or without the interface).
pub fn running(ifindex: u32) -> io::Result<Option<u32>> {
    Ok(at_our_priority(ifindex)?
        .into_iter()
        .find(|f| f.handle == HANDLE && f.kind == "bpf")
        .and_then(|f| f.prog_id))
}

/// A filter at our priority on an interface's clsact ingress: ours, or
/// another tool's in our place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub handle: u32,
    /// The classifier (`bpf`, `u32`, `matchall`, …).
    pub kind: String,
    /// A `bpf` filter's program.
    pub prog_id: Option<u32>,
}

/// The filters at our priority on `ifindex`'s clsact ingress (none without
/// clsact, or without the interface).
pub fn at_our_priority(ifindex: u32) -> io::Result<Vec<Filter>> {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = INGRESS_PARENT;
    let replies = match request(RouteNetlinkMessage::GetTrafficFilter(msg), NLM_F_DUMP) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENODEV)) => {
            return Ok(Vec::new());
        }
        other => other?,
    };
    Ok(replies
        .into_iter()
        .filter_map(|m| {
            let RouteNetlinkMessage::NewTrafficFilter(m) = m else {
                return None;
            };
            // The first message of each priority names only the
            // classifier (handle 0); the filters follow.
            let handle = u32::from(m.header.handle);
            if (m.header.info >> 16) as u16 != PRIORITY || handle == 0 {
                return None;
            }
            let kind = m.attributes.iter().find_map(|a| match a {
                TcAttribute::Kind(kind) => Some(kind.clone()),
                _ => None,
            })?;
            let prog_id = m.attributes.iter().find_map(|a| match a {
                TcAttribute::Options(options) => options.iter().find_map(|o| match o {
                    TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => Some(*id),
                    _ => None,
                }),
                _ => None,
            });
            Some(Filter {
                handle,
                kind,
                prog_id,
            })
        })
        .collect())
}

/// A message naming our filter on `ifindex`'s clsact ingress.
fn filter(ifindex: u32) -> TcMessage {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = INGRESS_PARENT;
    msg.header.handle = HANDLE.into();
    msg.header.info = (u32::from(PRIORITY) << 16) | u32::from(ALL_PROTOCOLS);
    msg
}

/// Sends one request and collects the replies up to the ACK (or the end of
/// a dump); a netlink error comes back as its errno.
fn request(msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    req.header.sequence_number = 1;
    req.finalize();
    let mut buf = vec![0; req.buffer_len()];
    req.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut replies = Vec::new();
    loop {
        let (data, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < data.len() {
            let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = reply.header.length as usize;
            match reply.payload {
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(replies),
                        Some(_) => Err(e.to_io()),
                    };
                }
                NetlinkPayload::Done(_) => return Ok(replies),
                NetlinkPayload::InnerMessage(m) => replies.push(m),
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}
