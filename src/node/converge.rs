//! The transition worker's decisions, pure: from the decision the node core
//! published ([`Target`]) and what the worker holds, the next runbook to run
//! ([`Job`]); from that runbook's [`JobReport`], what is held now.
//!
//! The worker (`agent::transition`) runs the jobs; the simulation
//! (`tests/quorum_sim`) runs the same [`Converger`] against simulated steps
//! that can fail, hang and be slow. Neither has a copy of these rules.
//!
//! Which runbook, from what is held:
//!
//! | wanted \ held | nothing / following | master resources (maybe partial) |
//! |---|---|---|
//! | master | promote | promote (idempotent steps) |
//! | follower, master M known | follow M (unless already following M) | demote, then follow M |
//! | follower, master unknown | nothing (the next master is followed afresh) | demote |
//! | stopped (shutdown) | nothing | demote |
//! | quiescent (a peer master hands over) | quiesce (stop, unmount) when anything may be mounted or run | demote |
//!
//! **Ride-through** (`follow.on_master_change = "ride-through"`, issue 14):
//! a follower that follows a master with its mounts and sees the master
//! change (to another, or to none yet) keeps its mounts and environments.
//! It waits until the new master's heartbeat says it serves
//! ([`Target::master_serving`]), then runs [`JobKind::RideThrough`]: a
//! bounded probe of each mount and the storage identity check, nothing
//! stopped or unmounted. Success: following the new master, environments
//! untouched. A failed probe (a stale handle, a probe still hung at the
//! deadline, another storage) or the deadline passing while waiting:
//! [`Notice::FollowFallback`], then the full follow as in remount mode. A
//! node that was master, had quiesced, or follows for the first time since
//! it started has nothing to keep and follows in full.
//!
//! Then, with `[[environment]]` placement and once the role is settled
//! (promoted, or following a known master), a `place` job stops what this
//! node may no longer run and starts what it newly may.
//!
//! **An environment is held until its stop is verified** (hole A of the
//! safety review): a stop that fails, or that a hung `jstop` never
//! finished, leaves the environment held (claimed, and counted by the
//! watchdog rule); it is tried again with backoff. A start that failed after
//! `jstart` ran may have left it running: held too, until a stop or a later
//! start verifies it. Only a start refused before anything ran (a CBSD lock
//! naming another node) releases it at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::quorum::Holding;

/// The role the node core wants the worker to serve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Not decided yet (Initialize): leave the role as it is.
    #[default]
    Undecided,
    /// Master: promote.
    Master,
    /// Backup or fault: no master resources; follow `master` when known.
    Follower {
        /// The master's primary address as last heard (§6.4.2), if any.
        master: Option<IpAddr>,
    },
    /// The agent is stopping: release everything, follow nobody.
    Stopped,
    /// The master is handing over on purpose and still serves: stop the
    /// environments on its mounts and unmount them while its NFS server
    /// answers, mount nothing. The next master is followed once the
    /// hand-over is over (planned hand-over, issue 10 item 7).
    Quiescent,
}

/// What the worker is told, without the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The role to serve.
    pub role: Role,
    /// The decision's number; reported back once converged on.
    pub sequence: u64,
    /// With `[[environment]]` placement: the environments this node may run
    /// now. `None`: the node's own `[environments]` list, started and
    /// stopped by the role runbooks.
    pub environments: Option<BTreeSet<String>>,
    /// Following a known master, and its heartbeat says it serves (its
    /// promote finished): a ride-through may probe the mounts now.
    pub master_serving: bool,
    /// With `master_serving`: the master's heartbeat also says its nfsd
    /// started with stable restart records on the storage (the file its
    /// promote linked was there and not empty), so the followers' clients
    /// can reclaim. Without it a ride would lose their NFSv4 state
    /// silently (no probe can see that): the full follow runs at once.
    pub master_reclaimable: bool,
}

/// What the worker knows it holds of the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// No master resources, following nobody.
    Nothing,
    /// Master resources: `complete` once a promote succeeded, otherwise
    /// possibly partial (a promote cancelled, failed or found after a crash).
    Master {
        /// True once a promote succeeded and no demote has started since.
        complete: bool,
    },
    /// Mounted from the VIP while the master at this address was master.
    Following(IpAddr),
}

/// One environment this node may be running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvHeld {
    /// Started here and verified running (or being started).
    Running,
    /// Possibly running, not checked: found after a restart.
    Unchecked,
    /// A stop was tried and not verified: it may still run.
    StopFailed {
        /// Unverified stops in a row (1 after the first).
        failures: u32,
        /// When the stop is tried again (the [`Backoff`] for `failures`).
        retry_at: Instant,
    },
    /// A start failed after the start command ran: it may run.
    StartFailed {
        /// Failed starts in a row (1 after the first).
        failures: u32,
        /// When the environment is tried again (the [`Backoff`] for `failures`).
        retry_at: Instant,
    },
}

impl EnvHeld {
    /// When this environment may be tried again, if it is waiting.
    fn retry_at(self) -> Option<Instant> {
        match self {
            EnvHeld::StopFailed { retry_at, .. } | EnvHeld::StartFailed { retry_at, .. } => {
                Some(retry_at)
            }
            EnvHeld::Running | EnvHeld::Unchecked => None,
        }
    }

    fn due(self, now: Instant) -> bool {
        self.retry_at().is_none_or(|at| at <= now)
    }
}

/// Which runbook a job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// Take the master resources (storage, NFS service, exports, the VIP).
    Promote,
    /// Release the master resources, VIP first.
    Demote,
    /// Mount from the VIP of `master`; `rejoin`: the first follow since the
    /// agent started (stale registrations are cleared first).
    Follow {
        /// The primary address of the master being followed.
        master: IpAddr,
        /// The first follow since the agent started.
        rejoin: bool,
    },
    /// Stop and start environments only.
    Place,
    /// Stop every environment and unmount the shared dirs while the old
    /// master still serves them (see [`Role::Quiescent`]).
    Quiesce,
    /// Keep the mounts of the previous master: probe each one (a bounded
    /// child process) and check the storage's identity, stopping and
    /// unmounting nothing (ride-through, see the module documentation).
    RideThrough {
        /// The primary address of the new master, which serves.
        master: IpAddr,
        /// What is left of `follow.ride_through_timeout` since the change:
        /// the longest any probe may take.
        within: Duration,
    },
}

impl JobKind {
    /// The runbook's name in logs (`runbook` field) and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Promote => "promote",
            JobKind::Demote => "demote",
            JobKind::Follow { .. } => "follow",
            JobKind::Place => "place",
            JobKind::Quiesce => "quiesce",
            JobKind::RideThrough { .. } => "ride-through",
        }
    }
}

/// The next thing for the worker to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The runbook to run.
    pub kind: JobKind,
    /// Environments to stop first (each verified); role runbooks stop
    /// everything that may run on the old mounts.
    pub stop: Vec<String>,
    /// Environments to start after the role's steps (placement mode).
    pub start: Vec<String>,
}

