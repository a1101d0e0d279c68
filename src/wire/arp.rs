//! Gratuitous ARP: the Ethernet frame a new master broadcasts so that hosts
//! and switches move the virtual IP to its MAC address.
//!
//! RFC 5798 §6.4.2 asks the new master to "broadcast a gratuitous ARP
//! request"; RFC 5227 §3 (ARP Announcement) gives its shape: an ARP
//! *request* whose sender and target protocol addresses are both the
//! announced address, and whose target hardware address is ignored and set
//! to zero. RFC 5944 §4.6 allows a reply too, but a request is what every
//! stack updates its cache from (keepalived and `arping -U` send requests
//! for the same reason), so a request is what we send and accept.
//!
//! ```text
//!  0               6              12      14
//! +---------------+---------------+-------+
//! | dst MAC       | src MAC       | 0806  |   Ethernet II header
//! +-------+-------+---+---+-------+-------+
//! | htype | ptype |hln|pln| oper  |           ARP (RFC 826), from byte 14
//! +-------+-------+---+---+-------+
//! | sender MAC (sha)      | sender IP (spa)|
//! | target MAC (tha)      | target IP (tpa)|
//! +-----------------------+----------------+
//! ```
//!
//! 42 bytes; the driver pads the frame to Ethernet's 60-byte minimum.

use std::net::Ipv4Addr;

/// Length of the frame we build: 14 bytes of Ethernet header + 28 of ARP.
pub const FRAME_LEN: usize = 42;

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
/// ARP hardware type for Ethernet (RFC 826, IANA "Hardware Types").
const HTYPE_ETHERNET: u16 = 1;
const OPER_REQUEST: u16 = 1;
const BROADCAST: [u8; 6] = [0xff; 6];

mod field {
    pub type Field = std::ops::Range<usize>;
    pub const DST_MAC: Field = 0..6;
    pub const SRC_MAC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const HTYPE: Field = 14..16;
    pub const PTYPE: Field = 16..18;
    pub const HLEN: usize = 18;
    pub const PLEN: usize = 19;
    pub const OPER: Field = 20..22;
    pub const SHA: Field = 22..28;
    pub const SPA: Field = 28..32;
    pub const THA: Field = 32..38;
    pub const TPA: Field = 38..42;
}

/// Why a frame is not a gratuitous ARP announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArpError {
    /// Shorter than the 42-byte Ethernet + ARP frame; holds its length.
    #[error("frame of {0} bytes is shorter than an Ethernet ARP frame (42)")]
    Truncated(usize),
    /// Not ARP for Ethernet/IPv4: wrong EtherType, htype, ptype, hln or pln
    /// (RFC 826).
    #[error("not an Ethernet/IPv4 ARP frame")]
    NotEthernetIpv4Arp,
    /// An Ethernet/IPv4 ARP frame, but not the RFC 5227 §3 announcement shape.
    #[error("not a gratuitous ARP request (operation, addresses or destination differ)")]
    NotGratuitous,
}

