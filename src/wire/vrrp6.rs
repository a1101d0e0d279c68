//! VRRPv3 advertisements for IPv6 (RFC 5798 §5, RFC 9568 §5).
//!
//! The 8-byte header is the IPv4 one ([`super::vrrp`], whose view reads it
//! here too); then come Count IPv6 addresses of 16 bytes each (§5.2.9):
//!
//! ```text
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! |                  IPv6 Address 1 (16 bytes)                    |
//! |                              ...                              |
//! ```
//!
//! What differs from IPv4:
//! - sent to ff02::12 (§5.1.2.2) with hop limit 255 (§5.1.2.3) from the
//!   interface's link-local address (§5.1.2.1), next header 112 (§5.1.2.4);
//! - the checksum always includes the IPv6 pseudo-header (§5.2.8, RFC 8200
//!   §8.1): there is no second form to accept, unlike IPv4's
//!   [`super::ChecksumMode`];
//! - the first address "MUST be the IPv6 link-local address associated
//!   with the virtual router" (§5.2.9). [`Ipv6Advertisement::emit`] refuses
//!   anything else; [`parse`] accepts it (§7.1 does not drop on it) and
//!   leaves the decision to admission.
//!
//! A raw IPv6 socket delivers the VRRP message without the IP header, so
//! [`parse`] takes the source and destination the socket reported
//! ([`super::ipv6::Header`]); the hop limit check is admission's, with
//! [`HOP_LIMIT`].

use std::net::Ipv6Addr;

use thiserror::Error;

use super::{checksum, vrrp};
use crate::wire::Centis;

pub use super::vrrp::{PROTOCOL, TYPE_ADVERTISEMENT, VERSION};

/// The IPv6 multicast group adverts are sent to (RFC 5798 §5.1.2.2).
pub const MULTICAST_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The only hop limit a VRRP packet may be sent or accepted with (§5.1.2.3,
/// §7.1).
pub const HOP_LIMIT: u8 = 255;
/// Length of the fixed part, before the addresses (the same as IPv4's).
pub const HEADER_LEN: usize = vrrp::HEADER_LEN;
/// Length of one IPv6 address.
pub const ADDRESS_LEN: usize = 16;
/// Offset of the 16-bit checksum (§5.2.8), for `IPV6_CHECKSUM`.
pub const CHECKSUM_OFFSET: usize = 6;

/// The virtual router MAC address of an IPv6 virtual router,
/// 00-00-5E-00-02-{VRID} (RFC 5798 §7.3; IPv4's is 00-00-5E-00-01-{VRID}).
pub const fn virtual_mac(vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x02, vrid]
}

/// Why bytes are not a VRRPv3 IPv6 advertisement, or why one cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// Shorter than the 8-byte fixed header.
    #[error("VRRP message truncated: {len} bytes, the fixed header needs {HEADER_LEN}")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The Version nibble is not 3 (§5.2.1); holds the version seen.
    #[error("VRRP version {0}, expected 3")]
    BadVersion(u8),
    /// The Type nibble is not 1 = ADVERTISEMENT (§5.2.2); holds the type seen.
    #[error("VRRP type {0}, expected 1 (ADVERTISEMENT)")]
    BadType(u8),
    /// Count IPvX Addr is 0; §5.2.5 requires at least one address.
    #[error("VRRP advertisement with no address (Count IPvX Addr is 0)")]
    NoAddresses,
    /// The length is not exactly the fixed header plus Count × 16 bytes.
    #[error("VRRP IPv6 message of {actual} bytes, its address count says {expected}")]
    BadLength {
        /// Bytes the announced address count implies ([`message_len`]).
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// The checksum over the IPv6 pseudo-header and the message is wrong
    /// (§5.2.8).
    #[error("VRRP checksum does not match the IPv6 pseudo-header and message")]
    BadChecksum,
    /// Sending: the output buffer cannot hold the advertisement.
    #[error("buffer of {available} bytes, the advertisement needs {needed}")]
    BufferTooSmall {
        /// Bytes the advertisement takes ([`Ipv6Advertisement::buffer_len`]).
        needed: usize,
        /// Bytes the caller's buffer has.
        available: usize,
    },
    /// Sending: 0 or more than 255 addresses (§5.2.5); holds the number given.
    #[error("{0} addresses, an advertisement carries 1 to 255")]
    BadAddressCount(usize),
    /// Sending: an interval of 0 or beyond the 12-bit field (§5.2.7), in
    /// centiseconds.
    #[error("advertisement interval {0} cs, must be 1..=4095")]
    BadInterval(u16),
    /// Sending: the first address is not link-local (fe80::/10), which
    /// §5.2.9 requires; holds it.
    #[error("first virtual address {0} is not link-local (RFC 5798 §5.2.9)")]
    FirstNotLinkLocal(Ipv6Addr),
    /// Sending: the source is not link-local, which §5.1.2.1 requires;
    /// holds it.
    #[error("source address {0} is not link-local (RFC 5798 §5.1.2.1)")]
    SourceNotLinkLocal(Ipv6Addr),
}