/// How a job's runbook ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// Every step succeeded (or found its work already done).
    Succeeded,
    /// A step failed after its retries; a failed promote has undone its steps.
    Failed {
        /// The name of the failing step.
        step: String,
        /// Why it failed, for the log.
        error: String,
        /// Its last attempt was killed at the step's deadline (a hung
        /// command or probe), not refused.
        timed_out: bool,
    },
    /// A newer decision stopped the runbook between two steps.
    Cancelled {
        /// The name of the step that would have run next.
        at_step: String,
    },
}

/// What the runner reports about one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobReport {
    /// How the runbook ended.
    pub outcome: JobOutcome,
    /// Verified stopped (the probe said so).
    pub stopped: Vec<String>,
    /// Stopped without verification: failed, timed out, or killed.
    pub stop_failed: Vec<String>,
    /// Verified running.
    pub started: Vec<String>,
    /// The start command ran and did not verify: may run.
    pub start_failed: Vec<String>,
    /// Refused before anything ran (a CBSD lock naming another node, a
    /// failed registration): not running.
    pub not_started: Vec<String>,
    /// A promote's `link nfs stable restart` step found nfsd's records on
    /// the storage (present and not empty) before nfsd started: the
    /// moved server's clients can reclaim. False for every other job.
    pub reclaimable: bool,
}

impl JobReport {
    /// A report with an outcome and no environment touched.
    pub fn only(outcome: JobOutcome) -> Self {
        JobReport {
            outcome,
            stopped: Vec::new(),
            stop_failed: Vec::new(),
            started: Vec::new(),
            start_failed: Vec::new(),
            not_started: Vec::new(),
            reclaimable: false,
        }
    }
}

/// What the worker is asked for, besides the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run this job now.
    Run(Job),
    /// Converged on the target: report, then wait for a newer target, or
    /// until `wake_at` (a retry).
    Idle {
        /// When to ask again without a new target: the earliest retry due.
        wake_at: Option<Instant>,
    },
}

/// Something the worker must tell the operator or the node core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A promote failed (it undid what it did): the node must resign.
    PromoteFailed {
        /// `step: error` of the failing step.
        reason: String,
    },
    /// An environment's stop was not verified: it stays held.
    EnvironmentStopFailed {
        /// The environment (CBSD jail) name.
        name: String,
        /// Unverified stops of it in a row.
        failures: u32,
    },
    /// A demote failed: the master resources stay held.
    ReleaseFailed {
        /// Failed demotes in a row.
        failures: u32,
        /// `step: error` of the failing step.
        error: String,
    },
    /// The followed master changed: the mounts are kept and ridden through
    /// (`follow_ride_through`).
    RideThrough {
        /// The master whose mounts are kept.
        from: IpAddr,
        /// The new master, when already known.
        to: Option<IpAddr>,
        /// Why, in words.
        reason: &'static str,
    },
    /// A ride-through gave up: the full follow runs (`follow_fallback`).
    FollowFallback {
        /// The master whose mounts were kept.
        from: IpAddr,
        /// The new master, when known.
        to: Option<IpAddr>,
        /// Why it gave up.
        cause: FallbackCause,
        /// The failing step and its error, or how long it waited.
        detail: String,
    },
    /// A full follow (stop, unmount, mount, start) of a master, and why it
    /// is not a ride-through (`follow_remount`).
    Remount {
        /// The master followed before, if any.
        from: Option<IpAddr>,
        /// The master now followed.
        to: IpAddr,
        /// Why, in words.
        reason: &'static str,
    },
}

/// Why a ride-through fell back to the full follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackCause {
    /// A mount answered `ESTALE`: the new server does not know the file
    /// handles (another filesystem, another fsid).
    StaleHandle,
    /// A probe was still hung at the deadline.
    Hung,
    /// `dir.id` is missing or names other data: another storage.
    IdentityChanged,
    /// No master said it serves before the deadline.
    NotServing,
    /// The new master serves without stable restart records on the
    /// storage: its nfsd refuses every reclaim (`NFSERR_NOGRACE`), and the
    /// clients' opens and locks would be lost without an error.
    StateNotMoved,
    /// A probe failed otherwise.
    ProbeFailed,
}

impl FallbackCause {
    /// The `cause` field of `follow_fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackCause::StaleHandle => "stale_handle",
            FallbackCause::Hung => "hung",
            FallbackCause::IdentityChanged => "identity_changed",
            FallbackCause::NotServing => "not_serving",
            FallbackCause::StateNotMoved => "state_not_moved",
            FallbackCause::ProbeFailed => "probe_failed",
        }
    }

    /// The cause of a ride-through runbook's failure at `step` with
    /// `error`: a step killed at its deadline (`timed_out`, the executor's
    /// own verdict) is hung; `ESTALE` is "Stale NFS file handle" on
    /// FreeBSD (errno 70, lib/libc/gen/errlst.c) and "Stale file handle" on
    /// Linux (116), as the fs-probe child prints its errno; any other
    /// failure of the `dir.id` check is another storage.
    pub fn of_failure(step: &str, error: &str, timed_out: bool) -> FallbackCause {
        if timed_out {
            FallbackCause::Hung
        } else if error.to_ascii_lowercase().contains("stale") {
            FallbackCause::StaleHandle
        } else if step == RIDE_IDENTITY_STEP {
            FallbackCause::IdentityChanged
        } else {
            FallbackCause::ProbeFailed
        }
    }
}

/// The name of the ride-through's storage identity step (the follow's
/// `dir.id` check, `runbook::storage::verify_dir_id`).
pub const RIDE_IDENTITY_STEP: &str = "verify dir.id";

/// A ride through a master change in progress: the mounts of `from` are
/// kept until `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ride {
    from: IpAddr,
    since: Instant,
    deadline: Instant,
}

/// A ride in progress as `status` shows it ([`Converger::ride`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RideView {
    /// The master whose mounts are kept.
    pub from: IpAddr,
    /// When the change was seen.
    pub since: Instant,
    /// When the full follow takes over (`follow.ride_through_timeout`).
    pub deadline: Instant,
}

/// Retry timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after a first failure (`runbook.retry_backoff`); doubled
    /// with each further failure in a row.
    pub base: Duration,
    /// The longest wait (`runbook.retry_backoff_max`).
    pub max: Duration,
}

