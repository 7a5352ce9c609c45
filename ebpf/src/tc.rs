//! The bodies of the two tc programs (mode `tc`): the same roles as the XDP
//! programs on the kernel's socket-buffer path. The kernel pushes and pops
//! the tags (`bpf_skb_vlan_push` / `bpf_skb_vlan_pop`), so a tag held in
//! metadata keeps its place, and GSO aggregates and checksum state pass
//! through whole (see `xdp_forwarder_common::skb_path`). They find their
//! targets in `fwd_tc_targets`, never in the DEVMAPs, which belong to the
//! XDP programs (`xdp_forwarder_common::maps::TC_TARGETS` says why).

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
    helpers::{bpf_check_mtu, bpf_redirect, bpf_skb_vlan_pop, bpf_skb_vlan_push},
    programs::TcContext,
};
use xdp_forwarder_common::{
    DropReason, SkbTag, Vid,
    maps::{TC_ROUTER_KEY, TcTarget},
    outer_port_vid, port_tag_tci,
    vlan::{TPID_8021Q, VLAN_HLEN},
};

use crate::{
    counting,
    maps::{COUNTERS, TC_TARGETS},
    port_station, port_vid, station,
};

/// What the kernel tells a tc program about its skb.
struct Skb {
    /// Bytes in the frame (a tag held in metadata not included).
    len: u32,
    /// Wire frames it stands for (a GSO aggregate: its segments).
    segments: u32,
    /// The outer tag: in metadata, or (rarely at ingress) in the frame.
    outer: Option<SkbTag>,
}

impl Skb {
    #[inline(always)]
    fn of(ctx: &TcContext) -> Skb {
        let skb = ctx.skb.skb;
        // SAFETY: `skb` is the program's context; the verifier rewrites
        // these reads into reads of the kernel's sk_buff.
        let (len, segments, present, proto, tci, protocol) = unsafe {
            (
                (*skb).len,
                (*skb).gso_segs,
                (*skb).vlan_present,
                (*skb).vlan_proto,
                (*skb).vlan_tci,
                (*skb).protocol,
            )
        };
        let outer = if present != 0 {
            Some(SkbTag {
                tpid: u16::from_be(proto as u16),
                tci: tci as u16,
            })
        } else if u16::from_be(protocol as u16) == TPID_8021Q {
            ctx.load::<[u8; 2]>(14).ok().map(|tci| SkbTag {
                tpid: TPID_8021Q,
                tci: u16::from_be_bytes(tci),
            })
        } else {
            None
        };
        Skb {
            len,
            segments: if segments == 0 { 1 } else { segments },
            outer,
        }
    }

    /// Counts the skb as its wire frames and bytes (a tag in metadata
    /// was on the wire too) and turns the verdict into a tc action.
    #[inline(always)]
    fn account(&self, verdict: Result<(), DropReason>) -> i32 {
        if counting() {
            let tag = if self.outer.is_some() && self.len > 0 {
                VLAN_HLEN as u64
            } else {
                0
            };
            let bytes = u64::from(self.len) + tag * u64::from(self.segments);
            COUNTERS.update(|c| c.record_frames(u64::from(self.segments), bytes, verdict));
        }
        match verdict {
            Ok(()) => TC_ACT_REDIRECT,
            Err(_) => TC_ACT_SHOT,
        }
    }
}

/// Hands the skb to `ifindex`'s egress, unless the target's MTU refuses
/// it: what the kernel accepts from a redirect is MTU + 14 + 4 bytes (one
/// tag beyond the MTU; a GSO aggregate, segments that fit). The redirect
/// itself would succeed and the frame be dropped later, at the target,
/// unseen by our counters: counted as `redirect_failed`, as the XDP modes
/// count a redirect the kernel refused. An error of the check itself (no
/// such interface, as under BPF_PROG_TEST_RUN) leaves the verdict to the
/// redirect.
#[inline(always)]
fn redirect_fitting(ctx: &TcContext, ifindex: u32) -> Result<(), DropReason> {
    let mut mtu_len: u32 = 0;
    // SAFETY: the program's own skb and a stack u32 the helper may write.
    let fits = unsafe {
        bpf_check_mtu(
            ctx.skb.skb.cast(),
            ifindex,
            &mut mtu_len,
            -(VLAN_HLEN as i32),
            0,
        )
    };
    if fits > 0 {
        return Err(DropReason::RedirectFailed);
    }
    redirect(ifindex)
}

/// Hands the skb to `ifindex`'s egress.
#[inline(always)]
fn redirect(ifindex: u32) -> Result<(), DropReason> {
    // SAFETY: plain helper call; the kernel checks the ifindex when it
    // performs the redirect, after the program returns.
    match unsafe { bpf_redirect(ifindex, 0) } {
        ret if ret == i64::from(TC_ACT_REDIRECT) => Ok(()),
        _ => Err(DropReason::RedirectFailed),
    }
}

/// Physical NIC: push the port's tag (a tag the frame already had, even one
/// the NIC stripped into metadata, stays inside it), hand the skb to the
/// router interface (`router_iface`'s slot 0, as copied into `fwd_tc_targets`).
/// On a Wi-Fi station, first: the net-vm's own frames (EAPOL, unicast for no
/// VM) go to its stack, and replies get their VM's MAC back
/// ([`station::to_router`]).
#[inline(always)]
pub fn physical(ctx: TcContext) -> i32 {
    let skb = Skb::of(&ctx);
    if port_station() && station::to_router(&ctx, port_vid()).is_some() {
        return TC_ACT_OK;
    }
    let verdict = port_tag_tci(skb.len, Vid::new(port_vid())).and_then(|tci| {
        let target = TC_TARGETS
            .ifindex(TC_ROUTER_KEY)
            .ok_or(DropReason::NoRouter)?;
        let target = TcTarget::from_raw(target).ifindex();
        // SAFETY: the program's own skb; the helper may move its data, and
        // nothing here holds a packet pointer across it.
        if unsafe { bpf_skb_vlan_push(ctx.skb.skb, TPID_8021Q.to_be(), tci) } != 0 {
            return Err(DropReason::NoHeadroom);
        }
        redirect_fitting(&ctx, target)
    });
    skb.account(verdict)
}

/// Router interface: pop the outer tag (the next one, if any, becomes the
/// outer tag), send the skb to the NIC its VID names.
#[inline(always)]
pub fn router(ctx: TcContext) -> i32 {
    let skb = Skb::of(&ctx);
    let verdict = outer_port_vid(skb.len, skb.outer).and_then(|vid| {
        // An empty slot: no port owns this VID.
        let target = TC_TARGETS
            .ifindex(u32::from(vid.get()))
            .map(TcTarget::from_raw)
            .ok_or(DropReason::UnknownVid)?;
        // SAFETY: as in `physical`.
        if unsafe { bpf_skb_vlan_pop(ctx.skb.skb) } != 0 {
            return Err(DropReason::BadTag);
        }
        // A Wi-Fi station takes only its own MAC: translate, or drop what
        // would leave with a VM's MAC (its MAC gone from `fwd_stations`).
        if target.station() {
            let vid = u32::from(vid.get());
            let mac = station::station(vid).ok_or(DropReason::Untranslatable)?;
            station::to_air(&ctx, vid, mac)?;
        }
        redirect_fitting(&ctx, target.ifindex())
    });
    skb.account(verdict)
}
