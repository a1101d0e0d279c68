//! VRRPv3 advertisements for IPv4 (RFC 5798 §5, RFC 9568 §5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                       IPvX Address(es)                        |
//! +                                                               +
//! +                                                               +
//! +                                                               +
//! +                                                               +
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Version 3 (§5.2.1), Type 1 = ADVERTISEMENT, the only type (§5.2.2);
//! VRID 1..=255 (§5.2.3); Priority, 255 = address owner, 0 = the master
//! resigns (§5.2.4); Count IPvX Addr ≥ 1 (§5.2.5); 4 reserved bits sent as
//! zero and ignored on receive (§5.2.6); Max Adver Int, 12 bits, in
//! centiseconds (§5.2.7); Checksum (§5.2.8, see [`super::checksum`]); then
//! Count IPv4 addresses of 4 bytes each (§5.2.9).
//!
//! [`Packet`] is a view over received bytes (no allocation, addresses
//! through an iterator); [`Advertisement`] is the value we send.

use std::net::Ipv4Addr;

use thiserror::Error;

use super::checksum;
use super::ChecksumMode;
use crate::wire::Centis;

/// IP protocol number of VRRP (RFC 5798 §5.1.1.3).
pub const PROTOCOL: u8 = 112;
/// The IPv4 multicast group adverts are sent to (RFC 5798 §5.1.1.2).
pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The only TTL a VRRP packet may be sent or accepted with (§5.1.1.3, §7.1).
pub const TTL: u8 = 255;
/// The protocol version this codec speaks (§5.2.1).
pub const VERSION: u8 = 3;
/// The only message type (§5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Length of the fixed part, before the addresses.
pub const HEADER_LEN: usize = field::ADDRESSES;
/// Length of one IPv4 address.
const ADDRESS_LEN: usize = 4;

mod field {
    pub type Field = std::ops::Range<usize>;

    /// Version (high nibble) and Type (low nibble).
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// 4 reserved bits, then the 12-bit Max Adver Int.
    pub const RSVD_MAX_ADVER_INT: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const ADDRESSES: usize = 8;
}

/// Mask of the 12-bit Max Adver Int inside its 16-bit word.
const MAX_ADVER_INT_MASK: u16 = 0x0fff;

/// Why bytes are not a VRRPv3 advertisement, or why one cannot be built.
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
    /// The length is not exactly the fixed header plus Count × 4 bytes.
    #[error("VRRP message of {actual} bytes, its address count says {expected}")]
    BadLength {
        /// Bytes the announced address count implies ([`message_len`]).
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// The checksum is wrong in both [`ChecksumMode`] forms (§5.2.8).
    #[error("VRRP checksum matches neither the pseudo-header nor the plain form")]
    BadChecksum,
    /// Sending: the output buffer cannot hold the advertisement.
    #[error("buffer of {available} bytes, the advertisement needs {needed}")]
    BufferTooSmall {
        /// Bytes the advertisement takes ([`Advertisement::buffer_len`]).
        needed: usize,
        /// Bytes the caller's buffer has.
        available: usize,
    },
    /// Sending: 0 or more than 255 addresses, which the 8-bit Count cannot
    /// carry (§5.2.5); holds the number given.
    #[error("{0} addresses, an advertisement carries 1 to 255")]
    BadAddressCount(usize),
    /// Sending: an interval of 0 or beyond the 12-bit field (§5.2.7), in
    /// centiseconds.
    #[error("advertisement interval {0} cs, must be 1..=4095")]
    BadInterval(u16),
}

/// The length of an advertisement carrying `count` IPv4 addresses.
pub const fn message_len(count: u8) -> usize {
    HEADER_LEN + ADDRESS_LEN * count as usize
}

