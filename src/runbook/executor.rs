//! Runs runbooks: each command under its timeout (the process group is
//! killed when it expires, and a process that outlives the kill is
//! abandoned, never awaited for ever), probes before acts, retries with
//! backoff, the failure rules, the undo of a failed promote, cancellation
//! between steps, the fence's kill of an acquiring step, what became of
//! each environment, and progress for `status`. See the module contract in
//! [`super`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::cbsd::StaleRegistrations;
use super::expect::Expect;
use super::exports;
use super::step::{Action, Builtin, Checked, Command, EnvPhase, OnFailure, Step};
use super::vip::VipControl;
use super::{
    cbsd, demote, follow, probe, promote, resolve_environments, Context, Env, Kind, Outcome,
};
use crate::config::{Config, EnvKind};
use crate::events;
use crate::node::converge::{Job, JobKind, JobOutcome, JobReport};
use crate::node::Allowance;
use crate::wire::heartbeat::Resource;

/// Output kept per stream: status output is short; a runaway tool must not
/// fill memory.
const OUTPUT_LIMIT: u64 = 64 * 1024;
/// How long to read what is left in the pipes after the process exited (a
/// daemon it started may hold them open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long listing `jails-system/` may take (it may sit on a dead mount).
const LIST_TIMEOUT: Duration = Duration::from_secs(3);
/// Polling period of [`Builtin::WaitForPath`].
const POLL: Duration = Duration::from_millis(100);

/// What `status` shows about the runbook in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub runbook: Kind,
    pub step: String,
    /// 1-based position of the step among the steps known so far.
    pub step_number: usize,
    pub steps: usize,
    pub elapsed_ms: u64,
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

/// Why a step (or a runbook) stopped.
enum Stop {
    Failed { step: String, error: String },
    Cancelled { at_step: String },
}

