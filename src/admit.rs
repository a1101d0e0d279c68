//! Receive admission (RFC 5798 §7.1): decides, without any I/O, whether a
//! datagram read from the raw socket is an advertisement the election core
//! should see, or a drop with a named reason for the counters.
//!
//! The checks run in the order §7.1 lists them (TTL, version, completeness,
//! checksum, VRID on this interface, address owner, address list), with the
//! IP-level checks before and our local policy (own packets, unicast peers,
//! a zero interval, then authentication) after.
//!
//! IPv6 adverts have their own entry point, [`v6::admit`]: the IP-level
//! checks differ (the socket strips the IPv6 header and reports the hop
//! limit and destination in control messages); everything from the VRID
//! on is shared by both families (`check_parsed`).
//!
//! # Authentication and replay
//!
//! With `[auth]` on, an advert must end with the trailer of
//! [`crate::wire::advert_auth`], whose tag must verify and whose counter
//! must be newer than the last one accepted from the same source. The
//! replay state is passed in by the caller ([`AdvertAuth::replay`]) rather
//! than kept here: admission stays free of I/O, clocks and hidden state,
//! and one call still gives one verdict, so no caller can forget the replay
//! check or count its drops in another place. Authentication runs last, so
//! a datagram that fails a cheaper check costs no HMAC, and the guard only
//! records counters of adverts that are otherwise admitted.

use std::net::{IpAddr, Ipv4Addr};

use crate::auth::{Keyring, ReplayGuard};
use crate::election::ReceivedAdvert;
use crate::wire::advert_auth::{self, Verified};
use crate::wire::Centis;
use crate::wire::{ipv4, vrrp, ChecksumMode};

/// What the platform told us about how the datagram arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// Index of the interface the datagram arrived on (IP_PKTINFO on Linux,
    /// IP_RECVIF on FreeBSD), if the platform said.
    pub ifindex: Option<u32>,
}

pub mod v6;

/// The local configuration admission compares a datagram against; `A` is
/// the address family (IPv4 by default, [`std::net::Ipv6Addr`] for
/// [`v6::admit`]).
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a, A = Ipv4Addr> {
    /// The Virtual Router Identifier we run (1..=255, RFC 5798 §5.2.3).
    pub vrid: u8,
    /// The interface VRRP runs on.
    pub ifindex: u32,
    /// Our addresses on that interface (the sources of our own adverts).
    pub own_addresses: &'a [A],
    /// Empty = multicast mode (any source accepted).
    pub unicast_peers: &'a [A],
    /// Our configured virtual addresses, which a non-owner's advert must
    /// list exactly, as a set (§7.1).
    pub virtual_ips: &'a [A],
    /// We have priority 255: we own the virtual addresses.
    pub we_are_owner: bool,
}

/// Authentication of received adverts: the keys, and the newest counter
/// accepted from each source address.
#[derive(Debug)]
pub struct AdvertAuth<'a, A = Ipv4Addr> {
    /// The keys a trailer's tag may verify with (the send key and, during a
    /// rotation, the accepted one).
    pub keys: &'a Keyring,
    /// The newest counter accepted per source; updated when an advert is admitted.
    pub replay: &'a mut ReplayGuard<A>,
    /// When the datagram arrived (monotonic clock).
    pub now: std::time::Instant,
    /// How long a sender must have been silent before a lower incarnation
    /// of it is taken as a restart ([`ReplayGuard::accept_at`]).
    pub restart_silence: std::time::Duration,
}

/// An advertisement that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The fields the election core needs: source, priority, interval.
    pub advert: ReceivedAdvert,
    /// The checksum form the sender used (recorded for `status`).
    pub checksum: ChecksumMode,
    /// The verified counter and key, when authentication is on.
    pub auth: Option<Verified>,
}