/// The checks both families share (RFC 5798 §7.1 checks the version
/// before completeness): the fixed header is there, version 3, type
/// ADVERTISEMENT, at least one address, and the length exactly the header
/// plus Count addresses of `address_len` bytes (4 for IPv4, 16 for IPv6).
/// Exactly: a VRRPv3 advert has nothing after its addresses (VRRPv2's
/// authentication data is gone, §5.2), so extra bytes mean another format,
/// not padding.
pub(super) fn check_layout(bytes: &[u8], address_len: usize) -> Result<(), Error> {
    let len = bytes.len();
    if len < HEADER_LEN {
        return Err(Error::Truncated { len });
    }
    let header = Packet::new_unchecked(bytes);
    if header.version() != VERSION {
        return Err(Error::BadVersion(header.version()));
    }
    if header.msg_type() != TYPE_ADVERTISEMENT {
        return Err(Error::BadType(header.msg_type()));
    }
    if header.count() == 0 {
        return Err(Error::NoAddresses);
    }
    let expected = HEADER_LEN + address_len * usize::from(header.count());
    if len != expected {
        return Err(Error::BadLength {
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// A view over a VRRP message (the IP payload). [`Packet::new_checked`]
/// guarantees the fixed header and the announced addresses are in the
/// buffer; [`parse`] additionally checks version, type and checksum.
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

    /// Checks the version and type (RFC 5798 §7.1 checks the version before
    /// completeness) and that the length is exactly the fixed header plus
    /// Count addresses.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    fn check(&self) -> Result<(), Error> {
        check_layout(self.bytes(), ADDRESS_LEN)
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn byte(&self, index: usize) -> u8 {
        self.bytes().get(index).copied().unwrap_or(0)
    }

    fn word(&self, range: field::Field) -> u16 {
        match self.bytes().get(range) {
            Some(&[high, low]) => u16::from_be_bytes([high, low]),
            _ => 0,
        }
    }

    /// Version, the high nibble of byte 0 (§5.2.1); 3 for VRRPv3.
    pub fn version(&self) -> u8 {
        self.byte(field::VER_TYPE) >> 4
    }

    /// Type, the low nibble of byte 0 (§5.2.2); 1 = ADVERTISEMENT.
    pub fn msg_type(&self) -> u8 {
        self.byte(field::VER_TYPE) & 0x0f
    }

    /// Virtual Rtr ID, byte 1 (§5.2.3): which virtual router this advert is for.
    pub fn vrid(&self) -> u8 {
        self.byte(field::VRID)
    }

    /// Priority, byte 2 (§5.2.4): 255 = address owner, 0 = the master resigns.
    pub fn priority(&self) -> u8 {
        self.byte(field::PRIORITY)
    }

    /// Count IPvX Addr, as announced (the buffer may hold fewer unless the
    /// packet came from [`Packet::new_checked`]).
    pub fn count(&self) -> u8 {
        self.byte(field::COUNT)
    }

    /// The 4 reserved bits (§5.2.6: sent as 0, ignored on receive).
    pub fn reserved(&self) -> u8 {
        // The shift leaves 4 bits, so the value always fits in a u8.
        u8::try_from(self.word(field::RSVD_MAX_ADVER_INT) >> 12).unwrap_or(0)
    }

    /// Max Adver Int (§5.2.7), in centiseconds.
    pub fn max_advert_interval(&self) -> Centis {
        Centis(self.word(field::RSVD_MAX_ADVER_INT) & MAX_ADVER_INT_MASK)
    }

    /// The Checksum field, bytes 6..8, as sent (§5.2.8).
    pub fn checksum(&self) -> u16 {
        self.word(field::CHECKSUM)
    }

    /// The addresses present in the buffer (at most Count of them).
    pub fn addresses(&self) -> Addresses<'_> {
        let announced = usize::from(self.count()) * ADDRESS_LEN;
        let area = self.bytes().get(field::ADDRESSES..).unwrap_or(&[]);
        let area = area.get(..announced).unwrap_or(area);
        Addresses {
            chunks: area.chunks_exact(ADDRESS_LEN),
        }
    }

    /// The whole message (for checksumming or forwarding).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes()
    }

    /// Gives the wrapped buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    fn set_byte(&mut self, index: usize, value: u8) {
        if let Some(byte) = self.bytes_mut().get_mut(index) {
            *byte = value;
        }
    }

    fn set_word(&mut self, range: field::Field, value: u16) {
        if let Some(word) = self.bytes_mut().get_mut(range) {
            word.copy_from_slice(&value.to_be_bytes());
        }
    }

    /// Writes byte 0: `version` in the high nibble, `msg_type` in the low one.
    pub fn set_version_and_type(&mut self, version: u8, msg_type: u8) {
        self.set_byte(field::VER_TYPE, (version << 4) | (msg_type & 0x0f));
    }

    /// Writes the Virtual Rtr ID (byte 1).
    pub fn set_vrid(&mut self, vrid: u8) {
        self.set_byte(field::VRID, vrid);
    }

    /// Writes the Priority (byte 2).
    pub fn set_priority(&mut self, priority: u8) {
        self.set_byte(field::PRIORITY, priority);
    }

    /// Writes Count IPvX Addr (byte 3); the addresses themselves go through
    /// [`Packet::set_address`].
    pub fn set_count(&mut self, count: u8) {
        self.set_byte(field::COUNT, count);
    }

    /// Sets Max Adver Int and clears the reserved bits (§5.2.6).
    pub fn set_max_advert_interval(&mut self, interval: Centis) {
        self.set_word(field::RSVD_MAX_ADVER_INT, interval.0 & MAX_ADVER_INT_MASK);
    }

    /// Writes the Checksum field as given; [`Packet::fill_checksum`] computes it.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_word(field::CHECKSUM, value);
    }

    /// Writes the `index`th address; out-of-range indices are ignored.
    pub fn set_address(&mut self, index: usize, address: Ipv4Addr) {
        let Some(start) = index
            .checked_mul(ADDRESS_LEN)
            .and_then(|offset| offset.checked_add(field::ADDRESSES))
        else {
            return;
        };
        if let Some(slot) = self
            .bytes_mut()
            .get_mut(start..start.saturating_add(ADDRESS_LEN))
        {
            slot.copy_from_slice(&address.octets());
        }
    }

    /// Computes and stores the checksum for an advert sent from `src` to
    /// `dst` (each unicast peer needs its own in the pseudo-header form).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) {
        self.set_checksum(0);
        let sum = checksum::vrrp_checksum(self.bytes(), src, dst, mode);
        self.set_checksum(sum);
    }
}

