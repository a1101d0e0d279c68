//! One running agent process: the real `election::Router` and
//! `quorum::ClusterState`, joined exactly as the agent's loop joins them.
//! Only this node's clock is ever passed in.

use std::time::{Duration, Instant};

use rcbsd_failover::election::priority::{self, Inputs, Override};
use rcbsd_failover::election::{Action, Input, Params, ReceivedAdvert, Router, State};
use rcbsd_failover::quorum::{
    gate, Allowed, ClusterState, Gate, Holding, LocalReport, StateSettings,
};
use rcbsd_failover::wire::heartbeat::Heartbeat;

use super::worker::{Decision, Role};

/// What a node is configured with (the same on every start).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub params: Params,
    pub may_be_master: bool,
    pub quorum: StateSettings,
    pub heartbeat_interval: Duration,
    /// Calls `note_published` again with the last decision at every
    /// evaluation, not only when a new one is published: the candidate
    /// fix for stuck claims (docs/simulation.md, "Findings"). Off by
    /// default: the default glue is the agent's.
    pub republish: bool,
}

/// What one evaluation asks of the world.
#[derive(Debug, Default)]
pub struct Outcome {
    pub adverts: Vec<u8>,
    /// `Some(entered)` when the router entered or left Master.
    pub master_changes: Vec<bool>,
    pub decision: Option<Decision>,
}

pub struct Agent {
    pub config: NodeConfig,
    pub router: Router,
    pub state: ClusterState,
    priority: u8,
    sequence: u64,
    published: Option<(Gate, Role)>,
}

impl Agent {
    /// Starts with what the worker found held (the master marker and the
    /// environments detected running); the router starts ineligible, as
    /// quorum is not yet known.
    pub fn start(
        config: NodeConfig,
        incarnation: u64,
        found: Holding,
        now: Instant,
        out: &mut Outcome,
    ) -> Self {
        let mut state = ClusterState::new(config.quorum.clone(), incarnation, now);
        state.set_holding(found);
        let mut router = Router::new(config.params.clone());
        take(router.handle(Input::SetPriority(0), now), out);
        take(router.handle(Input::Startup, now), out);
        let mut agent = Agent {
            config,
            router,
            state,
            priority: 0,
            sequence: 0,
            published: None,
        };
        agent.evaluate(now, out);
        agent
    }

    pub fn advert(&mut self, advert: ReceivedAdvert, now: Instant, out: &mut Outcome) {
        let actions = self.router.handle(Input::Advert(advert), now);
        take(actions, out);
        self.evaluate(now, out);
    }

    pub fn heartbeat_received(&mut self, heartbeat: Heartbeat, now: Instant, out: &mut Outcome) {
        // Stale and duplicate heartbeats are refused by the core itself.
        let _ = self.state.receive(heartbeat, now);
        self.evaluate(now, out);
    }

    pub fn router_timeout(&mut self, now: Instant, out: &mut Outcome) {
        if self.router.poll_timeout().is_some_and(|at| at <= now) {
            let actions = self.router.handle(Input::Timeout, now);
            take(actions, out);
        }
        self.evaluate(now, out);
    }

    pub fn holding_reported(&mut self, holding: Holding, now: Instant, out: &mut Outcome) {
        self.state.set_holding(holding);
        self.evaluate(now, out);
    }

    /// The heartbeat to send now, after an evaluation.
    pub fn heartbeat(&mut self, now: Instant, out: &mut Outcome) -> Heartbeat {
        self.evaluate(now, out);
        let local = LocalReport {
            state: Some(self.router.state()),
            priority: self.priority,
            following: self.router.master(),
            // The rest (config hash, running, handoffs) is filled in by
            // the core or unused here.
            ..LocalReport::default()
        };
        self.state.heartbeat(now, &local)
    }

    /// When this agent must be woken up besides messages: the router's
    /// timer and the next fence point.
    pub fn wake_ups(&self, now: Instant) -> [Option<Instant>; 2] {
        [self.router.poll_timeout(), self.state.next_fence_point(now)]
    }

    pub fn is_master(&self) -> bool {
        self.router.state() == State::Master
    }

    pub fn has_quorum(&self, now: Instant) -> bool {
        self.state.has_quorum(now)
    }

    /// The agent's glue, in the agent's order: quorum → effective priority
    /// → claims → what the leases allow → the gate → publish if changed.
    pub fn evaluate(&mut self, now: Instant, out: &mut Outcome) {
        let quorum = self.state.has_quorum(now);
        let effective = priority::effective(Inputs {
            configured: self.config.params.priority,
            override_: Override::None,
            may_be_master: self.config.may_be_master,
            quorum,
        });
        if effective != self.priority {
            self.priority = effective;
            let actions = self.router.handle(Input::SetPriority(effective), now);
            take(actions, out);
        }
        let election_master = self.is_master();
        self.state.update_claims(election_master, now);
        let allowed = self.state.allowed(now);
        let gate = gate(election_master, &allowed);
        let role = if gate.master {
            Role::Master
        } else if gate.awaiting_lease {
            Role::Follower(None)
        } else {
            match self.router.state() {
                State::Initialize => Role::Undecided,
                _ => Role::Follower(self.router.master()),
            }
        };
        let current = (gate, role);
        if self.published.as_ref() == Some(&current) {
            if self.config.republish {
                let gate = &current.0;
                self.state.note_published(
                    self.sequence,
                    &Allowed {
                        master: gate.master,
                        environments: gate.environments.clone(),
                    },
                );
            }
            return;
        }
        let (gate, role) = current.clone();
        self.published = Some(current);
        self.sequence += 1;
        self.state.note_published(
            self.sequence,
            &Allowed {
                master: gate.master,
                environments: gate.environments.clone(),
            },
        );
        out.decision = Some(Decision {
            sequence: self.sequence,
            role,
            environments: gate.environments,
        });
    }
}

fn take(actions: Vec<Action>, out: &mut Outcome) {
    for action in actions {
        match action {
            Action::SendAdvert { priority } => out.adverts.push(priority),
            Action::StateChange { from, to, .. } => {
                if from == State::Master || to == State::Master {
                    out.master_changes.push(to == State::Master);
                }
            }
            Action::ResendGarp { .. } => {}
        }
    }
}
