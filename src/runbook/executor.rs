//! Runs runbooks: each command under its timeout (the process group is
//! killed when it expires), probes before acts, retries with backoff, the
//! failure rules, the undo of a failed promote, cancellation between steps
//! and progress for `status`. See the module contract in [`super`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::cbsd::StaleRegistrations;
use super::events;
use super::expect::Expect;
use super::exports;
use super::step::{Action, Builtin, Checked, Command, OnFailure, Step};
use super::vip::VipControl;
use super::{
    cbsd, demote, follow, promote, resolve_environments, Context, Env, Kind, Outcome, Placement,
};
use crate::config::Config;

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

/// The result of one command.
struct Ran {
    exit: Option<i32>,
    stdout: String,
    stderr: String,
}

#[derive(Debug)]
enum AttemptError {
    /// The command did not finish in time and was killed.
    Timeout(String),
    Failed(String),
}

impl AttemptError {
    fn outcome(&self) -> &'static str {
        match self {
            AttemptError::Timeout(_) => "timeout",
            AttemptError::Failed(_) => "failed",
        }
    }

    fn message(&self) -> &str {
        match self {
            AttemptError::Timeout(m) | AttemptError::Failed(m) => m,
        }
    }
}

/// Runs the runbooks of one node. Keep one per agent: it remembers which
/// environments it started so the next runbook stops them even when their
/// mount is dead.
pub struct Runner<V: VipControl> {
    config: Config,
    vip: V,
    progress: ProgressHandle,
    /// Environments this runner started (or found running) last.
    running: Vec<Env>,
    /// `[[environment]]` placement; `None`: the node's own
    /// `[environments]` list.
    placement: Option<Placement>,
    /// With placement, right after the start: environments placed here
    /// that a crashed earlier run may have left running. Not known to run
    /// (never reported as running), but claimed until the first runbook
    /// has stopped or started them.
    unchecked: Vec<Env>,
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
    /// Names of the steps that succeeded.
    succeeded: Vec<String>,
}

impl Run<'_> {
    fn cancelled(&self) -> bool {
        *self.cancel.borrow() != self.generation
    }
}

impl<V: VipControl> Runner<V> {
    pub fn new(config: Config, vip: V) -> Self {
        Runner {
            config,
            vip,
            progress: ProgressHandle::default(),
            running: Vec::new(),
            placement: None,
            unchecked: Vec::new(),
        }
    }

    /// Switches to placement mode (or updates it). The first time, every
    /// candidate is unchecked: after a crash the jails of the previous run
    /// may still be up, and they stay claimed until a runbook has stopped
    /// or adopted them.
    pub fn set_placement(&mut self, placement: Option<Placement>) {
        if let (None, Some(new)) = (&self.placement, &placement) {
            self.unchecked = new
                .candidates
                .iter()
                .filter(|e| !self.running.contains(e))
                .cloned()
                .collect();
        }
        self.placement = placement;
    }

    /// The environments that may be running here: started by this runner,
    /// or not checked since the start. What the node must keep claiming.
    pub fn running_environments(&self) -> Vec<String> {
        self.running
            .iter()
            .chain(&self.unchecked)
            .map(|e| e.name.clone())
            .collect()
    }

    /// The environments this runner started and has not stopped: what the
    /// node reports running.
    pub fn started_environments(&self) -> Vec<String> {
        self.running.iter().map(|e| e.name.clone()).collect()
    }

    fn may_run(&self) -> Vec<Env> {
        let mut envs = self.running.clone();
        envs.extend(
            self.unchecked
                .iter()
                .filter(|e| !self.running.contains(e))
                .cloned(),
        );
        envs
    }

    /// Whether a `place` run has anything to do: an environment to stop,
    /// or (`may_start`) one to start.
    pub fn placement_pending(&self, may_start: bool) -> bool {
        let Some(placement) = &self.placement else {
            return false;
        };
        let stop = self
            .may_run()
            .iter()
            .any(|e| !placement.environments.contains(e));
        let start = placement
            .environments
            .iter()
            .any(|e| !self.running.contains(e));
        stop || (may_start && start)
    }

