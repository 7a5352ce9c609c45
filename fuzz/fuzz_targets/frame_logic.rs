//! The shared frame logic on arbitrary bytes: never panics, a dropped frame is
//! left untouched, and the router undoes exactly what the physical program did.
//!
//! Run: `cargo +nightly fuzz run frame_logic` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdp_forwarder_common::{BufFrame, RouterMode, Vid, pop_port_tag, push_port_tag};

fuzz_target!(|input: &[u8]| {
    let [headroom, a, b, c, d, frame @ ..] = input else {
        return;
    };
    let headroom = usize::from(*headroom % 16);
    let word = u32::from_le_bytes([*a, *b, *c, *d]);

    for mode in [RouterMode::Managed, RouterMode::DropIn { ingress_ifindex: word }] {
        let mut buf = [vec![0; headroom], frame.to_vec()].concat();
        let mut f = BufFrame::new(&mut buf, headroom);
        if pop_port_tag(&mut f, mode).is_err() {
            assert_eq!(f.bytes(), frame);
        }
    }

    let mut buf = [vec![0; headroom], frame.to_vec()].concat();
    let mut f = BufFrame::new(&mut buf, headroom);
    match push_port_tag(&mut f, Vid::new(word)) {
        Ok(()) => {
            assert_eq!(f.len(), frame.len() + 4);
            assert_eq!(pop_port_tag(&mut f, RouterMode::Managed), Ok(Vid::new(word).unwrap()));
            assert_eq!(f.bytes(), frame);
        }
        Err(_) => assert_eq!(f.bytes(), frame),
    }
});
