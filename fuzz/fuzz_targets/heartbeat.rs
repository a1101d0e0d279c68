//! Cluster heartbeats: a UDP datagram from any host that can reach the
//! heartbeat port. Decodes it unauthenticated, then (since the fuzzer cannot
//! forge an HMAC) signs the same bytes with a test key so the authenticated
//! path parses arbitrary bodies too. Whatever decodes must re-encode to the
//! very same bytes: the encoding is canonical, so the tag covers one meaning.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rcbsd_failover::auth::{Keyring, TAG_LEN};
use rcbsd_failover::wire::heartbeat::{self, HeartbeatError, FLAG_AUTHENTICATED};

const SEND_KEY: &[u8] = b"fuzz-send-key-0123456789abcdef-0123456789";
const OLD_KEY: &[u8] = b"fuzz-old-key-during-rotation-0123456789ab";
const FOREIGN_KEY: &[u8] = b"a-key-no-node-of-this-cluster-holds-01234";
/// Offset of the flags byte: after the magic and the version.
const FLAGS: usize = 5;

fuzz_target!(|datagram: &[u8]| {
    let keys = Keyring::from_secrets(SEND_KEY, Some(OLD_KEY));
    match heartbeat::decode(datagram, None) {
        Ok(decoded) => {
            let encoded = heartbeat::encode(&decoded, None).expect("a decoded heartbeat encodes");
            assert_eq!(encoded, datagram, "decode then encode changed the bytes");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    // Where [auth] is configured, nothing passes without a tag that one of
    // our keys made over every byte before it.
    if heartbeat::decode(datagram, Some(&keys)).is_ok() {
        let (body, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        assert!(datagram[FLAGS] & FLAG_AUTHENTICATED != 0);
        assert!(
            keys.verify(&[body], tag).is_ok(),
            "accepted without a valid tag"
        );
    }

    let Some(signed) = sign_as_peer(datagram, OLD_KEY) else {
        return;
    };
    match heartbeat::decode(&signed, Some(&keys)) {
        Ok(decoded) => {
            // Re-signed with the send key: the same body, another tag.
            let encoded =
                heartbeat::encode(&decoded, Some(&keys)).expect("a decoded heartbeat encodes");
            assert_eq!(
                encoded[..encoded.len() - TAG_LEN],
                signed[..signed.len() - TAG_LEN]
            );
            let foreign = Keyring::from_secrets(FOREIGN_KEY, None);
            assert_eq!(
                heartbeat::decode(&signed, Some(&foreign)),
                Err(HeartbeatError::AuthBad)
            );
            assert_eq!(
                heartbeat::decode(&signed, None),
                Err(HeartbeatError::AuthUnexpected)
            );
        }
        Err(error) => assert!(
            !error.is_auth_failure(),
            "a correctly signed datagram failed auth: {error}"
        ),
    }
});

/// The datagram as a peer still signing with `key` would send it: the
/// authenticated flag set and an HMAC of every byte appended. `None` when
/// it is too short to carry flags.
fn sign_as_peer(datagram: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let mut signed = datagram.to_vec();
    *signed.get_mut(FLAGS)? |= FLAG_AUTHENTICATED;
    let tag = Keyring::from_secrets(key, None).sign(&[&signed]);
    signed.extend_from_slice(&tag);
    Some(signed)
}
