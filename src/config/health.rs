//! `[health]` and `[[track]]`: what the agent watches between transitions,
//! and what it does about a failure (issue 12). The built-in checks follow
//! from the other sections (the master's NFS services, exports, storage,
//! VIP and nfsd listener; a follower's mounts and environments); `[health]`
//! sets their timing and limits. `[[track]]` adds the operator's own
//! checks, as keepalived's `vrrp_script`: an argv with an interval, a
//! timeout, rise and fall, and either a priority `weight` or `on_fail =
//! "resign"`.

use std::path::PathBuf;
use std::time::Duration;

/// Default `health.interval`.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Default `health.timeout`.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `health.rise`.
pub const DEFAULT_RISE: u32 = 2;
/// Default `health.fall`.
pub const DEFAULT_FALL: u32 = 3;
/// Default `health.max_repairs`.
pub const DEFAULT_MAX_REPAIRS: u32 = 3;
/// Default `health.repair_window`.
pub const DEFAULT_REPAIR_WINDOW: Duration = Duration::from_secs(600);
/// Default `health.mount_hang_limit`.
pub const DEFAULT_MOUNT_HANG_LIMIT: Duration = Duration::from_secs(60);
/// Default `health.max_restarts`.
pub const DEFAULT_MAX_RESTARTS: u32 = 3;
/// Default `health.restart_window`.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(600);

/// `[health]`: the timing and limits of the checks between transitions.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// `health.enabled`: run the built-in checks (default true). `[[track]]`
    /// checks run either way.
    pub enabled: bool,
    /// `health.interval`: time from the end of one run of a built-in check
    /// to the start of the next.
    pub interval: Duration,
    /// `health.timeout`: a built-in check that takes longer has failed (its
    /// child is killed).
    pub timeout: Duration,
    /// `health.rise`: consecutive successes that make a failed check good.
    pub rise: u32,
    /// `health.fall`: consecutive failures that make a good check failed.
    pub fall: u32,
    /// `health.max_repairs`: repairs the master may try within
    /// `repair_window`; one more failure after them and it resigns.
    pub max_repairs: u32,
    /// `health.repair_window`: the sliding window `max_repairs` counts in.
    pub repair_window: Duration,
    /// `health.mount_hang_limit`: how long a follower's NFS mount may stay
    /// unanswered before it is force-dismounted and mounted again.
    pub mount_hang_limit: Duration,
    /// `health.restart_policy` (+ `max_restarts`, `restart_window`): what a
    /// follower does when an environment placed here stopped by itself.
    pub restart_policy: RestartPolicy,
    /// `health.track_interfaces`: other interfaces (a storage network) whose
    /// carrier loss makes this node resign, as the VRRP interface's does.
    pub track_interfaces: Vec<String>,
    /// `health.track_file`: a file holding one integer, added to the
    /// priority (keepalived's `track_file`); missing or unreadable counts 0.
    pub track_file: Option<PathBuf>,
    /// Every `[[track]]`, in file order.
    pub tracks: Vec<Track>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            enabled: true,
            interval: DEFAULT_HEALTH_INTERVAL,
            timeout: DEFAULT_HEALTH_TIMEOUT,
            rise: DEFAULT_RISE,
            fall: DEFAULT_FALL,
            max_repairs: DEFAULT_MAX_REPAIRS,
            repair_window: DEFAULT_REPAIR_WINDOW,
            mount_hang_limit: DEFAULT_MOUNT_HANG_LIMIT,
            restart_policy: RestartPolicy::Never,
            track_interfaces: Vec::new(),
            track_file: None,
            tracks: Vec::new(),
        }
    }
}

/// What a follower does about an environment that stopped by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// `"never"` (the default): alert (`environment_died`) and leave it.
    Never,
    /// `"on-failure"`: start it again, at most `max_restarts` times within
    /// `window`; after that alert only.
    OnFailure {
        /// `health.max_restarts`.
        max_restarts: u32,
        /// `health.restart_window`.
        window: Duration,
    },
}

/// One `[[track]]`: an operator's check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// `name`: unique among the tracks; in `status` and events.
    pub name: String,
    /// `command`: the argv run for each check (absolute program path, never
    /// a shell); exit 0 is success.
    pub command: Vec<String>,
    /// `interval`: from the end of one run to the start of the next.
    pub interval: Duration,
    /// `timeout`: a run that takes longer has failed (its process group is
    /// killed).
    pub timeout: Duration,
    /// `rise`: consecutive successes that make it good again.
    pub rise: u32,
    /// `fall`: consecutive failures that make it failed.
    pub fall: u32,
    /// `weight` or `on_fail`: what a failed track does.
    pub on_fail: TrackAction,
}

/// What a failed `[[track]]` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackAction {
    /// `weight = N`: add N (negative lowers it) to the priority while failed,
    /// as keepalived's weight; an address owner (255) keeps 255.
    Weight(i16),
    /// `on_fail = "resign"`: the node goes to fault while failed, and leaves
    /// it once the track is good again.
    Resign,
}
