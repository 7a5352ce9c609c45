//! Interface features ("offloads") by name, as `ethtool -k/-K` shows and sets
//! them, over the kernel's `SIOCETHTOOL` ioctl (`ETHTOOL_GSTRINGS` for the
//! names, `ETHTOOL_GFEATURES` / `ETHTOOL_SFEATURES`). A net-vm has busybox,
//! not ethtool, and the one Rust ethtool crate reads features but cannot set
//! them.
//!
//! What the forwarder switches: the features that hide or filter VLAN tags
//! before its program sees them ([`TagFeature`]).

use std::{io, os::fd::AsRawFd as _};

use crate::{Error, Result};

/// `ETHTOOL_*` commands and the string set of features (linux/ethtool.h).
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// A receive feature that hides or drops VLAN tags before XDP runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagFeature {
    /// `rx-vlan-hw-parse` (ethtool's `rxvlan`): the NIC strips the outer
    /// 802.1Q tag into its receive descriptor; XDP never sees it.
    CTagStrip,
    /// `rx-vlan-stag-hw-parse`: the same for 802.1ad tags.
    STagStrip,
    /// `rx-vlan-filter`: only VIDs registered on the interface are received.
    CTagFilter,
    /// `rx-vlan-stag-filter`: the same for 802.1ad.
    STagFilter,
}

impl TagFeature {
    pub const ALL: [TagFeature; 4] = [
        TagFeature::CTagStrip,
        TagFeature::STagStrip,
        TagFeature::CTagFilter,
        TagFeature::STagFilter,
    ];

    /// The kernel's name of the feature (`ethtool -k` output).
    pub fn name(self) -> &'static str {
        match self {
            TagFeature::CTagStrip => "rx-vlan-hw-parse",
            TagFeature::STagStrip => "rx-vlan-stag-hw-parse",
            TagFeature::CTagFilter => "rx-vlan-filter",
            TagFeature::STagFilter => "rx-vlan-stag-filter",
        }
    }

    /// A receive filter (which promiscuous mode lifts in the drivers we
    /// know), rather than a tag stripper.
    pub fn is_filter(self) -> bool {
        match self {
            TagFeature::CTagStrip | TagFeature::STagStrip => false,
            TagFeature::CTagFilter | TagFeature::STagFilter => true,
        }
    }

    /// The registry flag that says we switched it off (so detach switches
    /// it on again).
    pub fn flag(self) -> u8 {
        match self {
            TagFeature::CTagStrip => 1 << 1,
            TagFeature::STagStrip => 1 << 2,
            TagFeature::CTagFilter => 1 << 3,
            TagFeature::STagFilter => 1 << 4,
        }
    }
}

/// One feature's state on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub active: bool,
    /// `false`: fixed by the driver (`[fixed]` in `ethtool -k`).
    pub changeable: bool,
}

/// The features of one interface: their names and states.
pub struct Features {
    iface: String,
    names: Vec<String>,
    words: Vec<FeatureWord>,
}

/// One word of `struct ethtool_get_features_block` (what we read of it).
struct FeatureWord {
    available: u32,
    active: u32,
    never_changed: u32,
}

