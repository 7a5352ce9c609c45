//! Attach modes, in one place: what each mode is, the kernel hook and flags
//! it attaches with, how it is stored in the registry, what `--mode auto`
//! tries, which modes can work together, and what a mode cannot carry.
//! Every match here is exhaustive: a new mode does not compile until each
//! of these questions has its answer.

use aya_obj::generated::{XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, bpf_attach_type};

use crate::ethtool::TagFeature;

/// Defines [`Mode`] from one list (variant, registry value, name):
/// [`Mode::ALL`], the registry decoding and the names come from it, so a
/// new mode is listed once; every other question about a mode is an
/// exhaustive match below.
macro_rules! modes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $value:literal => $name:literal, )+) => {
        /// How a port's program runs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        #[repr(u8)]
        pub enum Mode {
            $( $(#[doc = $doc])* $variant = $value, )+
        }

        impl Mode {
            /// Every mode, in the order `status` and the benchmarks list them.
            pub const ALL: &'static [Mode] = &[$( Mode::$variant, )+];

            /// The mode stored in a registry record; `None` for a value no
            /// mode has (a record written by a newer version).
            pub fn from_u8(value: u8) -> Option<Mode> {
                match value {
                    $( $value => Some(Mode::$variant), )+
                    _ => None,
                }
            }

            /// The name `--mode` and `status` use.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Mode::$variant => $name, )+
                }
            }
        }
    };
}

modes! {
    /// XDP in the driver (`XDP_FLAGS_DRV_MODE`).
    Native = 0 => "native",
    /// Generic XDP on the skb (`XDP_FLAGS_SKB_MODE`), what the original's
    /// `xdp-loader … -m skb` runs.
    Skb = 1 => "skb",
    /// A tc program at the interface's ingress (a tcx link from Linux 6.6,
    /// a `clsact` filter before): the kernel pushes and pops the tags on
    /// the skb, so GSO aggregates, checksum state and tags held in metadata
    /// pass whole.
    Tc = 2 => "tc",
}

/// Which kernel hook a mode attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Hook {
    /// An XDP link; the interface reports the program in `IFLA_XDP`.
    #[serde(rename = "xdp")]
    Xdp,
    /// A tcx ingress link (`BPF_TCX_INGRESS`, Linux 6.6 and later).
    #[serde(rename = "tcx")]
    TcxIngress,
    /// A direct-action `cls_bpf` filter on the `clsact` qdisc's ingress
    /// (kernels without tcx): no link; its program is pinned instead.
    #[serde(rename = "clsact")]
    ClsactIngress,
}

impl Hook {
    /// The mode a program on this hook runs in; `xdp`: the mode the
    /// interface reports for its XDP program (`None`: it does not say).
    pub fn mode(self, xdp: Option<Mode>) -> Mode {
        match self {
            Hook::Xdp => xdp.unwrap_or(Mode::Skb),
            Hook::TcxIngress | Hook::ClsactIngress => Mode::Tc,
        }
    }
}

impl Mode {
    /// The hook this mode attaches to, on a kernel with tcx (`tcx`) or
    /// without.
    pub fn hook(self, tcx: bool) -> Hook {
        match self {
            Mode::Native | Mode::Skb => Hook::Xdp,
            Mode::Tc if tcx => Hook::TcxIngress,
            Mode::Tc => Hook::ClsactIngress,
        }
    }

