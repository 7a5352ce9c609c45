//! The one abstraction the frame logic needs from its host: a frame whose
//! start can move, and bounds-checked access to its first bytes.

/// A frame being processed, seen from its first byte.
///
/// There is deliberately no `len()`: in XDP, subtracting the packet pointers
/// is something the verifier refuses; ask for the bytes you need instead.
pub trait Frame {
    /// Moves the start of the frame by `delta` bytes: negative grows the
    /// frame into its headroom, positive shrinks it. `Err` leaves it as it was.
    fn adjust_head(&mut self, delta: i32) -> Result<(), NoRoom>;

    /// The first `N` bytes, or `None` when the frame is shorter than `N`.
    fn head<const N: usize>(&mut self) -> Option<&mut [u8; N]>;
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
}

impl<'a> BufFrame<'a> {
    /// The frame is `buf[headroom..]`; the bytes before it are headroom.
    pub fn new(buf: &'a mut [u8], headroom: usize) -> Self {
        assert!(headroom <= buf.len(), "headroom beyond the buffer");
        Self {
            buf,
            start: headroom,
        }
    }

    /// The frame as it is now.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Frame for BufFrame<'_> {
    fn adjust_head(&mut self, delta: i32) -> Result<(), NoRoom> {
        let start = self.start as i64 + i64::from(delta);
        if start < 0 || start as usize > self.buf.len() {
            return Err(NoRoom);
        }
        self.start = start as usize;
        Ok(())
    }

    fn head<const N: usize>(&mut self) -> Option<&mut [u8; N]> {
        let end = self.start.checked_add(N)?;
        self.buf.get_mut(self.start..end)?.try_into().ok()
    }
}
