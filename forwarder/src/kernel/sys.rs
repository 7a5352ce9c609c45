//! The few raw `bpf(2)` commands aya does not offer as we need them, built on
//! aya-obj's generated `bpf_attr`:
//! - DEVMAP elements with 4-byte values (aya's `DevMap` insists on 8-byte
//!   `bpf_devmap_val` on current kernels, but `router_iface` must keep the
//!   original's layout);
//! - XDP and tcx links: their target ifindex (0 once detached), a
//!   compare-and-swap program update, detach, and creation from a program fd.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use aya_obj::generated::{BPF_F_REPLACE, bpf_attr, bpf_cmd, bpf_link_info, bpf_link_type};

use crate::{Mode, kernel::mode::Hook};

fn zeroed_attr() -> bpf_attr {
    // SAFETY: `bpf_attr` is a C union of integers; all zeroes is valid and
    // is what the kernel wants in every member we do not set.
    unsafe { std::mem::zeroed() }
}

/// `bpf(cmd, attr)`; the kernel's return value (an fd for some commands).
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: `attr` is a fully initialised `bpf_attr` of the size passed;
    // any pointers in it point at memory that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            size_of::<bpf_attr>() as u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A command that returns a new fd.
fn bpf_fd(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn elem_cmd(
    cmd: bpf_cmd,
    fd: BorrowedFd<'_>,
    key: &u32,
    value: Option<&mut u32>,
) -> io::Result<()> {
    let mut attr = zeroed_attr();
    // SAFETY: writing the element-command member of a zeroed union.
    let elem = unsafe { &mut attr.__bindgen_anon_2 };
    elem.map_fd = fd.as_raw_fd() as u32;
    elem.key = std::ptr::from_ref(key) as u64;
    elem.__bindgen_anon_1.value = value.map_or(0, |v| std::ptr::from_mut(v) as u64);
    bpf(cmd, &mut attr).map(drop)
}

/// The value at `key`, `None` for an empty slot.
pub fn lookup(fd: BorrowedFd<'_>, key: u32) -> io::Result<Option<u32>> {
    let mut value = 0;
    match elem_cmd(bpf_cmd::BPF_MAP_LOOKUP_ELEM, fd, &key, Some(&mut value)) {
        Ok(()) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn update(fd: BorrowedFd<'_>, key: u32, mut value: u32) -> io::Result<()> {
    elem_cmd(bpf_cmd::BPF_MAP_UPDATE_ELEM, fd, &key, Some(&mut value))
}

/// Empties slot `key`; an already empty slot is fine.
pub fn delete(fd: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    match elem_cmd(bpf_cmd::BPF_MAP_DELETE_ELEM, fd, &key, None) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

/// What the kernel says about one of our links (XDP or tcx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub id: u32,
    pub prog_id: u32,
    /// The interface it is attached to; 0 once detached (interface removed,
    /// `bpftool link detach`).
    pub ifindex: u32,
    pub hook: Hook,
}

/// The info of the link behind `fd`; an error if it is neither an XDP nor
/// a tcx link.
pub fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    // SAFETY: `bpf_link_info` is a C struct of integers; zeroes are valid.
    let mut info: bpf_link_info = unsafe { std::mem::zeroed() };
    let mut attr = zeroed_attr();
    // SAFETY: writing the info member of a zeroed union.
    let req = unsafe { &mut attr.info };
    req.bpf_fd = fd.as_raw_fd() as u32;
    req.info_len = size_of::<bpf_link_info>() as u32;
    req.info = std::ptr::from_mut(&mut info) as u64;
    bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let (hook, ifindex) = match info.type_ {
        // SAFETY: the kernel filled the member of the type it reports.
        t if t == bpf_link_type::BPF_LINK_TYPE_XDP as u32 => {
            (Hook::Xdp, unsafe { info.__bindgen_anon_1.xdp.ifindex })
        }
        // SAFETY: as above.
        t if t == bpf_link_type::BPF_LINK_TYPE_TCX as u32 => (Hook::TcxIngress, unsafe {
            info.__bindgen_anon_1.tcx.ifindex
        }),
        t => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a link of type {t}, neither XDP nor tcx"),
            ));
        }
    };
    Ok(LinkInfo {
        id: info.id,
        prog_id: info.prog_id,
        ifindex,
        hook,
    })
}

