//! `[auth]`: the keys that sign adverts and heartbeats (read and checked in
//! `load/auth.rs`). Without it nothing is signed.

use std::path::PathBuf;

/// `[auth]`: HMAC-SHA256 keys of adverts and heartbeats. Ownership and mode
/// are checked when the agent starts, not here (a config check needs no root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    /// Signs what this node sends; also accepted on receive.
    pub key_file: PathBuf,
    /// A second key accepted on receive, for rotating keys without downtime.
    pub accept_key_file: Option<PathBuf>,
}
