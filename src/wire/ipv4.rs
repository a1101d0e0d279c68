//! A view over a received IPv4 header, as raw sockets deliver it.
//!
//! Both Linux and FreeBSD raw IPv4 sockets (SOCK_RAW, protocol 112) hand
//! the IP header to user space in front of the payload. Its length comes
//! from IHL and is never assumed to be 20 bytes: options are legal.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options                    |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! (RFC 791 §3.1)
//!
//! # The Total Length field on BSD raw sockets
//!
//! Historically the BSD stack converted `ip_len` to host byte order in
//! `ip_input()` and subtracted the header length ("further protocols expect
//! the packet length to be w/o the IP header") before handing the packet to
//! protocol input routines, `rip_input()` included; raw sockets therefore
//! saw a host-order payload length. FreeBSD 10 (2012) stopped doing both,
//! and current FreeBSD delivers the header as received, like Linux. Since
//! the kernel has already validated the length and trimmed the datagram,
//! the buffer we read is the authoritative length: on FreeBSD we accept the
//! field in any of the three encodings that describe the buffer, and only
//! reject a field that matches none of them. Elsewhere (Linux) the field
//! must equal the buffer length exactly.

use std::net::Ipv4Addr;
use std::ops::Range;

use thiserror::Error;

/// Why a buffer is not a usable IPv4 datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// The buffer ends before the header does.
    #[error("IPv4 datagram truncated: {len} bytes, the header needs {needed}")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Header bytes required: 20, or IHL × 4 once IHL is readable.
        needed: usize,
    },
    /// The Version nibble is not 4; holds the version seen.
    #[error("IP version {0}, expected 4")]
    BadVersion(u8),
    /// IHL below 5 32-bit words (RFC 791 §3.1); holds the IHL seen.
    #[error("IPv4 header length (IHL) {0} words, the minimum is 5")]
    BadHeaderLength(u8),
    /// Total Length matches the buffer in none of the accepted encodings
    /// (see the module documentation).
    #[error("IPv4 total length field {field} does not match the {actual} bytes received")]
    BadTotalLength {
        /// The Total Length field, read big-endian.
        field: u16,
        /// Bytes received.
        actual: usize,
    },
}

mod field {
    pub type Field = std::ops::Range<usize>;

    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = field::DST_ADDR.end;

/// Whether the legacy BSD encodings of Total Length are accepted (see the
/// module documentation).
const ACCEPT_LEGACY_BSD_TOTAL_LENGTH: bool = cfg!(target_os = "freebsd");

/// A read-only view over an IPv4 datagram. Construct with
/// [`Packet::new_checked`]; every accessor is then in bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the fixed header and the IHL-announced header fit in the
    /// buffer and that the version is 4. Total Length is checked by
    /// [`Header::parse`], where the platform's encoding is known.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let bytes = buffer.as_ref();
        let Some(&ver_ihl) = bytes.get(field::VER_IHL) else {
            return Err(Error::Truncated {
                len: 0,
                needed: MIN_HEADER_LEN,
            });
        };
        let version = ver_ihl >> 4;
        if version != 4 {
            return Err(Error::BadVersion(version));
        }
        let ihl = ver_ihl & 0x0f;
        if usize::from(ihl) * 4 < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLength(ihl));
        }
        let needed = usize::from(ihl) * 4;
        if bytes.len() < needed {
            return Err(Error::Truncated {
                len: bytes.len(),
                needed,
            });
        }
        Ok(Packet { buffer })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn byte(&self, index: usize) -> u8 {
        self.bytes().get(index).copied().unwrap_or(0)
    }

    fn u16_at(&self, range: Range<usize>) -> u16 {
        match self.bytes().get(range) {
            Some(&[high, low]) => u16::from_be_bytes([high, low]),
            _ => 0,
        }
    }

    fn addr_at(&self, range: Range<usize>) -> Ipv4Addr {
        match self.bytes().get(range) {
            Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
            _ => Ipv4Addr::UNSPECIFIED,
        }
    }

    /// Version, the high nibble of byte 0; 4 after [`Packet::new_checked`].
    pub fn version(&self) -> u8 {
        self.byte(field::VER_IHL) >> 4
    }

    /// Header length in bytes, from IHL (options included).
    pub fn header_len(&self) -> usize {
        usize::from(self.byte(field::VER_IHL) & 0x0f) * 4
    }

    /// The Total Length field as found in the buffer, big-endian decoded.
    pub fn total_len_field(&self) -> u16 {
        self.u16_at(field::TOTAL_LEN)
    }

    /// Identification, bytes 4..6.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// Flags (top 3 bits) and Fragment Offset (13 bits), bytes 6..8.
    pub fn flags_frag(&self) -> u16 {
        self.u16_at(field::FLAGS_FRAG)
    }

    /// Time to Live, byte 8; VRRP requires 255 (RFC 5798 §7.1).
    pub fn ttl(&self) -> u8 {
        self.byte(field::TTL)
    }

    /// Protocol, byte 9; 112 for VRRP.
    pub fn protocol(&self) -> u8 {
        self.byte(field::PROTOCOL)
    }

    /// Header Checksum, bytes 10..12, as received (the kernel has verified it).
    pub fn header_checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Source Address, bytes 12..16.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.addr_at(field::SRC_ADDR)
    }

    /// Destination Address, bytes 16..20.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.addr_at(field::DST_ADDR)
    }

    /// Everything after the IHL-announced header, to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        self.bytes().get(self.header_len()..).unwrap_or(&[])
    }
}

