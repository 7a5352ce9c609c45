//! Raw Ethernet frames over AF_PACKET on the host's side of a tap. The
//! receiving kernel moves a frame's outer VLAN tag into metadata
//! (PACKET_AUXDATA); `recv` puts it back, so callers see what was on the wire.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Local experimental EtherType: nothing in a guest or namespace answers it.
pub const ETHERTYPE_TEST: u16 = 0x88b5;

pub struct RawSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawSocket {
    /// A socket on `iface` of the calling thread's network namespace.
    pub fn bind(iface: &str) -> anyhow::Result<Self> {
        let ifindex = crate::demo::netns::ifindex(iface)? as i32;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket creation.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if fd < 0 {
            bail!("AF_PACKET socket: {}", io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_ll is valid; bind's fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if ret != 0 {
            bail!("bind to {iface}: {}", io::Error::last_os_error());
        }
        for (level, opt, value) in [
            (libc::SOL_PACKET, libc::PACKET_AUXDATA, 1),
            // Room for bursts: the default holds a few hundred frames.
            (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20),
        ] {
            let value: libc::c_int = value;
            // SAFETY: a valid socket, option pointer and length.
            let ret = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    level,
                    opt,
                    std::ptr::from_ref(&value).cast(),
                    size_of::<libc::c_int>() as u32,
                )
            };
            if ret != 0 {
                bail!(
                    "setsockopt {opt} on {iface}: {}",
                    io::Error::last_os_error()
                );
            }
        }
        Ok(Self { fd, ifindex })
    }

    pub fn send(&self, frame: &[u8]) -> anyhow::Result<()> {
        // SAFETY: an all-zero sockaddr_ll is valid; sendto's fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(frame.get(..6).context("frame under 6 bytes")?);
        // SAFETY: frame and sll are valid for the call.
        let ret = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if ret != frame.len() as isize {
            bail!("sendto: {}", io::Error::last_os_error());
        }
        Ok(())
    }

    /// Every test frame ([`ETHERTYPE_TEST`] after up to two tags) received
    /// (not sent) within `window`, outer tag re-inserted.
    pub fn drain(&self, window: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + window;
        let mut frames = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) } <= 0 {
                break;
            }
            while let Some(f) = self.recv_one() {
                frames.extend(f);
            }
        }
        frames
    }

    /// `None` when nothing is queued; `Some(None)` for a frame that is not
    /// a received test frame.
    fn recv_one(&self) -> Option<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 65536];
        let mut cmsg = [0u64; 64];
        // SAFETY: all-zero sockaddr_ll / msghdr are valid out-parameters.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = std::ptr::from_mut(&mut sll).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&cmsg);
        // SAFETY: msg points at live buffers for the call.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return None;
        }
        if sll.sll_pkttype == libc::PACKET_OUTGOING {
            return Some(None);
        }
        buf.truncate(n as usize);
        // SAFETY: walking the control messages the kernel wrote into `msg`.
        let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !c.is_null() {
            // SAFETY: `c` points at a valid cmsghdr inside our buffer.
            let hdr = unsafe { &*c };
            if hdr.cmsg_level == libc::SOL_PACKET && hdr.cmsg_type == libc::PACKET_AUXDATA {
                // SAFETY: the kernel put a tpacket_auxdata there (maybe unaligned).
                let aux: libc::tpacket_auxdata =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    let mut tag = tpid.to_be_bytes().to_vec();
                    tag.extend_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                    buf.splice(12..12, tag);
                }
            }
            // SAFETY: advancing within the same control buffer.
            c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
        }
        let ours = [12, 16, 20]
            .iter()
            .any(|&at| buf.get(at..at + 2) == Some(&ETHERTYPE_TEST.to_be_bytes()[..]));
        Some(ours.then_some(buf))
    }
}

/// An Ethernet frame `len` bytes long: `dst`, `src`, `rest` (EtherType
/// onwards), then a counting payload.
pub fn frame(dst: [u8; 6], src: [u8; 6], rest: &[u8], len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(rest);
    let mut i = 0u8;
    while f.len() < len {
        f.push(i);
        i = i.wrapping_add(1);
    }
    f
}

/// `frame` with one tag (`tpid`, `tci`) inserted after the MACs.
pub fn tagged(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

pub fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {s:?}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad MAC {s:?}"))
}
