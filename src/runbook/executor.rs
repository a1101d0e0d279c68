//! Runs runbooks: each command under its timeout (the process group is
//! killed when it expires, and a process that outlives the kill is
//! abandoned, never awaited for ever), probes before acts, retries with
//! backoff, the failure rules, the undo of a failed promote, cancellation
//! between steps, the fence's kill of an acquiring step, what became of
//! each environment, and progress for `status`. See the module contract in
//! [`super`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::cbsd::StaleRegistrations;
use super::command::{self, aborted, Abort, CommandError, Ran};
use super::expect::Expect;
use super::exports;
use super::fs_probe::{FsProbe, LockSeen};
use super::nfs::DeadMounts;
use super::stable_restart;
use super::step::{Action, Builtin, Checked, Command, EnvPhase, Gate, OnFailure, Step, Verify};
use super::vip::{VipControl, VipError};
use super::{
    cbsd, demote, follow, probe, promote, resolve_environments, ride_through, Context, Env, Kind,
    Outcome,
};
use crate::config::{format_duration, Config, EnvKind};
use crate::events;
use crate::node::converge::{Job, JobKind, JobOutcome, JobReport};
use crate::node::Allowance;

pub use super::command::KILL_WAIT;

/// How long listing `jails-system/` may take (it may sit on a dead mount).
const LIST_TIMEOUT: Duration = Duration::from_secs(3);
/// Polling period of [`Builtin::WaitForPath`].
const POLL: Duration = Duration::from_millis(100);

/// What `status` shows about the runbook in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Which runbook is running.
    pub runbook: Kind,
    /// The name of the step running now, as `plan` shows it.
    pub step: String,
    /// 1-based position of the step among the steps known so far.
    pub step_number: usize,
    /// How many steps are known so far (environment steps are added as
    /// the run decides them).
    pub steps: usize,
    /// Milliseconds since the runbook started.
    pub elapsed_ms: u64,
    /// Milliseconds since the current step started.
    pub step_elapsed_ms: u64,
}

#[derive(Debug)]
struct Current {
    runbook: Kind,
    started: Instant,
    step: String,
    step_number: usize,
    steps: usize,
    step_started: Instant,
}

/// A shareable view of the runner's progress (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct ProgressHandle(Arc<Mutex<Option<Current>>>);

impl ProgressHandle {
    /// The runbook in progress, if any.
    pub fn get(&self) -> Option<Progress> {
        let guard = self.0.lock().ok()?;
        let current = guard.as_ref()?;
        Some(Progress {
            runbook: current.runbook,
            step: current.step.clone(),
            step_number: current.step_number,
            steps: current.steps,
            elapsed_ms: millis(current.started.elapsed()),
            step_elapsed_ms: millis(current.step_started.elapsed()),
        })
    }

    fn update(&self, change: impl FnOnce(&mut Option<Current>)) {
        if let Ok(mut guard) = self.0.lock() {
            change(&mut guard);
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Why a built-in step (one that runs in the agent, not a command) failed.
#[derive(Debug, thiserror::Error)]
enum BuiltinError {
    /// Adding, removing or announcing the virtual IPs.
    #[error(transparent)]
    Vip(#[from] VipError),
    /// Writing or clearing the agent's block of the exports file.
    #[error(transparent)]
    Exports(#[from] exports::ExportsError),
    /// The blocking task that did the work panicked or was cancelled.
    #[error("internal error: {0}")]
    Join(#[source] tokio::task::JoinError),
    /// A step that runs through `attempt` reached the built-in runner.
    #[error("internal error: this step runs through attempt")]
    NotABuiltin,
}

/// Why a step (or a runbook) stopped.
enum Stop {
    /// `timed_out`: the step's last attempt was killed at its deadline
    /// ([`AttemptError::Timeout`]), not refused.
    Failed {
        step: String,
        error: String,
        timed_out: bool,
    },
    Cancelled {
        at_step: String,
    },
}

#[derive(Debug)]
enum AttemptError {
    /// The command did not finish in time and was killed.
    Timeout(String),
    Failed(String),
    /// The fence took away what the step was acquiring: it was killed.
    Aborted(String),
}

impl AttemptError {
    fn outcome(&self) -> &'static str {
        match self {
            AttemptError::Timeout(_) => "timeout",
            AttemptError::Failed(_) => "failed",
            AttemptError::Aborted(_) => "killed",
        }
    }

    fn message(&self) -> &str {
        match self {
            AttemptError::Timeout(m) | AttemptError::Failed(m) | AttemptError::Aborted(m) => m,
        }
    }

    /// A command's failure to give an exit status, within `deadline`.
    fn of_command(error: CommandError, deadline: &Deadline) -> AttemptError {
        match error {
            CommandError::TimedOut { limit, .. } if limit < deadline.budget => {
                AttemptError::Timeout(format!(
                    "{error} (what was left of the step's {})",
                    format_duration(deadline.budget)
                ))
            }
            CommandError::TimedOut { .. } => AttemptError::Timeout(error.to_string()),
            CommandError::Fenced { .. } => AttemptError::Aborted(error.to_string()),
            CommandError::Empty | CommandError::Spawn { .. } | CommandError::Wait { .. } => {
                AttemptError::Failed(error.to_string())
            }
        }
    }
}

/// What bounds the commands of one attempt: its deadline, and the fence's
/// kill for a step that acquires.
struct Within<'a> {
    deadline: &'a Deadline,
    step: &'a str,
    abort: Option<&'a Abort>,
}

/// The end of one attempt of a step: its commands (the probe, each act,
/// the probe after each act) share the step's timeout, so an attempt never
/// runs longer than `plan` shows.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// The time left, or a timeout naming `step` when none is.
    fn left(&self, step: &str) -> Result<Duration, AttemptError> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(AttemptError::Timeout(format!(
                "{step} did not finish within {}",
                format_duration(self.budget)
            )))
        } else {
            Ok(left)
        }
    }
}

/// What became of one environment in a run, by the last of its steps that
/// ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EnvResult {
    Stopped,
    StopFailed,
    Started,
    StartFailed,
    NotStarted,
}

