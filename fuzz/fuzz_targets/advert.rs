//! Raw-socket input: an IPv4 datagram that claims to carry a VRRP advert.
//! Drives the IPv4 view, the VRRP view and parser, and the admission filter
//! the agent runs on every received datagram; checks that whatever they
//! accept is self-consistent and re-emits to the same bytes.

#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use rcbsd_failover::wire::Centis;
use rcbsd_failover::admit::{admit, Policy, RecvMeta};
use rcbsd_failover::wire::{ipv4, vrrp, ChecksumMode};

/// The keepalived captures in tests/vectors use VRID 51 and this VIP, so
/// seeds from them reach the checks after the VRID and address list.
const VIRTUAL_IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 99, 1), Ipv4Addr::new(198, 18, 99, 2)];
/// Bytes 6..8 of a VRRP message (RFC 5798 §5.2.8).
const CHECKSUM: std::ops::Range<usize> = 6..8;
const OWN_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fuzz_target!(|datagram: &[u8]| {
    exercise_views(datagram);
    if let Ok(ip) = ipv4::Header::parse(datagram) {
        assert_eq!(ip.header_len + ip.payload.len(), datagram.len());
        check_parsed_advert(ip.payload, ip.src, ip.dst);
    }
    // The payload alone too: the fuzzer then need not build an IP header to
    // reach the VRRP checks.
    check_parsed_advert(datagram, OWN_ADDRESS, vrrp::MULTICAST_GROUP);
    check_admission(datagram);
});

/// Every accessor of both views, checked or not, must answer without
/// panicking whatever the buffer.
fn exercise_views(bytes: &[u8]) {
    let unchecked = vrrp::Packet::new_unchecked(bytes);
    read_every_vrrp_field(&unchecked);
    if let Ok(checked) = vrrp::Packet::new_checked(bytes) {
        read_every_vrrp_field(&checked);
        assert_eq!(checked.addresses().len(), usize::from(checked.count()));
    }
    if let Ok(ip) = ipv4::Packet::new_checked(bytes) {
        let _ = (
            ip.version(),
            ip.header_len(),
            ip.total_len_field(),
            ip.ident(),
        );
        let _ = (
            ip.flags_frag(),
            ip.ttl(),
            ip.protocol(),
            ip.header_checksum(),
        );
        let _ = (ip.src_addr(), ip.dst_addr(), ip.payload().len());
    }
}

fn read_every_vrrp_field(packet: &vrrp::Packet<&[u8]>) {
    let _ = (
        packet.version(),
        packet.msg_type(),
        packet.vrid(),
        packet.priority(),
    );
    let _ = (
        packet.count(),
        packet.reserved(),
        packet.max_advert_interval(),
    );
    let _ = (
        packet.checksum(),
        packet.addresses().count(),
        packet.as_bytes().len(),
    );
}

/// What `vrrp::parse` accepts is exactly one well-formed advert: the length
/// the count announces, and bytes our own encoder reproduces.
fn check_parsed_advert(payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok((packet, mode)) = vrrp::parse(payload, src, dst) else {
        return;
    };
    assert_eq!(packet.version(), vrrp::VERSION);
    assert_eq!(packet.msg_type(), vrrp::TYPE_ADVERTISEMENT);
    assert_eq!(payload.len(), vrrp::message_len(packet.count()));
    // The encoder clears the reserved bits and refuses a zero interval, so
    // only adverts without either can be reproduced byte for byte.
    if packet.reserved() != 0 || packet.max_advert_interval() == Centis(0) {
        return;
    }
    let addresses: Vec<Ipv4Addr> = packet.addresses().collect();
    let advert = vrrp::Advertisement {
        vrid: packet.vrid(),
        priority: packet.priority(),
        max_advert_interval: packet.max_advert_interval(),
        addresses: &addresses,
    };
    let mut buffer = vec![0u8; advert.buffer_len()];
    let len = advert
        .emit(&mut buffer, src, dst, mode)
        .expect("an advert that parsed must re-emit");
    let emitted = &buffer[..len];
    // The checksum may legitimately differ: a one's-complement zero has two
    // encodings, and old keepalived unicast adverts summed 224.0.0.18 into
    // the pseudo-header. Every other byte must be the same, and what we
    // emit must pass our own parser in the form we chose.
    assert_eq!(emitted[..CHECKSUM.start], payload[..CHECKSUM.start]);
    assert_eq!(emitted[CHECKSUM.end..], payload[CHECKSUM.end..]);
    let (_, reparsed_mode) = vrrp::parse(emitted, src, dst).expect("our own advert must parse");
    if mode == ChecksumMode::NoPseudoHeader {
        // A pseudo-header summing to zero makes both forms verify; parse
        // then reports the pseudo-header form, which is still correct.
        assert!(reparsed_mode == mode || reparsed_mode == ChecksumMode::PseudoHeader);
    } else {
        assert_eq!(reparsed_mode, mode);
    }
}

fn check_admission(datagram: &[u8]) {
    let policy = Policy {
        vrid: 51,
        ifindex: 2,
        own_addresses: &[OWN_ADDRESS],
        unicast_peers: &[],
        virtual_ips: &VIRTUAL_IPS[..1],
        we_are_owner: false,
    };
    for meta in [RecvMeta { ifindex: None }, RecvMeta { ifindex: Some(2) }] {
        if let Ok(admitted) = admit(datagram, &meta, &policy) {
            let ip = ipv4::Header::parse(datagram).expect("admitted datagrams parse as IPv4");
            assert_eq!(ip.ttl, vrrp::TTL);
            assert_eq!(admitted.advert.source, ip.src);
            assert_ne!(admitted.advert.source, OWN_ADDRESS);
            assert_ne!(admitted.advert.max_advert_interval, Centis(0));
        }
    }
}
