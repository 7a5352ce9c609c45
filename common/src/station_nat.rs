//! Station address translation on a Wi-Fi port: the frame logic.
//!
//! A Wi-Fi link in station (managed, 3-address) mode carries one MAC address,
//! the station's: the access point takes data only from an associated
//! station's address and addresses data only to it (mac80211 copies the
//! Ethernet source into the transmitter address). The VMs behind the router
//! each have their own MAC, so what the forwarder sends out of a station must
//! carry the station's MAC wherever a link-layer address of the sender is
//! written, and what comes back for the station's MAC must be given the MAC of
//! the VM that owns the destination IP address. This is the "MAC NAT" of
//! Apple's xnu bridge (`bsd/net/if_bridge.c`: an IP → MAC table; the Ethernet
//! source, the ARP sender, the NDP link-layer options and the DHCP broadcast
//! flag rewritten, with their checksums) and the "wireless upstream" case of
//! RFC 4389 (ND Proxy), written for the frames an XDP or tc program sees.
//!
//! This module owns the per-frame part, and only that:
//! - [`station_protocol`]: frames the station's supplicant owns (EAPOL
//!   0x888E, RSN pre-authentication 0x88C7, also behind one 802.1Q/802.1ad
//!   tag), which go to the net-vm's own stack and never to the router;
//! - [`toward_air`]: router → Wi-Fi port: the rewrites, and what the frame
//!   teaches the table ([`Learn`]), or a drop ([`ToAirDrop`]);
//! - [`toward_router`]: Wi-Fi port → router, given the table as a lookup
//!   function: the VM's MAC put back, or the frame left alone, or sent to the
//!   net-vm's own stack ([`ForStation`]).
//!
//! The table itself (per Wi-Fi port, bounded LRU, learned only from the router
//! side, aged, flushed when the station's MAC changes) is laid out in
//! [`station_table`](crate::station_table); the programs that call these
//! functions are ebpf/src/station.rs; docs/wifi.md has the design. A refusal
//! toward the AP is counted as a [`DropReason`](crate::DropReason)
//! (`From<ToAirDrop>`); a frame kept for the station, by [`ForStation`].
//!
//! Written for the eBPF verifier as for the host: every access goes through
//! [`Frame::at`] with a fixed size, every offset is a sum of bounded terms
//! (one optional tag, an IPv4 header of at most 60 bytes, at most
//! [`MAX_NDP_OPTIONS`] options of at most 2040 bytes each), and every loop has
//! a constant bound. The frame never changes size. Two rules LLVM's BPF
//! output imposes: no byte array assembled piece by piece on the stack
//! (merged into unaligned stores, "misaligned stack access"), and no
//! `Option` whose payload is read on a path where it is `None` (Linux 6.1
//! refuses reads of stack never written). `prog_station_nat_tc` and
//! forwarder/tests/station_nat_tc.rs hold the code to the verifier.

use crate::{
    Frame,
    vlan::{ETH_HLEN, MACS_LEN, TPID_8021AD, TPID_8021Q, VLAN_HLEN},
};

/// An Ethernet (EUI-48) address, in wire order.
pub type Mac = [u8; 6];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
/// EAPOL (IEEE 802.1X): the 4-way handshake and group rekeying.
pub const ETH_P_PAE: u16 = 0x888e;
/// RSN pre-authentication (IEEE 802.11i), EAPOL toward another AP.
pub const ETH_P_PREAUTH: u16 = 0x88c7;

/// The most NDP options [`toward_air`] walks in one message; a message with
/// more is dropped ([`ToAirDrop::TooManyNdpOptions`]), since an option it did
/// not look at could carry a VM's MAC. Real messages carry one to four.
pub const MAX_NDP_OPTIONS: usize = 8;

/// The longest NDP message [`toward_air`] takes: a redirect's 40 bytes and
/// [`MAX_NDP_OPTIONS`] options of the longest length (255 × 8 bytes).
pub const MAX_NDP_LEN: usize = 40 + MAX_NDP_OPTIONS * 255 * 8;

