//! The transition worker under simulation: the real
//! `node::converge::Converger` decides which job runs next and what is held
//! after it (the same code the daemon's worker runs); only the runbooks'
//! steps are simulated, and they can be slow, fail, and hang (killable by
//! the fence, or not at all).
//!
//! The machine's physical state (what the ledger checks) changes with the
//! steps, conservatively:
//! - a step that acquires (the first storage step of a promote, an
//!   environment's start) holds its resource from the moment it *starts*;
//! - a step that releases (the demote's last storage step, an environment's
//!   stop) releases at its *successful end* only;
//! - a killed or failed step changes nothing it had not already changed;
//! - a hung step that a kill does not end (uninterruptible I/O) pins its
//!   resource: every release of it fails until the hang ends.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rcbsd_failover::node::converge::{
    Backoff, Converger, FallbackCause, Found, Job, JobKind, JobOutcome, JobReport, Next, Notice,
    Role, Target,
};
use rcbsd_failover::node::{Allowance, WorkerReport};
use rcbsd_failover::quorum::Holding;
use rcbsd_failover::wire::heartbeat::Resource;

/// Storage steps of a promote (the first one takes the storage).
pub const PROMOTE_STEPS: u8 = 3;
/// Storage steps of a demote after the VIP (the last one releases it).
pub const DEMOTE_STEPS: u8 = 2;
/// The executor's bounded wait after a kill (`runbook::executor::KILL_WAIT`
/// is 2 s; the simulation's timings are about ten times shorter).
pub const KILL_WAIT: Duration = Duration::from_millis(200);

/// One simulated step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// An environment's verified stop (releases it at a successful end).
    Stop(String),
    /// A promote's storage step `i` (step 0 takes the storage).
    Take(u8),
    DropVip,
    /// A demote's storage step `i` (the last one releases the storage).
    Release(u8),
    /// Unmounting the shared dirs (a follow's, a quiesce's and a
    /// promote's first role step).
    Unmount,
    /// A ride-through's probes of the kept mounts (they answer: the
    /// simulation's storage moves with its NFS state).
    Probe,
    /// A follow's mounts (mounted from their start on).
    Mount,
    /// An environment's start (holds it from its start).
    Start(String),
}

impl Step {
    fn acquires(&self) -> Option<Resource> {
        match self {
            Step::Take(_) => Some(Resource::Master),
            Step::Start(name) => Some(Resource::Environment(name.clone())),
            _ => None,
        }
    }

    /// What a successful end of this step releases.
    fn releases(&self) -> Option<Resource> {
        match self {
            Step::Release(i) if i + 1 == DEMOTE_STEPS => Some(Resource::Master),
            Step::Stop(name) => Some(Resource::Environment(name.clone())),
            _ => None,
        }
    }
}

/// How the next matching step misbehaves (set by the scenario's chaos).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Chance, in percent, that an environment's stop fails.
    pub stop_fail_percent: u64,
    /// Every demote storage step fails (a busy `zpool export`).
    pub release_fails: bool,
    /// The next acquiring step hangs this long; `killable`: the fence's
    /// SIGKILL ends it.
    pub hang_next: Option<(Duration, bool)>,
}

/// A change of what this machine physically holds, for the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Acquire(Resource),
    Release(Resource),
    /// A demote begins dropping the VIP: a follower that still has the
    /// shared dirs mounted from this node finds a dead server.
    VipDropped,
}

/// How a busy step will end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Ok,
    Failed,
    /// Killed by the fence (or abandoned after the kill wait).
    Killed,
}

#[derive(Clone, Debug)]
struct Busy {
    step: Step,
    /// When the step's process ends by itself (real time).
    ends_at: Duration,
    end: End,
    /// A hang: whether SIGKILL ends it, and when it ends by itself.
    killable: bool,
    hang: Option<Duration>,
}

#[derive(Clone, Debug)]
struct Running {
    job: Job,
    steps: Vec<Step>,
    next: usize,
    /// The cancel generation the job started under.
    generation: u64,
    report: JobReport,
    busy: Option<Busy>,
}

/// What the worker asks of the world.
#[derive(Debug, Default)]
pub struct Outcome {
    pub effects: Vec<Effect>,
    /// Reports for the node core.
    pub reports: Vec<WorkerReport>,
    /// When to call [`SimWorker::step_done`] (real time), if a step began.
    pub wake_at: Option<Duration>,
    /// When the converger wants to retry (the node's local clock).
    pub retry_at: Option<Instant>,
    pub trace: Vec<String>,
}

