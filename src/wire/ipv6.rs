//! The IPv6 side of VRRP: the fixed IPv6 header (RFC 8200 §3) and what a
//! receiver knows about a datagram.
//!
//! Unlike IPv4, a raw IPv6 socket never delivers the IP header (RFC 3542
//! §3): the payload arrives alone, and the source comes from the socket
//! address, the destination from `IPV6_PKTINFO` and the hop limit from
//! `IPV6_HOPLIMIT` control messages. [`Header`] is that information however
//! it was obtained; [`Header::parse`] fills it from a whole datagram
//! (captures, packet sockets, the lab) and [`Header`]'s fields can be set
//! from the control messages directly.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Source Address (16 bytes)                  |
//! |                 Destination Address (16 bytes)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Extension headers are not followed: VRRP and Neighbor Discovery are sent
//! without them, and a datagram that has one reports its first Next Header,
//! which is then neither 112 nor 58 and is dropped by the caller.

use std::net::Ipv6Addr;
use std::ops::Range;

use thiserror::Error;

/// Next Header of ICMPv6 (RFC 4443 §1), which carries Neighbor Discovery.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// The link-scope all-nodes group, destination of unsolicited Neighbor
/// Advertisements (RFC 4861 §7.2.6, RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

mod field {
    pub type Field = std::ops::Range<usize>;

    /// Version (4 bits), Traffic Class (8), Flow Label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Why a buffer is not a usable IPv6 datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// Shorter than the 40-byte fixed header; holds the length.
    #[error("IPv6 datagram truncated: {0} bytes, the header needs 40")]
    Truncated(usize),
    /// The Version nibble is not 6; holds the version seen.
    #[error("IP version {0}, expected 6")]
    BadVersion(u8),
    /// Payload Length does not describe the bytes after the header (a
    /// jumbogram's 0 included: RFC 2675 does not apply to a link-local
    /// protocol).
    #[error(
        "IPv6 payload length field {field} does not match the {actual} bytes after the header"
    )]
    BadPayloadLength {
        /// The Payload Length field.
        field: u16,
        /// Bytes after the 40-byte header.
        actual: usize,
    },
    /// Sending: the output buffer is shorter than the header.
    #[error("buffer of {0} bytes, an IPv6 header needs 40")]
    BufferTooSmall(usize),
    /// Sending: a payload the 16-bit Payload Length cannot describe; holds
    /// its length.
    #[error("IPv6 payload of {0} bytes exceeds the 65535-byte maximum")]
    TooLong(usize),
}

/// A read-only view over an IPv6 datagram. [`Packet::new_checked`]
/// guarantees the fixed header is in the buffer.
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

    /// Checks that the fixed header fits and the version is 6.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Packet::new_unchecked(buffer);
        let len = packet.bytes().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated(len));
        }
        if packet.version() != 6 {
            return Err(Error::BadVersion(packet.version()));
        }
        Ok(packet)
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn byte(&self, index: usize) -> u8 {
        self.bytes().get(index).copied().unwrap_or(0)
    }

    fn first_word(&self) -> u32 {
        match self.bytes().get(field::VER_TC_FLOW) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    fn addr_at(&self, range: Range<usize>) -> Ipv6Addr {
        self.bytes()
            .get(range)
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .map_or(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from)
    }

    /// Version, the first 4 bits; 6 after [`Packet::new_checked`].
    pub fn version(&self) -> u8 {
        self.byte(0) >> 4
    }

    /// Traffic Class, the next 8 bits (keepalived sends 0xc0, CS6).
    pub fn traffic_class(&self) -> u8 {
        // 8 bits after the shift and mask, so the conversion is exact.
        u8::try_from((self.first_word() >> 20) & 0xff).unwrap_or(0)
    }

    /// Flow Label, the low 20 bits of the first word.
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// Payload Length, bytes 4..6: the bytes after the fixed header.
    pub fn payload_len(&self) -> u16 {
        match self.bytes().get(field::PAYLOAD_LEN) {
            Some(&[high, low]) => u16::from_be_bytes([high, low]),
            _ => 0,
        }
    }

    /// Next Header, byte 6: 112 for VRRP, 58 for ICMPv6.
    pub fn next_header(&self) -> u8 {
        self.byte(field::NEXT_HEADER)
    }

    /// Hop Limit, byte 7; VRRP and Neighbor Discovery require 255 (RFC 5798
    /// §5.1.2.3, RFC 4861 §7.1.2).
    pub fn hop_limit(&self) -> u8 {
        self.byte(field::HOP_LIMIT)
    }

    /// Source Address, bytes 8..24.
    pub fn src_addr(&self) -> Ipv6Addr {
        self.addr_at(field::SRC_ADDR)
    }

    /// Destination Address, bytes 24..40.
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.addr_at(field::DST_ADDR)
    }

    /// Everything after the fixed header, to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        self.bytes().get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// What a receiver knows about an IPv6 datagram: the input of VRRP
/// admission for IPv6. From a raw socket, `src` is the sender's socket
/// address, `dst` the `IPV6_PKTINFO` address, `hop_limit` the
/// `IPV6_HOPLIMIT` value, `payload` the bytes read; [`Header::parse`] fills
/// it from a whole datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Source Address: a VRRP router's link-local address (RFC 5798 §5.1.2.1).
    pub src: Ipv6Addr,
    /// Destination Address: ff02::12 or our unicast address.
    pub dst: Ipv6Addr,
    /// Next Header (112 for VRRP).
    pub next_header: u8,
    /// Hop Limit as received; RFC 5798 §7.1 drops anything but 255.
    pub hop_limit: u8,
    /// The bytes after the fixed header: the VRRP message and any trailer.
    pub payload: &'a [u8],
}

