//! The flooder's packets: every kind of junk a master's receive path must
//! survive, built once before the flood so the send loop does nothing but
//! `sendto`. Pure functions of a seeded generator; no sockets here.
//!
//! Protocol-112 junk is a whole IPv4 datagram (the flooder sends with
//! `IP_HDRINCL` so it can choose the TTL); heartbeat junk is a UDP payload.
//! Every advert-shaped packet claims priority 254, above every lab node: if
//! one of them got past a check it would preempt the master, and the
//! benchmark would see it. The one kind that is *meant* to pass the checks
//! (a valid advert with a lower priority) stays below every lab priority so
//! that it cannot legitimately change a backup's view either.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::rng::Rng;
use rcbsd_failover::wire::vrrp::{self, Advertisement};
use rcbsd_failover::wire::Centis;
use rcbsd_failover::wire::{checksum, ipv4, ChecksumMode};

/// Above every lab node's priority (150 at most): a forged advert that the
/// master accepted would take over, visibly.
const FORGED_PRIORITY: u8 = 254;
/// Below every lab node's priority (10 at least, see
/// `agents::DEFAULT_PRIORITIES`): a valid advert the RFC tells every node to
/// ignore when preempting (RFC 5798 §6.4.2, §6.4.3). Never 0, which would
/// be a (valid, unauthenticated) resignation of the master.
const LOWER_PRIORITY_MAX: u8 = 9;
/// The first bytes of every heartbeat (`src/wire/heartbeat.rs`).
const HEARTBEAT_MAGIC: &[u8; 4] = b"RCHB";
/// Variants prepared per schedule slot: enough that consecutive packets of
/// one kind differ, few enough to build in a blink.
pub const VARIANTS: usize = 64;

/// What a junk packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JunkKind {
    /// IP protocol 112 with random bytes as payload (1 to 80 bytes).
    RandomVrrp,
    /// A well-formed advert for our VRID whose checksum matches no form.
    BadChecksum,
    /// A valid advert for our VRID sent with a TTL other than 255.
    WrongTtl,
    /// A valid advert for another VRID.
    WrongVrid,
    /// The first 1 to 11 bytes of a valid advert.
    Truncated,
    /// A valid advert for our VRID with a priority below every node's.
    LowerPriority,
    /// A UDP datagram of random bytes to the heartbeat port.
    RandomHeartbeat,
    /// `RCHB` followed by 0 to 12 random bytes: a heartbeat cut short.
    TruncatedHeartbeat,
}

impl JunkKind {
    pub fn label(self) -> &'static str {
        match self {
            JunkKind::RandomVrrp => "random_vrrp",
            JunkKind::BadChecksum => "bad_checksum",
            JunkKind::WrongTtl => "wrong_ttl",
            JunkKind::WrongVrid => "wrong_vrid",
            JunkKind::Truncated => "truncated",
            JunkKind::LowerPriority => "lower_priority",
            JunkKind::RandomHeartbeat => "random_heartbeat",
            JunkKind::TruncatedHeartbeat => "truncated_heartbeat",
        }
    }

    /// Whether this kind goes over UDP (the heartbeat port) rather than as
    /// an IP protocol-112 datagram.
    pub fn is_udp(self) -> bool {
        matches!(
            self,
            JunkKind::RandomHeartbeat | JunkKind::TruncatedHeartbeat
        )
    }
}

/// Where a junk packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The master's own address.
    Master,
    /// 224.0.0.18: every node receives it.
    Group,
}

/// The order the send loop cycles through: each kind once or twice, to the
/// master's address and to the group, heartbeat junk to the master only
/// (heartbeats are unicast).
pub const SCHEDULE: [(JunkKind, Destination); 10] = [
    (JunkKind::RandomVrrp, Destination::Master),
    (JunkKind::RandomVrrp, Destination::Group),
    (JunkKind::BadChecksum, Destination::Group),
    (JunkKind::WrongTtl, Destination::Group),
    (JunkKind::WrongVrid, Destination::Master),
    (JunkKind::Truncated, Destination::Group),
    (JunkKind::LowerPriority, Destination::Group),
    (JunkKind::LowerPriority, Destination::Master),
    (JunkKind::RandomHeartbeat, Destination::Master),
    (JunkKind::TruncatedHeartbeat, Destination::Master),
];

/// Who is attacked, and from where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The flooder's own address (the source of every packet: the
    /// benchmark measures load, not spoofing).
    pub source: Ipv4Addr,
    pub master: Ipv4Addr,
    pub vrid: u8,
    pub vip: Ipv4Addr,
    pub heartbeat_port: u16,
}

impl Target {
    pub fn address(&self, destination: Destination) -> Ipv4Addr {
        match destination {
            Destination::Master => self.master,
            Destination::Group => vrrp::MULTICAST_GROUP,
        }
    }
}

