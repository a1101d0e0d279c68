//! The authentication trailer of an advert: our extension to VRRPv3, after
//! the VRRP message inside the same IPv4 payload.
//!
//! ```text
//! | VRRP message (RFC 5798 §5.1, 8 + 4 × Count bytes) |
//! | magic "RCA1" (4) | incarnation (u64) | seq (u64) | tag (32) |
//! ```
//!
//! The tag is HMAC-SHA256 over the IP source and destination (4 bytes each
//! for IPv4, 16 for IPv6, as the header carries them), the VRRP
//! message, the magic, the incarnation and the sequence. Unlike CARP's
//! HMAC, which leaves out the advertisement's timing and priority, every
//! field an attacker could use to win or stall an election is covered.
//! The addresses bind the advert to its sender and its destination (each
//! unicast peer gets its own tag). (incarnation, seq) feeds the receiver's
//! [`crate::auth::ReplayGuard`].
//!
//! The VRRP checksum (§5.2.8) covers only the VRRP message, so the message
//! stays valid on its own; the IPv4 Total Length (the IPv6 Payload Length)
//! covers both. Over IPv6 this is why the kernel must not compute the
//! checksum (`IPV6_CHECKSUM`, RFC 3542 §3.1): it would cover the trailer too.
//!
//! **Non-standard:** RFC 5798 §7.1 requires the message to be complete and
//! nothing in VRRPv3 allows extra bytes, so keepalived, FRR, and other
//! RFC 5798 routers drop authenticated adverts (or, worse, some may read
//! them), and they cannot take part in a cluster with `[auth]` on. Use auth
//! only when every router of the VRID is an rcbsd-failover agent.

use std::net::IpAddr;

use crate::auth::{AuthError, Counter, KeyUsed, Keyring, TAG_LEN};

/// First bytes of the trailer; the `1` is the trailer's format version.
pub const MAGIC: [u8; 4] = *b"RCA1";
/// Length of the whole trailer.
pub const TRAILER_LEN: usize = MAGIC.len() + 8 + 8 + TAG_LEN;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const INCARNATION: Range<usize> = 4..12;
    pub const SEQ: Range<usize> = 12..20;
    pub const TAG: Range<usize> = 20..52;
}

/// An advert whose trailer verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The sender's (incarnation, seq), for the replay check.
    pub counter: Counter,
    /// The key that matched (the other one means a rotation in progress).
    pub key: KeyUsed,
}

/// Appends the trailer for the VRRP message `buf` (already holding its
/// final checksum) sent from `src` to `dst`.
pub fn append(
    buf: &mut Vec<u8>,
    keys: &Keyring,
    src: impl Into<IpAddr>,
    dst: impl Into<IpAddr>,
    counter: Counter,
) {
    let (src, dst) = (Octets::of(src), Octets::of(dst));
    let incarnation = counter.incarnation.to_be_bytes();
    let seq = counter.seq.to_be_bytes();
    let tag = keys.sign(&[
        src.as_slice(),
        dst.as_slice(),
        buf.as_slice(),
        &MAGIC,
        &incarnation,
        &seq,
    ]);
    buf.reserve(TRAILER_LEN);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&incarnation);
    buf.extend_from_slice(&seq);
    buf.extend_from_slice(&tag);
}

/// Splits an IPv4 payload into the VRRP message of `vrrp_len` bytes (the
/// length its Count field announces) and whatever follows it, if anything.
/// A payload shorter than `vrrp_len` is returned whole, for the VRRP checks
/// to refuse.
pub fn split(ip_payload: &[u8], vrrp_len: usize) -> (&[u8], Option<&[u8]>) {
    match ip_payload.split_at_checked(vrrp_len) {
        Some((vrrp, rest)) if !rest.is_empty() => (vrrp, Some(rest)),
        _ => (ip_payload, None),
    }
}

/// Whether `rest` (the bytes after a VRRP message) has the shape of our
/// trailer, so that a receiver without `[auth]` can say "the sender has
/// auth on" rather than "bad length".
pub fn is_trailer(rest: &[u8]) -> bool {
    rest.len() == TRAILER_LEN && rest.get(field::MAGIC) == Some(&MAGIC[..])
}

/// Checks `trailer` against the VRRP message `vrrp` received from `src` to
/// `dst`; returns its counter for the replay check.
pub fn verify(
    trailer: &[u8],
    keys: &Keyring,
    src: impl Into<IpAddr>,
    dst: impl Into<IpAddr>,
    vrrp: &[u8],
) -> Result<Verified, AuthError> {
    let (src, dst) = (Octets::of(src), Octets::of(dst));
    let malformed = AuthError::MalformedTrailer {
        len: trailer.len(),
        expected: TRAILER_LEN,
        magic: "RCA1",
    };
    if !is_trailer(trailer) {
        return Err(malformed);
    }
    let (Some(incarnation), Some(seq), Some(tag)) = (
        u64_at(trailer, field::INCARNATION),
        u64_at(trailer, field::SEQ),
        trailer.get(field::TAG),
    ) else {
        return Err(malformed);
    };
    let signed_trailer = trailer.get(..field::TAG.start).unwrap_or_default();
    let key = keys.verify(&[src.as_slice(), dst.as_slice(), vrrp, signed_trailer], tag)?;
    Ok(Verified {
        counter: Counter { incarnation, seq },
        key,
    })
}

/// An address as the IP header carries it: 4 or 16 bytes, without
/// allocating.
struct Octets {
    bytes: [u8; 16],
    len: usize,
}

