//! One node's quorum bookkeeping around [`Membership`]: what it claims
//! (from the election, placement and what its worker still holds), and what
//! its leases let the worker do. Pure: the agent and the simulation drive
//! the same code.
//!
//! The hand-over between the election loop and the runbook worker is the
//! delicate part. A resource may be released (no longer claimed, so other
//! nodes may grant it elsewhere) only once the worker has *applied* a
//! decision without it and reports not holding it: every decision carries a
//! sequence number, and the worker reports the last one it converged on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::membership::{Ignored, LocalReport, Membership, Settings};
use super::placement::{self, Decision, NodeReport};
use crate::config::PlacedEnvironment;
use crate::wire::heartbeat::{Handoff, Heartbeat, Resource};

/// What the worker last said it holds, and which decision it had applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// The decision sequence the worker had converged on.
    pub applied: u64,
    /// Master resources, complete or partial (the master marker).
    pub master: bool,
    /// Environments that may run here (started, or not checked since a
    /// restart): what stays claimed.
    pub environments: BTreeSet<String>,
    /// Environments started here and not stopped: what is reported as
    /// running (a subset of `environments`).
    pub running: BTreeSet<String>,
    /// Demotes that failed in a row while the master resources stay held.
    pub release_failures: u32,
    /// The shared dirs may be mounted from a master (a follow ran, or not
    /// known since a restart): what a planned hand-over waits for.
    pub mounted: bool,
    /// The last promote found nfsd's stable restart records on the storage
    /// (linked, present and not empty) before nfsd started: the clients
    /// of the moved NFS server can reclaim (heartbeat `reclaimable`).
    pub reclaimable: bool,
}

/// What the leases allow the worker to do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowed {
    /// The master lease is held with more than `fence_margin` left.
    pub master: bool,
    /// Environments placed here whose lease has more than `fence_margin` left.
    pub environments: BTreeSet<String>,
}

/// Why `rcbsd-failover move ENVIRONMENT TO` is refused; the message is the
/// control reply's error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoveRefused {
    /// No `[cluster]`: nothing is placed, nothing moves.
    #[error("move needs [cluster] and [[environment]] placement; this node runs plain VRRP")]
    PlainVrrp,
    /// No `[[environment]]` has that name.
    #[error("no [[environment]] is named {environment}")]
    UnknownEnvironment {
        /// The name asked for.
        environment: String,
    },
    /// `to` is not in the environment's node list.
    #[error("{to} may not run {environment}: its nodes are {}", .nodes.join(", "))]
    NotPlacedOn {
        /// The environment to move.
        environment: String,
        /// The node asked for.
        to: String,
        /// The environment's `nodes`, most preferred first.
        nodes: Vec<String>,
    },
    /// It runs on other nodes: the move is theirs to make.
    #[error("{environment} runs on {}: run the move there", .nodes.join(", "))]
    RunsElsewhere {
        /// The environment to move.
        environment: String,
        /// The live nodes that report it running.
        nodes: Vec<String>,
    },
    /// Neither this node nor a live peer runs it: there is nothing to move.
    #[error("{environment} does not run anywhere now: placement starts it on the first live node of its list")]
    NotRunning {
        /// The environment to move.
        environment: String,
    },
    /// The target is this node, which already runs or claims it.
    #[error("{environment} already runs on {me}")]
    AlreadyHere {
        /// The environment to move.
        environment: String,
        /// This node's name.
        me: String,
    },
    /// The target is not heard, or does not report quorum.
    #[error("{to} is not live with quorum: not moving {environment}")]
    TargetNotLive {
        /// The environment to move.
        environment: String,
        /// The node asked for.
        to: String,
    },
    /// Failback would take it back to `first_live` at once.
    #[error("{environment} has failback = true: it would go back to {first_live} at once; set failback = false to move it by hand")]
    Failback {
        /// The environment to move.
        environment: String,
        /// The most preferred node of its list that is live with quorum.
        first_live: String,
    },
}