/// Swaps the link's program for `new_prog`, only if it still runs
/// `old_prog` (BPF_F_REPLACE): atomic, no frame sees no program.
pub fn link_update(
    link: BorrowedFd<'_>,
    new_prog: BorrowedFd<'_>,
    old_prog: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut attr = zeroed_attr();
    // SAFETY: writing the link_update member of a zeroed union.
    let req = unsafe { &mut attr.link_update };
    req.link_fd = link.as_raw_fd() as u32;
    req.__bindgen_anon_1.new_prog_fd = new_prog.as_raw_fd() as u32;
    req.__bindgen_anon_2.old_prog_fd = old_prog.as_raw_fd() as u32;
    req.flags = BPF_F_REPLACE;
    bpf(bpf_cmd::BPF_LINK_UPDATE, &mut attr).map(drop)
}

/// Detaches the link from its interface (the link object lives on, defunct).
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = zeroed_attr();
    attr.link_detach.link_fd = link.as_raw_fd() as u32;
    bpf(bpf_cmd::BPF_LINK_DETACH, &mut attr).map(drop)
}

/// Attaches `prog` to `ifindex` in `mode` as a new link.
pub fn link_create(prog: BorrowedFd<'_>, ifindex: u32, mode: Mode) -> io::Result<OwnedFd> {
    let (attach_type, flags) = mode.link_create();
    let mut attr = zeroed_attr();
    // SAFETY: writing the link_create member of a zeroed union.
    let req = unsafe { &mut attr.link_create };
    req.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    req.__bindgen_anon_2.target_ifindex = ifindex;
    req.attach_type = attach_type as u32;
    req.flags = flags;
    bpf_fd(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

/// Whether this kernel has tcx (Linux 6.6 and later): a BPF_PROG_QUERY of
/// `ifindex`'s tcx ingress, which older kernels refuse as an unknown attach
/// type. Cheaper than loading a tc program only to find it cannot attach.
/// `XDP_FORWARDER_TC_HOOK=clsact` in the environment says no: tc mode then
/// uses a clsact filter, as on older kernels (for tests, and for a kernel
/// whose tcx you do not trust).
pub fn has_tcx(ifindex: u32) -> bool {
    if std::env::var_os("XDP_FORWARDER_TC_HOOK").is_some_and(|v| v == "clsact") {
        return false;
    }
    let mut attr = zeroed_attr();
    attr.query.__bindgen_anon_1.target_ifindex = ifindex;
    attr.query.attach_type = aya_obj::generated::bpf_attach_type::BPF_TCX_INGRESS as u32;
    bpf(bpf_cmd::BPF_PROG_QUERY, &mut attr).is_ok()
}

/// The programs on `ifindex`'s tcx ingress, in the order they run, each
/// with the id of the tcx link that holds it (0: attached without a link).
/// Empty on a kernel without tcx (Linux before 6.6), whatever
/// `XDP_FORWARDER_TC_HOOK` says: a program another pin dir attached there
/// runs all the same.
pub fn tcx_ingress(ifindex: u32) -> io::Result<Vec<(u32, u32)>> {
    let mut capacity = 16;
    loop {
        let mut prog_ids = vec![0u32; capacity];
        let mut link_ids = vec![0u32; capacity];
        let mut attr = zeroed_attr();
        // SAFETY: writing the query member of a zeroed union.
        let req = unsafe { &mut attr.query };
        req.__bindgen_anon_1.target_ifindex = ifindex;
        req.attach_type = aya_obj::generated::bpf_attach_type::BPF_TCX_INGRESS as u32;
        req.prog_ids = prog_ids.as_mut_ptr() as u64;
        req.link_ids = link_ids.as_mut_ptr() as u64;
        req.__bindgen_anon_2.count = capacity as u32;
        match bpf(bpf_cmd::BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {}
            // Too many to fit: the kernel wrote how many there are.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                // SAFETY: the kernel wrote the count in the member we set.
                capacity = unsafe { attr.query.__bindgen_anon_2.count } as usize;
                continue;
            }
            // No tcx on this kernel (an unknown attach type).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        // SAFETY: as above.
        let count = unsafe { attr.query.__bindgen_anon_2.count } as usize;
        return Ok(prog_ids
            .into_iter()
            .zip(link_ids)
            .take(count.min(capacity))
            .collect());
    }
}

/// A new fd for the loaded program `id`.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.prog_id = id;
    bpf_fd(bpf_cmd::BPF_PROG_GET_FD_BY_ID, &mut attr)
}

/// The network namespaces `ip netns` names (`/run/netns/NAME`), by cookie:
/// each is entered on a thread of its own, which then ends.
pub fn netns_names() -> std::collections::BTreeMap<u64, String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Default::default();
    };
    let paths: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
    std::thread::scope(|s| {
        paths
            .iter()
            .filter_map(|path| {
                s.spawn(move || {
                    let file = std::fs::File::open(path).ok()?;
                    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
                    let name = path.file_name()?.to_string_lossy().into_owned();
                    Some((netns_cookie().ok()?, name))
                })
                .join()
                .ok()
                .flatten()
            })
            .collect()
    })
}