impl<'a> Header<'a> {
    /// Parses a whole datagram: version 6, Payload Length equal to the bytes
    /// after the header (the kernel or the capture has trimmed link padding).
    pub fn parse(datagram: &'a [u8]) -> Result<Self, Error> {
        let packet = Packet::new_checked(datagram)?;
        let field = packet.payload_len();
        let payload = packet.payload();
        if usize::from(field) != payload.len() {
            return Err(Error::BadPayloadLength {
                field,
                actual: payload.len(),
            });
        }
        Ok(Header {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header: packet.next_header(),
            hop_limit: packet.hop_limit(),
            payload: datagram.get(HEADER_LEN..).unwrap_or(&[]),
        })
    }
}

/// Writes a 40-byte IPv6 header (traffic class and flow label 0) for a
/// `payload_len`-byte payload into the start of `buf`; returns its length.
/// For frames sent on a packet socket and for test datagrams; raw IPv6
/// sockets write the header themselves.
pub fn emit_header(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload_len: usize,
) -> Result<usize, Error> {
    let len_field = u16::try_from(payload_len).map_err(|_| Error::TooLong(payload_len))?;
    let available = buf.len();
    let header = buf
        .get_mut(..HEADER_LEN)
        .ok_or(Error::BufferTooSmall(available))?;
    header.fill(0);
    header[0] = 0x60;
    header[field::PAYLOAD_LEN].copy_from_slice(&len_field.to_be_bytes());
    header[field::NEXT_HEADER] = next_header;
    header[field::HOP_LIMIT] = hop_limit;
    header[field::SRC_ADDR].copy_from_slice(&src.octets());
    header[field::DST_ADDR].copy_from_slice(&dst.octets());
    Ok(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first keepalived 2.2.7 IPv6 advert of
    /// tests/vectors/keepalived-2.2.7-ipv6.hex: traffic class 0xc0, flow
    /// label 0xa12b1, payload 40 bytes, next header 112, hop limit 255,
    /// fe80::ff:fe00:1 -> ff02::12.
    const KEEPALIVED_HEADER: [u8; 40] = [
        0x6c, 0x0a, 0x12, 0xb1, 0x00, 0x28, 0x70, 0xff, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0xff, 0xfe, 0, 0, 0x01, 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12,
    ];

    fn keepalived_datagram() -> Vec<u8> {
        let mut datagram = KEEPALIVED_HEADER.to_vec();
        datagram.extend_from_slice(&[0u8; 40]);
        datagram
    }

    #[test]
    fn deconstruct_a_captured_header() {
        let datagram = keepalived_datagram();
        let packet = Packet::new_checked(&datagram[..]).expect("valid header");
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0xc0);
        assert_eq!(packet.flow_label(), 0xa12b1);
        assert_eq!(packet.payload_len(), 40);
        assert_eq!(packet.next_header(), 112);
        assert_eq!(packet.hop_limit(), 255);
        assert_eq!(
            packet.src_addr(),
            "fe80::ff:fe00:1".parse::<Ipv6Addr>().expect("address")
        );
        assert_eq!(
            packet.dst_addr(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)
        );
        assert_eq!(packet.payload().len(), 40);
    }

    #[test]
    fn each_malformation_is_its_own_error() {
        let datagram = keepalived_datagram();
        assert_eq!(Header::parse(&datagram[..39]), Err(Error::Truncated(39)));
        let mut v4 = datagram.clone();
        v4[0] = 0x45;
        assert_eq!(Header::parse(&v4), Err(Error::BadVersion(4)));
        assert_eq!(
            Header::parse(&datagram[..79]),
            Err(Error::BadPayloadLength {
                field: 40,
                actual: 39
            })
        );
    }

    #[test]
    fn truncation_at_every_length_is_an_error_not_a_panic() {
        let datagram = keepalived_datagram();
        for len in 0..datagram.len() {
            assert!(Header::parse(&datagram[..len]).is_err(), "len {len}");
            let view = Packet::new_unchecked(&datagram[..len]);
            let _ = (view.traffic_class(), view.flow_label(), view.payload_len());
            let _ = (view.src_addr(), view.dst_addr(), view.payload().len());
        }
    }

    #[test]
    fn emit_then_parse_round_trips() {
        let src: Ipv6Addr = "fe80::1".parse().expect("address");
        let mut buf = [0xaau8; 48];
        assert_eq!(
            emit_header(&mut buf, src, ALL_NODES, NEXT_HEADER_ICMPV6, 255, 8),
            Ok(HEADER_LEN)
        );
        let header = Header::parse(&buf).expect("round trip");
        assert_eq!((header.src, header.dst), (src, ALL_NODES));
        assert_eq!((header.next_header, header.hop_limit), (58, 255));
        assert_eq!(header.payload.len(), 8);
        let packet = Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!((packet.traffic_class(), packet.flow_label()), (0, 0));
    }

    #[test]
    fn emit_refuses_small_buffers_and_huge_payloads() {
        let any = Ipv6Addr::UNSPECIFIED;
        assert_eq!(
            emit_header(&mut [0u8; 39], any, any, 112, 255, 0),
            Err(Error::BufferTooSmall(39))
        );
        assert_eq!(
            emit_header(&mut [0u8; 40], any, any, 112, 255, 65536),
            Err(Error::TooLong(65536))
        );
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=96),
        ) {
            let _ = Header::parse(&bytes);
            let view = Packet::new_unchecked(&bytes[..]);
            let _ = (view.version(), view.flow_label(), view.src_addr(), view.payload().len());
        }
    }
}