/// Static settings of [`NodeQuorum`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeQuorumSettings {
    /// Who is in the cluster, the lease and the quorum fingerprint.
    pub membership: Settings,
    /// `[cluster] fence_margin`: a resource is used only while its lease
    /// has more than this left, so it is released before the lease ends.
    pub fence_margin: Duration,
    /// Every `[[environment]]`, with its preferred nodes.
    pub placement: Vec<PlacedEnvironment>,
    /// Our cluster-wide configuration fingerprint (`Config::cluster_hash`),
    /// sent in heartbeats.
    pub config_hash: u64,
}

/// One node's whole quorum state: [`Membership`], placement decisions, and
/// what may be released. See the module documentation.
#[derive(Clone, Debug)]
pub struct NodeQuorum {
    settings: NodeQuorumSettings,
    membership: Membership,
    decisions: BTreeMap<String, Decision>,
    /// Resources no longer wanted, with the decision sequence whose
    /// application by the worker proves they are released.
    releasing: BTreeMap<Resource, u64>,
    holding: Holding,
    /// Operator moves in progress: environment -> (target, give up at).
    handoffs: BTreeMap<String, (String, Instant)>,
    /// The last decision published to the worker (see `note_published`).
    published: (u64, Allowed),
    /// When this node first had quorum since it started: it adopts
    /// environments of other nodes only a lease after that (see
    /// `placement::decide`).
    quorum_first: Option<Instant>,
}

/// How long a move may take before the handoff is withdrawn and placement
/// decides again (the target may have died meanwhile).
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(120);

impl NodeQuorum {
    /// The state of a node started at `now`, claiming nothing and holding
    /// nothing; `incarnation` numbers this run in heartbeats.
    pub fn new(settings: NodeQuorumSettings, incarnation: u64, now: Instant) -> Self {
        let membership = Membership::new(settings.membership.clone(), incarnation, now);
        NodeQuorum {
            settings,
            membership,
            decisions: BTreeMap::new(),
            releasing: BTreeMap::new(),
            holding: Holding::default(),
            handoffs: BTreeMap::new(),
            published: (0, Allowed::default()),
            quorum_first: None,
        }
    }

    /// The heartbeats heard, grants, claims and leases.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// This node's name in `[cluster] nodes`.
    pub fn me(&self) -> &str {
        &self.settings.membership.me
    }

    /// Our cluster-wide configuration fingerprint, as sent in heartbeats.
    pub fn config_hash(&self) -> u64 {
        self.settings.config_hash
    }

    /// The latest placement decision per environment name.
    pub fn decisions(&self) -> &BTreeMap<String, Decision> {
        &self.decisions
    }

    /// What the worker last reported holding ([`NodeQuorum::set_holding`]).
    pub fn holding(&self) -> &Holding {
        &self.holding
    }

    /// Takes one heartbeat heard at `now` (authenticated, from the sender's
    /// configured address); see [`Membership::receive`].
    pub fn receive(&mut self, heartbeat: Heartbeat, now: Instant) -> Result<(), Ignored> {
        self.membership.receive(heartbeat, now)
    }

    /// The heartbeat to send now.
    pub fn heartbeat(&mut self, now: Instant, local: &LocalReport) -> Heartbeat {
        let quorum = self.has_quorum(now);
        let mut local = local.clone();
        local.config_hash = self.settings.config_hash;
        local.running = self.holding.running.iter().cloned().collect();
        local.handoffs = self
            .handoffs
            .iter()
            .map(|(environment, (to, _))| Handoff {
                environment: environment.clone(),
                to: to.clone(),
            })
            .collect();
        self.membership.heartbeat(now, &local, quorum)
    }

    /// Quorum, with the same margin as the leases: a node whose majority
    /// has been silent long enough that it must fence has no quorum either,
    /// so it advertises 0 and the majority side stops waiting for it.
    pub fn has_quorum(&self, now: Instant) -> bool {
        self.membership
            .quorum_until(now)
            .is_some_and(|until| until > now + self.settings.fence_margin)
    }