/// Why a datagram was dropped. Names (from [`DropReason::as_str`]) are an
/// interface: they appear in logs, in `status` and in the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a well-formed IPv4 datagram: truncated header, IHL below 5,
    /// version not 4, or a Total Length that does not match what was read.
    MalformedIp,
    /// IP protocol is not 112. A raw socket opened for 112 should never see
    /// one; counted rather than trusted.
    NotVrrp,
    /// §7.1: the TTL MUST be 255, proving the sender is on our link
    /// (§5.1.1.3); anything else was routed, or forged from afar.
    BadTtl,
    /// IPv6 only: the destination the socket reported is not ff02::12 in
    /// multicast mode (§5.1.2.2), or is a multicast group in unicast mode;
    /// or the socket reported none (no `IPV6_PKTINFO`).
    BadDestination,
    /// IPv6 multicast mode only: the source is not link-local (fe80::/10).
    /// §5.1.2.1 says the sender uses "the IPv6 link-local address of the
    /// interface the packet is being sent from"; a router on the link has
    /// one, so another source is a misconfigured or forged sender.
    SourceNotLinkLocal,
    /// §7.1: the VRRP version MUST be 3 (a VRRPv2 speaker, for instance).
    BadVersion,
    /// §5.2.2: a packet with an unknown type MUST be discarded; 1
    /// (ADVERTISEMENT) is the only type.
    BadType,
    /// §7.1: the packet MUST contain the complete VRRP message: shorter than
    /// the fixed header, or a length that differs from 8 + 4 × Count.
    BadLength,
    /// §5.2.5: Count IPvX Addr is 0, the minimum is 1.
    NoAddresses,
    /// §7.1: the checksum MUST verify; it matched neither the pseudo-header
    /// form nor the plain one.
    BadChecksum,
    /// §7.1: the VRID MUST be configured on the *receiving interface*: the
    /// datagram arrived on another interface than ours.
    WrongInterface,
    /// §7.1: the VRID is not the one we run.
    WrongVrid,
    /// §7.1: the local router MUST NOT be the address owner (priority 255);
    /// an owner is always master and ignores others' adverts.
    WeAreOwner,
    /// The source is one of our own addresses: our own multicast advert
    /// looped back (or a forgery of it). Electing against ourselves would
    /// be meaningless.
    OwnPacket,
    /// Unicast mode: the source is not one of the configured
    /// `unicast_peers`, and only they may take part.
    NotAPeer,
    /// §7.1: the address list differs (as a set) from our virtual IPs and
    /// the sender is not the owner (priority ≠ 255): it MUST be dropped.
    AddressMismatch,
    /// Max Adver Int is 0: Master_Down_Interval (§6.1) would collapse to the
    /// skew time and a backup would preempt a live master at once.
    ZeroInterval,
    /// Authentication is on here and the advert has no trailer: an
    /// RFC 5798 router, or a node whose `[auth]` is off.
    AuthMissing,
    /// The trailer's tag matches none of our keys: a wrong key on the
    /// sender, or a forged or altered advert.
    AuthBad,
    /// The tag is good but the counter is not newer than the last one
    /// accepted from that source: a replayed or reordered advert (or, with
    /// a full replay guard, a source beyond its capacity).
    AuthReplayed,
    /// Authentication is off here and the advert carries a trailer: the
    /// nodes' `[auth]` sections differ.
    AuthUnexpected,
}

impl DropReason {
    /// Every reason, in the order the checks run; indexes [`DropCounters`].
    pub const ALL: [DropReason; 21] = [
        DropReason::MalformedIp,
        DropReason::NotVrrp,
        DropReason::BadTtl,
        DropReason::BadDestination,
        DropReason::SourceNotLinkLocal,
        DropReason::BadVersion,
        DropReason::BadType,
        DropReason::BadLength,
        DropReason::NoAddresses,
        DropReason::BadChecksum,
        DropReason::WrongInterface,
        DropReason::WrongVrid,
        DropReason::WeAreOwner,
        DropReason::OwnPacket,
        DropReason::NotAPeer,
        DropReason::AddressMismatch,
        DropReason::ZeroInterval,
        DropReason::AuthMissing,
        DropReason::AuthBad,
        DropReason::AuthReplayed,
        DropReason::AuthUnexpected,
    ];