pub struct SimWorker {
    pub converger: Converger,
    target: Target,
    generation: u64,
    allowance: Allowance,
    running: Option<Running>,
    reported: Option<u64>,
    pub faults: Faults,
    /// What the machine holds, whatever the agent believes.
    physical: BTreeSet<Resource>,
    /// Resources a hung, unkillable process still pins, until when.
    pinned: BTreeMap<Resource, Duration>,
    /// The shared dirs are mounted (from whoever held the VIP then).
    mounted: bool,
    /// Ride-through jobs that succeeded (the mounts kept).
    /// Whether this machine's promote finds nfsd's stable restart
    /// records on the storage (its report's `reclaimable`); a test takes
    /// them away to see followers fall back (`state_not_moved`).
    pub stable_records: bool,
    /// Ride-throughs given up because the new master's state had not
    /// moved (`follow_fallback` cause `state_not_moved`).
    pub state_not_moved: u32,
    pub rode_through: u32,
}

impl SimWorker {
    /// A worker that has looked at what the machine holds (the start-up
    /// probe reads the real world; here, the physical state).
    pub fn start(
        physical: BTreeSet<Resource>,
        pinned: BTreeMap<Resource, Duration>,
        candidates: &[String],
        faults: Faults,
        backoff: Backoff,
        ride_through: Option<Duration>,
    ) -> Self {
        let found = Found {
            master: physical.contains(&Resource::Master),
            // With placement, every environment placed here is unchecked.
            environments: candidates.iter().cloned().collect(),
        };
        let mut converger = Converger::new(found, true, backoff);
        converger.set_ride_through(ride_through);
        SimWorker {
            converger,
            target: Target::default(),
            generation: 0,
            allowance: Allowance::default(),
            running: None,
            reported: None,
            faults,
            physical,
            pinned,
            mounted: false,
            rode_through: 0,
            stable_records: true,
            state_not_moved: 0,
        }
    }

    /// Mounts survive the agent (a restarted worker keeps them).
    pub fn keep_mounts(&mut self, mounted: bool) {
        self.mounted = mounted;
    }

    /// The shared dirs are mounted on this machine.
    pub fn is_mounted(&self) -> bool {
        self.mounted
    }

    /// The physical state, for a restart (it survives the agent).
    pub fn physical(&self) -> (&BTreeSet<Resource>, &BTreeMap<Resource, Duration>) {
        (&self.physical, &self.pinned)
    }

    pub fn holds_physically(&self, resource: &Resource) -> bool {
        self.physical.contains(resource)
    }

    /// The worker's first report (after the probe).
    pub fn first_report(&self) -> WorkerReport {
        WorkerReport::Holding(self.converger.holding(0))
    }

    /// A promote has completed and no demote runs.
    pub fn is_promoted(&self) -> bool {
        self.converger.is_promoted()
            && !self
                .running
                .as_ref()
                .is_some_and(|r| r.job.kind == JobKind::Demote)
    }

    /// Environments whose start completed, and whose stop has not begun.
    pub fn running_environments(&self) -> Vec<String> {
        self.converger
            .holding(0)
            .running
            .into_iter()
            .filter(|name| {
                let busy_on = |s: &Step| matches!(s, Step::Stop(n) | Step::Start(n) if n == name);
                !self
                    .running
                    .as_ref()
                    .and_then(|r| r.busy.as_ref())
                    .is_some_and(|b| busy_on(&b.step))
            })
            .collect()
    }

    /// A newer decision: served from the next step boundary on; an
    /// acquiring step it no longer allows is killed (`KILL_WAIT` later at
    /// most, or never for an unkillable hang, which is then abandoned).
    pub fn decide(&mut self, target: Target, generation: u64, allowance: Allowance, now: Duration) {
        self.target = target;
        self.generation = generation;
        self.allowance = allowance;
        let allowance = &self.allowance;
        if let Some(busy) = self.running.as_mut().and_then(|r| r.busy.as_mut()) {
            let fenced = busy.step.acquires().is_some_and(|r| !allowance.allows(&r));
            if fenced && busy.end != End::Killed {
                busy.end = End::Killed;
                // The executor waits KILL_WAIT at most for the exit.
                busy.ends_at = busy.ends_at.min(now + KILL_WAIT);
            }
        }
    }

    /// When the busy step ends (the world schedules [`SimWorker::step_done`]).
    pub fn busy_until(&self) -> Option<Duration> {
        self.running
            .as_ref()
            .and_then(|r| r.busy.as_ref())
            .map(|b| b.ends_at)
    }