/// A read-only view over an Ethernet frame carrying ARP. Construct with
/// [`Frame::new_checked`]; the accessors then never panic.
#[derive(Debug)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Checks the length once, so every accessor can slice freely.
    pub fn new_checked(buffer: T) -> Result<Self, ArpError> {
        let len = buffer.as_ref().len();
        if len < FRAME_LEN {
            return Err(ArpError::Truncated(len));
        }
        Ok(Frame { buffer })
    }

    fn bytes<const N: usize>(&self, range: field::Field) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.buffer.as_ref().get(range) {
            if src.len() == N {
                out.copy_from_slice(src);
            }
        }
        out
    }

    fn u16_at(&self, range: field::Field) -> u16 {
        u16::from_be_bytes(self.bytes(range))
    }

    fn byte_at(&self, index: usize) -> u8 {
        self.buffer.as_ref().get(index).copied().unwrap_or(0)
    }

    /// Ethernet destination MAC, bytes 0..6 (broadcast for an announcement).
    pub fn dst_mac(&self) -> [u8; 6] {
        self.bytes(field::DST_MAC)
    }
    /// Ethernet source MAC, bytes 6..12.
    pub fn src_mac(&self) -> [u8; 6] {
        self.bytes(field::SRC_MAC)
    }
    /// EtherType, bytes 12..14; [`ETHERTYPE_ARP`] for ARP.
    pub fn ethertype(&self) -> u16 {
        self.u16_at(field::ETHERTYPE)
    }
    /// ARP hardware type (htype), bytes 14..16; 1 = Ethernet (RFC 826).
    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }
    /// ARP protocol type (ptype), bytes 16..18; 0x0800 = IPv4.
    pub fn protocol_type(&self) -> u16 {
        self.u16_at(field::PTYPE)
    }
    /// Hardware address length (hln), byte 18; 6 for Ethernet.
    pub fn hardware_len(&self) -> u8 {
        self.byte_at(field::HLEN)
    }
    /// Protocol address length (pln), byte 19; 4 for IPv4.
    pub fn protocol_len(&self) -> u8 {
        self.byte_at(field::PLEN)
    }
    /// ARP operation (oper), bytes 20..22: 1 = request, 2 = reply.
    pub fn operation(&self) -> u16 {
        self.u16_at(field::OPER)
    }
    /// Sender hardware address (sha), bytes 22..28.
    pub fn sender_mac(&self) -> [u8; 6] {
        self.bytes(field::SHA)
    }
    /// Sender protocol address (spa), bytes 28..32.
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.bytes::<4>(field::SPA))
    }
    /// Target hardware address (tha), bytes 32..38; zero in an announcement.
    pub fn target_mac(&self) -> [u8; 6] {
        self.bytes(field::THA)
    }
    /// Target protocol address (tpa), bytes 38..42; equals spa in an
    /// announcement.
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.bytes::<4>(field::TPA))
    }
}

/// A gratuitous ARP announcement of `address` at `sender_mac`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GratuitousArp {
    /// The MAC the address now lives at: Ethernet source and sha.
    pub sender_mac: [u8; 6],
    /// The announced IPv4 address: both spa and tpa.
    pub address: Ipv4Addr,
}

impl GratuitousArp {
    /// Recognises an announcement: Ethernet/IPv4 ARP request, broadcast,
    /// sender IP = target IP, frame source = sender hardware address.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Self, ArpError> {
        if frame.ethertype() != ETHERTYPE_ARP
            || frame.hardware_type() != HTYPE_ETHERNET
            || frame.protocol_type() != ETHERTYPE_IPV4
            || frame.hardware_len() != 6
            || frame.protocol_len() != 4
        {
            return Err(ArpError::NotEthernetIpv4Arp);
        }
        if frame.operation() != OPER_REQUEST
            || frame.dst_mac() != BROADCAST
            || frame.sender_ip() != frame.target_ip()
            || frame.src_mac() != frame.sender_mac()
        {
            return Err(ArpError::NotGratuitous);
        }
        Ok(GratuitousArp {
            sender_mac: frame.sender_mac(),
            address: frame.sender_ip(),
        })
    }

    /// The complete frame, ready for the link layer.
    pub fn to_frame(&self) -> [u8; FRAME_LEN] {
        let mut frame = [0u8; FRAME_LEN];
        self.emit(&mut frame);
        frame
    }

    /// Writes the frame into `buf`, every byte of it.
    pub fn emit(&self, buf: &mut [u8; FRAME_LEN]) {
        let ip = self.address.octets();
        put(buf, field::DST_MAC, &BROADCAST);
        put(buf, field::SRC_MAC, &self.sender_mac);
        put(buf, field::ETHERTYPE, &ETHERTYPE_ARP.to_be_bytes());
        put(buf, field::HTYPE, &HTYPE_ETHERNET.to_be_bytes());
        put(buf, field::PTYPE, &ETHERTYPE_IPV4.to_be_bytes());
        put(buf, field::HLEN..field::HLEN + 1, &[6]);
        put(buf, field::PLEN..field::PLEN + 1, &[4]);
        put(buf, field::OPER, &OPER_REQUEST.to_be_bytes());
        put(buf, field::SHA, &self.sender_mac);
        put(buf, field::SPA, &ip);
        // RFC 5227 §2.1.1: the target hardware address is ignored; zero.
        put(buf, field::THA, &[0; 6]);
        put(buf, field::TPA, &ip);
    }
}