/// The cookie of the calling thread's network namespace: unique for the
/// life of the machine (never reused, unlike an ifindex or an inode).
pub fn netns_cookie() -> io::Result<u64> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| {
        // No IPv4 in this namespace: any socket will do.
        std::net::UdpSocket::bind("[::]:0")
    })?;
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: a valid socket, and an out-pointer and length for a u64.
    let ret = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            std::ptr::from_mut(&mut cookie).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

/// A `bpf_attr` for BPF_OBJ_GET/PIN naming `path` (the returned string must
/// outlive the call: the attr points at it).
fn obj_attr(
    path: &std::path::Path,
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<(bpf_attr, std::ffi::CString)> {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr = zeroed_attr();
    // SAFETY: writing the object-command member of a zeroed union.
    let req = unsafe { &mut attr.__bindgen_anon_4 };
    req.pathname = c_path.as_ptr() as u64;
    req.bpf_fd = fd.map_or(0, |fd| fd.as_raw_fd() as u32);
    Ok((attr, c_path))
}

/// A pinned object of a port: a link (XDP, tcx), or the program of a
/// clsact filter.
pub enum Pinned {
    Link(OwnedFd),
    Prog(OwnedFd),
}

/// Opens the BPF object pinned at `path` and tells a link from a program
/// (by the anonymous inode behind the fd: `bpf-link` or `bpf-prog`); an
/// error for anything else.
pub fn obj_get_kind(path: &std::path::Path) -> io::Result<Pinned> {
    let fd = obj_get(path)?;
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    match target.to_str() {
        Some("anon_inode:bpf-link") => Ok(Pinned::Link(fd)),
        Some("anon_inode:bpf-prog") => Ok(Pinned::Prog(fd)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("neither a link nor a program ({})", other.unwrap_or("?")),
        )),
    }
}

/// The id of the program behind `fd`.
pub fn prog_id(fd: BorrowedFd<'_>) -> io::Result<u32> {
    prog_info(fd).map(|info| info.id)
}

fn prog_info(fd: BorrowedFd<'_>) -> io::Result<aya_obj::generated::bpf_prog_info> {
    // SAFETY: `bpf_prog_info` is a C struct of integers and pointers the
    // kernel fills only when asked (all left zero); zeroes are valid.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = zeroed_attr();
    // SAFETY: writing the info member of a zeroed union.
    let req = unsafe { &mut attr.info };
    req.bpf_fd = fd.as_raw_fd() as u32;
    req.info_len = size_of::<aya_obj::generated::bpf_prog_info>() as u32;
    req.info = std::ptr::from_mut(&mut info) as u64;
    bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}

/// The name of the loaded program `id` (at most 15 bytes, as the kernel
/// keeps it).
pub fn prog_name(id: u32) -> io::Result<String> {
    let info = prog_info(prog_fd_by_id(id)?.as_fd())?;
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Every XDP or tcx link the kernel holds (links of other types, and links
/// that went away while we looked, are skipped).
pub fn all_links() -> Vec<LinkInfo> {
    let mut links = Vec::new();
    let mut id = 0;
    loop {
        let mut attr = zeroed_attr();
        attr.__bindgen_anon_6.__bindgen_anon_1.start_id = id;
        if bpf(bpf_cmd::BPF_LINK_GET_NEXT_ID, &mut attr).is_err() {
            return links;
        }
        // SAFETY: the kernel wrote next_id in the member we set.
        id = unsafe { attr.__bindgen_anon_6.next_id };
        let mut attr = zeroed_attr();
        attr.__bindgen_anon_6.__bindgen_anon_1.link_id = id;
        if let Ok(info) =
            bpf_fd(bpf_cmd::BPF_LINK_GET_FD_BY_ID, &mut attr).and_then(|fd| link_info(fd.as_fd()))
        {
            links.push(info);
        }
    }
}

/// Opens the BPF object pinned at `path`.
pub fn obj_get(path: &std::path::Path) -> io::Result<OwnedFd> {
    let (mut attr, _path) = obj_attr(path, None)?;
    bpf_fd(bpf_cmd::BPF_OBJ_GET, &mut attr)
}

/// Pins the BPF object behind `fd` at `path`.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    let (mut attr, _path) = obj_attr(path, Some(fd))?;
    bpf(bpf_cmd::BPF_OBJ_PIN, &mut attr).map(drop)
}