/// The fields of a received IPv4 header that VRRP needs, and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Source Address: the sending router's primary address.
    pub src: Ipv4Addr,
    /// Destination Address: 224.0.0.18 or our unicast address.
    pub dst: Ipv4Addr,
    /// Protocol number (112 for VRRP).
    pub protocol: u8,
    /// Time to Live as received; RFC 5798 §7.1 drops anything but 255.
    pub ttl: u8,
    /// Header length in bytes (20 + options).
    pub header_len: usize,
    /// The bytes after the header: the VRRP message and any auth trailer.
    pub payload: &'a [u8],
}

impl<'a> Header<'a> {
    /// Parses a datagram as this platform's raw socket delivers it.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, Error> {
        Self::parse_with(datagram, ACCEPT_LEGACY_BSD_TOTAL_LENGTH)
    }

    fn parse_with(datagram: &'a [u8], accept_legacy_bsd: bool) -> Result<Self, Error> {
        let packet = Packet::new_checked(datagram)?;
        let field = packet.total_len_field();
        let header_len = packet.header_len();
        if !total_len_matches(field, datagram.len(), header_len, accept_legacy_bsd) {
            return Err(Error::BadTotalLength {
                field,
                actual: datagram.len(),
            });
        }
        Ok(Header {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            ttl: packet.ttl(),
            header_len,
            payload: datagram.get(header_len..).unwrap_or(&[]),
        })
    }
}

/// Whether the Total Length field describes a datagram of `len` bytes with a
/// `header_len`-byte header: in network order (RFC 791, Linux, FreeBSD ≥ 10)
/// or, if `accept_legacy_bsd`, in host order with or without the header
/// (see the module documentation).
fn total_len_matches(field: u16, len: usize, header_len: usize, accept_legacy_bsd: bool) -> bool {
    if usize::from(field) == len {
        return true;
    }
    if !accept_legacy_bsd {
        return false;
    }
    // Reading the bytes big-endian gave `field`; a host-order (little-endian
    // on amd64/arm64) value is that with its bytes swapped.
    let host = if cfg!(target_endian = "little") {
        field.swap_bytes()
    } else {
        field
    };
    let host = usize::from(host);
    host == len || host + header_len == len
}

