//! Receive admission of IPv6 advertisements (RFC 5798 §7.1 with the IPv6
//! rules of §5.1.2; RFC 9568 keeps both unchanged).
//!
//! A raw IPv6 socket delivers the VRRP message *without* the IPv6 header
//! (RFC 3542 §3), so the IP-level facts come from the socket: the source
//! from `recvmsg`'s address, the destination and interface from
//! `IPV6_PKTINFO`, the hop limit from `IPV6_HOPLIMIT` ([`RecvMeta`]). The
//! checks run in this order:
//!
//! 1. hop limit 255 (§7.1 "MUST verify that the IP TTL [Hop Limit] is 255";
//!    §5.1.2.3), `bad_ttl`, also when the socket did not report it;
//! 2. destination (`bad_destination`): ff02::12 in multicast mode
//!    (§5.1.2.2); in unicast mode any address but a multicast group;
//! 3. source (`source_not_link_local`, multicast mode only): §5.1.2.1 has
//!    the sender use "the IPv6 link-local address of the interface the
//!    packet is being sent from". §7.1 does not list it, but a router on the
//!    link always has one, and a routed packet already failed the hop
//!    limit: a global source with hop limit 255 is a misconfigured or forged
//!    sender. In unicast mode (keepalived's `unicast_peer`, outside the RFC)
//!    the source is a configured peer, which may be global;
//! 4. the VRRP message: version, completeness, checksum over the IPv6
//!    pseudo-header ([`vrrp6::parse`]);
//! 5. the rest is IPv4's: interface, VRID, owner, own packet, unicast peer,
//!    address list as a set, zero interval, authentication (`check_parsed`).
//!
//! The first address of the list "MUST be the IPv6 link-local address
//! associated with the virtual router" (§5.2.9) is a rule for the sender;
//! §7.1 does not drop on it, and the address-list comparison (as a set, with
//! our own link-local virtual address in the configured list) already
//! refuses a list that lacks it unless the sender is the owner.

use std::net::Ipv6Addr;

use super::{check_parsed, AdvertAuth, DropReason, Parsed, Policy};
use crate::wire::advert_auth::{self, Verified};
use crate::wire::{vrrp6, Centis};

/// What the socket reported about a received IPv6 datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// `ipi6_ifindex` of `IPV6_PKTINFO`: the interface it arrived on.
    pub ifindex: Option<u32>,
    /// `ipi6_addr` of `IPV6_PKTINFO`: the destination address.
    pub destination: Option<Ipv6Addr>,
    /// `IPV6_HOPLIMIT`: the hop limit it arrived with.
    pub hop_limit: Option<u8>,
}

/// An IPv6 advertisement that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The sender's (link-local, or in unicast mode configured) address,
    /// which breaks priority ties (§6.4.3).
    pub source: Ipv6Addr,
    /// The advertised priority (§5.2.4).
    pub priority: u8,
    /// The sender's Max Adver Int (§5.2.7).
    pub max_advert_interval: Centis,
    /// The verified counter and key, when authentication is on.
    pub auth: Option<Verified>,
}

impl From<vrrp6::Error> for DropReason {
    fn from(error: vrrp6::Error) -> Self {
        match error {
            vrrp6::Error::BadVersion(_) => DropReason::BadVersion,
            vrrp6::Error::BadType(_) => DropReason::BadType,
            vrrp6::Error::NoAddresses => DropReason::NoAddresses,
            vrrp6::Error::BadChecksum => DropReason::BadChecksum,
            vrrp6::Error::Truncated { .. }
            | vrrp6::Error::BadLength { .. }
            // Emit-side errors cannot come out of parsing; mapped for totality.
            | vrrp6::Error::BufferTooSmall { .. }
            | vrrp6::Error::BadAddressCount(_)
            | vrrp6::Error::BadInterval(_)
            | vrrp6::Error::FirstNotLinkLocal(_)
            | vrrp6::Error::SourceNotLinkLocal(_) => DropReason::BadLength,
        }
    }
}