    /// The stable snake_case name used in logs, `status` and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::MalformedIp => "malformed_ip",
            DropReason::NotVrrp => "not_vrrp",
            DropReason::BadTtl => "bad_ttl",
            DropReason::BadDestination => "bad_destination",
            DropReason::SourceNotLinkLocal => "source_not_link_local",
            DropReason::BadVersion => "bad_version",
            DropReason::BadType => "bad_type",
            DropReason::BadLength => "bad_length",
            DropReason::NoAddresses => "no_addresses",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::WrongInterface => "wrong_interface",
            DropReason::WrongVrid => "wrong_vrid",
            DropReason::WeAreOwner => "we_are_owner",
            DropReason::OwnPacket => "own_packet",
            DropReason::NotAPeer => "not_a_peer",
            DropReason::AddressMismatch => "address_mismatch",
            DropReason::ZeroInterval => "zero_interval",
            DropReason::AuthMissing => "auth_missing",
            DropReason::AuthBad => "auth_bad",
            DropReason::AuthReplayed => "auth_replayed",
            DropReason::AuthUnexpected => "auth_unexpected",
        }
    }

    /// Position in [`DropReason::ALL`] (the enum is declared in that order).
    fn index(self) -> usize {
        self as usize
    }

    /// Whether the drop is an authentication failure (alerted as
    /// `auth_failed`, rate-limited, besides being counted).
    pub fn is_auth_failure(self) -> bool {
        matches!(
            self,
            DropReason::AuthMissing
                | DropReason::AuthBad
                | DropReason::AuthReplayed
                | DropReason::AuthUnexpected
        )
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<vrrp::Error> for DropReason {
    fn from(error: vrrp::Error) -> Self {
        match error {
            vrrp::Error::BadVersion(_) => DropReason::BadVersion,
            vrrp::Error::BadType(_) => DropReason::BadType,
            vrrp::Error::NoAddresses => DropReason::NoAddresses,
            vrrp::Error::BadChecksum => DropReason::BadChecksum,
            vrrp::Error::Truncated { .. }
            | vrrp::Error::BadLength { .. }
            // Emit-side errors cannot come out of parsing; mapped for totality.
            | vrrp::Error::BufferTooSmall { .. }
            | vrrp::Error::BadAddressCount(_)
            | vrrp::Error::BadInterval(_) => DropReason::BadLength,
        }
    }
}

/// Decides whether `datagram` (IPv4 header included, as raw sockets deliver
/// it) is an advertisement for us, with authentication off.
pub fn admit(datagram: &[u8], meta: &RecvMeta, policy: &Policy) -> Result<Admitted, DropReason> {
    admit_with_auth(datagram, meta, policy, None)
}

/// Decides whether `datagram` is an advertisement for us; with `auth`, it
/// must also be authenticated and not replayed (and its counter is then
/// recorded in the replay guard).
pub fn admit_with_auth(
    datagram: &[u8],
    meta: &RecvMeta,
    policy: &Policy,
    auth: Option<&mut AdvertAuth<'_>>,
) -> Result<Admitted, DropReason> {
    let ip = ipv4::Header::parse(datagram).map_err(|_| DropReason::MalformedIp)?;
    if ip.protocol != vrrp::PROTOCOL {
        return Err(DropReason::NotVrrp);
    }
    if ip.ttl != vrrp::TTL {
        return Err(DropReason::BadTtl);
    }
    // Count says where the VRRP message ends; what follows is judged in
    // check_parsed.
    let vrrp_len = vrrp::message_len(vrrp::Packet::new_unchecked(ip.payload).count());
    let (message, trailer) = advert_auth::split(ip.payload, vrrp_len);
    let (packet, checksum) = vrrp::parse(message, ip.src, ip.dst)?;
    let verified = check_parsed(
        Parsed {
            src: ip.src,
            dst: ip.dst,
            vrid: packet.vrid(),
            priority: packet.priority(),
            max_advert_interval: packet.max_advert_interval(),
            addresses: packet.addresses(),
            message,
            trailer,
        },
        meta.ifindex,
        policy,
        auth,
    )?;
    Ok(Admitted {
        advert: ReceivedAdvert {
            source: ip.src.into(),
            priority: packet.priority(),
            max_advert_interval: packet.max_advert_interval(),
        },
        checksum,
        auth: verified,
    })
}

/// A VRRP message that parsed (version, type, length, checksum), with the
/// addresses of the datagram that carried it: what the checks shared by
/// both families look at.
struct Parsed<'m, A, I> {
    src: A,
    dst: A,
    vrid: u8,
    priority: u8,
    max_advert_interval: Centis,
    /// The advert's address list.
    addresses: I,
    /// The VRRP message (what the auth tag covers with the addresses).
    message: &'m [u8],
    /// The bytes after the message, if any.
    trailer: Option<&'m [u8]>,
}

