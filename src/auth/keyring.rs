//! The shared secrets and the HMAC-SHA256 computation over them.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::AuthError;

/// Length of an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Shortest key accepted from a file: 32 bytes, as many as the tag, so the
/// key is not the weak link (RFC 2104 §3: less than L bytes is discouraged).
pub const MIN_KEY_LEN: usize = 32;
/// Longest key file read; a key is a line of text, not a document.
pub const MAX_KEY_LEN: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

/// Which key verified a message (for `status`: who still sends the old key
/// during a rotation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUsed {
    /// `key_file`, the one we sign with.
    Send,
    /// `accept_key_file`, the other key of a rotation.
    Accept,
}

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be opened (missing, or no permission).
    #[error("auth key file {path}: cannot open: {source}")]
    Open {
        /// The configured `key_file` or `accept_key_file`.
        path: PathBuf,
        /// The error `open(2)` returned.
        #[source]
        source: io::Error,
    },
    /// The file opened but reading its metadata or contents failed.
    #[error("auth key file {path}: cannot read: {source}")]
    Read {
        /// The configured `key_file` or `accept_key_file`.
        path: PathBuf,
        /// The error the read (or `fstat(2)`) returned.
        #[source]
        source: io::Error,
    },
    /// The path names a directory, device, FIFO or the like.
    #[error("auth key file {path} is not a regular file")]
    NotRegularFile {
        /// The configured `key_file` or `accept_key_file`.
        path: PathBuf,
    },
    /// Someone other than root owns the file and could change the key.
    #[error(
        "auth key file {path} is owned by uid {uid}, not root: \
         run `chown root:wheel {path}`"
    )]
    NotOwnedByRoot {
        /// The configured `key_file` or `accept_key_file`.
        path: PathBuf,
        /// The file's owner, as `stat(2)` reports it.
        uid: u32,
    },
    /// The file's mode grants group or others some access (any bit of 0o077).
    #[error(
        "auth key file {path} has mode {mode:04o}: group or others may access it; \
         run `chmod 600 {path}`"
    )]
    AccessibleByOthers {
        /// The configured `key_file` or `accept_key_file`.
        path: PathBuf,
        /// The permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// The key, whitespace trimmed, is shorter than [`MIN_KEY_LEN`] bytes.
    #[error(
        "auth key file {path} holds a key of {len} bytes (surrounding whitespace trimmed), \
         at least {MIN_KEY_LEN} are needed: create one with \
         `openssl rand -hex 32 > {path}`"
    )]
    TooShort {
        /// The configured `key_file` or `accept_key_file`.
        path: PathBuf,
        /// Length in bytes of the trimmed key that was read.
        len: usize,
    },
    /// The file is larger than [`MAX_KEY_LEN`] bytes.
    #[error("auth key file {path} is larger than {MAX_KEY_LEN} bytes; a key is one line of text")]
    TooLong {
        /// The configured `key_file` or `accept_key_file`.
        path: PathBuf,
    },
}

/// The send key and, during a rotation, a second key also accepted.
/// Each key is kept as an HMAC state already keyed, so that a message costs
/// only the hashing of its own bytes.
#[derive(Clone)]
pub struct Keyring {
    send: HmacSha256,
    accept: Option<HmacSha256>,
}

impl fmt::Debug for Keyring {
    // Never print key material, not even in a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("accept_key", &self.accept.is_some())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads `key_file` (signs and verifies) and `accept_key_file` (also
    /// verifies). Each must be a regular file owned by root with no group or
    /// other permission, holding at least [`MIN_KEY_LEN`] bytes of key once
    /// surrounding whitespace is trimmed. The bytes are the key as written
    /// (hex text from `openssl rand -hex 32` is used as is, not decoded).
    pub fn load(key_file: &Path, accept_key_file: Option<&Path>) -> Result<Keyring, KeyFileError> {
        let send = read_key_file(key_file)?;
        let accept = accept_key_file.map(read_key_file).transpose()?;
        Ok(Keyring::from_secrets(&send, accept.as_deref()))
    }

    /// A keyring from secrets already in memory (tests, simulation). No
    /// length rule is applied here; [`Keyring::load`] applies it to files.
    pub fn from_secrets(send: &[u8], accept: Option<&[u8]>) -> Keyring {
        Keyring {
            send: keyed(send),
            accept: accept.map(keyed),
        }
    }

    /// Whether a second key is accepted (a rotation is in progress).
    pub fn has_accept_key(&self) -> bool {
        self.accept.is_some()
    }

    /// The tag of the concatenation of `parts`, with the send key.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        mac_of(&self.send, parts).finalize().into_bytes().into()
    }

    /// Checks `tag` over `parts` with the send key, then the accepted key;
    /// each comparison takes constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> Result<KeyUsed, AuthError> {
        if mac_of(&self.send, parts).verify_slice(tag).is_ok() {
            return Ok(KeyUsed::Send);
        }
        match &self.accept {
            Some(accept) if mac_of(accept, parts).verify_slice(tag).is_ok() => Ok(KeyUsed::Accept),
            _ => Err(AuthError::BadTag),
        }
    }
}

