//! Why a program dropped a frame.

/// The reason behind every `XDP_DROP` the programs return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DropReason {
    /// Shorter than an Ethernet header (14 bytes).
    TooShort = 0,
    /// No VID for the ingress interface (drop-in mode: ifindex 0 or above 4094).
    NoVid = 1,
    /// The kernel refused to make room for the tag.
    NoHeadroom = 2,
    /// `router_iface` holds no interface.
    NoRouter = 3,
    /// Router: the outer tag is absent, incomplete or not 802.1Q (0x8100).
    BadTag = 4,
    /// Router: VID 0 or 4095.
    ReservedVid = 5,
    /// Router: the VID names no interface the router may reach.
    UnknownVid = 6,
    /// The kernel refused the redirect itself.
    RedirectFailed = 7,
}

impl DropReason {
    /// Every reason, in counter-slot order.
    pub const ALL: [DropReason; 8] = [
        DropReason::TooShort,
        DropReason::NoVid,
        DropReason::NoHeadroom,
        DropReason::NoRouter,
        DropReason::BadTag,
        DropReason::ReservedVid,
        DropReason::UnknownVid,
        DropReason::RedirectFailed,
    ];

    /// A stable, machine-readable name (used in `status --json`).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::NoVid => "no_vid",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::NoRouter => "no_router",
            DropReason::BadTag => "bad_tag",
            DropReason::ReservedVid => "reserved_vid",
            DropReason::UnknownVid => "unknown_vid",
            DropReason::RedirectFailed => "redirect_failed",
        }
    }
}
