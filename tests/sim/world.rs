//! The discrete-event world: N election cores on a fake clock (a base
//! `Instant` plus offsets) and a fake multicast segment with loss, delay and
//! partitions. Each core's `poll_timeout` is its timer event; each delivered
//! advert is an `Input::Advert`. Every call into a core is checked for
//! internal consistency; a violation is returned as an error string.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rcbsd_failover::election::{Action, Input, Params, Reason, ReceivedAdvert, Router};
use rcbsd_failover::wire::VrrpState;

use super::rng::Rng;

/// A bound on events per `run_until`, so a core whose timer never advances
/// fails the test instead of hanging it.
const MAX_EVENTS_PER_RUN: u64 = 5_000_000;

/// Mixed into the seed so the network's draws (loss, delay) are a stream of
/// their own, not a replay of the scenario generator's.
const NETWORK_STREAM: u64 = 0x6e65_7477_6f72_6b21;

/// One recorded state change.
#[derive(Clone, Debug)]
pub struct Transition {
    pub at: Duration,
    pub node: usize,
    pub from: VrrpState,
    pub to: VrrpState,
    pub reason: Reason,
}

/// The network's behaviour for each advert sent.
#[derive(Clone, Copy, Debug)]
pub struct Network {
    /// Chance, in percent, that one receiver misses one advert.
    pub loss_percent: u64,
    /// Each delivery is delayed uniformly in `0..=max_delay`.
    pub max_delay: Duration,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Duration,
    seq: u64,
    to: usize,
    source: std::net::IpAddr,
    priority: u8,
    interval: u16,
}

struct Node {
    /// The configuration a (re)started node runs with.
    configured: Params,
    /// `None` while the node is down.
    router: Option<Router>,
}

pub struct World {
    base: Instant,
    now: Duration,
    rng: Rng,
    nodes: Vec<Node>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    network: Network,
    /// Partition group of each node: adverts reach only the same group.
    groups: Vec<u32>,
    pub transitions: Vec<Transition>,
    /// `(time, node, other master)` for every `ResendGarp`.
    pub garps: Vec<(Duration, usize, std::net::IpAddr)>,
}

impl World {
    /// All nodes start down; `start` brings one up.
    pub fn new(configured: Vec<Params>, network: Network, seed: u64) -> Self {
        let groups = vec![0; configured.len()];
        World {
            base: Instant::now(),
            now: Duration::ZERO,
            rng: Rng::new(seed ^ NETWORK_STREAM),
            nodes: configured
                .into_iter()
                .map(|configured| Node {
                    configured,
                    router: None,
                })
                .collect(),
            in_flight: BinaryHeap::new(),
            seq: 0,
            network,
            groups,
            transitions: Vec::new(),
            garps: Vec::new(),
        }
    }

    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn configured(&self, node: usize) -> &Params {
        &self.nodes[node].configured
    }

    pub fn is_up(&self, node: usize) -> bool {
        self.nodes[node].router.is_some()
    }

    pub fn router(&self, node: usize) -> Option<&Router> {
        self.nodes[node].router.as_ref()
    }

    /// The node's state; a down node counts as Initialize.
    pub fn state(&self, node: usize) -> VrrpState {
        self.router(node)
            .map_or(VrrpState::Initialize, Router::state)
    }

