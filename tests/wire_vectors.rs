//! The codec and receive admission against advertisements captured from
//! keepalived 2.2.7 (tests/vectors/, see its README for how each was made).

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use rcbsd_failover::admit::{admit, DropReason, Policy, RecvMeta};
use rcbsd_failover::wire::checksum::verify_vrrp;
use rcbsd_failover::wire::vrrp::{self, Advertisement, MULTICAST_GROUP};
use rcbsd_failover::wire::Centis;
use rcbsd_failover::wire::{ipv4, ipv6, ndisc, vrrp6, ChecksumMode};

const KEEPALIVED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CAPTURER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP1: Ipv4Addr = Ipv4Addr::new(198, 18, 99, 1);
const VIP2: Ipv4Addr = Ipv4Addr::new(198, 18, 99, 2);

/// The datagrams of one vector file: one hex line each, `#` lines are notes.
fn load(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let datagrams: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| decode_hex(line).unwrap_or_else(|| panic!("{name}: bad hex line {line}")))
        .collect();
    assert!(!datagrams.is_empty(), "{name} holds no datagram");
    datagrams
}

fn decode_hex(line: &str) -> Option<Vec<u8>> {
    if line.len() % 2 != 0 {
        return None;
    }
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(line.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What every captured advert in a file must say.
struct Expected {
    dst: Ipv4Addr,
    interval: Centis,
    addresses: &'static [Ipv4Addr],
    checksum: ChecksumMode,
}

/// Checks every field of every datagram; the last one of each capture is the
/// priority-0 advert keepalived sends when it stops as master (§6.4.3).
fn check_file(name: &str, expected: &Expected) {
    let datagrams = load(name);
    let last = datagrams.len() - 1;
    for (i, datagram) in datagrams.iter().enumerate() {
        let ip = ipv4::Header::parse(datagram).expect("valid IPv4 header");
        assert_eq!(ip.src, KEEPALIVED, "{name}[{i}]");
        assert_eq!(ip.dst, expected.dst, "{name}[{i}]");
        assert_eq!(ip.ttl, 255, "{name}[{i}]");
        assert_eq!(ip.protocol, 112, "{name}[{i}]");
        assert_eq!(ip.header_len, 20, "{name}[{i}]");

        let (packet, mode) = vrrp::parse(ip.payload, ip.src, ip.dst).expect("valid advert");
        assert_eq!(mode, expected.checksum, "{name}[{i}]");
        assert_eq!(packet.version(), 3);
        assert_eq!(packet.msg_type(), 1);
        assert_eq!(packet.vrid(), 51);
        let priority = if i == last { 0 } else { 150 };
        assert_eq!(packet.priority(), priority, "{name}[{i}]");
        assert_eq!(usize::from(packet.count()), expected.addresses.len());
        assert_eq!(packet.reserved(), 0);
        assert_eq!(packet.max_advert_interval(), expected.interval);
        assert_eq!(packet.addresses().collect::<Vec<_>>(), expected.addresses);

        // Our encoder produces the same bytes (pseudo-header form with the
        // real destination); the old-checksum capture differs by design.
        if name != "keepalived-2.2.7-unicast-old-checksum.hex" {
            let advert = Advertisement {
                vrid: 51,
                priority,
                max_advert_interval: expected.interval,
                addresses: expected.addresses,
            };
            let mut ours = vec![0u8; advert.buffer_len()];
            advert
                .emit(&mut ours, ip.src, ip.dst, ChecksumMode::PseudoHeader)
                .expect("fits");
            assert_eq!(ours, ip.payload, "{name}[{i}]: our encoding differs");
        }
    }
}

#[test]
fn keepalived_multicast_adverts_decode_field_by_field() {
    check_file(
        "keepalived-2.2.7-multicast.hex",
        &Expected {
            dst: MULTICAST_GROUP,
            interval: Centis(100),
            addresses: &[VIP1],
            checksum: ChecksumMode::PseudoHeader,
        },
    );
}

#[test]
fn keepalived_two_vip_fast_adverts_decode_field_by_field() {
    check_file(
        "keepalived-2.2.7-multicast-two-vips.hex",
        &Expected {
            dst: MULTICAST_GROUP,
            interval: Centis(25),
            addresses: &[VIP1, VIP2],
            checksum: ChecksumMode::PseudoHeader,
        },
    );
}

#[test]
fn keepalived_unicast_adverts_checksum_over_the_peer_address() {
    check_file(
        "keepalived-2.2.7-unicast.hex",
        &Expected {
            dst: CAPTURER,
            interval: Centis(100),
            addresses: &[VIP1],
            checksum: ChecksumMode::PseudoHeader,
        },
    );
}

#[test]
fn keepalived_old_unicast_checksum_is_accepted() {
    check_file(
        "keepalived-2.2.7-unicast-old-checksum.hex",
        &Expected {
            dst: CAPTURER,
            interval: Centis(100),
            addresses: &[VIP1],
            checksum: ChecksumMode::PseudoHeader,
        },
    );
    // It really is the multicast-destination form: the same bytes as the
    // multicast capture's VRRP part, though sent to the peer.
    let old = load("keepalived-2.2.7-unicast-old-checksum.hex");
    let multicast = load("keepalived-2.2.7-multicast.hex");
    assert_eq!(old[0].get(20..), multicast[0].get(20..));
}

#[test]
fn keepalived_advert_rechecksummed_without_pseudo_header_is_recognised() {
    // keepalived 2.2.7 cannot send the plain form (its `v3_checksum_as_v2`
    // came later), so take a real advert and recompute its checksum plainly.
    let datagram = &load("keepalived-2.2.7-multicast.hex")[0];
    let ip = ipv4::Header::parse(datagram).expect("valid");
    let mut body = ip.payload.to_vec();
    let mut packet = vrrp::Packet::new_unchecked(&mut body[..]);
    packet.fill_checksum(ip.src, ip.dst, ChecksumMode::NoPseudoHeader);
    assert_ne!(body.as_slice(), ip.payload);
    assert_eq!(
        verify_vrrp(&body, ip.src, ip.dst),
        Some(ChecksumMode::NoPseudoHeader)
    );
}

fn capturer_policy<'a>(peers: &'a [Ipv4Addr], vips: &'a [Ipv4Addr]) -> Policy<'a> {
    Policy {
        vrid: 51,
        ifindex: 2,
        own_addresses: &[CAPTURER],
        unicast_peers: peers,
        virtual_ips: vips,
        we_are_owner: false,
    }
}

#[test]
fn keepalived_adverts_pass_admission() {
    let meta = RecvMeta { ifindex: Some(2) };
    let cases: [(&str, &[Ipv4Addr], &[Ipv4Addr]); 4] = [
        ("keepalived-2.2.7-multicast.hex", &[], &[VIP1]),
        (
            "keepalived-2.2.7-multicast-two-vips.hex",
            &[],
            &[VIP2, VIP1],
        ),
        ("keepalived-2.2.7-unicast.hex", &[KEEPALIVED], &[VIP1]),
        (
            "keepalived-2.2.7-unicast-old-checksum.hex",
            &[KEEPALIVED],
            &[VIP1],
        ),
    ];
    for (name, peers, vips) in cases {
        for datagram in load(name) {
            let admitted = admit(&datagram, &meta, &capturer_policy(peers, vips))
                .unwrap_or_else(|reason| panic!("{name}: dropped as {reason}"));
            assert_eq!(admitted.advert.source, KEEPALIVED);
            assert_eq!(admitted.checksum, ChecksumMode::PseudoHeader);
        }
    }
}

#[test]
fn keepalived_advert_with_ttl_254_is_dropped() {
    let mut datagram = load("keepalived-2.2.7-multicast.hex").remove(0);
    datagram[8] = 254;
    let meta = RecvMeta { ifindex: Some(2) };
    assert_eq!(
        admit(&datagram, &meta, &capturer_policy(&[], &[VIP1])),
        Err(DropReason::BadTtl)
    );
}

/// keepalived 2.2.7 over IPv6 (capture-keepalived-ipv6.sh): every VRRP
/// advert decodes field by field, verifies over the IPv6 pseudo-header and
/// is what our encoder writes; every Neighbor Advertisement is keepalived's
/// form (O set, R clear without forwarding, the interface MAC) and is what
/// our builder writes with those fields.
#[test]
fn keepalived_ipv6_adverts_and_neighbor_advertisements() {
    let name = "keepalived-2.2.7-ipv6.hex";
    let source: Ipv6Addr = "fe80::ff:fe00:1".parse().unwrap();
    let vips: [Ipv6Addr; 2] = [
        "fe80::51".parse().unwrap(),
        "2001:db8:99::1".parse().unwrap(),
    ];
    let interface_mac = [0x02, 0, 0, 0, 0, 0x01];
    let datagrams = load(name);
    let adverts = datagrams.iter().filter(|d| d[6] == vrrp6::PROTOCOL).count();
    let last_advert = datagrams
        .iter()
        .rposition(|d| d[6] == vrrp6::PROTOCOL)
        .unwrap();
    let mut announced = Vec::new();
    for (i, datagram) in datagrams.iter().enumerate() {
        let ip = ipv6::Header::parse(datagram).expect("valid IPv6 header");
        assert_eq!(ip.hop_limit, 255, "{name}[{i}]");
        match ip.next_header {
            vrrp6::PROTOCOL => {
                assert_eq!((ip.src, ip.dst), (source, vrrp6::MULTICAST_GROUP));
                let packet = vrrp6::parse(ip.payload, ip.src, ip.dst).expect("valid advert");
                assert_eq!(
                    (packet.version(), packet.msg_type(), packet.vrid()),
                    (3, 1, 51)
                );
                let priority = if i == last_advert { 0 } else { 150 };
                assert_eq!(packet.priority(), priority, "{name}[{i}]");
                assert_eq!(packet.max_advert_interval(), Centis(100));
                assert_eq!(packet.addresses().collect::<Vec<_>>(), vips);
                let advert = vrrp6::Ipv6Advertisement {
                    vrid: 51,
                    priority,
                    max_advert_interval: Centis(100),
                    addresses: &vips,
                };
                let mut ours = vec![0u8; advert.buffer_len()];
                advert.emit(&mut ours, ip.src, ip.dst).expect("fits");
                assert_eq!(ours, ip.payload, "{name}[{i}]: our encoding differs");
            }
            ipv6::NEXT_HEADER_ICMPV6 => {
                assert_eq!(ip.dst, ipv6::ALL_NODES, "{name}[{i}]");
                let na = ndisc::NeighborAdvertisement::parse(ip.payload, ip.src, ip.dst)
                    .expect("valid Neighbor Advertisement");
                // keepalived sends each VIP's NA from the VIP itself.
                assert_eq!(na.target, ip.src, "{name}[{i}]");
                let keepalived_form = ndisc::NeighborAdvertisement {
                    router: false,
                    ..ndisc::NeighborAdvertisement::unsolicited(na.target, interface_mac)
                };
                assert_eq!(na, keepalived_form, "{name}[{i}]");
                let mut ours = [0u8; ndisc::MESSAGE_LEN];
                na.emit(&mut ours, ip.src, ip.dst).expect("fits");
                assert_eq!(&ours[..], ip.payload, "{name}[{i}]: our encoding differs");
                announced.push(na.target);
            }
            other => panic!("{name}[{i}]: next header {other}"),
        }
    }
    assert!(adverts >= 2, "{name}: {adverts} adverts");
    // Both VIPs were announced, each more than once (keepalived's burst).
    for vip in vips {
        assert!(
            announced.iter().filter(|&&t| t == vip).count() >= 2,
            "{vip}"
        );
    }
}