/// An HMAC state keyed with `key`, following RFC 2104 §2 by hand so that no
/// fallible constructor is needed: a key longer than the hash block is
/// replaced by its hash, then the key is zero-padded to the block.
fn keyed(key: &[u8]) -> HmacSha256 {
    use hmac::digest::{Digest, KeyInit};
    let mut block = hmac::digest::generic_array::GenericArray::default();
    if key.len() > block.len() {
        let hashed = Sha256::digest(key);
        block[..hashed.len()].copy_from_slice(&hashed);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as KeyInit>::new(&block)
}

fn mac_of(keyed: &HmacSha256, parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = keyed.clone();
    for part in parts {
        mac.update(part);
    }
    mac
}

fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let file = File::open(path).map_err(|source| KeyFileError::Open {
        path: path.to_owned(),
        source,
    })?;
    // The checks use the opened file's metadata, not the path's, so the
    // file checked is the file read.
    let metadata = file.metadata().map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(KeyFileError::NotRegularFile {
            path: path.to_owned(),
        });
    }
    if metadata.uid() != 0 {
        return Err(KeyFileError::NotOwnedByRoot {
            path: path.to_owned(),
            uid: metadata.uid(),
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::AccessibleByOthers {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = Vec::new();
    // One byte more than allowed, to tell "too long" from "exactly full".
    let limit = u64::try_from(MAX_KEY_LEN)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(&mut text)
        .map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
    if text.len() > MAX_KEY_LEN {
        return Err(KeyFileError::TooLong {
            path: path.to_owned(),
        });
    }
    let key = text.trim_ascii();
    if key.len() < MIN_KEY_LEN {
        return Err(KeyFileError::TooShort {
            path: path.to_owned(),
            len: key.len(),
        });
    }
    Ok(key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231 §4.2, test case 1: a 20-byte key.
    #[test]
    fn rfc4231_case_1_short_key() {
        let keys = Keyring::from_secrets(&[0x0b; 20], None);
        assert_eq!(
            hex(&keys.sign(&[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    /// RFC 4231 §4.7, test case 6: a 131-byte key, longer than the block,
    /// is hashed first.
    #[test]
    fn rfc4231_case_6_key_longer_than_block() {
        let keys = Keyring::from_secrets(&[0xaa; 131], None);
        let message = b"Test Using Larger Than Block-Size Key - Hash Key First";
        assert_eq!(
            hex(&keys.sign(&[message])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// A 64-byte key (exactly one block) is used without hashing.
    #[test]
    fn block_sized_key_matches_the_library_constructor() {
        let key = [0x5a; 64];
        let mut reference = <HmacSha256 as Mac>::new_from_slice(&key).expect("any length");
        reference.update(b"abc");
        let expected: [u8; TAG_LEN] = reference.finalize().into_bytes().into();
        assert_eq!(Keyring::from_secrets(&key, None).sign(&[b"abc"]), expected);
    }

    #[test]
    fn parts_are_concatenated() {
        let keys = Keyring::from_secrets(b"k", None);
        assert_eq!(keys.sign(&[b"ab", b"c"]), keys.sign(&[b"abc"]));
    }

    #[test]
    fn verify_names_the_key_that_matched() {
        let old = Keyring::from_secrets(b"old", None);
        let new = Keyring::from_secrets(b"new", None);
        let rotating = Keyring::from_secrets(b"new", Some(b"old"));
        assert_eq!(
            rotating.verify(&[b"m"], &new.sign(&[b"m"])),
            Ok(KeyUsed::Send)
        );
        assert_eq!(
            rotating.verify(&[b"m"], &old.sign(&[b"m"])),
            Ok(KeyUsed::Accept)
        );
        assert_eq!(
            new.verify(&[b"m"], &old.sign(&[b"m"])),
            Err(AuthError::BadTag)
        );
    }

    #[test]
    fn a_short_or_altered_tag_is_refused() {
        let keys = Keyring::from_secrets(b"k", None);
        let mut tag = keys.sign(&[b"m"]);
        assert_eq!(keys.verify(&[b"m"], &tag[..31]), Err(AuthError::BadTag));
        assert_eq!(keys.verify(&[b"m"], &[]), Err(AuthError::BadTag));
        tag[0] ^= 1;
        assert_eq!(keys.verify(&[b"m"], &tag), Err(AuthError::BadTag));
    }

    #[test]
    fn debug_output_shows_no_key() {
        let keys = Keyring::from_secrets(b"secret-secret", Some(b"other-secret"));
        let shown = format!("{keys:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("accept_key: true"), "{shown}");
    }
}
