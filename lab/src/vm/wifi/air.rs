//! What is on the air and on the wires: the `hwsim0` monitor's data
//! frames by transmitter, EtherType and DHCP request watches (the guest
//! subcommands).

use super::*;

impl WifiLab {
    /// Starts counting the data frames on the air by transmitter (for at
    /// most `seconds`); [`Self::air_transmitters`] stops and reads it.
    pub fn start_air_watch(&mut self, seconds: u32) -> anyhow::Result<u32> {
        self.lab.net_vm.sh(&format!(
            "rm -f /tmp/air.ready /tmp/air.out\n\
             xdp-forwarder-lab guest air-transmitters --iface hwsim0 --seconds {seconds} \
             --ready /tmp/air.ready --out /tmp/air.out >/tmp/air.log 2>&1 &\n\
             echo $! > /run/air.pid\n\
             while [ ! -e /tmp/air.ready ]; do sleep 0.1; done"
        ))?;
        Ok(seconds)
    }

    /// What the watch started by [`Self::start_air_watch`] counted: data
    /// frames per transmitter address (802.11 addr2).
    pub fn air_transmitters(&mut self, _watch: u32) -> anyhow::Result<BTreeMap<String, u64>> {
        let out = self.lab.net_vm.sh_within(
            "sleep 0.6; kill $(cat /run/air.pid) 2>/dev/null || true\n\
             cat /tmp/air.out",
            Duration::from_secs(30),
        )?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(m, n)| Some((m.to_owned(), n.trim().parse().ok()?)))
            .collect())
    }
}

/// Counts the data frames on the radio monitor `iface` (`hwsim0`: radiotap
/// header, then the 802.11 header) by transmitter address (addr2) for
/// `seconds`; touches `ready` once the socket is bound, and keeps `out` up
/// to date (every half second, replaced whole) as "MAC COUNT" lines, so
/// the watch may be killed at any time.
pub fn watch_transmitters(
    iface: &str,
    seconds: u64,
    ready: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let sock = RawSocket::bind(iface).with_context(|| format!("a packet socket on {iface}"))?;
    std::fs::write(ready, "")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut counts: BTreeMap<[u8; 6], u64> = BTreeMap::new();
    let mut written = Instant::now();
    let write = |counts: &BTreeMap<[u8; 6], u64>| -> anyhow::Result<()> {
        let text: String = counts
            .iter()
            .map(|(m, n)| format!("{} {n}\n", format_mac(m)))
            .collect();
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        Ok(std::fs::rename(&tmp, out)?)
    };
    write(&counts)?;
    while Instant::now() < deadline {
        if let Some(frame) = sock.recv(Duration::from_millis(100))
            && let Some(ta) = data_transmitter(&frame)
        {
            *counts.entry(ta).or_default() += 1;
        }
        if written.elapsed() > Duration::from_millis(500) {
            write(&counts)?;
            written = Instant::now();
        }
    }
    write(&counts)
}

/// Counts the frames of EtherType `ethertype` (untagged, or behind one
/// 802.1Q tag: the router VM's trunk) received on `iface` for `seconds`;
/// touches `ready` once bound and keeps `out` up to date (the count).
pub fn watch_ethertype(
    iface: &str,
    ethertype: u16,
    seconds: u64,
    ready: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let sock = RawSocket::bind(iface).with_context(|| format!("a packet socket on {iface}"))?;
    std::fs::write(ready, "")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let want = ethertype.to_be_bytes();
    let mut n = 0u64;
    let mut written = Instant::now();
    let write = |n: u64| -> anyhow::Result<()> {
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, format!("{n}\n"))?;
        Ok(std::fs::rename(&tmp, out)?)
    };
    write(n)?;
    while Instant::now() < deadline {
        if let Some(f) = sock.recv(Duration::from_millis(100)) {
            let tagged = f.get(12..14) == Some(&[0x81, 0x00][..]);
            let at = if tagged { 16 } else { 12 };
            if f.get(at..at + 2) == Some(&want[..]) {
                n += 1;
                write(n)?;
            }
        }
        if written.elapsed() > Duration::from_millis(500) {
            write(n)?;
            written = Instant::now();
        }
    }
    write(n)
}

