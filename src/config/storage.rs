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
    /// `storage.kind`: how the master takes and releases the storage (none, HAST or ZFS).
    pub kind: StorageKind,
}

impl Storage {
    /// `/store/<d>` for a shared dir `d`.
    pub fn dir_path(&self, dir: &str) -> PathBuf {
        self.root.join(dir)
    }
}

/// `storage.kind` and its settings: what the promote runbook does to get
/// the store onto `root`, and the demote runbook to release it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// The dirs are already in place on every candidate (the operator's job).
    None,
    /// HAST: `hastctl role primary RES`, `/dev/hast/RES` mounted on the root.
    Hast {
        /// `storage.resource`: the HAST resource name in hast.conf(5).
        resource: String,
        /// File system type on the HAST provider, for `fsck -t`.
        fstype: String,
        /// The provider's device, `/dev/hast/<resource>`.
        device: PathBuf,
    },
    /// A pool on shared disks with `multihost=on`: `zpool import -o
    /// cachefile=none -f POOL` (after a read-only import has shown
    /// `multihost=on`) / `zpool export POOL`.
    Zfs {
        /// `storage.pool`: the name of the pool to import.
        pool: String,
    },
}

impl StorageKind {
    /// The `storage.kind` spelling: `"none"`, `"hast"` or `"zfs"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StorageKind::None => "none",
            StorageKind::Hast { .. } => "hast",
            StorageKind::Zfs { .. } => "zfs",
        }
    }
}
