//! Properties of the shared frame logic over arbitrary frames and VIDs.

use proptest::prelude::*;
use xdp_forwarder_common::{
    BufFrame, DropReason, RouterMode, Vid, pop_port_tag, push_port_tag,
    vlan::{TPID_8021AD, TPID_8021Q},
};

const HEADROOM: usize = 16;

fn in_buffer(frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0xee; HEADROOM];
    buf.extend_from_slice(frame);
    buf
}

fn any_vid() -> impl Strategy<Value = Vid> {
    (1u32..=4094).prop_map(|v| Vid::new(v).unwrap())
}

proptest! {
    #[test]
    fn pop_undoes_push(frame in proptest::collection::vec(any::<u8>(), 14..1600), vid in any_vid()) {
        let mut buf = in_buffer(&frame);
        let mut f = BufFrame::new(&mut buf, HEADROOM);
        push_port_tag(&mut f, Some(vid)).unwrap();
        prop_assert_eq!(f.len(), frame.len() + 4);
        prop_assert_eq!(&f.bytes()[12..16], &[0x81, 0x00, (vid.get() >> 8) as u8, vid.get() as u8]);
        prop_assert_eq!(pop_port_tag(&mut f, RouterMode::Managed), Ok(vid));
        prop_assert_eq!(f.bytes(), &frame[..]);
    }

    #[test]
    fn tags_nest(payload in proptest::collection::vec(any::<u8>(), 0..64),
                 inner_tpid in prop_oneof![Just(TPID_8021Q), Just(TPID_8021AD)],
                 inner_tci in any::<u16>(), vid in any_vid()) {
        // An already-tagged frame keeps its tag inside ours, untouched.
        let mut frame = vec![0xaa; 12];
        frame.extend_from_slice(&inner_tpid.to_be_bytes());
        frame.extend_from_slice(&inner_tci.to_be_bytes());
        frame.extend_from_slice(&[0x88, 0xb5]);
        frame.extend_from_slice(&payload);
        let mut buf = in_buffer(&frame);
        let mut f = BufFrame::new(&mut buf, HEADROOM);
        push_port_tag(&mut f, Some(vid)).unwrap();
        prop_assert_eq!(&f.bytes()[16..], &frame[12..]);
        prop_assert_eq!(pop_port_tag(&mut f, RouterMode::Managed), Ok(vid));
        prop_assert_eq!(f.bytes(), &frame[..]);
    }

    #[test]
    fn router_vid_ignores_pcp_and_dei(pcp in 0u16..8, dei in 0u16..2, vid in any_vid()) {
        let tci = pcp << 13 | dei << 12 | vid.get();
        let mut frame = vec![0x11; 12];
        frame.extend_from_slice(&[0x81, 0x00]);
        frame.extend_from_slice(&tci.to_be_bytes());
        frame.extend_from_slice(&[0x88, 0xb5, 1, 2]);
        let mut buf = in_buffer(&frame);
        let mut f = BufFrame::new(&mut buf, HEADROOM);
        prop_assert_eq!(pop_port_tag(&mut f, RouterMode::Managed), Ok(vid));
    }

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..80),
                                   headroom in 0usize..8, ingress in any::<u32>()) {
        for managed in [true, false] {
            let mut buf = vec![0; headroom];
            buf.extend_from_slice(&frame);
            let mut f = BufFrame::new(&mut buf, headroom);
            let mode = if managed { RouterMode::Managed } else { RouterMode::DropIn { ingress_ifindex: ingress } };
            if pop_port_tag(&mut f, mode).is_err() {
                prop_assert_eq!(f.bytes(), &frame[..], "a dropped frame is left as it was");
            }
            let mut buf = vec![0; headroom];
            buf.extend_from_slice(&frame);
            let mut f = BufFrame::new(&mut buf, headroom);
            let _ = push_port_tag(&mut f, Vid::new(ingress));
        }
    }
}

#[test]
fn every_length_up_to_64_is_handled() {
    for len in 0..=64usize {
        let frame: Vec<u8> = (0..len as u8).collect();
        let mut buf = in_buffer(&frame);
        let mut f = BufFrame::new(&mut buf, HEADROOM);
        let pushed = push_port_tag(&mut f, Vid::new(5));
        if len < 14 {
            assert_eq!(pushed, Err(DropReason::TooShort), "len {len}");
            assert_eq!(f.bytes(), &frame[..]);
        } else {
            assert_eq!(pushed, Ok(()), "len {len}");
            assert_eq!(f.len(), len + 4);
        }

        let mut buf = in_buffer(&frame);
        let mut f = BufFrame::new(&mut buf, HEADROOM);
        let popped = pop_port_tag(&mut f, RouterMode::Managed);
        let expected = match len {
            0..14 => Err(DropReason::TooShort),
            // bytes 12..14 of 0,1,2.. are 0x0c0d: never a TPID
            _ => Err(DropReason::BadTag),
        };
        assert_eq!(popped, expected, "len {len}");
    }
}

#[test]
fn vid_range() {
    assert_eq!(Vid::new(0), None);
    assert_eq!(Vid::new(4095), None);
    assert_eq!(Vid::new(1).map(Vid::get), Some(1));
    assert_eq!(Vid::new(4094).map(Vid::get), Some(4094));
    assert_eq!(Vid::from_tci(0xf000), Err(DropReason::ReservedVid));
    assert_eq!(Vid::from_tci(0xefff), Err(DropReason::ReservedVid));
    assert_eq!(Vid::from_tci(0xf00a).map(Vid::get), Ok(10));
}