    /// Why `--mode auto` takes this mode when it can.
    pub fn auto_reason(self) -> &'static str {
        match self {
            Mode::Tc => "it keeps GSO, checksum state and VLAN tags and reaches every interface",
            Mode::Native => "the driver runs XDP natively",
            Mode::Skb => "generic XDP, which every driver runs",
        }
    }

    /// Whether this mode runs in the driver: it needs the driver's native
    /// XDP, and the port takes native redirects once it runs.
    pub fn runs_in_driver(self) -> bool {
        match self {
            Mode::Native => true,
            Mode::Skb | Mode::Tc => false,
        }
    }

    /// The `ip link set dev IFACE KEYWORD off` that removes a program of
    /// this mode attached without a link (iproute2's names); `None` where
    /// `ip link` has none.
    pub fn ip_link_keyword(self) -> Option<&'static str> {
        match self {
            Mode::Native => Some("xdpdrv"),
            Mode::Skb => Some("xdpgeneric"),
            Mode::Tc => None,
        }
    }

    /// Whether this mode runs an XDP program (else a tc one).
    pub fn is_xdp(self) -> bool {
        match self {
            Mode::Native | Mode::Skb => true,
            Mode::Tc => false,
        }
    }

    /// `BPF_LINK_CREATE`'s attach type and flags for this mode (on a kernel
    /// with tcx, for tc).
    pub fn link_create(self) -> (bpf_attach_type, u32) {
        match self {
            Mode::Native => (bpf_attach_type::BPF_XDP, XDP_FLAGS_DRV_MODE),
            Mode::Skb => (bpf_attach_type::BPF_XDP, XDP_FLAGS_SKB_MODE),
            Mode::Tc => (bpf_attach_type::BPF_TCX_INGRESS, 0),
        }
    }

    /// The mode of an XDP program the interface reports (`IFLA_XDP_ATTACHED`).
    pub fn of_xdp_attached(native: bool) -> Mode {
        if native { Mode::Native } else { Mode::Skb }
    }

    /// Whether this mode's redirects reach a port only when that port runs
    /// a native XDP program itself (`ndo_xdp_xmit`: virtio-net, veth and the
    /// Intel drivers take XDP frames only then, e1000e never). The other
    /// modes hand skbs to the target's transmit path, which every
    /// interface takes.
    pub fn needs_native_target(self) -> bool {
        match self {
            Mode::Native => true,
            Mode::Skb | Mode::Tc => false,
        }
    }

    /// The receive features a port in this mode must not have on: XDP sees
    /// only what is in the frame, so a tag the NIC strips into its receive
    /// descriptor would be lost (native) or end up outside ours (skb); tc
    /// reads a stripped tag from the skb and needs only the filters off.
    pub fn tag_features_off(self) -> &'static [TagFeature] {
        match self {
            Mode::Native | Mode::Skb => &TagFeature::ALL,
            Mode::Tc => &[TagFeature::CTagFilter, TagFeature::STagFilter],
        }
    }

    /// What this mode cannot carry on an interface of `kind` (the rtnetlink
    /// link kind: `veth`, …; `None` for a hardware NIC) that may deliver
    /// receive aggregates it cannot stop (`fixed_aggregates`: hardware GRO
    /// or LRO fixed on, as on a virtio-net NIC offered guest TSO without
    /// `CTRL_GUEST_OFFLOADS`), said at attach and in `status`; `None` when
    /// nothing is known to break.
    pub fn caveat(self, kind: Option<&str>, fixed_aggregates: bool) -> Option<&'static str> {
        if self == Mode::Skb && fixed_aggregates {
            return Some(
                "this device delivers receive aggregates it cannot stop (rx-gro-hw or LRO \
                 fixed on: a virtio-net NIC offered guest TSO without CTRL_GUEST_OFFLOADS), \
                 which generic XDP cannot redirect: TCP towards the other side stalls; use \
                 --mode tc",
            );
        }
        match (self, kind) {
            (Mode::Native, Some("veth")) => Some(
                "native XDP on veth loses the checksum state of offloaded TCP/UDP: \
                 the far end drops every segment whose checksum the sender left to the \
                 hardware (TCP stalls); use --mode tc",
            ),
            (Mode::Skb, Some("veth")) => Some(
                "generic XDP on veth cannot pass the GSO aggregates a veth peer sends \
                 (TCP stalls) nor see a VLAN tag the peer sends as metadata (it would end \
                 up outside ours); use --mode tc",
            ),
            (Mode::Native | Mode::Skb | Mode::Tc, _) => None,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The mode asked for on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModeChoice {
    /// The first of [`ModeChoice::candidates`] that the kernel accepts and
    /// that works with the ports already attached.
    #[default]
    Auto,
    Native,
    Skb,
    Tc,
}

impl ModeChoice {
    /// The modes to try, in order. `auto` prefers tc: it carries TCP with
    /// every offload and every tag, and reaches every interface; where its
    /// program does not load or attach, XDP, native first.
    pub fn candidates(self) -> &'static [Mode] {
        match self {
            ModeChoice::Auto => &[Mode::Tc, Mode::Native, Mode::Skb],
            ModeChoice::Native => &[Mode::Native],
            ModeChoice::Skb => &[Mode::Skb],
            ModeChoice::Tc => &[Mode::Tc],
        }
    }

    /// The one mode asked for, `None` for `auto`.
    pub fn fixed(self) -> Option<Mode> {
        match self {
            ModeChoice::Auto => None,
            ModeChoice::Native => Some(Mode::Native),
            ModeChoice::Skb => Some(Mode::Skb),
            ModeChoice::Tc => Some(Mode::Tc),
        }
    }

    /// Whether a port running `mode` already is what this choice asks for.
    pub fn accepts(self, mode: Mode) -> bool {
        self.fixed().is_none_or(|m| m == mode)
    }
}

impl ModeChoice {
    /// Every choice, as `--mode` spells them.
    pub const ALL: [ModeChoice; 4] = [
        ModeChoice::Auto,
        ModeChoice::Native,
        ModeChoice::Skb,
        ModeChoice::Tc,
    ];