/// Copies `value` into `buf[range]`; the ranges are the constants above,
/// all inside a `FRAME_LEN` array, so the checks never fail.
fn put(buf: &mut [u8; FRAME_LEN], range: field::Field, value: &[u8]) {
    if let Some(dst) = buf.get_mut(range) {
        if dst.len() == value.len() {
            dst.copy_from_slice(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    /// An announcement of 198.18.0.100 from 02:00:5e:10:20:30, as
    /// `arping -U -I eth0 198.18.0.100` lays it out.
    static ANNOUNCEMENT: [u8; FRAME_LEN] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst: broadcast
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // src
        0x08, 0x06, // EtherType ARP
        0x00, 0x01, // htype Ethernet
        0x08, 0x00, // ptype IPv4
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // request
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // sha
        198, 18, 0, 100, // spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha: zero
        198, 18, 0, 100, // tpa = spa
    ];

    fn announcement() -> GratuitousArp {
        GratuitousArp {
            sender_mac: MAC,
            address: Ipv4Addr::new(198, 18, 0, 100),
        }
    }

    #[test]
    fn construct_gratuitous_request() {
        assert_eq!(announcement().to_frame(), ANNOUNCEMENT);
    }

    #[test]
    fn emit_overwrites_a_dirty_buffer() {
        let mut buf = [0xaa; FRAME_LEN];
        announcement().emit(&mut buf);
        assert_eq!(buf, ANNOUNCEMENT);
    }

    #[test]
    fn deconstruct_fields() {
        let frame = Frame::new_checked(&ANNOUNCEMENT[..]).unwrap();
        assert_eq!(frame.dst_mac(), [0xff; 6]);
        assert_eq!(frame.src_mac(), MAC);
        assert_eq!(frame.ethertype(), 0x0806);
        assert_eq!(frame.hardware_type(), 1);
        assert_eq!(frame.protocol_type(), 0x0800);
        assert_eq!(frame.hardware_len(), 6);
        assert_eq!(frame.protocol_len(), 4);
        assert_eq!(frame.operation(), 1);
        assert_eq!(frame.sender_mac(), MAC);
        assert_eq!(frame.sender_ip(), Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(frame.target_mac(), [0; 6]);
        assert_eq!(frame.target_ip(), Ipv4Addr::new(198, 18, 0, 100));
    }

    #[test]
    fn parse_round_trips_and_accepts_driver_padding() {
        let mut padded = [0u8; 60];
        padded[..FRAME_LEN].copy_from_slice(&ANNOUNCEMENT);
        let frame = Frame::new_checked(&padded[..]).unwrap();
        assert_eq!(GratuitousArp::parse(&frame), Ok(announcement()));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for len in 0..FRAME_LEN {
            assert_eq!(
                Frame::new_checked(&ANNOUNCEMENT[..len]).unwrap_err(),
                ArpError::Truncated(len)
            );
        }
    }

    #[test]
    fn a_reply_or_a_probe_is_not_an_announcement() {
        let mut reply = ANNOUNCEMENT;
        reply[21] = 2;
        let frame = Frame::new_checked(&reply[..]).unwrap();
        assert_eq!(GratuitousArp::parse(&frame), Err(ArpError::NotGratuitous));

        // RFC 5227 §2.1.1 probe: sender IP zero, so spa != tpa.
        let mut probe = ANNOUNCEMENT;
        probe[28..32].fill(0);
        let frame = Frame::new_checked(&probe[..]).unwrap();
        assert_eq!(GratuitousArp::parse(&frame), Err(ArpError::NotGratuitous));
    }

    #[test]
    fn an_ipv4_frame_is_not_arp() {
        let mut ip = ANNOUNCEMENT;
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        let frame = Frame::new_checked(&ip[..]).unwrap();
        assert_eq!(
            GratuitousArp::parse(&frame),
            Err(ArpError::NotEthernetIpv4Arp)
        );
    }
}
