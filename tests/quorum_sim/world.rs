//! The discrete-event world: nodes (agent process + worker + clock), the
//! network, a queue of timed events, the ledger of holdings, a trace of
//! what happened and the liveness watch.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rcbsd_failover::election::ReceivedAdvert;
use rcbsd_failover::quorum::Holding;
use rcbsd_failover::wire::heartbeat::{Heartbeat, Resource};

use super::agent::{Agent, NodeConfig, Outcome};
use super::clock::NodeClock;
use super::ledger::Ledger;
use super::network::{deliveries, Conditions, Links};
use super::worker::{Effect, Next, Worker};
use crate::rng::Rng;

/// Trace lines kept for a failure report.
const TRACE_LINES: usize = 120;

/// A bound on events per run, so a core that loops fails instead of hanging.
const MAX_EVENTS: u64 = 20_000_000;

/// Something the scenario does to the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chaos {
    /// Start the agent (first start, or restart by the supervisor after a
    /// crash, or power-on): a new incarnation.
    Start(usize),
    /// The agent process dies; what its worker held stays held.
    Crash(usize),
    /// The machine goes off: everything it held is released at once.
    PowerOff(usize),
    /// Group of each node.
    Partition(Vec<u8>),
    CutOneWay(usize, usize),
    Heal,
    Network(Conditions),
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
        holding: Holding,
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

