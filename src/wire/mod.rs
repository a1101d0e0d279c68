//! Packet codecs: views over byte slices and parsed values. Pure functions,
//! no allocation on the receive path, every malformed input a typed error.

pub mod advert_auth;
pub mod arp;
pub mod checksum;
pub mod fields;
pub mod heartbeat;
pub mod ipv4;
pub mod ipv6;
pub mod ndisc;
pub mod vrrp;
pub mod vrrp6;

pub use fields::{Centis, VrrpState};

/// Which VRRPv3 checksum form to send (RFC 5798 §5.2.8). Both exist in the
/// field: keepalived and FRR include the IPv4 pseudo-header by default, some
/// vendors and readings of RFC 9568 leave it out. On receive either is
/// accepted and the form seen is recorded.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumMode {
    /// Checksum over the IPv4 pseudo-header (src, dst, zero, protocol 112,
    /// length) and the message, as keepalived and FRR send by default.
    #[default]
    PseudoHeader,
    /// Checksum over the VRRP message alone, as Cisco and some readings of
    /// RFC 9568 send.
    NoPseudoHeader,
}

impl ChecksumMode {
    /// The configuration spelling: `"pseudo-header"` or `"no-pseudo-header"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumMode::PseudoHeader => "pseudo-header",
            ChecksumMode::NoPseudoHeader => "no-pseudo-header",
        }
    }
}
