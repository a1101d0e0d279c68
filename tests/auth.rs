//! Authentication as an operator meets it (issue 5 point 4): key files
//! refused unless root-only, key rotation without a moment where two nodes
//! cannot hear each other, replayed and mis-keyed messages dropped — for
//! heartbeats and adverts alike.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};

use rcbsd_failover::auth::{Counter, KeyFileError, KeyUsed, Keyring, ReplayGuard};
use rcbsd_failover::wire::advert_auth;
use rcbsd_failover::wire::heartbeat::{self, Heartbeat, HeartbeatError};
use rcbsd_failover::wire::VrrpState;

const OLD: &str = "9f2c4e1a7b3d5f6e8a0c2e4f6a8b0d1c3e5f7a9b1d3f5e7c9a1b3d5f7e9c1a3b";
const NEW: &str = "1a3b5c7d9e0f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b";
const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// True when running as root; otherwise says loudly that the test is
/// skipped (files owned by root need root to create).
fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("RCBSD_TESTS_STRICT").is_none_or(|v| v != "1"),
        "{} would skip ({}) and RCBSD_TESTS_STRICT=1 is set (tools/test): every test must run",
        std::thread::current().name().unwrap_or("test"),
        "not root"
    );
    eprintln!(
        "\n*** SKIP {}: key file ownership tests need root ***\n",
        std::thread::current().name().unwrap_or("test")
    );
    false
}

/// Writes `text` to `dir/name` with `mode`, owned by `uid`.
fn key_file(dir: &Path, name: &str, text: &str, mode: u32, uid: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write key file");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    chown(&path, Some(uid), Some(0)).expect("chown");
    path
}

fn heartbeat(node: &str, seq: u64) -> Heartbeat {
    Heartbeat {
        node: node.into(),
        incarnation: 1_700_000_000_000_000,
        seq,
        state: VrrpState::Backup,
        priority: 100,
        quorum: true,
        handing_over: false,
        quiesced: false,
        serving: false,
        reclaimable: false,
        following: Some(SRC.into()),
        config_hash: 42,
        quorum_hash: 43,
        acks: vec![],
        claims: vec![],
        grants: vec![],
        running: vec!["web1".into()],
        handoffs: vec![],
    }
}

#[test]
fn a_root_only_key_file_loads_with_surrounding_whitespace_trimmed() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = key_file(dir.path(), "key", &format!("  {OLD}\n\n"), 0o600, 0);
    let loaded = Keyring::load(&path, None).expect("loads");
    let expected = Keyring::from_secrets(OLD.as_bytes(), None);
    assert_eq!(loaded.sign(&[b"message"]), expected.sign(&[b"message"]));
    assert!(!loaded.has_accept_key());
}

