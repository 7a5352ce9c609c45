//! The one abstraction the frame logic needs from its host: a frame whose
//! start can move, and bounds-checked access to its first bytes.

/// A frame being processed, seen from its first byte.
pub trait Frame {
    /// Moves the start of the frame by `delta` bytes: negative grows the
    /// frame into its headroom, positive shrinks it. `Err` leaves it as it was.
    fn adjust_head(&mut self, delta: i32) -> Result<(), NoRoom>;

    /// The `N` bytes at `offset`, or `None` when the frame ends before.
    /// (`offset` must be bounded where the verifier can see it.)
    fn at<const N: usize>(&mut self, offset: usize) -> Option<&mut [u8; N]>;

    /// The first `N` bytes, or `None` when the frame is shorter than `N`.
    #[inline(always)]
    fn head<const N: usize>(&mut self) -> Option<&mut [u8; N]> {
        self.at::<N>(0)
    }
}

/// `adjust_head` could not move the start of the frame that far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom;

/// A frame in a byte buffer, with headroom before it: the host's stand-in for
/// an XDP buffer, for tests and fuzzing.
#[derive(Debug)]
pub struct BufFrame<'a> {
    buf: &'a mut [u8],
    start: usize,
    end: usize,
}

impl<'a> BufFrame<'a> {
    /// The frame is `buf[headroom..]`; the bytes before it are headroom.
    pub fn new(buf: &'a mut [u8], headroom: usize) -> Self {
        assert!(headroom <= buf.len(), "frame beyond the buffer");
        let end = buf.len();
        Self {
            buf,
            start: headroom,
            end,
        }
    }

    /// The frame as it is now.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl Frame for BufFrame<'_> {
    fn adjust_head(&mut self, delta: i32) -> Result<(), NoRoom> {
        let start = self.start as i64 + i64::from(delta);
        if start < 0 || start as usize > self.end {
            return Err(NoRoom);
        }
        self.start = start as usize;
        Ok(())
    }

    fn at<const N: usize>(&mut self, offset: usize) -> Option<&mut [u8; N]> {
        let from = self.start.checked_add(offset)?;
        let to = from.checked_add(N)?;
        if to > self.end {
            return None;
        }
        self.buf.get_mut(from..to)?.try_into().ok()
    }
}
