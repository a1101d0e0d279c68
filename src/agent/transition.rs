//! The transition worker: runs the runbooks (promote, demote, follow) that
//! make this node match the election's latest decision.
//!
//! It runs beside the election loop and never blocks it: the loop publishes
//! the role it wants on a watch channel and bumps a cancel generation; the
//! worker runs runbooks to converge on the *latest* role. A runbook overtaken
//! by a newer decision stops at its next safe point (between steps) and the
//! worker starts over from the newest role; every step probes before it
//! acts, so a half-run runbook is picked up where it stopped.
//!
//! Which runbook, from what the worker knows it did:
//!
//! | wanted \ held | nothing / following | master resources (maybe partial) |
//! |---|---|---|
//! | master | promote | promote (idempotent steps) |
//! | backup, master M known | follow M (unless already following M) | demote, then follow M |
//! | backup, master unknown | nothing (a follower forgets its master: the next one is followed afresh) | demote |
//! | stopped (shutdown) | nothing | demote |
//!
//! A failed promote has undone what it did; what it found already there
//! stays counted as held, the worker reports the failure and the loop
//! enters fault (the node resigns, then demotes). A failed demote or follow
//! is retried with backoff.

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use std::path::PathBuf;

use super::metrics::RunbookStats;
use crate::config::Config;
use crate::quorum::Holding;
use crate::runbook::{
    Context, Kind, Outcome, Placement, ProgressHandle, Runner, SystemVip, VipControl,
};

/// A file in `state_dir` that exists while this node may hold master
/// resources (from the start of a promote to the end of a successful
/// demote). After a crash, the restarted agent reads it: becoming master
/// again re-runs promote over what is already there (every step probes
/// first), following another master runs demote first.
const MASTER_MARKER: &str = "master";

/// After answering a second master, announce once more this much later: the
/// other master may have been in the middle of its own burst, and the last
/// frame a client sees decides which MAC it uses.
const CONFLICT_FOLLOWUP: Duration = Duration::from_millis(250);

/// The role the election wants this node to have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Not decided yet (Initialize): leave everything as it is.
    #[default]
    Undecided,
    /// Master: promote.
    Master,
    /// Backup or fault: no master resources; follow `master` when known.
    Follower { master: Option<Ipv4Addr> },
    /// The agent is stopping: release master resources, follow nobody.
    Stopped,
}

/// What the worker is told.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub role: Role,
    /// The configuration in force (SIGHUP replaces it; the next runbook
    /// uses it).
    pub config: Config,
    /// Which reload `config` came from (0: the start).
    pub config_generation: u64,
    /// Numbers every decision; the worker reports the last one it
    /// converged on (see `quorum::ClusterState`).
    pub sequence: u64,
    /// With `[[environment]]` placement: the environments to run (once the
    /// role's runbook is done) and whose locks may be taken over. `None`:
    /// the node's own `[environments]` list, started by the role runbooks.
    pub placement: Option<Placement>,
}

/// Reported back to the election loop.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A promote failed (and undid what it did): the node must resign
    /// (fault) — unless the decision it served (`generation`) is already
    /// superseded.
    PromoteFailed { reason: String, generation: u64 },
    /// What the worker holds after converging on a decision: the loop
    /// keeps claiming it until it is released.
    Holding(Holding),
}

pub struct Handles {
    pub task: JoinHandle<()>,
    pub desired: watch::Sender<Desired>,
    /// Bumped by the loop on every new decision: a running runbook stops at
    /// its next safe point.
    pub cancel: watch::Sender<u64>,
    pub garp_now: mpsc::UnboundedSender<Ipv4Addr>,
    pub events: mpsc::UnboundedReceiver<WorkerEvent>,
    pub progress: ProgressHandle,
    pub stats: RunbookStats,
}