const IPV6_HLEN: usize = 40;
const IPV4_MIN_HLEN: usize = 20;
const ARP_LEN: usize = 28;
const UDP_HLEN: usize = 8;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_UDP: u8 = 17;
const BOOTPC: u16 = 68;
const BOOTPS: u16 = 67;
const BOOTREQUEST: u8 = 1;
/// Offset of `flags` in a BOOTP/DHCP message (RFC 2131, figure 1).
const BOOTP_FLAGS: usize = 10;
/// The broadcast bit of `flags`: "answer me by broadcast", so the reply
/// reaches the VM whose `chaddr` is not the station's MAC.
pub const BOOTP_BROADCAST: u16 = 0x8000;
const ARPHRD_ETHER: u16 = 1;
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;

/// A key of the translation table: an IPv6 address, or an IPv4 address as
/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, RFC 4291 2.5.5.2), so one map holds
/// both families. Aligned: BPF refuses the unaligned stack stores LLVM
/// makes of a byte array it builds in pieces ("misaligned stack access").
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpKey(pub [u8; 16]);

impl IpKey {
    #[inline(always)]
    pub const fn v6(addr: [u8; 16]) -> IpKey {
        IpKey(addr)
    }

    #[inline(always)]
    pub const fn v4(addr: [u8; 4]) -> IpKey {
        let [a, b, c, d] = addr;
        IpKey([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d])
    }
}

/// What a translated frame teaches the table: `ip` belongs to the VM whose
/// MAC is `mac` (the frame's Ethernet source before translation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learn {
    pub ip: IpKey,
    pub mac: Mac,
}

/// Whether the frame's checksum fields hold whole checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksums {
    /// They do (XDP; an skb that is not `CHECKSUM_PARTIAL`): every rewrite
    /// covered by the ICMPv6 or UDP checksum fixes it incrementally
    /// (RFC 1624, eqn. 3).
    Complete,
    /// An skb in `CHECKSUM_PARTIAL`: the field holds only the pseudo-header
    /// sum, and the device (or `skb_checksum_help`) sums the payload, our
    /// rewrites included, when it sends. The fields are left alone.
    Partial,
    /// The fields are left alone and the change is reported
    /// ([`ToAir::Translated`]'s `checksum`), for a caller that cannot tell
    /// the two cases apart: a tc program (`__sk_buff` has no `ip_summed`)
    /// applies it with `bpf_l4_csum_replace(skb, offset, 0, fix.wsum(),
    /// flags)`
    /// (size 0: by difference), which fixes the field unless the skb is
    /// `CHECKSUM_PARTIAL`; for UDP with `BPF_F_MARK_MANGLED_0`, which keeps a
    /// zero checksum zero and writes a computed zero as 0xffff.
    Report,
}

/// A checksum change left to the caller ([`Checksums::Report`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecksumFix {
    /// Where the 16-bit checksum field is, in bytes from the frame's start.
    pub offset: usize,
    /// What the sum it covers gained: the one's-complement sum of the new
    /// 16-bit words and the complements of the old ones (what
    /// `bpf_csum_diff` returns, folded).
    pub diff: u16,
    /// A UDP checksum: zero means "none" and stays zero, a computed zero is
    /// sent as 0xffff (RFC 768).
    pub udp: bool,
}

impl ChecksumFix {
    /// `diff` as the kernel's checksum helpers take it (`__wsum`): summed
    /// over the words as they lie in memory, read in the CPU's byte order
    /// (`diff` itself sums them read big-endian, as the field is written).
    #[inline(always)]
    pub fn wsum(self) -> u32 {
        u32::from(u16::from_ne_bytes(self.diff.to_be_bytes()))
    }
}

/// Router → Wi-Fi port: what to do with the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToAir {
    /// Rewritten: send it. `learn`: the address it proves its VM owns;
    /// `checksum`: the fix to apply ([`Checksums::Report`] only, else `None`).
    Translated {
        learn: Option<Learn>,
        checksum: Option<ChecksumFix>,
    },
    /// Do not send it: it could not be translated whole. The frame may have
    /// been partly rewritten.
    Drop(ToAirDrop),
}

