//! Raw Ethernet frames over AF_PACKET (a veth or a tap). The receiving
//! kernel moves a frame's outer VLAN tag into metadata (PACKET_AUXDATA);
//! `recv` puts it back, so callers see what was on the wire.

use std::{
    io,
    os::fd::{AsFd, AsRawFd as _, FromRawFd as _, OwnedFd},
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
        let ifindex = crate::cmd::ifindex(iface)? as i32;
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
        let one: libc::c_int = 1;
        // SAFETY: a valid socket, option pointer and length (nix has no
        // PACKET_AUXDATA option).
        let ret = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                std::ptr::from_ref(&one).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        if ret != 0 {
            bail!("PACKET_AUXDATA on {iface}: {}", io::Error::last_os_error());
        }
        // Room for bursts: the default holds a few hundred frames.
        rcvbuf_force(&fd, 16 << 20)?;
        Ok(Self { fd, ifindex })
    }

    /// A receive buffer for bulk tests (64 MB).
    pub fn with_big_buffer(self) -> anyhow::Result<Self> {
        rcvbuf_force(&self.fd, 64 << 20)?;
        Ok(self)
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

    /// The next frame received (not sent) within `timeout`, outer tag
    /// re-inserted. A zero `timeout` still reads a frame already queued.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // Whole milliseconds, rounded up (a zero timeout only checks).
            let wait = left.as_micros().div_ceil(1000) as i32;
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, wait) } <= 0 {
                return None;
            }
            if let Some(Some(frame)) = self.recv_one() {
                return Some(frame);
            }
            if left.is_zero() {
                return None;
            }
        }
    }

    /// Every frame received within `window`; a zero `window` takes what is
    /// queued now, without waiting.
    pub fn drain(&self, window: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + window;
        let mut frames = Vec::new();
        while let Some(f) = self.recv(deadline.saturating_duration_since(Instant::now())) {
            frames.push(f);
        }
        frames
    }

    /// [`Self::drain`], keeping only test frames ([`ETHERTYPE_TEST`] after up
    /// to two tags).
    pub fn drain_test_frames(&self, window: Duration) -> Vec<Vec<u8>> {
        self.drain(window)
            .into_iter()
            .filter(|f| {
                [12, 16, 20]
                    .iter()
                    .any(|&at| f.get(at..at + 2) == Some(&ETHERTYPE_TEST.to_be_bytes()[..]))
            })
            .collect()
    }

    /// `None` when nothing is queued; `Some(None)` for a frame this socket
    /// sent.
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
        // (socklen_t on musl, size_t on glibc.)
        msg.msg_controllen = size_of_val(&cmsg) as _;
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
        Some(Some(buf))
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

/// SO_RCVBUFFORCE: a receive buffer beyond net.core.rmem_max (root only).
pub fn rcvbuf_force(socket: &impl AsFd, bytes: usize) -> anyhow::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::RcvBufForce, &bytes)
        .context("SO_RCVBUFFORCE")
}
