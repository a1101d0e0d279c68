//! `[storage]`: where the shared dirs live on the master and how the master
//! takes and releases that storage (read and checked in
//! `load/storage.rs`).
//!
//! With `[cbsd]` but without `[storage]` the node is a follower-only node:
//! it votes, mounts and runs its environments, but never becomes master
//! ([`super::Config::may_be_master`]).

use std::path::PathBuf;

/// Default `storage.root` and `nfs.remote_root`.
pub const DEFAULT_STORAGE_ROOT: &str = "/store";

/// `[storage]`: where the shared dirs live on the master, and how the
/// master takes and releases that storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    /// The master's copy of each shared dir is `<root>/<d>`, e.g. `/store`.
    pub root: PathBuf,
    pub kind: StorageKind,
}

impl Storage {
    /// `/store/<d>` for a shared dir `d`.
    pub fn dir_path(&self, dir: &str) -> PathBuf {
        self.root.join(dir)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// The dirs are already in place on every candidate (the operator's job).
    None,
    /// HAST: `hastctl role primary RES`, `/dev/hast/RES` mounted on the root.
    Hast {
        resource: String,
        /// File system type on the HAST provider, for `fsck -t`.
        fstype: String,
        /// The provider's device, `/dev/hast/<resource>`.
        device: PathBuf,
    },
    /// A pool on shared disks with `multihost=on`: `zpool import -o
    /// cachefile=none -f POOL` (after a read-only import has shown
    /// `multihost=on`) / `zpool export POOL`.
    Zfs { pool: String },
}

impl StorageKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            StorageKind::None => "none",
            StorageKind::Hast { .. } => "hast",
            StorageKind::Zfs { .. } => "zfs",
        }
    }
}