/// Why [`toward_air`] refused a frame: sending it would let a VM's MAC out
/// or hand the station's own protocols to a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToAirDrop {
    /// Shorter than an Ethernet header, or a tag without its EtherType.
    TooShort,
    /// The Ethernet source is a group (multicast) address: no VM has it.
    GroupSource,
    /// An IPv6, IPv4 or ARP header that is cut short, is not what its
    /// EtherType says, or (ARP) is not Ethernet/IPv4; or an NDP message
    /// longer than the frame or shorter than its fixed part.
    BadHeader,
    /// An NDP option of length 0 or past the message's end, or a
    /// link-layer address option that is not 8 bytes (RFC 4861 4.6.1).
    BadNdpOption,
    /// More than [`MAX_NDP_OPTIONS`] NDP options (or a message longer than
    /// [`MAX_NDP_LEN`]).
    TooManyNdpOptions,
    /// EAPOL or RSN pre-authentication from behind the router: only the
    /// station's supplicant speaks them to the AP.
    StationProtocol,
}

impl ToAirDrop {
    pub const ALL: [ToAirDrop; 6] = [
        ToAirDrop::TooShort,
        ToAirDrop::GroupSource,
        ToAirDrop::BadHeader,
        ToAirDrop::BadNdpOption,
        ToAirDrop::TooManyNdpOptions,
        ToAirDrop::StationProtocol,
    ];

    /// A stable, machine-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            ToAirDrop::TooShort => "too_short",
            ToAirDrop::GroupSource => "group_source",
            ToAirDrop::BadHeader => "bad_header",
            ToAirDrop::BadNdpOption => "bad_ndp_option",
            ToAirDrop::TooManyNdpOptions => "too_many_ndp_options",
            ToAirDrop::StationProtocol => "station_protocol",
        }
    }
}

/// Wi-Fi port → router: what to do with the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToRouter {
    /// Group-addressed, not addressed to the station, or shorter than an
    /// Ethernet header (the caller's own checks drop it): it crosses as it is.
    Unchanged,
    /// Addressed to the station for an address the VM with `mac` owns: the
    /// Ethernet destination (and an ARP reply's target hardware address) now
    /// say `mac`.
    Translated { mac: Mac },
    /// For the net-vm's own stack (`XDP_PASS`, `TC_ACT_OK`), never the
    /// router; left as it is. The caller counts it by reason.
    Station(ForStation),
}

/// Why a received frame goes to the net-vm's own stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForStation {
    /// EAPOL: the supplicant's (key handshake, rekeying).
    Eapol,
    /// RSN pre-authentication: the supplicant's.
    RsnPreAuth,
    /// Unicast to the station's MAC for an address no VM owns (the table has
    /// no entry), or with no address to look up: the station's own traffic.
    NoOwner,
}

impl ForStation {
    pub const ALL: [ForStation; 3] = [
        ForStation::Eapol,
        ForStation::RsnPreAuth,
        ForStation::NoOwner,
    ];

    /// A stable, machine-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            ForStation::Eapol => "eapol",
            ForStation::RsnPreAuth => "rsn_preauth",
            ForStation::NoOwner => "no_owner",
        }
    }
}

/// The frame's EtherType and where its network header starts, past at most
/// one 802.1Q or 802.1ad tag. `None`: shorter than its Ethernet header.
#[inline(always)]
fn l2<F: Frame>(frame: &mut F) -> Option<(u16, usize)> {
    let hdr = frame.head::<ETH_HLEN>()?;
    let ethertype = be16(hdr, MACS_LEN);
    if ethertype != TPID_8021Q && ethertype != TPID_8021AD {
        return Some((ethertype, ETH_HLEN));
    }
    let hdr = frame.head::<{ ETH_HLEN + VLAN_HLEN }>()?;
    Some((be16(hdr, MACS_LEN + VLAN_HLEN), ETH_HLEN + VLAN_HLEN))
}

/// Classifies a frame received on a Wi-Fi port: `Some` when it belongs to
/// the station's supplicant (EAPOL, RSN pre-authentication), untagged or
/// behind one tag; those go to the net-vm's own stack, never to the router.
#[inline(always)]
pub fn station_protocol<F: Frame>(frame: &mut F) -> Option<ForStation> {
    match l2(frame)?.0 {
        ETH_P_PAE => Some(ForStation::Eapol),
        ETH_P_PREAUTH => Some(ForStation::RsnPreAuth),
        _ => None,
    }
}

