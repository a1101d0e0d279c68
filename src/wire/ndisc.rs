//! Unsolicited Neighbor Advertisements: what a new IPv6 master sends
//! instead of a gratuitous ARP, so that hosts and switches move the virtual
//! address to its MAC address.
//!
//! RFC 5798 §6.4.1 and §6.4.2: for each IPv6 address of the virtual router,
//! "an unsolicited ND Neighbor Advertisement with the Router Flag (R) set,
//! the Solicited Flag (S) unset, the Override flag (O) set, the target
//! address set to the IPv6 address of the virtual router, and the target
//! link-layer address set to the virtual router MAC address". RFC 4861
//! §7.2.6 sends it to the all-nodes group ff02::1, §7.1.2 requires hop limit
//! 255, §4.4 gives the message:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|S|O|                     Reserved                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Target Address (16 bytes)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Type = 2    |  Length = 1   |  Target Link-Layer Address    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                         (6 bytes)                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The checksum is ICMPv6's (RFC 4443 §2.3): over the IPv6 pseudo-header
//! (RFC 8200 §8.1, next header 58) and the message.
//!
//! keepalived 2.2.7 differs in two points (see docs/election.md): it sets R
//! only when IPv6 forwarding is on for the interface, and without
//! `use_vmac` it announces the interface's own MAC, as it (and we) do for
//! ARP. [`NeighborAdvertisement`] carries both as fields, so either form is
//! one value; [`NeighborAdvertisement::unsolicited`] is the RFC's.

use std::net::Ipv6Addr;

use thiserror::Error;

use super::checksum;
use super::ipv6::{self, ALL_NODES, NEXT_HEADER_ICMPV6};

