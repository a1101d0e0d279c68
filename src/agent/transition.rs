//! The transition worker: runs the runbooks that make this node match the
//! node core's latest decision.
//!
//! It runs beside the election loop and never blocks it: the loop
//! publishes the decision on a watch channel, bumps a cancel generation
//! when the decision takes something away, and keeps an allowance watch
//! that kills an acquiring step whose resource is fenced. *What* to run is
//! decided by the pure [`Converger`] (shared with the simulation); this
//! task only runs it and reports.
//!
//! At start the worker first looks at the real world (the start-up probe:
//! HAST role, pools, mounts, binds, nfsd, the exports block, and the
//! master marker): anything found means the master resources may be held,
//! and the node keeps claiming them until a demote has released them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::metrics::RunbookStats;
use crate::config::Config;
use crate::control::protocol::RideStatus;
use crate::health::CheckId;
use crate::node::converge::{
    Backoff, Converger, EnvHeld, Found, Job, JobKind, JobOutcome, JobReport, Next, Notice,
    RideView, Role,
};
use crate::node::{Allowance, Decision, WorkerReport};
use crate::runbook::step::Step;
use crate::runbook::{
    Context, Kind, Outcome, ProgressHandle, Runner, SystemVip, VipControl, VipError,
};
use crate::store::StateDirError;

/// A file in `state_dir` that exists while this node may hold master
/// resources (written durably before a promote acquires anything, removed
/// after a successful demote). The start-up probe is the source of truth;
/// the marker also covers what no probe can see.
pub const MASTER_MARKER: &str = "master";

/// After answering a second master, announce once more this much later: the
/// other master may have been in the middle of its own burst, and the last
/// frame a client sees decides which MAC it uses.
const CONFLICT_FOLLOWUP: Duration = Duration::from_millis(250);

/// A repair the health monitor asks for ([`crate::health::Action`]); the
/// worker runs it between runbooks, only while it still applies.
#[derive(Clone, Debug)]
pub enum RepairRequest {
    /// Run a promote's own steps again, while promoted.
    Master {
        /// The check that failed.
        check: CheckId,
        /// Its repair steps ([`crate::runbook::health`]).
        steps: Vec<Step>,
    },
    /// Start an environment again, while it is held as running here.
    Environment {
        /// The check that failed (`environment NAME`).
        check: CheckId,
        /// The environment.
        name: String,
        /// Its start steps.
        steps: Vec<Step>,
    },
    /// Follow afresh: a mount hung past `health.mount_hang_limit`.
    Remount {
        /// The check that failed (`nfs mount DIR`).
        check: CheckId,
    },
}

/// How a repair went, for the health monitor.
#[derive(Clone, Debug)]
pub struct RepairDone {
    /// The check it was for.
    pub check: CheckId,
    /// `Err`: why it failed or was not run.
    pub result: Result<(), String>,
    /// How long it took.
    pub took: Duration,
}

/// What the worker is told.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub decision: Decision,
    /// The configuration in force (SIGHUP replaces it; the next runbook
    /// uses it).
    pub config: Config,
    /// Which reload `config` came from (0: the start).
    pub config_generation: u64,
    /// The environments the operator holds (`env hold`): no runbook
    /// starts them, no repair restarts them.
    pub held: BTreeSet<String>,
}

pub struct Handles {
    pub task: JoinHandle<()>,
    pub desired: watch::Sender<Desired>,
    /// The core's cancel generation: a running runbook stops at its next
    /// safe point when it changes.
    pub cancel: watch::Sender<u64>,
    /// What may be acquired now (the fence).
    pub allowance: watch::Sender<Allowance>,
    pub garp_now: mpsc::UnboundedSender<IpAddr>,
    pub events: mpsc::UnboundedReceiver<WorkerReport>,
    pub progress: ProgressHandle,
    /// The ride through a master change in progress, for `status`.
    pub ride: RideHandle,
    pub stats: RunbookStats,
    /// Repairs asked for by the health monitor.
    pub repairs: mpsc::UnboundedSender<RepairRequest>,
    /// How they went.
    pub repaired: mpsc::UnboundedReceiver<RepairDone>,
}