impl Features {
    /// Reads `iface`'s features.
    pub fn of(iface: &str) -> Result<Features> {
        let err = |what: &str, e: io::Error| {
            Error::kernel(format!("cannot read the features of {iface} ({what})"), e)
        };
        let socket = Socket::new().map_err(|e| err("socket", e))?;
        // struct ethtool_sset_info + one u32 of data.
        let mut info = [0u32; 4];
        info[0] = ETHTOOL_GSSET_INFO;
        let mask = 1u64 << ETH_SS_FEATURES;
        info[2] = mask as u32;
        info[3] = (mask >> 32) as u32;
        let mut buf = vec![0u32; 5];
        buf[..4].copy_from_slice(&info);
        socket
            .ethtool(iface, buf.as_mut_ptr().cast())
            .map_err(|e| err("ETHTOOL_GSSET_INFO", e))?;
        let count = buf[4] as usize;
        // struct ethtool_gstrings: cmd, string_set, len, then the strings.
        let mut strings = vec![0u8; 12 + count * ETH_GSTRING_LEN];
        strings[0..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
        strings[4..8].copy_from_slice(&ETH_SS_FEATURES.to_ne_bytes());
        strings[8..12].copy_from_slice(&(count as u32).to_ne_bytes());
        socket
            .ethtool(iface, strings.as_mut_ptr().cast())
            .map_err(|e| err("ETHTOOL_GSTRINGS", e))?;
        let names = strings[12..]
            .chunks(ETH_GSTRING_LEN)
            .map(|s| {
                let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                String::from_utf8_lossy(&s[..end]).into_owned()
            })
            .collect();
        // struct ethtool_gfeatures: cmd, size, then `size` words.
        let size = count.div_ceil(32);
        let mut get = vec![0u32; 2 + 4 * size];
        get[0] = ETHTOOL_GFEATURES;
        get[1] = size as u32;
        socket
            .ethtool(iface, get.as_mut_ptr().cast())
            .map_err(|e| err("ETHTOOL_GFEATURES", e))?;
        let words = get[2..]
            .chunks(4)
            .map(|w| FeatureWord {
                available: w[0],
                active: w[2],
                never_changed: w[3],
            })
            .collect();
        Ok(Features {
            iface: iface.to_owned(),
            names,
            words,
        })
    }

    fn bit(&self, name: &str) -> Option<(usize, u32)> {
        let i = self.names.iter().position(|n| n == name)?;
        Some((i / 32, 1 << (i % 32)))
    }

    /// The state of the feature called `name`; `None` when the interface
    /// does not know it.
    pub fn get(&self, name: &str) -> Option<State> {
        let (word, bit) = self.bit(name)?;
        let w = self.words.get(word)?;
        Some(State {
            active: w.active & bit != 0,
            changeable: w.available & bit != 0 && w.never_changed & bit == 0,
        })
    }

    /// Asks for the feature called `name` on or off, then reads back what
    /// the driver did: `Ok(true)` when it now is as asked.
    pub fn set(&mut self, name: &str, on: bool) -> Result<bool> {
        let Some((word, bit)) = self.bit(name) else {
            return Ok(false);
        };
        // struct ethtool_sfeatures: cmd, size, then `size` words of (valid,
        // requested): only this feature's bit is valid.
        let mut buf = vec![0u32; 2 + 2 * self.words.len()];
        buf[0] = ETHTOOL_SFEATURES;
        buf[1] = self.words.len() as u32;
        buf[2 + 2 * word] = bit;
        buf[3 + 2 * word] = if on { bit } else { 0 };
        let iface = self.iface.clone();
        ioctl(&iface, buf.as_mut_ptr().cast()).map_err(|e| {
            Error::kernel(
                format!(
                    "cannot switch {name} {} on {iface} (`ethtool -K {iface} {name} {}` does the same)",
                    if on { "on" } else { "off" },
                    if on { "on" } else { "off" }
                ),
                e,
            )
        })?;
        *self = Features::of(&iface)?;
        Ok(self.get(name).is_some_and(|s| s.active == on))
    }
}

/// `SIOCETHTOOL` on `iface` with `data`, an ethtool command struct as large
/// as its command says.
pub(crate) fn ioctl(iface: &str, data: *mut libc::c_void) -> io::Result<()> {
    Socket::new()?.ethtool(iface, data)
}

/// A datagram socket to send `SIOCETHTOOL` through.
struct Socket(std::net::UdpSocket);

impl Socket {
    fn new() -> io::Result<Socket> {
        std::net::UdpSocket::bind("0.0.0.0:0")
            .or_else(|_| std::net::UdpSocket::bind("[::]:0"))
            .map(Socket)
    }

    /// `SIOCETHTOOL` on `iface` with `data` (an ethtool command struct).
    fn ethtool(&self, iface: &str, data: *mut libc::c_void) -> io::Result<()> {
        // SAFETY: `ifreq` is plain data; zeroes are valid.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        if iface.len() >= ifr.ifr_name.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        for (dst, src) in ifr.ifr_name.iter_mut().zip(iface.bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = data.cast();
        // SAFETY: a valid socket, a NUL-terminated name and `data` pointing
        // at a command struct as large as its own size fields say.
        let ret = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SIOCETHTOOL as _, &mut ifr) };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