/// Writes a 20-byte IPv4 header (no options, DF clear, ident 0) for a
/// `payload_len`-byte payload into the start of `buf`, with a correct header
/// checksum; returns the header length. Used to build test datagrams and for
/// `IP_HDRINCL` senders; the agent's normal send path lets the kernel do it.
pub fn emit_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    payload_len: usize,
) -> Result<usize, EmitError> {
    let total = MIN_HEADER_LEN.saturating_add(payload_len);
    let total_field = u16::try_from(total).map_err(|_| EmitError::TooLong(total))?;
    let available = buf.len();
    let header = buf
        .get_mut(..MIN_HEADER_LEN)
        .ok_or(EmitError::BufferTooSmall {
            needed: MIN_HEADER_LEN,
            available,
        })?;
    header.fill(0);
    header[field::VER_IHL] = 0x45;
    header[field::TOTAL_LEN].copy_from_slice(&total_field.to_be_bytes());
    header[field::TTL] = ttl;
    header[field::PROTOCOL] = protocol;
    header[field::SRC_ADDR].copy_from_slice(&src.octets());
    header[field::DST_ADDR].copy_from_slice(&dst.octets());
    let sum = super::checksum::internet_checksum(header);
    header[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    Ok(MIN_HEADER_LEN)
}

/// Why [`emit_header`] could not write a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EmitError {
    /// The output buffer is shorter than the 20-byte header.
    #[error("buffer of {available} bytes, an IPv4 header needs {needed}")]
    BufferTooSmall {
        /// Bytes the header takes (20).
        needed: usize,
        /// Bytes the caller's buffer has.
        available: usize,
    },
    /// Header plus payload exceed what the 16-bit Total Length can hold;
    /// holds that total in bytes.
    #[error("IPv4 datagram of {0} bytes exceeds the 65535-byte maximum")]
    TooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keepalived 2.2.7 advert as captured (see tests/vectors/README.md):
    /// TOS 0xc0, ident 1, TTL 255, protocol 112, 198.18.0.1 -> 224.0.0.18.
    const KEEPALIVED: [u8; 32] = [
        0x45, 0xc0, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0x14, 0x87, 0xc6, 0x12, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x12, 0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0x68, 0xb0, 0xc6, 0x12,
        0x63, 0x01,
    ];

    #[test]
    fn deconstruct_a_captured_header() {
        let packet = Packet::new_checked(&KEEPALIVED[..]).expect("valid header");
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len_field(), 32);
        assert_eq!(packet.ident(), 1);
        assert_eq!(packet.flags_frag(), 0);
        assert_eq!(packet.ttl(), 255);
        assert_eq!(packet.protocol(), 112);
        assert_eq!(packet.header_checksum(), 0x1487);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(224, 0, 0, 18));
        assert_eq!(packet.payload(), &KEEPALIVED[20..]);
        // The kernel-computed header checksum verifies.
        assert_eq!(
            crate::wire::checksum::internet_checksum(&KEEPALIVED[..20]),
            0
        );
    }

    #[test]
    fn parse_returns_fields_and_payload() {
        let header = Header::parse(&KEEPALIVED).expect("valid datagram");
        assert_eq!(header.src, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(header.dst, Ipv4Addr::new(224, 0, 0, 18));
        assert_eq!(header.protocol, 112);
        assert_eq!(header.ttl, 255);
        assert_eq!(header.header_len, 20);
        assert_eq!(header.payload.len(), 12);
    }

    #[test]
    fn options_move_the_payload_start() {
        // IHL 6: one 4-byte option word (NOPs + end of list) before the payload.
        let mut datagram = vec![0x46, 0, 0, 28];
        datagram.extend_from_slice(&KEEPALIVED[4..20]);
        datagram.extend_from_slice(&[1, 1, 1, 0]);
        datagram.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        let header = Header::parse(&datagram).expect("valid datagram with options");
        assert_eq!(header.header_len, 24);
        assert_eq!(header.payload, &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn each_malformation_is_its_own_error() {
        assert_eq!(
            Header::parse(&[]),
            Err(Error::Truncated { len: 0, needed: 20 })
        );
        let mut v6 = KEEPALIVED;
        v6[0] = 0x65;
        assert_eq!(Header::parse(&v6), Err(Error::BadVersion(6)));
        let mut short_ihl = KEEPALIVED;
        short_ihl[0] = 0x44;
        assert_eq!(Header::parse(&short_ihl), Err(Error::BadHeaderLength(4)));
        let mut long_ihl = KEEPALIVED;
        long_ihl[0] = 0x4f;
        assert_eq!(
            Header::parse(&long_ihl),
            Err(Error::Truncated {
                len: 32,
                needed: 60
            })
        );
        let mut bad_len = KEEPALIVED;
        bad_len[3] = 33;
        assert_eq!(
            Header::parse(&bad_len),
            Err(Error::BadTotalLength {
                field: 33,
                actual: 32
            })
        );
    }

    #[test]
    fn legacy_bsd_total_length_forms_are_accepted_only_when_asked() {
        let host_order = |value: u16| {
            if cfg!(target_endian = "little") {
                value.swap_bytes()
            } else {
                value
            }
        };
        // Host-order total (32) and host-order payload length (12).
        for legacy in [host_order(32), host_order(12)] {
            let mut datagram = KEEPALIVED;
            datagram[2..4].copy_from_slice(&legacy.to_be_bytes());
            assert!(Header::parse_with(&datagram, true).is_ok(), "{legacy:#06x}");
            if cfg!(target_endian = "little") {
                assert!(Header::parse_with(&datagram, false).is_err());
            }
        }
        // A field that matches no encoding is still refused.
        let mut datagram = KEEPALIVED;
        datagram[2..4].copy_from_slice(&77u16.to_be_bytes());
        assert!(Header::parse_with(&datagram, true).is_err());
    }

    #[test]
    fn truncation_at_every_length_is_an_error_not_a_panic() {
        for len in 0..KEEPALIVED.len() {
            assert!(Header::parse(&KEEPALIVED[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn emit_then_parse_round_trips() {
        let mut buf = [0u8; 32];
        let src = Ipv4Addr::new(198, 18, 0, 1);
        let dst = Ipv4Addr::new(224, 0, 0, 18);
        let len = emit_header(&mut buf, src, dst, 112, 255, 12).expect("fits");
        assert_eq!(len, 20);
        assert_eq!(crate::wire::checksum::internet_checksum(&buf[..20]), 0);
        let header = Header::parse(&buf).expect("round trip");
        assert_eq!((header.src, header.dst), (src, dst));
        assert_eq!((header.protocol, header.ttl), (112, 255));
        assert_eq!(header.payload.len(), 12);
    }

    #[test]
    fn emit_refuses_small_buffers_and_huge_payloads() {
        let any = Ipv4Addr::UNSPECIFIED;
        assert_eq!(
            emit_header(&mut [0u8; 19], any, any, 112, 255, 0),
            Err(EmitError::BufferTooSmall {
                needed: 20,
                available: 19
            })
        );
        assert_eq!(
            emit_header(&mut [0u8; 20], any, any, 112, 255, 65516),
            Err(EmitError::TooLong(65536))
        );
    }
}
