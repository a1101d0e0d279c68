//! IPv6 input: a whole IPv6 datagram (as captured, or as a packet socket
//! delivers it) that claims to carry a VRRP advert or a Neighbor
//! Advertisement. Drives the IPv6 header view, the VRRP-over-IPv6 view and
//! parser and the Neighbor Advertisement parser; checks that whatever they
//! accept is self-consistent and re-emits to the same bytes. A raw IPv6
//! socket delivers the payload alone, so the bytes are also tried as a bare
//! VRRP message and a bare ICMPv6 message, with the addresses of the
//! keepalived capture (tests/vectors/keepalived-2.2.7-ipv6.hex).

#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use rcbsd_failover::wire::{ipv6, ndisc, vrrp6, Centis};

/// keepalived's link-local source in the capture.
const KEEPALIVED: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 1);
/// The link-local VIP of the capture, source of its first NA.
const LINK_LOCAL_VIP: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x51);
/// Bytes 6..8 of a VRRP message (RFC 5798 §5.2.8).
const CHECKSUM: std::ops::Range<usize> = 6..8;

fuzz_target!(|datagram: &[u8]| {
    exercise_views(datagram);
    if let Ok(ip) = ipv6::Header::parse(datagram) {
        assert_eq!(ipv6::HEADER_LEN + ip.payload.len(), datagram.len());
        match ip.next_header {
            vrrp6::PROTOCOL => check_advert(ip.payload, ip.src, ip.dst),
            ipv6::NEXT_HEADER_ICMPV6 => check_neighbor_advertisement(ip.payload, ip.src, ip.dst),
            _ => {}
        }
    }
    check_advert(datagram, KEEPALIVED, vrrp6::MULTICAST_GROUP);
    check_neighbor_advertisement(datagram, LINK_LOCAL_VIP, ipv6::ALL_NODES);
});

/// Every accessor of every view, checked or not, answers without panicking.
fn exercise_views(bytes: &[u8]) {
    let ip = ipv6::Packet::new_unchecked(bytes);
    let _ = (
        ip.version(),
        ip.traffic_class(),
        ip.flow_label(),
        ip.payload_len(),
    );
    let _ = (
        ip.next_header(),
        ip.hop_limit(),
        ip.src_addr(),
        ip.dst_addr(),
    );
    let _ = ip.payload().len();
    for view in [vrrp6::Packet::new_unchecked(bytes)]
        .into_iter()
        .chain(vrrp6::Packet::new_checked(bytes))
    {
        let _ = (
            view.version(),
            view.msg_type(),
            view.vrid(),
            view.priority(),
        );
        let _ = (view.count(), view.reserved(), view.max_advert_interval());
        let _ = (
            view.checksum(),
            view.addresses().count(),
            view.as_bytes().len(),
        );
    }
    if let Ok(checked) = vrrp6::Packet::new_checked(bytes) {
        assert_eq!(checked.addresses().len(), usize::from(checked.count()));
    }
    let na = ndisc::Packet::new_unchecked(bytes);
    let _ = (na.msg_type(), na.code(), na.checksum(), na.router_flag());
    let _ = (
        na.solicited_flag(),
        na.override_flag(),
        na.reserved(),
        na.target_addr(),
    );
    let _ = (na.options().len(), na.target_link_layer_addr());
}

/// What `vrrp6::parse` accepts is one well-formed advert that our encoder
/// reproduces (when our encoder may send it at all).
fn check_advert(payload: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let Ok(packet) = vrrp6::parse(payload, src, dst) else {
        return;
    };
    assert_eq!(packet.version(), vrrp6::VERSION);
    assert_eq!(packet.msg_type(), vrrp6::TYPE_ADVERTISEMENT);
    assert_eq!(payload.len(), vrrp6::message_len(packet.count()));
    let addresses: Vec<Ipv6Addr> = packet.addresses().collect();
    // The encoder clears the reserved bits, refuses a zero interval and
    // insists on link-local source and first address (RFC 5798 §5.1.2.1,
    // §5.2.9); only other adverts can be reproduced.
    if packet.reserved() != 0
        || packet.max_advert_interval() == Centis(0)
        || !vrrp6::is_link_local(src)
        || !addresses
            .first()
            .is_some_and(|&first| vrrp6::is_link_local(first))
    {
        return;
    }
    let advert = vrrp6::Ipv6Advertisement {
        vrid: packet.vrid(),
        priority: packet.priority(),
        max_advert_interval: packet.max_advert_interval(),
        addresses: &addresses,
    };
    let mut buffer = vec![0u8; advert.buffer_len()];
    let len = advert
        .emit(&mut buffer, src, dst)
        .expect("an advert that parsed must re-emit");
    let emitted = &buffer[..len];
    // A one's-complement zero has two encodings (0x0000 and 0xffff), so the
    // checksum may differ; every other byte must not.
    assert_eq!(emitted[..CHECKSUM.start], payload[..CHECKSUM.start]);
    assert_eq!(emitted[CHECKSUM.end..], payload[CHECKSUM.end..]);
    vrrp6::parse(emitted, src, dst).expect("our own advert must parse");
}

/// What `NeighborAdvertisement::parse` accepts re-emits as a valid message
/// with the same fields.
fn check_neighbor_advertisement(message: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let Ok(na) = ndisc::NeighborAdvertisement::parse(message, src, dst) else {
        return;
    };
    assert!(!na.target.is_multicast());
    assert!(!(dst.is_multicast() && na.solicited));
    let mut buffer = [0u8; ndisc::MESSAGE_LEN];
    na.emit(&mut buffer, src, dst).expect("fits");
    assert_eq!(
        ndisc::NeighborAdvertisement::parse(&buffer, src, dst),
        Ok(na),
        "our own advertisement must parse to the same fields"
    );
}
