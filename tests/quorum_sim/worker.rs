//! A model of the transition worker (src/agent/transition.rs): it converges
//! on the newest decision with runbooks made of steps that take time, and
//! says which resources it holds at every instant.
//!
//! The contract modeled, from the worker and the shared spec:
//! - a newer decision cancels a runbook between steps, never inside one;
//! - promote: the master resources are held from the start of its first
//!   step (the marker is written before it) until a demote has completed;
//! - demote: the VIP goes first, the storage last; held until its end;
//! - environments: held from the start of their start until the end of
//!   their stop; started only once the role is settled (promoted, or
//!   following a known master); every environment left out of the decision
//!   is stopped first, whatever the role;
//! - after converging on decision `s` (nothing left to do for it) the
//!   worker reports `Holding { applied: s, .. }` once; never earlier.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use rcbsd_failover::quorum::Holding;
use rcbsd_failover::wire::heartbeat::Resource;

/// Steps of the promote runbook (storage, NFS, VIP + gratuitous ARP).
pub const PROMOTE_STEPS: u8 = 3;
/// Steps of the demote runbook (VIP, then NFS and storage).
pub const DEMOTE_STEPS: u8 = 2;

/// What the election loop wants of the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Initialize: leave everything as it is.
    Undecided,
    Master,
    /// Backup, or elected without the lease: no master resources; follow
    /// the master when known.
    Follower(Option<Ipv4Addr>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub sequence: u64,
    pub role: Role,
    pub environments: BTreeSet<String>,
}

/// What the worker knows it did about the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    Nothing,
    /// Master resources, possibly partial until a promote completes.
    Master {
        complete: bool,
    },
    Following(Ipv4Addr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Promote(u8),
    Demote(u8),
    Follow(Ipv4Addr),
    Start(String),
    Stop(String),
}

/// A change of what this node holds, for the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Acquire(Resource),
    Release(Resource),
}

/// What the worker does next.
#[derive(Debug)]
pub enum Next {
    /// A step is running; wait for it.
    Busy,
    /// A step starts now (effects take place at its start).
    Begin(Step, Vec<Effect>),
    /// Converged on the newest decision; `Some` the first time.
    Converged(Option<Holding>),
}

pub struct Worker {
    held: Held,
    /// Environments held: running, starting or stopping.
    environments: BTreeSet<String>,
    /// Which runbook the current progress counts, and its next step.
    progress: Option<Step>,
    decision: Decision,
    busy: Option<Step>,
    reported: Option<u64>,
}

impl Worker {
    /// A fresh worker: what a restarted agent finds (the master marker and
    /// the environments detected running), before any decision.
    pub fn starting_with(master: bool, environments: BTreeSet<String>) -> Self {
        Worker {
            held: if master {
                Held::Master { complete: false }
            } else {
                Held::Nothing
            },
            environments,
            progress: None,
            decision: Decision {
                sequence: 0,
                role: Role::Undecided,
                environments: BTreeSet::new(),
            },
            busy: None,
            reported: None,
        }
    }

    pub fn holding(&self) -> Holding {
        Holding {
            applied: self.decision.sequence,
            master: self.holds_master(),
            environments: self.environments.clone(),
            running: self.environments.clone(),
            release_failures: 0,
        }
    }

    pub fn holds_master(&self) -> bool {
        matches!(self.held, Held::Master { .. })
    }

    /// A promote has completed and no demote has started.
    pub fn is_promoted(&self) -> bool {
        self.held == Held::Master { complete: true } && !matches!(self.busy, Some(Step::Demote(_)))
    }

    pub fn environments(&self) -> &BTreeSet<String> {
        &self.environments
    }

    /// Environments whose start has completed and whose stop has not begun.
    pub fn running(&self) -> impl Iterator<Item = &String> {
        self.environments.iter().filter(|e| match &self.busy {
            Some(Step::Start(s)) | Some(Step::Stop(s)) => s != *e,
            _ => true,
        })
    }

    /// A newer decision: served from the next step boundary on.
    pub fn decide(&mut self, decision: Decision) {
        self.decision = decision;
    }

    /// The agent process died: the running step is abandoned half-done, and
    /// what it held stays held.
    pub fn crash(&mut self) {
        self.busy = None;
    }

    pub fn next(&mut self) -> Next {
        if self.busy.is_some() {
            return Next::Busy;
        }
        let Some(step) = self.choose() else {
            if self.reported == Some(self.decision.sequence) {
                return Next::Converged(None);
            }
            self.reported = Some(self.decision.sequence);
            return Next::Converged(Some(self.holding()));
        };
        let mut effects = Vec::new();
        match &step {
            Step::Promote(_) if !self.holds_master() => {
                self.held = Held::Master { complete: false };
                effects.push(Effect::Acquire(Resource::Master));
            }
            Step::Start(name) => {
                self.environments.insert(name.clone());
                effects.push(Effect::Acquire(Resource::Environment(name.clone())));
            }
            _ => {}
        }
        self.busy = Some(step.clone());
        Next::Begin(step, effects)
    }

