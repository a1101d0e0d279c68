//! The discrete-event world: nodes (the real `node::NodeCore`, the
//! simulated worker around the real `Converger`, a drifting clock, a
//! watchdog), the network, a queue of timed events, the ledger of what each
//! machine physically holds, a trace of what happened and the liveness
//! watch.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rcbsd_failover::election::priority::Override;
use rcbsd_failover::election::ReceivedAdvert;
use rcbsd_failover::node::converge::Backoff;
use rcbsd_failover::node::{self, Effect, Input, NodeCore, Verdict, WorkerReport};
use rcbsd_failover::wire::heartbeat::{Heartbeat, Resource};
use rcbsd_failover::wire::VrrpState;

use super::clock::NodeClock;
use super::ledger::Ledger;
use super::network::{deliveries, Conditions, Links};
use super::worker::{self, Faults, SimWorker};
use crate::rng::Rng;

/// Trace lines kept for a failure report.
const TRACE_LINES: usize = 160;

/// A bound on events per run, so a core that loops fails instead of hanging.
const MAX_EVENTS: u64 = 5_000_000;

/// How long the start-up probe takes.
const PROBE_TIME: Duration = Duration::from_millis(10);

/// Something the scenario does to the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chaos {
    /// Start the agent (first start, or restart by the supervisor after a
    /// crash, or power-on): a new incarnation.
    Start(usize),
    /// The agent process dies; what the machine holds stays held.
    Crash(usize),
    /// The agent dies and `state_dir` is lost with the wall clock behind:
    /// the next incarnation is *lower* than this one.
    CrashLosingState(usize),
    /// The machine goes off: everything it held is released at once.
    PowerOff(usize),
    /// SIGSTOP for this long: nothing of the agent runs (its watchdog is
    /// not patted), the steps' processes wait for it.
    Freeze(usize, Duration),
    /// Group of each node.
    Partition(Vec<u8>),
    CutOneWay(usize, usize),
    Heal,
    Network(Conditions),
    /// The operator's `promote`, `demote` or `resume` on a node.
    Operator(usize, Operator),
    /// `rcbsd-failover move ENV TO` on a node (refused unless it runs ENV).
    Move(usize, String, usize),
    /// Environment stops fail with this chance on a node.
    StopsFail(usize, u64),
    /// Every demote's storage step fails on a node (or works again).
    ReleasesFail(usize, bool),
    /// The next acquiring step of a node hangs this long; killable or not.
    HangNext(usize, Duration, bool),
    /// Every fault of the nodes cleared (stops and releases work again).
    ClearFaults,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Promote,
    Demote,
    Resume,
}

enum Event {
    HeartbeatTick {
        node: usize,
        life: u64,
    },
    Wake {
        node: usize,
        life: u64,
    },
    WatchdogTick {
        node: usize,
        life: u64,
    },
    /// A pat's countdown ends now unless patted since (any life).
    WatchdogCheck {
        node: usize,
    },
    Heartbeat {
        to: usize,
        heartbeat: Heartbeat,
    },
    Advert {
        to: usize,
        advert: ReceivedAdvert,
    },
    StepDone {
        node: usize,
        life: u64,
    },
    Report {
        node: usize,
        life: u64,
        report: WorkerReport,
    },
    Thaw {
        node: usize,
    },
    Chaos(Chaos),
}

struct Queued {
    at: Duration,
    order: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Reversed: the heap pops the earliest event first, FIFO among equals.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

/// What one node is configured with (the same at every start).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub settings: node::Settings,
    pub heartbeat_interval: Duration,
    /// The watchdog's countdown, if the node has one.
    pub watchdog: Option<Duration>,
    pub backoff: Backoff,
    /// `follow.ride_through_timeout` when its followers ride through a
    /// master change (issue 14); `None`: remount.
    pub ride_through: Option<Duration>,
}

