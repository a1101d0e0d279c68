//! The edge of the health checks (issue 12): which checks apply now, when
//! each runs, running it off the agent's loop, logging what the pure
//! [`Monitor`] decides and handing repairs to the worker.
//!
//! Each check runs as its own tokio task (commands are child processes,
//! file-system looks run on the blocking pool or in an `fs-probe` child),
//! at most one run per check at a time; the result comes back on a
//! channel the agent's loop reads. The loop feeds it to the monitor and
//! the monitor's verdict to the node core ([`crate::node::Input::Health`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::transition::{placed_here, RepairDone, RepairRequest};
use crate::config::{Config, RestartPolicy};
use crate::control::protocol::HealthStatus;
use crate::events;
use crate::health::{Action, CheckId, Limits, Monitor, Verdict};
use crate::quorum::Holding;
use crate::runbook::health::{self as catalog, HealthCheck};
use crate::runbook::{Runner, VipControl, VipError};

/// What a task of the health checker reports.
pub enum RunResult {
    /// One check's run, tagged with the catalog generation it ran under.
    Check {
        generation: u64,
        check: CheckId,
        result: Result<(), String>,
    },
    /// The value read from `health.track_file`.
    TrackFile(i32),
}

/// The health checker runs probes only: it never touches the VIPs.
struct ChecksOnly;

impl VipControl for ChecksOnly {
    async fn add(&self) -> Result<(), VipError> {
        Err(VipError::ChecksOnly)
    }
    async fn remove(&self) -> Result<(), VipError> {
        Err(VipError::ChecksOnly)
    }
    async fn announce(&self, _why: &'static str) -> Result<(), VipError> {
        Err(VipError::ChecksOnly)
    }
}

/// Which built-in checks apply now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The master's: a promote completed and no runbook runs.
    Master,
    /// A follower's mounts and the environments running here.
    Follower,
    /// The tracks only: a runbook runs (a follow, a demote, a placement),
    /// and the mounts it dismounts and the environments it stops or
    /// unregisters are its work, not failures; a mount check asking for
    /// a remount in the middle of a follow would follow twice.
    TracksOnly,
}

impl Scope {
    /// The scope of a node that is `master` (VRRP master holding the
    /// master resources), with a runbook other than a repair running or
    /// not, and stopping or not.
    pub fn of(master: bool, runbook_running: bool, stopping: bool) -> Scope {
        if runbook_running {
            Scope::TracksOnly
        } else if master && !stopping {
            Scope::Master
        } else {
            Scope::Follower
        }
    }
}

/// The checks, their schedule and the monitor.
pub struct HealthWatch {
    monitor: Monitor,
    catalog: BTreeMap<CheckId, HealthCheck>,
    /// Bumped when the catalog changes: results of older runs are dropped.
    generation: u64,
    next_run: BTreeMap<CheckId, Instant>,
    in_flight: BTreeSet<CheckId>,
    runner: Arc<Runner<ChecksOnly>>,
    results_tx: mpsc::UnboundedSender<RunResult>,
    /// Where run results arrive (the agent's loop reads it).
    pub results: mpsc::UnboundedReceiver<RunResult>,
    repairs: mpsc::UnboundedSender<RepairRequest>,
    verdict: Verdict,
    track_file_read: Option<Instant>,
    /// A read of `health.track_file` has not returned yet (a file on a
    /// dead NFS server hangs it): no second one is started meanwhile.
    track_file_busy: Arc<AtomicBool>,
    /// `health.interval` when `health.track_file` is set: how often it is
    /// read, whether or not any check is due.
    track_file_every: Option<Duration>,
}

fn limits(config: &Config) -> Limits {
    let (max_restarts, restart_window) = match config.health.restart_policy {
        RestartPolicy::Never => (None, Duration::ZERO),
        RestartPolicy::OnFailure {
            max_restarts,
            window,
        } => (Some(max_restarts), window),
    };
    Limits {
        max_repairs: config.health.max_repairs,
        repair_window: config.health.repair_window,
        hold_off: config.runbook.fault_hold_off,
        mount_hang_limit: config.health.mount_hang_limit,
        max_restarts,
        restart_window,
    }
}