/// The layout checks are IPv4's ([`vrrp::check_layout`]); their error is
/// the same, said of an IPv6 message.
impl From<vrrp::Error> for Error {
    fn from(error: vrrp::Error) -> Self {
        match error {
            vrrp::Error::Truncated { len } => Error::Truncated { len },
            vrrp::Error::BadVersion(version) => Error::BadVersion(version),
            vrrp::Error::BadType(kind) => Error::BadType(kind),
            vrrp::Error::NoAddresses => Error::NoAddresses,
            vrrp::Error::BadLength { expected, actual } => Error::BadLength { expected, actual },
            vrrp::Error::BadChecksum => Error::BadChecksum,
            vrrp::Error::BufferTooSmall { needed, available } => {
                Error::BufferTooSmall { needed, available }
            }
            vrrp::Error::BadAddressCount(count) => Error::BadAddressCount(count),
            vrrp::Error::BadInterval(interval) => Error::BadInterval(interval),
        }
    }
}

/// The length of an advertisement carrying `count` IPv6 addresses.
pub const fn message_len(count: u8) -> usize {
    HEADER_LEN + ADDRESS_LEN * count as usize
}

/// Whether `address` is a link-local unicast address, fe80::/10 (RFC 4291
/// §2.5.6): what §5.1.2.1 requires of the source and §5.2.9 of the first
/// address.
pub fn is_link_local(address: Ipv6Addr) -> bool {
    address.is_unicast_link_local()
}