pub struct Node {
    pub config: NodeConfig,
    clock: NodeClock,
    pub core: Option<NodeCore>,
    pub worker: SimWorker,
    /// Bumped at every start and crash: events of an earlier life are void.
    life: u64,
    incarnation: u64,
    wakes: BTreeSet<Duration>,
    quorum: bool,
    frozen_until: Option<Duration>,
    /// When the armed watchdog resets the machine (real time).
    watchdog_deadline: Option<Duration>,
    /// The faults injected, kept across restarts of the agent.
    faults: Faults,
}

/// Runbook step durations.
#[derive(Clone, Copy, Debug)]
pub struct Steps {
    pub min: Duration,
    pub max: Duration,
}

/// Counters reported per run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Routers entering the VRRP Master state.
    pub elections: u64,
    /// Promote jobs begun.
    pub promotes: u64,
    /// Machines reset by their watchdog.
    pub resets: u64,
    /// Kills of an acquiring step by the fence.
    pub kills: u64,
    pub events: u64,
}

pub struct World {
    now: Duration,
    rng: Rng,
    pub nodes: Vec<Node>,
    queue: BinaryHeap<Queued>,
    order: u64,
    links: Links,
    conditions: Conditions,
    steps: Steps,
    /// How long a machine takes to boot after a watchdog reset.
    pub boot: Duration,
    /// Environments and their preference lists (node indices).
    environments: Vec<(String, Vec<usize>)>,
    pub ledger: Ledger,
    pub stats: Stats,
    trace: VecDeque<String>,
    /// Since when the cluster is settled (see [`World::is_settled`]).
    pub settled_since: Option<Duration>,
    /// Since when one master holds the VIP (see [`World::has_one_master`]).
    pub master_since: Option<Duration>,
    /// Nodes whose quorum settings differ from the others' (a config
    /// mismatch): never counted, so not expected to run anything.
    pub excluded: Vec<bool>,
    /// (when, server, client): a demote dropped the VIP while a node still
    /// had the shared dirs mounted from it (what a planned hand-over
    /// avoids; a forced fence cannot).
    pub dead_server_mounts: Vec<(Duration, usize, usize)>,
}

