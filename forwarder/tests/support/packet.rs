//! Raw frames over AF_PACKET: the testkit's socket, failing the test
//! instead of returning errors.

#![allow(unused_imports, reason = "each test binary uses a different part")]

use std::time::Duration;

pub use xdp_forwarder_testkit::packet::{ETHERTYPE_TEST, frame, tagged};

pub struct RawSocket(xdp_forwarder_testkit::packet::RawSocket);

impl RawSocket {
    pub fn bind(iface: &str) -> Self {
        Self(
            xdp_forwarder_testkit::packet::RawSocket::bind(iface)
                .unwrap_or_else(|e| panic!("{e:#}")),
        )
    }

    pub fn send(&self, frame: &[u8]) {
        self.0.send(frame).unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// The next frame received (not sent) within `timeout`, outer tag
    /// re-inserted; a zero `timeout` still reads a frame already queued.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.0.recv(timeout)
    }

    /// Everything received within `window` (zero: what is queued now).
    pub fn drain(&self, window: Duration) -> Vec<Vec<u8>> {
        self.0.drain(window)
    }

    /// A receive buffer big enough for bulk tests.
    pub fn with_big_buffer(self) -> Self {
        Self(self.0.with_big_buffer().unwrap_or_else(|e| panic!("{e:#}")))
    }
}