/// Router → Wi-Fi port (the untagged frame the router program produces; one
/// tag left inside it is looked through). On [`ToAir::Translated`]:
/// - the Ethernet source is `station`;
/// - IPv6: every source or target link-layer address option of an RS, RA,
///   NS, NA or Redirect is `station`, the ICMPv6 checksum fixed; learned: the
///   source address, or a DAD probe's target (an NS from `::`);
/// - IPv4: a DHCP request (UDP 68 → 67, BOOTREQUEST, first fragment) has the
///   broadcast flag set, the UDP checksum fixed (zero, "no checksum", stays
///   zero); `chaddr` stays the VM's, so leases stay per VM. Learned: the
///   source address (not `0.0.0.0`, multicast or broadcast);
/// - ARP (Ethernet/IPv4): the sender hardware address is `station`. Learned:
///   the sender IP, or an ARP probe's target (sender `0.0.0.0`, RFC 5227);
/// - EAPOL and RSN pre-authentication are dropped
///   ([`ToAirDrop::StationProtocol`]).
///
/// Not looked into (the Ethernet source is still rewritten): NDP behind IPv6
/// extension headers (RFC 6980 forbids fragmenting it; none carries others in
/// practice), and protocols other than IPv4, IPv6 and ARP.
#[inline(always)]
pub fn toward_air<F: Frame>(frame: &mut F, station: Mac, checksums: Checksums) -> ToAir {
    let Some(hdr) = frame.head::<ETH_HLEN>() else {
        return ToAir::Drop(ToAirDrop::TooShort);
    };
    // Copied whole, not byte by byte: LLVM merges byte stores into
    // unaligned wider ones on the stack, which BPF refuses.
    let mut vm: Mac = [0; 6];
    vm.copy_from_slice(&hdr[6..MACS_LEN]);
    if vm[0] & 1 != 0 {
        return ToAir::Drop(ToAirDrop::GroupSource);
    }
    let Some((ethertype, l3)) = l2(frame) else {
        return ToAir::Drop(ToAirDrop::TooShort);
    };
    let done = match ethertype {
        ETH_P_IPV6 => ipv6_toward_air(frame, l3, station),
        ETH_P_IP => ipv4_toward_air(frame, l3),
        ETH_P_ARP => arp_toward_air(frame, l3, station),
        ETH_P_PAE | ETH_P_PREAUTH => Err(ToAirDrop::StationProtocol),
        _ => Ok(Rewrote::NOTHING),
    };
    let done = match done {
        Ok(done) => done,
        Err(why) => return ToAir::Drop(why),
    };
    let Some(hdr) = frame.head::<ETH_HLEN>() else {
        return ToAir::Drop(ToAirDrop::TooShort);
    };
    hdr[6..MACS_LEN].copy_from_slice(&station);
    let fix = done.fix;
    let mut reported = false;
    if done.fixes {
        match checksums {
            Checksums::Complete => {
                let Some(field) = frame.at::<2>(fix.offset) else {
                    return ToAir::Drop(ToAirDrop::BadHeader);
                };
                let check = u16::from_be_bytes(*field);
                // Zero means the sender did not checksum (RFC 768): it stays so.
                if !(fix.udp && check == 0) {
                    *field = match csum_apply(check, fix.diff) {
                        // A computed zero is sent as all ones (RFC 768).
                        0 if fix.udp => 0xffff,
                        c => c,
                    }
                    .to_be_bytes();
                }
            }
            Checksums::Partial => {}
            Checksums::Report => reported = true,
        }
    }
    ToAir::Translated {
        learn: if done.learned {
            Some(Learn {
                ip: done.ip,
                mac: vm,
            })
        } else {
            None
        },
        checksum: if reported { Some(fix) } else { None },
    }
}