/// Opens the link-layer sender (so a missing privilege fails at start, not
/// at the first takeover) and spawns the worker.
pub fn spawn(config: &Config, held: BTreeSet<String>) -> Result<Handles, VipError> {
    let (cancel_tx, cancel_rx) = watch::channel(0u64);
    let (allowance_tx, allowance_rx) = watch::channel(Allowance::default());
    let vip = SystemVip::open(config, cancel_rx.clone())?;
    let runner = Runner::new(config.clone(), vip).with_fence(allowance_rx);
    let progress = runner.progress();
    let (desired_tx, desired_rx) = watch::channel(Desired {
        decision: Decision::default(),
        config: config.clone(),
        config_generation: 0,
        held,
    });
    let (garp_tx, garp_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (repairs_tx, repairs_rx) = mpsc::unbounded_channel();
    let (repaired_tx, repaired_rx) = mpsc::unbounded_channel();
    let stats = RunbookStats::default();
    let ride = RideHandle::default();
    let worker = Worker {
        ride: ride.clone(),
        runner,
        events: events_tx,
        repaired: repaired_tx,
        cancel: cancel_rx,
        marker: config.node.state_dir.join(MASTER_MARKER),
        stats: stats.clone(),
    };
    let task = tokio::spawn(worker.run(desired_rx, garp_rx, repairs_rx));
    Ok(Handles {
        task,
        desired: desired_tx,
        cancel: cancel_tx,
        allowance: allowance_tx,
        garp_now: garp_tx,
        events: events_rx,
        progress,
        ride,
        stats,
        repairs: repairs_tx,
        repaired: repaired_rx,
    })
}

/// The `[[environment]]` entries whose node list names this node.
pub fn placed_here(config: &Config) -> Vec<crate::runbook::Env> {
    config
        .placement
        .iter()
        .filter(|p| p.nodes.contains(&config.node.name))
        .map(|p| crate::runbook::Env {
            name: p.name.clone(),
            kind: p.kind,
        })
        .collect()
}

fn backoff(config: &Config) -> Backoff {
    Backoff {
        base: config.runbook.retry_backoff,
        max: config.runbook.retry_backoff_max,
    }
}

struct Worker<V: VipControl> {
    runner: Runner<V>,
    events: mpsc::UnboundedSender<WorkerReport>,
    repaired: mpsc::UnboundedSender<RepairDone>,
    cancel: watch::Receiver<u64>,
    marker: PathBuf,
    stats: RunbookStats,
    ride: RideHandle,
}

/// The worker's ride through a master change, as `status` shows it
/// (written by the worker after each decision of its converger).
#[derive(Clone, Debug, Default)]
pub struct RideHandle(std::sync::Arc<std::sync::Mutex<Option<RideStatus>>>);

impl RideHandle {
    /// The ride in progress, if any.
    pub fn get(&self) -> Option<RideStatus> {
        self.0.lock().ok()?.clone()
    }

    /// Records the converger's ride (`to`: the master now followed).
    fn set(&self, ride: Option<RideView>, to: Option<IpAddr>) {
        let status = ride.map(|ride| {
            // Instants to Unix time, through the present.
            let now = Instant::now().into_std();
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let ago = now.saturating_duration_since(ride.since).as_secs();
            let left = ride.deadline.saturating_duration_since(now).as_secs();
            RideStatus {
                from: ride.from,
                to,
                since: unix.saturating_sub(ago),
                deadline: unix.saturating_add(left),
            }
        });
        if let Ok(mut guard) = self.0.lock() {
            *guard = status;
        }
    }
}

impl<V: VipControl> Worker<V> {
    async fn run(
        mut self,
        mut desired: watch::Receiver<Desired>,
        mut garp_now: mpsc::UnboundedReceiver<IpAddr>,
        mut repairs: mpsc::UnboundedReceiver<RepairRequest>,
    ) {
        let config = desired.borrow().config.clone();
        let mut converger = Converger::new(
            self.look(&config).await,
            config.cbsd.is_some(),
            backoff(&config),
        );
        let _ = self
            .events
            .send(WorkerReport::Holding(converger.holding(0)));
        let mut second_burst: Option<Instant> = None;
        let mut conflict_followup: Option<Instant> = None;
        loop {
            let current = desired.borrow_and_update().clone();
            self.runner.set_config(current.config.clone());
            self.runner.set_held(current.held.clone());
            converger.set_operator_holds(current.held.clone());
            converger.set_backoff(backoff(&current.config));
            converger.set_ride_through(current.config.follow.ride_through());
            let target = current.decision.target();
            let next = converger.next(&target, Instant::now().into_std());
            let to = match target.role {
                Role::Follower { master } => master,
                _ => None,
            };
            self.ride.set(converger.ride(), to);
            self.tell(converger.take_notices(), *self.cancel.borrow());
            let wake_at = match next {
                Next::Run(job) => {
                    let was_promoted = converger.is_promoted();
                    self.run_job(&mut converger, &job, &current).await;
                    if !was_promoted && converger.is_promoted() {
                        let delay = current.config.vrrp.garp_master_delay;
                        second_burst = (!delay.is_zero()).then(|| Instant::now() + delay);
                    } else if !converger.is_promoted() {
                        second_burst = None;
                    }
                    continue;
                }
                Next::Idle { wake_at } => wake_at,
            };
            let _ = self
                .events
                .send(WorkerReport::Holding(converger.holding(target.sequence)));
            if target.role == Role::Stopped && converger.holds_nothing() {
                return;
            }
            let retry_at = wake_at.map(Instant::from_std);
            // Wait for a newer decision, an ARP request, or a timer.
            loop {
                tokio::select! {
                    changed = desired.changed() => {
                        if changed.is_err() {
                            // The loop is gone: its last decision was applied.
                            return;
                        }
                        break;
                    }
                    Some(_) = garp_now.recv() => {
                        if converger.is_promoted() {
                            self.announce("master_conflict").await;
                            conflict_followup = Some(Instant::now() + CONFLICT_FOLLOWUP);
                        }
                    }
                    () = sleep_until_opt(conflict_followup) => {
                        conflict_followup = None;
                        if converger.is_promoted() {
                            self.announce("master_conflict_followup").await;
                        }
                    }
                    () = sleep_until_opt(second_burst) => {
                        second_burst = None;
                        if converger.is_promoted() {
                            self.announce("garp_master_delay").await;
                        }
                    }
                    Some(repair) = repairs.recv() => {
                        if self.repair(&mut converger, repair).await {
                            // A remount: the follow runs now.
                            break;
                        }
                    }
                    () = sleep_until_opt(retry_at) => break,
                }
            }
        }
    }

    /// Runs one repair between runbooks, if it still applies; true when
    /// the role must be served afresh (a remount).
    async fn repair(&mut self, converger: &mut Converger, request: RepairRequest) -> bool {
        let started = Instant::now();
        let (check, result, again) = match request {
            RepairRequest::Master { check, steps } => {
                let result = if converger.is_promoted() {
                    self.runner.repair(&steps, self.cancel.clone()).await
                } else {
                    Err("not master any more".to_owned())
                };
                (check, result, false)
            }
            RepairRequest::Environment { check, name, steps } => {
                let running = converger.environments().get(&name) == Some(&EnvHeld::Running);
                // Held since the monitor asked: the operator's word wins.
                let result = if let Some(from) = converger.riding_from() {
                    // Its files are on mounts paused until the new master
                    // serves: a restart now would hang on them, and the
                    // ride (or its fallback) settles them anyway.
                    Err(format!(
                        "riding through the change from master {from}: not restarted meanwhile"
                    ))
                } else if self.runner.is_held(&name) {
                    crate::events::held_not_started(&name, "restart");
                    Err(format!("{name} is held by the operator"))
                } else if running {
                    self.runner.repair(&steps, self.cancel.clone()).await
                } else {
                    Err(format!("{name} is not held as running here any more"))
                };
                (check, result, false)
            }
            RepairRequest::Remount { check } => {
                if let Some(from) = converger.riding_from() {
                    (
                        check,
                        Err(format!(
                            "riding through the change from master {from}: its deadline decides"
                        )),
                        false,
                    )
                } else if converger.remount() {
                    (check, Ok(()), true)
                } else {
                    (check, Err("not following any more".to_owned()), false)
                }
            }
        };
        let _ = self.repaired.send(RepairDone {
            check,
            result,
            took: started.elapsed(),
        });
        again
    }

    /// The start-up probe (see the module documentation).
    async fn look(&self, config: &Config) -> Found {
        let marker = self.marker.clone();
        let marked = tokio::task::spawn_blocking(move || marker.exists())
            .await
            .unwrap_or(true);
        let probe = self.runner.probe_master().await;
        for what in &probe.held {
            crate::events::found_held(what);
        }
        for what in &probe.unknown {
            crate::events::found_unknown(what);
        }
        if marked {
            crate::events::found_held("the master marker in node.state_dir");
        }
        // With placement, every environment placed here may still run from
        // an earlier run: held until a stop or a start has verified it.
        let environments: BTreeSet<String> = if config.cluster.is_some() {
            placed_here(config).into_iter().map(|e| e.name).collect()
        } else {
            BTreeSet::new()
        };
        Found {
            master: marked || probe.may_hold(),
            environments,
        }
    }

    /// Runs one job and feeds its report to the converger.
    async fn run_job(&mut self, converger: &mut Converger, job: &Job, current: &Desired) {
        let generation = *self.cancel.borrow();
        let now = || Instant::now().into_std();
        if job.kind == JobKind::Promote {
            // Before anything is acquired: a restart must know.
            if let Err(e) = write_marker(&self.marker).await {
                let report = JobReport::only(JobOutcome::Failed {
                    step: "write the master marker".to_owned(),
                    error: e.to_string(),
                    timed_out: false,
                });
                self.tell(converger.finished(job, &report, now()), generation);
                return;
            }
        }
        let ctx = Context::from_config(&current.config);
        let started = Instant::now();
        let report = self
            .runner
            .execute(job, &ctx, &current.decision.takeover, self.cancel.clone())
            .await;
        let took = started.elapsed();
        self.stats
            .record(kind_of(job.kind), &outcome_of(&report.outcome), took);
        // An isolated master has `fence_margin` to finish this very runbook
        // before another node may take the storage: say so when it did not.
        if let (JobKind::Demote, Some(cluster)) = (job.kind, &current.config.cluster) {
            if took > cluster.fence_margin {
                crate::events::fence_margin_short(
                    u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                    u64::try_from(cluster.fence_margin.as_millis()).unwrap_or(u64::MAX),
                );
            }
        }
        let notices = converger.finished(job, &report, now());
        if job.kind == JobKind::Demote && report.outcome == JobOutcome::Succeeded {
            remove_marker(&self.marker).await;
        }
        self.tell(notices, generation);
    }

    fn tell(&self, notices: Vec<Notice>, generation: u64) {
        for notice in notices {
            match notice {
                Notice::PromoteFailed { reason } => {
                    let _ = self
                        .events
                        .send(WorkerReport::PromoteFailed { reason, generation });
                }
                Notice::EnvironmentStopFailed { name, failures } => {
                    crate::events::environment_stop_failed(&name, failures);
                }
                Notice::ReleaseFailed { failures, error } => {
                    crate::events::release_failed(failures, &error);
                }
                Notice::RideThrough { from, to, reason } => {
                    crate::events::follow_ride_through(&from.to_string(), &address(to), reason);
                }
                Notice::FollowFallback {
                    from,
                    to,
                    cause,
                    detail,
                } => {
                    crate::events::follow_fallback(
                        &from.to_string(),
                        &address(to),
                        cause.as_str(),
                        &detail,
                    );
                }
                Notice::Remount { from, to, reason } => {
                    crate::events::follow_remount(&address(from), &to.to_string(), reason);
                }
            }
        }
    }

    async fn announce(&self, why: &'static str) {
        if let Err(e) = self.runner.announce(why).await {
            crate::events::garp_failed(
                &self.runner.config().vrrp.interface,
                &format!("{why}: {e}"),
            );
        }
    }
}

/// An address for the logs, `none` when not known.
fn address(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "none".to_owned(), |a| a.to_string())
}