#[test]
fn a_key_file_not_owned_by_root_is_refused_with_the_fix() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = key_file(dir.path(), "key", OLD, 0o600, 1000);
    let error = Keyring::load(&path, None).expect_err("refused");
    assert!(
        matches!(error, KeyFileError::NotOwnedByRoot { uid: 1000, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("chown root"), "{message}");
}

#[test]
fn a_key_file_with_group_or_other_permissions_is_refused_with_the_fix() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for mode in [0o640, 0o604, 0o620, 0o601, 0o644] {
        let path = key_file(dir.path(), &format!("key-{mode:o}"), OLD, mode, 0);
        let error = Keyring::load(&path, None).expect_err("refused");
        assert!(
            matches!(error, KeyFileError::AccessibleByOthers { mode: m, .. } if m == mode),
            "mode {mode:o}: {error:?}"
        );
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
    // Owner-only modes other than 0600 are fine.
    let read_only = key_file(dir.path(), "key-400", OLD, 0o400, 0);
    assert!(Keyring::load(&read_only, None).is_ok());
}

#[test]
fn a_short_key_is_refused_with_how_to_make_one() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = key_file(dir.path(), "key", "  short-key  \n", 0o600, 0);
    let error = Keyring::load(&path, None).expect_err("refused");
    assert!(
        matches!(error, KeyFileError::TooShort { len: 9, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("openssl rand -hex 32"),
        "{error}"
    );
}

#[test]
fn a_directory_or_a_missing_file_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = Keyring::load(dir.path(), None).expect_err("a directory");
    assert!(
        matches!(error, KeyFileError::NotRegularFile { .. }),
        "{error:?}"
    );
    let missing = dir.path().join("absent.key");
    let error = Keyring::load(&missing, None).expect_err("missing");
    assert!(matches!(error, KeyFileError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains("absent.key"), "{error}");
}

#[test]
fn the_accept_key_file_is_held_to_the_same_rules() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = key_file(dir.path(), "key", NEW, 0o600, 0);
    let loose = key_file(dir.path(), "key.old", OLD, 0o644, 0);
    let error = Keyring::load(&good, Some(&loose)).expect_err("refused");
    assert!(error.to_string().contains("key.old"), "{error}");
    let tight = key_file(dir.path(), "key.old2", OLD, 0o600, 0);
    let keys = Keyring::load(&good, Some(&tight)).expect("loads");
    assert!(keys.has_accept_key());
}

/// The three steps of the rotation documented in `rcbsd_failover::auth`,
/// with nodes reconfigured one at a time: at every moment each node
/// accepts the heartbeats of every other.
#[test]
fn rotating_keys_one_node_at_a_time_never_breaks_the_cluster() {
    let (old, new) = (OLD.as_bytes(), NEW.as_bytes());
    let before = Keyring::from_secrets(old, None);
    let step1 = Keyring::from_secrets(old, Some(new));
    let step2 = Keyring::from_secrets(new, Some(old));
    let step3 = Keyring::from_secrets(new, None);
    // Node a moves to a step, then node b follows; each pair is a moment.
    let moments = [
        (&before, &before),
        (&step1, &before),
        (&step1, &step1),
        (&step2, &step1),
        (&step2, &step2),
        (&step3, &step2),
        (&step3, &step3),
    ];
    for (index, (a, b)) in moments.iter().enumerate() {
        let from_a = heartbeat::encode(&heartbeat("node-a", 1), Some(a)).expect("encodes");
        let from_b = heartbeat::encode(&heartbeat("node-b", 1), Some(b)).expect("encodes");
        assert!(
            heartbeat::decode(&from_a, Some(b)).is_ok(),
            "moment {index}: b refuses a"
        );
        assert!(
            heartbeat::decode(&from_b, Some(a)).is_ok(),
            "moment {index}: a refuses b"
        );
    }
}

#[test]
fn old_key_messages_are_accepted_by_new_with_old_accepted_and_vice_versa() {
    let old = Keyring::from_secrets(OLD.as_bytes(), None);
    let new = Keyring::from_secrets(NEW.as_bytes(), None);
    let new_accepting_old = Keyring::from_secrets(NEW.as_bytes(), Some(OLD.as_bytes()));
    let old_accepting_new = Keyring::from_secrets(OLD.as_bytes(), Some(NEW.as_bytes()));

    let signed_old = heartbeat::encode(&heartbeat("node1", 1), Some(&old)).expect("encodes");
    let signed_new = heartbeat::encode(&heartbeat("node1", 1), Some(&new)).expect("encodes");
    assert!(heartbeat::decode(&signed_old, Some(&new_accepting_old)).is_ok());
    assert!(heartbeat::decode(&signed_new, Some(&old_accepting_new)).is_ok());

    let mut advert = vec![
        0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0x68, 0xb0, 0xc6, 0x12, 0x63, 0x01,
    ];
    let vrrp_len = advert.len();
    let counter = Counter {
        incarnation: 1,
        seq: 1,
    };
    advert_auth::append(&mut advert, &old, SRC, GROUP, counter);
    let (vrrp, trailer) = advert_auth::split(&advert, vrrp_len);
    let trailer = trailer.expect("trailer");
    let verified =
        advert_auth::verify(trailer, &new_accepting_old, SRC, GROUP, vrrp).expect("accepted");
    assert_eq!(verified.key, KeyUsed::Accept);
    assert_eq!(verified.counter, counter);
}

#[test]
fn a_message_signed_with_the_wrong_key_is_refused() {
    let ours = Keyring::from_secrets(OLD.as_bytes(), None);
    let theirs = Keyring::from_secrets(NEW.as_bytes(), None);
    let forged = heartbeat::encode(&heartbeat("node1", 1), Some(&theirs)).expect("encodes");
    let error = heartbeat::decode(&forged, Some(&ours)).expect_err("refused");
    assert_eq!(error, HeartbeatError::AuthBad);
    assert!(error.is_auth_failure());

    let mut advert = vec![
        0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0x68, 0xb0, 0xc6, 0x12, 0x63, 0x01,
    ];
    advert_auth::append(
        &mut advert,
        &theirs,
        SRC,
        GROUP,
        Counter {
            incarnation: 1,
            seq: 1,
        },
    );
    let (vrrp, trailer) = advert_auth::split(&advert, 12);
    assert!(advert_auth::verify(trailer.expect("trailer"), &ours, SRC, GROUP, vrrp).is_err());
}

/// A heartbeat receiver as the quorum code is meant to use the pieces:
/// decode (tag checked), then the replay guard keyed by node name.
#[test]
fn a_replayed_heartbeat_is_refused_and_a_restarted_sender_is_not() {
    let keys = Keyring::from_secrets(OLD.as_bytes(), None);
    let mut guard: ReplayGuard<String> = ReplayGuard::new(64);
    let mut receive = |datagram: &[u8]| -> bool {
        let Ok(hb) = heartbeat::decode(datagram, Some(&keys)) else {
            return false;
        };
        let counter = Counter {
            incarnation: hb.incarnation,
            seq: hb.seq,
        };
        guard.accept(hb.node, counter).is_ok()
    };
    let first = heartbeat::encode(&heartbeat("node1", 10), Some(&keys)).expect("encodes");
    let second = heartbeat::encode(&heartbeat("node1", 11), Some(&keys)).expect("encodes");
    assert!(receive(&first));
    assert!(receive(&second));
    assert!(!receive(&first), "an older heartbeat replayed");
    assert!(!receive(&second), "the same heartbeat twice");
    let restarted = Heartbeat {
        incarnation: 1_700_000_000_000_001,
        ..heartbeat("node1", 0)
    };
    let restarted = heartbeat::encode(&restarted, Some(&keys)).expect("encodes");
    assert!(
        receive(&restarted),
        "a new incarnation starts its sequence afresh"
    );
}