/// Runs the runbooks of one node. What the node holds is not kept here:
/// the caller (the worker, with [`crate::node::converge::Converger`]) says
/// what to stop and start, and gets back what was verified.
pub struct Runner<V: VipControl> {
    config: Config,
    vip: V,
    progress: ProgressHandle,
    /// What may be acquired now: a step acquiring what this no longer
    /// allows is killed (its process group), as the fence requires.
    allowance: Option<watch::Receiver<Allowance>>,
    /// This program, run as `fs-probe` to look at paths that may sit on a
    /// dead NFS mount ([`super::fs_probe`]).
    probe_exe: Option<PathBuf>,
    /// The environments the operator holds (`env hold`): never started.
    held: BTreeSet<String>,
    /// Set by a promote's `link nfs stable restart` step, before it links:
    /// nfsd's records were on the storage, present and not empty
    /// ([`stable_restart::records_present`]); reported as
    /// `JobReport::reclaimable` when the promote succeeds.
    stable_records: std::sync::atomic::AtomicBool,
}

/// What one run is doing, threaded through the steps.
struct Run<'a> {
    kind: Kind,
    started: Instant,
    generation: u64,
    cancel: &'a mut watch::Receiver<u64>,
    undo: Vec<Step>,
    skipped: Vec<String>,
    /// Steps finished (done, skipped or failed and continued).
    done: usize,
    /// Per environment, by its steps' outcomes.
    environments: BTreeMap<String, EnvResult>,
}

impl<'a> Run<'a> {
    /// A run of `kind` starting now, cancelled when `cancel` moves on.
    fn new(kind: Kind, cancel: &'a mut watch::Receiver<u64>) -> Self {
        let generation = *cancel.borrow_and_update();
        Run {
            kind,
            started: Instant::now(),
            generation,
            cancel,
            undo: Vec::new(),
            skipped: Vec::new(),
            done: 0,
            environments: BTreeMap::new(),
        }
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow() != self.generation
    }

    fn record(&mut self, step: &Step, ok: bool) {
        let Some(name) = &step.environment else {
            return;
        };
        let result = match (step.phase, ok) {
            (EnvPhase::Stop, true) => EnvResult::Stopped,
            (EnvPhase::Stop, false) => EnvResult::StopFailed,
            (EnvPhase::Prepare, true) => return,
            (EnvPhase::Prepare, false) => EnvResult::NotStarted,
            (EnvPhase::Start, true) => EnvResult::Started,
            (EnvPhase::Start, false) => EnvResult::StartFailed,
            (EnvPhase::None, _) => return,
        };
        self.environments.insert(name.clone(), result);
    }

    fn report(&self, outcome: JobOutcome) -> JobReport {
        let mut report = JobReport::only(outcome);
        for (name, result) in &self.environments {
            let list = match result {
                EnvResult::Stopped => &mut report.stopped,
                EnvResult::StopFailed => &mut report.stop_failed,
                EnvResult::Started => &mut report.started,
                EnvResult::StartFailed => &mut report.start_failed,
                EnvResult::NotStarted => &mut report.not_started,
            };
            list.push(name.clone());
        }
        report
    }
}