/// A view over a VRRP message carrying IPv6 addresses (the IPv6 payload).
/// [`Packet::new_checked`] guarantees the fixed header and the announced
/// addresses are in the buffer; [`parse`] additionally checks the checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors then return 0 (or no
    /// addresses) for fields beyond its end instead of panicking.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks version and type (§7.1's order), a non-zero count, and that
    /// the length is exactly the fixed header plus Count × 16 bytes.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    fn check(&self) -> Result<(), Error> {
        vrrp::check_layout(self.bytes(), ADDRESS_LEN).map_err(Error::from)
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The header fields are laid out as for IPv4; its view reads them.
    fn header(&self) -> vrrp::Packet<&[u8]> {
        vrrp::Packet::new_unchecked(self.bytes())
    }

    /// Version, the high nibble of byte 0 (§5.2.1); 3 for VRRPv3.
    pub fn version(&self) -> u8 {
        self.header().version()
    }

    /// Type, the low nibble of byte 0 (§5.2.2); 1 = ADVERTISEMENT.
    pub fn msg_type(&self) -> u8 {
        self.header().msg_type()
    }

    /// Virtual Rtr ID, byte 1 (§5.2.3). An IPv6 virtual router's VRID is its
    /// own: the same number over IPv4 is another virtual router (§5.2.3).
    pub fn vrid(&self) -> u8 {
        self.header().vrid()
    }

    /// Priority, byte 2 (§5.2.4): 255 = address owner, 0 = the master resigns.
    pub fn priority(&self) -> u8 {
        self.header().priority()
    }

    /// Count IPvX Addr, as announced (§5.2.5).
    pub fn count(&self) -> u8 {
        self.header().count()
    }

    /// The 4 reserved bits (§5.2.6: sent as 0, ignored on receive).
    pub fn reserved(&self) -> u8 {
        self.header().reserved()
    }

    /// Max Adver Int (§5.2.7), in centiseconds.
    pub fn max_advert_interval(&self) -> Centis {
        self.header().max_advert_interval()
    }

    /// The Checksum field, bytes 6..8, as sent (§5.2.8).
    pub fn checksum(&self) -> u16 {
        self.header().checksum()
    }

    /// The addresses present in the buffer (at most Count of them).
    pub fn addresses(&self) -> Addresses<'_> {
        let announced = usize::from(self.count()) * ADDRESS_LEN;
        let area = self.bytes().get(HEADER_LEN..).unwrap_or(&[]);
        let area = area.get(..announced).unwrap_or(area);
        Addresses {
            chunks: area.chunks_exact(ADDRESS_LEN),
        }
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes()
    }

    /// Gives the wrapped buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn header_mut(&mut self) -> vrrp::Packet<&mut [u8]> {
        vrrp::Packet::new_unchecked(self.buffer.as_mut())
    }

    /// Writes byte 0: `version` in the high nibble, `msg_type` in the low one.
    pub fn set_version_and_type(&mut self, version: u8, msg_type: u8) {
        self.header_mut().set_version_and_type(version, msg_type);
    }

    /// Writes the Virtual Rtr ID (byte 1).
    pub fn set_vrid(&mut self, vrid: u8) {
        self.header_mut().set_vrid(vrid);
    }

    /// Writes the Priority (byte 2).
    pub fn set_priority(&mut self, priority: u8) {
        self.header_mut().set_priority(priority);
    }

    /// Writes Count IPvX Addr (byte 3).
    pub fn set_count(&mut self, count: u8) {
        self.header_mut().set_count(count);
    }

    /// Sets Max Adver Int and clears the reserved bits (§5.2.6).
    pub fn set_max_advert_interval(&mut self, interval: Centis) {
        self.header_mut().set_max_advert_interval(interval);
    }

    /// Writes the Checksum field as given; [`Packet::fill_checksum`] computes it.
    pub fn set_checksum(&mut self, value: u16) {
        self.header_mut().set_checksum(value);
    }

    /// Writes the `index`th address; out-of-range indices are ignored.
    pub fn set_address(&mut self, index: usize, address: Ipv6Addr) {
        let Some(start) = index
            .checked_mul(ADDRESS_LEN)
            .and_then(|offset| offset.checked_add(HEADER_LEN))
        else {
            return;
        };
        if let Some(slot) = self
            .buffer
            .as_mut()
            .get_mut(start..start.saturating_add(ADDRESS_LEN))
        {
            slot.copy_from_slice(&address.octets());
        }
    }

    /// Computes and stores the checksum over the IPv6 pseudo-header for
    /// `src` -> `dst` and the message (§5.2.8).
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let sum = checksum::ipv6_checksum(self.as_bytes(), src, dst, PROTOCOL);
        self.set_checksum(sum);
    }
}