/// Iterator over the IPv4 addresses of a [`Packet`].
#[derive(Clone, Debug)]
pub struct Addresses<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for Addresses<'_> {
    type Item = Ipv4Addr;

    fn next(&mut self) -> Option<Ipv4Addr> {
        match *self.chunks.next()? {
            [a, b, c, d] => Some(Ipv4Addr::new(a, b, c, d)),
            // chunks_exact yields only 4-byte chunks.
            _ => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Addresses<'_> {}

/// Validates a received VRRP message (the payload of an IPv4 datagram from
/// `src` to `dst`) in the order of RFC 5798 §7.1 — version, completeness,
/// checksum — and returns the view and the checksum form it used.
pub fn parse(
    vrrp: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Result<(Packet<&[u8]>, ChecksumMode), Error> {
    let packet = Packet::new_checked(vrrp)?;
    let mode = checksum::verify_vrrp(vrrp, src, dst).ok_or(Error::BadChecksum)?;
    Ok((packet, mode))
}

/// An advertisement to send. The kernel adds the IP header (TTL 255 is a
/// socket option); we write the VRRP message only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advertisement<'a> {
    /// Virtual Rtr ID, 1..=255 (§5.2.3).
    pub vrid: u8,
    /// 0 = the master resigns (§6.4.3); 255 = address owner.
    pub priority: u8,
    /// Max Adver Int (§5.2.7): 1..=4095 cs between adverts.
    pub max_advert_interval: Centis,
    /// The virtual addresses, 1 to 255 of them (§5.2.5).
    pub addresses: &'a [Ipv4Addr],
}

impl Advertisement<'_> {
    /// Bytes [`Advertisement::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + ADDRESS_LEN * self.addresses.len()
    }

    /// Writes the message into the start of `buf` with the checksum for
    /// `src` -> `dst` in the given form; returns its length.
    pub fn emit(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) -> Result<usize, Error> {
        let count = u8::try_from(self.addresses.len())
            .ok()
            .filter(|&count| count > 0)
            .ok_or(Error::BadAddressCount(self.addresses.len()))?;
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
        packet.fill_checksum(src, dst, mode);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 99, 1);

    /// keepalived 2.2.7's advert (payload of tests/vectors/
    /// keepalived-2.2.7-multicast.hex): vrid 51, priority 150, one address,
    /// 100 cs, pseudo-header checksum 0x68b0 for 198.18.0.1 -> 224.0.0.18.
    const KEEPALIVED: [u8; 12] = [
        0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0x68, 0xb0, 0xc6, 0x12, 0x63, 0x01,
    ];

    fn advert(addresses: &[Ipv4Addr]) -> Advertisement<'_> {
        Advertisement {
            vrid: 51,
            priority: 150,
            max_advert_interval: Centis(100),
            addresses,
        }
    }

    #[test]
    fn deconstruct_keepalived_advert() {
        let packet = Packet::new_checked(&KEEPALIVED[..]).expect("valid advert");
        assert_eq!(packet.version(), 3);
        assert_eq!(packet.msg_type(), 1);
        assert_eq!(packet.vrid(), 51);
        assert_eq!(packet.priority(), 150);
        assert_eq!(packet.count(), 1);
        assert_eq!(packet.reserved(), 0);
        assert_eq!(packet.max_advert_interval(), Centis(100));
        assert_eq!(packet.checksum(), 0x68b0);
        assert_eq!(packet.addresses().collect::<Vec<_>>(), vec![VIP]);
    }

    #[test]
    fn parse_keepalived_advert_reports_pseudo_header_form() {
        let (packet, mode) = parse(&KEEPALIVED, SRC, MULTICAST_GROUP).expect("valid");
        assert_eq!(mode, ChecksumMode::PseudoHeader);
        assert_eq!(packet.vrid(), 51);
    }

    #[test]
    fn construct_matches_keepalived_byte_for_byte() {
        let mut buf = [0u8; 64];
        let len = advert(&[VIP])
            .emit(&mut buf, SRC, MULTICAST_GROUP, ChecksumMode::PseudoHeader)
            .expect("fits");
        assert_eq!(len, 12);
        assert_eq!(&buf[..len], &KEEPALIVED);
    }

    #[test]
    fn emit_then_parse_round_trips_in_both_forms() {
        let addresses = [
            VIP,
            Ipv4Addr::new(198, 18, 99, 2),
            Ipv4Addr::new(198, 19, 0, 7),
        ];
        for mode in [ChecksumMode::PseudoHeader, ChecksumMode::NoPseudoHeader] {
            let sent = Advertisement {
                vrid: 255,
                priority: 0,
                max_advert_interval: Centis::MAX,
                addresses: &addresses,
            };
            let mut buf = vec![0u8; sent.buffer_len()];
            let len = sent.emit(&mut buf, SRC, PEER, mode).expect("fits");
            assert_eq!(len, message_len(3));
            let (packet, seen) = parse(&buf, SRC, PEER).expect("round trip");
            assert_eq!(seen, mode);
            assert_eq!(packet.vrid(), 255);
            assert_eq!(packet.priority(), 0);
            assert_eq!(packet.max_advert_interval(), Centis::MAX);
            assert_eq!(packet.addresses().collect::<Vec<_>>(), addresses);
        }
    }

    #[test]
    fn each_unicast_peer_gets_its_own_pseudo_header_checksum() {
        let other = Ipv4Addr::new(198, 18, 0, 3);
        let mut to_peer = [0u8; 12];
        let mut to_other = [0u8; 12];
        let sent = advert(&[VIP]);
        sent.emit(&mut to_peer, SRC, PEER, ChecksumMode::PseudoHeader)
            .expect("fits");
        sent.emit(&mut to_other, SRC, other, ChecksumMode::PseudoHeader)
            .expect("fits");
        assert_ne!(to_peer[6..8], to_other[6..8]);
        // Without the pseudo-header the destination does not matter.
        sent.emit(&mut to_peer, SRC, PEER, ChecksumMode::NoPseudoHeader)
            .expect("fits");
        sent.emit(&mut to_other, SRC, other, ChecksumMode::NoPseudoHeader)
            .expect("fits");
        assert_eq!(to_peer, to_other);
    }

    #[test]
    fn reserved_bits_are_ignored_on_receive_and_cleared_on_send() {
        let mut bytes = KEEPALIVED;
        bytes[4] |= 0xa0;
        let packet = Packet::new_unchecked(&mut bytes[..]);
        assert_eq!(packet.reserved(), 0xa);
        assert_eq!(packet.max_advert_interval(), Centis(100));
        let mut packet = packet;
        packet.set_max_advert_interval(Centis(100));
        assert_eq!(packet.reserved(), 0);
    }

    #[test]
    fn every_receive_error_variant() {
        let check = |bytes: &[u8]| parse(bytes, SRC, MULTICAST_GROUP).map(|(_, mode)| mode);
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

        let mut two = KEEPALIVED;
        two[3] = 2;
        assert_eq!(
            check(&two),
            Err(Error::BadLength {
                expected: 16,
                actual: 12
            })
        );
        let mut trailing = KEEPALIVED.to_vec();
        trailing.extend_from_slice(&[0; 4]);
        assert_eq!(
            check(&trailing),
            Err(Error::BadLength {
                expected: 12,
                actual: 16
            })
        );

        let mut corrupt = KEEPALIVED;
        corrupt[2] = 151;
        assert_eq!(check(&corrupt), Err(Error::BadChecksum));
    }

    #[test]
    fn every_emit_error_variant() {
        let mut buf = [0u8; 2048];
        let emit = |a: Advertisement<'_>, buf: &mut [u8]| {
            a.emit(buf, SRC, MULTICAST_GROUP, ChecksumMode::PseudoHeader)
        };
        assert_eq!(
            emit(advert(&[VIP]), &mut buf[..11]),
            Err(Error::BufferTooSmall {
                needed: 12,
                available: 11
            })
        );
        assert_eq!(emit(advert(&[]), &mut buf), Err(Error::BadAddressCount(0)));
        let many = vec![VIP; 256];
        assert_eq!(
            emit(advert(&many), &mut buf),
            Err(Error::BadAddressCount(256))
        );
        for bad in [0, 4096] {
            let mut a = advert(&[VIP]);
            a.max_advert_interval = Centis(bad);
            assert_eq!(emit(a, &mut buf), Err(Error::BadInterval(bad)));
        }
    }

    #[test]
    fn the_largest_advert_fits_and_parses() {
        let many: Vec<Ipv4Addr> = (0..255u8).map(|i| Ipv4Addr::new(198, 18, 1, i)).collect();
        let sent = advert(&many);
        let mut buf = vec![0u8; sent.buffer_len()];
        sent.emit(&mut buf, SRC, PEER, ChecksumMode::PseudoHeader)
            .expect("fits");
        let (packet, _) = parse(&buf, SRC, PEER).expect("valid");
        assert_eq!(packet.addresses().len(), 255);
    }

    #[test]
    fn truncation_at_every_length_is_an_error_not_a_panic() {
        let addresses = [VIP, PEER, SRC];
        let sent = advert(&addresses);
        let mut buf = vec![0u8; sent.buffer_len()];
        sent.emit(&mut buf, SRC, PEER, ChecksumMode::PseudoHeader)
            .expect("fits");
        for len in 0..buf.len() {
            let cut = &buf[..len];
            assert!(parse(cut, SRC, PEER).is_err(), "len {len}");
            // The unchecked view answers every accessor without panicking.
            let view = Packet::new_unchecked(cut);
            let _ = (view.version(), view.vrid(), view.priority(), view.count());
            let _ = (view.max_advert_interval(), view.checksum(), view.reserved());
            assert!(view.addresses().count() <= len.saturating_sub(HEADER_LEN) / 4);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Random bytes, half of them with a valid-looking version/type
        /// byte so that the deeper paths are reached.
        #[test]
        fn random_bytes_never_panic(
            mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=40),
            looks_valid: bool,
        ) {
            if looks_valid {
                if let Some(first) = bytes.first_mut() {
                    *first = 0x31;
                }
            }
            let _ = parse(&bytes, SRC, MULTICAST_GROUP);
            let view = Packet::new_unchecked(&bytes[..]);
            let _ = view.addresses().count();
        }
    }
}