impl World {
    /// Every node starts down; schedule `Chaos::Start` to bring one up.
    pub fn new(
        configs: Vec<NodeConfig>,
        drift_ppm: &[i32],
        conditions: Conditions,
        steps: Steps,
        seed: u64,
    ) -> Self {
        let base = Instant::now();
        let mut rng = Rng::new(seed ^ 0x7175_6f72_756d_5f73);
        let environments = configs[0]
            .settings
            .cluster
            .as_ref()
            .map(|c| c.state.placement.clone())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let order = e
                    .nodes
                    .iter()
                    .filter_map(|n| {
                        configs.iter().position(|c| {
                            c.settings
                                .cluster
                                .as_ref()
                                .is_some_and(|s| s.state.membership.me == *n)
                        })
                    })
                    .collect();
                (e.name.clone(), order)
            })
            .collect();
        let nodes = configs
            .into_iter()
            .zip(drift_ppm)
            .enumerate()
            .map(|(i, (config, drift))| Node {
                worker: SimWorker::start(
                    BTreeSet::new(),
                    BTreeMap::new(),
                    &[],
                    Faults::default(),
                    config.backoff,
                    config.ride_through,
                ),
                config,
                // Arbitrary origins: clocks agree on nothing but their rates.
                clock: NodeClock::new(base + rng.duration_up_to(Duration::from_secs(100)), *drift),
                core: None,
                life: 0,
                incarnation: 1_000_000 * (i as u64 + 1),
                wakes: BTreeSet::new(),
                quorum: false,
                frozen_until: None,
                watchdog_deadline: None,
                faults: Faults::default(),
            })
            .collect::<Vec<_>>();
        World {
            now: Duration::ZERO,
            rng,
            links: Links::new(nodes.len()),
            nodes,
            queue: BinaryHeap::new(),
            order: 0,
            conditions,
            steps,
            boot: Duration::from_millis(500),
            environments,
            ledger: Ledger::default(),
            stats: Stats::default(),
            trace: VecDeque::new(),
            settled_since: None,
            master_since: None,
            excluded: Vec::new(),
            dead_server_mounts: Vec::new(),
        }
    }

    pub fn schedule(&mut self, at: Duration, chaos: Chaos) {
        self.push(at, Event::Chaos(chaos));
    }

    /// Runs every event up to `until`; stops at the first safety violation.
    pub fn run_until(&mut self, until: Duration) -> Result<(), String> {
        while self.queue.peek().is_some_and(|q| q.at <= until) {
            let Some(queued) = self.queue.pop() else {
                break;
            };
            self.now = queued.at;
            self.stats.events += 1;
            if self.stats.events > MAX_EVENTS {
                return Err(format!("more than {MAX_EVENTS} events: a livelock"));
            }
            self.handle(queued.event);
            if let Some(violation) = &self.ledger.violation {
                return Err(violation.to_string());
            }
            self.watch_liveness();
        }
        self.now = until;
        Ok(())
    }

    /// The last trace lines, oldest first.
    pub fn trace(&self) -> String {
        let mut out = String::new();
        for line in &self.trace {
            let _ = writeln!(out, "  {line}");
        }
        out
    }

    /// Every node's state now, for a failure report.
    pub fn status(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let holding = n.worker.holding();
            let _ = write!(
                out,
                "  n{i}: physical master {} believes master {} envs {:?} promoted {} release_failures {} watchdog {:?}",
                n.worker.holds_physically(&Resource::Master),
                holding.master,
                holding.environments,
                n.worker.is_promoted(),
                holding.release_failures,
                n.watchdog_deadline
            );
            let Some(core) = n.core.as_ref() else {
                let _ = writeln!(out, ", agent down");
                continue;
            };
            let now = n.clock.at(self.now);
            let Some(cluster) = core.cluster() else {
                let _ = writeln!(out, ", {}", core.state());
                continue;
            };
            let claims: Vec<String> = cluster
                .membership()
                .claims()
                .map(ToString::to_string)
                .collect();
            let _ = writeln!(
                out,
                ", {} prio {} quorum {} claims {claims:?} allowed {:?} fault {:?} retained {} role {:?}",
                core.state(),
                core.router().effective_priority(),
                core.has_quorum(now),
                cluster.allowed(now),
                core.fault().map(|f| &f.reason),
                core.is_retained(),
                n.worker.role(),
            );
            for (name, decision) in cluster.decisions() {
                let _ = writeln!(
                    out,
                    "      {name}: claim {} ({})",
                    decision.claim, decision.reason
                );
            }
        }
        out
    }

    pub fn is_up(&self, node: usize) -> bool {
        self.nodes[node].core.is_some()
    }

    /// One node has completed a promote and holds the master resources
    /// alone, and every environment whose list holds a node that is up runs
    /// (has completed its start) somewhere.
    pub fn is_settled(&self) -> bool {
        self.has_one_master()
            && self.environments.iter().all(|(name, order)| {
                !order
                    .iter()
                    .any(|&n| self.is_up(n) && !self.excluded.get(n).copied().unwrap_or(false))
                    || self
                        .nodes
                        .iter()
                        .any(|node| node.worker.running_environments().contains(name))
            })
    }

    /// One node has completed a promote and holds the master resources
    /// alone.
    pub fn has_one_master(&self) -> bool {
        let holders = self.ledger.holders(&Resource::Master);
        matches!(holders[..], [master] if self.nodes[master].worker.is_promoted())
    }

    fn watch_liveness(&mut self) {
        if self.has_one_master() {
            self.master_since.get_or_insert(self.now);
        } else {
            self.master_since = None;
        }
        if self.is_settled() {
            self.settled_since.get_or_insert(self.now);
        } else {
            self.settled_since = None;
        }
    }

    fn note(&mut self, line: String) {
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace
            .push_back(format!("{:>10.3}s {line}", self.now.as_secs_f64()));
    }

    fn push(&mut self, at: Duration, event: Event) {
        self.order += 1;
        self.queue.push(Queued {
            at,
            order: self.order,
            event,
        });
    }

    fn alive(&self, node: usize, life: u64) -> bool {
        self.nodes[node].life == life && self.nodes[node].core.is_some()
    }

    /// A frozen agent handles nothing until it thaws (the event waits).
    fn frozen(&self, node: usize) -> bool {
        self.nodes[node]
            .frozen_until
            .is_some_and(|until| until > self.now)
    }

    fn handle(&mut self, event: Event) {
        let target = match &event {
            Event::HeartbeatTick { node, .. }
            | Event::Wake { node, .. }
            | Event::WatchdogTick { node, .. }
            | Event::StepDone { node, .. }
            | Event::Report { node, .. } => Some(*node),
            Event::Heartbeat { to, .. } | Event::Advert { to, .. } => Some(*to),
            _ => None,
        };
        if let Some(node) = target {
            if self.frozen(node) {
                let until = self.nodes[node].frozen_until.unwrap_or(self.now);
                self.push(until, event);
                return;
            }
        }
        match event {
            Event::Chaos(chaos) => self.chaos(chaos),
            Event::HeartbeatTick { node, life } if self.alive(node, life) => {
                self.with_core(node, |core, now| core.handle(Input::HeartbeatDue, now));
                let n = &self.nodes[node];
                let next = n.clock.at(self.now) + n.config.heartbeat_interval;
                let at = n.clock.real_when(next);
                self.push(at, Event::HeartbeatTick { node, life });
            }
            Event::Wake { node, life } if self.alive(node, life) => {
                self.nodes[node].wakes.remove(&self.now);
                self.with_core(node, |core, now| core.handle(Input::Timeout, now));
                self.drive_worker(node);
            }
            Event::WatchdogTick { node, life } if self.alive(node, life) => {
                self.tend_watchdog(node);
                if let Some(timeout) = self.nodes[node].config.watchdog {
                    self.push(self.now + timeout / 4, Event::WatchdogTick { node, life });
                }
            }
            Event::WatchdogCheck { node } => {
                let due = self.nodes[node]
                    .watchdog_deadline
                    .is_some_and(|d| d <= self.now);
                if due {
                    self.reset(node, "the watchdog fired");
                }
            }
            Event::Heartbeat { to, heartbeat } if self.is_up(to) => {
                self.with_core(to, |core, now| {
                    core.handle(Input::Heartbeat(heartbeat), now)
                });
            }
            Event::Advert { to, advert } if self.is_up(to) => {
                self.with_core(to, |core, now| core.handle(Input::Advert(advert), now));
            }
            Event::StepDone { node, life } if self.alive(node, life) => {
                let local = self.nodes[node].clock.at(self.now);
                let out = self.nodes[node].worker.step_done(self.now, local);
                self.after_worker(node, out);
                self.drive_worker(node);
            }
            Event::Report { node, life, report } if self.alive(node, life) => {
                self.with_core(node, |core, now| core.handle(Input::Worker(report), now));
            }
            Event::Thaw { node } => {
                self.note(format!("n{node} thaws"));
                self.drive_worker(node);
            }
            // For a node that is down or was restarted since.
            _ => {}
        }
    }

    fn chaos(&mut self, chaos: Chaos) {
        self.note(format!("chaos {chaos:?}"));
        match chaos {
            Chaos::Start(node) => self.start(node),
            Chaos::Crash(node) => self.crash(node, false),
            Chaos::CrashLosingState(node) => self.crash(node, true),
            // Stays off until a Start.
            Chaos::PowerOff(node) => self.reset(node, "power off"),
            Chaos::Freeze(node, length) => {
                if self.is_up(node) {
                    let until = self.now + length;
                    self.nodes[node].frozen_until = Some(until);
                    self.push(until, Event::Thaw { node });
                }
            }
            Chaos::Partition(groups) => self.links.partition(&groups),
            Chaos::CutOneWay(from, to) => self.links.cut_one_way(from, to),
            Chaos::Heal => self.links.heal(),
            Chaos::Network(conditions) => self.conditions = conditions,
            Chaos::Operator(node, op) => {
                if self.is_up(node) && !self.frozen(node) {
                    self.with_core(node, |core, now| {
                        let mut effects = Vec::new();
                        if op == Operator::Resume {
                            effects = core.handle(Input::Resume, now);
                        }
                        let new = match op {
                            Operator::Promote => Override::Promote,
                            Operator::Demote => Override::Demote,
                            Operator::Resume => Override::None,
                        };
                        effects.extend(core.handle(Input::Override(new), now));
                        effects
                    });
                }
            }
            Chaos::Move(node, environment, to) => {
                if self.is_up(node) && !self.frozen(node) {
                    let to_name = self.name(to);
                    let answer = self.with_core_answer(node, |core, now| {
                        core.start_move(&environment, &to_name, now)
                            .map_err(|e| e.to_string())
                    });
                    self.note(format!(
                        "n{node} move {environment} to {to_name}: {answer:?}"
                    ));
                }
            }
            Chaos::StopsFail(node, percent) => {
                self.nodes[node].faults.stop_fail_percent = percent;
                self.nodes[node].worker.faults.stop_fail_percent = percent;
            }
            Chaos::ReleasesFail(node, fails) => {
                self.nodes[node].faults.release_fails = fails;
                self.nodes[node].worker.faults.release_fails = fails;
            }
            Chaos::HangNext(node, length, killable) => {
                self.nodes[node].faults.hang_next = Some((length, killable));
                self.nodes[node].worker.faults.hang_next = Some((length, killable));
            }
            Chaos::ClearFaults => {
                for n in &mut self.nodes {
                    n.faults = Faults::default();
                    n.worker.faults = Faults::default();
                }
            }
        }
    }

    fn name(&self, node: usize) -> String {
        self.nodes[node]
            .config
            .settings
            .cluster
            .as_ref()
            .map_or_else(|| format!("n{node}"), |c| c.state.membership.me.clone())
    }

    fn crash(&mut self, node: usize, lose_state: bool) {
        let n = &mut self.nodes[node];
        if n.core.take().is_some() {
            n.life += 1;
            n.worker.crash();
            n.wakes.clear();
            n.frozen_until = None;
            if lose_state {
                // state_dir gone and the wall clock behind: lower.
                n.incarnation = n.incarnation.saturating_sub(500);
            }
        }
    }

    /// The machine resets (watchdog) or goes off: everything it held is
    /// released at once; a reset machine boots again after `boot`.
    fn reset(&mut self, node: usize, why: &str) {
        self.note(format!("n{node} resets: {why}"));
        let n = &mut self.nodes[node];
        n.core = None;
        n.life += 1;
        n.wakes.clear();
        n.frozen_until = None;
        n.watchdog_deadline = None;
        for effect in n.worker.reset() {
            self.apply(node, effect);
        }
        if why != "power off" {
            self.stats.resets += 1;
            self.schedule(self.now + self.boot, Chaos::Start(node));
        }
    }

    /// A (re)start: a new incarnation looks at what the machine holds.
    fn start(&mut self, node: usize) {
        if self.is_up(node) {
            return;
        }
        let now = self.now;
        let n = &mut self.nodes[node];
        n.life += 1;
        n.incarnation += 1;
        let (physical, pinned) = {
            let (p, q) = n.worker.physical();
            (p.clone(), q.clone())
        };
        let candidates = n
            .config
            .settings
            .cluster
            .as_ref()
            .map(|c| c.candidates.clone())
            .unwrap_or_default();
        let mounted = n.worker.is_mounted();
        n.worker = SimWorker::start(
            physical,
            pinned,
            &candidates,
            n.faults.clone(),
            n.config.backoff,
            n.config.ride_through,
        );
        n.worker.keep_mounts(mounted);
        let local = n.clock.at(now);
        let mut core = NodeCore::new(n.config.settings.clone(), n.incarnation, local);
        let effects = core.handle(Input::Start, local);
        n.core = Some(core);
        let life = n.life;
        let report = n.worker.first_report();
        self.after(node, effects);
        self.push(now + PROBE_TIME, Event::Report { node, life, report });
        self.push(now, Event::HeartbeatTick { node, life });
        if self.nodes[node].config.watchdog.is_some() {
            self.push(now, Event::WatchdogTick { node, life });
        }
    }

    fn with_core(&mut self, node: usize, f: impl FnOnce(&mut NodeCore, Instant) -> Vec<Effect>) {
        let n = &mut self.nodes[node];
        let now = n.clock.at(self.now);
        let Some(core) = n.core.as_mut() else {
            return;
        };
        let effects = f(core, now);
        self.after(node, effects);
    }

    fn with_core_answer<T>(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut NodeCore, Instant) -> T,
    ) -> Option<T> {
        let n = &mut self.nodes[node];
        let now = n.clock.at(self.now);
        let core = n.core.as_mut()?;
        let answer = f(core, now);
        // The next evaluation publishes what the answer changed.
        let effects = core.handle(Input::HeartbeatDue, now);
        self.after(node, effects);
        Some(answer)
    }

    /// Carries out the core's effects: adverts, heartbeats, the decision
    /// for the worker; then the watchdog and the next wake-ups.
    fn after(&mut self, node: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::SendAdvert { priority } => {
                    let params = self.nodes[node].config.settings.params.clone();
                    let advert = ReceivedAdvert {
                        source: params.primary_address,
                        priority,
                        max_advert_interval: params.advert_interval,
                    };
                    for to in 0..self.nodes.len() {
                        if to == node || !self.links.reaches(node, to) {
                            continue;
                        }
                        for delay in deliveries(&mut self.rng, &self.conditions) {
                            self.push(self.now + delay, Event::Advert { to, advert });
                        }
                    }
                }
                Effect::SendHeartbeat(heartbeat) => {
                    for to in 0..self.nodes.len() {
                        if to == node || !self.links.reaches(node, to) {
                            continue;
                        }
                        for delay in deliveries(&mut self.rng, &self.conditions) {
                            let heartbeat = heartbeat.clone();
                            self.push(self.now + delay, Event::Heartbeat { to, heartbeat });
                        }
                    }
                }
                Effect::HeartbeatIgnored(_) | Effect::ResendGarp { .. } => {}
                Effect::Publish { decision, .. } => {
                    self.note(format!(
                        "n{node} publishes #{} {:?} envs {:?}",
                        decision.sequence, decision.role, decision.environments
                    ));
                    let generation = self.nodes[node]
                        .core
                        .as_ref()
                        .map_or(0, NodeCore::generation);
                    let target = decision.target();
                    let allowance = decision.allowance();
                    let now = self.now;
                    let worker = &mut self.nodes[node].worker;
                    let busy_before = worker.busy_until();
                    worker.decide(target, generation, allowance, now);
                    worker.want_report();
                    let busy_after = worker.busy_until();
                    if busy_after != busy_before {
                        self.stats.kills += 1;
                        let life = self.nodes[node].life;
                        if let Some(at) = busy_after {
                            self.push(at, Event::StepDone { node, life });
                        }
                    }
                    self.drive_worker(node);
                }
                Effect::Notice(notice) => {
                    if let node::Notice::StateChange { from, to, .. } = &notice {
                        if *to == VrrpState::Master {
                            self.stats.elections += 1;
                        }
                        self.note(format!("n{node} {from} -> {to}"));
                    } else {
                        self.note(format!("n{node} {notice:?}"));
                    }
                }
            }
        }
        self.tend_watchdog(node);
        self.schedule_wakes(node);
        self.note_quorum(node);
    }

    /// The watchdog as the core says: a pat restarts its countdown.
    fn tend_watchdog(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let (Some(timeout), Some(core)) = (n.config.watchdog, n.core.as_ref()) else {
            return;
        };
        match core.watchdog(n.clock.at(self.now)) {
            Verdict::Pat => {
                let deadline = self.now + timeout;
                n.watchdog_deadline = Some(deadline);
                self.push(deadline, Event::WatchdogCheck { node });
            }
            Verdict::Disarm => n.watchdog_deadline = None,
            Verdict::Withhold { .. } | Verdict::Keep => {}
        }
    }

    fn schedule_wakes(&mut self, node: usize) {
        let n = &self.nodes[node];
        let Some(core) = n.core.as_ref() else {
            return;
        };
        let local = n.clock.at(self.now);
        let wanted: Vec<Duration> = core
            .poll_timeout(local)
            .into_iter()
            .map(|at| n.clock.real_when(at).max(self.now))
            .collect();
        let life = n.life;
        for at in wanted {
            if self.nodes[node].wakes.insert(at) {
                self.push(at, Event::Wake { node, life });
            }
        }
    }

    fn note_quorum(&mut self, node: usize) {
        let n = &self.nodes[node];
        let Some(core) = n.core.as_ref() else {
            return;
        };
        let quorum = core.has_quorum(n.clock.at(self.now));
        if quorum != n.quorum {
            self.nodes[node].quorum = quorum;
            let what = if quorum { "gains" } else { "loses" };
            self.note(format!("n{node} {what} quorum"));
        }
    }

    fn drive_worker(&mut self, node: usize) {
        if !self.is_up(node) || self.frozen(node) {
            return;
        }
        let local = self.nodes[node].clock.at(self.now);
        let steps = (self.steps.min, self.steps.max);
        let now = self.now;
        let busy_before = self.nodes[node].worker.busy_until();
        let out = {
            let n = &mut self.nodes[node];
            n.worker.drive(now, local, &mut self.rng, steps)
        };
        let busy_after = self.nodes[node].worker.busy_until();
        let life = self.nodes[node].life;
        if busy_after.is_some() && busy_after != busy_before {
            if let Some(at) = busy_after {
                self.push(at, Event::StepDone { node, life });
            }
        }
        if let Some(retry) = out.retry_at {
            let at = self.nodes[node].clock.real_when(retry).max(self.now);
            self.push(at, Event::Wake { node, life });
        }
        self.after_worker(node, out);
    }

    fn after_worker(&mut self, node: usize, out: worker::Outcome) {
        for line in out.trace {
            if line.starts_with("job Promote") {
                self.stats.promotes += 1;
            }
            self.note(format!("n{node} {line}"));
        }
        for effect in out.effects {
            self.apply(node, effect);
        }
        let life = self.nodes[node].life;
        for report in out.reports {
            self.push(self.now, Event::Report { node, life, report });
        }
    }

    fn apply(&mut self, node: usize, effect: worker::Effect) {
        match effect {
            worker::Effect::Acquire(resource) => self.ledger.acquire(self.now, node, resource),
            worker::Effect::Release(resource) => self.ledger.release(self.now, node, resource),
            worker::Effect::VipDropped => {
                for (client, other) in self.nodes.iter().enumerate() {
                    if client != node && other.worker.is_mounted() {
                        self.dead_server_mounts.push((self.now, node, client));
                    }
                }
                let line = format!("n{node} drops the VIP");
                self.note(line);
                return;
            }
        }
        if let Some(change) = self.ledger.history.last() {
            let line = change.to_string();
            self.trace.push_back(line);
            if self.trace.len() > TRACE_LINES {
                self.trace.pop_front();
            }
        }
    }
}