/// What one protocol's rewrite did: the address learned (`ip`, when
/// `learned`), the checksum change it owes (`fix`, when `fixes`). Plain
/// fields, always written, rather than `Option`s: LLVM loads an `Option`'s
/// payload whether or not it is there, and Linux 6.1's verifier refuses a
/// read of stack that was never written ("invalid read from stack").
#[derive(Clone, Copy)]
struct Rewrote {
    ip: IpKey,
    learned: bool,
    fix: ChecksumFix,
    fixes: bool,
}

impl Rewrote {
    const NOTHING: Rewrote = Rewrote {
        ip: IpKey([0; 16]),
        learned: false,
        fix: ChecksumFix {
            offset: 0,
            diff: 0,
            udp: false,
        },
        fixes: false,
    };

    #[inline(always)]
    fn learning(ip: IpKey, learned: bool) -> Rewrote {
        Rewrote {
            ip,
            learned,
            ..Rewrote::NOTHING
        }
    }

    #[inline(always)]
    fn fixing(self, fix: ChecksumFix) -> Rewrote {
        Rewrote {
            fix,
            fixes: true,
            ..self
        }
    }
}

#[inline(always)]
fn ipv6_toward_air<F: Frame>(frame: &mut F, l3: usize, station: Mac) -> Result<Rewrote, ToAirDrop> {
    let ip = frame.at::<IPV6_HLEN>(l3).ok_or(ToAirDrop::BadHeader)?;
    if ip[0] >> 4 != 6 {
        return Err(ToAirDrop::BadHeader);
    }
    let payload_len = usize::from(be16(ip, 4));
    let next_header = ip[6];
    let mut src = [0u8; 16];
    src.copy_from_slice(&ip[8..24]);
    // The unspecified address (a DAD probe's, an MLD report's before an
    // address exists) and multicast (never a source) teach nothing.
    let mut ip = IpKey::v6(src);
    let mut learned = src != [0; 16] && src[0] != 0xff;
    if next_header != IPPROTO_ICMPV6 {
        return Ok(Rewrote::learning(ip, learned));
    }
    let icmp = l3 + IPV6_HLEN;
    if payload_len == 0 {
        return Err(ToAirDrop::BadHeader);
    }
    let icmp_type = frame.at::<1>(icmp).ok_or(ToAirDrop::BadHeader)?[0];
    // Where the options start (RFC 4861 section 4).
    let options = match icmp_type {
        133 => 8,  // router solicitation
        134 => 16, // router advertisement
        135 => 24, // neighbour solicitation
        136 => 24, // neighbour advertisement
        137 => 40, // redirect
        _ => {
            return Ok(Rewrote::learning(ip, learned));
        }
    };
    if options > payload_len {
        return Err(ToAirDrop::BadHeader);
    }
    // Longer than any message with at most MAX_NDP_OPTIONS options. The
    // clamp is for the verifier, which must see the bound of `end`.
    if payload_len > MAX_NDP_LEN {
        return Err(ToAirDrop::TooManyNdpOptions);
    }
    let end = icmp + payload_len.min(MAX_NDP_LEN);
    // The message must lie inside the frame.
    if frame.at::<1>(end - 1).is_none() {
        return Err(ToAirDrop::BadHeader);
    }
    if icmp_type == 135 && src == [0; 16] {
        // Duplicate address detection: the target is the address the VM is
        // about to take, and the defending NA goes to all-nodes anyway.
        let target = frame.at::<16>(icmp + 8).ok_or(ToAirDrop::BadHeader)?;
        ip = IpKey::v6(*target);
        learned = true;
    }
    let mut diff = 0;
    let mut changed = false;
    let mut off = icmp + options;
    for _ in 0..MAX_NDP_OPTIONS {
        if off >= end {
            break;
        }
        let opt = frame.at::<2>(off).ok_or(ToAirDrop::BadNdpOption)?;
        let (kind, len) = (opt[0], usize::from(opt[1]) * 8);
        if len == 0 || off + len > end {
            return Err(ToAirDrop::BadNdpOption);
        }
        if kind == ND_OPT_SOURCE_LINKADDR || kind == ND_OPT_TARGET_LINKADDR {
            if len != 8 {
                return Err(ToAirDrop::BadNdpOption);
            }
            let addr = frame.at::<6>(off + 2).ok_or(ToAirDrop::BadNdpOption)?;
            let change = csum_diff(addr, &station);
            *addr = station;
            diff = csum_add(diff, change);
            changed = true;
        }
        off += len;
    }
    if off < end {
        return Err(ToAirDrop::TooManyNdpOptions);
    }
    let done = Rewrote::learning(ip, learned);
    if !changed {
        return Ok(done);
    }
    Ok(done.fixing(ChecksumFix {
        offset: icmp + 2,
        diff,
        udp: false,
    }))
}