    /// Re-decides placement and sets the claims: the master role while the
    /// election wants it or the worker may still hold it, every
    /// environment placement wants or the worker may still run. Returns
    /// the environments whose decision changed.
    pub fn update_claims(&mut self, wants_master: bool, now: Instant) -> Vec<(String, Decision)> {
        self.expire_handoffs(now);
        let quorum = self.has_quorum(now);
        let me = self.settings.membership.me.clone();
        // What placement itself chose last time (not what is only kept
        // claimed until released or checked).
        let my_claims: Vec<String> = self
            .decisions
            .iter()
            .filter(|(_, d)| d.claim)
            .map(|(name, _)| name.clone())
            .collect();
        let mut reports = vec![NodeReport {
            name: &me,
            quorum,
            claims: my_claims.iter().map(String::as_str).collect(),
            running: self.holding.running.iter().map(String::as_str).collect(),
            handoffs: self
                .handoffs
                .iter()
                .map(|(e, (to, _))| (e.as_str(), to.as_str()))
                .collect(),
        }];
        for peer in self.membership.live_peers(now) {
            let hb = &peer.heartbeat;
            reports.push(NodeReport {
                name: &hb.node,
                quorum: hb.quorum,
                claims: hb.claims.iter().filter_map(environment_name).collect(),
                running: hb.running.iter().map(String::as_str).collect(),
                handoffs: hb
                    .handoffs
                    .iter()
                    .map(|h| (h.environment.as_str(), h.to.as_str()))
                    .collect(),
            });
        }
        if quorum {
            self.quorum_first.get_or_insert(now);
        }
        let may_adopt = self
            .quorum_first
            .is_some_and(|first| now >= first + self.settings.membership.lease);
        let decisions = placement::decide(&me, &self.settings.placement, &reports, may_adopt);
        let mut wanted: BTreeSet<Resource> = decisions
            .iter()
            .filter(|(_, d)| d.claim)
            .map(|(name, _)| Resource::Environment(name.clone()))
            .collect();
        if wants_master {
            wanted.insert(Resource::Master);
        }
        let changed = decisions
            .iter()
            .filter(|(name, d)| self.decisions.get(*name).map(|old| old.claim) != Some(d.claim))
            .map(|(name, d)| (name.clone(), d.clone()))
            .collect();
        self.decisions = decisions;
        let claims = self.claims_to_keep(wanted);
        self.membership.set_claims(&claims);
        changed
    }

    /// What stays claimed: what is wanted, plus what the worker may still
    /// hold (see the module documentation).
    fn claims_to_keep(&mut self, wanted: BTreeSet<Resource>) -> BTreeSet<Resource> {
        let mut claims = wanted.clone();
        let current: Vec<Resource> = self.membership.claims().cloned().collect();
        for resource in current {
            if wanted.contains(&resource) {
                self.releasing.remove(&resource);
                continue;
            }
            // Claimed, never allowed, and no longer wanted (a claim that
            // never got its lease): the last decision the worker was given
            // already left it out, whatever the glue published since.
            let (sequence, allowed) = &self.published;
            let in_published = match &resource {
                Resource::Master => allowed.master,
                Resource::Environment(name) => allowed.environments.contains(name),
            };
            if !in_published {
                self.releasing.entry(resource.clone()).or_insert(*sequence);
            }
            let proven = self
                .releasing
                .get(&resource)
                .is_some_and(|sequence| self.holding.applied >= *sequence);
            if self.holds(&resource) || !proven {
                claims.insert(resource);
            } else {
                self.releasing.remove(&resource);
            }
        }
        // What the worker reports holding stays claimed even when nothing
        // asked for it (a master marker after a crash).
        if self.holding.master {
            claims.insert(Resource::Master);
        }
        for name in &self.holding.environments {
            claims.insert(Resource::Environment(name.clone()));
        }
        claims
    }