/// The checks after the VRRP message itself parsed, the same for IPv4 and
/// IPv6 (§7.1 from the VRID on, then our local policy and authentication);
/// returns the verified counter when authentication is on.
fn check_parsed<A, I>(
    parsed: Parsed<'_, A, I>,
    ifindex: Option<u32>,
    policy: &Policy<'_, A>,
    auth: Option<&mut AdvertAuth<'_, A>>,
) -> Result<Option<Verified>, DropReason>
where
    A: Copy + Ord + Into<IpAddr>,
    I: Iterator<Item = A> + Clone,
{
    // Count says where the VRRP message ends; what follows is our auth
    // trailer or, being neither padding nor VRRPv3 (§5.2), a bad length.
    if parsed
        .trailer
        .is_some_and(|rest| !advert_auth::is_trailer(rest))
    {
        return Err(DropReason::BadLength);
    }
    if ifindex.is_some_and(|ifindex| ifindex != policy.ifindex) {
        return Err(DropReason::WrongInterface);
    }
    if parsed.vrid != policy.vrid {
        return Err(DropReason::WrongVrid);
    }
    if policy.we_are_owner {
        return Err(DropReason::WeAreOwner);
    }
    if policy.own_addresses.contains(&parsed.src) {
        return Err(DropReason::OwnPacket);
    }
    if !policy.unicast_peers.is_empty() && !policy.unicast_peers.contains(&parsed.src) {
        return Err(DropReason::NotAPeer);
    }
    if parsed.priority != 255 && !same_set(parsed.addresses, policy.virtual_ips) {
        return Err(DropReason::AddressMismatch);
    }
    if parsed.max_advert_interval == Centis(0) {
        return Err(DropReason::ZeroInterval);
    }
    authenticate(auth, parsed.trailer, parsed.src, parsed.dst, parsed.message)
}

/// The authentication verdict for a VRRP `message` and the `trailer` that
/// followed it (already known to have the trailer's shape).
fn authenticate<A: Copy + Ord + Into<IpAddr>>(
    auth: Option<&mut AdvertAuth<'_, A>>,
    trailer: Option<&[u8]>,
    src: A,
    dst: A,
    message: &[u8],
) -> Result<Option<Verified>, DropReason> {
    match (auth, trailer) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(DropReason::AuthUnexpected),
        (Some(_), None) => Err(DropReason::AuthMissing),
        (Some(auth), Some(trailer)) => {
            let verified = advert_auth::verify(trailer, auth.keys, src, dst, message)
                .map_err(|_| DropReason::AuthBad)?;
            auth.replay
                .accept_at(src, verified.counter, auth.now, auth.restart_silence)
                .map_err(|_| DropReason::AuthReplayed)?;
            Ok(Some(verified))
        }
    }
}

/// Whether two address lists hold the same addresses, ignoring order and
/// repetition, without allocating (at most 255 × configured VIPs steps).
fn same_set<A: PartialEq>(received: impl Iterator<Item = A> + Clone, configured: &[A]) -> bool {
    let every_received_is_configured = received.clone().all(|a| configured.contains(&a));
    let every_configured_is_received = configured.iter().all(|c| received.clone().any(|a| a == *c));
    every_received_is_configured && every_configured_is_received
}