pub struct Node {
    pub config: NodeConfig,
    clock: NodeClock,
    pub agent: Option<Agent>,
    pub worker: Worker,
    /// Bumped at every start and crash: events of an earlier life are void.
    life: u64,
    incarnations: u64,
    wakes: BTreeSet<Duration>,
    quorum: bool,
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
    /// Promote runbooks begun (the master resources changing hands).
    pub promotes: u64,
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
    /// Environments and their preference lists (node indices).
    environments: Vec<(String, Vec<usize>)>,
    pub ledger: Ledger,
    pub stats: Stats,
    trace: VecDeque<String>,
    /// Since when the cluster is settled (see [`World::is_settled`]).
    pub settled_since: Option<Duration>,
    /// Since when one master holds the VIP (see [`World::has_one_master`]).
    pub master_since: Option<Duration>,
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
            .quorum
            .placement
            .iter()
            .map(|e| {
                let order = e
                    .nodes
                    .iter()
                    .map(|n| configs.iter().position(|c| c.quorum.membership.me == *n))
                    .map(|i| i.expect("placement names a cluster node"))
                    .collect();
                (e.name.clone(), order)
            })
            .collect();
        let nodes = configs
            .into_iter()
            .zip(drift_ppm)
            .map(|(config, drift)| Node {
                config,
                // Arbitrary origins: clocks agree on nothing but their rates.
                clock: NodeClock::new(base + rng.duration_up_to(Duration::from_secs(100)), *drift),
                agent: None,
                worker: Worker::starting_with(false, BTreeSet::new()),
                life: 0,
                incarnations: 0,
                wakes: BTreeSet::new(),
                quorum: false,
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
            environments,
            ledger: Ledger::default(),
            stats: Stats::default(),
            trace: VecDeque::new(),
            settled_since: None,
            master_since: None,
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
                "  n{i}: holds master {} envs {:?} promoted {}",
                holding.master,
                holding.environments,
                n.worker.is_promoted()
            );
            let Some(agent) = n.agent.as_ref() else {
                let _ = writeln!(out, ", agent down");
                continue;
            };
            let now = n.clock.at(self.now);
            let claims: Vec<String> = agent
                .state
                .membership()
                .claims()
                .map(ToString::to_string)
                .collect();
            let _ = writeln!(
                out,
                ", {} quorum {} claims {claims:?} allowed {:?}",
                agent.router.state(),
                agent.has_quorum(now),
                agent.state.allowed(now)
            );
            for (name, decision) in agent.state.decisions() {
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
        self.nodes[node].agent.is_some()
    }

    /// One node has completed a promote and holds the master resources
    /// alone, and every environment whose list holds a node that is up runs
    /// (has completed its start) somewhere.
    pub fn is_settled(&self) -> bool {
        self.has_one_master()
            && self.environments.iter().all(|(name, order)| {
                !order.iter().any(|&n| self.is_up(n))
                    || self
                        .nodes
                        .iter()
                        .any(|node| node.worker.running().any(|e| e == name))
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
        self.nodes[node].life == life && self.nodes[node].agent.is_some()
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Chaos(chaos) => self.chaos(chaos),
            Event::HeartbeatTick { node, life } if self.alive(node, life) => {
                self.send_heartbeat(node);
                let n = &self.nodes[node];
                let next = n.clock.at(self.now) + n.config.heartbeat_interval;
                let at = n.clock.real_when(next);
                self.push(at, Event::HeartbeatTick { node, life });
            }
            Event::Wake { node, life } if self.alive(node, life) => {
                self.nodes[node].wakes.remove(&self.now);
                self.with_agent(node, |agent, now, out| agent.router_timeout(now, out));
            }
            Event::Heartbeat { to, heartbeat } if self.is_up(to) => {
                self.with_agent(to, |agent, now, out| {
                    agent.heartbeat_received(heartbeat, now, out)
                });
            }
            Event::Advert { to, advert } if self.is_up(to) => {
                self.with_agent(to, |agent, now, out| agent.advert(advert, now, out));
            }
            Event::StepDone { node, life } if self.alive(node, life) => {
                let effects = self.nodes[node].worker.finish();
                self.apply(node, effects);
                self.drive_worker(node);
            }
            Event::Report {
                node,
                life,
                holding,
            } if self.alive(node, life) => {
                self.with_agent(node, |agent, now, out| {
                    agent.holding_reported(holding, now, out)
                });
            }
            // For a node that is down or was restarted since.
            _ => {}
        }
    }

    fn chaos(&mut self, chaos: Chaos) {
        self.note(format!("chaos {chaos:?}"));
        match chaos {
            Chaos::Start(node) => self.start(node),
            Chaos::Crash(node) => {
                let n = &mut self.nodes[node];
                if n.agent.take().is_some() {
                    n.life += 1;
                    n.worker.crash();
                    n.wakes.clear();
                }
            }
            Chaos::PowerOff(node) => {
                let n = &mut self.nodes[node];
                n.agent = None;
                n.life += 1;
                n.wakes.clear();
                n.worker.crash();
                let held = n.worker.holding();
                n.worker = Worker::starting_with(false, BTreeSet::new());
                if held.master {
                    self.ledger.release(self.now, node, Resource::Master);
                }
                for name in held.environments {
                    self.ledger
                        .release(self.now, node, Resource::Environment(name));
                }
            }
            Chaos::Partition(groups) => self.links.partition(&groups),
            Chaos::CutOneWay(from, to) => self.links.cut_one_way(from, to),
            Chaos::Heal => self.links.heal(),
            Chaos::Network(conditions) => self.conditions = conditions,
        }
    }

    /// A (re)start: a new incarnation finds what the last one left held.
    fn start(&mut self, node: usize) {
        if self.is_up(node) {
            return;
        }
        let now = self.now;
        let n = &mut self.nodes[node];
        n.life += 1;
        n.incarnations += 1;
        let found = n.worker.holding();
        n.worker = Worker::starting_with(found.master, found.environments.clone());
        let local = n.clock.at(now);
        let mut out = Outcome::default();
        // Incarnations differ across starts, as the agent's do (time-based).
        let incarnation = n.incarnations * 1000 + node as u64;
        let found = Holding {
            applied: 0,
            ..found
        };
        n.agent = Some(Agent::start(
            n.config.clone(),
            incarnation,
            found,
            local,
            &mut out,
        ));
        let life = n.life;
        self.after(node, out);
        self.push(now, Event::HeartbeatTick { node, life });
    }

    fn send_heartbeat(&mut self, from: usize) {
        let mut out = Outcome::default();
        let n = &mut self.nodes[from];
        let now = n.clock.at(self.now);
        let Some(agent) = n.agent.as_mut() else {
            return;
        };
        let heartbeat = agent.heartbeat(now, &mut out);
        self.after(from, out);
        for to in 0..self.nodes.len() {
            if to == from || !self.links.reaches(from, to) {
                continue;
            }
            for delay in deliveries(&mut self.rng, &self.conditions) {
                let heartbeat = heartbeat.clone();
                self.push(self.now + delay, Event::Heartbeat { to, heartbeat });
            }
        }
    }

    fn with_agent(&mut self, node: usize, f: impl FnOnce(&mut Agent, Instant, &mut Outcome)) {
        let mut out = Outcome::default();
        let n = &mut self.nodes[node];
        let now = n.clock.at(self.now);
        let Some(agent) = n.agent.as_mut() else {
            return;
        };
        f(agent, now, &mut out);
        self.after(node, out);
    }

    /// Carries out what an evaluation asked for: adverts, the decision for
    /// the worker, and the agent's next wake-ups.
    fn after(&mut self, node: usize, out: Outcome) {
        for entered in out.master_changes {
            if entered {
                self.stats.elections += 1;
            }
            let verb = if entered { "enters" } else { "leaves" };
            self.note(format!("n{node} {verb} VRRP master"));
        }
        let params = self.nodes[node].config.params.clone();
        for priority in out.adverts {
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
        if let Some(decision) = out.decision {
            self.note(format!(
                "n{node} publishes #{} {:?} envs {:?}",
                decision.sequence, decision.role, decision.environments
            ));
            self.nodes[node].worker.decide(decision);
            self.drive_worker(node);
        }
        self.schedule_wakes(node);
        self.note_quorum(node);
    }

    fn schedule_wakes(&mut self, node: usize) {
        let n = &self.nodes[node];
        let Some(agent) = n.agent.as_ref() else {
            return;
        };
        let local = n.clock.at(self.now);
        let wanted: Vec<Duration> = agent
            .wake_ups(local)
            .into_iter()
            .flatten()
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
        let Some(agent) = n.agent.as_ref() else {
            return;
        };
        let quorum = agent.has_quorum(n.clock.at(self.now));
        if quorum != n.quorum {
            self.nodes[node].quorum = quorum;
            let what = if quorum { "gains" } else { "loses" };
            self.note(format!("n{node} {what} quorum"));
        }
    }

    fn drive_worker(&mut self, node: usize) {
        let life = self.nodes[node].life;
        match self.nodes[node].worker.next() {
            Next::Busy | Next::Converged(None) => {}
            Next::Begin(step, effects) => {
                if matches!(step, super::worker::Step::Promote(0)) {
                    self.stats.promotes += 1;
                }
                self.note(format!("n{node} begins {step:?}"));
                self.apply(node, effects);
                let took = self.step_duration();
                self.push(self.now + took, Event::StepDone { node, life });
            }
            Next::Converged(Some(holding)) => {
                self.push(
                    self.now,
                    Event::Report {
                        node,
                        life,
                        holding,
                    },
                );
            }
        }
    }

    fn step_duration(&mut self) -> Duration {
        let (min, max) = (self.steps.min.as_micros(), self.steps.max.as_micros());
        Duration::from_micros(self.rng.range(min as u64, max as u64))
    }

    fn apply(&mut self, node: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Acquire(resource) => self.ledger.acquire(self.now, node, resource),
                Effect::Release(resource) => self.ledger.release(self.now, node, resource),
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
}