/// Records the DHCPv4 requests `iface` receives for `seconds` (untagged
/// Ethernet, IPv4, UDP 68 → 67, BOOTREQUEST): one "CHADDR FLAGS" line each
/// (FLAGS in hex); touches `ready` once bound and keeps `out` up to date.
pub fn watch_dhcp_requests(
    iface: &str,
    seconds: u64,
    ready: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let sock = RawSocket::bind(iface).with_context(|| format!("a packet socket on {iface}"))?;
    std::fs::write(ready, "")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut text = String::new();
    let write = |text: &str| -> anyhow::Result<()> {
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        Ok(std::fs::rename(&tmp, out)?)
    };
    write(&text)?;
    while Instant::now() < deadline {
        if let Some((chaddr, flags)) = sock
            .recv(Duration::from_millis(100))
            .and_then(|f| dhcp_request(&f))
        {
            text.push_str(&format!("{} {flags:04x}\n", format_mac(&chaddr)));
            write(&text)?;
        }
    }
    Ok(())
}

/// The client hardware address (`chaddr`) and `flags` of a DHCPv4 request
/// (BOOTREQUEST, UDP 68 → 67) in an untagged Ethernet frame.
pub fn dhcp_request(frame: &[u8]) -> Option<([u8; 6], u16)> {
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(23)? != 17 {
        return None;
    }
    let udp = 14 + usize::from(frame.get(14)? & 0x0f) * 4;
    let ports = frame.get(udp..udp + 4)?;
    if ports != [0, 68, 0, 67] {
        return None;
    }
    let bootp = frame.get(udp + 8..)?;
    if *bootp.first()? != 1 {
        return None;
    }
    let flags = u16::from_be_bytes(bootp.get(10..12)?.try_into().ok()?);
    Some((bootp.get(28..34)?.try_into().ok()?, flags))
}

/// The transmitter address (addr2) of an 802.11 data frame behind a
/// radiotap header; `None` for management and control frames and for
/// anything cut short.
pub fn data_transmitter(frame: &[u8]) -> Option<[u8; 6]> {
    let rt_len = usize::from(u16::from_le_bytes(frame.get(2..4)?.try_into().ok()?));
    let wifi = frame.get(rt_len..)?;
    let fc = *wifi.first()?;
    // Frame control: protocol version 0, type 2 (data).
    if fc & 0x03 != 0 || (fc >> 2) & 0x03 != 2 {
        return None;
    }
    wifi.get(10..16)?.try_into().ok()
}

pub(super) fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A radiotap header of `len` bytes, then an 802.11 header with frame
    /// control byte `fc` and transmitter `ta`.
    fn air_frame(len: u16, fc: u8, ta: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; usize::from(len)];
        f[2..4].copy_from_slice(&len.to_le_bytes());
        let mut h = vec![0u8; 24];
        h[0] = fc;
        h[10..16].copy_from_slice(&ta);
        f.extend(h);
        f
    }

    #[test]
    fn a_dhcp_request_gives_its_client_address_and_flags() {
        let chaddr = [2, 0, 0, 0, 0xaa, 1];
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0xaa, 1, 0x08, 0x00]);
        // IPv4, IHL 5, protocol UDP; UDP 68 → 67.
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[9] = 17;
        f.extend(ip);
        f.extend([0, 68, 0, 67, 0, 0, 0, 0]);
        let mut bootp = vec![0u8; 240];
        bootp[0] = 1;
        bootp[10] = 0x80;
        bootp[28..34].copy_from_slice(&chaddr);
        let at = f.len();
        f.extend(bootp);
        assert_eq!(dhcp_request(&f), Some((chaddr, 0x8000)));
        // A reply (BOOTREPLY), another port, cut short: none.
        let mut reply = f.clone();
        reply[at] = 2;
        assert_eq!(dhcp_request(&reply), None);
        let mut other = f.clone();
        other[37] = 69;
        assert_eq!(dhcp_request(&other), None);
        assert_eq!(dhcp_request(&f[..at + 20]), None);
    }

    #[test]
    fn the_transmitter_of_data_frames_is_read_behind_radiotap() {
        let ta = [2, 0, 0, 0, 1, 0];
        // Data (0x08) and QoS data (0x88) frames count.
        assert_eq!(data_transmitter(&air_frame(18, 0x08, ta)), Some(ta));
        assert_eq!(data_transmitter(&air_frame(26, 0x88, ta)), Some(ta));
        // Beacons (management, 0x80) and ACKs (control, 0xd4) do not.
        assert_eq!(data_transmitter(&air_frame(18, 0x80, ta)), None);
        assert_eq!(data_transmitter(&air_frame(18, 0xd4, ta)), None);
        // Cut short.
        assert_eq!(data_transmitter(&air_frame(18, 0x08, ta)[..30]), None);
        assert_eq!(data_transmitter(&[0, 0, 0xff, 0xff]), None);
    }
}