impl HealthWatch {
    /// A watch for `config`, sending repairs to the worker on `repairs`.
    pub fn new(config: &Config, repairs: mpsc::UnboundedSender<RepairRequest>) -> Self {
        let (results_tx, results) = mpsc::unbounded_channel();
        HealthWatch {
            monitor: Monitor::new(limits(config)),
            catalog: BTreeMap::new(),
            generation: 0,
            next_run: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            runner: Arc::new(Runner::new(config.clone(), ChecksOnly)),
            results_tx,
            results,
            repairs,
            verdict: Verdict::default(),
            track_file_read: None,
            track_file_busy: Arc::new(AtomicBool::new(false)),
            track_file_every: None,
        }
    }

    /// A reloaded configuration: new limits and probes.
    pub fn reconfigure(&mut self, config: &Config) {
        self.monitor.set_limits(limits(config));
        self.runner = Arc::new(Runner::new(config.clone(), ChecksOnly));
        // The next `select` schedules the new probes afresh.
        self.catalog.clear();
        self.next_run.clear();
    }

    /// Chooses the checks that apply: the master's while this node serves
    /// as master (a promote completed and no runbook runs), the mounts'
    /// while it follows, one per environment running here (none of those
    /// while a runbook runs: [`Scope`]), and the tracks always.
    pub fn select(&mut self, config: &Config, scope: Scope, holding: Option<&Holding>) {
        self.track_file_every = config
            .health
            .track_file
            .as_ref()
            .map(|_| config.health.interval);
        let mut checks = catalog::tracks(config);
        let running: Vec<_> = placed_here(config)
            .into_iter()
            .filter(|env| holding.is_some_and(|h| h.running.contains(&env.name)))
            .collect();
        match scope {
            Scope::Master => {
                checks.extend(catalog::master_checks(config));
                checks.extend(catalog::environment_checks(config, &running));
            }
            Scope::Follower => {
                let mounted = holding.is_some_and(|h| h.mounted && !h.master);
                checks.extend(catalog::follower_checks(config, mounted, &running));
            }
            Scope::TracksOnly => {}
        }
        let ids: BTreeSet<&CheckId> = checks.iter().map(|c| &c.id).collect();
        let old: BTreeSet<&CheckId> = self.catalog.keys().collect();
        if ids == old {
            // Same checks: keep the schedule (a reload replaced them above).
            for check in checks {
                self.catalog.insert(check.id.clone(), check);
            }
            return;
        }
        self.generation += 1;
        self.in_flight.clear();
        let now = Instant::now();
        self.monitor
            .set_checks(checks.iter().map(|c| (c.id.clone(), c.judgement)));
        self.next_run
            .retain(|id, _| checks.iter().any(|c| c.id == *id));
        // New checks start staggered over the first second (or interval),
        // not all at one instant: a master's eight probes would otherwise
        // fork eight children at once, every interval, for ever.
        let count = u32::try_from(checks.len()).unwrap_or(u32::MAX).max(1);
        for (index, check) in (0u32..).zip(&checks) {
            let spread = check.interval.min(Duration::from_secs(1)) * index / count;
            self.next_run
                .entry(check.id.clone())
                .or_insert(now + spread);
        }
        self.catalog = checks.into_iter().map(|c| (c.id.clone(), c)).collect();
    }

    /// When the next check is due (or the verdict may change by itself).
    pub fn next_due(&self) -> Option<Instant> {
        let run = self
            .next_run
            .iter()
            .filter(|(id, _)| !self.in_flight.contains(*id))
            .map(|(_, at)| *at)
            .min();
        let track_file = self.track_file_every.map(|every| {
            self.track_file_read
                .map_or_else(Instant::now, |at| at + every)
        });
        [run, self.monitor.poll_timeout(), track_file]
            .into_iter()
            .flatten()
            .min()
    }

    /// The kernel says an address of `vrrp.interface` came or went: the
    /// checks that look for the VIPs run now (one already running is not
    /// doubled; it reads the addresses after the change anyway).
    pub fn addresses_changed(&mut self, now: Instant) {
        for (id, check) in &self.catalog {
            let looks_for_vips = matches!(
                check.probe.action,
                crate::runbook::step::Action::Builtin(crate::runbook::step::Builtin::Verify(
                    crate::runbook::step::Verify::VipsPresent
                ))
            );
            if looks_for_vips {
                self.next_run.insert(id.clone(), now);
            }
        }
    }