    /// The `place` runbook: stops the environments this node may no longer
    /// run, then (`may_start`: the role's runbook is done) starts the ones
    /// it newly may. What is running is tracked conservatively: an
    /// environment counts as running until its stop succeeded.
    pub async fn place(&mut self, may_start: bool, cancel: watch::Receiver<u64>) -> Outcome {
        let Some(placement) = self.placement.clone() else {
            return Outcome::Succeeded {
                skipped: Vec::new(),
            };
        };
        let mut cancel = cancel;
        let generation = *cancel.borrow_and_update();
        let mut run = Run {
            kind: Kind::Place,
            started: Instant::now(),
            generation,
            cancel: &mut cancel,
            undo: Vec::new(),
            skipped: Vec::new(),
            done: 0,
            succeeded: Vec::new(),
        };
        let to_stop: Vec<Env> = self
            .may_run()
            .into_iter()
            .filter(|e| !placement.environments.contains(e))
            .collect();
        let to_start: Vec<Env> = if may_start {
            placement
                .environments
                .iter()
                .filter(|e| !self.running.contains(e))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let mut steps: Vec<Step> = to_stop
            .iter()
            .map(|env| cbsd::stop(&self.config, env))
            .collect();
        let stops = steps.len();
        steps.extend(promote::start_environments_taking_over(
            &self.config,
            &to_start,
            &placement.takeover,
        ));
        events::runbook_started(Kind::Place.as_str(), &self.config.node.name, steps.len());
        // Counted as running from before its start to after its stop.
        self.running.extend(to_start.iter().cloned());
        let result = self.execute(&mut run, &steps, 0).await;
        if result.is_ok() {
            self.running.retain(|e| !to_stop.contains(e));
            self.running
                .retain(|e| !(to_start.contains(e) && run.skipped.contains(&e.name)));
            // Each was stopped, or started (a start probes first).
            self.unchecked
                .retain(|e| !to_stop.contains(e) && !to_start.contains(e));
        } else {
            // Stops run first: those that completed are stopped.
            let stopped = run.done.min(stops);
            let done_stops: Vec<&Env> = to_stop.iter().take(stopped).collect();
            self.running.retain(|e| !done_stops.contains(&e));
            self.unchecked.retain(|e| !done_stops.contains(&e));
        }
        self.progress.update(|p| *p = None);
        self.finish(Kind::Place, &mut run, result).await
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

    /// Runs one runbook to its end, its undo, or a cancellation point.
    pub async fn run(
        &mut self,
        kind: Kind,
        ctx: &Context,
        mut cancel: watch::Receiver<u64>,
    ) -> Outcome {
        let generation = *cancel.borrow_and_update();
        let mut run = Run {
            kind,
            started: Instant::now(),
            generation,
            cancel: &mut cancel,
            undo: Vec::new(),
            skipped: Vec::new(),
            done: 0,
            succeeded: Vec::new(),
        };
        let running = self.environments_to_stop().await;
        let steps = match kind {
            Kind::Promote => promote::build(&self.config, &running),
            Kind::Demote => demote::build(&self.config, &running),
            Kind::Follow => follow::build(&self.config, ctx, &running),
            Kind::Place => {
                drop(run);
                return self.place(true, cancel).await;
            }
        };
        events::runbook_started(kind.as_str(), &self.config.node.name, steps.len());
        let mut result = self.execute(&mut run, &steps, 0).await;
        if result.is_err() {
            // Cancelled or failed half way: what was stopped is stopped.
            let stopped = |env: &Env| {
                let name = cbsd::stop(&self.config, env).name;
                run.succeeded.contains(&name)
            };
            let still: Vec<Env> = self
                .running
                .iter()
                .filter(|e| !stopped(e))
                .cloned()
                .collect();
            self.running = still;
            let still: Vec<Env> = self
                .unchecked
                .iter()
                .filter(|e| !stopped(e))
                .cloned()
                .collect();
            self.unchecked = still;
        }
        if result.is_ok() {
            // Whatever ran on the old mounts was stopped by the steps above
            // (an environment whose stop failed may still run).
            self.running.retain(|env| run.skipped.contains(&env.name));
            self.unchecked.retain(|env| run.skipped.contains(&env.name));
            if kind != Kind::Demote && self.config.cbsd.is_some() {
                let envs = self.assigned_environments().await;
                let takeover = self
                    .placement
                    .as_ref()
                    .map(|p| p.takeover.clone())
                    .unwrap_or_default();
                let starts =
                    promote::start_environments_taking_over(&self.config, &envs, &takeover);
                let skipped_before = run.skipped.len();
                // Counted as running from before the start on.
                for env in &envs {
                    if !self.running.contains(env) {
                        self.running.push(env.clone());
                    }
                }
                result = self.execute(&mut run, &starts, steps.len()).await;
                let newly_skipped = run.skipped.get(skipped_before..).unwrap_or(&[]).to_vec();
                if result.is_ok() {
                    self.running
                        .retain(|e| !(envs.contains(e) && newly_skipped.contains(&e.name)));
                }
            }
        }
        self.progress.update(|p| *p = None);
        self.finish(kind, &mut run, result).await
    }

    /// Logs the end of a run and turns its result into an [`Outcome`]; a
    /// failed promote is undone first.
    async fn finish(&self, kind: Kind, run: &mut Run<'_>, result: Result<(), Stop>) -> Outcome {
        let duration_ms = millis(run.started.elapsed());
        match result {
            Ok(()) => {
                events::runbook_finished(kind.as_str(), duration_ms, &run.skipped.join(","));
                Outcome::Succeeded {
                    skipped: std::mem::take(&mut run.skipped),
                }
            }
            Err(Stop::Cancelled { at_step }) => {
                events::runbook_cancelled(kind.as_str(), &at_step, duration_ms);
                Outcome::Cancelled { at_step }
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
                Outcome::Failed { step, error }
            }
        }
    }

    async fn execute(&self, run: &mut Run<'_>, steps: &[Step], offset: usize) -> Result<(), Stop> {
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
                    run.succeeded.push(step.name.clone());
                    if acted {
                        if let Some(undo) = &step.undo {
                            run.undo.push((**undo).clone());
                        }
                    }
                }
                Err(Stop::Cancelled { at_step }) => return Err(Stop::Cancelled { at_step }),
                Err(Stop::Failed { step: name, error }) => match step.on_failure {
                    OnFailure::Abort => return Err(Stop::Failed { step: name, error }),
                    OnFailure::Continue => {}
                    OnFailure::SkipEnvironment => {
                        if let Some(env) = &step.environment {
                            run.skipped.push(env.clone());
                        }
                    }
                },
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

    /// One attempt; `Ok(acted)`: false when the probe found the work done.
    async fn attempt(&self, step: &Step, ran: &mut Vec<String>) -> Result<bool, AttemptError> {
        match &step.action {
            Action::Run(checked) => {
                self.checked(checked, step.timeout, ran).await?;
                Ok(true)
            }
            Action::Ensure(ensure) => {
                if self.checked(&ensure.probe, step.timeout, ran).await.is_ok() {
                    if let Some(extra) = &ensure.when_satisfied {
                        self.checked(extra, step.timeout, ran).await?;
                    }
                    return Ok(false);
                }
                let mut last = AttemptError::Failed("nothing to try".to_owned());
                for act in &ensure.acts {
                    // The act's own status is only a hint; the probe decides.
                    let act_result = self.command(act, step.timeout, ran).await;
                    match self.checked(&ensure.probe, step.timeout, ran).await {
                        Ok(()) => return Ok(true),
                        Err(probe_error) => {
                            last = match act_result {
                                Err(AttemptError::Timeout(m)) => AttemptError::Timeout(m),
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
                match tokio::time::timeout(step.timeout, self.builtin(builtin)).await {
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
            let result = match self.command(listing, timeout, ran).await {
                Ok(result) => result,
                Err(AttemptError::Timeout(m)) => {
                    return Err(AttemptError::Timeout(format!("{m}; {skipped}")))
                }
                Err(AttemptError::Failed(m)) => {
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
            let failure = match self.command(&command, timeout, ran).await {
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
    ) -> Result<(), AttemptError> {
        let result = self.command(&checked.command, timeout, ran).await?;
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
    ) -> Result<Ran, AttemptError> {
        ran.push(command.display());
        run_command(command, timeout).await
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

    /// The configured environments, globs expanded against `jails-system/`;
    /// with placement, the ones whose lease this node holds.
    async fn assigned_environments(&self) -> Vec<Env> {
        if let Some(placement) = &self.placement {
            return placement.environments.clone();
        }
        let available = match &self.config.cbsd {
            Some(cbsd) => list_dirs(cbsd.workdir.join("jails-system"))
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        resolve_environments(&self.config.environments.patterns, &available)
    }

    /// What may run on the old mounts: what this runner started, and every
    /// configured environment (a jstatus probe each: cheap when stopped).
    async fn environments_to_stop(&self) -> Vec<Env> {
        let mut envs = match &self.placement {
            Some(placement) => placement.candidates.clone(),
            None => self.assigned_environments().await,
        };
        for env in &self.running {
            if !envs.iter().any(|e| e.name == env.name) {
                envs.push(env.clone());
            }
        }
        envs
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

/// Spawns `command` in its own process group and waits up to `timeout`;
/// on expiry the whole group is killed (a tool's children too).
async fn run_command(command: &Command, timeout: Duration) -> Result<Ran, AttemptError> {
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
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(AttemptError::Failed(format!("{display}: wait: {e}"))),
        Err(_) => {
            if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill().await;
            return Err(AttemptError::Timeout(format!(
                "{display}: no answer within {}, killed",
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
        let result = run_command(&Command::new(["sleep", "10"]), Duration::from_millis(200)).await;
        assert!(matches!(result, Err(AttemptError::Timeout(_))));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn exit_code_stdout_cwd_and_env_are_seen() {
        let mut command = Command::new(["sh", "-c", "pwd; echo $NOINTER; exit 3"]);
        command.cwd = Some(PathBuf::from("/"));
        command.env = vec![("NOINTER".into(), "1".into())];
        let ran = run_command(&command, Duration::from_secs(5))
            .await
            .ok()
            .unwrap();
        assert_eq!(ran.exit, Some(3));
        assert_eq!(ran.stdout, "/\n1\n");
    }
}
