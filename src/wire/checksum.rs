//! The internet checksum (RFC 1071) and the VRRPv3 checksum built on it
//! (RFC 5798 §5.2.8), in both forms found in the field.
//!
//! RFC 5798 §5.2.8 says the checksum covers the VRRP message "plus a
//! pseudo-header" as defined in RFC 2460 §8.1 — an IPv6 text, so for IPv4
//! implementations disagree: keepalived and FRR (by default) prepend the
//! IPv4 pseudo-header (src, dst, zero, protocol 112, VRRP length), as for
//! UDP; Cisco and some readings of RFC 9568 checksum the VRRP message alone.
//! We send the form the configuration names and accept either on receive.
//!
//! Over IPv6 there is no such choice: RFC 8200 §8.1 makes the pseudo-header
//! part of every upper-layer checksum, keepalived has the kernel compute it
//! (`IPV6_CHECKSUM` at offset 6), and [`ipv6_checksum`] is the only form
//! sent or accepted (VRRP and ICMPv6 alike).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::vrrp::{MULTICAST_GROUP as VRRP_MULTICAST, PROTOCOL as PROTOCOL_VRRP};
use super::ChecksumMode;

/// Running RFC 1071 sum: 16-bit big-endian words added with end-around
/// carry. Slices may have odd lengths; a trailing odd byte is carried over
/// to the next slice, so summing `a` then `b` equals summing `a ++ b`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Sum of the words so far, folded lazily (a u64 cannot overflow from
    /// 16-bit additions for any slice that fits in memory).
    sum: u64,
    /// The high byte of a word whose low byte has not been seen yet.
    pending: Option<u8>,
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `data` as if it directly followed everything added before.
    pub fn add(&mut self, mut data: &[u8]) -> &mut Self {
        if let Some(high) = self.pending.take() {
            match data.split_first() {
                Some((&low, rest)) => {
                    self.sum += u64::from(u16::from_be_bytes([high, low]));
                    data = rest;
                }
                None => {
                    self.pending = Some(high);
                    return self;
                }
            }
        }
        let mut words = data.chunks_exact(2);
        for word in &mut words {
            if let [high, low] = *word {
                self.sum += u64::from(u16::from_be_bytes([high, low]));
            }
        }
        self.pending = words.remainder().first().copied();
        self
    }

    /// Adds `value` as two big-endian bytes, like [`Checksum::add`].
    pub fn add_u16(&mut self, value: u16) -> &mut Self {
        self.add(&value.to_be_bytes())
    }

    /// The ones' complement of the folded sum: the value to put in a
    /// checksum field (computed with that field zeroed), or 0 when verifying
    /// data that includes a correct checksum.
    pub fn finish(&self) -> u16 {
        let mut sum = self.sum;
        if let Some(high) = self.pending {
            // RFC 1071 §4.1: an odd final byte is padded with a zero byte.
            sum += u64::from(u16::from_be_bytes([high, 0]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        // The loop above leaves at most 0xffff, so this conversion is exact.
        !(u16::try_from(sum).unwrap_or(u16::MAX))
    }
}

/// The RFC 1071 checksum of one slice.
pub fn internet_checksum(data: &[u8]) -> u16 {
    Checksum::new().add(data).finish()
}

/// Adds the IPv4 pseudo-header (RFC 768 / RFC 793 layout: source,
/// destination, zero, protocol, upper-layer length) for a VRRP message of
/// `len` bytes.
fn add_pseudo_header(sum: &mut Checksum, src: Ipv4Addr, dst: Ipv4Addr, len: usize) {
    // A VRRP message is at most 8 + 255 * 4 bytes; anything longer cannot be
    // described by the 16-bit field, and saturating keeps the result a
    // (wrong, hence rejected) checksum rather than a panic.
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    sum.add(&src.octets())
        .add(&dst.octets())
        .add(&[0, PROTOCOL_VRRP])
        .add_u16(len);
}

/// Adds the IPv6 pseudo-header of RFC 8200 §8.1: source, destination, the
/// upper-layer packet length as 32 bits, three zero bytes, next header.
pub fn add_ipv6_pseudo_header(
    sum: &mut Checksum,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    len: usize,
    next_header: u8,
) {
    // No message we build or accept comes near 4 GiB; saturating keeps a
    // (wrong, hence rejected) checksum rather than a panic.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    sum.add(&src.octets())
        .add(&dst.octets())
        .add(&len.to_be_bytes())
        .add(&[0, 0, 0, next_header]);
}

/// The RFC 8200 §8.1 checksum of an upper-layer message sent from `src` to
/// `dst` with `next_header` (112 for VRRP, RFC 5798 §5.2.8; 58 for ICMPv6,
/// RFC 4443 §2.3). Computed with the checksum field zeroed it is the value
/// to write; over a message with a correct checksum it is 0.
pub fn ipv6_checksum(message: &[u8], src: Ipv6Addr, dst: Ipv6Addr, next_header: u8) -> u16 {
    let mut sum = Checksum::new();
    add_ipv6_pseudo_header(&mut sum, src, dst, message.len(), next_header);
    sum.add(message).finish()
}

/// The checksum to write into a VRRP message whose checksum field is zero.
/// `src`/`dst` are the IPv4 source and destination the message is sent
/// with; they matter only in [`ChecksumMode::PseudoHeader`], and there they
/// make every unicast peer's copy carry its own checksum.
pub fn vrrp_checksum(vrrp: &[u8], src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) -> u16 {
    let mut sum = Checksum::new();
    if mode == ChecksumMode::PseudoHeader {
        add_pseudo_header(&mut sum, src, dst, vrrp.len());
    }
    sum.add(vrrp).finish()
}

/// Checks the checksum of a received VRRP message (checksum field as
/// received) and says which form it was computed in, or `None` if neither.
///
/// Tried in order: the pseudo-header with the real destination (keepalived,
/// FRR), no pseudo-header (Cisco, RFC 9568 readings), and, for unicast
/// adverts only, the pseudo-header with 224.0.0.18 as destination
/// (keepalived before 1.3.6, and 2.x with `old_unicast_checksum`, put the
/// group there even for unicast; reported as `PseudoHeader`, being that
/// form with a historical bug). A message whose pseudo-header sums
/// to zero verifies in more than one form; the first is reported.
pub fn verify_vrrp(vrrp: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Option<ChecksumMode> {
    let verifies = |pseudo_dst: Option<Ipv4Addr>| {
        let mut sum = Checksum::new();
        if let Some(pseudo_dst) = pseudo_dst {
            add_pseudo_header(&mut sum, src, pseudo_dst, vrrp.len());
        }
        sum.add(vrrp).finish() == 0
    };
    if verifies(Some(dst)) {
        Some(ChecksumMode::PseudoHeader)
    } else if verifies(None) {
        Some(ChecksumMode::NoPseudoHeader)
    } else if dst != VRRP_MULTICAST && verifies(Some(VRRP_MULTICAST)) {
        Some(ChecksumMode::PseudoHeader)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3's worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to
    /// ddf2 (before complement).
    const RFC1071_EXAMPLE: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        assert_eq!(internet_checksum(&RFC1071_EXAMPLE), !0xddf2);
    }

    #[test]
    fn incremental_sum_equals_one_shot_for_every_split_point() {
        let data: Vec<u8> = (0u8..=40).map(|i| i.wrapping_mul(37)).collect();
        let whole = internet_checksum(&data);
        for split in 0..=data.len() {
            let (a, b) = data.split_at(split);
            assert_eq!(
                Checksum::new().add(a).add(b).finish(),
                whole,
                "split {split}"
            );
        }
        // Three pieces with odd lengths, and an empty piece in between.
        let mut sum = Checksum::new();
        sum.add(&data[..3])
            .add(&[])
            .add(&data[3..8])
            .add(&data[8..]);
        assert_eq!(sum.finish(), whole);
    }

    #[test]
    fn odd_length_is_padded_with_a_zero_byte() {
        assert_eq!(internet_checksum(&[0xab]), internet_checksum(&[0xab, 0x00]));
    }

    #[test]
    fn data_including_its_checksum_verifies_to_zero() {
        let mut data = RFC1071_EXAMPLE.to_vec();
        let sum = internet_checksum(&data);
        data.extend_from_slice(&sum.to_be_bytes());
        assert_eq!(internet_checksum(&data), 0);
    }

    #[test]
    fn empty_input_checksums_to_ffff() {
        assert_eq!(internet_checksum(&[]), 0xffff);
    }

    fn advert_with_checksum(src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) -> Vec<u8> {
        // version 3, type 1, vrid 51, priority 150, count 1, interval 100 cs,
        // checksum zero, 198.18.99.1.
        let mut vrrp = vec![0x31, 51, 150, 1, 0x00, 0x64, 0, 0, 198, 18, 99, 1];
        let sum = vrrp_checksum(&vrrp, src, dst, mode);
        vrrp[6..8].copy_from_slice(&sum.to_be_bytes());
        vrrp
    }

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    #[test]
    fn verify_reports_the_form_the_checksum_was_computed_in() {
        for mode in [ChecksumMode::PseudoHeader, ChecksumMode::NoPseudoHeader] {
            let vrrp = advert_with_checksum(SRC, VRRP_MULTICAST, mode);
            assert_eq!(verify_vrrp(&vrrp, SRC, VRRP_MULTICAST), Some(mode));
        }
    }

    #[test]
    fn pseudo_header_checksum_depends_on_the_destination() {
        let a = advert_with_checksum(SRC, PEER, ChecksumMode::PseudoHeader);
        let b = advert_with_checksum(
            SRC,
            Ipv4Addr::new(198, 18, 0, 3),
            ChecksumMode::PseudoHeader,
        );
        assert_ne!(a, b);
        assert_eq!(verify_vrrp(&a, SRC, PEER), Some(ChecksumMode::PseudoHeader));
        // Delivered to the wrong peer, the pseudo-header no longer matches.
        assert_eq!(verify_vrrp(&a, SRC, Ipv4Addr::new(198, 18, 0, 3)), None);
    }

    #[test]
    fn old_keepalived_unicast_form_is_accepted_as_pseudo_header() {
        // Computed with the multicast group although sent to PEER.
        let vrrp = advert_with_checksum(SRC, VRRP_MULTICAST, ChecksumMode::PseudoHeader);
        assert_eq!(
            verify_vrrp(&vrrp, SRC, PEER),
            Some(ChecksumMode::PseudoHeader)
        );
    }

    #[test]
    fn a_flipped_bit_fails_every_form() {
        let mut vrrp = advert_with_checksum(SRC, VRRP_MULTICAST, ChecksumMode::PseudoHeader);
        vrrp[2] ^= 0x01;
        assert_eq!(verify_vrrp(&vrrp, SRC, VRRP_MULTICAST), None);
        assert_eq!(verify_vrrp(&vrrp, SRC, PEER), None);
    }

    #[test]
    fn ipv6_pseudo_header_has_the_rfc8200_layout() {
        // RFC 8200 §8.1: 16 + 16 + 4 (length) + 3 zero + 1 (next header)
        // bytes; summing them by hand must give the same checksum.
        let src: Ipv6Addr = "fe80::1".parse().expect("address");
        let dst: Ipv6Addr = "ff02::12".parse().expect("address");
        let message = [0x31, 51, 150, 1, 0x00, 0x64, 0, 0, 0xab];
        let mut manual = Vec::new();
        manual.extend_from_slice(&src.octets());
        manual.extend_from_slice(&dst.octets());
        manual.extend_from_slice(&9u32.to_be_bytes());
        manual.extend_from_slice(&[0, 0, 0, 112]);
        manual.extend_from_slice(&message);
        assert_eq!(
            ipv6_checksum(&message, src, dst, 112),
            internet_checksum(&manual)
        );
        // The next header takes part: ICMPv6's sum differs.
        assert_ne!(
            ipv6_checksum(&message, src, dst, 112),
            ipv6_checksum(&message, src, dst, 58)
        );
    }

    #[test]
    fn wrong_source_fails_the_pseudo_header_form() {
        let vrrp = advert_with_checksum(SRC, VRRP_MULTICAST, ChecksumMode::PseudoHeader);
        assert_eq!(verify_vrrp(&vrrp, PEER, VRRP_MULTICAST), None);
    }
}