/// Iterator over the IPv6 addresses of a [`Packet`].
#[derive(Clone, Debug)]
pub struct Addresses<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for Addresses<'_> {
    type Item = Ipv6Addr;

    fn next(&mut self) -> Option<Ipv6Addr> {
        let chunk = self.chunks.next()?;
        // chunks_exact yields only 16-byte chunks, so this always converts.
        <[u8; ADDRESS_LEN]>::try_from(chunk)
            .ok()
            .map(Ipv6Addr::from)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Addresses<'_> {}

/// Validates a received VRRP message (the payload of an IPv6 datagram from
/// `src` to `dst`, as the socket reported them) in the order of RFC 5798
/// §7.1 — version, completeness, checksum — and returns the view.
pub fn parse(vrrp: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<Packet<&[u8]>, Error> {
    let packet = Packet::new_checked(vrrp)?;
    if checksum::ipv6_checksum(vrrp, src, dst, PROTOCOL) != 0 {
        return Err(Error::BadChecksum);
    }
    Ok(packet)
}

/// An IPv6 advertisement to send. The kernel adds the IPv6 header (hop limit
/// 255 through `IPV6_MULTICAST_HOPS`/`IPV6_UNICAST_HOPS`); we write the VRRP
/// message only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Advertisement<'a> {
    /// Virtual Rtr ID, 1..=255 (§5.2.3).
    pub vrid: u8,
    /// 0 = the master resigns (§6.4.3); 255 = address owner.
    pub priority: u8,
    /// Max Adver Int (§5.2.7): 1..=4095 cs between adverts.
    pub max_advert_interval: Centis,
    /// The virtual addresses, 1 to 255, the link-local one first (§5.2.9).
    pub addresses: &'a [Ipv6Addr],
}

impl Ipv6Advertisement<'_> {
    /// Bytes [`Ipv6Advertisement::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + ADDRESS_LEN * self.addresses.len()
    }

    /// Writes the message into the start of `buf` with the checksum for
    /// `src` (our link-local address) -> `dst` (ff02::12 or a unicast peer);
    /// returns its length.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize, Error> {
        let count = u8::try_from(self.addresses.len())
            .ok()
            .filter(|&count| count > 0)
            .ok_or(Error::BadAddressCount(self.addresses.len()))?;
        if let Some(&first) = self.addresses.first() {
            if !is_link_local(first) {
                return Err(Error::FirstNotLinkLocal(first));
            }
        }
        if !is_link_local(src) {
            return Err(Error::SourceNotLinkLocal(src));
        }
        let interval = self.max_advert_interval;
        if interval.0 == 0 || interval > Centis::MAX {
            return Err(Error::BadInterval(interval.0));
        }
        let len = self.buffer_len();
        let available = buf.len();
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall {
            needed: len,
            available,
        })?;
        let mut packet = Packet::new_unchecked(out);
        packet.set_version_and_type(VERSION, TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        packet.set_count(count);
        packet.set_max_advert_interval(interval);
        for (index, &address) in self.addresses.iter().enumerate() {
            packet.set_address(index, address);
        }
        packet.fill_checksum(src, dst);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Ipv6Addr {
        text.parse().expect("test address")
    }

    /// keepalived 2.2.7's IPv6 advert (payload of the first line of
    /// tests/vectors/keepalived-2.2.7-ipv6.hex): vrid 51, priority 150, two
    /// addresses (fe80::51, 2001:db8:99::1), 100 cs, checksum 0x0e12 for
    /// fe80::ff:fe00:1 -> ff02::12.
    const KEEPALIVED: [u8; 40] = [
        0x31, 0x33, 0x96, 0x02, 0x00, 0x64, 0x0e, 0x12, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0x51, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    ];

    fn src() -> Ipv6Addr {
        addr("fe80::ff:fe00:1")
    }

    fn vips() -> [Ipv6Addr; 2] {
        [addr("fe80::51"), addr("2001:db8:99::1")]
    }

    fn advert(addresses: &[Ipv6Addr]) -> Ipv6Advertisement<'_> {
        Ipv6Advertisement {
            vrid: 51,
            priority: 150,
            max_advert_interval: Centis(100),
            addresses,
        }
    }

    #[test]
    fn deconstruct_keepalived_advert() {
        let packet = Packet::new_checked(&KEEPALIVED[..]).expect("valid advert");
        assert_eq!((packet.version(), packet.msg_type()), (3, 1));
        assert_eq!(
            (packet.vrid(), packet.priority(), packet.count()),
            (51, 150, 2)
        );
        assert_eq!(packet.reserved(), 0);
        assert_eq!(packet.max_advert_interval(), Centis(100));
        assert_eq!(packet.checksum(), 0x0e12);
        assert_eq!(packet.addresses().collect::<Vec<_>>(), vips());
        let packet = parse(&KEEPALIVED, src(), MULTICAST_GROUP).expect("checksum verifies");
        assert_eq!(packet.vrid(), 51);
    }

    #[test]
    fn construct_matches_keepalived_byte_for_byte() {
        let mut buf = [0u8; 64];
        let vips = vips();
        let len = advert(&vips)
            .emit(&mut buf, src(), MULTICAST_GROUP)
            .expect("fits");
        assert_eq!(len, 40);
        assert_eq!(&buf[..len], &KEEPALIVED);
    }

    /// Built by hand from RFC 5798 §5.2's layout and RFC 8200 §8.1's
    /// pseudo-header, independently of the encoder: vrid 1, priority 100,
    /// one address fe80::1, Max Adver Int 100 cs, from fe80::2 to ff02::12.
    #[test]
    fn rfc_layout_vector_built_by_hand() {
        let mut message = vec![
            0x31, // version 3, type 1
            0x01, // VRID 1
            0x64, // priority 100
            0x01, // Count IPvX Addr 1
            0x00, 0x64, // rsvd 0, Max Adver Int 100
            0x00, 0x00, // checksum, filled below
        ];
        message.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
        // Pseudo-header: src fe80::2, dst ff02::12, length 24, 0 0 0 112.
        // Sum of 16-bit words, by hand: fe80 + 0002 (src) + ff02 + 0012
        // (dst) + 0018 (length) + 0070 (next header) + 3101 + 6401 + 0064
        // (header) + fe80 + 0001 (address) = 0x3_9205, folded 0x9208,
        // complement 0x6df7.
        message[6..8].copy_from_slice(&0x6df7u16.to_be_bytes());
        let mut buf = [0u8; 24];
        let one = [addr("fe80::1")];
        let sent = Ipv6Advertisement {
            vrid: 1,
            priority: 100,
            max_advert_interval: Centis(100),
            addresses: &one,
        };
        sent.emit(&mut buf, addr("fe80::2"), MULTICAST_GROUP)
            .expect("fits");
        assert_eq!(buf.to_vec(), message);
        assert!(parse(&message, addr("fe80::2"), MULTICAST_GROUP).is_ok());
    }

    #[test]
    fn emit_then_parse_round_trips() {
        let addresses = [
            addr("fe80::51"),
            addr("2001:db8:99::1"),
            addr("2001:db8::7"),
        ];
        let peer = addr("fe80::ff:fe00:2");
        for dst in [MULTICAST_GROUP, peer] {
            let sent = Ipv6Advertisement {
                vrid: 255,
                priority: 0,
                max_advert_interval: Centis::MAX,
                addresses: &addresses,
            };
            let mut buf = vec![0u8; sent.buffer_len()];
            let len = sent.emit(&mut buf, src(), dst).expect("fits");
            assert_eq!(len, message_len(3));
            let packet = parse(&buf, src(), dst).expect("round trip");
            assert_eq!((packet.vrid(), packet.priority()), (255, 0));
            assert_eq!(packet.max_advert_interval(), Centis::MAX);
            assert_eq!(packet.addresses().collect::<Vec<_>>(), addresses);
        }
    }

    #[test]
    fn the_checksum_binds_source_and_destination() {
        assert_eq!(
            parse(&KEEPALIVED, addr("fe80::ff:fe00:2"), MULTICAST_GROUP),
            Err(Error::BadChecksum)
        );
        assert_eq!(
            parse(&KEEPALIVED, src(), addr("ff02::1")),
            Err(Error::BadChecksum)
        );
        // The IPv4 form (no pseudo-header) is not accepted over IPv6.
        let mut plain = KEEPALIVED;
        plain[6..8].fill(0);
        let sum = checksum::internet_checksum(&plain);
        plain[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            parse(&plain, src(), MULTICAST_GROUP),
            Err(Error::BadChecksum)
        );
    }

    #[test]
    fn every_receive_error_variant() {
        let check = |bytes: &[u8]| parse(bytes, src(), MULTICAST_GROUP).map(|_| ());
        assert_eq!(check(&KEEPALIVED[..7]), Err(Error::Truncated { len: 7 }));
        let mut v2 = KEEPALIVED;
        v2[0] = 0x21;
        assert_eq!(check(&v2), Err(Error::BadVersion(2)));
        let mut type2 = KEEPALIVED;
        type2[0] = 0x32;
        assert_eq!(check(&type2), Err(Error::BadType(2)));
        let mut none = KEEPALIVED;
        none[3] = 0;
        assert_eq!(check(&none[..8]), Err(Error::NoAddresses));
        let mut three = KEEPALIVED;
        three[3] = 3;
        assert_eq!(
            check(&three),
            Err(Error::BadLength {
                expected: 56,
                actual: 40
            })
        );
        // Count 10 as an IPv4 advert would be 48 bytes: an IPv4 message is
        // never mistaken for an IPv6 one of the same count.
        let mut trailing = KEEPALIVED.to_vec();
        trailing.extend_from_slice(&[0; 4]);
        assert_eq!(
            check(&trailing),
            Err(Error::BadLength {
                expected: 40,
                actual: 44
            })
        );
        let mut corrupt = KEEPALIVED;
        corrupt[2] = 151;
        assert_eq!(check(&corrupt), Err(Error::BadChecksum));
    }

    #[test]
    fn a_first_address_that_is_not_link_local_is_parsed_but_not_sent() {
        let global_first = [addr("2001:db8:99::1"), addr("fe80::51")];
        let mut buf = [0u8; 40];
        assert_eq!(
            advert(&global_first).emit(&mut buf, src(), MULTICAST_GROUP),
            Err(Error::FirstNotLinkLocal(addr("2001:db8:99::1")))
        );
        // Built by hand: receivers accept it (§7.1 has no such check).
        let mut swapped = KEEPALIVED;
        swapped[8..24].copy_from_slice(&global_first[0].octets());
        swapped[24..40].copy_from_slice(&global_first[1].octets());
        Packet::new_unchecked(&mut swapped[..]).fill_checksum(src(), MULTICAST_GROUP);
        let packet = parse(&swapped, src(), MULTICAST_GROUP).expect("accepted");
        assert_eq!(packet.addresses().collect::<Vec<_>>(), global_first);
    }

    #[test]
    fn every_emit_error_variant() {
        let mut buf = [0u8; 8192];
        let vips = vips();
        assert_eq!(
            advert(&vips).emit(&mut buf[..39], src(), MULTICAST_GROUP),
            Err(Error::BufferTooSmall {
                needed: 40,
                available: 39
            })
        );
        assert_eq!(
            advert(&[]).emit(&mut buf, src(), MULTICAST_GROUP),
            Err(Error::BadAddressCount(0))
        );
        let many = vec![vips[0]; 256];
        assert_eq!(
            advert(&many).emit(&mut buf, src(), MULTICAST_GROUP),
            Err(Error::BadAddressCount(256))
        );
        assert_eq!(
            advert(&vips).emit(&mut buf, addr("2001:db8::1"), MULTICAST_GROUP),
            Err(Error::SourceNotLinkLocal(addr("2001:db8::1")))
        );
        for bad in [0, 4096] {
            let mut a = advert(&vips);
            a.max_advert_interval = Centis(bad);
            assert_eq!(
                a.emit(&mut buf, src(), MULTICAST_GROUP),
                Err(Error::BadInterval(bad))
            );
        }
    }

    #[test]
    fn constants_follow_the_rfc() {
        assert_eq!(MULTICAST_GROUP.to_string(), "ff02::12");
        assert_eq!((HOP_LIMIT, PROTOCOL), (255, 112));
        assert_eq!(virtual_mac(51), [0x00, 0x00, 0x5e, 0x00, 0x02, 0x33]);
        assert!(is_link_local(addr("fe80::1")));
        assert!(is_link_local(addr("febf::1")));
        assert!(!is_link_local(addr("fec0::1")));
        assert!(!is_link_local(addr("2001:db8::1")));
        assert_eq!(CHECKSUM_OFFSET, 6);
    }

    #[test]
    fn the_largest_advert_fits_and_parses() {
        let mut many: Vec<Ipv6Addr> = vec![addr("fe80::51")];
        many.extend((1..255u16).map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)));
        let sent = advert(&many);
        let mut buf = vec![0u8; sent.buffer_len()];
        sent.emit(&mut buf, src(), MULTICAST_GROUP).expect("fits");
        let packet = parse(&buf, src(), MULTICAST_GROUP).expect("valid");
        assert_eq!(packet.addresses().len(), 255);
        assert_eq!(buf.len(), 8 + 255 * 16);
    }

    #[test]
    fn truncation_at_every_length_is_an_error_not_a_panic() {
        for len in 0..KEEPALIVED.len() {
            let cut = &KEEPALIVED[..len];
            assert!(parse(cut, src(), MULTICAST_GROUP).is_err(), "len {len}");
            let view = Packet::new_unchecked(cut);
            let _ = (view.version(), view.vrid(), view.priority(), view.count());
            let _ = (view.max_advert_interval(), view.checksum(), view.reserved());
            assert!(view.addresses().count() <= len.saturating_sub(HEADER_LEN) / ADDRESS_LEN);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Random bytes, half with a valid-looking first byte and a count
        /// that matches their length, so the checksum path is reached.
        #[test]
        fn random_bytes_never_panic(
            mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=72),
            looks_valid: bool,
        ) {
            if looks_valid && bytes.len() > HEADER_LEN {
                bytes[0] = 0x31;
                bytes[3] = u8::try_from((bytes.len() - HEADER_LEN) / ADDRESS_LEN).unwrap_or(0);
            }
            let _ = parse(&bytes, src(), MULTICAST_GROUP);
            let view = Packet::new_unchecked(&bytes[..]);
            let _ = view.addresses().count();
        }

        /// Whatever the fields, an emitted advert parses back to them.
        #[test]
        fn emit_parse_round_trip(
            vrid: u8,
            priority: u8,
            interval in 1u16..=4095,
            globals in proptest::collection::vec(proptest::prelude::any::<u128>(), 0..8),
        ) {
            let mut addresses = vec![addr("fe80::51")];
            addresses.extend(globals.into_iter().map(Ipv6Addr::from));
            let sent = Ipv6Advertisement {
                vrid,
                priority,
                max_advert_interval: Centis(interval),
                addresses: &addresses,
            };
            let mut buf = vec![0u8; sent.buffer_len()];
            sent.emit(&mut buf, src(), MULTICAST_GROUP).expect("fits");
            let packet = parse(&buf, src(), MULTICAST_GROUP).expect("parses");
            proptest::prop_assert_eq!(packet.vrid(), vrid);
            proptest::prop_assert_eq!(packet.priority(), priority);
            proptest::prop_assert_eq!(packet.max_advert_interval(), Centis(interval));
            proptest::prop_assert_eq!(packet.addresses().collect::<Vec<_>>(), addresses);
        }
    }
}