    /// The running step has completed.
    pub fn finish(&mut self) -> Vec<Effect> {
        let Some(step) = self.busy.take() else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        match step {
            Step::Promote(i) if i + 1 == PROMOTE_STEPS => {
                self.held = Held::Master { complete: true };
                self.progress = None;
            }
            Step::Promote(i) => self.progress = Some(Step::Promote(i + 1)),
            Step::Demote(i) if i + 1 == DEMOTE_STEPS => {
                self.held = Held::Nothing;
                self.progress = None;
                effects.push(Effect::Release(Resource::Master));
            }
            Step::Demote(i) => {
                // The VIP is gone: a promote must start from scratch.
                self.held = Held::Master { complete: false };
                self.progress = Some(Step::Demote(i + 1));
            }
            Step::Follow(master) => self.held = Held::Following(master),
            Step::Start(_) => {}
            Step::Stop(name) => {
                self.environments.remove(&name);
                effects.push(Effect::Release(Resource::Environment(name)));
            }
        }
        effects
    }

    /// The next step towards the newest decision, if any.
    fn choose(&mut self) -> Option<Step> {
        let decision = &self.decision;
        if let Some(name) = self
            .environments
            .iter()
            .find(|e| !decision.environments.contains(*e))
        {
            return Some(Step::Stop(name.clone()));
        }
        match (&decision.role, self.held) {
            (Role::Undecided, _) => return None,
            (Role::Master, Held::Master { complete: true }) => {}
            (Role::Master, _) => return Some(self.resume(Step::Promote(0))),
            (Role::Follower(_), Held::Master { .. }) => return Some(self.resume(Step::Demote(0))),
            (Role::Follower(None), Held::Following(_)) => {
                // The master is gone: the next one is followed afresh.
                self.held = Held::Nothing;
            }
            (Role::Follower(None), Held::Nothing) => {}
            (Role::Follower(Some(m)), held) if held != Held::Following(*m) => {
                return Some(Step::Follow(*m));
            }
            (Role::Follower(Some(_)), _) => {}
        }
        let settled = match decision.role {
            Role::Master => self.held == Held::Master { complete: true },
            Role::Follower(Some(m)) => self.held == Held::Following(m),
            _ => false,
        };
        if !settled {
            return None;
        }
        decision
            .environments
            .iter()
            .find(|e| !self.environments.contains(*e))
            .map(|name| Step::Start(name.clone()))
    }

    /// The next step of `first`'s runbook: where a cancelled run of the same
    /// runbook stopped, or its first step.
    fn resume(&self, first: Step) -> Step {
        match (&self.progress, &first) {
            (Some(Step::Promote(i)), Step::Promote(_)) => Step::Promote(*i),
            (Some(Step::Demote(i)), Step::Demote(_)) => Step::Demote(*i),
            _ => first,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(sequence: u64, role: Role, environments: &[&str]) -> Decision {
        Decision {
            sequence,
            role,
            environments: environments.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    /// Runs steps to completion; returns every effect in order.
    fn converge(worker: &mut Worker) -> (Vec<Effect>, Option<Holding>) {
        let mut effects = Vec::new();
        loop {
            match worker.next() {
                Next::Busy => unreachable!("finished below"),
                Next::Begin(_, e) => {
                    effects.extend(e);
                    effects.extend(worker.finish());
                }
                Next::Converged(report) => return (effects, report),
            }
        }
    }

    #[test]
    fn master_is_held_from_the_start_of_promote_to_the_end_of_demote() {
        let mut w = Worker::starting_with(false, BTreeSet::new());
        w.decide(decision(1, Role::Master, &["web1"]));
        let Next::Begin(Step::Promote(0), effects) = w.next() else {
            panic!("promote first")
        };
        assert_eq!(effects, [Effect::Acquire(Resource::Master)]);
        assert!(w.holds_master() && !w.is_promoted());
        w.finish();
        let (_, report) = converge(&mut w);
        assert!(w.is_promoted());
        assert_eq!(
            report.unwrap().environments,
            BTreeSet::from(["web1".to_owned()])
        );
        w.decide(decision(2, Role::Follower(None), &[]));
        let (effects, report) = converge(&mut w);
        assert_eq!(
            effects,
            [
                Effect::Release(Resource::Environment("web1".to_owned())),
                Effect::Release(Resource::Master)
            ]
        );
        let report = report.unwrap();
        assert_eq!((report.applied, report.master), (2, false));
    }

    #[test]
    fn environments_wait_for_a_known_master_but_are_stopped_regardless() {
        let mut w = Worker::starting_with(false, BTreeSet::from(["old".to_owned()]));
        w.decide(decision(1, Role::Follower(None), &["web1"]));
        let (effects, _) = converge(&mut w);
        assert_eq!(
            effects,
            [Effect::Release(Resource::Environment("old".to_owned()))]
        );
        assert!(
            w.environments().is_empty(),
            "no master known: nothing started"
        );
    }

    #[test]
    fn a_newer_decision_takes_effect_between_steps_only() {
        let mut w = Worker::starting_with(false, BTreeSet::new());
        w.decide(decision(1, Role::Master, &[]));
        assert!(matches!(w.next(), Next::Begin(Step::Promote(0), _)));
        w.decide(decision(2, Role::Follower(None), &[]));
        assert!(matches!(w.next(), Next::Busy));
        w.finish();
        assert!(matches!(w.next(), Next::Begin(Step::Demote(0), _)));
    }
}