/// Decides whether `message` (the IPv6 payload a raw socket delivered, from
/// `source`) is an advertisement for us, with authentication off.
pub fn admit(
    message: &[u8],
    source: Ipv6Addr,
    meta: &RecvMeta,
    policy: &Policy<'_, Ipv6Addr>,
) -> Result<Admitted, DropReason> {
    admit_with_auth(message, source, meta, policy, None)
}

/// Decides whether `payload` from `source` is an advertisement for us; with
/// `auth`, it must also be authenticated and not replayed (the counter is
/// then recorded in the replay guard), as over IPv4.
pub fn admit_with_auth(
    payload: &[u8],
    source: Ipv6Addr,
    meta: &RecvMeta,
    policy: &Policy<'_, Ipv6Addr>,
    auth: Option<&mut AdvertAuth<'_, Ipv6Addr>>,
) -> Result<Admitted, DropReason> {
    if meta.hop_limit != Some(vrrp6::HOP_LIMIT) {
        return Err(DropReason::BadTtl);
    }
    let multicast = policy.unicast_peers.is_empty();
    let destination = meta.destination.ok_or(DropReason::BadDestination)?;
    let destination_ok = if multicast {
        destination == vrrp6::MULTICAST_GROUP
    } else {
        !destination.is_multicast()
    };
    if !destination_ok {
        return Err(DropReason::BadDestination);
    }
    if multicast && !vrrp6::is_link_local(source) {
        return Err(DropReason::SourceNotLinkLocal);
    }
    let vrrp_len = vrrp6::message_len(vrrp6::Packet::new_unchecked(payload).count());
    let (message, trailer) = advert_auth::split(payload, vrrp_len);
    let packet = vrrp6::parse(message, source, destination)?;
    let verified = check_parsed(
        Parsed {
            src: source,
            dst: destination,
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
        source,
        priority: packet.priority(),
        max_advert_interval: packet.max_advert_interval(),
        auth: verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Counter, Keyring, ReplayGuard};
    use crate::wire::vrrp6::{Ipv6Advertisement, MULTICAST_GROUP};
    use proptest::collection::vec;
    use proptest::prelude::*;

    const IFINDEX: u32 = 7;
    const US: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
    const PEER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const VIP_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x51);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    const VIP2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x101);
    const GLOBAL_PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const GLOBAL_US: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    fn policy() -> Policy<'static, Ipv6Addr> {
        Policy {
            vrid: 51,
            ifindex: IFINDEX,
            own_addresses: &[US],
            unicast_peers: &[],
            virtual_ips: &[VIP_LL, VIP],
            we_are_owner: false,
        }
    }

    const ON_OUR_LINK: RecvMeta = RecvMeta {
        ifindex: Some(IFINDEX),
        destination: Some(MULTICAST_GROUP),
        hop_limit: Some(255),
    };

    /// An advert as the raw socket delivers it: the VRRP message, its
    /// source and what the control messages said.
    struct Datagram {
        src: Ipv6Addr,
        meta: RecvMeta,
        vrid: u8,
        priority: u8,
        interval: Centis,
        addresses: Vec<Ipv6Addr>,
        signed_with: Option<(&'static [u8], Counter)>,
    }

    impl Default for Datagram {
        fn default() -> Self {
            Datagram {
                src: PEER,
                meta: ON_OUR_LINK,
                vrid: 51,
                priority: 150,
                interval: Centis(100),
                addresses: vec![VIP_LL, VIP],
                signed_with: None,
            }
        }
    }

    impl Datagram {
        fn dst(&self) -> Ipv6Addr {
            self.meta.destination.unwrap_or(MULTICAST_GROUP)
        }

        /// The payload. Built with a link-local first address and source
        /// (emit's rules), then rewritten, so tests can break those too.
        fn bytes(&self) -> Vec<u8> {
            let mut addresses = self.addresses.clone();
            if let Some(first) = addresses.first_mut() {
                *first = VIP_LL;
            }
            let advert = Ipv6Advertisement {
                vrid: self.vrid,
                priority: self.priority,
                max_advert_interval: Centis(1),
                addresses: &addresses,
            };
            let mut buf = vec![0u8; advert.buffer_len()];
            advert.emit(&mut buf, PEER, self.dst()).expect("fits");
            let mut packet = vrrp6::Packet::new_unchecked(&mut buf[..]);
            for (index, &address) in self.addresses.iter().enumerate() {
                packet.set_address(index, address);
            }
            packet.set_max_advert_interval(self.interval);
            packet.fill_checksum(self.src, self.dst());
            if let Some((key, counter)) = self.signed_with {
                let keys = Keyring::from_secrets(key, None);
                advert_auth::append(&mut buf, &keys, self.src, self.dst(), counter);
            }
            buf
        }

        fn admit(&self, policy: &Policy<'_, Ipv6Addr>) -> Result<Admitted, DropReason> {
            admit(&self.bytes(), self.src, &self.meta, policy)
        }
    }

    fn admit_default(datagram: &Datagram) -> Result<Admitted, DropReason> {
        datagram.admit(&policy())
    }

    #[test]
    fn a_valid_advert_is_admitted() {
        assert_eq!(
            admit_default(&Datagram::default()),
            Ok(Admitted {
                source: PEER,
                priority: 150,
                max_advert_interval: Centis(100),
                auth: None,
            })
        );
    }

    #[test]
    fn keepalived_s_advert_is_admitted() {
        // The first line of tests/vectors/keepalived-2.2.7-ipv6.hex: vrid 51,
        // priority 150, 100 cs, fe80::51 then 2001:db8:99::1, as the wire
        // carried it (IPv6 header included; the socket would strip it).
        let vectors = include_str!("../../tests/vectors/keepalived-2.2.7-ipv6.hex");
        let line = vectors
            .lines()
            .find(|line| !line.starts_with('#'))
            .expect("a vector");
        let bytes: Vec<u8> = (0..line.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&line[at..at + 2], 16).expect("hex"))
            .collect();
        let ip = crate::wire::ipv6::Header::parse(&bytes).expect("IPv6");
        let meta = RecvMeta {
            ifindex: Some(IFINDEX),
            destination: Some(ip.dst),
            hop_limit: Some(ip.hop_limit),
        };
        let theirs = [VIP_LL, Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 1)];
        let policy = Policy {
            virtual_ips: &theirs,
            ..policy()
        };
        let admitted = admit(ip.payload, ip.src, &meta, &policy).expect("admitted");
        assert_eq!(admitted.priority, 150);
        assert_eq!(admitted.max_advert_interval, Centis(100));
    }

    #[test]
    fn a_hop_limit_below_255_is_dropped_rfc5798_7_1() {
        for hop_limit in [Some(254), Some(64), Some(1), None] {
            let datagram = Datagram {
                meta: RecvMeta {
                    hop_limit,
                    ..ON_OUR_LINK
                },
                ..Datagram::default()
            };
            assert_eq!(
                admit_default(&datagram),
                Err(DropReason::BadTtl),
                "{hop_limit:?}"
            );
        }
    }

    #[test]
    fn multicast_mode_wants_ff02_12_rfc5798_5_1_2_2() {
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        for destination in [Some(all_nodes), Some(US), Some(GLOBAL_US), None] {
            let datagram = Datagram {
                meta: RecvMeta {
                    destination,
                    ..ON_OUR_LINK
                },
                ..Datagram::default()
            };
            assert_eq!(
                admit_default(&datagram),
                Err(DropReason::BadDestination),
                "{destination:?}"
            );
        }
    }

    #[test]
    fn multicast_mode_wants_a_link_local_source_rfc5798_5_1_2_1() {
        let datagram = Datagram {
            src: GLOBAL_PEER,
            ..Datagram::default()
        };
        assert_eq!(
            admit_default(&datagram),
            Err(DropReason::SourceNotLinkLocal)
        );
    }

    #[test]
    fn unicast_mode_takes_a_configured_global_peer_to_our_address() {
        let peers = [GLOBAL_PEER];
        let own = [US, GLOBAL_US];
        let unicast = Policy {
            unicast_peers: &peers,
            own_addresses: &own,
            ..policy()
        };
        let to_us = RecvMeta {
            destination: Some(GLOBAL_US),
            ..ON_OUR_LINK
        };
        let from_peer = Datagram {
            src: GLOBAL_PEER,
            meta: to_us,
            ..Datagram::default()
        };
        assert!(from_peer.admit(&unicast).is_ok());
        let stranger = Datagram {
            src: PEER,
            meta: to_us,
            ..Datagram::default()
        };
        assert_eq!(stranger.admit(&unicast), Err(DropReason::NotAPeer));
        let to_the_group = Datagram {
            src: GLOBAL_PEER,
            ..Datagram::default()
        };
        assert_eq!(
            to_the_group.admit(&unicast),
            Err(DropReason::BadDestination)
        );
    }

    #[test]
    fn version_2_is_dropped_rfc5798_7_1() {
        let mut bytes = Datagram::default().bytes();
        bytes[0] = 0x21;
        assert_eq!(
            admit(&bytes, PEER, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadVersion)
        );
    }

    #[test]
    fn a_bad_checksum_is_dropped_rfc5798_7_1() {
        let mut bytes = Datagram::default().bytes();
        bytes[2] ^= 1;
        assert_eq!(
            admit(&bytes, PEER, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadChecksum)
        );
    }

    #[test]
    fn the_checksum_covers_the_pseudo_header_source_rfc5798_5_2_8() {
        // A valid message claimed by another link-local source.
        let bytes = Datagram::default().bytes();
        let other = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9);
        assert_eq!(
            admit(&bytes, other, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadChecksum)
        );
    }

    #[test]
    fn a_truncated_or_padded_message_is_a_bad_length() {
        let valid = Datagram::default().bytes();
        for len in 0..valid.len() {
            assert!(admit(&valid[..len], PEER, &ON_OUR_LINK, &policy()).is_err());
        }
        let mut padded = valid;
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(
            admit(&padded, PEER, &ON_OUR_LINK, &policy()),
            Err(DropReason::BadLength)
        );
    }

    #[test]
    fn wrong_interface_vrid_owner_and_own_packet() {
        let elsewhere = Datagram {
            meta: RecvMeta {
                ifindex: Some(IFINDEX + 1),
                ..ON_OUR_LINK
            },
            ..Datagram::default()
        };
        assert_eq!(admit_default(&elsewhere), Err(DropReason::WrongInterface));
        let other_vrid = Datagram {
            vrid: 52,
            ..Datagram::default()
        };
        assert_eq!(admit_default(&other_vrid), Err(DropReason::WrongVrid));
        let owner = Policy {
            we_are_owner: true,
            ..policy()
        };
        assert_eq!(
            Datagram::default().admit(&owner),
            Err(DropReason::WeAreOwner)
        );
        let ours = Datagram {
            src: US,
            ..Datagram::default()
        };
        assert_eq!(admit_default(&ours), Err(DropReason::OwnPacket));
    }

    #[test]
    fn the_address_list_is_a_set_and_must_hold_the_link_local_vip() {
        let reordered = Datagram {
            addresses: vec![VIP, VIP_LL],
            ..Datagram::default()
        };
        assert!(admit_default(&reordered).is_ok(), "§7.1 compares sets");
        let no_link_local = Datagram {
            addresses: vec![VIP],
            ..Datagram::default()
        };
        assert_eq!(
            admit_default(&no_link_local),
            Err(DropReason::AddressMismatch)
        );
        let extra = Datagram {
            addresses: vec![VIP_LL, VIP, VIP2],
            ..Datagram::default()
        };
        assert_eq!(admit_default(&extra), Err(DropReason::AddressMismatch));
        let owner_differs = Datagram {
            priority: 255,
            addresses: vec![VIP2],
            ..Datagram::default()
        };
        assert!(admit_default(&owner_differs).is_ok());
    }

    #[test]
    fn zero_interval_is_dropped() {
        let datagram = Datagram {
            interval: Centis(0),
            ..Datagram::default()
        };
        assert_eq!(admit_default(&datagram), Err(DropReason::ZeroInterval));
    }

    #[test]
    fn ip_level_checks_run_first() {
        // Hop limit 64, a global source and a bad checksum: the hop limit.
        let mut bytes = Datagram::default().bytes();
        bytes[2] ^= 1;
        let meta = RecvMeta {
            hop_limit: Some(64),
            ..ON_OUR_LINK
        };
        assert_eq!(
            admit(&bytes, GLOBAL_PEER, &meta, &policy()),
            Err(DropReason::BadTtl)
        );
        assert_eq!(
            admit(&bytes, GLOBAL_PEER, &ON_OUR_LINK, &policy()),
            Err(DropReason::SourceNotLinkLocal)
        );
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signed(incarnation: u64, seq: u64) -> Datagram {
        Datagram {
            signed_with: Some((KEY, Counter { incarnation, seq })),
            ..Datagram::default()
        }
    }

    /// Admission with `[auth]` on (our key), for `bytes` from `src`.
    fn admit_with_key(
        bytes: &[u8],
        src: Ipv6Addr,
        meta: &RecvMeta,
        replay: &mut ReplayGuard<Ipv6Addr>,
    ) -> Result<Admitted, DropReason> {
        let keys = Keyring::from_secrets(KEY, None);
        let mut auth = AdvertAuth {
            keys: &keys,
            replay,
            now: std::time::Instant::now(),
            restart_silence: std::time::Duration::from_secs(10),
        };
        admit_with_auth(bytes, src, meta, &policy(), Some(&mut auth))
    }

    fn admit_authenticated(
        datagram: &Datagram,
        replay: &mut ReplayGuard<Ipv6Addr>,
    ) -> Result<Admitted, DropReason> {
        admit_with_key(&datagram.bytes(), datagram.src, &datagram.meta, replay)
    }

    #[test]
    fn auth_covers_ipv6_adverts_as_it_does_ipv4() {
        let mut replay = ReplayGuard::new(8);
        let admitted = admit_authenticated(&signed(3, 1), &mut replay).expect("admitted");
        assert_eq!(admitted.auth.map(|v| v.counter.seq), Some(1));
        assert_eq!(
            admit_authenticated(&signed(3, 1), &mut replay),
            Err(DropReason::AuthReplayed)
        );
        assert_eq!(
            admit_authenticated(&Datagram::default(), &mut replay),
            Err(DropReason::AuthMissing)
        );
        assert_eq!(
            admit_default(&signed(3, 2)),
            Err(DropReason::AuthUnexpected)
        );
        // The tag binds the 16-byte source: the same bytes from another
        // sender (checksum fixed up) do not verify.
        let mut bytes = signed(3, 5).bytes();
        let other = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9);
        let len = vrrp6::message_len(1 + 1);
        vrrp6::Packet::new_unchecked(&mut bytes[..len]).fill_checksum(other, MULTICAST_GROUP);
        assert_eq!(
            admit_with_key(&bytes, other, &ON_OUR_LINK, &mut replay),
            Err(DropReason::AuthBad)
        );
    }

    fn any_meta() -> impl Strategy<Value = RecvMeta> {
        (
            prop::option::weighted(0.9, prop_oneof![Just(IFINDEX), any::<u32>()]),
            prop::option::weighted(
                0.9,
                prop_oneof![
                    Just(MULTICAST_GROUP),
                    any::<u128>().prop_map(Ipv6Addr::from)
                ],
            ),
            prop::option::weighted(0.9, prop_oneof![Just(255u8), any::<u8>()]),
        )
            .prop_map(|(ifindex, destination, hop_limit)| RecvMeta {
                ifindex,
                destination,
                hop_limit,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn garbled_adverts_never_panic(
            edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..=3),
            cut in prop::option::weighted(0.25, 0..60usize),
            signed_advert in any::<bool>(),
            meta in any_meta(),
        ) {
            let mut bytes = if signed_advert { signed(1, 1) } else { Datagram::default() }.bytes();
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let Some(len) = cut {
                bytes.truncate(len);
            }
            let _ = admit(&bytes, PEER, &meta, &policy());
            let _ = admit_with_key(&bytes, PEER, &meta, &mut ReplayGuard::new(8));
        }

        #[test]
        fn only_hop_limit_255_is_ever_admitted(meta in any_meta()) {
            let datagram = Datagram { meta, ..Datagram::default() };
            if admit_default(&datagram).is_ok() {
                prop_assert_eq!(meta.hop_limit, Some(255));
                prop_assert_eq!(meta.destination, Some(MULTICAST_GROUP));
            }
        }
    }
}
