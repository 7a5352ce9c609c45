//! A NIC's driver statistics by name, as `ethtool -S` prints them, over
//! the kernel's `SIOCETHTOOL` ioctl (`ETHTOOL_GSSET_INFO` for their count,
//! `ETHTOOL_GSTRINGS` for the names, `ETHTOOL_GSTATS` for the values): the
//! guests have busybox, not ethtool. The per-queue counters
//! (`rx_queue_N_packets` on igb and virtio-net before Linux 6.10) show how
//! a NIC spread its frames over its queues; where the driver has none
//! (virtio-net since 6.10 reports them only over netlink), each receive
//! queue's interrupts do ([`rx_queues`]).

use std::{io, os::fd::AsRawFd as _};

use anyhow::{Context as _, bail};

const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

/// Every statistic `iface`'s driver reports, in its order.
pub fn read(iface: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").context("a socket for SIOCETHTOOL")?;
    let ethtool = |what: &str, data: *mut libc::c_void| {
        ioctl(&socket, iface, data).with_context(|| format!("{what} on {iface}"))
    };
    // struct ethtool_sset_info: cmd, reserved, sset_mask (u64), then one
    // u32 per set in the mask.
    let mut info = [0u32; 5];
    info[0] = ETHTOOL_GSSET_INFO;
    info[2] = 1 << ETH_SS_STATS;
    ethtool("ETHTOOL_GSSET_INFO", info.as_mut_ptr().cast())?;
    if info[2] & (1 << ETH_SS_STATS) == 0 {
        bail!("{iface}'s driver reports no statistics");
    }
    let count = info[4] as usize;
    // struct ethtool_gstrings: cmd, string_set, len, then the strings.
    let mut strings = vec![0u8; 12 + count * ETH_GSTRING_LEN];
    strings[0..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
    strings[4..8].copy_from_slice(&ETH_SS_STATS.to_ne_bytes());
    strings[8..12].copy_from_slice(&(count as u32).to_ne_bytes());
    ethtool("ETHTOOL_GSTRINGS", strings.as_mut_ptr().cast())?;
    // struct ethtool_stats: cmd, n_stats, then n_stats u64 (u64 words
    // here, so the values are aligned).
    let mut stats = vec![0u64; 1 + count];
    stats[0] = u64::from(ETHTOOL_GSTATS) | (count as u64) << 32;
    ethtool("ETHTOOL_GSTATS", stats.as_mut_ptr().cast())?;
    Ok(strings[12..]
        .chunks(ETH_GSTRING_LEN)
        .zip(&stats[1..])
        .map(|(name, &value)| {
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            (String::from_utf8_lossy(&name[..end]).into_owned(), value)
        })
        .collect())
}

/// The frames each receive queue took, from [`read`]'s statistics, by
/// queue number: `rx_queue_N_packets` (igb; virtio-net before Linux
/// 6.10) or `rxN_packets` (virtio-net since).
pub fn rx_queue_packets(stats: &[(String, u64)]) -> Vec<(u32, u64)> {
    let mut queues: Vec<(u32, u64)> = stats
        .iter()
        .filter_map(|(name, v)| {
            let n = name.strip_suffix("_packets")?;
            let q = n
                .strip_prefix("rx_queue_")
                .or_else(|| n.strip_prefix("rx"))?;
            Some((q.parse().ok()?, *v))
        })
        .collect();
    queues.sort_unstable();
    queues
}

/// What [`rx_queues`] counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Frames, from the driver's statistics.
    Frames,
    /// Interrupts of each receive queue's vector (`/proc/interrupts`): a
    /// virtio-net input queue raises one only when the device filled
    /// buffers of that queue, so a queue with none received nothing.
    Interrupts,
}

/// Per receive queue of `iface` (queue, count): frames where the driver
/// counts them per queue, else the queue's interrupts (virtio-net's
/// `virtioN-input.Q` vectors).
pub fn rx_queues(iface: &str) -> anyhow::Result<(Vec<(u32, u64)>, Counted)> {
    let frames = rx_queue_packets(&read(iface)?);
    if !frames.is_empty() {
        return Ok((frames, Counted::Frames));
    }
    let device = std::fs::read_link(format!("/sys/class/net/{iface}/device"))
        .with_context(|| format!("{iface} has no device"))?;
    let device = device
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{iface}'s device has no name"))?
        .to_owned();
    let text = std::fs::read_to_string("/proc/interrupts")?;
    let queues = input_interrupts(&text, &device);
    if queues.is_empty() {
        bail!("{iface} counts neither frames nor interrupts per receive queue");
    }
    Ok((queues, Counted::Interrupts))
}

/// The interrupts of `device`'s input queues (`DEVICE-input.Q`) in
/// `/proc/interrupts`, summed over the CPUs, by queue.
fn input_interrupts(text: &str, device: &str) -> Vec<(u32, u64)> {
    let prefix = format!("{device}-input.");
    let mut queues: Vec<(u32, u64)> = text
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let q = words.last()?.strip_prefix(&prefix)?.parse().ok()?;
            let count = words[1..].iter().map_while(|w| w.parse::<u64>().ok()).sum();
            Some((q, count))
        })
        .collect();
    queues.sort_unstable();
    queues
}

fn ioctl(socket: &std::net::UdpSocket, iface: &str, data: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: `ifreq` is plain data; zeroes are valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if iface.len() >= ifr.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(iface.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = data.cast();
    // SAFETY: a valid socket, a NUL-terminated name, and `data` pointing at
    // an ethtool command struct as large as its own count fields say.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL as _, &mut ifr) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_queue_packets_picks_the_per_queue_receive_counters() {
        let stats: Vec<(String, u64)> = [
            ("rx_packets", 9),
            ("rx_queue_1_packets", 4),
            ("rx_queue_0_packets", 5),
            ("rx_queue_0_bytes", 500),
            ("tx_queue_0_packets", 7),
            ("rx_xdp_packets", 1),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), *v))
        .collect();
        assert_eq!(rx_queue_packets(&stats), vec![(0, 5), (1, 4)]);
        let newer: Vec<(String, u64)> = [("rx1_packets", 3), ("rx0_packets", 2), ("rx0_drops", 1)]
            .iter()
            .map(|(n, v)| ((*n).to_owned(), *v))
            .collect();
        assert_eq!(rx_queue_packets(&newer), vec![(0, 2), (1, 3)]);
    }

    #[test]
    fn input_interrupts_sum_each_input_queue_over_the_cpus() {
        let text = "           CPU0       CPU1\n \
            30:          5          2  PCI-MSIX-0000:00:05.0   1-edge      virtio2-input.0\n \
            31:          0          0  PCI-MSIX-0000:00:05.0   2-edge      virtio2-output.0\n \
            32:          1          3  PCI-MSIX-0000:00:05.0   3-edge      virtio2-input.1\n \
            33:          9          9  PCI-MSIX-0000:00:06.0   1-edge      virtio3-input.0\n";
        assert_eq!(input_interrupts(text, "virtio2"), vec![(0, 7), (1, 4)]);
    }
}