    /// The `--mode` value.
    pub fn as_arg(self) -> &'static str {
        match self {
            ModeChoice::Auto => "auto",
            ModeChoice::Native => "native",
            ModeChoice::Skb => "skb",
            ModeChoice::Tc => "tc",
        }
    }

    /// The choice `--mode VALUE` names.
    pub fn from_arg(value: &str) -> Option<ModeChoice> {
        ModeChoice::ALL.into_iter().find(|c| c.as_arg() == value)
    }
}

impl From<Mode> for ModeChoice {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Native => ModeChoice::Native,
            Mode::Skb => ModeChoice::Skb,
            Mode::Tc => ModeChoice::Tc,
        }
    }
}

/// Whether the frames a port in `from` mode redirects reach a port in
/// `to` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    Yes,
    /// The kernel says the target takes no native redirects.
    No,
    /// The kernel does not say (no netdev xdp-features before Linux 6.3),
    /// and by the rule of the drivers we know (virtio-net, veth, Intel:
    /// only while they run a native program) they would be refused.
    Unlikely,
    /// The target is a Wi-Fi station and the router does not run tc: the
    /// frames would leave with the VMs' MACs, which the AP refuses (only
    /// the router's tc program translates them; [`crate::station`]).
    Untranslated,
}

impl Reach {
    /// Whether the kernel's word (or the station rule) says the direction
    /// is dead, rather than the drivers' rule guessing it.
    pub fn is_certain(self) -> bool {
        match self {
            Reach::No | Reach::Untranslated => true,
            Reach::Yes | Reach::Unlikely => false,
        }
    }
}

/// Whether frames redirected by a port in `from` mode reach a target in
/// `to` mode. `to_takes`: whether the target's interface takes native
/// redirects (`ndo_xmit` in its netdev xdp-features, as it will be with
/// its program attached); `None` where the kernel does not report it. Only
/// native redirects need this: skb and tc hand skbs to the target's
/// transmit path, which every interface takes.
pub fn reach(from: Mode, to: Mode, to_takes: Option<bool>) -> Reach {
    if !from.needs_native_target() {
        return Reach::Yes;
    }
    match (to_takes, to) {
        (Some(true), _) | (None, Mode::Native) => Reach::Yes,
        (Some(false), _) => Reach::No,
        (None, Mode::Skb | Mode::Tc) => Reach::Unlikely,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_values_round_trip_and_unknown_values_are_refused() {
        for &mode in Mode::ALL {
            assert_eq!(Mode::from_u8(mode as u8), Some(mode));
        }
        assert_eq!(Mode::from_u8(3), None);
    }

    #[test]
    fn auto_prefers_tc_then_native_then_skb() {
        assert_eq!(
            ModeChoice::Auto.candidates(),
            &[Mode::Tc, Mode::Native, Mode::Skb]
        );
        for &mode in Mode::ALL {
            assert!(ModeChoice::Auto.accepts(mode));
        }
        assert!(ModeChoice::Tc.accepts(Mode::Tc));
        assert!(!ModeChoice::Tc.accepts(Mode::Skb));
    }

    #[test]
    fn only_native_redirects_depend_on_the_target() {
        for &to in Mode::ALL {
            for takes in [None, Some(true), Some(false)] {
                assert_eq!(reach(Mode::Tc, to, takes), Reach::Yes);
                assert_eq!(reach(Mode::Skb, to, takes), Reach::Yes);
            }
        }
        // The kernel's word first; the drivers' rule where it says nothing.
        assert_eq!(reach(Mode::Native, Mode::Tc, Some(true)), Reach::Yes);
        assert_eq!(reach(Mode::Native, Mode::Native, Some(false)), Reach::No);
        assert_eq!(reach(Mode::Native, Mode::Native, None), Reach::Yes);
        assert_eq!(reach(Mode::Native, Mode::Skb, None), Reach::Unlikely);
    }

    #[test]
    fn auto_reasons_do_not_repeat_the_mode() {
        // `--mode auto: skb (…)`: the name is printed before the reason.
        for &mode in Mode::ALL {
            let mut words = mode.auto_reason().split(|c: char| !c.is_alphanumeric());
            assert!(words.all(|w| w != mode.name()), "{mode}");
        }
    }

    #[test]
    fn modes_that_break_tcp_say_so() {
        assert!(Mode::Native.caveat(Some("veth"), false).is_some());
        assert!(Mode::Native.caveat(None, false).is_none());
        assert!(Mode::Skb.caveat(Some("veth"), false).is_some());
        assert!(Mode::Skb.caveat(None, false).is_none());
        assert!(Mode::Skb.caveat(None, true).is_some());
        assert!(Mode::Tc.caveat(Some("veth"), true).is_none());
    }
}
