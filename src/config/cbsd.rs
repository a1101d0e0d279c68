//! `[cbsd]`: the CBSD workdir and the directories the master shares
//! (read and checked in `load/cbsd.rs`). `docs/configuration.md` describes
//! every key.
//!
//! A file without `[cbsd]` is a plain VRRP node: the runbooks only move the
//! virtual IP.

use std::path::PathBuf;

/// `[cbsd]`: the CBSD workdir and the directories shared from the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cbsd {
    /// CBSD's workdir, e.g. `/usr/jails`.
    pub workdir: PathBuf,
    /// Directory names under the workdir that live on the shared storage
    /// (`jails-data`, ...): single path components, no duplicates.
    pub shared_dirs: Vec<String>,
    /// Path of CBSD's `dir.id`, relative to the workdir, inside a shared dir.
    pub dir_id_file: PathBuf,
    /// The cluster's known `dir.id` content; `None`: the file must merely
    /// exist and be non-empty.
    pub dir_id: Option<String>,
}

impl Cbsd {
    /// `/usr/jails/<d>` for a shared dir `d`.
    pub fn workdir_path(&self, dir: &str) -> PathBuf {
        self.workdir.join(dir)
    }
}
