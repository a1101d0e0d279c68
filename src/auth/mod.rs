//! Message authentication for adverts and heartbeats (issue 5 point 4): a
//! non-standard extension, off by default, for clusters that must not be
//! steered by a forged master.
//!
//! - [`Keyring`] holds the send key and an optional second accepted key,
//!   loaded from root-only files, and signs / verifies HMAC-SHA256 tags;
//! - [`ReplayGuard`] refuses a message whose (incarnation, sequence) counter
//!   is not newer than the last one accepted from the same sender;
//! - [`next_incarnation`] gives each start of the agent a counter that
//!   always grows, even when the clock steps back;
//! - [`AuthFailureLimiter`] decides when an `auth_failed` alert is logged,
//!   so that a flood of forgeries cannot flood the logs.
//!
//! Everything here is pure computation except [`Keyring::load`] and
//! [`next_incarnation`], which touch one file each.
//!
//! # Key rotation without downtime
//!
//! A message is signed with `key_file` and accepted when it verifies with
//! either `key_file` or `accept_key_file`. Rotating from OLD to NEW:
//! 1. every node: `key_file = OLD`, `accept_key_file = NEW`, reload;
//! 2. every node: `key_file = NEW`, `accept_key_file = OLD`, reload;
//! 3. every node: `key_file = NEW`, no `accept_key_file`.
//!
//! At every moment of every step, each node accepts what every other node
//! sends.

mod incarnation;
mod keyring;
mod limiter;
mod replay;

pub use incarnation::{next_incarnation, INCARNATION_FILE};
pub use keyring::{KeyFileError, KeyUsed, Keyring, MAX_KEY_LEN, MIN_KEY_LEN, TAG_LEN};
pub use limiter::{AuthAlert, AuthFailureLimiter};
pub use replay::{Counter, ReplayError, ReplayGuard};

/// Why an authenticated message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The HMAC-SHA256 tag verified with none of the [`Keyring`]'s keys.
    #[error(
        "authentication tag matches neither the send key nor the accepted key \
         (wrong key on the sender, or a forged or altered message)"
    )]
    BadTag,
    /// The bytes after the message are not a trailer of our format: wrong
    /// length, wrong magic, or fields that cannot be read.
    #[error("authentication trailer of {len} bytes, expected {expected} starting with {magic:?}")]
    MalformedTrailer {
        /// Length in bytes of what was found where the trailer should be.
        len: usize,
        /// Length in bytes a well-formed trailer has.
        expected: usize,
        /// The four ASCII bytes a trailer must start with (e.g. `"RCA1"`).
        magic: &'static str,
    },
}