    /// Drives the worker at `now` (real) / `local` (the node's clock):
    /// begins the next step, or the next job, or reports when idle.
    pub fn drive(
        &mut self,
        now: Duration,
        local: Instant,
        rng: &mut crate::rng::Rng,
        steps: (Duration, Duration),
    ) -> Outcome {
        let mut out = Outcome::default();
        loop {
            if self.running.as_ref().is_some_and(|r| r.busy.is_some()) {
                out.wake_at = self.busy_until();
                return out;
            }
            if let Some(running) = &mut self.running {
                let cancelled = running.generation != self.generation;
                if running.next < running.steps.len() && !cancelled {
                    let step = running.steps[running.next].clone();
                    running.next += 1;
                    self.begin(step, now, rng, steps, &mut out);
                    continue;
                }
                let outcome = if cancelled && running.next < running.steps.len() {
                    JobOutcome::Cancelled {
                        at_step: format!("{:?}", running.steps[running.next]),
                    }
                } else {
                    JobOutcome::Succeeded
                };
                self.finish_job(outcome, local, &mut out);
                continue;
            }
            let next = self.converger.next(&self.target, local);
            for notice in self.converger.take_notices() {
                if matches!(
                    notice,
                    Notice::FollowFallback {
                        cause: FallbackCause::StateNotMoved,
                        ..
                    }
                ) {
                    self.state_not_moved += 1;
                }
                out.trace.push(format!("{notice:?}"));
            }
            match next {
                Next::Run(job) => {
                    out.trace.push(format!(
                        "job {:?} stop {:?} start {:?}",
                        job.kind, job.stop, job.start
                    ));
                    let steps = steps_of(&job);
                    self.running = Some(Running {
                        report: JobReport::only(JobOutcome::Succeeded),
                        job,
                        steps,
                        next: 0,
                        generation: self.generation,
                        busy: None,
                    });
                }
                Next::Idle { wake_at } => {
                    out.retry_at = wake_at;
                    if self.reported != Some(self.target.sequence) {
                        self.reported = Some(self.target.sequence);
                        out.reports.push(WorkerReport::Holding(
                            self.converger.holding(self.target.sequence),
                        ));
                    }
                    return out;
                }
            }
        }
    }

    /// Idle and converged: something new may make it report again.
    pub fn want_report(&mut self) {
        self.reported = None;
    }

    fn begin(
        &mut self,
        step: Step,
        now: Duration,
        rng: &mut crate::rng::Rng,
        (min, max): (Duration, Duration),
        out: &mut Outcome,
    ) {
        let took = Duration::from_micros(rng.range(min.as_micros() as u64, max.as_micros() as u64));
        let mut busy = Busy {
            step: step.clone(),
            ends_at: now + took,
            end: End::Ok,
            killable: true,
            hang: None,
        };
        if let Some(resource) = step.acquires() {
            if !self.allowance.allows(&resource) {
                // The fence already took it away: killed at once.
                busy.end = End::Killed;
                busy.ends_at = now;
            } else {
                if self.physical.insert(resource.clone()) {
                    out.effects.push(Effect::Acquire(resource));
                }
                if let Some((length, killable)) = self.faults.hang_next.take() {
                    busy.ends_at = now + length;
                    busy.killable = killable;
                    busy.hang = Some(now + length);
                }
            }
        }
        if let Some(resource) = step.releases() {
            let pinned = self.pinned.get(&resource).is_some_and(|until| *until > now);
            let fails = match &step {
                Step::Stop(_) => rng.chance(self.faults.stop_fail_percent),
                _ => self.faults.release_fails,
            };
            if pinned || fails {
                busy.end = End::Failed;
            }
        } else if matches!(step, Step::Release(_)) && self.faults.release_fails {
            busy.end = End::Failed;
        }
        match step {
            Step::Mount => self.mounted = true,
            Step::DropVip => out.effects.push(Effect::VipDropped),
            _ => {}
        }
        out.trace.push(format!("begins {step:?}"));
        self.running.as_mut().expect("a job runs").busy = Some(busy);
    }