/// ICMPv6 type of a Neighbor Advertisement (RFC 4861 §4.4).
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The only hop limit Neighbor Discovery is sent and accepted with (RFC
/// 4861 §7.1.2).
pub const HOP_LIMIT: u8 = 255;
/// Option type Target Link-Layer Address (RFC 4861 §4.6.1).
pub const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;
/// Length of the message we build: 24 bytes of NA, 8 of TLLA option.
pub const MESSAGE_LEN: usize = field::OPTIONS + 8;
/// Length of the Ethernet frame [`NeighborAdvertisement::emit_frame`]
/// builds: Ethernet II header, IPv6 header, message.
pub const FRAME_LEN: usize = ETHERNET_HEADER_LEN + ipv6::HEADER_LEN + MESSAGE_LEN;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The Ethernet address of ff02::1 (RFC 2464 §7: 33-33 then the group's
/// last 32 bits).
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
const ETHERNET_HEADER_LEN: usize = 14;

const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

mod field {
    pub type Field = std::ops::Range<usize>;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// R, S, O in the top 3 bits, then 29 reserved bits.
    pub const FLAGS_RESERVED: Field = 4..8;
    pub const TARGET: Field = 8..24;
    pub const OPTIONS: usize = 24;
}

/// Why bytes are not an unsolicited-style Neighbor Advertisement, or why
/// one cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// Shorter than the 24-byte message without options (RFC 4861 §7.1.2);
    /// holds the length.
    #[error("Neighbor Advertisement truncated: {0} bytes, the message needs 24")]
    Truncated(usize),
    /// Not ICMPv6 type 136 code 0 (RFC 4861 §4.4, §7.1.2); holds both.
    #[error("ICMPv6 type {0} code {1}, expected a Neighbor Advertisement (136, 0)")]
    NotNeighborAdvertisement(u8, u8),
    /// The ICMPv6 checksum is wrong (RFC 4443 §2.3).
    #[error("ICMPv6 checksum does not match the IPv6 pseudo-header and message")]
    BadChecksum,
    /// An option of length 0 or running past the end (RFC 4861 §4.6,
    /// §7.1.2: the whole message is then invalid).
    #[error("Neighbor Discovery option at offset {0} has a bad length")]
    BadOption(usize),
    /// The target is a multicast address (RFC 4861 §7.1.2); holds it.
    #[error("Neighbor Advertisement target {0} is multicast")]
    MulticastTarget(Ipv6Addr),
    /// Solicited set on an advertisement sent to a multicast group (RFC
    /// 4861 §7.1.2).
    #[error("Neighbor Advertisement to a multicast group with the Solicited flag set")]
    SolicitedToMulticast,
    /// No Target Link-Layer Address option for Ethernet (type 2, length 1):
    /// valid Neighbor Discovery, but it announces no MAC address.
    #[error("Neighbor Advertisement without an Ethernet Target Link-Layer Address option")]
    NoTargetLinkLayerAddress,
    /// Sending: the output buffer is too short; holds what is needed.
    #[error("buffer of {available} bytes, the advertisement needs {needed}")]
    BufferTooSmall {
        /// Bytes the message or frame takes.
        needed: usize,
        /// Bytes the caller's buffer has.
        available: usize,
    },
}

/// A view over an ICMPv6 Neighbor Advertisement (the IPv6 payload).
/// [`Packet::new_checked`] guarantees the 24-byte fixed part is present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors then return zeros for
    /// fields beyond its end instead of panicking.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks that the fixed part is present and the type and code are a
    /// Neighbor Advertisement's.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Packet::new_unchecked(buffer);
        let len = packet.bytes().len();
        if len < field::OPTIONS {
            return Err(Error::Truncated(len));
        }
        if packet.msg_type() != TYPE_NEIGHBOR_ADVERTISEMENT || packet.code() != 0 {
            return Err(Error::NotNeighborAdvertisement(
                packet.msg_type(),
                packet.code(),
            ));
        }
        Ok(packet)
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn byte(&self, index: usize) -> u8 {
        self.bytes().get(index).copied().unwrap_or(0)
    }

    fn flags_word(&self) -> u32 {
        match self.bytes().get(field::FLAGS_RESERVED) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    /// ICMPv6 Type, byte 0: 136.
    pub fn msg_type(&self) -> u8 {
        self.byte(field::TYPE)
    }

    /// ICMPv6 Code, byte 1: 0.
    pub fn code(&self) -> u8 {
        self.byte(field::CODE)
    }

    /// The Checksum field, bytes 2..4, as sent.
    pub fn checksum(&self) -> u16 {
        match self.bytes().get(field::CHECKSUM) {
            Some(&[high, low]) => u16::from_be_bytes([high, low]),
            _ => 0,
        }
    }

    /// R: the sender is a router (RFC 4861 §4.4).
    pub fn router_flag(&self) -> bool {
        self.byte(field::FLAGS_RESERVED.start) & FLAG_ROUTER != 0
    }

    /// S: an answer to a Neighbor Solicitation.
    pub fn solicited_flag(&self) -> bool {
        self.byte(field::FLAGS_RESERVED.start) & FLAG_SOLICITED != 0
    }

    /// O: replace a cached link-layer address.
    pub fn override_flag(&self) -> bool {
        self.byte(field::FLAGS_RESERVED.start) & FLAG_OVERRIDE != 0
    }

    /// The 29 reserved bits (sent as 0, ignored on receive).
    pub fn reserved(&self) -> u32 {
        self.flags_word() & 0x1fff_ffff
    }

    /// Target Address, bytes 8..24.
    pub fn target_addr(&self) -> Ipv6Addr {
        self.bytes()
            .get(field::TARGET)
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .map_or(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from)
    }

    /// The option bytes after the fixed part.
    pub fn options(&self) -> &[u8] {
        self.bytes().get(field::OPTIONS..).unwrap_or(&[])
    }

    /// Walks the options (RFC 4861 §4.6: type, length in units of 8 bytes)
    /// and returns the Ethernet Target Link-Layer Address if there is one;
    /// an option of length 0 or past the end is an error.
    pub fn target_link_layer_addr(&self) -> Result<Option<[u8; 6]>, Error> {
        let mut found = None;
        let mut rest = self.options();
        let mut offset = field::OPTIONS;
        while !rest.is_empty() {
            let (kind, units) = match rest {
                [kind, units, ..] => (*kind, usize::from(*units)),
                _ => return Err(Error::BadOption(offset)),
            };
            let len = units * 8;
            let Some(option) = rest.get(..len).filter(|_| len > 0) else {
                return Err(Error::BadOption(offset));
            };
            if kind == OPTION_TARGET_LINK_LAYER_ADDRESS && found.is_none() {
                found = option
                    .get(2..8)
                    .filter(|_| units == 1)
                    .and_then(|mac| <[u8; 6]>::try_from(mac).ok());
            }
            rest = rest.get(len..).unwrap_or(&[]);
            offset += len;
        }
        Ok(found)
    }
}

/// A Neighbor Advertisement announcing `target` at `target_mac`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    /// The announced address: a virtual IPv6 address.
    pub target: Ipv6Addr,
    /// The MAC the address now lives at, sent as Target Link-Layer Address.
    pub target_mac: [u8; 6],
    /// R. RFC 5798 §6.4.2 sets it; keepalived only with forwarding on.
    pub router: bool,
    /// S. Clear in an unsolicited advertisement (RFC 4861 §7.2.6).
    pub solicited: bool,
    /// O. Set, so caches holding the old master's MAC are overwritten.
    pub override_flag: bool,
}

