//! [`Frame`] over the XDP context.

use aya_ebpf::{helpers::bpf_xdp_adjust_head, programs::XdpContext};
use xdp_forwarder_common::{Frame, frame::NoRoom};

pub struct XdpFrame(pub XdpContext);

impl Frame for XdpFrame {
    #[inline(always)]
    fn adjust_head(&mut self, delta: i32) -> Result<(), NoRoom> {
        // SAFETY: the helper only needs the program's own context; it
        // invalidates earlier packet pointers, and `head` always reloads them.
        match unsafe { bpf_xdp_adjust_head(self.0.ctx, delta) } {
            0 => Ok(()),
            _ => Err(NoRoom),
        }
    }

    #[inline(always)]
    fn at<const N: usize>(&mut self, offset: usize) -> Option<&mut [u8; N]> {
        packet_at(self.0.data(), self.0.data_end(), offset)
    }
}

/// The `N` bytes at `offset` of the packet data between `data` and
/// `data_end` (direct packet access, XDP or tc), or `None` past its end.
/// The borrow is of the frame that holds `data`: callers tie it to theirs.
#[inline(always)]
pub fn packet_at<'a, const N: usize>(
    data: usize,
    data_end: usize,
    offset: usize,
) -> Option<&'a mut [u8; N]> {
    let start = data + offset;
    if start + N > data_end {
        return None;
    }
    // SAFETY: the check above (which the verifier sees too) proves that the
    // N bytes from `start` lie inside the packet, and nothing else refers to
    // them while the reference lives (the caller's `&mut` frame).
    Some(unsafe { &mut *(start as *mut [u8; N]) })
}