impl Backoff {
    /// `base * 2^(failures-1)`, at most `max`.
    pub fn after(self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What a (re)started worker found held before anything ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Master resources (storage, NFS service, exports, the master
    /// marker): possibly partial.
    pub master: bool,
    /// Environments that may run here.
    pub environments: BTreeSet<String>,
}

/// The worker's bookkeeping. See the module documentation.
#[derive(Clone, Debug)]
pub struct Converger {
    held: Held,
    environments: BTreeMap<String, EnvHeld>,
    backoff: Backoff,
    /// Whether the node runs CBSD runbooks: a plain VRRP node's follow
    /// has nothing to mount.
    cbsd: bool,
    /// Failures in a row of the role runbook (demote or follow).
    failures: u32,
    role_retry_at: Option<Instant>,
    /// Failed demotes in a row: the node core escalates (liveness hole F).
    release_failures: u32,
    followed_since_start: bool,
    /// The shared dirs may be mounted: from the start of a follow (and
    /// after a restart, not knowing) until an unmounting runbook (promote,
    /// quiesce) succeeds.
    mounted: bool,
    /// Environments the operator holds (`env hold`): never started here.
    operator_holds: BTreeSet<String>,
    /// `follow.ride_through_timeout` when followers ride through a master
    /// change; `None`: remount.
    ride_through: Option<Duration>,
    /// A ride in progress.
    ride: Option<Ride>,
    /// The master last followed (for the logs).
    last_followed: Option<IpAddr>,
    /// The last successful promote found the stable restart records
    /// ([`JobReport::reclaimable`]); told while the promote stands.
    reclaimable: bool,
    /// Decided by [`Converger::next`], told by [`Converger::take_notices`].
    notices: Vec<Notice>,
}

impl Converger {
    /// A worker's bookkeeping at start: what `found` says may be held
    /// counts as held (master possibly partial, environments unchecked).
    /// `cbsd`: the node runs CBSD runbooks (and may have shared dirs mounted).
    pub fn new(found: Found, cbsd: bool, backoff: Backoff) -> Self {
        Converger {
            held: if found.master {
                Held::Master { complete: false }
            } else {
                Held::Nothing
            },
            environments: found
                .environments
                .into_iter()
                .map(|name| (name, EnvHeld::Unchecked))
                .collect(),
            backoff,
            cbsd,
            failures: 0,
            role_retry_at: None,
            release_failures: 0,
            operator_holds: BTreeSet::new(),
            followed_since_start: false,
            mounted: cbsd,
            ride_through: None,
            ride: None,
            last_followed: None,
            reclaimable: false,
            notices: Vec::new(),
        }
    }

    /// `Some(follow.ride_through_timeout)` to ride through master changes,
    /// `None` to remount (the default; also after a reload). A ride in
    /// progress ends with the setting.
    pub fn set_ride_through(&mut self, timeout: Option<Duration>) {
        self.ride_through = timeout;
        if timeout.is_none() {
            self.ride = None;
        }
    }

    /// Riding through a master change: the previous master's mounts are
    /// kept (`status`).
    pub fn riding_from(&self) -> Option<IpAddr> {
        self.ride.map(|r| r.from)
    }

    /// The ride in progress, for `status`.
    pub fn ride(&self) -> Option<RideView> {
        self.ride.map(|r| RideView {
            from: r.from,
            since: r.since,
            deadline: r.deadline,
        })
    }

    /// What [`Converger::next`] decided to tell (ride-through choices and
    /// fallbacks, remounts): the worker logs them after each call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// What the worker holds of the role.
    pub fn held(&self) -> Held {
        self.held
    }

    /// The environments the operator holds (`env hold`): placement never
    /// starts them here (stops still happen). Released, one allowed here is
    /// started by the next job, as any other.
    pub fn set_operator_holds(&mut self, holds: BTreeSet<String>) {
        self.operator_holds = holds;
    }

    /// Replaces the retry timings (after a configuration reload); waits
    /// already scheduled keep their time.
    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    /// Master resources held, complete or not.
    pub fn holds_master(&self) -> bool {
        matches!(self.held, Held::Master { .. })
    }

    /// A promote has completed and no demote has started since.
    pub fn is_promoted(&self) -> bool {
        self.held == Held::Master { complete: true }
    }

    /// Every environment that may be running here, by name, with what is
    /// known of it; an environment verified stopped is absent.
    pub fn environments(&self) -> &BTreeMap<String, EnvHeld> {
        &self.environments
    }

    /// The shared dirs may be mounted from a master.
    pub fn is_mounted(&self) -> bool {
        self.mounted
    }

    /// A follower's mount hung past `health.mount_hang_limit`: follow
    /// afresh. The next [`Converger::next`] runs the full follow (the dead
    /// mounts force-dismounted first, then mounted again) and the
    /// environments that ran on it count as unchecked, so they are
    /// stopped (verified) and started again. False when not following.
    pub fn remount(&mut self) -> bool {
        if !matches!(self.held, Held::Following(_)) {
            return false;
        }
        self.held = Held::Nothing;
        self.ride = None;
        for held in self.environments.values_mut() {
            if *held == EnvHeld::Running {
                *held = EnvHeld::Unchecked;
            }
        }
        true
    }

    /// Nothing is held: no master resources, no environment.
    pub fn holds_nothing(&self) -> bool {
        !self.holds_master() && self.environments.is_empty()
    }

    /// What to report after converging on decision `applied`.
    pub fn holding(&self, applied: u64) -> Holding {
        Holding {
            applied,
            master: self.holds_master(),
            environments: self.environments.keys().cloned().collect(),
            running: self
                .environments
                .iter()
                .filter(|(_, held)| **held == EnvHeld::Running)
                .map(|(name, _)| name.clone())
                .collect(),
            release_failures: self.release_failures,
            mounted: self.mounted,
            reclaimable: self.reclaimable && self.held == Held::Master { complete: true },
        }
    }

    /// The next job towards `target`, or idle. A job that acquires is
    /// recorded as held from now on (its first step may take the storage).
    pub fn next(&mut self, target: &Target, now: Instant) -> Next {
        if let Some(job) = self.role_job(target, now) {
            return Next::Run(job);
        }
        if let Some(job) = self.place_job(target, now) {
            return Next::Run(job);
        }
        Next::Idle {
            wake_at: self.wake_at(target, now),
        }
    }

    fn role_retry_due(&self, now: Instant) -> bool {
        self.role_retry_at.is_none_or(|at| at <= now)
    }

    fn role_job(&mut self, target: &Target, now: Instant) -> Option<Job> {
        let kind = match (&target.role, self.held) {
            (Role::Undecided, _) => return None,
            // Already promoted (a reload while master): nothing to redo.
            (Role::Master, Held::Master { complete: true }) => return None,
            (Role::Master, _) => {
                // From the first step on, master resources may be held;
                // its first steps unmount whatever a ride kept.
                self.ride = None;
                self.held = Held::Master { complete: false };
                JobKind::Promote
            }
            (Role::Stopped | Role::Follower { .. } | Role::Quiescent, Held::Master { .. }) => {
                if !self.role_retry_due(now) {
                    return None;
                }
                JobKind::Demote
            }
            (Role::Follower { master: None }, Held::Following(old)) => {
                // The master is gone. In remount mode whoever comes next
                // runs a new NFS server whose state ours cannot carry over;
                // riding through, its state moved with the storage and the
                // mounts are kept until the deadline.
                self.held = Held::Nothing;
                self.start_ride(old, None, now);
                return None;
            }
            (Role::Follower { master: None }, Held::Nothing) => {
                self.ride_expired(None, now);
                return None;
            }
            (Role::Stopped, Held::Nothing | Held::Following(_)) => {
                self.ride = None;
                return None;
            }
            (Role::Quiescent, _) => {
                let anything = self.mounted || !self.environments.is_empty();
                if !self.cbsd || !anything || !self.role_retry_due(now) {
                    return None;
                }
                // From the first unmount on, nothing is followed.
                self.held = Held::Nothing;
                self.ride = None;
                JobKind::Quiesce
            }
            (Role::Follower { master: Some(m) }, held) => {
                if held == Held::Following(*m) {
                    return None;
                }
                if !self.cbsd {
                    // Plain VRRP: following has nothing to mount.
                    self.held = Held::Following(*m);
                    return None;
                }
                if let Held::Following(old) = held {
                    self.held = Held::Nothing;
                    self.start_ride(old, Some(*m), now);
                }
                self.ride_expired(Some(*m), now);
                if let Some(ride) = self.ride {
                    if !target.master_serving {
                        // Idle until it serves, or the deadline.
                        return None;
                    }
                    if !target.master_reclaimable {
                        // Its clients' state did not move: riding on would
                        // lose it silently, so the full follow runs now.
                        self.ride = None;
                        self.notices.push(Notice::FollowFallback {
                            from: ride.from,
                            to: Some(*m),
                            cause: FallbackCause::StateNotMoved,
                            detail: "the new master serves without NFSv4 stable restart records on the storage (its nfsd refuses every reclaim: NFSERR_NOGRACE)".into(),
                        });
                        return self.full_follow(held, *m, now);
                    }
                    // Probes and a check, nothing stopped: the
                    // environments keep running on the kept mounts.
                    return Some(Job {
                        kind: JobKind::RideThrough {
                            master: *m,
                            within: ride.deadline.saturating_duration_since(now),
                        },
                        stop: Vec::new(),
                        start: Vec::new(),
                    });
                }
                return self.full_follow(held, *m, now);
            }
        };
        Some(Job {
            kind,
            // Everything that may run on the old mounts.
            stop: self.environments.keys().cloned().collect(),
            start: Vec::new(),
        })
    }

    /// The full follow of master `m` (stop, unmount, mount, start), when
    /// its retry is due.
    fn full_follow(&mut self, held: Held, m: IpAddr, now: Instant) -> Option<Job> {
        if !self.role_retry_due(now) {
            return None;
        }
        let reason = self.remount_reason(held);
        self.notices.push(Notice::Remount {
            from: self.last_followed,
            to: m,
            reason,
        });
        // The follow first stops environments and unmounts: from here on
        // what was followed before is gone, and the new mounts may exist.
        self.held = Held::Nothing;
        self.mounted = true;
        Some(Job {
            kind: JobKind::Follow {
                master: m,
                rejoin: !self.followed_since_start,
            },
            // Everything that may run on the old mounts.
            stop: self.environments.keys().cloned().collect(),
            start: Vec::new(),
        })
    }

    /// A change away from following `from` (to `to`, or to no master
    /// yet): with ride-through configured, the mounts are kept.
    fn start_ride(&mut self, from: IpAddr, to: Option<IpAddr>, now: Instant) {
        let Some(timeout) = self.ride_through.filter(|_| self.cbsd) else {
            return;
        };
        if self.ride.is_some() {
            return;
        }
        self.ride = Some(Ride {
            from,
            since: now,
            deadline: now + timeout,
        });
        self.notices.push(Notice::RideThrough {
            from,
            to,
            reason:
                "master changed: mounts and environments kept; probing once the new master serves",
        });
    }

    /// Ends a ride whose deadline has passed while no master served.
    fn ride_expired(&mut self, to: Option<IpAddr>, now: Instant) {
        let Some(ride) = self.ride else {
            return;
        };
        if now < ride.deadline {
            return;
        }
        self.ride = None;
        self.notices.push(Notice::FollowFallback {
            from: ride.from,
            to,
            cause: FallbackCause::NotServing,
            detail: format!(
                "no master said it serves within follow.ride_through_timeout ({} s)",
                self.ride_through.map_or(0, |t| t.as_secs())
            ),
        });
    }

    /// Why a follow of a new master is a full one.
    fn remount_reason(&self, held: Held) -> &'static str {
        if self.ride_through.is_none() || !self.cbsd {
            "follow.on_master_change is remount"
        } else if !self.followed_since_start {
            "first follow since the agent started"
        } else if matches!(held, Held::Master { .. }) || !self.mounted {
            "nothing followed to keep (was master, or quiesced)"
        } else if self.role_retry_at.is_some() {
            "the last follow failed"
        } else {
            "ride-through fell back"
        }
    }

    /// Whether the role runbook is done: environments may start.
    fn settled(&self, target: &Target) -> bool {
        match (&target.role, self.held) {
            (Role::Master, Held::Master { complete }) => complete,
            (Role::Follower { master: Some(m) }, Held::Following(f)) => *m == f,
            _ => false,
        }
    }

    fn place_job(&mut self, target: &Target, now: Instant) -> Option<Job> {
        let allowed = target.environments.as_ref()?;
        let stop: Vec<String> = self
            .environments
            .iter()
            .filter(|(name, held)| !allowed.contains(*name) && held.due(now))
            .map(|(name, _)| name.clone())
            .collect();
        let start: Vec<String> = if self.settled(target) {
            allowed
                .iter()
                // Stopped on purpose by the operator: never started here.
                .filter(|name| !self.operator_holds.contains(*name))
                .filter(|name| match self.environments.get(*name) {
                    None => true,
                    // Possibly running: a start probes first, so it only
                    // verifies one that runs.
                    Some(held) => *held != EnvHeld::Running && held.due(now),
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        if stop.is_empty() && start.is_empty() {
            return None;
        }
        // Held from before its start to after its verified stop.
        for name in &start {
            self.environments
                .entry(name.clone())
                .or_insert(EnvHeld::Unchecked);
        }
        Some(Job {
            kind: JobKind::Place,
            stop,
            start,
        })
    }

    /// The earliest future retry that would give a job for `target` (a
    /// retry already due that gives none is no reason to wake).
    fn wake_at(&self, target: &Target, now: Instant) -> Option<Instant> {
        let role = match (&target.role, self.held) {
            (Role::Stopped | Role::Follower { .. } | Role::Quiescent, Held::Master { .. }) => {
                self.role_retry_at
            }
            (Role::Quiescent, _)
                if self.cbsd && (self.mounted || !self.environments.is_empty()) =>
            {
                self.role_retry_at
            }
            (Role::Follower { master: Some(m) }, held)
                if self.cbsd && held != Held::Following(*m) =>
            {
                self.role_retry_at
            }
            _ => None,
        };
        // Riding: the deadline, when the full follow takes over.
        let ride = match target.role {
            Role::Follower { .. } => self.ride.map(|r| r.deadline),
            _ => None,
        };
        let settled = self.settled(target);
        let environments = target.environments.as_ref().and_then(|allowed| {
            self.environments
                .iter()
                // Not allowed: it will be stopped; allowed: started, once
                // the role is settled.
                .filter(|(name, _)| {
                    !allowed.contains(*name) || (settled && !self.operator_holds.contains(*name))
                })
                .filter_map(|(_, held)| held.retry_at())
                .min()
        });
        [role, environments, ride]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .min()
    }

    /// Takes a job's report: what is held now, and what to tell.
    pub fn finished(&mut self, job: &Job, report: &JobReport, now: Instant) -> Vec<Notice> {
        let mut notices = self.take_notices();
        for name in &report.stopped {
            self.environments.remove(name);
        }
        for name in &report.stop_failed {
            let failures = match self.environments.get(name) {
                Some(EnvHeld::StopFailed { failures, .. }) => failures.saturating_add(1),
                _ => 1,
            };
            self.environments.insert(
                name.clone(),
                EnvHeld::StopFailed {
                    failures,
                    retry_at: now + self.backoff.after(failures),
                },
            );
            notices.push(Notice::EnvironmentStopFailed {
                name: name.clone(),
                failures,
            });
        }
        for name in &report.started {
            self.environments.insert(name.clone(), EnvHeld::Running);
        }
        for name in &report.start_failed {
            let failures = match self.environments.get(name) {
                Some(EnvHeld::StartFailed { failures, .. }) => failures.saturating_add(1),
                _ => 1,
            };
            self.environments.insert(
                name.clone(),
                EnvHeld::StartFailed {
                    failures,
                    retry_at: now + self.backoff.after(failures),
                },
            );
        }
        for name in &report.not_started {
            // Nothing ran: only what was not held before the job goes.
            if self.environments.get(name) == Some(&EnvHeld::Unchecked)
                && job.start.contains(name)
                && !job.stop.contains(name)
            {
                self.environments.remove(name);
            }
        }
        match (job.kind, &report.outcome) {
            (JobKind::Promote, JobOutcome::Succeeded) => {
                // Its first steps unmounted what was followed.
                self.mounted = false;
                self.held = Held::Master { complete: true };
                self.reclaimable = report.reclaimable;
                self.failures = 0;
                self.role_retry_at = None;
            }
            (JobKind::Promote, JobOutcome::Failed { step, error, .. }) => {
                // It undid what it did, but not what an earlier run left
                // and it found already there: still possibly held.
                self.held = Held::Master { complete: false };
                notices.push(Notice::PromoteFailed {
                    reason: format!("{step}: {error}"),
                });
            }
            (JobKind::Promote, JobOutcome::Cancelled { .. }) => {
                self.held = Held::Master { complete: false };
            }
            (JobKind::Demote, JobOutcome::Succeeded) => {
                self.held = Held::Nothing;
                self.failures = 0;
                self.release_failures = 0;
                self.role_retry_at = None;
            }
            (JobKind::Demote, JobOutcome::Failed { step, error, .. }) => {
                self.retry_later(now);
                self.release_failures = self.release_failures.saturating_add(1);
                notices.push(Notice::ReleaseFailed {
                    failures: self.release_failures,
                    error: format!("{step}: {error}"),
                });
            }
            (JobKind::Demote, JobOutcome::Cancelled { .. }) => {}
            (JobKind::Follow { master, .. }, JobOutcome::Succeeded) => {
                self.last_followed = Some(master);
                self.held = Held::Following(master);
                self.failures = 0;
                self.role_retry_at = None;
                self.followed_since_start = true;
            }
            (JobKind::Follow { .. }, JobOutcome::Failed { .. }) => {
                // Environments whose mounts are not verified stay stopped.
                self.held = Held::Nothing;
                self.retry_later(now);
            }
            (JobKind::Follow { .. }, JobOutcome::Cancelled { .. }) => {
                self.held = Held::Nothing;
            }
            (JobKind::Quiesce, JobOutcome::Succeeded) => {
                self.held = Held::Nothing;
                self.mounted = false;
                self.failures = 0;
                self.role_retry_at = None;
            }
            (JobKind::Quiesce, JobOutcome::Failed { .. }) => {
                self.held = Held::Nothing;
                self.retry_later(now);
            }
            (JobKind::Quiesce, JobOutcome::Cancelled { .. }) => {
                self.held = Held::Nothing;
            }
            (JobKind::RideThrough { master, .. }, JobOutcome::Succeeded) => {
                // The mounts answer the new server: nothing was stopped.
                self.ride = None;
                self.last_followed = Some(master);
                self.held = Held::Following(master);
                self.failures = 0;
                self.role_retry_at = None;
            }
            (
                JobKind::RideThrough { master, .. },
                JobOutcome::Failed {
                    step,
                    error,
                    timed_out,
                },
            ) => {
                // The full follow runs next, at once.
                self.held = Held::Nothing;
                if let Some(ride) = self.ride.take() {
                    notices.push(Notice::FollowFallback {
                        from: ride.from,
                        to: Some(master),
                        cause: FallbackCause::of_failure(step, error, *timed_out),
                        detail: format!("{step}: {error}"),
                    });
                }
            }
            // Nothing was touched: the ride goes on for the next master.
            (JobKind::RideThrough { .. }, JobOutcome::Cancelled { .. }) => {
                self.held = Held::Nothing;
            }
            // Each environment carries its own retry.
            (JobKind::Place, _) => {}
        }
        notices
    }

    fn retry_later(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.role_retry_at = Some(now + self.backoff.after(self.failures));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_secs(2),
        max: Duration::from_secs(30),
    };
    const M: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn target(role: Role, sequence: u64, environments: Option<&[&str]>) -> Target {
        Target {
            role,
            sequence,
            environments: environments.map(|e| names(e).into_iter().collect()),
            master_serving: false,
            master_reclaimable: false,
        }
    }

    fn ok() -> JobReport {
        JobReport::only(JobOutcome::Succeeded)
    }

    fn run(c: &mut Converger, target: &Target, now: Instant) -> Job {
        match c.next(target, now) {
            Next::Run(job) => job,
            other => panic!("expected a job, got {other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let seen: Vec<u64> = (1..=6).map(|n| BACKOFF.after(n).as_secs()).collect();
        assert_eq!(seen, [2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn master_is_promoted_then_demoted_before_following() {
        let now = Instant::now();
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        let job = run(&mut c, &target(Role::Master, 1, None), now);
        assert_eq!(job.kind, JobKind::Promote);
        assert!(c.holds_master(), "held from the start of the promote");
        c.finished(&job, &ok(), now);
        assert!(c.is_promoted());
        let follow = target(Role::Follower { master: Some(M) }, 2, None);
        let job = run(&mut c, &follow, now);
        assert_eq!(job.kind, JobKind::Demote);
        c.finished(&job, &ok(), now);
        let job = run(&mut c, &follow, now);
        assert_eq!(
            job.kind,
            JobKind::Follow {
                master: M,
                rejoin: true
            }
        );
        c.finished(&job, &ok(), now);
        assert_eq!(c.next(&follow, now), Next::Idle { wake_at: None });
    }

    #[test]
    fn an_environment_the_operator_holds_is_never_started_but_still_stopped() {
        let now = Instant::now();
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        c.held = Held::Following(M);
        c.set_operator_holds(names(&["web1"]).into_iter().collect());
        let t = target(
            Role::Follower { master: Some(M) },
            3,
            Some(&["web1", "db1"]),
        );
        let job = run(&mut c, &t, now);
        assert_eq!(
            (job.kind, job.start.clone()),
            (JobKind::Place, names(&["db1"]))
        );
        c.finished(
            &job,
            &JobReport {
                started: names(&["db1"]),
                ..ok()
            },
            now,
        );
        assert_eq!(c.next(&t, now), Next::Idle { wake_at: None });
        // Released: started by the next job.
        c.set_operator_holds(BTreeSet::new());
        let job = run(&mut c, &t, now);
        assert_eq!(job.start, names(&["web1"]));
        c.finished(
            &job,
            &JobReport {
                started: names(&["web1"]),
                ..ok()
            },
            now,
        );
        // Held while it runs and no longer placed here: still stopped.
        c.set_operator_holds(names(&["web1"]).into_iter().collect());
        let t = target(Role::Follower { master: Some(M) }, 4, Some(&["db1"]));
        let job = run(&mut c, &t, now);
        assert_eq!(job.stop, names(&["web1"]));
    }

    #[test]
    fn a_stop_that_failed_keeps_the_environment_held_and_is_retried() {
        let now = Instant::now();
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        c.environments.insert("web1".into(), EnvHeld::Running);
        c.held = Held::Following(M);
        let t = target(Role::Follower { master: Some(M) }, 3, Some(&[]));
        let job = run(&mut c, &t, now);
        assert_eq!(
            (job.kind, job.stop.clone()),
            (JobKind::Place, names(&["web1"]))
        );
        let report = JobReport {
            stop_failed: names(&["web1"]),
            ..ok()
        };
        let notices = c.finished(&job, &report, now);
        assert_eq!(
            notices,
            [Notice::EnvironmentStopFailed {
                name: "web1".into(),
                failures: 1
            }]
        );
        let holding = c.holding(3);
        assert!(holding.environments.contains("web1"), "still claimed");
        assert!(holding.running.is_empty(), "not reported running");
        // Waits for its backoff, then tries again.
        assert_eq!(
            c.next(&t, now),
            Next::Idle {
                wake_at: Some(now + Duration::from_secs(2))
            }
        );
        let later = now + Duration::from_secs(2);
        let job = run(&mut c, &t, later);
        assert_eq!(job.stop, names(&["web1"]));
        c.finished(
            &job,
            &JobReport {
                stopped: names(&["web1"]),
                ..ok()
            },
            later,
        );
        assert!(c.holds_nothing());
    }

    #[test]
    fn a_start_that_failed_after_jstart_ran_stays_held() {
        let now = Instant::now();
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        c.held = Held::Following(M);
        let t = target(
            Role::Follower { master: Some(M) },
            1,
            Some(&["web1", "web2"]),
        );
        let job = run(&mut c, &t, now);
        assert_eq!(job.start, names(&["web1", "web2"]));
        c.finished(
            &job,
            &JobReport {
                start_failed: names(&["web1"]),
                not_started: names(&["web2"]),
                ..ok()
            },
            now,
        );
        let holding = c.holding(1);
        assert_eq!(holding.environments, ["web1".to_owned()].into());
        // Lost its lease meanwhile: it must be stopped, verified, before it
        // is released.
        let gone = target(Role::Follower { master: Some(M) }, 2, Some(&[]));
        let job = run(&mut c, &gone, now + Duration::from_secs(2));
        assert_eq!(job.stop, names(&["web1"]));
    }

    #[test]
    fn a_role_change_stops_everything_on_the_old_mounts_in_the_same_runbook() {
        let now = Instant::now();
        let found = Found {
            master: false,
            environments: ["a".to_owned(), "b".to_owned()].into(),
        };
        let mut c = Converger::new(found, true, BACKOFF);
        let job = run(&mut c, &target(Role::Master, 1, Some(&["a"])), now);
        assert_eq!((job.kind, job.stop), (JobKind::Promote, names(&["a", "b"])));
    }

    #[test]
    fn environments_start_only_once_the_role_is_settled() {
        let now = Instant::now();
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        let t = target(Role::Follower { master: None }, 1, Some(&["web1"]));
        assert_eq!(c.next(&t, now), Next::Idle { wake_at: None });
        assert!(c.holds_nothing());
    }

    #[test]
    fn failed_demotes_are_counted_for_the_escalation() {
        let now = Instant::now();
        let found = Found {
            master: true,
            environments: BTreeSet::new(),
        };
        let mut c = Converger::new(found, true, BACKOFF);
        let t = target(Role::Follower { master: None }, 1, None);
        let failed = JobReport::only(JobOutcome::Failed {
            step: "export pool tank".into(),
            error: "pool is busy".into(),
            timed_out: false,
        });
        let mut at = now;
        for n in 1..=3 {
            let job = run(&mut c, &t, at);
            assert_eq!(job.kind, JobKind::Demote);
            let notices = c.finished(&job, &failed, at);
            assert!(
                matches!(notices[..], [Notice::ReleaseFailed { failures, .. }] if failures == n)
            );
            at += BACKOFF.after(n);
        }
        assert_eq!(c.holding(1).release_failures, 3);
        assert!(c.holding(1).master);
    }

    #[test]
    fn a_hand_over_quiesces_once_then_follows_the_next_master() {
        let now = Instant::now();
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        let follow = target(Role::Follower { master: Some(M) }, 1, Some(&["web1"]));
        let job = run(&mut c, &follow, now);
        assert!(matches!(job.kind, JobKind::Follow { .. }));
        c.finished(&job, &ok(), now);
        let job = run(&mut c, &follow, now);
        c.finished(
            &job,
            &JobReport {
                started: names(&["web1"]),
                ..ok()
            },
            now,
        );
        assert!(c.is_mounted());

        // The master hands over: web1 stops, the dirs unmount, nothing
        // is mounted again while it lasts.
        let quiet = target(Role::Quiescent, 2, Some(&["web1"]));
        let job = run(&mut c, &quiet, now);
        assert_eq!(
            (job.kind, job.stop.clone()),
            (JobKind::Quiesce, names(&["web1"]))
        );
        c.finished(
            &job,
            &JobReport {
                stopped: names(&["web1"]),
                ..ok()
            },
            now,
        );
        assert_eq!(c.next(&quiet, now), Next::Idle { wake_at: None });
        let holding = c.holding(2);
        assert!(!holding.mounted && holding.environments.is_empty());

        // The next master: a follow (not a rejoin), then web1 again.
        let next = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
        let job = run(
            &mut c,
            &target(Role::Follower { master: Some(next) }, 3, Some(&["web1"])),
            now,
        );
        assert_eq!(
            job.kind,
            JobKind::Follow {
                master: next,
                rejoin: false
            }
        );
        assert!(c.is_mounted());
    }

    #[test]
    fn a_failed_quiesce_is_retried_with_backoff() {
        let now = Instant::now();
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        let quiet = target(Role::Quiescent, 1, None);
        let job = run(&mut c, &quiet, now);
        assert_eq!(job.kind, JobKind::Quiesce, "mounts unknown after a start");
        let failed = JobReport::only(JobOutcome::Failed {
            step: "unmount nfs jails-data".into(),
            error: "Device busy".into(),
            timed_out: false,
        });
        c.finished(&job, &failed, now);
        assert_eq!(
            c.next(&quiet, now),
            Next::Idle {
                wake_at: Some(now + BACKOFF.after(1))
            }
        );
        assert!(c.holding(1).mounted, "still possibly mounted");
        let job = run(&mut c, &quiet, now + BACKOFF.after(1));
        assert_eq!(job.kind, JobKind::Quiesce);
    }

    // ---- ride-through (issue 14) ---------------------------------------

    const M2: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    const RIDE: Duration = Duration::from_secs(90);

    fn serving(role: Role, sequence: u64, serving: bool) -> Target {
        Target {
            master_serving: serving,
            master_reclaimable: serving,
            ..target(role, sequence, Some(&["web1"]))
        }
    }

    /// A follower of M with web1 running on its mounts, riding through.
    fn riding_follower(now: Instant) -> Converger {
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        c.set_ride_through(Some(RIDE));
        let t = serving(Role::Follower { master: Some(M) }, 1, true);
        let job = run(&mut c, &t, now);
        assert!(matches!(job.kind, JobKind::Follow { rejoin: true, .. }));
        c.finished(&job, &ok(), now);
        let job = run(&mut c, &t, now);
        c.finished(
            &job,
            &JobReport {
                started: names(&["web1"]),
                ..ok()
            },
            now,
        );
        assert_eq!(c.held(), Held::Following(M));
        c.take_notices();
        c
    }

    /// `timed_out`: the executor killed the step at its deadline.
    fn failed(step: &str, error: &str, timed_out: bool) -> JobReport {
        JobReport::only(JobOutcome::Failed {
            step: step.into(),
            error: error.into(),
            timed_out,
        })
    }

    #[test]
    fn a_master_change_keeps_the_mounts_until_the_new_master_serves_then_probes() {
        let now = Instant::now();
        let mut c = riding_follower(now);
        let to_m2 = serving(Role::Follower { master: Some(M2) }, 2, false);
        // Not serving yet: nothing stops, wake at the deadline.
        assert_eq!(
            c.next(&to_m2, now),
            Next::Idle {
                wake_at: Some(now + RIDE)
            }
        );
        assert!(matches!(
            c.take_notices()[..],
            [Notice::RideThrough {
                from: M,
                to: Some(M2),
                ..
            }]
        ));
        assert_eq!(c.riding_from(), Some(M));
        assert_eq!(c.environments().get("web1"), Some(&EnvHeld::Running));
        assert!(c.is_mounted());
        // Serving: probes only, within what is left of the deadline.
        let later = now + Duration::from_secs(30);
        let to_m2 = serving(Role::Follower { master: Some(M2) }, 3, true);
        let job = run(&mut c, &to_m2, later);
        assert_eq!(
            job,
            Job {
                kind: JobKind::RideThrough {
                    master: M2,
                    within: Duration::from_secs(60)
                },
                stop: Vec::new(),
                start: Vec::new(),
            }
        );
        assert!(c.finished(&job, &ok(), later).is_empty());
        assert_eq!(c.held(), Held::Following(M2));
        assert_eq!(c.riding_from(), None);
        assert_eq!(c.environments().get("web1"), Some(&EnvHeld::Running));
        assert_eq!(c.next(&to_m2, later), Next::Idle { wake_at: None });
    }

    #[test]
    fn a_lost_master_starts_the_ride_before_the_next_one_is_known() {
        let now = Instant::now();
        let mut c = riding_follower(now);
        let none = serving(Role::Follower { master: None }, 2, false);
        assert_eq!(
            c.next(&none, now),
            Next::Idle {
                wake_at: Some(now + RIDE)
            }
        );
        assert!(matches!(
            c.take_notices()[..],
            [Notice::RideThrough {
                from: M,
                to: None,
                ..
            }]
        ));
        let later = now + Duration::from_secs(10);
        let job = run(
            &mut c,
            &serving(Role::Follower { master: Some(M2) }, 3, true),
            later,
        );
        assert_eq!(
            job.kind,
            JobKind::RideThrough {
                master: M2,
                within: Duration::from_secs(80)
            }
        );
        assert!(c.take_notices().is_empty(), "one choice per change");
    }

    #[test]
    fn each_failed_probe_falls_back_to_the_full_follow_at_once() {
        let cases = [
            (
                "probe mount jails-data",
                "fs-probe list: cannot list /usr/jails/jails-data: Stale NFS file handle (os error 70)",
                false,
                FallbackCause::StaleHandle,
            ),
            (
                "probe mount jails-data",
                "rcbsd-failover fs-probe list /usr/jails/jails-data: no answer within 60s, killed",
                true,
                FallbackCause::Hung,
            ),
            (
                "verify dir.id",
                "/usr/jails/dir.id holds \"other\", not the cluster's \"c1\": wrong data under the shared dirs",
                false,
                FallbackCause::IdentityChanged,
            ),
            (
                "probe mount jails-data",
                "cannot list /usr/jails/jails-data: Permission denied (os error 13)",
                false,
                FallbackCause::ProbeFailed,
            ),
        ];
        for (step, error, timed_out, cause) in cases {
            let now = Instant::now();
            let mut c = riding_follower(now);
            let t = serving(Role::Follower { master: Some(M2) }, 2, true);
            let job = run(&mut c, &t, now);
            assert!(matches!(job.kind, JobKind::RideThrough { .. }));
            let notices = c.finished(&job, &failed(step, error, timed_out), now);
            assert!(
                matches!(
                    &notices[..],
                    [Notice::RideThrough { .. }, Notice::FollowFallback { from: M, to: Some(M2), cause: c, .. }]
                        if *c == cause
                ),
                "{error}: {notices:?}"
            );
            // No backoff: the full follow, stopping web1, right away.
            let job = run(&mut c, &t, now);
            assert_eq!(
                (job.kind, job.stop),
                (
                    JobKind::Follow {
                        master: M2,
                        rejoin: false
                    },
                    names(&["web1"])
                )
            );
            assert!(matches!(
                c.take_notices()[..],
                [Notice::Remount {
                    from: Some(M),
                    to: M2,
                    reason: "ride-through fell back"
                }]
            ));
        }
    }

    #[test]
    fn a_master_serving_without_moved_state_is_followed_in_full_at_once() {
        let now = Instant::now();
        let mut c = riding_follower(now);
        let waiting = serving(Role::Follower { master: Some(M2) }, 2, false);
        assert!(matches!(c.next(&waiting, now), Next::Idle { .. }));
        c.take_notices();
        // Serving, but its nfsd started without the stable restart
        // records: no probe, the full follow, well before the deadline.
        let later = now + Duration::from_secs(5);
        let not_moved = Target {
            master_reclaimable: false,
            ..serving(Role::Follower { master: Some(M2) }, 3, true)
        };
        let job = run(&mut c, &not_moved, later);
        assert!(matches!(job.kind, JobKind::Follow { master: M2, .. }));
        assert_eq!(job.stop, names(&["web1"]));
        assert_eq!(c.riding_from(), None);
        assert!(matches!(
            &c.take_notices()[..],
            [
                Notice::FollowFallback {
                    from: M,
                    to: Some(M2),
                    cause: FallbackCause::StateNotMoved,
                    ..
                },
                Notice::Remount {
                    reason: "ride-through fell back",
                    ..
                }
            ]
        ));
        assert_eq!(FallbackCause::StateNotMoved.as_str(), "state_not_moved");
    }

    #[test]
    fn a_promote_that_found_the_records_is_reclaimable_while_it_stands() {
        let now = Instant::now();
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        let master = target(Role::Master, 1, None);
        let job = run(&mut c, &master, now);
        assert_eq!(job.kind, JobKind::Promote);
        assert!(!c.holding(0).reclaimable);
        c.finished(
            &job,
            &JobReport {
                reclaimable: true,
                ..ok()
            },
            now,
        );
        assert!(c.holding(1).reclaimable);
        let job = run(
            &mut c,
            &target(Role::Follower { master: None }, 2, None),
            now,
        );
        assert_eq!(job.kind, JobKind::Demote);
        c.finished(&job, &ok(), now);
        assert!(!c.holding(2).reclaimable);
        // A promote without the records: not reclaimable.
        let job = run(&mut c, &target(Role::Master, 3, None), now);
        c.finished(&job, &ok(), now);
        assert!(!c.holding(3).reclaimable);
    }

    #[test]
    fn no_master_serving_by_the_deadline_falls_back() {
        let now = Instant::now();
        let mut c = riding_follower(now);
        let t = serving(Role::Follower { master: Some(M2) }, 2, false);
        assert!(matches!(c.next(&t, now), Next::Idle { .. }));
        c.take_notices();
        let deadline = now + RIDE;
        let job = run(&mut c, &t, deadline);
        assert!(matches!(job.kind, JobKind::Follow { master: M2, .. }));
        assert_eq!(job.stop, names(&["web1"]));
        assert!(matches!(
            c.take_notices()[..],
            [
                Notice::FollowFallback {
                    cause: FallbackCause::NotServing,
                    ..
                },
                Notice::Remount { .. }
            ]
        ));
        // With no master at all, the ride just ends; the next master is
        // followed in full.
        let mut c = riding_follower(now);
        let none = serving(Role::Follower { master: None }, 2, false);
        c.next(&none, now);
        c.take_notices();
        assert_eq!(c.next(&none, deadline), Next::Idle { wake_at: None });
        assert!(matches!(
            c.take_notices()[..],
            [Notice::FollowFallback {
                to: None,
                cause: FallbackCause::NotServing,
                ..
            }]
        ));
        let job = run(
            &mut c,
            &serving(Role::Follower { master: Some(M2) }, 3, true),
            deadline,
        );
        assert!(matches!(job.kind, JobKind::Follow { master: M2, .. }));
    }

    #[test]
    fn a_cancelled_ride_goes_on_for_the_next_master() {
        let now = Instant::now();
        let mut c = riding_follower(now);
        let job = run(
            &mut c,
            &serving(Role::Follower { master: Some(M2) }, 2, true),
            now,
        );
        c.finished(
            &job,
            &JobReport::only(JobOutcome::Cancelled {
                at_step: "verify dir.id".into(),
            }),
            now,
        );
        let m3 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3));
        let job = run(
            &mut c,
            &serving(Role::Follower { master: Some(m3) }, 3, true),
            now,
        );
        assert!(matches!(job.kind, JobKind::RideThrough { master, .. } if master == m3));
        assert_eq!(c.riding_from(), Some(M));
    }

    #[test]
    fn remount_mode_and_nodes_with_nothing_to_keep_follow_in_full() {
        let now = Instant::now();
        // Remount mode: the same change is a full follow, and says why.
        let mut c = riding_follower(now);
        c.set_ride_through(None);
        let t = serving(Role::Follower { master: Some(M2) }, 2, true);
        let job = run(&mut c, &t, now);
        assert!(matches!(job.kind, JobKind::Follow { master: M2, .. }));
        assert!(matches!(
            c.take_notices()[..],
            [Notice::Remount {
                from: Some(M),
                reason: "follow.on_master_change is remount",
                ..
            }]
        ));
        // The first follow since the start: a full one (a rejoin).
        let mut c = Converger::new(Found::default(), true, BACKOFF);
        c.set_ride_through(Some(RIDE));
        let job = run(&mut c, &t, now);
        assert_eq!(
            job.kind,
            JobKind::Follow {
                master: M2,
                rejoin: true
            }
        );
        assert!(matches!(
            c.take_notices()[..],
            [Notice::Remount {
                reason: "first follow since the agent started",
                ..
            }]
        ));
        // The old master coming back: it demotes, then follows in full.
        let mut c = riding_follower(now);
        let job = run(&mut c, &serving(Role::Master, 2, false), now);
        assert_eq!(job.kind, JobKind::Promote);
        c.finished(&job, &ok(), now);
        let job = run(&mut c, &t, now);
        assert_eq!(job.kind, JobKind::Demote);
        c.finished(&job, &ok(), now);
        let job = run(&mut c, &t, now);
        assert!(matches!(job.kind, JobKind::Follow { master: M2, .. }));
        assert_eq!(c.riding_from(), None);
    }

    #[test]
    fn promoted_or_stopped_mid_ride_ends_the_ride() {
        let now = Instant::now();
        let mut c = riding_follower(now);
        c.next(&serving(Role::Follower { master: None }, 2, false), now);
        assert_eq!(c.riding_from(), Some(M));
        let job = run(&mut c, &serving(Role::Master, 3, false), now);
        assert_eq!((job.kind, job.stop), (JobKind::Promote, names(&["web1"])));
        assert_eq!(c.riding_from(), None);
        let mut c = riding_follower(now);
        c.next(&serving(Role::Follower { master: None }, 2, false), now);
        assert_eq!(
            c.next(&serving(Role::Stopped, 3, false), now),
            Next::Idle { wake_at: None }
        );
        assert_eq!(c.riding_from(), None);
        // A remount asked by the health checks ends it too.
        let mut c = riding_follower(now);
        assert!(c.remount());
        assert_eq!(c.riding_from(), None);
    }

    #[test]
    fn fallback_causes_from_the_executors_verdict_and_words() {
        use FallbackCause::*;
        let of = |step, error| FallbackCause::of_failure(step, error, false);
        assert_eq!(
            of("probe mount a", "x: Stale file handle (os error 116)"),
            StaleHandle
        );
        assert_eq!(
            FallbackCause::of_failure(
                "verify dir.id",
                "verify dir.id did not finish within 5s",
                true
            ),
            Hung
        );
        assert_eq!(
            of(
                "verify dir.id",
                "cannot read /w/dir.id: No such file or directory"
            ),
            IdentityChanged
        );
        assert_eq!(
            of("probe mount a", "cannot list /w/a: Input/output error"),
            ProbeFailed
        );
        assert_eq!(NotServing.as_str(), "not_serving");
    }

    #[test]
    fn plain_vrrp_follows_without_a_runbook() {
        let now = Instant::now();
        let mut c = Converger::new(Found::default(), false, BACKOFF);
        let t = target(Role::Follower { master: Some(M) }, 1, None);
        assert_eq!(c.next(&t, now), Next::Idle { wake_at: None });
        assert_eq!(c.held(), Held::Following(M));
    }
}