#[inline(always)]
fn ipv4_toward_air<F: Frame>(frame: &mut F, l3: usize) -> Result<Rewrote, ToAirDrop> {
    let ip = frame.at::<IPV4_MIN_HLEN>(l3).ok_or(ToAirDrop::BadHeader)?;
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < IPV4_MIN_HLEN {
        return Err(ToAirDrop::BadHeader);
    }
    let src = [ip[12], ip[13], ip[14], ip[15]];
    // 0.0.0.0 (a DHCP client's before its lease), multicast, reserved and
    // broadcast addresses are never a host's own.
    let learned = src != [0; 4] && src[0] < 224;
    let unchanged = Rewrote::learning(IpKey::v4(src), learned);
    let first_fragment = be16(ip, 6) & 0x1fff == 0;
    if ip[9] != IPPROTO_UDP || !first_fragment {
        return Ok(unchanged);
    }
    let udp = l3 + ihl;
    let Some(bootp) = frame.at::<{ UDP_HLEN + BOOTP_FLAGS + 2 }>(udp) else {
        return Ok(unchanged);
    };
    // The UDP length must cover the flags, or the checksum does not.
    let dhcp_request = be16(bootp, 0) == BOOTPC
        && be16(bootp, 2) == BOOTPS
        && usize::from(be16(bootp, 4)) >= UDP_HLEN + BOOTP_FLAGS + 2
        && bootp[UDP_HLEN] == BOOTREQUEST;
    let flags_at = UDP_HLEN + BOOTP_FLAGS;
    let flags = be16(bootp, flags_at);
    if !dhcp_request || flags & BOOTP_BROADCAST != 0 {
        return Ok(unchanged);
    }
    let new = (flags | BOOTP_BROADCAST).to_be_bytes();
    let diff = csum_diff(&flags.to_be_bytes(), &new);
    bootp[flags_at..flags_at + 2].copy_from_slice(&new);
    Ok(unchanged.fixing(ChecksumFix {
        offset: udp + 6,
        diff,
        udp: true,
    }))
}

#[inline(always)]
fn arp_toward_air<F: Frame>(frame: &mut F, l3: usize, station: Mac) -> Result<Rewrote, ToAirDrop> {
    let arp = frame.at::<ARP_LEN>(l3).ok_or(ToAirDrop::BadHeader)?;
    if !is_ether_ipv4_arp(arp) {
        return Err(ToAirDrop::BadHeader);
    }
    arp[8..14].copy_from_slice(&station);
    let sender = [arp[14], arp[15], arp[16], arp[17]];
    let target = [arp[24], arp[25], arp[26], arp[27]];
    // An ARP probe (RFC 5227) has sender 0.0.0.0: the VM claims the target.
    let ip = if sender == [0; 4] { target } else { sender };
    Ok(Rewrote::learning(
        IpKey::v4(ip),
        ip != [0; 4] && ip[0] < 224,
    ))
}