/// The result of one command: its exit status (`None`: killed by a
/// signal) and what it printed (each stream capped at 64 KiB).
#[derive(Debug)]
pub struct Ran {
    pub exit: Option<i32>,
    pub stdout: String,
    pub stderr: String,
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

impl Run<'_> {
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
    pub fn new(config: Config, vip: V) -> Self {
        Runner {
            config,
            vip,
            progress: ProgressHandle::default(),
            allowance: None,
        }
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

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One gratuitous-ARP burst outside a runbook: the second burst after
    /// `garp_master_delay` and the answer to a second master.
    pub async fn announce(&self, why: &'static str) -> Result<(), String> {
        self.vip.announce(why).await
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
                master: ctx.vip,
                rejoin: ctx.rejoin,
            },
            Kind::Place => JobKind::Place,
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
            JobOutcome::Failed { step, error } => Outcome::Failed { step, error },
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
        };
        let generation = *cancel.borrow_and_update();
        let mut run = Run {
            kind,
            started: Instant::now(),
            generation,
            cancel: &mut cancel,
            undo: Vec::new(),
            skipped: Vec::new(),
            done: 0,
            environments: BTreeMap::new(),
        };
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
                .map(|env| cbsd::stop(&self.config, env))
                .collect(),
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
            let starts = promote::start_environments_taking_over(&self.config, &start, takeover);
            result = self.execute_steps(&mut run, &starts, steps.len()).await;
        }
        self.progress.update(|p| *p = None);
        let outcome = self.finish(kind, &mut run, result).await;
        run.report(outcome)
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
            set.spawn(async move { (i, run_command(&command, PROBE_TIMEOUT, None).await) });
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
            Err(Stop::Failed { step, error }) => {
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
                JobOutcome::Failed { step, error }
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
                if run.skipped.contains(env) {
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
                Err(Stop::Failed { step: name, error }) => {
                    run.record(step, false);
                    match step.on_failure {
                        OnFailure::Abort => return Err(Stop::Failed { step: name, error }),
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
    async fn attempt(&self, step: &Step, ran: &mut Vec<String>) -> Result<bool, AttemptError> {
        let abort = self.abort_for(step);
        let abort = abort.as_ref();
        match &step.action {
            Action::Run(checked) => {
                self.checked(checked, step.timeout, ran, abort).await?;
                Ok(true)
            }
            Action::Ensure(ensure) => {
                if self
                    .checked(&ensure.probe, step.timeout, ran, abort)
                    .await
                    .is_ok()
                {
                    if let Some(extra) = &ensure.when_satisfied {
                        self.checked(extra, step.timeout, ran, abort).await?;
                    }
                    return Ok(false);
                }
                let mut last = AttemptError::Failed("nothing to try".to_owned());
                for act in &ensure.acts {
                    // The act's own status is only a hint; the probe decides.
                    let act_result = self.command(act, step.timeout, ran, abort).await;
                    if let Err(AttemptError::Aborted(m)) = act_result {
                        return Err(AttemptError::Aborted(m));
                    }
                    match self.checked(&ensure.probe, step.timeout, ran, abort).await {
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
                        }
                    }
                }
                Err(last)
            }
            Action::Builtin(Builtin::ClearStaleRegistrations(clear)) => {
                self.clear_stale_registrations(clear, step.timeout, ran)
                    .await
            }
            Action::Builtin(builtin) => {
                let work = tokio::time::timeout(step.timeout, self.builtin(builtin));
                let result = tokio::select! {
                    result = work => result,
                    why = aborted(abort) => return Err(AttemptError::Aborted(format!("{}: {why}", step.name))),
                };
                match result {
                    Ok(Ok(())) => Ok(true),
                    Ok(Err(message)) => Err(AttemptError::Failed(message)),
                    Err(_) => Err(AttemptError::Timeout(format!(
                        "{} did not finish within {}",
                        step.name,
                        crate::config::format_duration(step.timeout)
                    ))),
                }
            }
        }
    }

    /// FOLLOW step 2: lists what CBSD has registered here, then
    /// junregisters, one at a time, each name this node does not own;
    /// `Ok(acted)`. A failed listing leaves every registration as it is
    /// (the whole picture is unknown); a failed junregister does not stop
    /// the others. Each command has `timeout`.
    async fn clear_stale_registrations(
        &self,
        clear: &StaleRegistrations,
        timeout: Duration,
        ran: &mut Vec<String>,
    ) -> Result<bool, AttemptError> {
        let skipped = "stale registrations left as they are";
        let mut listed = String::new();
        for listing in &clear.listings {
            let result = match self.command(listing, timeout, ran, None).await {
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
            let failure = match self.command(&command, timeout, ran, None).await {
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
        timeout: Duration,
        ran: &mut Vec<String>,
        abort: Option<&Abort>,
    ) -> Result<(), AttemptError> {
        let result = self.command(&checked.command, timeout, ran, abort).await?;
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

    async fn command(
        &self,
        command: &Command,
        timeout: Duration,
        ran: &mut Vec<String>,
        abort: Option<&Abort>,
    ) -> Result<Ran, AttemptError> {
        ran.push(command.display());
        run_command(command, timeout, abort).await
    }

    async fn builtin(&self, builtin: &Builtin) -> Result<(), String> {
        match builtin {
            Builtin::AddVip => self.vip.add().await,
            Builtin::DropVip => self.vip.remove().await,
            Builtin::ArpBurst => self.vip.announce("became_master").await,
            Builtin::WriteExports {
                file,
                dirs,
                clients,
            } => {
                let (file, dirs, clients) = (file.clone(), dirs.clone(), clients.clone());
                blocking(move || {
                    let groups = exports::group_by_filesystem(&dirs);
                    exports::write_block(&file, &exports::render(&groups, &clients))
                        .map_err(|e| e.to_string())
                })
                .await
            }
            Builtin::ClearExports { file } => {
                let file = file.clone();
                blocking(move || exports::write_block(&file, &[]).map_err(|e| e.to_string())).await
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
            Builtin::VerifyDirId { path, expected } => {
                let (path, expected) = (path.clone(), expected.clone());
                blocking(move || verify_dir_id(&path, expected.as_deref())).await
            }
            Builtin::WriteProbe { path } => {
                let path = path.clone();
                blocking(move || write_probe(&path)).await
            }
            Builtin::CheckLock {
                path,
                node,
                takeover,
            } => {
                let (path, node, takeover) = (path.clone(), node.clone(), takeover.clone());
                blocking(move || check_lock(&path, &node, &takeover)).await
            }
            // Runs its commands through `attempt`, which logs them.
            Builtin::ClearStaleRegistrations(_) => {
                Err("internal error: stale registrations are cleared by attempt".to_owned())
            }
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
            Some(cbsd) => list_dirs(cbsd.workdir.join("jails-system"))
                .await
                .unwrap_or_default(),
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

/// Runs blocking file-system work off the runtime (a dead NFS mount blocks
/// the thread, not the agent; the step's timeout abandons it).
async fn blocking(
    work: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("internal error: {e}"))?
}

async fn list_dirs(dir: PathBuf) -> Option<Vec<String>> {
    let listing = tokio::task::spawn_blocking(move || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        Some(names)
    });
    tokio::time::timeout(LIST_TIMEOUT, listing)
        .await
        .ok()?
        .ok()?
}

fn verify_dir_id(path: &Path, expected: Option<&str>) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let found = text.trim();
    match expected {
        _ if found.is_empty() => Err(format!("{} is empty", path.display())),
        Some(wanted) if wanted != found => Err(format!(
            "{} holds {found:?}, not the cluster's {wanted:?}: wrong data under the shared dirs",
            path.display()
        )),
        _ => Ok(()),
    }
}

fn write_probe(path: &Path) -> Result<(), String> {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(b"rcbsd-failover write probe\n")?;
        file.sync_all()?;
        std::fs::remove_file(path)
    };
    write().map_err(|e| format!("write probe {}: {e}", path.display()))
}

/// CBSD's `jails-system/J/locked` holds the nodename of the holder.
fn check_lock(path: &Path, node: &str, takeover: &[String]) -> Result<(), String> {
    match std::fs::read_to_string(path) {
        Ok(text) => match text.split_whitespace().next() {
            Some(holder) if holder != node && !takeover.iter().any(|t| t == holder) => Err(format!(
                "{} names {holder}: that node may run it; not starting it here (remove the file once {holder} is known to be down)",
                path.display()
            )),
            _ => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// A running step is killed when the fence no longer allows `resource`.
#[derive(Clone)]
struct Abort {
    allowance: watch::Receiver<Allowance>,
    resource: Resource,
}

/// Resolves when `abort` says the step must die (never without one), with
/// the reason.
async fn aborted(abort: Option<&Abort>) -> String {
    let Some(abort) = abort else {
        return std::future::pending().await;
    };
    let mut allowance = abort.allowance.clone();
    loop {
        if !allowance.borrow_and_update().allows(&abort.resource) {
            return format!("{} is no longer allowed here (fenced)", abort.resource);
        }
        if allowance.changed().await.is_err() {
            // Nobody can fence any more.
            return std::future::pending().await;
        }
    }
}

/// Spawns `command` in its own process group and waits up to `timeout`;
/// on expiry, or when `abort` fires, the whole group is killed (a tool's
/// children too) and its exit is awaited for at most [`KILL_WAIT`]: a
/// process in uninterruptible sleep (I/O on a dead hard NFS mount) does
/// not die from SIGKILL, and is then reported and abandoned rather than
/// awaited for ever (the runtime reaps it if it ever exits).
async fn run_command(
    command: &Command,
    timeout: Duration,
    abort: Option<&Abort>,
) -> Result<Ran, AttemptError> {
    let display = command.display();
    let Some((program, args)) = command.argv.split_first() else {
        return Err(AttemptError::Failed("empty command".to_owned()));
    };
    let mut child_command = tokio::process::Command::new(program);
    child_command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(cwd) = &command.cwd {
        child_command.current_dir(cwd);
    }
    for (key, value) in &command.env {
        child_command.env(key, value);
    }
    let mut child = child_command
        .spawn()
        .map_err(|e| AttemptError::Failed(format!("{display}: cannot start: {e}")))?;
    let stdout = child.stdout.take().map(read_limited);
    let stderr = child.stderr.take().map(read_limited);
    let waited = tokio::select! {
        waited = tokio::time::timeout(timeout, child.wait()) => waited,
        why = aborted(abort) => {
            let note = kill_group(&mut child, &display).await;
            return Err(AttemptError::Aborted(format!("{display}: {why}: killed{note}")));
        }
    };
    let status = match waited {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(AttemptError::Failed(format!("{display}: wait: {e}"))),
        Err(_) => {
            let note = kill_group(&mut child, &display).await;
            return Err(AttemptError::Timeout(format!(
                "{display}: no answer within {}, killed{note}",
                crate::config::format_duration(timeout)
            )));
        }
    };
    let stdout = drain(stdout).await;
    let stderr = drain(stderr).await;
    Ok(Ran {
        exit: status.code(),
        stdout,
        stderr,
    })
}

/// Runs one read-only command the way every runbook command runs: an argv
/// (never a shell), its own process group killed at `timeout`, a bounded
/// wait after the kill. For callers outside a runbook (`doctor`); the
/// error says why there is no answer (it could not start, or it was
/// killed at its timeout).
pub async fn run_read_only(command: &Command, timeout: Duration) -> Result<Ran, String> {
    run_command(command, timeout, None)
        .await
        .map_err(|error| error.message().to_owned())
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

/// How long a killed command's exit is awaited before it is abandoned.
pub const KILL_WAIT: Duration = Duration::from_secs(2);

/// SIGKILL to the child's process group, then a bounded wait for its exit;
/// a note for the message when it outlived the wait.
async fn kill_group(child: &mut tokio::process::Child, display: &str) -> String {
    let pid = child.id().and_then(|id| i32::try_from(id).ok());
    if let Some(pid) = pid {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.start_kill();
    match tokio::time::timeout(KILL_WAIT, child.wait()).await {
        Ok(_) => String::new(),
        Err(_) => {
            let pid = pid.unwrap_or(0);
            events::command_abandoned(display, pid, millis(KILL_WAIT));
            format!(
                "; pid {pid} still runs {} after SIGKILL (uninterruptible, e.g. I/O on a dead NFS server): abandoned",
                crate::config::format_duration(KILL_WAIT)
            )
        }
    }
}

fn read_limited<R>(reader: R) -> tokio::task::JoinHandle<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        let _ = reader.take(OUTPUT_LIMIT).read_to_end(&mut buffer).await;
        buffer
    })
}

async fn drain(task: Option<tokio::task::JoinHandle<Vec<u8>>>) -> String {
    let Some(mut task) = task else {
        return String::new();
    };
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut task).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => {
            task.abort();
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_naming_another_node_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked");
        assert!(check_lock(&path, "node1", &[]).is_ok(), "no lock file");
        std::fs::write(&path, "node1\n").unwrap();
        assert!(check_lock(&path, "node1", &[]).is_ok());
        std::fs::write(&path, "node2\n").unwrap();
        let error = check_lock(&path, "node1", &[]).unwrap_err();
        assert!(error.contains("node2"), "{error}");
    }

    #[test]
    fn dir_id_must_match_when_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dir.id");
        assert!(verify_dir_id(&path, None).is_err(), "missing");
        std::fs::write(&path, "\n").unwrap();
        assert!(verify_dir_id(&path, None).is_err(), "empty");
        std::fs::write(&path, "abc\n").unwrap();
        assert!(verify_dir_id(&path, None).is_ok());
        assert!(verify_dir_id(&path, Some("abc")).is_ok());
        assert!(verify_dir_id(&path, Some("xyz")).is_err());
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed() {
        let started = Instant::now();
        let result = run_command(
            &Command::new(["sleep", "10"]),
            Duration::from_millis(200),
            None,
        )
        .await;
        assert!(matches!(result, Err(AttemptError::Timeout(_))));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_acquiring_command_is_killed_when_the_fence_takes_its_resource() {
        let (fence, allowance) = watch::channel(Allowance {
            master: true,
            environments: None,
        });
        let abort = Abort {
            allowance,
            resource: Resource::Master,
        };
        let started = Instant::now();
        let sleep = Command::new(["sleep", "30"]);
        let running = run_command(&sleep, Duration::from_secs(60), Some(&abort));
        let fenced = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            fence.send_replace(Allowance::default());
            std::future::pending::<()>().await;
        };
        let result = tokio::select! {
            result = running => result,
            () = fenced => unreachable!(),
        };
        match result {
            Err(AttemptError::Aborted(why)) => assert!(why.contains("master"), "{why}"),
            other => panic!("expected a kill by the fence, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "killed at once, not at its timeout"
        );
    }

    #[tokio::test]
    async fn a_step_that_acquires_nothing_is_not_killed_by_the_fence() {
        let (fence, allowance) = watch::channel(Allowance::default());
        let abort = Abort {
            allowance,
            resource: Resource::Environment("web1".into()),
        };
        // Allowed (no placement: every environment) until the change.
        fence.send_replace(Allowance {
            master: false,
            environments: None,
        });
        let ran = run_command(
            &Command::new(["true"]),
            Duration::from_secs(5),
            Some(&abort),
        )
        .await
        .ok()
        .unwrap();
        assert_eq!(ran.exit, Some(0));
    }

    #[tokio::test]
    async fn exit_code_stdout_cwd_and_env_are_seen() {
        let mut command = Command::new(["sh", "-c", "pwd; echo $NOINTER; exit 3"]);
        command.cwd = Some(PathBuf::from("/"));
        command.env = vec![("NOINTER".into(), "1".into())];
        let ran = run_command(&command, Duration::from_secs(5), None)
            .await
            .ok()
            .unwrap();
        assert_eq!(ran.exit, Some(3));
        assert_eq!(ran.stdout, "/\n1\n");
    }
}
