//! The few raw BPF map operations aya does not offer for our maps: DEVMAPs
//! with 4-byte values (aya's `DevMap` insists on 8-byte `bpf_devmap_val` on
//! current kernels, but `router_iface` must keep the original's layout).

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

/// The `bpf_attr` member for element commands.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn elem_cmd(
    cmd: libc::c_long,
    fd: BorrowedFd<'_>,
    key: &u32,
    value: Option<&mut u32>,
) -> io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: std::ptr::from_ref(key) as u64,
        value: value.map_or(0, |v| std::ptr::from_mut(v) as u64),
        ..Default::default()
    };
    // SAFETY: `attr` is a valid, fully initialised prefix of `bpf_attr` for
    // this command, and the key/value pointers stay valid for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(&mut attr),
            size_of::<ElemAttr>() as u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The value at `key`, `None` for an empty slot.
pub fn lookup(fd: BorrowedFd<'_>, key: u32) -> io::Result<Option<u32>> {
    let mut value = 0;
    match elem_cmd(BPF_MAP_LOOKUP_ELEM, fd, &key, Some(&mut value)) {
        Ok(()) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn update(fd: BorrowedFd<'_>, key: u32, mut value: u32) -> io::Result<()> {
    elem_cmd(BPF_MAP_UPDATE_ELEM, fd, &key, Some(&mut value))
}

/// Empties slot `key`; an already empty slot is fine.
pub fn delete(fd: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    match elem_cmd(BPF_MAP_DELETE_ELEM, fd, &key, None) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}
