//! Per-port counters, one copy per CPU in a `PERCPU_ARRAY` of one entry that
//! each loaded program owns. The programs record; user space sums the CPUs.

use crate::DropReason;

/// Counter slots in [`PortCounters::dropped`], one per [`DropReason`].
pub const DROP_REASONS: usize = DropReason::ALL.len();

/// What one program instance did, on one CPU (or summed over all of them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames handed to the kernel for redirect.
    pub forwarded_frames: u64,
    /// Their bytes as received (before the tag was pushed or popped).
    pub forwarded_bytes: u64,
    /// Dropped frames, indexed by `DropReason as usize`.
    pub dropped: [u64; DROP_REASONS],
}

// SAFETY: `repr(C)` u64s only: no padding, any bit pattern valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for PortCounters {}

impl PortCounters {
    /// Accounts one frame of `len` received bytes.
    #[inline(always)]
    pub fn record(&mut self, len: u64, verdict: Result<(), DropReason>) {
        self.record_frames(1, len, verdict);
    }

    /// Accounts `frames` wire frames of `len` received bytes in all: on the
    /// skb path one skb may be a GSO aggregate of many segments.
    #[inline(always)]
    pub fn record_frames(&mut self, frames: u64, len: u64, verdict: Result<(), DropReason>) {
        match verdict {
            Ok(()) => {
                self.forwarded_frames += frames;
                self.forwarded_bytes += len;
            }
            Err(reason) => {
                if let Some(slot) = self.dropped.get_mut(reason as usize) {
                    *slot += frames;
                }
            }
        }
    }

    /// Adds another CPU's counters (wrapping, as the kernel's would).
    pub fn add(&mut self, other: &PortCounters) {
        self.forwarded_frames = self.forwarded_frames.wrapping_add(other.forwarded_frames);
        self.forwarded_bytes = self.forwarded_bytes.wrapping_add(other.forwarded_bytes);
        for (mine, theirs) in self.dropped.iter_mut().zip(other.dropped) {
            *mine = mine.wrapping_add(theirs);
        }
    }

    /// Moves `frames` the program counted as forwarded to the drops
    /// ([`DropReason::RedirectFailed`]): redirects the kernel refused after
    /// the program returned (the `xdp:xdp_redirect_err` tracepoints, counted
    /// apart). Their bytes stay in `forwarded_bytes`: the tracepoints do
    /// not carry the frame's length.
    pub fn refused_redirects(&mut self, frames: u64) {
        let frames = frames.min(self.forwarded_frames);
        self.forwarded_frames -= frames;
        let slot = &mut self.dropped[DropReason::RedirectFailed as usize];
        *slot = slot.wrapping_add(frames);
    }

    /// Drops of one reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }

    /// Drops of every reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().fold(0, |a, d| a.wrapping_add(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_slot() {
        for (i, reason) in DropReason::ALL.iter().copied().enumerate() {
            assert_eq!(reason as usize, i);
            let mut c = PortCounters::default();
            c.record(60, Err(reason));
            assert_eq!(c.drops(reason), 1);
            assert_eq!(c.dropped_total(), 1);
            assert_eq!(c.forwarded_frames, 0);
        }
    }

    #[test]
    fn forwarded_counts_frames_and_bytes_and_sums_across_cpus() {
        let mut a = PortCounters::default();
        a.record(60, Ok(()));
        a.record(1514, Ok(()));
        let mut b = PortCounters::default();
        b.record(100, Ok(()));
        b.record(14, Err(DropReason::NoRouter));
        a.add(&b);
        assert_eq!(a.forwarded_frames, 3);
        assert_eq!(a.forwarded_bytes, 1674);
        assert_eq!(a.drops(DropReason::NoRouter), 1);
    }

    #[test]
    fn refused_redirects_move_from_forwarded_to_redirect_failed() {
        let mut c = PortCounters::default();
        for _ in 0..5 {
            c.record(100, Ok(()));
        }
        c.record(10, Err(DropReason::TooShort));
        c.refused_redirects(2);
        assert_eq!(c.forwarded_frames, 3);
        assert_eq!(c.forwarded_bytes, 500);
        assert_eq!(c.drops(DropReason::RedirectFailed), 2);
        assert_eq!(c.dropped_total(), 3);
        // Read apart from the counters: never more than what was forwarded.
        c.refused_redirects(10);
        assert_eq!(c.forwarded_frames, 0);
        assert_eq!(c.drops(DropReason::RedirectFailed), 5);
    }
}