/// Opens the link-layer sender (so a missing privilege fails at start, not
/// at the first takeover) and spawns the worker.
pub fn spawn(config: &Config) -> Result<Handles, String> {
    let (cancel_tx, cancel_rx) = watch::channel(0u64);
    let vip = SystemVip::open(config, cancel_rx.clone())?;
    let mut runner = Runner::new(config.clone(), vip);
    // With placement, every environment placed here may still run from a
    // crashed earlier run: it counts as running (and stays claimed) until
    // the first `place` run has stopped it or kept it under a lease.
    runner.set_placement(initial_placement(config));
    let progress = runner.progress();
    let (desired_tx, desired_rx) = watch::channel(Desired {
        role: Role::Undecided,
        config: config.clone(),
        config_generation: 0,
        sequence: 0,
        placement: None,
    });
    let (garp_tx, garp_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let marker = config.node.state_dir.join(MASTER_MARKER);
    // A marker left by a crashed run: master resources may still be held.
    let held = if marker.exists() {
        Held::Master { complete: false }
    } else {
        Held::Nothing
    };
    let stats = RunbookStats::default();
    let worker = Worker {
        runner,
        held,
        events: events_tx,
        cancel: cancel_rx,
        marker,
        stats: stats.clone(),
        followed_since_start: false,
    };
    worker.report(0);
    let task = tokio::spawn(worker.run(desired_rx, garp_rx));
    Ok(Handles {
        task,
        desired: desired_tx,
        cancel: cancel_tx,
        garp_now: garp_tx,
        events: events_rx,
        progress,
        stats,
    })
}

/// Placement mode (`[cluster]` with `[cbsd]`): nothing may run yet, and
/// every environment placed here is a candidate.
pub fn initial_placement(config: &Config) -> Option<Placement> {
    if config.cluster.is_none() || config.cbsd.is_none() {
        return None;
    }
    Some(Placement {
        environments: Vec::new(),
        candidates: placed_here(config),
        takeover: Vec::new(),
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

/// What this node holds, as far as the worker knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// No master resources, following nobody.
    Nothing,
    /// Master resources: `complete` once a promote succeeded, otherwise
    /// possibly partial (a promote was cancelled).
    Master { complete: bool },
    /// Mounted from the VIP while `master` was master.
    Following(Ipv4Addr),
}

struct Worker<V: VipControl> {
    runner: Runner<V>,
    held: Held,
    events: mpsc::UnboundedSender<WorkerEvent>,
    cancel: watch::Receiver<u64>,
    marker: PathBuf,
    stats: RunbookStats,
    /// Whether a follow has succeeded since the agent started.
    followed_since_start: bool,
}

/// What to wait for after converging.
enum Wake {
    /// Nothing scheduled.
    Never,
    /// Retry a failed demote or follow at this time.
    Retry(Instant),
}

impl<V: VipControl> Worker<V> {
    async fn run(
        mut self,
        mut desired: watch::Receiver<Desired>,
        mut garp_now: mpsc::UnboundedReceiver<Ipv4Addr>,
    ) {
        let mut second_burst: Option<Instant> = None;
        let mut conflict_followup: Option<Instant> = None;
        let mut failures: u32 = 0;
        loop {
            let target = desired.borrow_and_update().clone();
            self.runner.set_config(target.config.clone());
            if target.placement.is_some() {
                self.runner.set_placement(target.placement.clone());
            }
            let was_master = self.held == (Held::Master { complete: true });
            let mut wake = self.converge(&target, &mut failures).await;
            if target.placement.is_some() {
                if let Wake::Retry(at) = self.place(&target, &mut failures).await {
                    wake = Wake::Retry(at);
                }
            }
            self.report(target.sequence);
            let is_master = self.held == (Held::Master { complete: true });
            second_burst = match (was_master, is_master) {
                (false, true) => {
                    let delay = target.config.vrrp.garp_master_delay;
                    (!delay.is_zero()).then(|| Instant::now() + delay)
                }
                (true, true) => second_burst,
                _ => None,
            };
            if target.role == Role::Stopped
                && !self.holds_master()
                && self.runner.running_environments().is_empty()
            {
                return;
            }
            let retry_at = match wake {
                Wake::Never => None,
                Wake::Retry(at) => Some(at),
            };
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
                        if self.held == (Held::Master { complete: true }) {
                            self.announce("master_conflict").await;
                            conflict_followup = Some(Instant::now() + CONFLICT_FOLLOWUP);
                        }
                    }
                    () = sleep_until_opt(conflict_followup) => {
                        conflict_followup = None;
                        if self.held == (Held::Master { complete: true }) {
                            self.announce("master_conflict_followup").await;
                        }
                    }
                    () = sleep_until_opt(second_burst) => {
                        second_burst = None;
                        if self.held == (Held::Master { complete: true }) {
                            self.announce("garp_master_delay").await;
                        }
                    }
                    () = sleep_until_opt(retry_at) => break,
                }
            }
        }
    }

    /// Runs the runbooks that take the node from what it holds to `target`.
    async fn converge(&mut self, target: &Desired, failures: &mut u32) -> Wake {
        // Until a follow succeeds after start, it is a boot or a rejoin:
        // stale registrations are cleared before mounting (FOLLOW step 2).
        let ctx = Context::from_config(&target.config).with_rejoin(!self.followed_since_start);
        // The decision this convergence serves: a newer one makes every
        // further runbook of this pass moot (the outer loop starts over).
        let generation = *self.cancel.borrow();
        match (&target.role, self.held) {
            (Role::Undecided, _) => Wake::Never,
            // Already promoted (e.g. a reload while master): nothing to redo.
            (Role::Master, Held::Master { complete: true }) => Wake::Never,
            (Role::Master, _) => {
                // Anything we held as a follower is replaced by promote's own
                // first steps (stop environments, unmount). From the first
                // step on, master resources may be held: the marker says so
                // until a demote has released them.
                self.held = Held::Master { complete: false };
                self.set_marker(true);
                match self.run_runbook(Kind::Promote, &ctx).await {
                    Outcome::Succeeded { .. } => self.held = Held::Master { complete: true },
                    Outcome::Cancelled { .. } => {}
                    Outcome::Failed { step, error } => {
                        // The promote undid what it did, but not what an
                        // earlier (cancelled) promote or a crashed run left
                        // and this one found already there: keep counting
                        // them as held, so the demote that follows the
                        // fault releases everything before any follow.
                        let _ = self.events.send(WorkerEvent::PromoteFailed {
                            reason: format!("{step}: {error}"),
                            generation,
                        });
                    }
                }
                Wake::Never
            }
            (Role::Stopped, Held::Master { .. })
            | (Role::Follower { master: None }, Held::Master { .. }) => {
                self.demote_or_retry(&ctx, target, failures).await
            }
            (Role::Follower { master: None }, Held::Following(_)) => {
                // The master is gone. Whoever comes next (even the same node
                // restarted) runs a new NFS server whose state ours cannot
                // carry over: follow it from scratch.
                self.held = Held::Nothing;
                Wake::Never
            }
            (Role::Stopped, _) | (Role::Follower { master: None }, _) => Wake::Never,
            (
                Role::Follower {
                    master: Some(master),
                },
                held,
            ) => {
                if matches!(held, Held::Master { .. }) {
                    // Storage or NFS still held: never follow (mount from
                    // the VIP) on top of that.
                    let wake = self.demote_or_retry(&ctx, target, failures).await;
                    if self.holds_master() {
                        return wake;
                    }
                }
                if self.held == Held::Following(*master) {
                    return Wake::Never;
                }
                if target.config.cbsd.is_none() {
                    // Plain VRRP: following has nothing to mount or start.
                    self.held = Held::Following(*master);
                    return Wake::Never;
                }
                if *self.cancel.borrow() != generation {
                    // The role changed while demoting (e.g. this node is to
                    // be master now): do not follow a master that is gone.
                    return Wake::Never;
                }
                // The follow first stops environments and unmounts: from
                // here on, what was followed before is gone, and a follow
                // cancelled half way must be run again in full.
                self.held = Held::Nothing;
                match self.run_runbook(Kind::Follow, &ctx).await {
                    Outcome::Succeeded { .. } => {
                        *failures = 0;
                        self.followed_since_start = true;
                        self.held = Held::Following(*master);
                        Wake::Never
                    }
                    Outcome::Cancelled { .. } => Wake::Never,
                    Outcome::Failed { .. } => {
                        // Environments whose mounts are not verified stay
                        // stopped; try again with a growing pause.
                        self.retry_later(target, failures)
                    }
                }
            }
        }
    }

    /// With placement: stops the environments whose lease is gone (always)
    /// and starts the newly leased ones (only once the role's runbook is
    /// done: mounted from the master, or promoted).
    async fn place(&mut self, target: &Desired, failures: &mut u32) -> Wake {
        let settled = match self.held {
            Held::Master { complete } => complete,
            Held::Following(_) => true,
            Held::Nothing => false,
        } && matches!(
            target.role,
            Role::Master | Role::Follower { master: Some(_) }
        );
        if !self.runner.placement_pending(settled) {
            return Wake::Never;
        }
        let started = Instant::now();
        let outcome = self.runner.place(settled, self.cancel.clone()).await;
        self.stats.record(Kind::Place, &outcome, started.elapsed());
        match outcome {
            Outcome::Succeeded { .. } | Outcome::Cancelled { .. } => Wake::Never,
            Outcome::Failed { .. } => self.retry_later(target, failures),
        }
    }

    /// Tells the loop what is held after converging on decision `applied`.
    fn report(&self, applied: u64) {
        let _ = self.events.send(WorkerEvent::Holding(Holding {
            applied,
            master: self.holds_master(),
            environments: self.runner.running_environments().into_iter().collect(),
            running: self.runner.started_environments().into_iter().collect(),
        }));
    }

    /// Runs demote. Success: no master resources are held any more. A
    /// failure is retried with backoff (the VIP was dropped first and is
    /// never re-added without a full promote); a cancellation is not a
    /// failure: the newer decision is served next.
    async fn demote_or_retry(
        &mut self,
        ctx: &Context,
        target: &Desired,
        failures: &mut u32,
    ) -> Wake {
        match self.run_runbook(Kind::Demote, ctx).await {
            Outcome::Succeeded { .. } => {
                *failures = 0;
                self.held = Held::Nothing;
                self.set_marker(false);
                Wake::Never
            }
            Outcome::Cancelled { .. } => Wake::Never,
            Outcome::Failed { .. } => self.retry_later(target, failures),
        }
    }

    /// A failed demote or follow is tried again after a growing pause.
    fn retry_later(&self, target: &Desired, failures: &mut u32) -> Wake {
        *failures = failures.saturating_add(1);
        let runbook = &target.config.runbook;
        Wake::Retry(
            Instant::now() + backoff(*failures, runbook.retry_backoff, runbook.retry_backoff_max),
        )
    }

    /// One runbook, timed and counted for the metrics.
    async fn run_runbook(&mut self, kind: Kind, ctx: &Context) -> Outcome {
        let started = Instant::now();
        let outcome = self.runner.run(kind, ctx, self.cancel.clone()).await;
        self.stats.record(kind, &outcome, started.elapsed());
        // An isolated master has `fence_margin` to finish this very runbook
        // before another node may take the storage: say so when it did not.
        if let (Kind::Demote, Some(cluster)) = (kind, &self.runner.config().cluster) {
            let took = started.elapsed();
            if took > cluster.fence_margin {
                crate::events::fence_margin_short(
                    u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                    u64::try_from(cluster.fence_margin.as_millis()).unwrap_or(u64::MAX),
                );
            }
        }
        outcome
    }

    /// Creates or removes the master marker. A failure is logged: the
    /// marker only makes a restart after a crash more careful.
    fn set_marker(&self, present: bool) {
        let result = if present {
            std::fs::write(&self.marker, b"master\n")
        } else {
            match std::fs::remove_file(&self.marker) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        if let Err(e) = result {
            crate::events::state_marker_failed(&self.marker.display().to_string(), &e.to_string());
        }
    }

    fn holds_master(&self) -> bool {
        matches!(self.held, Held::Master { .. })
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

/// `base * 2^(n-1)`, at most `max`.
fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(max)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let (base, max) = (Duration::from_secs(2), Duration::from_secs(30));
        let seen: Vec<u64> = (1..=6).map(|n| backoff(n, base, max).as_secs()).collect();
        assert_eq!(seen, [2, 4, 8, 16, 30, 30]);
    }
}
