//! Why a program dropped a frame.

/// Defines [`DropReason`] from one list: each variant with its counter slot,
/// its `status --json` name and its doc. [`DropReason::ALL`] and
/// [`DropReason::name`] come from the same list, so a new reason is
/// counted, shown and exported without a second list to keep in step.
macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident = $slot:literal => $name:literal, )+) => {
        /// The reason behind every `XDP_DROP` the programs return.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $variant = $slot, )+
        }

        impl DropReason {
            /// Every reason, in counter-slot order.
            pub const ALL: &'static [DropReason] = &[$( DropReason::$variant, )+];

            /// A stable, machine-readable name (used in `status --json`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( DropReason::$variant => $name, )+
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header (14 bytes).
    TooShort = 0 => "too_short",
    /// No VID for the ingress interface (drop-in mode: ifindex 0 or above 4094).
    NoVid = 1 => "no_vid",
    /// The kernel refused to make room for the tag.
    NoHeadroom = 2 => "no_headroom",
    /// `router_iface` holds no interface.
    NoRouter = 3 => "no_router",
    /// Router: the outer tag is absent, incomplete or not 802.1Q (0x8100).
    BadTag = 4 => "bad_tag",
    /// Router: VID 0 or 4095.
    ReservedVid = 5 => "reserved_vid",
    /// Router: the VID names no interface the router may reach.
    UnknownVid = 6 => "unknown_vid",
    /// The kernel refused the redirect itself.
    RedirectFailed = 7 => "redirect_failed",
    /// Router, toward a Wi-Fi station: EAPOL or RSN pre-authentication from
    /// behind the router (only the station's supplicant speaks them).
    StationProtocol = 8 => "station_protocol",
    /// Router, toward a Wi-Fi station: a frame the address translation
    /// cannot rewrite whole (a multicast source, a malformed header or NDP
    /// option, too many options, the skb's headers not made linear, the
    /// station's MAC missing from `fwd_stations`); sent, it would carry a
    /// VM's MAC the AP refuses.
    Untranslatable = 9 => "untranslatable",
}

impl From<crate::station_nat::ToAirDrop> for DropReason {
    /// The counter slot of a frame the translation toward the AP refused.
    fn from(why: crate::station_nat::ToAirDrop) -> Self {
        use crate::station_nat::ToAirDrop;
        match why {
            ToAirDrop::TooShort => DropReason::TooShort,
            ToAirDrop::StationProtocol => DropReason::StationProtocol,
            ToAirDrop::GroupSource
            | ToAirDrop::BadHeader
            | ToAirDrop::BadNdpOption
            | ToAirDrop::TooManyNdpOptions => DropReason::Untranslatable,
        }
    }
}

// Slots are the array's indexes: listed in order, none skipped.
const _: () = {
    let mut i = 0;
    while i < DropReason::ALL.len() {
        assert!(
            DropReason::ALL[i] as usize == i,
            "drop reasons out of slot order"
        );
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_slot_and_a_distinct_name() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(
                DropReason::ALL[..i].iter().all(|o| o.name() != r.name()),
                "{} twice",
                r.name()
            );
        }
    }
}