impl<V: VipControl> Runner<V> {
    /// A runner for `config` that moves the VIPs through `vip`, with no
    /// fence and the running executable as the `fs-probe` program.
    pub fn new(config: Config, vip: V) -> Self {
        Runner {
            config,
            vip,
            progress: ProgressHandle::default(),
            allowance: None,
            probe_exe: std::env::current_exe().ok(),
            held: BTreeSet::new(),
            stable_records: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Run `exe` (this program's binary) for the file-system probes; by
    /// default the running executable. Tests, whose executable is the test
    /// harness, point it at the built `rcbsd-failover`.
    pub fn with_probe_exe(mut self, exe: PathBuf) -> Self {
        self.probe_exe = Some(exe);
        self
    }

    /// Kill acquiring steps when `allowance` no longer allows what they
    /// acquire (the agent's fence).
    pub fn with_fence(mut self, allowance: watch::Receiver<Allowance>) -> Self {
        self.allowance = Some(allowance);
        self
    }

    /// A handle `status` can read while a run is in progress.
    pub fn progress(&self) -> ProgressHandle {
        self.progress.clone()
    }

    /// A reloaded configuration applies from the next run.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// The environments the operator holds: from the next run on, no
    /// runbook starts them (each is logged as `held_not_started`). Stops
    /// still happen: a failover must stop what runs on the old mounts.
    pub fn set_held(&mut self, held: BTreeSet<String>) {
        self.held = held;
    }

    /// Whether the operator holds `name`.
    pub fn is_held(&self, name: &str) -> bool {
        self.held.contains(name)
    }

    /// The configuration the next run uses.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// [`Verify::VipsPresent`] for the IPv6 VIPs, on their interface.
    fn ipv6_vips_present(&self) -> Result<(), AttemptError> {
        let Some((interface, vips)) = self.config.virtual_ips6() else {
            return Ok(());
        };
        let found = crate::net::iface::ipv6_addresses(interface)
            .map_err(|e| AttemptError::Failed(e.to_string()))?;
        match vips
            .iter()
            .find(|v| !found.iter().any(|(a, _)| *a == v.address))
        {
            Some(missing) => Err(AttemptError::Failed(format!(
                "{missing} is not on {interface}"
            ))),
            None => Ok(()),
        }
    }

    /// One gratuitous-ARP burst outside a runbook: the second burst after
    /// `garp_master_delay` and the answer to a second master; then the
    /// Neighbor Advertisement burst of the IPv6 VIPs, the same policy
    /// (RFC 5798 §6.4.2). The IPv6 burst is sent even when the ARP one
    /// failed; the first error is returned.
    pub async fn announce(&self, why: &'static str) -> Result<(), VipError> {
        let arp = self.vip.announce(why).await;
        let na = self.vip.announce6(why).await;
        arp.and(na)
    }

    /// Runs one runbook without a worker's bookkeeping: nothing is known
    /// to run but the configured `[environments]` (for tests and `plan`).
    pub async fn run(
        &mut self,
        kind: Kind,
        ctx: &Context,
        cancel: watch::Receiver<u64>,
    ) -> Outcome {
        let job_kind = match kind {
            Kind::Promote => JobKind::Promote,
            Kind::Demote => JobKind::Demote,
            Kind::Follow => JobKind::Follow {
                master: job_master(ctx.vip),
                rejoin: ctx.rejoin,
            },
            Kind::Place => JobKind::Place,
            Kind::Quiesce => JobKind::Quiesce,
            Kind::RideThrough => JobKind::RideThrough {
                master: job_master(ctx.vip),
                within: self.config.follow.ride_through_timeout,
            },
            Kind::Repair => {
                return Outcome::Failed {
                    step: "repair".to_owned(),
                    error: "a repair runs one check's steps (Runner::repair)".to_owned(),
                }
            }
        };
        let job = Job {
            kind: job_kind,
            stop: Vec::new(),
            start: Vec::new(),
        };
        let report = self.execute(&job, ctx, &[], cancel).await;
        let skipped = report
            .not_started
            .iter()
            .chain(&report.start_failed)
            .cloned()
            .collect();
        match report.outcome {
            JobOutcome::Succeeded => Outcome::Succeeded { skipped },
            JobOutcome::Failed { step, error, .. } => Outcome::Failed { step, error },
            JobOutcome::Cancelled { at_step } => Outcome::Cancelled { at_step },
        }
    }

    /// Runs one job: its runbook, with the environments it names stopped
    /// first (each verified) and started last. `takeover`: nodes whose
    /// CBSD lock may be taken over (not live). A cancellation (a newer
    /// decision) stops it at its next safe point.
    pub async fn execute(
        &mut self,
        job: &Job,
        ctx: &Context,
        takeover: &[String],
        mut cancel: watch::Receiver<u64>,
    ) -> JobReport {
        let kind = match job.kind {
            JobKind::Promote => Kind::Promote,
            JobKind::Demote => Kind::Demote,
            JobKind::Follow { .. } => Kind::Follow,
            JobKind::Place => Kind::Place,
            JobKind::Quiesce => Kind::Quiesce,
            JobKind::RideThrough { .. } => Kind::RideThrough,
        };
        let mut run = Run::new(kind, &mut cancel);
        self.stable_records
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // Without placement the role runbooks also stop and start the
        // node's own `[environments]` (globs resolved now).
        let own = self.config.cluster.is_none() && job.kind != JobKind::Place;
        let configured = if own {
            self.assigned_environments().await
        } else {
            Vec::new()
        };
        let mut stop: Vec<Env> = job.stop.iter().map(|n| self.env(n)).collect();
        for env in &configured {
            if !stop.contains(env) {
                stop.push(env.clone());
            }
        }
        let placed_starts: Vec<Env> = job.start.iter().map(|n| self.env(n)).collect();
        let steps = match job.kind {
            JobKind::Promote => promote::build(&self.config, &stop),
            JobKind::Demote => demote::build(&self.config, &stop),
            JobKind::Follow { master, rejoin } => {
                let ctx = Context {
                    vip: ctx.vip,
                    rejoin,
                };
                let _ = master;
                follow::build(&self.config, &ctx, &stop)
            }
            JobKind::Place => stop
                .iter()
                .flat_map(|env| cbsd::stop(&self.config, env))
                .collect(),
            JobKind::Quiesce => follow::quiesce(&self.config, &stop),
            // Each probe a child killed at the deadline (`fs_probe`).
            JobKind::RideThrough { within, .. } => ride_through::build(&self.config, within),
        };
        events::runbook_started(kind.as_str(), &self.config.node.name, steps.len());
        let mut result = self.execute_steps(&mut run, &steps, 0).await;
        if result.is_ok() && self.config.cbsd.is_some() {
            // Globs are expanded against the shared dirs as now mounted.
            let start = match job.kind {
                JobKind::Place => placed_starts,
                JobKind::Promote | JobKind::Follow { .. } if own => {
                    self.assigned_environments().await
                }
                _ => Vec::new(),
            };
            let (held, start): (Vec<Env>, Vec<Env>) = start
                .into_iter()
                .partition(|env| self.held.contains(&env.name));
            for env in &held {
                events::held_not_started(&env.name, kind.as_str());
            }
            let starts = promote::start_environments_taking_over(&self.config, &start, takeover);
            result = self.execute_steps(&mut run, &starts, steps.len()).await;
        }
        self.progress.update(|p| *p = None);
        let outcome = self.finish(kind, &mut run, result).await;
        let succeeded = outcome == JobOutcome::Succeeded;
        let mut report = run.report(outcome);
        // What the followers' ride-through needs to know of this master
        // (heartbeat `reclaimable`): its nfsd started with the records.
        report.reclaimable = kind == Kind::Promote
            && succeeded
            && self
                .stable_records
                .load(std::sync::atomic::Ordering::Relaxed);
        report
    }

    /// One health check's run: only the probe of `step` (an `Ensure`'s
    /// probe, a `Run`'s command, or a [`Verify`]), under its timeout; what
    /// it would do is not done. `Err` says what is wrong.
    pub async fn verify(&self, step: &Step) -> Result<(), String> {
        let deadline = Deadline::after(step.timeout);
        let within = Within {
            deadline: &deadline,
            step: &step.name,
            abort: None,
        };
        let mut ran = Vec::new();
        let result = match &step.action {
            Action::Ensure(ensure) => self.checked(&ensure.probe, &within, &mut ran).await,
            Action::Run(checked) => self.checked(checked, &within, &mut ran).await,
            Action::Builtin(Builtin::Verify(verify)) => {
                self.verify_builtin(verify, &within, &mut ran).await
            }
            Action::Builtin(_) => Err(AttemptError::Failed(format!(
                "{} is not a check",
                step.name
            ))),
        };
        result.map_err(|e| e.message().to_owned())
    }

    /// A repair: `steps` (a runbook's own, see [`super::health`]) run as
    /// the `repair` runbook, each with its retries, stopping at the first
    /// that fails. A newer decision (`cancel`) stops it at a safe point.
    pub async fn repair(
        &mut self,
        steps: &[Step],
        mut cancel: watch::Receiver<u64>,
    ) -> Result<(), String> {
        let mut run = Run::new(Kind::Repair, &mut cancel);
        let result = self.execute_steps(&mut run, steps, 0).await;
        self.progress.update(|p| *p = None);
        match result {
            Ok(()) if run.skipped.is_empty() => Ok(()),
            Ok(()) => Err(format!("skipped {}", run.skipped.join(", "))),
            Err(Stop::Failed { step, error, .. }) => Err(format!("{step}: {error}")),
            Err(Stop::Cancelled { at_step }) => Err(format!("cancelled at {at_step}")),
        }
    }

    /// Looks at what this node holds of the master resources (see
    /// [`super::probe`]): the checks that answered "held", and those that
    /// could not answer (counted as held by the caller).
    pub async fn probe_master(&self) -> MasterProbe {
        let checks = probe::master_checks(&self.config);
        // Every distinct command once, all at the same time: the start is
        // waiting for this (and a watchdog left armed may be counting).
        let mut commands: Vec<Command> = Vec::new();
        for check in &checks {
            if let probe::Source::Command { command, .. } = &check.source {
                if !commands.contains(command) {
                    commands.push(command.clone());
                }
            }
        }
        let mut set = tokio::task::JoinSet::new();
        for (i, command) in commands.iter().enumerate() {
            let command = command.clone();
            set.spawn(async move { (i, command::run(&command, PROBE_TIMEOUT, None).await) });
        }
        let mut ran: Vec<Option<Ran>> = commands.iter().map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            if let Ok((i, Ok(result))) = joined {
                if let Some(slot) = ran.get_mut(i) {
                    *slot = Some(result);
                }
            }
        }
        let mut found = MasterProbe::default();
        for check in &checks {
            let answer = match &check.source {
                probe::Source::Command { command, held } => commands
                    .iter()
                    .position(|c| c == command)
                    .and_then(|i| ran.get(i))
                    .and_then(Option::as_ref)
                    .and_then(|r| held.read(r.exit, &r.stdout, &r.stderr)),
                probe::Source::ExportsBlock { file } => {
                    let file = file.clone();
                    let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(&file));
                    match tokio::time::timeout(PROBE_TIMEOUT, read).await {
                        Ok(Ok(Ok(text))) => exports::block(&text).map(|b| !b.is_empty()),
                        Ok(Ok(Err(e))) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
                        _ => None,
                    }
                }
            };
            match answer {
                Some(true) => found.held.push(check.what.clone()),
                Some(false) => {}
                None => found.unknown.push(check.what.clone()),
            }
        }
        found
    }

    /// The environment named `name`, of the kind its `[[environment]]` or
    /// `[environments]` pattern gives (a jail when unknown).
    fn env(&self, name: &str) -> Env {
        let kind = self
            .config
            .placement
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.kind)
            .or_else(|| {
                self.config
                    .environments
                    .patterns
                    .iter()
                    .find(|p| p.matches(name))
                    .map(|p| p.kind)
            })
            .unwrap_or(EnvKind::Jail);
        Env {
            name: name.to_owned(),
            kind,
        }
    }