    /// `rcbsd-failover move ENVIRONMENT TO`, run on the node that runs it:
    /// stop it here, then let `to` start it. Checked against placement and
    /// what this node hears; returns what will happen, in words.
    pub fn start_move(
        &mut self,
        environment: &str,
        to: &str,
        now: Instant,
    ) -> Result<String, MoveRefused> {
        let placed = self
            .settings
            .placement
            .iter()
            .find(|p| p.name == environment)
            .ok_or_else(|| MoveRefused::UnknownEnvironment {
                environment: environment.to_owned(),
            })?;
        if !placed.nodes.iter().any(|n| n == to) {
            return Err(MoveRefused::NotPlacedOn {
                environment: environment.to_owned(),
                to: to.to_owned(),
                nodes: placed.nodes.clone(),
            });
        }
        let me = self.settings.membership.me.clone();
        let here = self.holding.environments.contains(environment)
            || self
                .membership
                .claims()
                .any(|r| *r == Resource::Environment(environment.to_owned()));
        if !here {
            let elsewhere = self.environment_locations(now).remove(environment);
            return Err(match elsewhere {
                Some(nodes) if !nodes.is_empty() => MoveRefused::RunsElsewhere {
                    environment: environment.to_owned(),
                    nodes,
                },
                _ => MoveRefused::NotRunning {
                    environment: environment.to_owned(),
                },
            });
        }
        if to == me {
            return Err(MoveRefused::AlreadyHere {
                environment: environment.to_owned(),
                me,
            });
        }
        let target_ok = self
            .membership
            .live_peers(now)
            .any(|p| p.heartbeat.node == to && p.heartbeat.quorum);
        if !target_ok {
            return Err(MoveRefused::TargetNotLive {
                environment: environment.to_owned(),
                to: to.to_owned(),
            });
        }
        if placed.failback {
            let first_live = placed.nodes.iter().find(|n| {
                **n == me
                    || self
                        .membership
                        .live_peers(now)
                        .any(|p| p.heartbeat.node == **n && p.heartbeat.quorum)
            });
            if first_live.is_some_and(|first| first != to) {
                return Err(MoveRefused::Failback {
                    environment: environment.to_owned(),
                    first_live: first_live.cloned().unwrap_or_default(),
                });
            }
        }
        self.handoffs.insert(
            environment.to_owned(),
            (to.to_owned(), now + HANDOFF_TIMEOUT),
        );
        Ok(format!(
            "moving {environment} from {me} to {to}: stopping it here, then {to} starts it"
        ))
    }

    /// Withdraws a handoff once the target runs the environment, once the
    /// target announces a handoff of it itself (the operator moved it on
    /// from there: the newer move decides; two moves pointing at each
    /// other are both withdrawn and placement decides), or when it took
    /// too long.
    fn expire_handoffs(&mut self, now: Instant) {
        let running_at: BTreeMap<String, Vec<String>> = self.environment_locations(now);
        let moved_on: BTreeSet<(String, String)> = self
            .membership
            .live_peers(now)
            .flat_map(|peer| {
                peer.heartbeat
                    .handoffs
                    .iter()
                    .map(|h| (peer.heartbeat.node.clone(), h.environment.clone()))
            })
            .collect();
        self.handoffs.retain(|environment, (to, until)| {
            let arrived = running_at
                .get(environment)
                .is_some_and(|nodes| nodes.iter().any(|n| n == to));
            let superseded = moved_on.contains(&(to.clone(), environment.clone()));
            !arrived && !superseded && *until > now
        });
    }

    /// Operator moves in progress: (environment, target).
    pub fn handoffs(&self) -> Vec<(String, String)> {
        self.handoffs
            .iter()
            .map(|(e, (to, _))| (e.clone(), to.clone()))
            .collect()
    }

    fn holds(&self, resource: &Resource) -> bool {
        match resource {
            Resource::Master => self.holding.master,
            Resource::Environment(name) => self.holding.environments.contains(name),
        }
    }