/// Wi-Fi port → router. `station` is the station's current MAC; `lookup`
/// asks the table for the VM that owns an address. A unicast frame to
/// `station` gets the MAC its destination was learned with: the IPv6 or IPv4
/// destination, or the ARP target IP (an ARP reply to a probe, target
/// `0.0.0.0`: its sender IP, the probed address); an ARP reply's target
/// hardware address is rewritten too. EAPOL and RSN pre-authentication, and
/// unicast for an address no VM owns, go to the station
/// ([`ToRouter::Station`]); group-addressed frames and frames for another MAC
/// cross unchanged.
#[inline(always)]
pub fn toward_router<F: Frame>(
    frame: &mut F,
    station: Mac,
    mut lookup: impl FnMut(&IpKey) -> Option<Mac>,
) -> ToRouter {
    if let Some(own) = station_protocol(frame) {
        return ToRouter::Station(own);
    }
    let Some(hdr) = frame.head::<ETH_HLEN>() else {
        return ToRouter::Unchanged;
    };
    if mac_at(hdr, 0) != station {
        return ToRouter::Unchanged;
    }
    let Some((ethertype, l3)) = l2(frame) else {
        return ToRouter::Station(ForStation::NoOwner);
    };
    // A key always written and a flag, not an `Option` (see `Rewrote`).
    let mut key = IpKey([0; 16]);
    let mut found = false;
    let mut is_arp_reply = false;
    match ethertype {
        ETH_P_IPV6 => {
            if let Some(ip) = frame.at::<IPV6_HLEN>(l3)
                && ip[0] >> 4 == 6
            {
                key.0.copy_from_slice(&ip[24..40]);
                found = true;
            }
        }
        ETH_P_IP => {
            if let Some(ip) = frame.at::<IPV4_MIN_HLEN>(l3)
                && ip[0] >> 4 == 4
            {
                key = IpKey::v4([ip[16], ip[17], ip[18], ip[19]]);
                found = true;
            }
        }
        ETH_P_ARP => {
            if let Some(arp) = frame.at::<ARP_LEN>(l3)
                && is_ether_ipv4_arp(arp)
            {
                is_arp_reply = be16(arp, 6) == 2;
                let target = [arp[24], arp[25], arp[26], arp[27]];
                let sender = [arp[14], arp[15], arp[16], arp[17]];
                key = IpKey::v4(if target == [0; 4] { sender } else { target });
                found = true;
            }
        }
        _ => {}
    }
    if !found {
        return ToRouter::Station(ForStation::NoOwner);
    }
    let Some(mac) = lookup(&key) else {
        return ToRouter::Station(ForStation::NoOwner);
    };
    if is_arp_reply && let Some(arp) = frame.at::<ARP_LEN>(l3) {
        arp[18..24].copy_from_slice(&mac);
    }
    if let Some(hdr) = frame.head::<ETH_HLEN>() {
        hdr[..6].copy_from_slice(&mac);
    }
    ToRouter::Translated { mac }
}

/// Ethernet hardware, IPv4 protocol, 6- and 4-byte addresses.
#[inline(always)]
fn is_ether_ipv4_arp(arp: &[u8; ARP_LEN]) -> bool {
    be16(arp, 0) == ARPHRD_ETHER && be16(arp, 2) == ETH_P_IP && arp[4] == 6 && arp[5] == 4
}

#[inline(always)]
fn be16<const N: usize>(bytes: &[u8; N], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

#[inline(always)]
fn mac_at<const N: usize>(bytes: &[u8; N], at: usize) -> Mac {
    [
        bytes[at],
        bytes[at + 1],
        bytes[at + 2],
        bytes[at + 3],
        bytes[at + 4],
        bytes[at + 5],
    ]
}

/// What a one's-complement sum gains when the 16-bit-aligned bytes `old`
/// of the data it covers become `new`: the sum of the new words and the
/// complements of the old ones (RFC 1624), folded.
#[inline(always)]
pub fn csum_diff<const N: usize>(old: &[u8; N], new: &[u8; N]) -> u16 {
    let mut diff = 0;
    let mut i = 0;
    while i + 1 < N {
        diff = csum_add(diff, csum_add(!be16(old, i), be16(new, i)));
        i += 2;
    }
    diff
}

/// One's-complement addition of two 16-bit values.
#[inline(always)]
pub fn csum_add(a: u16, b: u16) -> u16 {
    let sum = u32::from(a) + u32::from(b);
    ((sum & 0xffff) + (sum >> 16)) as u16
}

/// The Internet checksum `check` once the data it covers gained `diff`
/// ([`csum_diff`]): HC' = ~(~HC + diff) (RFC 1624, eqn. 3).
#[inline(always)]
pub fn csum_apply(check: u16, diff: u16) -> u16 {
    !csum_add(!check, diff)
}