    /// Logs the end of a run and turns its result into an outcome; a
    /// failed promote is undone first.
    async fn finish(&self, kind: Kind, run: &mut Run<'_>, result: Result<(), Stop>) -> JobOutcome {
        let duration_ms = millis(run.started.elapsed());
        match result {
            Ok(()) => {
                events::runbook_finished(kind.as_str(), duration_ms, &run.skipped.join(","));
                JobOutcome::Succeeded
            }
            Err(Stop::Cancelled { at_step }) => {
                events::runbook_cancelled(kind.as_str(), &at_step, duration_ms);
                JobOutcome::Cancelled { at_step }
            }
            Err(Stop::Failed {
                step,
                error,
                timed_out,
            }) => {
                let undone = if kind == Kind::Promote {
                    self.undo(run).await
                } else {
                    0
                };
                events::runbook_failed(
                    kind.as_str(),
                    &step,
                    &error,
                    millis(run.started.elapsed()),
                    undone,
                );
                JobOutcome::Failed {
                    step,
                    error,
                    timed_out,
                }
            }
        }
    }

    async fn execute_steps(
        &self,
        run: &mut Run<'_>,
        steps: &[Step],
        offset: usize,
    ) -> Result<(), Stop> {
        for (index, step) in steps.iter().enumerate() {
            if run.cancelled() {
                return Err(Stop::Cancelled {
                    at_step: step.name.clone(),
                });
            }
            if let Some(env) = &step.environment {
                let stopped = run.environments.get(env) == Some(&EnvResult::Stopped);
                let closed = match step.gate {
                    Gate::Always => false,
                    Gate::NotStopped => stopped,
                    Gate::Stopped => !stopped,
                };
                if run.skipped.contains(env) || closed {
                    events::runbook_step(run.kind.as_str(), &step.name, "", 0, "skipped", 0, "");
                    continue;
                }
            }
            let now = Instant::now();
            let total = offset + steps.len();
            self.progress.update(|p| {
                *p = Some(Current {
                    runbook: run.kind,
                    started: run.started,
                    step: step.name.clone(),
                    step_number: offset + index + 1,
                    steps: total,
                    step_started: now,
                });
            });
            match self.run_step(run, step).await {
                Ok(acted) => {
                    run.record(step, true);
                    if acted {
                        if let Some(undo) = &step.undo {
                            run.undo.push((**undo).clone());
                        }
                    }
                }
                Err(Stop::Cancelled { at_step }) => {
                    // Killed half way: nothing about it is verified.
                    run.record(step, false);
                    return Err(Stop::Cancelled { at_step });
                }
                Err(Stop::Failed {
                    step: name,
                    error,
                    timed_out,
                }) => {
                    run.record(step, false);
                    match step.on_failure {
                        OnFailure::Abort => {
                            return Err(Stop::Failed {
                                step: name,
                                error,
                                timed_out,
                            })
                        }
                        OnFailure::Continue => {}
                        OnFailure::SkipEnvironment => {
                            if let Some(env) = &step.environment {
                                run.skipped.push(env.clone());
                            }
                        }
                    }
                }
            }
            run.done += 1;
        }
        Ok(())
    }