fn kind_of(kind: JobKind) -> Kind {
    match kind {
        JobKind::Promote => Kind::Promote,
        JobKind::Demote => Kind::Demote,
        JobKind::Follow { .. } => Kind::Follow,
        JobKind::Place => Kind::Place,
        JobKind::Quiesce => Kind::Quiesce,
        JobKind::RideThrough { .. } => Kind::RideThrough,
    }
}

fn outcome_of(outcome: &JobOutcome) -> Outcome {
    match outcome {
        JobOutcome::Succeeded => Outcome::Succeeded {
            skipped: Vec::new(),
        },
        JobOutcome::Failed { step, error, .. } => Outcome::Failed {
            step: step.clone(),
            error: error.clone(),
        },
        JobOutcome::Cancelled { at_step } => Outcome::Cancelled {
            at_step: at_step.clone(),
        },
    }
}

/// Why the master marker could not be written or removed.
#[derive(Debug, thiserror::Error)]
enum MarkerError {
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    /// The blocking task that did it panicked or was cancelled.
    #[error("internal error: {0}")]
    Join(#[source] tokio::task::JoinError),
}

/// Creates the master marker durably (file and directory synced), off the
/// runtime. A failure stops the promote: a restart must never miss it.
async fn write_marker(path: &std::path::Path) -> Result<(), MarkerError> {
    let path = path.to_path_buf();
    Ok(
        tokio::task::spawn_blocking(move || crate::store::write_durably(&path, b"master\n"))
            .await
            .map_err(MarkerError::Join)??,
    )
}

/// Removes the master marker (after a successful demote). A failure is
/// logged: the start-up probe still sees what is really held.
async fn remove_marker(path: &std::path::Path) {
    let path = path.to_path_buf();
    let shown = path.display().to_string();
    let result = tokio::task::spawn_blocking(move || crate::store::remove_durably(&path)).await;
    let error = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => MarkerError::StateDir(e),
        Err(e) => MarkerError::Join(e),
    };
    crate::events::state_marker_failed(&shown, &error.to_string());
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
