//! What is on the air and on the wires: the `hwsim0` monitor's data
//! frames by transmitter, EtherType and DHCP request watches (the guest
//! subcommands).

use std::path::PathBuf;

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

/// A guest watch: frames received on `iface` for `seconds`; `ready`
/// touched once the socket is bound; `out` kept up to date (replaced
/// whole), so that the watch may be killed at any time.
#[derive(clap::Args, Clone, Debug)]
pub struct Watch {
    #[arg(long)]
    pub iface: String,
    #[arg(long)]
    pub seconds: u64,
    #[arg(long)]
    pub ready: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
}

impl Watch {
    /// Feeds every frame to `on_frame`, which updates `state` and says
    /// whether to write it out now; `render` gives `out`'s text, written
    /// at start, then at least every half second and at the end.
    fn run<S>(
        &self,
        mut state: S,
        mut on_frame: impl FnMut(&mut S, &[u8]) -> bool,
        render: impl Fn(&S) -> String,
    ) -> anyhow::Result<()> {
        let sock = RawSocket::bind(&self.iface)
            .with_context(|| format!("a packet socket on {}", self.iface))?;
        std::fs::write(&self.ready, "")?;
        let write = |state: &S| -> anyhow::Result<()> {
            let tmp = self.out.with_extension("tmp");
            std::fs::write(&tmp, render(state))?;
            Ok(std::fs::rename(&tmp, &self.out)?)
        };
        write(&state)?;
        let deadline = Instant::now() + Duration::from_secs(self.seconds);
        let mut written = Instant::now();
        while Instant::now() < deadline {
            if let Some(frame) = sock.recv(Duration::from_millis(100))
                && on_frame(&mut state, &frame)
            {
                write(&state)?;
                written = Instant::now();
            }
            if written.elapsed() > Duration::from_millis(500) {
                write(&state)?;
                written = Instant::now();
            }
        }
        write(&state)
    }
}

/// Counts the data frames on the radio monitor (`hwsim0`: radiotap
/// header, then the 802.11 header) by transmitter address (addr2), as
/// "MAC COUNT" lines (written every half second: the air is busy).
pub fn watch_transmitters(watch: &Watch) -> anyhow::Result<()> {
    watch.run(
        BTreeMap::<[u8; 6], u64>::new(),
        |counts, frame| {
            if let Some(ta) = data_transmitter(frame) {
                *counts.entry(ta).or_default() += 1;
            }
            false
        },
        |counts| {
            counts
                .iter()
                .map(|(m, n)| format!("{} {n}\n", format_mac(m)))
                .collect()
        },
    )
}

/// Counts the frames of EtherType `ethertype` (untagged, or behind one
/// 802.1Q tag: the router VM's trunk): the count.
pub fn watch_ethertype(watch: &Watch, ethertype: u16) -> anyhow::Result<()> {
    let want = ethertype.to_be_bytes();
    watch.run(
        0u64,
        |n, f| {
            let tagged = f.get(12..14) == Some(&[0x81, 0x00][..]);
            let at = if tagged { 16 } else { 12 };
            let hit = f.get(at..at + 2) == Some(&want[..]);
            *n += u64::from(hit);
            hit
        },
        |n| format!("{n}\n"),
    )
}

/// Records the DHCPv4 requests (untagged Ethernet, IPv4, UDP 68 → 67,
/// BOOTREQUEST): one "CHADDR FLAGS" line each (FLAGS in hex).
pub fn watch_dhcp_requests(watch: &Watch) -> anyhow::Result<()> {
    watch.run(
        String::new(),
        |text, f| {
            let Some((chaddr, flags)) = dhcp_request(f) else {
                return false;
            };
            text.push_str(&format!("{} {flags:04x}\n", format_mac(&chaddr)));
            true
        },
        String::clone,
    )
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