impl Octets {
    fn of(address: impl Into<IpAddr>) -> Octets {
        match address.into() {
            IpAddr::V4(v4) => {
                let mut bytes = [0; 16];
                bytes[..4].copy_from_slice(&v4.octets());
                Octets { bytes, len: 4 }
            }
            IpAddr::V6(v6) => Octets {
                bytes: v6.octets(),
                len: 16,
            },
        }
    }

    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }
}

fn u64_at(bytes: &[u8], range: std::ops::Range<usize>) -> Option<u64> {
    let array: [u8; 8] = bytes.get(range)?.try_into().ok()?;
    Some(u64::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
    /// keepalived's advert from the vrrp tests: vrid 51, priority 150.
    const VRRP: [u8; 12] = [
        0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0x68, 0xb0, 0xc6, 0x12, 0x63, 0x01,
    ];
    const COUNTER: Counter = Counter {
        incarnation: 0x0102_0304_0506_0708,
        seq: 9,
    };

    fn keys() -> Keyring {
        Keyring::from_secrets(b"0123456789abcdef0123456789abcdef", None)
    }

    fn signed() -> Vec<u8> {
        let mut buf = VRRP.to_vec();
        append(&mut buf, &keys(), SRC, DST, COUNTER);
        buf
    }

    #[test]
    fn trailer_layout() {
        let buf = signed();
        assert_eq!(buf.len(), VRRP.len() + TRAILER_LEN);
        let trailer = &buf[VRRP.len()..];
        assert_eq!(&trailer[..4], b"RCA1");
        assert_eq!(&trailer[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&trailer[12..20], &9u64.to_be_bytes());
    }

    #[test]
    fn a_signed_advert_splits_and_verifies() {
        let buf = signed();
        let (vrrp, trailer) = split(&buf, VRRP.len());
        assert_eq!(vrrp, &VRRP[..]);
        let trailer = trailer.expect("trailer present");
        assert_eq!(
            verify(trailer, &keys(), SRC, DST, vrrp),
            Ok(Verified {
                counter: COUNTER,
                key: KeyUsed::Send
            })
        );
    }

    #[test]
    fn split_without_trailer_or_with_a_short_payload() {
        assert_eq!(split(&VRRP, VRRP.len()), (&VRRP[..], None));
        assert_eq!(split(&VRRP[..6], VRRP.len()), (&VRRP[..6], None));
    }

    #[test]
    fn every_covered_field_is_bound_by_the_tag() {
        let buf = signed();
        let (vrrp, trailer) = split(&buf, VRRP.len());
        let trailer = trailer.expect("trailer");
        let other = Ipv4Addr::new(198, 18, 0, 9);
        assert_eq!(
            verify(trailer, &keys(), other, DST, vrrp),
            Err(AuthError::BadTag)
        );
        assert_eq!(
            verify(trailer, &keys(), SRC, other, vrrp),
            Err(AuthError::BadTag)
        );
        // Priority (byte 2) and interval (byte 5), which CARP leaves out.
        for index in [2, 5] {
            let mut altered = VRRP;
            altered[index] ^= 1;
            assert_eq!(
                verify(trailer, &keys(), SRC, DST, &altered),
                Err(AuthError::BadTag),
                "byte {index}"
            );
        }
        for index in 4..TRAILER_LEN {
            let mut altered = trailer.to_vec();
            altered[index] ^= 1;
            assert_eq!(
                verify(&altered, &keys(), SRC, DST, vrrp),
                Err(AuthError::BadTag),
                "trailer byte {index}"
            );
        }
    }

    #[test]
    fn over_ipv6_the_tag_covers_the_16_byte_addresses() {
        let src6 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let dst6 = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
        let mut buf = VRRP.to_vec();
        append(&mut buf, &keys(), src6, dst6, COUNTER);
        let (vrrp, trailer) = split(&buf, VRRP.len());
        let trailer = trailer.expect("trailer");
        assert!(verify(trailer, &keys(), src6, dst6, vrrp).is_ok());
        let other = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        assert_eq!(
            verify(trailer, &keys(), other, dst6, vrrp),
            Err(AuthError::BadTag)
        );
        // The IPv4-mapped form of an IPv4 pair is not the same message.
        let mapped = verify(
            trailer,
            &keys(),
            SRC.to_ipv6_mapped(),
            DST.to_ipv6_mapped(),
            vrrp,
        );
        assert_eq!(mapped, Err(AuthError::BadTag));
    }

    #[test]
    fn a_malformed_trailer_is_refused_before_any_hmac() {
        let buf = signed();
        let trailer = &buf[VRRP.len()..];
        for bad in [
            &trailer[..TRAILER_LEN - 1],
            &[0u8; TRAILER_LEN][..],
            &[][..],
        ] {
            assert!(matches!(
                verify(bad, &keys(), SRC, DST, &VRRP),
                Err(AuthError::MalformedTrailer { .. })
            ));
        }
        assert!(is_trailer(trailer));
        assert!(!is_trailer(&[0; 4]));
    }

    #[test]
    fn the_wrong_key_is_refused_and_a_rotation_accepts_the_old_one() {
        let buf = signed();
        let (vrrp, trailer) = split(&buf, VRRP.len());
        let trailer = trailer.expect("trailer");
        let new_key = b"fedcba9876543210fedcba9876543210";
        let other = Keyring::from_secrets(new_key, None);
        assert_eq!(
            verify(trailer, &other, SRC, DST, vrrp),
            Err(AuthError::BadTag)
        );
        let rotating = Keyring::from_secrets(new_key, Some(b"0123456789abcdef0123456789abcdef"));
        assert_eq!(
            verify(trailer, &rotating, SRC, DST, vrrp).map(|v| v.key),
            Ok(KeyUsed::Accept)
        );
    }
}