    /// One step with its retries; `Ok(acted)`.
    async fn run_step(&self, run: &mut Run<'_>, step: &Step) -> Result<bool, Stop> {
        let attempts = step.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let mut ran: Vec<String> = Vec::new();
            let result = self.attempt(step, &mut ran).await;
            let duration_ms = millis(started.elapsed());
            let argv = ran.join(" ; ");
            let kind = run.kind.as_str();
            match result {
                Ok(acted) => {
                    let outcome = if acted { "ok" } else { "already" };
                    events::runbook_step(
                        kind,
                        &step.name,
                        &argv,
                        duration_ms,
                        outcome,
                        attempt,
                        "",
                    );
                    return Ok(acted);
                }
                Err(error) => {
                    events::runbook_step(
                        kind,
                        &step.name,
                        &argv,
                        duration_ms,
                        error.outcome(),
                        attempt,
                        error.message(),
                    );
                    if let AttemptError::Aborted(why) = &error {
                        events::step_killed(kind, &step.name, why);
                        return Err(Stop::Cancelled {
                            at_step: step.name.clone(),
                        });
                    }
                    if attempt >= attempts {
                        return Err(Stop::Failed {
                            step: step.name.clone(),
                            error: error.message().to_owned(),
                            timed_out: matches!(error, AttemptError::Timeout(_)),
                        });
                    }
                }
            }
            // Backoff: a safe point, so a newer transition may stop us here.
            let delay = step.retry.delay_after(attempt);
            let generation = run.generation;
            let wait = async {
                loop {
                    if run.cancel.changed().await.is_err() {
                        // The sender is gone: nobody can cancel any more.
                        std::future::pending::<()>().await;
                    }
                    if *run.cancel.borrow() != generation {
                        return;
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = wait => {
                    return Err(Stop::Cancelled { at_step: step.name.clone() });
                }
            }
            attempt += 1;
        }
    }

    /// What kills `step` while it runs: the fence taking away what it
    /// acquires.
    fn abort_for(&self, step: &Step) -> Option<Abort> {
        Some(Abort {
            allowance: self.allowance.clone()?,
            resource: step.acquires.clone()?,
        })
    }

    /// One attempt; `Ok(acted)`: false when the probe found the work done.
    /// Every command of the attempt runs within the step's timeout.
    async fn attempt(&self, step: &Step, ran: &mut Vec<String>) -> Result<bool, AttemptError> {
        let abort = self.abort_for(step);
        let abort = abort.as_ref();
        let deadline = Deadline::after(step.timeout);
        let within = Within {
            deadline: &deadline,
            step: &step.name,
            abort,
        };
        match &step.action {
            Action::Run(checked) => {
                self.checked(checked, &within, ran).await?;
                Ok(true)
            }
            Action::Ensure(ensure) => {
                if self.checked(&ensure.probe, &within, ran).await.is_ok() {
                    if let Some(extra) = &ensure.when_satisfied {
                        self.checked(extra, &within, ran).await?;
                    }
                    return Ok(false);
                }
                let mut last = AttemptError::Failed("nothing to try".to_owned());
                for act in &ensure.acts {
                    // The act's own status is only a hint; the probe decides.
                    let act_result = self.command(act, &within, ran).await;
                    if let Err(AttemptError::Aborted(m)) = act_result {
                        return Err(AttemptError::Aborted(m));
                    }
                    match self.checked(&ensure.probe, &within, ran).await {
                        Ok(()) => return Ok(true),
                        Err(AttemptError::Aborted(m)) => return Err(AttemptError::Aborted(m)),
                        Err(probe_error) => {
                            last = match act_result {
                                Err(AttemptError::Timeout(m)) => AttemptError::Timeout(m),
                                Err(AttemptError::Aborted(m)) => AttemptError::Aborted(m),
                                Err(AttemptError::Failed(m)) => AttemptError::Failed(format!(
                                    "{m}; then {}",
                                    probe_error.message()
                                )),
                                Ok(r) => AttemptError::Failed(format!(
                                    "{} exited with {} but {}{}",
                                    act.display(),
                                    r.exit.map_or_else(|| "a signal".into(), |c| c.to_string()),
                                    probe_error.message(),
                                    stderr_suffix(&r.stderr)
                                )),
                            };
                            // Out of time: the next act would not get any.
                            if matches!(last, AttemptError::Timeout(_)) {
                                break;
                            }
                        }
                    }
                }
                Err(last)
            }
            Action::Builtin(Builtin::ClearStaleRegistrations(clear)) => {
                self.clear_stale_registrations(clear, &within, ran).await
            }
            Action::Builtin(Builtin::DismountDead(dead)) => {
                self.dismount_dead(dead, &within, ran).await
            }
            Action::Builtin(Builtin::VerifyDirId { path, expected }) => {
                let probe = FsProbe::DirId {
                    path: path.clone(),
                    expected: expected.clone(),
                };
                self.fs_probe(&probe, &within, ran).await.map(|_| true)
            }
            Action::Builtin(Builtin::CheckLock {
                path,
                nodename_file,
                node,
                takeover,
            }) => {
                // The lock sits on NFS: read by a child under the deadline.
                let probe = FsProbe::Lock {
                    lock: path.clone(),
                    nodename: nodename_file.clone(),
                };
                let answer = self.fs_probe(&probe, &within, ran).await?;
                let seen: LockSeen = serde_json::from_str(answer.trim()).map_err(|e| {
                    AttemptError::Failed(format!(
                        "fs-probe lock {}: unreadable answer: {e}",
                        path.display()
                    ))
                })?;
                match cbsd::judge_lock(&seen, path, node, takeover) {
                    Ok(cbsd::LockVerdict::Stale { holder, minutes }) => {
                        events::cbsd_lock_stale(
                            step.environment.as_deref().unwrap_or_default(),
                            &path.to_string_lossy(),
                            &holder,
                            minutes,
                        );
                        Ok(true)
                    }
                    Ok(cbsd::LockVerdict::TakenOver { holder }) => {
                        // jstart refuses a fresh foreign lock: the node
                        // that wrote it is not live (its lease ran out, it
                        // has fenced), so the lock goes, as CBSD's own
                        // message says to do by hand.
                        let unlock = FsProbe::Unlock {
                            lock: path.clone(),
                            holder: holder.clone(),
                        };
                        self.fs_probe(&unlock, &within, ran).await?;
                        events::cbsd_lock_taken_over(
                            step.environment.as_deref().unwrap_or_default(),
                            &path.to_string_lossy(),
                            &holder,
                        );
                        Ok(true)
                    }
                    Ok(cbsd::LockVerdict::Free) => Ok(true),
                    Err(why) => Err(AttemptError::Failed(why.to_string())),
                }
            }
            Action::Builtin(Builtin::Verify(verify)) => self
                .verify_builtin(verify, &within, ran)
                .await
                .map(|()| false),
            Action::Builtin(Builtin::WriteProbe { path }) => {
                let probe = FsProbe::Write { path: path.clone() };
                self.fs_probe(&probe, &within, ran).await.map(|_| true)
            }
            Action::Builtin(
                builtin
                @ (Builtin::LinkStableRestart(links) | Builtin::RestoreStableRestart(links)),
            ) => {
                // Local files (/var/db and the storage this node mounted):
                // done in place, off the runtime; `Ok(false)` when the
                // probe found the work done (no undo then).
                let (links, linking) = (
                    links.clone(),
                    matches!(builtin, Builtin::LinkStableRestart(_)),
                );
                let work = tokio::time::timeout(
                    step.timeout,
                    tokio::task::spawn_blocking(move || {
                        if linking {
                            // Before nfsd starts (and writes its boot
                            // record): the records it will read.
                            let present = stable_restart::records_present(&links);
                            stable_restart::link(&links).map(|acted| (acted, present))
                        } else {
                            stable_restart::restore(&links).map(|acted| (acted, false))
                        }
                    }),
                );
                let result = tokio::select! {
                    result = work => result,
                    why = aborted(abort) => return Err(AttemptError::Aborted(format!("{}: {why}", step.name))),
                };
                match result {
                    Ok(Ok(Ok((acted, present)))) => {
                        if linking {
                            self.stable_records
                                .store(present, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(acted)
                    }
                    Ok(Ok(Err(why))) => Err(AttemptError::Failed(why)),
                    Ok(Err(join)) => Err(AttemptError::Failed(join.to_string())),
                    Err(_) => Err(AttemptError::Timeout(format!(
                        "{} did not finish within {}",
                        step.name,
                        format_duration(step.timeout)
                    ))),
                }
            }
            Action::Builtin(builtin) => {
                let work = tokio::time::timeout(step.timeout, self.builtin(builtin));
                let result = tokio::select! {
                    result = work => result,
                    why = aborted(abort) => return Err(AttemptError::Aborted(format!("{}: {why}", step.name))),
                };
                match result {
                    Ok(Ok(())) => Ok(true),
                    Ok(Err(error)) => Err(AttemptError::Failed(error.to_string())),
                    Err(_) => Err(AttemptError::Timeout(format!(
                        "{} did not finish within {}",
                        step.name,
                        format_duration(step.timeout)
                    ))),
                }
            }
        }
    }

    /// A health check's own look: `Ok` when what it looks for is so.
    async fn verify_builtin(
        &self,
        verify: &Verify,
        within: &Within<'_>,
        ran: &mut Vec<String>,
    ) -> Result<(), AttemptError> {
        let left = within.deadline.left(within.step)?;
        let local = |work: Box<dyn FnOnce() -> Result<(), String> + Send>| async move {
            match tokio::time::timeout(left, tokio::task::spawn_blocking(work)).await {
                Ok(Ok(result)) => result.map_err(AttemptError::Failed),
                Ok(Err(join)) => Err(AttemptError::Failed(join.to_string())),
                Err(_) => Err(AttemptError::Timeout(format!(
                    "{} did not finish within {}",
                    within.step,
                    format_duration(left)
                ))),
            }
        };
        match verify {
            Verify::All(checks) => {
                for check in checks {
                    self.checked(check, within, ran).await?;
                }
                Ok(())
            }
            Verify::MountAnswers { dir } => {
                let probe = FsProbe::List { dir: dir.clone() };
                self.fs_probe(&probe, within, ran).await.map(|_| ())
            }
            // The next two ask the kernel (getifaddrs(3), an ioctl), which
            // answers at once: run in place, not handed to the blocking pool
            // (a thread hand-off both ways, every interval, for nothing).
            Verify::VipsPresent => {
                let interface = &self.config.vrrp.interface;
                let found = crate::net::iface::ipv4_addresses(interface)
                    .map_err(|e| AttemptError::Failed(e.to_string()))?;
                match self
                    .config
                    .vrrp
                    .virtual_ips
                    .iter()
                    .find(|v| !found.iter().any(|(a, _)| *a == v.address))
                {
                    Some(missing) => Err(AttemptError::Failed(format!(
                        "{missing} is not on {interface}"
                    ))),
                    None => self.ipv6_vips_present(),
                }
            }
            Verify::Carrier { interface } => match crate::net::iface::is_up(interface) {
                Ok(true) => Ok(()),
                Ok(false) => Err(AttemptError::Failed(format!("{interface} has no carrier"))),
                Err(e) => Err(AttemptError::Failed(e.to_string())),
            },
            Verify::ExportsBlock {
                file,
                dirs,
                clients,
            } => {
                let (file, dirs, clients) = (file.clone(), dirs.clone(), clients.clone());
                local(Box::new(move || {
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                    let wanted = exports::render(&exports::group_by_filesystem(&dirs), &clients);
                    match exports::block(&text) {
                        Some(block) if block == wanted => Ok(()),
                        Some(_) => Err(format!(
                            "the agent's block of {} differs from what it writes",
                            file.display()
                        )),
                        None => Err(format!("{} has no agent block", file.display())),
                    }
                }))
                .await
            }
        }
    }

    /// PROMOTE 3 / FOLLOW 1 first ([`DeadMounts`]): asks the server of each
    /// mounted shared dir for its statistics, all at once; those that give
    /// no answer in time are force-dismounted (in a promote, every mounted
    /// one, unasked). `Ok(acted)`.
    async fn dismount_dead(
        &self,
        dead: &DeadMounts,
        within: &Within<'_>,
        ran: &mut Vec<String>,
    ) -> Result<bool, AttemptError> {
        let listing = Checked {
            command: dead.listing.clone(),
            expect: Expect::Success,
        };
        let listed = self.command(&listing.command, within, ran).await?;
        listing
            .expect
            .check(listed.exit, &listed.stdout)
            .map_err(|why| AttemptError::Failed(format!("{}: {why}", listing.command.display())))?;
        let mounted = dead.mounted(&listed.stdout);
        if !dead.ask {
            for mountpoint in &mounted {
                events::nfs_server_gone(&mountpoint.to_string_lossy(), 0);
            }
            return self.dismount(dead, &mounted, within, ran).await;
        }
        let limit = dead.answer_within.min(within.deadline.left(within.step)?);
        let mut asked = tokio::task::JoinSet::new();
        for (index, mountpoint) in mounted.iter().enumerate() {
            let statfs = dead.statfs(mountpoint);
            ran.push(statfs.display());
            asked.spawn(async move { (index, command::run(&statfs, limit, None).await) });
        }
        let mut gone = Vec::new();
        while let Some(joined) = asked.join_next().await {
            // Only silence means gone: an error answer (a stale handle
            // from a new server) is an answer, and the unmount handles it.
            if let Ok((index, Err(CommandError::TimedOut { .. }))) = joined {
                if let Some(mountpoint) = mounted.get(index) {
                    gone.push(mountpoint.clone());
                }
            }
        }
        gone.sort();
        for mountpoint in &gone {
            events::nfs_server_gone(&mountpoint.to_string_lossy(), millis(limit));
        }
        self.dismount(dead, &gone, within, ran).await
    }

    /// `umount -N` of each of `gone`; `Ok(acted)`.
    async fn dismount(
        &self,
        dead: &DeadMounts,
        gone: &[PathBuf],
        within: &Within<'_>,
        ran: &mut Vec<String>,
    ) -> Result<bool, AttemptError> {
        let mut failures = Vec::new();
        for mountpoint in gone {
            let dismount = dead.dismount(mountpoint);
            match self.command(&dismount, within, ran).await {
                Ok(r) if r.exit == Some(0) => {}
                Ok(r) => failures.push(format!(
                    "{}: exited with {}{}",
                    dismount.display(),
                    r.exit
                        .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}")),
                    stderr_suffix(&r.stderr)
                )),
                Err(e) => failures.push(e.message().to_owned()),
            }
        }
        if failures.is_empty() {
            Ok(!gone.is_empty())
        } else {
            Err(AttemptError::Failed(failures.join("; ")))
        }
    }

    /// Runs `probe` in a child process ([`super::fs_probe`]): its answer,
    /// or why the check failed.
    async fn fs_probe(
        &self,
        probe: &FsProbe,
        within: &Within<'_>,
        ran: &mut Vec<String>,
    ) -> Result<String, AttemptError> {
        let Some(exe) = &self.probe_exe else {
            return Err(AttemptError::Failed(
                "cannot find this program's executable to run its file-system probe".to_owned(),
            ));
        };
        let command = probe.command(exe);
        let result = self.command(&command, within, ran).await?;
        match result.exit {
            Some(0) => Ok(result.stdout),
            _ => {
                let why = result.stderr.trim();
                Err(AttemptError::Failed(if why.is_empty() {
                    format!(
                        "{}: exited with {}",
                        command.display(),
                        result
                            .exit
                            .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"))
                    )
                } else {
                    why.to_owned()
                }))
            }
        }
    }

    /// FOLLOW step 2: lists what CBSD has registered here, then
    /// junregisters, one at a time, each name this node does not own;
    /// `Ok(acted)`. A failed listing leaves every registration as it is
    /// (the whole picture is unknown); a failed junregister does not stop
    /// the others. All of it runs within the step's timeout.
    async fn clear_stale_registrations(
        &self,
        clear: &StaleRegistrations,
        within: &Within<'_>,
        ran: &mut Vec<String>,
    ) -> Result<bool, AttemptError> {
        let skipped = "stale registrations left as they are";
        let mut listed = String::new();
        for listing in &clear.listings {
            let result = match self.command(listing, within, ran).await {
                Ok(result) => result,
                Err(AttemptError::Timeout(m)) => {
                    return Err(AttemptError::Timeout(format!("{m}; {skipped}")))
                }
                Err(AttemptError::Failed(m) | AttemptError::Aborted(m)) => {
                    return Err(AttemptError::Failed(format!("{m}; {skipped}")))
                }
            };
            if let Err(why) = Expect::Success.check(result.exit, &result.stdout) {
                return Err(AttemptError::Failed(format!(
                    "{}: {why}{}; {skipped}",
                    listing.display(),
                    stderr_suffix(&result.stderr)
                )));
            }
            listed.push_str(&result.stdout);
            listed.push('\n');
        }
        let stale = clear.stale(&listed);
        let mut failures = Vec::new();
        for name in &stale {
            let command = clear.unregister(name);
            let failure = match self.command(&command, within, ran).await {
                Ok(result) => Expect::Success
                    .check(result.exit, &result.stdout)
                    .err()
                    .map(|why| format!("{why}{}", stderr_suffix(&result.stderr))),
                Err(error) => Some(error.message().to_owned()),
            };
            if let Some(why) = failure {
                failures.push(format!("{}: {why}", command.display()));
            }
        }
        if failures.is_empty() {
            Ok(!stale.is_empty())
        } else {
            Err(AttemptError::Failed(format!(
                "{} of {} stale registrations not cleared (junregister refuses a running environment): {}",
                failures.len(),
                stale.len(),
                failures.join("; ")
            )))
        }
    }

    /// Runs a command and checks its outcome.
    async fn checked(
        &self,
        checked: &Checked,
        within: &Within<'_>,
        ran: &mut Vec<String>,
    ) -> Result<(), AttemptError> {
        let result = self.command(&checked.command, within, ran).await?;
        checked
            .expect
            .check(result.exit, &result.stdout)
            .map_err(|why| {
                AttemptError::Failed(format!(
                    "{}: {why}{}",
                    checked.command.display(),
                    stderr_suffix(&result.stderr)
                ))
            })
    }

    /// Runs a command with what is left of the attempt's time.
    async fn command(
        &self,
        command: &Command,
        within: &Within<'_>,
        ran: &mut Vec<String>,
    ) -> Result<Ran, AttemptError> {
        let left = within.deadline.left(within.step)?;
        ran.push(command.display());
        command::run(command, left, within.abort)
            .await
            .map_err(|e| AttemptError::of_command(e, within.deadline))
    }

    async fn builtin(&self, builtin: &Builtin) -> Result<(), BuiltinError> {
        match builtin {
            Builtin::AddVip => Ok(self.vip.add().await?),
            Builtin::DropVip => Ok(self.vip.remove().await?),
            Builtin::ArpBurst => Ok(self.vip.announce("became_master").await?),
            Builtin::NaBurst => Ok(self.vip.announce6("became_master").await?),
            Builtin::WriteExports {
                file,
                dirs,
                clients,
            } => {
                let (file, dirs, clients) = (file.clone(), dirs.clone(), clients.clone());
                blocking(move || {
                    let groups = exports::group_by_filesystem(&dirs);
                    exports::write_block(&file, &exports::render(&groups, &clients))
                })
                .await
            }
            Builtin::ClearExports { file } => {
                let file = file.clone();
                blocking(move || exports::write_block(&file, &[])).await
            }
            Builtin::WaitForPath { path } => {
                // The caller's timeout bounds the wait; each look is a
                // blocking stat off the runtime.
                loop {
                    let look = path.clone();
                    let exists = tokio::task::spawn_blocking(move || look.exists())
                        .await
                        .unwrap_or(false);
                    if exists {
                        return Ok(());
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            // Run their commands through `attempt`, which logs them.
            Builtin::CheckLock { .. }
            | Builtin::ClearStaleRegistrations(_)
            | Builtin::DismountDead(_)
            | Builtin::VerifyDirId { .. }
            | Builtin::WriteProbe { .. }
            | Builtin::LinkStableRestart(_)
            | Builtin::RestoreStableRestart(_)
            | Builtin::Verify(_) => Err(BuiltinError::NotABuiltin),
        }
    }

    /// Reverses the done steps of a failed promote, newest first. Every
    /// undo is tried; none is cancelled.
    async fn undo(&self, run: &mut Run<'_>) -> usize {
        let mut undone = 0;
        while let Some(step) = run.undo.pop() {
            let started = Instant::now();
            let mut ran = Vec::new();
            let result = self.attempt(&step, &mut ran).await;
            let (outcome, error) = match &result {
                Ok(_) => ("undone", String::new()),
                Err(e) => ("undo_failed", e.message().to_owned()),
            };
            events::runbook_step(
                run.kind.as_str(),
                &step.name,
                &ran.join(" ; "),
                millis(started.elapsed()),
                outcome,
                1,
                &error,
            );
            undone += 1;
        }
        undone
    }

    /// The configured `[environments]`, globs expanded against
    /// `jails-system/` (a listing bounded in time: it may sit on a dead
    /// mount).
    async fn assigned_environments(&self) -> Vec<Env> {
        let available = match &self.config.cbsd {
            Some(cbsd) => {
                let listing = FsProbe::List {
                    dir: cbsd.workdir.join("jails-system"),
                };
                let deadline = Deadline::after(LIST_TIMEOUT);
                let within = Within {
                    deadline: &deadline,
                    step: "list jails-system",
                    abort: None,
                };
                match self.fs_probe(&listing, &within, &mut Vec::new()).await {
                    Ok(names) => names.lines().map(str::to_owned).collect(),
                    Err(_) => Vec::new(),
                }
            }
            None => Vec::new(),
        };
        resolve_environments(&self.config.environments.patterns, &available)
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {})", trimmed.lines().last().unwrap_or(trimmed))
    }
}

/// Runs blocking file-system work on a local file (the exports file) off
/// the runtime's worker threads.
async fn blocking(
    work: impl FnOnce() -> Result<(), exports::ExportsError> + Send + 'static,
) -> Result<(), BuiltinError> {
    Ok(tokio::task::spawn_blocking(work)
        .await
        .map_err(BuiltinError::Join)??)
}

/// What [`Runner::probe_master`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MasterProbe {
    /// Checks that say a master resource is held.
    pub held: Vec<String>,
    /// Checks that could not answer.
    pub unknown: Vec<String>,
}

impl MasterProbe {
    /// Whether the master resources may be held.
    pub fn may_hold(&self) -> bool {
        !self.held.is_empty() || !self.unknown.is_empty()
    }
}

/// Each start-up check's timeout: they read local state, and the start
/// must not wait long (the watchdog may be counting).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The master's identity for a job run by hand: the path mounts from
/// `vip` whatever the identity says, so the VIP itself stands in.
fn job_master(vip: IpAddr) -> IpAddr {
    vip
}