    /// The busy step ended (its process exited, or the kill wait passed).
    pub fn step_done(&mut self, now: Duration, local: Instant) -> Outcome {
        let mut out = Outcome::default();
        let Some(running) = &mut self.running else {
            return out;
        };
        let Some(busy) = running.busy.take() else {
            return out;
        };
        if busy.ends_at > now {
            // Rescheduled (a kill shortened it); an older wake-up.
            running.busy = Some(busy);
            return out;
        }
        if let (End::Killed, Some(until), false) = (busy.end, busy.hang, busy.killable) {
            // Abandoned: the process goes on and pins what it acquired.
            if let Some(resource) = busy.step.acquires() {
                self.pinned.insert(resource, until);
            }
        }
        let ok = busy.end == End::Ok;
        if ok && busy.step == Step::Unmount {
            self.mounted = false;
        }
        if ok {
            if let Some(resource) = busy.step.releases() {
                if self.physical.remove(&resource) {
                    out.effects.push(Effect::Release(resource));
                }
            }
        }
        out.trace
            .push(format!("ends {:?} {:?}", busy.step, busy.end));
        let report = &mut running.report;
        match (&busy.step, busy.end) {
            (Step::Stop(name), End::Ok) => report.stopped.push(name.clone()),
            (Step::Stop(name), _) => report.stop_failed.push(name.clone()),
            (Step::Start(name), End::Ok) => report.started.push(name.clone()),
            (Step::Start(name), _) => report.start_failed.push(name.clone()),
            _ => {}
        }
        let abort = match busy.end {
            End::Ok => None,
            End::Killed => Some(JobOutcome::Cancelled {
                at_step: format!("{:?}", busy.step),
            }),
            // Stops and starts go on with the next step (the executor's
            // OnFailure::Continue / SkipEnvironment); the role's own steps
            // abort the runbook.
            End::Failed => match busy.step {
                Step::Stop(_) | Step::Start(_) => None,
                _ => Some(JobOutcome::Failed {
                    step: format!("{:?}", busy.step),
                    error: "simulated failure".into(),
                    timed_out: false,
                }),
            },
        };
        if let Some(outcome) = abort {
            self.finish_job(outcome, local, &mut out);
        }
        out
    }

    fn finish_job(&mut self, outcome: JobOutcome, local: Instant, out: &mut Outcome) {
        let Some(running) = self.running.take() else {
            return;
        };
        // As the daemon's worker: every time it is idle again after a job
        // it reports what it holds.
        self.reported = None;
        let mut report = running.report;
        report.outcome = outcome;
        if running.job.kind == JobKind::Promote {
            report.reclaimable = self.stable_records;
        }
        out.trace
            .push(format!("{:?} ends {:?}", running.job.kind, report.outcome));
        if matches!(running.job.kind, JobKind::RideThrough { .. })
            && report.outcome == JobOutcome::Succeeded
        {
            self.rode_through += 1;
        }
        for notice in self.converger.finished(&running.job, &report, local) {
            if let Notice::PromoteFailed { reason } = notice {
                out.reports.push(WorkerReport::PromoteFailed {
                    reason,
                    generation: running.generation,
                });
            }
        }
    }

    /// The machine resets (watchdog, power): everything is released.
    pub fn reset(&mut self) -> Vec<Effect> {
        self.running = None;
        self.pinned.clear();
        self.mounted = false;
        std::mem::take(&mut self.physical)
            .into_iter()
            .map(Effect::Release)
            .collect()
    }

    /// The agent died: its current step's process goes on alone and ends
    /// as planned (its acquisition already counted at its start); nothing
    /// more is started.
    pub fn crash(&mut self) {
        self.running = None;
    }

    pub fn holding(&self) -> Holding {
        self.converger.holding(self.target.sequence)
    }

    pub fn role(&self) -> &Role {
        &self.target.role
    }
}

/// The simulated steps of a job, in the runbooks' order.
fn steps_of(job: &Job) -> Vec<Step> {
    let stops = job.stop.iter().map(|e| Step::Stop(e.clone()));
    let mut steps: Vec<Step> = Vec::new();
    match job.kind {
        JobKind::Promote => {
            steps.extend(stops);
            steps.push(Step::Unmount);
            steps.extend((0..PROMOTE_STEPS).map(Step::Take));
        }
        JobKind::Demote => {
            steps.push(Step::DropVip);
            steps.extend(stops);
            steps.extend((0..DEMOTE_STEPS).map(Step::Release));
        }
        JobKind::Follow { .. } => {
            steps.extend(stops);
            steps.push(Step::Unmount);
            steps.push(Step::Mount);
        }
        JobKind::Quiesce => {
            steps.extend(stops);
            steps.push(Step::Unmount);
        }
        JobKind::Place => steps.extend(stops),
        JobKind::RideThrough { .. } => steps.push(Step::Probe),
    }
    steps.extend(job.start.iter().map(|e| Step::Start(e.clone())));
    steps
}