    /// What the leases allow now (see [`Allowed`]).
    pub fn allowed(&self, now: Instant) -> Allowed {
        Allowed {
            master: self.lease_ok(&Resource::Master, now),
            environments: self
                .decisions
                .iter()
                .filter(|(name, d)| {
                    d.claim && self.lease_ok(&Resource::Environment((*name).clone()), now)
                })
                .map(|(name, _)| name.clone())
                .collect(),
        }
    }

    fn lease_ok(&self, resource: &Resource, now: Instant) -> bool {
        self.membership
            .lease_until(resource, now)
            .is_some_and(|until| until > now + self.settings.fence_margin)
    }

    /// Records a decision just published to the worker: every claimed
    /// resource it leaves out is released once the worker has applied
    /// `sequence` (or a later one) and reports not holding it.
    pub fn note_published(&mut self, sequence: u64, allowed: &Allowed) {
        self.published = (sequence, allowed.clone());
        let claimed: Vec<Resource> = self.membership.claims().cloned().collect();
        for resource in claimed {
            let desired = match &resource {
                Resource::Master => allowed.master,
                Resource::Environment(name) => allowed.environments.contains(name),
            };
            if desired {
                self.releasing.remove(&resource);
            } else {
                self.releasing.entry(resource).or_insert(sequence);
            }
        }
    }

    /// What the last decision published to the worker allowed.
    pub fn published(&self) -> &Allowed {
        &self.published.1
    }

    /// Records what the worker reports holding; it stays claimed until a
    /// report of an applied decision without it.
    pub fn set_holding(&mut self, holding: Holding) {
        self.holding = holding;
    }

    /// The earliest time a claimed lease reaches its fence point: the loop
    /// re-decides then, not only at the next heartbeat.
    pub fn next_fence_point(&self, now: Instant) -> Option<Instant> {
        self.membership
            .claims()
            .filter_map(|r| self.membership.lease_until(r, now))
            .map(|until| until.checked_sub(self.settings.fence_margin).unwrap_or(now))
            .filter(|at| *at > now)
            .min()
    }

    /// Nodes not heard within the lease: a CBSD lock naming one of them
    /// may be taken over when adopting.
    pub fn not_live_nodes(&self, now: Instant) -> Vec<String> {
        self.settings
            .membership
            .nodes
            .iter()
            .filter(|n| !self.membership.is_live(n, now))
            .cloned()
            .collect()
    }

    /// Where each environment runs, from the live nodes' heartbeats and our
    /// own worker.
    pub fn environment_locations(&self, now: Instant) -> BTreeMap<String, Vec<String>> {
        let mut at: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in &self.holding.running {
            at.entry(name.clone())
                .or_default()
                .push(self.settings.membership.me.clone());
        }
        for peer in self.membership.live_peers(now) {
            for name in &peer.heartbeat.running {
                at.entry(name.clone())
                    .or_default()
                    .push(peer.heartbeat.node.clone());
            }
        }
        at
    }
}

fn environment_name(resource: &Resource) -> Option<&str> {
    match resource {
        Resource::Environment(name) => Some(name),
        Resource::Master => None,
    }
}

/// What the election loop asks of the worker, from the VRRP decision and
/// the leases. `election_master`: the VRRP router is in Master state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Hold the master resources (VIP, storage, NFS service).
    pub master: bool,
    /// VRRP elected this node but the lease is not (or no longer) held:
    /// hold nothing and follow nobody until it is.
    pub awaiting_lease: bool,
    /// The environments to run (after the role's runbook has succeeded).
    pub environments: BTreeSet<String>,
}

/// The one rule joining VRRP and the leases, shared by the agent and the
/// simulation: master resources only with the master lease; environments
/// only with theirs.
pub fn gate(election_master: bool, allowed: &Allowed) -> Gate {
    Gate {
        master: election_master && allowed.master,
        awaiting_lease: election_master && !allowed.master,
        environments: allowed.environments.clone(),
    }
}