impl NeighborAdvertisement {
    /// The advertisement RFC 5798 §6.4.2 prescribes for `target` at
    /// `target_mac` (the virtual router MAC, [`super::vrrp6::virtual_mac`],
    /// when the interface answers on it): R and O set, S clear.
    pub fn unsolicited(target: Ipv6Addr, target_mac: [u8; 6]) -> Self {
        NeighborAdvertisement {
            target,
            target_mac,
            router: true,
            solicited: false,
            override_flag: true,
        }
    }

    /// Recognises a Neighbor Advertisement received from `src` to `dst`
    /// (hop limit 255 is the caller's check, as for VRRP) that carries an
    /// Ethernet Target Link-Layer Address, after RFC 4861 §7.1.2's checks:
    /// checksum, type and code, length, options, target not multicast, S
    /// clear when sent to a group.
    pub fn parse(message: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<Self, Error> {
        let packet = Packet::new_checked(message)?;
        if checksum::ipv6_checksum(message, src, dst, NEXT_HEADER_ICMPV6) != 0 {
            return Err(Error::BadChecksum);
        }
        let target_mac = packet
            .target_link_layer_addr()?
            .ok_or(Error::NoTargetLinkLayerAddress)?;
        let target = packet.target_addr();
        if target.is_multicast() {
            return Err(Error::MulticastTarget(target));
        }
        if dst.is_multicast() && packet.solicited_flag() {
            return Err(Error::SolicitedToMulticast);
        }
        Ok(NeighborAdvertisement {
            target,
            target_mac,
            router: packet.router_flag(),
            solicited: packet.solicited_flag(),
            override_flag: packet.override_flag(),
        })
    }

    /// Writes the ICMPv6 message (for a raw ICMPv6 socket) into the start
    /// of `buf`, with the checksum for `src` -> `dst`; returns its length,
    /// [`MESSAGE_LEN`].
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize, Error> {
        let available = buf.len();
        let out = buf.get_mut(..MESSAGE_LEN).ok_or(Error::BufferTooSmall {
            needed: MESSAGE_LEN,
            available,
        })?;
        out.fill(0);
        out[field::TYPE] = TYPE_NEIGHBOR_ADVERTISEMENT;
        out[field::CODE] = 0;
        let mut flags = 0;
        for (set, bit) in [
            (self.router, FLAG_ROUTER),
            (self.solicited, FLAG_SOLICITED),
            (self.override_flag, FLAG_OVERRIDE),
        ] {
            if set {
                flags |= bit;
            }
        }
        out[field::FLAGS_RESERVED.start] = flags;
        out[field::TARGET].copy_from_slice(&self.target.octets());
        let option = field::OPTIONS;
        out[option] = OPTION_TARGET_LINK_LAYER_ADDRESS;
        out[option + 1] = 1;
        out[option + 2..option + 8].copy_from_slice(&self.target_mac);
        let sum = checksum::ipv6_checksum(out, src, dst, NEXT_HEADER_ICMPV6);
        out[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        Ok(MESSAGE_LEN)
    }

    /// Writes the whole Ethernet frame (for a packet socket or BPF, as the
    /// gratuitous ARP is sent): from `src_mac` to 33:33:00:00:00:01, IPv6
    /// from `src` to ff02::1 with hop limit 255, then the message. Returns
    /// its length, [`FRAME_LEN`].
    pub fn emit_frame(
        &self,
        buf: &mut [u8],
        src_mac: [u8; 6],
        src: Ipv6Addr,
    ) -> Result<usize, Error> {
        let available = buf.len();
        let frame = buf.get_mut(..FRAME_LEN).ok_or(Error::BufferTooSmall {
            needed: FRAME_LEN,
            available,
        })?;
        let (ethernet, rest) = frame.split_at_mut(ETHERNET_HEADER_LEN);
        ethernet[0..6].copy_from_slice(&ALL_NODES_MAC);
        ethernet[6..12].copy_from_slice(&src_mac);
        ethernet[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let (ip, message) = rest.split_at_mut(ipv6::HEADER_LEN);
        let too_small = |_| Error::BufferTooSmall {
            needed: FRAME_LEN,
            available,
        };
        ipv6::emit_header(
            ip,
            src,
            ALL_NODES,
            NEXT_HEADER_ICMPV6,
            HOP_LIMIT,
            MESSAGE_LEN,
        )
        .map_err(too_small)?;
        self.emit(message, src, ALL_NODES)?;
        Ok(FRAME_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::vrrp6::virtual_mac;

    fn addr(text: &str) -> Ipv6Addr {
        text.parse().expect("test address")
    }

    const INTERFACE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    /// keepalived 2.2.7's NA for fe80::51 (tests/vectors/
    /// keepalived-2.2.7-ipv6.hex, second line, after the IPv6 header):
    /// sent from fe80::51 to ff02::1, O set, R and S clear (forwarding off),
    /// TLLA the interface MAC 02:00:00:00:00:01, checksum 0x56fb.
    const KEEPALIVED: [u8; 32] = [
        0x88, 0x00, 0x56, 0xfb, 0x20, 0x00, 0x00, 0x00, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0x51, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    fn keepalived_form() -> NeighborAdvertisement {
        NeighborAdvertisement {
            router: false,
            ..NeighborAdvertisement::unsolicited(addr("fe80::51"), INTERFACE_MAC)
        }
    }

    #[test]
    fn deconstruct_keepalived_advertisement() {
        let packet = Packet::new_checked(&KEEPALIVED[..]).expect("valid");
        assert_eq!((packet.msg_type(), packet.code()), (136, 0));
        assert_eq!(packet.checksum(), 0x56fb);
        assert!(!packet.router_flag() && !packet.solicited_flag() && packet.override_flag());
        assert_eq!(packet.reserved(), 0);
        assert_eq!(packet.target_addr(), addr("fe80::51"));
        assert_eq!(packet.target_link_layer_addr(), Ok(Some(INTERFACE_MAC)));
        assert_eq!(
            NeighborAdvertisement::parse(&KEEPALIVED, addr("fe80::51"), ALL_NODES),
            Ok(keepalived_form())
        );
    }

    #[test]
    fn construct_matches_keepalived_byte_for_byte() {
        let mut buf = [0xaau8; 40];
        let len = keepalived_form()
            .emit(&mut buf, addr("fe80::51"), ALL_NODES)
            .expect("fits");
        assert_eq!(&buf[..len], &KEEPALIVED);
    }

    #[test]
    fn the_rfc_form_sets_router_and_override_and_names_the_virtual_mac() {
        let vip = addr("2001:db8:99::1");
        let na = NeighborAdvertisement::unsolicited(vip, virtual_mac(51));
        let mut buf = [0u8; MESSAGE_LEN];
        na.emit(&mut buf, vip, ALL_NODES).expect("fits");
        // RFC 4861 §4.4 layout: type, code, checksum, R|O = 0xa0, target,
        // option 2 of one 8-byte unit, 00-00-5e-00-02-33.
        assert_eq!(&buf[..2], &[136, 0]);
        assert_eq!(&buf[4..8], &[0xa0, 0, 0, 0]);
        assert_eq!(&buf[8..24], &vip.octets());
        assert_eq!(&buf[24..32], &[2, 1, 0x00, 0x00, 0x5e, 0x00, 0x02, 0x33]);
        assert_eq!(checksum::ipv6_checksum(&buf, vip, ALL_NODES, 58), 0);
        assert_eq!(NeighborAdvertisement::parse(&buf, vip, ALL_NODES), Ok(na));
    }

    #[test]
    fn the_frame_is_ethernet_ipv6_and_the_message() {
        let vip = addr("2001:db8:99::1");
        let na = NeighborAdvertisement::unsolicited(vip, virtual_mac(51));
        let mut frame = [0u8; FRAME_LEN];
        assert_eq!(na.emit_frame(&mut frame, virtual_mac(51), vip), Ok(86));
        assert_eq!(&frame[0..6], &ALL_NODES_MAC);
        assert_eq!(&frame[6..12], &virtual_mac(51));
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
        let ip = ipv6::Header::parse(&frame[14..]).expect("IPv6 header");
        assert_eq!((ip.src, ip.dst), (vip, ALL_NODES));
        assert_eq!((ip.next_header, ip.hop_limit), (58, 255));
        assert_eq!(
            NeighborAdvertisement::parse(ip.payload, ip.src, ip.dst),
            Ok(na)
        );
        assert_eq!(
            na.emit_frame(&mut frame[..85], virtual_mac(51), vip),
            Err(Error::BufferTooSmall {
                needed: 86,
                available: 85
            })
        );
    }

    #[test]
    fn every_receive_error_variant() {
        let src = addr("fe80::51");
        let parse = |bytes: &[u8]| NeighborAdvertisement::parse(bytes, src, ALL_NODES);
        assert_eq!(parse(&KEEPALIVED[..23]), Err(Error::Truncated(23)));
        let resum = |bytes: &mut [u8], dst: Ipv6Addr| {
            bytes[2..4].fill(0);
            let sum = checksum::ipv6_checksum(bytes, src, dst, 58);
            bytes[2..4].copy_from_slice(&sum.to_be_bytes());
        };
        let mut solicitation = KEEPALIVED;
        solicitation[0] = 135;
        assert_eq!(
            parse(&solicitation),
            Err(Error::NotNeighborAdvertisement(135, 0))
        );
        let mut corrupt = KEEPALIVED;
        corrupt[31] ^= 1;
        assert_eq!(parse(&corrupt), Err(Error::BadChecksum));
        let mut zero_option = KEEPALIVED;
        zero_option[25] = 0;
        resum(&mut zero_option, ALL_NODES);
        assert_eq!(parse(&zero_option), Err(Error::BadOption(24)));
        let mut long_option = KEEPALIVED;
        long_option[25] = 2;
        resum(&mut long_option, ALL_NODES);
        assert_eq!(parse(&long_option), Err(Error::BadOption(24)));
        let mut multicast = KEEPALIVED;
        multicast[8] = 0xff;
        resum(&mut multicast, ALL_NODES);
        assert!(matches!(parse(&multicast), Err(Error::MulticastTarget(_))));
        let mut solicited = KEEPALIVED;
        solicited[4] |= FLAG_SOLICITED;
        resum(&mut solicited, ALL_NODES);
        assert_eq!(parse(&solicited), Err(Error::SolicitedToMulticast));
        // A solicited answer to a unicast address is fine.
        let peer = addr("fe80::ff:fe00:2");
        resum(&mut solicited, peer);
        assert!(NeighborAdvertisement::parse(&solicited, src, peer).is_ok());
        let mut bare = KEEPALIVED[..24].to_vec();
        resum(&mut bare, ALL_NODES);
        assert_eq!(parse(&bare), Err(Error::NoTargetLinkLayerAddress));
        assert_eq!(
            keepalived_form().emit(&mut [0u8; 31], src, ALL_NODES),
            Err(Error::BufferTooSmall {
                needed: 32,
                available: 31
            })
        );
    }

    #[test]
    fn truncation_at_every_length_is_an_error_not_a_panic() {
        for len in 0..KEEPALIVED.len() {
            let cut = &KEEPALIVED[..len];
            assert!(
                NeighborAdvertisement::parse(cut, addr("fe80::51"), ALL_NODES).is_err(),
                "len {len}"
            );
            let view = Packet::new_unchecked(cut);
            let _ = (view.checksum(), view.router_flag(), view.reserved());
            let _ = (view.target_addr(), view.target_link_layer_addr());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        #[test]
        fn random_bytes_never_panic(
            mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=64),
            looks_valid: bool,
        ) {
            if looks_valid && bytes.len() >= 2 {
                bytes[0] = TYPE_NEIGHBOR_ADVERTISEMENT;
                bytes[1] = 0;
            }
            let _ = NeighborAdvertisement::parse(&bytes, addr("fe80::51"), ALL_NODES);
            let view = Packet::new_unchecked(&bytes[..]);
            let _ = view.target_link_layer_addr();
        }

        #[test]
        fn emit_parse_round_trip(
            target in proptest::prelude::any::<u128>(),
            target_mac: [u8; 6],
            router: bool,
            override_flag: bool,
        ) {
            let target = Ipv6Addr::from(target);
            proptest::prop_assume!(!target.is_multicast());
            let na = NeighborAdvertisement {
                target,
                target_mac,
                router,
                solicited: false,
                override_flag,
            };
            let mut buf = [0u8; MESSAGE_LEN];
            na.emit(&mut buf, target, ALL_NODES).expect("fits");
            proptest::prop_assert_eq!(NeighborAdvertisement::parse(&buf, target, ALL_NODES), Ok(na));
        }
    }
}