    /// Starts every check that is due, each in its own task.
    pub fn launch_due(&mut self, config: &Config, now: Instant) {
        self.read_track_file(config, now);
        let due: Vec<CheckId> = self
            .next_run
            .iter()
            .filter(|(id, at)| **at <= now && !self.in_flight.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(check) = self.catalog.get(&id) else {
                continue;
            };
            self.in_flight.insert(id.clone());
            let probe = check.probe.clone();
            let runner = Arc::clone(&self.runner);
            let tx = self.results_tx.clone();
            let generation = self.generation;
            tokio::spawn(async move {
                let result = runner.verify(&probe).await;
                let _ = tx.send(RunResult::Check {
                    generation,
                    check: id,
                    result,
                });
            });
        }
    }

    /// `health.track_file`: read once per `health.interval`, on the
    /// blocking pool (never on the election loop) and within
    /// `health.timeout`; a missing, unreadable or late file counts 0, as
    /// keepalived's does.
    fn read_track_file(&mut self, config: &Config, now: Instant) {
        let Some(path) = config.health.track_file.clone() else {
            return;
        };
        if self
            .track_file_read
            .is_some_and(|at| now.saturating_duration_since(at) < config.health.interval)
        {
            return;
        }
        // Counted as read even when skipped, so a hung read does not make
        // the loop wake for it again at once.
        self.track_file_read = Some(now);
        if self.track_file_busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let timeout = config.health.timeout;
        let tx = self.results_tx.clone();
        let busy = Arc::clone(&self.track_file_busy);
        tokio::spawn(async move {
            let read = tokio::task::spawn_blocking(move || {
                let text = std::fs::read_to_string(path);
                busy.store(false, Ordering::Release);
                text
            });
            let value = match tokio::time::timeout(timeout, read).await {
                Ok(Ok(Ok(text))) => text.trim().parse::<i32>().map_or(0, |v| v.clamp(-253, 253)),
                _ => 0,
            };
            let _ = tx.send(RunResult::TrackFile(value));
        });
    }

    /// One run's result: logs what the monitor decides and sends repairs
    /// to the worker.
    pub fn on_result(&mut self, run: RunResult, now: Instant) {
        let (id, result) = match run {
            RunResult::TrackFile(value) => {
                self.monitor.set_track_file(value);
                return;
            }
            RunResult::Check {
                generation,
                check,
                result,
            } if generation == self.generation => (check, result),
            // A run of checks since replaced.
            RunResult::Check { .. } => return,
        };
        self.in_flight.remove(&id);
        let Some(check) = self.catalog.get(&id).cloned() else {
            return;
        };
        self.next_run
            .insert(id.clone(), now + jittered(check.interval, &id, now));
        for action in self.monitor.observe(&id, result, now) {
            self.act(&check, action);
        }
    }

    fn act(&mut self, check: &HealthCheck, action: Action) {
        match action {
            Action::Failed { check: id, detail } => {
                events::health_check_failed(
                    &id.to_string(),
                    &detail,
                    check.judgement.response.as_str(),
                );
            }
            Action::Recovered { check: id } => events::health_check_recovered(&id.to_string()),
            Action::Repair { check: id } => {
                events::repair_started(&id.to_string(), &step_names(check));
                let request = RepairRequest::Master {
                    check: id,
                    steps: check.repair.clone(),
                };
                self.send(request);
            }
            Action::Restart { environment } => {
                events::repair_started(&check.id.to_string(), &step_names(check));
                let request = RepairRequest::Environment {
                    check: check.id.clone(),
                    name: environment,
                    steps: check.repair.clone(),
                };
                self.send(request);
            }
            Action::Remount { check: id } => {
                events::repair_started(&id.to_string(), "follow");
                self.send(RepairRequest::Remount { check: id });
            }
            Action::EnvironmentDied { environment, why } => {
                events::environment_died(&environment, &why);
            }
            Action::Held { environment } => events::held_not_started(&environment, "health"),
            Action::Resign { check: id, repairs } => {
                events::resigned_unhealthy(&id.to_string(), repairs);
            }
        }
    }

