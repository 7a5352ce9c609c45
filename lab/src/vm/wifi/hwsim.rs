//! A `mac80211_hwsim` radio made at run time (`HWSIM_CMD_NEW_RADIO` over
//! generic netlink): a Wi-Fi NIC hot-plugged.

use super::*;

/// `MAC80211_HWSIM`'s generic-netlink command that makes a radio
/// (`HWSIM_CMD_NEW_RADIO`, drivers/net/wireless/mac80211_hwsim.h).
pub(super) const HWSIM_CMD_NEW_RADIO: u8 = 4;
pub(super) const GENL_ID_CTRL: u16 = 0x10;
pub(super) const CTRL_CMD_GETFAMILY: u8 = 3;
pub(super) const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub(super) const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// Makes a `mac80211_hwsim` radio at run time (a Wi-Fi NIC hot-plugged:
/// its `wlanN` appears in the caller's namespace with the kernel's
/// uevent), through the module's generic-netlink family, as
/// `hwsim_mgmt` does. Errors name the step and the kernel's errno.
pub fn hwsim_new_radio() -> anyhow::Result<()> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: plain socket creation.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_GENERIC,
        )
    };
    if fd < 0 {
        bail!(
            "generic netlink socket: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let exchange = |msg: &[u8]| -> anyhow::Result<Vec<u8>> {
        // SAFETY: msg is valid for its length; the kernel is the peer
        // (no address: netlink sends to the kernel).
        if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
            bail!("netlink send: {}", std::io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            bail!("netlink recv: {}", std::io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf)
    };
    let reply = exchange(&genl_message(
        GENL_ID_CTRL,
        libc::NLM_F_REQUEST as u16,
        CTRL_CMD_GETFAMILY,
        &[(CTRL_ATTR_FAMILY_NAME, b"MAC80211_HWSIM\0")],
    ))?;
    check_ack(&reply)
        .context("looking up the MAC80211_HWSIM family (is mac80211_hwsim loaded?)")?;
    let family = genl_attrs(&reply)
        .find(|(kind, _)| *kind == CTRL_ATTR_FAMILY_ID)
        .and_then(|(_, v)| Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?)))
        .context("the MAC80211_HWSIM family's reply has no id")?;
    let reply = exchange(&genl_message(
        family,
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
        HWSIM_CMD_NEW_RADIO,
        &[],
    ))?;
    check_ack(&reply).context("HWSIM_CMD_NEW_RADIO")
}

/// A generic-netlink request: header, `cmd` (version 1), attributes.
pub(super) fn genl_message(kind: u16, flags: u16, cmd: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&[cmd, 1, 0, 0]);
    for (kind, value) in attrs {
        let len = 4 + value.len();
        m.extend_from_slice(&(len as u16).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(value);
        m.resize(m.len().next_multiple_of(4), 0);
    }
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// Fails if the first message of `reply` is a netlink error (an ack with
/// a negative errno); anything else passes.
pub(super) fn check_ack(reply: &[u8]) -> anyhow::Result<()> {
    let kind = u16::from_ne_bytes(
        reply
            .get(4..6)
            .context("a short netlink reply")?
            .try_into()?,
    );
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = i32::from_ne_bytes(reply.get(16..20).context("a short error")?.try_into()?);
        if errno < 0 {
            return Err(std::io::Error::from_raw_os_error(-errno).into());
        }
    }
    Ok(())
}

/// The attributes of the first generic-netlink message of `reply`.
pub(super) fn genl_attrs(reply: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let end = reply
        .get(..4)
        .map_or(0, |l| u32::from_ne_bytes(l.try_into().unwrap()) as usize)
        .min(reply.len());
    let mut at = 20;
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(reply.get(at..at + 2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(reply.get(at + 2..at + 4)?.try_into().ok()?) & 0x3fff;
        if len < 4 || at + len > end {
            return None;
        }
        let value = &reply[at + 4..at + len];
        at += len.next_multiple_of(4);
        Some((kind, value))
    })
}