    pub fn masters(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.state(i) == VrrpState::Master)
            .collect()
    }

    pub fn set_network(&mut self, network: Network) {
        self.network = network;
    }

    pub fn partition(&mut self, groups: Vec<u32>) {
        self.groups = groups;
    }

    pub fn heal(&mut self) {
        self.groups = vec![0; self.len()];
    }

    /// A new agent process: a fresh core with the configured parameters.
    pub fn start(&mut self, node: usize) -> Result<(), String> {
        if self.is_up(node) {
            return Ok(());
        }
        self.nodes[node].router = Some(Router::new(self.nodes[node].configured.clone()));
        self.input(node, Input::Startup)
    }

    /// A crash: the process vanishes without a word.
    pub fn crash(&mut self, node: usize) {
        self.nodes[node].router = None;
    }

    /// A clean stop (SIGTERM): the Shutdown event, then the process exits.
    pub fn stop(&mut self, node: usize) -> Result<(), String> {
        if !self.is_up(node) {
            return Ok(());
        }
        self.input(node, Input::Shutdown)?;
        self.nodes[node].router = None;
        Ok(())
    }

    /// A configuration reload, as the agent does it: new parameters, then the
    /// effective priority.
    pub fn reload(&mut self, node: usize, params: Params, priority: u8) -> Result<(), String> {
        let now = self.instant();
        let Some(router) = self.nodes[node].router.as_mut() else {
            return Ok(());
        };
        let before = router.state();
        let actions = router.set_params(params, now);
        self.apply(node, before, actions, false)?;
        self.input(node, Input::SetPriority(priority))
    }

    /// Feed one input to a running node and carry out its actions.
    pub fn input(&mut self, node: usize, input: Input) -> Result<(), String> {
        let now = self.instant();
        let is_timeout = input == Input::Timeout;
        let Some(router) = self.nodes[node].router.as_mut() else {
            return Ok(());
        };
        let before = router.state();
        let actions = router.handle(input, now);
        self.apply(node, before, actions, is_timeout)
    }

    /// Run events until `end` (inclusive); the clock then reads `end`.
    pub fn run_until(&mut self, end: Duration) -> Result<(), String> {
        let mut events = 0u64;
        loop {
            let next_delivery = self.in_flight.peek().map(|Reverse(m)| m.at);
            let next_timer = self.next_timer();
            // Deliveries before timers at the same instant: any order is
            // valid, this one is deterministic.
            let delivery_first = match (next_delivery, next_timer) {
                (Some(d), Some((t, _))) => d <= t,
                (Some(_), None) => true,
                _ => false,
            };
            let at = if delivery_first {
                next_delivery
            } else {
                next_timer.map(|(t, _)| t)
            };
            match at {
                Some(at) if at <= end => self.now = self.now.max(at),
                _ => {
                    self.now = end;
                    return Ok(());
                }
            }
            events += 1;
            if events > MAX_EVENTS_PER_RUN {
                return Err(format!(
                    "more than {MAX_EVENTS_PER_RUN} events before {end:?}"
                ));
            }
            if delivery_first {
                if let Some(Reverse(m)) = self.in_flight.pop() {
                    self.deliver(m)?;
                }
            } else if let Some((_, node)) = next_timer {
                self.input(node, Input::Timeout)?;
            }
        }
    }

    fn next_timer(&self) -> Option<(Duration, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let at = n.router.as_ref()?.poll_timeout()?;
                Some((at.saturating_duration_since(self.base), i))
            })
            .min()
    }

    fn deliver(&mut self, m: InFlight) -> Result<(), String> {
        let advert = ReceivedAdvert {
            source: m.source,
            priority: m.priority,
            max_advert_interval: rcbsd_failover::wire::Centis(m.interval),
        };
        self.input(m.to, Input::Advert(advert))
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Carry out one call's actions and check them against the core's state.
    fn apply(
        &mut self,
        node: usize,
        before: VrrpState,
        actions: Vec<Action>,
        was_timeout: bool,
    ) -> Result<(), String> {
        let mut state = before;
        let mut sent_priorities = Vec::new();
        for action in actions {
            match action {
                Action::SendAdvert { priority } => {
                    sent_priorities.push(priority);
                    self.multicast(node, priority);
                }
                Action::StateChange { from, to, reason } => {
                    if from != state || from == to {
                        return Err(format!(
                            "n{node} at {:?}: StateChange {from}->{to} while in {state}",
                            self.now
                        ));
                    }
                    state = to;
                    self.transitions.push(Transition {
                        at: self.now,
                        node,
                        from,
                        to,
                        reason,
                    });
                }
                Action::ResendGarp { other_master } => {
                    if state != VrrpState::Master {
                        return Err(format!("n{node}: ResendGarp in {state}"));
                    }
                    self.garps.push((self.now, node, other_master));
                }
            }
        }
        let Some(router) = self.nodes[node].router.as_ref() else {
            return Ok(());
        };
        if router.state() != state {
            return Err(format!(
                "n{node}: state() is {} but the actions say {state}",
                router.state()
            ));
        }
        for p in sent_priorities {
            // Only a master advertises; priority 0 only when leaving Master;
            // a master yielding to a higher one sends one last advert of its
            // own priority (so a winner that never heard it re-announces).
            let fine = if p == 0 {
                before == VrrpState::Master && state != VrrpState::Master
            } else {
                state == VrrpState::Master
                    || (before == VrrpState::Master && state == VrrpState::Backup)
            };
            if !fine {
                return Err(format!("n{node}: SendAdvert {p} going {before}->{state}"));
            }
        }
        match (state, router.poll_timeout()) {
            (VrrpState::Initialize, Some(_)) => {
                return Err(format!("n{node}: a timer armed in Initialize"));
            }
            (VrrpState::Initialize, None) => {}
            (s, None) => return Err(format!("n{node}: no timer armed in {s}")),
            (s, Some(at)) => {
                if was_timeout && at <= self.instant() {
                    return Err(format!("n{node}: timer did not advance in {s}"));
                }
            }
        }
        Ok(())
    }

    fn multicast(&mut self, from: usize, priority: u8) {
        let Some(router) = self.nodes[from].router.as_ref() else {
            return;
        };
        // A master always sends its own configured interval (§6.4.3).
        let source = router.params().primary_address;
        let interval = router.params().advert_interval.0;
        for to in 0..self.len() {
            if to == from || self.groups.get(to) != self.groups.get(from) {
                continue;
            }
            if self.rng.chance(self.network.loss_percent) {
                continue;
            }
            let delay = self.rng.duration_up_to(self.network.max_delay);
            self.seq += 1;
            self.in_flight.push(Reverse(InFlight {
                at: self.now + delay,
                seq: self.seq,
                to,
                source,
                priority,
                interval,
            }));
        }
    }

    /// The last `n` transitions, one per line, for failure reports.
    pub fn recent_transitions(&self, n: usize) -> String {
        let skip = self.transitions.len().saturating_sub(n);
        self.transitions
            .iter()
            .skip(skip)
            .map(|t| {
                format!(
                    "  {:>10.3?} n{} {} -> {} ({})\n",
                    t.at,
                    t.node,
                    t.from,
                    t.to,
                    t.reason.as_str()
                )
            })
            .collect()
    }
}