/// One junk packet of `kind` for `destination`: a whole IPv4 datagram for
/// protocol-112 kinds, a UDP payload for heartbeat kinds.
pub fn build(kind: JunkKind, destination: Destination, target: &Target, rng: &mut Rng) -> Vec<u8> {
    let dst = target.address(destination);
    match kind {
        JunkKind::RandomVrrp => {
            let mut payload = vec![0; usize::from(rng.between(1, 80))];
            rng.fill(&mut payload);
            datagram(target.source, dst, vrrp::TTL, &payload)
        }
        JunkKind::BadChecksum => {
            let mut advert = advert(target, dst, target.vrid, FORGED_PRIORITY);
            spoil_checksum(&mut advert, target.source, dst);
            datagram(target.source, dst, vrrp::TTL, &advert)
        }
        JunkKind::WrongTtl => {
            let advert = advert(target, dst, target.vrid, FORGED_PRIORITY);
            datagram(target.source, dst, rng.between(1, vrrp::TTL - 1), &advert)
        }
        JunkKind::WrongVrid => {
            let vrid = loop {
                let vrid = rng.between(1, u8::MAX);
                if vrid != target.vrid {
                    break vrid;
                }
            };
            let advert = advert(target, dst, vrid, FORGED_PRIORITY);
            datagram(target.source, dst, vrrp::TTL, &advert)
        }
        JunkKind::Truncated => {
            let mut advert = advert(target, dst, target.vrid, FORGED_PRIORITY);
            let keep = usize::from(rng.between(1, 11)).min(advert.len().saturating_sub(1));
            advert.truncate(keep);
            datagram(target.source, dst, vrrp::TTL, &advert)
        }
        JunkKind::LowerPriority => {
            let advert = advert(target, dst, target.vrid, rng.between(1, LOWER_PRIORITY_MAX));
            datagram(target.source, dst, vrrp::TTL, &advert)
        }
        JunkKind::RandomHeartbeat => {
            let mut payload = vec![0; usize::from(rng.between(1, 200))];
            rng.fill(&mut payload);
            payload
        }
        JunkKind::TruncatedHeartbeat => {
            let mut payload = HEARTBEAT_MAGIC.to_vec();
            let mut tail = vec![0; usize::from(rng.between(0, 12))];
            rng.fill(&mut tail);
            payload.extend_from_slice(&tail);
            payload
        }
    }
}

/// A correct advert (pseudo-header checksum) announcing the lab's VIP.
fn advert(target: &Target, dst: Ipv4Addr, vrid: u8, priority: u8) -> Vec<u8> {
    let addresses = [target.vip];
    let advert = Advertisement {
        vrid,
        priority,
        max_advert_interval: Centis(100),
        addresses: &addresses,
    };
    let mut buf = vec![0; advert.buffer_len()];
    // Cannot fail: one address, a valid interval, a buffer of the exact size.
    let len = advert
        .emit(&mut buf, target.source, dst, ChecksumMode::PseudoHeader)
        .unwrap_or(0);
    buf.truncate(len);
    buf
}

/// Changes the checksum until it verifies in no accepted form (receivers
/// try several, see `checksum::verify_vrrp`).
fn spoil_checksum(advert: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
    for _ in 0..8 {
        if let Some(sum) = advert.get_mut(6..8) {
            let value = u16::from_be_bytes([sum[0], sum[1]]).wrapping_add(0x1111);
            sum.copy_from_slice(&value.to_be_bytes());
        }
        if checksum::verify_vrrp(advert, src, dst).is_none() {
            return;
        }
    }
}

/// `payload` behind a 20-byte IPv4 header with protocol 112 and `ttl`.
fn datagram(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; 20 + payload.len()];
    let header_len =
        ipv4::emit_header(&mut buf, src, dst, vrrp::PROTOCOL, ttl, payload.len()).unwrap_or(20);
    if let Some(rest) = buf.get_mut(header_len..) {
        rest.copy_from_slice(payload);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            source: Ipv4Addr::new(198, 18, 0, 2),
            master: Ipv4Addr::new(198, 18, 0, 11),
            vrid: 51,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            heartbeat_port: 7798,
        }
    }

    /// What a receiver following RFC 5798 §7.1 makes of a protocol-112
    /// datagram: accepted as an advert for `vrid` with this priority, or not.
    fn accepted(datagram: &[u8], vrid: u8) -> Option<u8> {
        let header = ipv4::Header::parse(datagram).ok()?;
        if header.ttl != vrrp::TTL || header.protocol != vrrp::PROTOCOL {
            return None;
        }
        let (packet, _) = vrrp::parse(header.payload, header.src, header.dst).ok()?;
        (packet.vrid() == vrid).then(|| packet.priority())
    }

    #[test]
    fn only_lower_priority_adverts_pass_the_checks() {
        let target = target();
        let mut rng = Rng::new(7);
        for (kind, destination) in SCHEDULE {
            if kind.is_udp() {
                continue;
            }
            for _ in 0..VARIANTS {
                let packet = build(kind, destination, &target, &mut rng);
                let result = accepted(&packet, target.vrid);
                match kind {
                    JunkKind::LowerPriority => {
                        let priority = result.expect("a valid advert");
                        assert!((1..=LOWER_PRIORITY_MAX).contains(&priority));
                    }
                    // Random bytes could in theory form a valid advert; with
                    // this seed they do not, and the forged priority would
                    // show it if they did.
                    _ => assert_eq!(result, None, "{kind:?} to {destination:?} accepted"),
                }
            }
        }
    }

    #[test]
    fn heartbeat_junk_is_short_or_magic() {
        let target = target();
        let mut rng = Rng::new(11);
        for _ in 0..VARIANTS {
            let cut = build(
                JunkKind::TruncatedHeartbeat,
                Destination::Master,
                &target,
                &mut rng,
            );
            assert!(cut.starts_with(HEARTBEAT_MAGIC) && cut.len() <= 16);
            let random = build(
                JunkKind::RandomHeartbeat,
                Destination::Master,
                &target,
                &mut rng,
            );
            assert!((1..=200).contains(&random.len()));
        }
    }

    #[test]
    fn generator_stays_in_range() {
        let mut rng = Rng::new(0);
        assert!((0..10_000).all(|_| (3..=9).contains(&rng.between(3, 9))));
        assert_eq!(rng.between(5, 5), 5);
        let mut buf = [0u8; 13];
        rng.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
    }
}