    fn send(&mut self, request: RepairRequest) {
        let check = match &request {
            RepairRequest::Master { check, .. }
            | RepairRequest::Environment { check, .. }
            | RepairRequest::Remount { check } => check.clone(),
        };
        if self.repairs.send(request).is_err() {
            // The worker is gone (shutting down): nothing will repair.
            self.monitor.repair_finished(&check);
        }
    }

    /// The worker finished a repair.
    pub fn on_repaired(&mut self, done: RepairDone) {
        let check = done.check.to_string();
        match &done.result {
            Ok(()) => events::repair_succeeded(
                &check,
                u64::try_from(done.took.as_millis()).unwrap_or(u64::MAX),
            ),
            Err(error) => events::repair_failed(&check, error),
        }
        self.monitor.repair_finished(&done.check);
    }

    /// The environments the operator holds (`env hold`): their stops are
    /// neither restarted nor alerted.
    pub fn set_held(&mut self, held: BTreeSet<String>) {
        self.monitor.set_held(held);
    }

    /// `resume`: the operator says the cause is fixed.
    pub fn resume(&mut self) {
        self.monitor.clear_resignation();
    }

    /// The verdict, when it changed since the last call.
    pub fn changed_verdict(&mut self, now: Instant) -> Option<Verdict> {
        let verdict = self.monitor.verdict(now);
        if verdict == self.verdict {
            return None;
        }
        self.verdict = verdict.clone();
        Some(verdict)
    }

    /// Every check and its state, for `status`.
    pub fn status(&self) -> Vec<HealthStatus> {
        let now = Instant::now();
        let ago = |at: Option<Instant>| at.map(|at| now.saturating_duration_since(at).as_secs());
        self.monitor
            .checks()
            .map(|(id, state)| HealthStatus {
                check: id.to_string(),
                good: state.good,
                detail: state.detail.clone(),
                repairing: state.repairing,
                last_run_s_ago: ago(state.last_run),
                last_change_s_ago: ago(state.last_change),
                runs: state.runs,
                failures: state.failures,
                repairs: state.repairs,
                restarts: state.restarts,
                held: self.monitor.is_held(id),
            })
            .collect()
    }
}

/// `interval` give or take a tenth, so that checks which started together
/// drift apart (and do not fork their children in step on every node).
/// The spread comes from a hash of the check and the time: no state, and
/// nothing here needs to be unpredictable.
fn jittered(interval: Duration, id: &CheckId, now: Instant) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    now.hash(&mut hasher);
    // 0..=200 per mille, centred on 100: -10 % ..= +10 %.
    let per_mille = u32::try_from(hasher.finish() % 201).unwrap_or(100);
    interval * (900 + per_mille) / 1000
}

fn step_names(check: &HealthCheck) -> String {
    check
        .repair
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::{jittered, Scope};
    use crate::health::CheckId;
    use std::time::{Duration, Instant};

    #[test]
    fn the_next_run_is_the_interval_give_or_take_a_tenth_and_varies() {
        let interval = Duration::from_secs(5);
        let start = Instant::now();
        let mut seen = std::collections::BTreeSet::new();
        for step in 0..200u32 {
            let now = start + Duration::from_millis(u64::from(step) * 37);
            for id in [
                CheckId::Vip,
                CheckId::Exports,
                CheckId::Service("nfsd".into()),
            ] {
                let next = jittered(interval, &id, now);
                assert!(next >= Duration::from_millis(4500), "{next:?}");
                assert!(next <= Duration::from_millis(5500), "{next:?}");
                seen.insert(next);
            }
        }
        // Not a constant: checks that started together drift apart.
        assert!(seen.len() > 50, "{}", seen.len());
    }

    #[test]
    fn a_running_runbook_suspends_the_built_in_checks() {
        // A follow or placement on a follower, a demote on a master.
        assert_eq!(Scope::of(false, true, false), Scope::TracksOnly);
        assert_eq!(Scope::of(true, true, false), Scope::TracksOnly);
        assert_eq!(Scope::of(false, true, true), Scope::TracksOnly);
    }

    #[test]
    fn between_runbooks_the_role_decides() {
        assert_eq!(Scope::of(true, false, false), Scope::Master);
        assert_eq!(Scope::of(false, false, false), Scope::Follower);
        // A stopping master serves no more.
        assert_eq!(Scope::of(true, false, true), Scope::Follower);
    }
}
