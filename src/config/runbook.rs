//! `[runbook]`: the timeouts and retry rules of the runbook steps (read and
//! checked in `load/runbook.rs`).

use std::time::Duration;

/// `[runbook]`: timeouts and retry rules of the runbook steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunbookSettings {
    /// Default timeout of a command step (service, mount, cbsd queries).
    pub command_timeout: Duration,
    /// Timeout of each `umount` attempt (`-f` against a dead server can take
    /// a minute).
    pub umount_timeout: Duration,
    /// How long a live NFS server may take to answer `df` (statfs(2)) on a
    /// mount before promote and follow count it gone and force-dismount
    /// the mount first (`umount -N`).
    pub nfs_answer_timeout: Duration,
    /// Timeout of taking or releasing the storage (import, fsck, mount).
    pub storage_timeout: Duration,
    /// How long to wait for `/dev/hast/RES` after `role primary`.
    pub device_wait: Duration,
    /// Timeout of one `mount_nfs` attempt.
    pub mount_timeout: Duration,
    /// Attempts of a follow mount before the follow fails.
    pub mount_attempts: u32,
    /// First backoff between mount attempts; doubled each time.
    pub retry_backoff: Duration,
    /// Largest backoff between attempts.
    pub retry_backoff_max: Duration,
    /// How long a node whose promote failed stays in fault before it may
    /// try again.
    pub fault_hold_off: Duration,
}

impl Default for RunbookSettings {
    fn default() -> Self {
        RunbookSettings {
            command_timeout: Duration::from_secs(30),
            umount_timeout: Duration::from_secs(90),
            nfs_answer_timeout: Duration::from_secs(5),
            storage_timeout: Duration::from_secs(600),
            device_wait: Duration::from_secs(30),
            mount_timeout: Duration::from_secs(30),
            mount_attempts: 5,
            retry_backoff: Duration::from_secs(2),
            retry_backoff_max: Duration::from_secs(30),
            fault_hold_off: Duration::from_secs(60),
        }
    }
}
