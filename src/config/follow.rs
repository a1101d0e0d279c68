//! `[follow]`: what a follower does when the master changes (read and
//! checked in `load/follow.rs`; issue 14).

use std::time::Duration;

/// What a follower does with its mounts when the master changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnMasterChange {
    /// Stop the environments, unmount, mount from the new master, start
    /// them again (the follow runbook). Needs nothing of the NFS server.
    #[default]
    Remount,
    /// Keep the mounts and the environments: wait until the new master
    /// serves, probe each mount, and fall back to the full follow only
    /// when a mount is stale, still hung at the deadline, or the storage's
    /// identity changed. Needs the NFSv4 server's state to move with the
    /// storage (`nfs.stable_restart_dir`).
    RideThrough,
}

impl OnMasterChange {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            OnMasterChange::Remount => "remount",
            OnMasterChange::RideThrough => "ride-through",
        }
    }
}

/// Default `follow.ride_through_timeout`. A follower waits at most this
/// long, from the moment it sees the master change, for the new master to
/// serve and for its mounts to answer. It must cover the election (three
/// advert intervals and the skew, RFC 5798 §6.4.2), the new master's
/// promote (storage, nfsd), and nfsd's grace period: the server starts in
/// grace for `nfsrv_lease + NFSRV_LEASEDELTA`, 120 s + 15 s by default
/// (sys/fs/nfs/nfs.h `NFSRV_LEASE`, `NFSRV_LEASEDELTA`;
/// sys/fs/nfsserver/nfs_nfsdstate.c `nfsrv_setupstable`), during which a
/// new (non-reclaim) open such as the `dir.id` check's gets `NFSERR_GRACE`
/// and the client retries it. 180 s leaves 45 s for detection and the
/// promote on top of the default grace period.
pub const DEFAULT_RIDE_THROUGH_TIMEOUT: Duration = Duration::from_secs(180);

/// `[follow]`: what a follower does when the master changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Follow {
    /// `follow.on_master_change`: `remount` (default) or `ride-through`.
    pub on_master_change: OnMasterChange,
    /// `follow.ride_through_timeout`: the longest a riding follower waits,
    /// from the master change, for the new master to serve and its mounts
    /// to answer before it falls back to the full follow.
    pub ride_through_timeout: Duration,
}

impl Follow {
    /// The ride-through deadline when riding through is configured.
    pub fn ride_through(&self) -> Option<Duration> {
        (self.on_master_change == OnMasterChange::RideThrough).then_some(self.ride_through_timeout)
    }
}

impl Default for Follow {
    fn default() -> Self {
        Follow {
            on_master_change: OnMasterChange::Remount,
            ride_through_timeout: DEFAULT_RIDE_THROUGH_TIMEOUT,
        }
    }
}