/// Drop counts by reason, for `status` and the periodic drop summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounters {
    /// Counts one drop for `reason` (saturating at `u64::MAX`).
    pub fn record(&mut self, reason: DropReason) {
        if let Some(count) = self.counts.get_mut(reason.index()) {
            *count = count.saturating_add(1);
        }
    }

    /// How many datagrams were dropped for `reason` since the agent started.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts.get(reason.index()).copied().unwrap_or(0)
    }

    /// Every reason with its count (zeros included), in [`DropReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(move |&reason| (reason.as_str(), self.get(reason)))
    }

    /// Drops of every reason together (saturating).
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0, |sum, &n| sum.saturating_add(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Counter, KeyUsed};
    use crate::wire::ipv4::emit_header;
    use crate::wire::vrrp::{Advertisement, MULTICAST_GROUP};
    use proptest::collection::vec;
    use proptest::prelude::*;

    const IFINDEX: u32 = 7;
    const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 99, 1);
    const VIP2: Ipv4Addr = Ipv4Addr::new(198, 18, 99, 2);

    fn policy() -> Policy<'static> {
        Policy {
            vrid: 51,
            ifindex: IFINDEX,
            own_addresses: &[US],
            unicast_peers: &[],
            virtual_ips: &[VIP],
            we_are_owner: false,
        }
    }

    const ON_OUR_LINK: RecvMeta = RecvMeta {
        ifindex: Some(IFINDEX),
    };

    /// A datagram as the raw socket would deliver it.
    struct Datagram {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        protocol: u8,
        vrid: u8,
        priority: u8,
        interval: Centis,
        addresses: Vec<Ipv4Addr>,
        mode: ChecksumMode,
        /// Appends an auth trailer signed with this key and counter.
        signed_with: Option<(&'static [u8], Counter)>,
    }

    impl Default for Datagram {
        fn default() -> Self {
            Datagram {
                src: PEER,
                dst: MULTICAST_GROUP,
                ttl: 255,
                protocol: 112,
                vrid: 51,
                priority: 150,
                interval: Centis(100),
                addresses: vec![VIP],
                mode: ChecksumMode::PseudoHeader,
                signed_with: None,
            }
        }
    }

    impl Datagram {
        fn bytes(&self) -> Vec<u8> {
            let advert = Advertisement {
                vrid: self.vrid,
                priority: self.priority,
                max_advert_interval: Centis(1),
                addresses: &self.addresses,
            };
            let mut buf = vec![0u8; 20 + advert.buffer_len()];
            let (header, body) = buf.split_at_mut(20);
            let len = advert
                .emit(body, self.src, self.dst, self.mode)
                .expect("test advert fits");
            emit_header(header, self.src, self.dst, self.protocol, self.ttl, len)
                .expect("header fits");
            // Emit refuses interval 0; write the wanted interval afterwards.
            let mut packet = vrrp::Packet::new_unchecked(&mut buf[20..]);
            packet.set_max_advert_interval(self.interval);
            packet.fill_checksum(self.src, self.dst, self.mode);
            if let Some((key, counter)) = self.signed_with {
                let mut payload = buf.split_off(20);
                let keys = Keyring::from_secrets(key, None);
                advert_auth::append(&mut payload, &keys, self.src, self.dst, counter);
                emit_header(
                    &mut buf,
                    self.src,
                    self.dst,
                    self.protocol,
                    self.ttl,
                    payload.len(),
                )
                .expect("header fits");
                buf.extend_from_slice(&payload);
            }
            buf
        }
    }

    fn admit_default_policy(datagram: &Datagram) -> Result<Admitted, DropReason> {
        admit(&datagram.bytes(), &ON_OUR_LINK, &policy())
    }

    #[test]
    fn a_valid_advert_is_admitted_with_its_fields_and_checksum_form() {
        for mode in [ChecksumMode::PseudoHeader, ChecksumMode::NoPseudoHeader] {
            let admitted = admit_default_policy(&Datagram {
                mode,
                ..Datagram::default()
            })
            .expect("admitted");
            assert_eq!(
                admitted.advert,
                ReceivedAdvert {
                    source: PEER.into(),
                    priority: 150,
                    max_advert_interval: Centis(100),
                }
            );
            assert_eq!(admitted.checksum, mode);
        }
    }

    #[test]
    fn unknown_interface_is_accepted_when_the_platform_does_not_say() {
        let datagram = Datagram::default().bytes();
        assert!(admit(&datagram, &RecvMeta { ifindex: None }, &policy()).is_ok());
    }

    #[test]
    fn malformed_ip_header_is_dropped() {
        assert_eq!(
            admit(&[0x45, 0], &ON_OUR_LINK, &policy()),
            Err(DropReason::MalformedIp)
        );
        let mut datagram = Datagram::default().bytes();
        datagram[0] = 0x65;
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &policy()),
            Err(DropReason::MalformedIp)
        );
    }

    #[test]
    fn other_protocol_is_dropped() {
        let datagram = Datagram {
            protocol: 17,
            ..Datagram::default()
        };
        assert_eq!(admit_default_policy(&datagram), Err(DropReason::NotVrrp));
    }

    #[test]
    fn ttl_other_than_255_is_dropped_rfc5798_7_1() {
        for ttl in [0, 1, 64, 254] {
            let datagram = Datagram {
                ttl,
                ..Datagram::default()
            };
            assert_eq!(
                admit_default_policy(&datagram),
                Err(DropReason::BadTtl),
                "ttl {ttl}"
            );
        }
    }

    /// Rewrites one byte of the VRRP body and fixes the checksum, so that
    /// only the intended check fails.
    fn with_body_byte(index: usize, value: u8) -> Vec<u8> {
        let mut datagram = Datagram::default().bytes();
        datagram[20 + index] = value;
        let mut packet = vrrp::Packet::new_unchecked(&mut datagram[20..]);
        packet.fill_checksum(PEER, MULTICAST_GROUP, ChecksumMode::PseudoHeader);
        datagram
    }

    #[test]
    fn version_2_is_dropped_rfc5798_7_1() {
        let datagram = with_body_byte(0, 0x21);
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadVersion)
        );
    }

    #[test]
    fn unknown_type_is_dropped_rfc5798_5_2_2() {
        let datagram = with_body_byte(0, 0x32);
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadType)
        );
    }

    #[test]
    fn incomplete_body_or_count_mismatch_is_dropped_rfc5798_7_1() {
        // Count says 2, one address present.
        let datagram = with_body_byte(3, 2);
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadLength)
        );
        // The body cut inside the fixed header (IP length adjusted to match).
        let mut short = Datagram::default().bytes();
        short.truncate(26);
        short[2..4].copy_from_slice(&26u16.to_be_bytes());
        assert_eq!(
            admit(&short, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadLength)
        );
    }

    #[test]
    fn zero_count_is_dropped_rfc5798_5_2_5() {
        let mut datagram = with_body_byte(3, 0);
        datagram.truncate(28);
        datagram[2..4].copy_from_slice(&28u16.to_be_bytes());
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &policy()),
            Err(DropReason::NoAddresses)
        );
    }

    #[test]
    fn bad_checksum_is_dropped_rfc5798_7_1() {
        let mut datagram = Datagram::default().bytes();
        datagram[20 + 2] = 151; // priority changed, checksum not updated
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadChecksum)
        );
    }

    #[test]
    fn another_interface_is_dropped_rfc5798_7_1() {
        let datagram = Datagram::default().bytes();
        let meta = RecvMeta {
            ifindex: Some(IFINDEX + 1),
        };
        assert_eq!(
            admit(&datagram, &meta, &policy()),
            Err(DropReason::WrongInterface)
        );
    }

    #[test]
    fn another_vrid_is_dropped_rfc5798_7_1() {
        let datagram = Datagram {
            vrid: 52,
            ..Datagram::default()
        };
        assert_eq!(admit_default_policy(&datagram), Err(DropReason::WrongVrid));
    }

    #[test]
    fn the_address_owner_discards_adverts_rfc5798_7_1() {
        let datagram = Datagram::default().bytes();
        let owner = Policy {
            we_are_owner: true,
            ..policy()
        };
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &owner),
            Err(DropReason::WeAreOwner)
        );
    }

    #[test]
    fn our_own_looped_back_advert_is_dropped() {
        let datagram = Datagram {
            src: US,
            ..Datagram::default()
        };
        assert_eq!(admit_default_policy(&datagram), Err(DropReason::OwnPacket));
    }

    #[test]
    fn unicast_mode_accepts_only_configured_peers() {
        let peers = [PEER];
        let unicast = Policy {
            unicast_peers: &peers,
            ..policy()
        };
        let from_peer = Datagram {
            dst: US,
            ..Datagram::default()
        };
        assert!(admit(&from_peer.bytes(), &ON_OUR_LINK, &unicast).is_ok());
        let stranger = Datagram {
            src: Ipv4Addr::new(198, 18, 0, 9),
            dst: US,
            ..Datagram::default()
        };
        assert_eq!(
            admit(&stranger.bytes(), &ON_OUR_LINK, &unicast),
            Err(DropReason::NotAPeer)
        );
    }

    #[test]
    fn address_list_is_compared_as_a_set_rfc5798_7_1() {
        let both = [VIP, VIP2];
        let two_vips = Policy {
            virtual_ips: &both,
            ..policy()
        };
        let reordered = Datagram {
            addresses: vec![VIP2, VIP],
            ..Datagram::default()
        };
        assert!(admit(&reordered.bytes(), &ON_OUR_LINK, &two_vips).is_ok());
        let missing_one = Datagram::default();
        assert_eq!(
            admit(&missing_one.bytes(), &ON_OUR_LINK, &two_vips),
            Err(DropReason::AddressMismatch)
        );
        let extra_one = Datagram {
            addresses: vec![VIP, VIP2],
            ..Datagram::default()
        };
        assert_eq!(
            admit_default_policy(&extra_one),
            Err(DropReason::AddressMismatch)
        );
    }

    #[test]
    fn the_owner_may_advertise_a_different_address_list_rfc5798_7_1() {
        let owner_advert = Datagram {
            priority: 255,
            addresses: vec![VIP2],
            ..Datagram::default()
        };
        assert!(admit_default_policy(&owner_advert).is_ok());
    }

    #[test]
    fn zero_interval_is_dropped() {
        let datagram = Datagram {
            interval: Centis(0),
            ..Datagram::default()
        };
        assert_eq!(
            admit_default_policy(&datagram),
            Err(DropReason::ZeroInterval)
        );
    }

    #[test]
    fn priority_zero_resignation_is_admitted() {
        let datagram = Datagram {
            priority: 0,
            ..Datagram::default()
        };
        assert_eq!(
            admit_default_policy(&datagram).map(|a| a.advert.priority),
            Ok(0)
        );
    }

    #[test]
    fn checks_run_in_rfc_order_ttl_before_version_before_checksum() {
        // TTL 254 and a bad version and a bad checksum: TTL is reported.
        let mut datagram = Datagram {
            ttl: 254,
            ..Datagram::default()
        }
        .bytes();
        datagram[20] = 0x21;
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadTtl)
        );
        // Bad checksum and wrong VRID: the checksum is reported.
        let mut datagram = Datagram {
            vrid: 52,
            ..Datagram::default()
        }
        .bytes();
        datagram[20 + 2] ^= 1;
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadChecksum)
        );
    }

    #[test]
    fn reason_names_are_unique_snake_case_and_all_is_in_index_order() {
        for (index, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), index);
            let name = reason.as_str();
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert_eq!(
                DropReason::ALL
                    .iter()
                    .filter(|r| r.as_str() == name)
                    .count(),
                1
            );
        }
    }

    #[test]
    fn counters_count_by_reason_and_in_total() {
        let mut counters = DropCounters::default();
        counters.record(DropReason::BadTtl);
        counters.record(DropReason::BadTtl);
        counters.record(DropReason::WrongVrid);
        assert_eq!(counters.get(DropReason::BadTtl), 2);
        assert_eq!(counters.total(), 3);
        let listed: Vec<_> = counters.iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(listed, vec![("bad_ttl", 2), ("wrong_vrid", 1)]);
        assert_eq!(counters.iter().count(), DropReason::ALL.len());
    }

    #[test]
    fn truncated_datagrams_are_refused() {
        let valid = Datagram::default().bytes();
        for len in 0..valid.len() {
            assert!(admit(&valid[..len], &ON_OUR_LINK, &policy()).is_err());
        }
    }

    /// A valid datagram with 1 to 3 bytes replaced, and cut short one time
    /// in four: deep enough to reach every check (proptest replays a
    /// failing case from its seed file).
    fn garbled(valid: Vec<u8>, max_len: usize) -> impl Strategy<Value = Vec<u8>> {
        (
            vec((any::<prop::sample::Index>(), any::<u8>()), 1..=3),
            prop::option::weighted(0.25, 0..max_len),
        )
            .prop_map(move |(edits, cut)| {
                let mut datagram = valid.clone();
                for (at, byte) in edits {
                    let at = at.index(datagram.len());
                    datagram[at] = byte;
                }
                if let Some(len) = cut {
                    datagram.truncate(len);
                }
                datagram
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn garbled_datagrams_never_panic(
            datagram in garbled(Datagram::default().bytes(), 40),
        ) {
            let _ = admit(&datagram, &ON_OUR_LINK, &policy());
        }
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER_KEY: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn signed(incarnation: u64, seq: u64) -> Datagram {
        Datagram {
            signed_with: Some((KEY, Counter { incarnation, seq })),
            ..Datagram::default()
        }
    }

    fn admit_authenticated(
        datagram: &Datagram,
        keys: &Keyring,
        replay: &mut ReplayGuard<Ipv4Addr>,
    ) -> Result<Admitted, DropReason> {
        let mut auth = AdvertAuth {
            keys,
            now: std::time::Instant::now(),
            restart_silence: std::time::Duration::from_secs(10),
            replay,
        };
        admit_with_auth(&datagram.bytes(), &ON_OUR_LINK, &policy(), Some(&mut auth))
    }

    #[test]
    fn an_authenticated_advert_is_admitted_with_its_counter() {
        let keys = Keyring::from_secrets(KEY, None);
        let mut replay = ReplayGuard::new(8);
        let admitted = admit_authenticated(&signed(7, 1), &keys, &mut replay).expect("admitted");
        assert_eq!(admitted.advert.priority, 150);
        assert_eq!(
            admitted.auth,
            Some(Verified {
                counter: Counter {
                    incarnation: 7,
                    seq: 1
                },
                key: KeyUsed::Send
            })
        );
        assert_eq!(
            replay.last(&PEER),
            Some(Counter {
                incarnation: 7,
                seq: 1
            })
        );
    }

    #[test]
    fn with_auth_on_an_unsigned_advert_is_dropped() {
        let keys = Keyring::from_secrets(KEY, None);
        let mut replay = ReplayGuard::new(8);
        assert_eq!(
            admit_authenticated(&Datagram::default(), &keys, &mut replay),
            Err(DropReason::AuthMissing)
        );
    }

    #[test]
    fn an_advert_signed_with_another_key_is_dropped() {
        let keys = Keyring::from_secrets(OTHER_KEY, None);
        let mut replay = ReplayGuard::new(8);
        assert_eq!(
            admit_authenticated(&signed(7, 1), &keys, &mut replay),
            Err(DropReason::AuthBad)
        );
        assert!(replay.is_empty(), "a forgery must not touch the guard");
    }

    #[test]
    fn during_a_rotation_the_accepted_key_admits() {
        let keys = Keyring::from_secrets(OTHER_KEY, Some(KEY));
        let mut replay = ReplayGuard::new(8);
        let admitted = admit_authenticated(&signed(7, 1), &keys, &mut replay).expect("admitted");
        assert_eq!(admitted.auth.map(|v| v.key), Some(KeyUsed::Accept));
    }

    #[test]
    fn a_replayed_or_older_advert_is_dropped() {
        let keys = Keyring::from_secrets(KEY, None);
        let mut replay = ReplayGuard::new(8);
        let first = signed(7, 5);
        assert!(admit_authenticated(&first, &keys, &mut replay).is_ok());
        assert_eq!(
            admit_authenticated(&first, &keys, &mut replay),
            Err(DropReason::AuthReplayed)
        );
        assert_eq!(
            admit_authenticated(&signed(7, 4), &keys, &mut replay),
            Err(DropReason::AuthReplayed)
        );
        assert!(admit_authenticated(&signed(7, 6), &keys, &mut replay).is_ok());
        assert!(
            admit_authenticated(&signed(8, 0), &keys, &mut replay).is_ok(),
            "a restarted sender"
        );
    }

    #[test]
    fn an_advert_dropped_for_another_reason_does_not_advance_the_guard() {
        let keys = Keyring::from_secrets(KEY, None);
        let mut replay = ReplayGuard::new(8);
        let wrong_vrid = Datagram {
            vrid: 52,
            ..signed(7, 5)
        };
        assert_eq!(
            admit_authenticated(&wrong_vrid, &keys, &mut replay),
            Err(DropReason::WrongVrid)
        );
        assert!(replay.is_empty());
    }

    #[test]
    fn with_auth_off_a_signed_advert_is_dropped_as_a_config_mismatch() {
        assert_eq!(
            admit_default_policy(&signed(7, 1)),
            Err(DropReason::AuthUnexpected)
        );
    }

    #[test]
    fn bytes_after_the_message_that_are_no_trailer_are_a_bad_length() {
        let mut datagram = Datagram::default().bytes();
        datagram.extend_from_slice(&[0; 4]);
        let len = u16::try_from(datagram.len()).expect("small");
        datagram[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            admit(&datagram, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadLength)
        );
        let keys = Keyring::from_secrets(KEY, None);
        let mut replay = ReplayGuard::new(8);
        let mut auth = AdvertAuth {
            keys: &keys,
            replay: &mut replay,
            now: std::time::Instant::now(),
            restart_silence: std::time::Duration::from_secs(10),
        };
        assert_eq!(
            admit_with_auth(&datagram, &ON_OUR_LINK, &policy(), Some(&mut auth)),
            Err(DropReason::BadLength)
        );
    }

    #[test]
    fn a_signed_advert_still_passes_the_vrrp_checks() {
        let keys = Keyring::from_secrets(KEY, None);
        let mut replay = ReplayGuard::new(8);
        let bad_ttl = Datagram {
            ttl: 64,
            ..signed(7, 1)
        };
        assert_eq!(
            admit_authenticated(&bad_ttl, &keys, &mut replay),
            Err(DropReason::BadTtl)
        );
        let mut datagram = signed(7, 1).bytes();
        datagram[20 + 2] ^= 1; // priority changed: checksum and tag both wrong
        let mut auth = AdvertAuth {
            keys: &keys,
            replay: &mut replay,
            now: std::time::Instant::now(),
            restart_silence: std::time::Duration::from_secs(10),
        };
        assert_eq!(
            admit_with_auth(&datagram, &ON_OUR_LINK, &policy(), Some(&mut auth)),
            Err(DropReason::BadChecksum)
        );
    }

    #[test]
    fn exactly_the_auth_reasons_are_auth_failures() {
        let auth: Vec<_> = DropReason::ALL
            .iter()
            .filter(|reason| reason.is_auth_failure())
            .map(|reason| reason.as_str())
            .collect();
        assert_eq!(
            auth,
            [
                "auth_missing",
                "auth_bad",
                "auth_replayed",
                "auth_unexpected"
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn garbled_authenticated_datagrams_never_panic(
            datagram in garbled(signed(7, 1).bytes(), 90),
        ) {
            let keys = Keyring::from_secrets(KEY, None);
            let mut replay = ReplayGuard::new(8);
            let mut auth = AdvertAuth {
                keys: &keys,
                replay: &mut replay,
                now: std::time::Instant::now(),
                restart_silence: std::time::Duration::from_secs(10),
            };
            let _ = admit_with_auth(&datagram, &ON_OUR_LINK, &policy(), Some(&mut auth));
        }
    }
}
