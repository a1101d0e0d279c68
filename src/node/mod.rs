//! The node core: everything one node decides, pure. It joins the VRRP
//! election ([`crate::election::Router`]), the quorum layer
//! ([`crate::quorum::NodeQuorum`]), faults and their hold-off, the
//! operator's override, what the worker reports holding, and the fence
//! (leases, the watchdog rule) into one state machine driven like the
//! router: [`NodeCore::handle`]`(input, now) -> effects`, with
//! [`NodeCore::poll_timeout`] saying when to call back.
//!
//! The daemon (`agent`) keeps only sockets, `select!`, spawning and the
//! clock; the simulation (`tests/quorum_sim`) drives this same struct on
//! simulated clocks and networks. What the worker does with a decision is
//! decided by [`converge::Converger`], also pure and also shared.
//!
//! On every input the core re-evaluates in one fixed order: quorum → the
//! effective priority (→ the router) → placement and claims → what the
//! leases allow → the gate → publish a new [`Decision`] when it changed.

pub mod converge;
pub mod watchdog;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::election::priority::{self, Override};
use crate::election::{self, Action, Params, Reason, ReceivedAdvert, Router};
use crate::quorum::{self, Allowed, Holding, Ignored, LocalReport, NodeQuorum, NodeQuorumSettings};
use crate::wire::heartbeat::{Heartbeat, Resource};
use crate::wire::VrrpState;

pub use converge::Role;
pub use watchdog::{Verdict, WatchdogRule};

/// What a node is configured with, as far as its decisions go.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The VRRP interface (for messages).
    pub interface: String,
    /// The configured election parameters (priority, preempt, interval,
    /// primary address); the core derives the effective ones.
    pub params: Params,
    /// False for a node that may never be master (no storage).
    pub may_be_master: bool,
    /// How long a fault after a failed promote lasts (`runbook.fault_hold_off`).
    pub fault_hold_off: Duration,
    /// With `[cluster]`: quorum, leases and placement.
    pub cluster: Option<ClusterSettings>,
    /// With `[fence] watchdog`: the rule deciding when it may be patted.
    pub watchdog: Option<WatchdogRule>,
    /// After this many failed demotes in a row while the node still holds
    /// the master resources, it escalates (liveness hole F): with a
    /// watchdog it stops patting (the machine resets and releases
    /// everything); without one it takes the role back, since nobody else
    /// can have it.
    pub release_attempts: u32,
}

/// The quorum part of [`Settings`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The `[cluster]` section as the quorum layer needs it (members,
    /// heartbeat interval, lease, fence margin).
    pub state: NodeQuorumSettings,
    /// A CBSD node: environments are placed by `[[environment]]` (the
    /// decision carries the ones this node may run).
    pub placement: bool,
    /// Every environment placed on this node: what may still run here
    /// before the worker has looked (after a restart).
    pub candidates: Vec<String>,
    /// A CBSD node's `cluster.handover_timeout`: a master that gives up its
    /// role on purpose keeps serving NFS this long at most while the
    /// followers quiesce. `None`: the VIP goes first, always.
    pub handover: Option<Duration>,
    /// `follow.on_master_change = "ride-through"`: heartbeats say when this
    /// node, as master, serves (status bit 3), and decisions say whether
    /// the master followed serves. Off, the bit is never sent: agents that
    /// predate it refuse unknown status bits.
    pub ride_through: bool,
}

/// The decision the worker serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Numbers the decisions; the worker reports the last one it
    /// converged on.
    pub sequence: u64,
    /// The role the worker must serve.
    pub role: Role,
    /// With `[cluster]` and placement: the environments this node may run.
    pub environments: Option<BTreeSet<String>>,
    /// Nodes not live (their leases are gone): a CBSD lock naming one may
    /// be taken over when adopting.
    pub takeover: Vec<String>,
    /// Following a known master: its heartbeat says its promote has
    /// finished and it serves (ride-through waits for this; always false
    /// unless `ride_through` is configured).
    pub master_serving: bool,
    /// With `master_serving`: its heartbeat also says its nfsd started
    /// with the stable restart records on the storage (`reclaimable`);
    /// ride-through needs both, else the full follow runs at once.
    pub master_reclaimable: bool,
}

impl Decision {
    /// What the decision lets the worker hold, for the fence.
    pub fn allowance(&self) -> Allowance {
        Allowance {
            master: self.role == Role::Master,
            environments: self.environments.clone(),
        }
    }

    /// The worker's view of it.
    pub fn target(&self) -> converge::Target {
        converge::Target {
            role: self.role.clone(),
            sequence: self.sequence,
            environments: self.environments.clone(),
            master_serving: self.master_serving,
            master_reclaimable: self.master_reclaimable,
        }
    }
}

/// What the worker may be acquiring right now: a running step that
/// acquires something no longer allowed is killed (hole B).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowance {
    /// The master resources (storage, NFS service, the VIP) may be acquired.
    pub master: bool,
    /// `None`: no placement, every configured environment.
    pub environments: Option<BTreeSet<String>>,
}

impl Allowance {
    /// Whether a step that acquires `resource` may keep running.
    pub fn allows(&self, resource: &Resource) -> bool {
        match resource {
            Resource::Master => self.master,
            Resource::Environment(name) => self
                .environments
                .as_ref()
                .is_none_or(|allowed| allowed.contains(name)),
        }
    }
}

/// What the worker reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerReport {
    /// Converged on a decision: what it holds.
    Holding(Holding),
    /// A promote failed (and undid what it did) while serving the decision
    /// numbered `generation` (the cancel generation it started under).
    PromoteFailed {
        /// `step: error` of the failing step.
        reason: String,
        /// [`NodeCore::generation`] when the promote started.
        generation: u64,
    },
}

/// Everything that can happen to a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The agent started: the Startup event with the effective priority.
    Start,
    /// An advertisement that passed the receive checks.
    Advert(ReceivedAdvert),
    /// A heartbeat from the configured address of its sender, authenticated.
    Heartbeat(Heartbeat),
    /// Time to send our heartbeat.
    HeartbeatDue,
    /// [`NodeCore::poll_timeout`] has passed.
    Timeout,
    /// The transition worker reported on its work.
    Worker(WorkerReport),
    /// The operator's override, already stored.
    Override(Override),
    /// `rcbsd-failover resume`: out of fault, preemption as configured.
    Resume,
    /// The interface's carrier.
    Link {
        /// True when the interface has its carrier.
        up: bool,
    },
    /// SIGTERM/SIGINT: release everything, then hand over.
    Stop,
    /// The health checks' verdict changed ([`crate::health::Verdict`]).
    Health {
        /// Added to the configured priority (weights, `track_file`).
        priority_delta: i32,
        /// Why the node must be in fault, while it must.
        resign: Option<String>,
    },
}

/// What the edges must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send one VRRP advertisement now.
    SendAdvert {
        /// The Priority field: our effective priority, or 0 to resign.
        priority: u8,
    },
    /// Send this heartbeat to every `[cluster]` peer.
    SendHeartbeat(Heartbeat),
    /// A heartbeat was not taken (counted by reason).
    HeartbeatIgnored(Ignored),
    /// The worker must serve this decision; `cancel`: a runbook in progress
    /// stops at its next safe point (and an acquiring step is killed).
    Publish {
        /// The new decision.
        decision: Decision,
        /// Whether a runbook in progress must stop: the role changed, or an
        /// environment this node ran is no longer allowed.
        cancel: bool,
    },
    /// Re-send the gratuitous-ARP burst: a second master was heard.
    ResendGarp {
        /// Source address of the lower-priority master's advert.
        other_master: IpAddr,
    },
    /// Something for the log (and the notify hook).
    Notice(Notice),
}

/// Operator-facing events the core decides (the agent logs them).
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// The router changed state (`state_change`).
    StateChange {
        /// The state left.
        from: VrrpState,
        /// The state entered.
        to: VrrpState,
        /// The RFC 5798 §6.4 rule (or our own) that caused it.
        reason: Reason,
        /// The effective priority after the change.
        priority: u8,
        /// The master's address as known now (ours when master), if any.
        master: Option<IpAddr>,
    },
    /// As master, we heard a lower-priority master (`master_conflict`).
    MasterConflict {
        /// Source address of the other master's advert.
        other_master: IpAddr,
        /// Our effective priority.
        priority: u8,
    },
    /// The node entered fault (`fault`).
    Fault {
        /// What caused it, for the operator.
        reason: String,
    },
    /// The fault cleared (`fault_cleared`).
    FaultCleared {
        /// How: `resume`, `hold_off_expired`, `link_up` or `health`.
        how: &'static str,
    },
    /// A promote failure that came after its decision was superseded.
    PromoteFailedSuperseded {
        /// `step: error` of the failing step.
        reason: String,
    },
    /// At start, no majority heard yet (`quorum_waiting`).
    QuorumWaiting {
        /// This node and the live peers it hears, by node name.
        heard: Vec<String>,
        /// How many nodes make a strict majority of `[cluster] nodes`.
        majority: usize,
    },
    /// Quorum held before is lost (`quorum_lost`).
    QuorumLost {
        /// This node and the live peers it hears, by node name.
        heard: Vec<String>,
        /// How many nodes make a strict majority of `[cluster] nodes`.
        majority: usize,
    },
    /// Quorum is held again, or for the first time (`quorum_regained`).
    QuorumRegained {
        /// This node and the live peers it hears, by node name.
        heard: Vec<String>,
        /// How many nodes make a strict majority of `[cluster] nodes`.
        majority: usize,
    },
    /// Placement changed its mind about an environment (`placement_decided`).
    PlacementDecided {
        /// The environment (CBSD jail) name.
        environment: String,
        /// Whether this node now claims it (may run it).
        claim: bool,
        /// Why, in words (`first choice`, `runs on node2`, ...).
        reason: String,
    },
    /// A lease this node uses is about to run out (`lease_fencing`).
    LeaseFencing {
        /// `master`, or `env:NAME` for an environment.
        resource: String,
        /// Milliseconds of the lease left.
        left_ms: u64,
    },
    /// A resource was still held after its lease ended (`lease_overrun`).
    LeaseOverrun {
        /// `master`, or `env:NAME` for an environment.
        resource: String,
        /// Milliseconds since the lease ended.
        overrun_ms: u64,
    },
    /// The master gives up its role on purpose and keeps serving NFS until
    /// the followers have quiesced (or `timeout_ms` passes).
    HandoverStarted {
        /// The live peers that must quiesce first, by node name.
        waiting_for: Vec<String>,
        /// The longest wait, `cluster.handover_timeout`, in milliseconds.
        timeout_ms: u64,
    },
    /// The wait is over: the demote (VIP first) runs now. `outcome`:
    /// `quiesced` (every live peer), `timed_out` (`laggards` had not),
    /// or what forced it (`quorum_lost`, `lease_ending`, `fault`).
    HandoverFinished {
        /// Why the wait ended (see above).
        outcome: &'static str,
        /// Milliseconds since the hand-over started.
        waited_ms: u64,
        /// The live peers that had not quiesced, by node name.
        laggards: Vec<String>,
    },
    /// Elected master again while waiting: nothing is handed over.
    HandoverCancelled {
        /// Milliseconds since the hand-over started.
        waited_ms: u64,
    },
    /// Demotes keep failing while the master resources are held.
    ReleaseStuck {
        /// Failed demotes in a row.
        failures: u32,
        /// What the node does about it.
        action: StuckAction,
    },
}

/// What a node does when it cannot release the master resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StuckAction {
    /// Stop patting the watchdog: the machine resets.
    Watchdog,
    /// Take the role back (it is held anyway): master again until the
    /// operator runs `resume` after fixing the cause.
    Retake,
    /// Neither is possible (no watchdog, and no quorum or in fault):
    /// alert only.
    AlertOnly,
}

impl StuckAction {
    /// The `action` field of `release_stuck` (`watchdog`, `retake`,
    /// `alert_only`).
    pub fn as_str(self) -> &'static str {
        match self {
            StuckAction::Watchdog => "watchdog",
            StuckAction::Retake => "retake",
            StuckAction::AlertOnly => "alert_only",
        }
    }
}

/// A planned hand-over in progress (issue 10 item 7): the master that the
/// election no longer wants keeps serving until its followers quiesce.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Handover {
    started: Instant,
    until: Instant,
    /// The wait is over and the demote runs; the flag stays in heartbeats
    /// until the worker has released the master resources, so that no
    /// follower mounts the old master again in between.
    releasing: bool,
}

/// What put the node in fault, which decides what clears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCause {
    /// A promote failed: cleared by `resume` or after the hold-off.
    Runbook,
    /// The interface lost its carrier: cleared when it returns (or `resume`).
    LinkDown,
    /// The health checks say so (a failed `[[track]]` with `on_fail =
    /// "resign"`, a tracked interface down, or repairs that did not hold):
    /// cleared when they stop saying so (or `resume`).
    Health,
}

/// The fault a node is in: why, and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What caused it, for the operator (`status`, the `fault` event).
    pub reason: String,
    /// What caused it, which decides what clears it.
    pub cause: FaultCause,
    /// When it was entered; a runbook fault clears `fault_hold_off` later.
    pub since: Instant,
}

/// One node's decisions. See the module documentation.
#[derive(Clone, Debug)]
pub struct NodeCore {
    settings: Settings,
    router: Router,
    cluster: Option<NodeQuorum>,
    override_: Override,
    fault: Option<Fault>,
    /// The last promote failed and the node has not been master since: no
    /// preemption, so a node whose promote keeps failing does not pull a
    /// healthy master down every hold-off period. `promote` still preempts.
    after_failed_promote: bool,
    stopping: bool,
    /// The health checks' priority delta ([`Input::Health`]).
    health_delta: i32,
    /// Why the health checks want the node in fault, while they do.
    health_resign: Option<String>,
    /// Re-took the master role it could not release (see
    /// [`Settings::release_attempts`]); cleared by `resume` or a release.
    retained: bool,
    /// What the worker reported last (`None` until its first report: then
    /// everything it could hold counts as held).
    holding: Option<Holding>,
    /// Per resource, the last decision that allowed it: until the worker
    /// reports having served that decision (or a later one), it may be
    /// acquiring it whatever its last report says.
    allowed_at: BTreeMap<Resource, u64>,
    published: Option<Decision>,
    sequence: u64,
    /// Bumped with every cancelling decision; a promote failure reported
    /// under an older one is superseded.
    generation: u64,
    /// The last quorum state announced (`None`: none yet).
    quorum_logged: Option<bool>,
    /// Whether quorum was ever held since the start.
    quorum_held_once: bool,
    /// The last lease end seen per held resource (`lease_overrun`).
    lease_ends: BTreeMap<Resource, Instant>,
    stuck_logged: Option<StuckAction>,
    handover: Option<Handover>,
    /// The first decision of the current master role: once the worker has
    /// served it (or a later one), its promote has finished.
    master_since: Option<u64>,
}

impl NodeCore {
    /// A node that has just started: nothing decided yet; `incarnation`
    /// numbers this run in heartbeats.
    pub fn new(settings: Settings, incarnation: u64, now: Instant) -> Self {
        let router = Router::new(params(&settings, Override::None, false, false));
        let cluster = settings.cluster.as_ref().map(|c| {
            let mut state = NodeQuorum::new(c.state.clone(), incarnation, now);
            state.set_holding(everything_possible(&settings, c));
            state
        });
        NodeCore {
            settings,
            router,
            cluster,
            override_: Override::None,
            fault: None,
            after_failed_promote: false,
            stopping: false,
            retained: false,
            health_delta: 0,
            health_resign: None,
            holding: None,
            allowed_at: BTreeMap::new(),
            published: None,
            sequence: 0,
            generation: 0,
            quorum_logged: None,
            quorum_held_once: false,
            lease_ends: BTreeMap::new(),
            stuck_logged: None,
            handover: None,
            master_since: None,
        }
    }

    /// Restores an override stored before a restart (before [`Input::Start`]).
    pub fn restore_override(&mut self, override_: Override) {
        self.override_ = override_;
    }

    // ----- queries ------------------------------------------------------

    /// The VRRP election state machine, with the effective parameters.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The quorum layer (membership, leases, placement); `None` without
    /// `[cluster]`.
    pub fn cluster(&self) -> Option<&NodeQuorum> {
        self.cluster.as_ref()
    }

    /// The settings in force: from [`NodeCore::new`] or the last
    /// [`NodeCore::reconfigure`].
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The VRRP state (RFC 5798 §6.4, plus Fault).
    pub fn state(&self) -> VrrpState {
        self.router.state()
    }

    /// The operator's override in force.
    pub fn override_(&self) -> Override {
        self.override_
    }

    /// The fault the node is in, if any.
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// [`Input::Stop`] was received: the node releases everything.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Handing over on purpose: serving until the followers quiesce, or
    /// releasing after that (the flag heartbeats carry).
    pub fn is_handing_over(&self) -> bool {
        self.handover.is_some()
    }

    /// Re-took a role it could not release (see [`StuckAction::Retake`]).
    pub fn is_retained(&self) -> bool {
        self.retained
    }

    /// The last decision published to the worker; `None` before the first.
    pub fn published(&self) -> Option<&Decision> {
        self.published.as_ref()
    }

    /// The generation a promote started under must still be this one for
    /// its failure to count.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this node has quorum (always without `[cluster]`).
    pub fn has_quorum(&self, now: Instant) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.has_quorum(now))
    }

    /// What the worker last reported, or everything it could hold before
    /// its first report.
    pub fn holding(&self) -> Holding {
        match (&self.holding, &self.settings.cluster) {
            (Some(h), _) => h.clone(),
            (None, Some(c)) => everything_possible(&self.settings, c),
            (None, None) => Holding {
                master: self.settings.may_be_master,
                ..Holding::default()
            },
        }
    }

    /// What the node may physically hold now: what the worker last
    /// reported, plus what a decision it has not yet reported on allowed it
    /// to acquire (a promote in progress holds the storage long before the
    /// worker's next report). The fence (watchdog, overrun) counts this.
    pub fn may_hold(&self) -> Holding {
        let mut holding = self.holding();
        for (resource, sequence) in &self.allowed_at {
            if *sequence <= holding.applied {
                continue;
            }
            match resource {
                Resource::Master => holding.master = true,
                Resource::Environment(name) => {
                    holding.environments.insert(name.clone());
                }
            }
        }
        holding
    }

    /// Milliseconds left of our lease on `resource`; `None` when not held.
    pub fn lease_ms(&self, resource: &Resource, now: Instant) -> Option<u64> {
        let cluster = self.cluster.as_ref()?;
        cluster
            .membership()
            .lease_until(resource, now)
            .map(|until| millis(until.saturating_duration_since(now)))
    }

    /// When to call [`NodeCore::handle`] with [`Input::Timeout`]: the
    /// router's timer, the next fence point, the end of the fault hold-off.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let hold_off = self.fault.as_ref().and_then(|f| {
            (f.cause == FaultCause::Runbook).then(|| f.since + self.settings.fault_hold_off)
        });
        let fence = self.cluster.as_ref().and_then(|c| c.next_fence_point(now));
        let handover = self
            .handover
            .as_ref()
            .filter(|h| !h.releasing)
            .map(|h| h.until);
        [self.router.poll_timeout(), hold_off, fence, handover]
            .into_iter()
            .flatten()
            .min()
    }

    /// What the watchdog may do now (see [`watchdog`]).
    pub fn watchdog(&self, now: Instant) -> Verdict {
        let Some(rule) = &self.settings.watchdog else {
            return Verdict::Disarm;
        };
        let holding = self.may_hold();
        if self.stuck_action() == Some(StuckAction::Watchdog) {
            return Verdict::Withhold {
                why: format!(
                    "{} demotes failed in a row: releasing by reset",
                    holding.release_failures
                ),
            };
        }
        rule.verdict(&holding, self.holding.is_some(), self.cluster.as_ref(), now)
    }

    // ----- inputs -------------------------------------------------------

    /// Handles one input at `now`; returns what the edges must do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                let p = self.effective_priority(now);
                let mut actions = self.router.handle(election::Input::SetPriority(p), now);
                actions.extend(self.router.handle(election::Input::Startup, now));
                self.take(actions, now, &mut out);
            }
            Input::Advert(advert) => {
                let actions = self.router.handle(election::Input::Advert(advert), now);
                self.take(actions, now, &mut out);
            }
            Input::Heartbeat(heartbeat) => {
                if let Some(cluster) = &mut self.cluster {
                    if let Err(ignored) = cluster.receive(heartbeat, now) {
                        out.push(Effect::HeartbeatIgnored(ignored));
                        // Nothing changed: no evaluation.
                        return out;
                    }
                }
            }
            Input::HeartbeatDue => {
                let quiesced = self.is_quiesced();
                let serving = self
                    .settings
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.ride_through)
                    && self.is_serving();
                // Only a serving master's promote may have found the
                // records (the worker's report of it).
                let reclaimable = serving && self.holding().reclaimable;
                if let Some(cluster) = &mut self.cluster {
                    let local = LocalReport {
                        state: Some(self.router.state()),
                        priority: self.router.effective_priority(),
                        following: self.router.master(),
                        handing_over: self.handover.is_some(),
                        quiesced,
                        serving,
                        reclaimable,
                        ..LocalReport::default()
                    };
                    out.push(Effect::SendHeartbeat(cluster.heartbeat(now, &local)));
                }
            }
            Input::Timeout => {
                if self.router.poll_timeout().is_some_and(|at| at <= now) {
                    let actions = self.router.handle(election::Input::Timeout, now);
                    self.take(actions, now, &mut out);
                }
                let expired = self.fault.as_ref().is_some_and(|f| {
                    f.cause == FaultCause::Runbook && now >= f.since + self.settings.fault_hold_off
                });
                if expired {
                    self.clear_fault("hold_off_expired", now, &mut out);
                }
            }
            Input::Worker(report) => self.on_worker(report, now, &mut out),
            Input::Override(new) => {
                self.override_ = new;
                // The operator acted: a retained role is theirs again.
                self.retained = false;
                self.apply_params(now, &mut out);
            }
            Input::Resume => {
                // The override itself is stored, then given as
                // `Input::Override(None)`.
                self.after_failed_promote = false;
                self.retained = false;
                self.apply_params(now, &mut out);
                self.clear_fault("resume", now, &mut out);
            }
            Input::Link { up } => {
                if up {
                    if self
                        .fault
                        .as_ref()
                        .is_some_and(|f| f.cause == FaultCause::LinkDown)
                    {
                        self.clear_fault("link_up", now, &mut out);
                    }
                } else {
                    let reason = format!("{} has no carrier", self.settings.interface);
                    self.enter_fault(FaultCause::LinkDown, reason, now, &mut out);
                }
            }
            Input::Stop => self.stopping = true,
            Input::Health {
                priority_delta,
                resign,
            } => {
                self.health_delta = priority_delta;
                self.health_resign = resign;
            }
        }
        self.evaluate(now, &mut out);
        out
    }

    /// A reload: new settings in force, the role kept where it stays valid.
    pub fn reconfigure(&mut self, settings: Settings, now: Instant) -> Vec<Effect> {
        self.settings = settings;
        let mut out = Vec::new();
        self.apply_params(now, &mut out);
        self.evaluate(now, &mut out);
        out
    }

    /// `rcbsd-failover move ENVIRONMENT TO` on this node: checked against
    /// placement and what this node hears; what will happen, in words.
    pub fn start_move(
        &mut self,
        environment: &str,
        to: &str,
        now: Instant,
    ) -> Result<String, crate::quorum::MoveRefused> {
        let cluster = self
            .cluster
            .as_mut()
            .ok_or(crate::quorum::MoveRefused::PlainVrrp)?;
        cluster.start_move(environment, to, now)
    }

    /// SIGTERM is done (everything released, or given up on): the Shutdown
    /// event (a priority-0 advert when master).
    pub fn shutdown(&mut self, now: Instant) -> Vec<Effect> {
        let actions = self.router.handle(election::Input::Shutdown, now);
        let mut out = Vec::new();
        self.take(actions, now, &mut out);
        out
    }

    fn on_worker(&mut self, report: WorkerReport, now: Instant, out: &mut Vec<Effect>) {
        match report {
            WorkerReport::Holding(holding) => {
                if !holding.master && self.retained {
                    // Released at last (the operator fixed the cause).
                    self.retained = false;
                }
                if let Some(cluster) = &mut self.cluster {
                    cluster.set_holding(holding.clone());
                }
                // Served: its own report says what is held of these.
                self.allowed_at
                    .retain(|_, sequence| *sequence > holding.applied);
                self.holding = Some(holding);
                self.check_stuck(now, out);
            }
            WorkerReport::PromoteFailed { reason, generation } => {
                if generation != self.generation || self.stopping {
                    // It served a decision already superseded: no fault.
                    out.push(Effect::Notice(Notice::PromoteFailedSuperseded { reason }));
                    return;
                }
                self.after_failed_promote = true;
                self.apply_params(now, out);
                self.enter_fault(
                    FaultCause::Runbook,
                    format!("promote failed at {reason}"),
                    now,
                    out,
                );
            }
        }
    }

    /// Liveness hole F: what to do about master resources that demotes
    /// keep failing to release; `None` while not stuck.
    fn stuck_action(&self) -> Option<StuckAction> {
        let holding = self.holding.as_ref()?;
        if !holding.master
            || self.settings.release_attempts == 0
            || holding.release_failures < self.settings.release_attempts
        {
            return None;
        }
        Some(if self.settings.watchdog.is_some() {
            StuckAction::Watchdog
        } else if self.fault.is_none() && self.settings.may_be_master {
            StuckAction::Retake
        } else {
            StuckAction::AlertOnly
        })
    }

    fn check_stuck(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let action = self.stuck_action();
        if action != self.stuck_logged {
            if let (Some(action), Some(holding)) = (action, &self.holding) {
                out.push(Effect::Notice(Notice::ReleaseStuck {
                    failures: holding.release_failures,
                    action,
                }));
            }
            self.stuck_logged = action;
        }
        if action == Some(StuckAction::Retake) && !self.retained && !self.stopping {
            self.retained = true;
            self.apply_params(now, out);
        }
    }

    // ----- the evaluation -----------------------------------------------

    fn effective_priority(&self, now: Instant) -> u8 {
        let override_ = if self.retained {
            Override::Promote
        } else {
            self.override_
        };
        priority::effective(priority::Inputs {
            configured: self.settings.params.priority,
            override_,
            may_be_master: self.settings.may_be_master,
            quorum: self.has_quorum(now),
            health_delta: self.health_delta,
        })
    }

    /// The router's parameters and effective priority from the settings,
    /// the override and the fault history.
    fn apply_params(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let p = params(
            &self.settings,
            self.override_,
            self.after_failed_promote,
            self.retained,
        );
        let mut actions = self.router.set_params(p, now);
        actions.extend(self.router.handle(
            election::Input::SetPriority(self.effective_priority(now)),
            now,
        ));
        self.take(actions, now, out);
    }

    fn evaluate(&mut self, now: Instant, out: &mut Vec<Effect>) {
        self.note_health(now, out);
        self.note_quorum(now, out);
        self.check_overrun(now, out);
        let priority = self.effective_priority(now);
        if priority != self.router.effective_priority() {
            let actions = self
                .router
                .handle(election::Input::SetPriority(priority), now);
            self.take(actions, now, out);
        }
        self.publish(now, out);
    }

    /// Turns the router's actions into effects.
    fn take(&mut self, actions: Vec<Action>, now: Instant, out: &mut Vec<Effect>) {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::SendAdvert { priority } => out.push(Effect::SendAdvert { priority }),
                Action::StateChange { from, to, reason } => {
                    if to == VrrpState::Master && self.after_failed_promote {
                        // Elected without preempting anyone: preemption as
                        // configured from now on.
                        self.after_failed_promote = false;
                        let p = params(&self.settings, self.override_, false, self.retained);
                        queue.extend(self.router.set_params(p, now));
                    }
                    out.push(Effect::Notice(Notice::StateChange {
                        from,
                        to,
                        reason,
                        priority: self.router.effective_priority(),
                        master: self.router.master(),
                    }));
                }
                Action::ResendGarp { other_master } => {
                    out.push(Effect::Notice(Notice::MasterConflict {
                        other_master,
                        priority: self.router.effective_priority(),
                    }));
                    out.push(Effect::ResendGarp { other_master });
                }
            }
        }
    }

    fn enter_fault(
        &mut self,
        cause: FaultCause,
        reason: String,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        if self.fault.is_some() {
            // Already resigned; the first cause decides how it clears.
            return;
        }
        out.push(Effect::Notice(Notice::Fault {
            reason: reason.clone(),
        }));
        self.fault = Some(Fault {
            reason,
            cause,
            since: now,
        });
        let actions = self.router.handle(election::Input::SetFault(true), now);
        self.take(actions, now, out);
    }

    fn clear_fault(&mut self, how: &'static str, now: Instant, out: &mut Vec<Effect>) {
        if self.fault.take().is_none() {
            return;
        }
        out.push(Effect::Notice(Notice::FaultCleared { how }));
        let actions = self.router.handle(election::Input::SetFault(false), now);
        self.take(actions, now, out);
    }

    /// Enters or leaves the health fault as the checks' verdict says. A
    /// fault of another cause keeps its own rule; once it clears, a verdict
    /// still resigning enters the health fault at the next evaluation.
    fn note_health(&mut self, now: Instant, out: &mut Vec<Effect>) {
        match (&self.health_resign, &self.fault) {
            (Some(reason), None) => {
                let reason = reason.clone();
                self.enter_fault(FaultCause::Health, reason, now, out);
            }
            (None, Some(fault)) if fault.cause == FaultCause::Health => {
                self.clear_fault("health", now, out);
            }
            _ => {}
        }
    }

    fn note_quorum(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let quorum = cluster.has_quorum(now);
        if self.quorum_logged == Some(quorum) {
            return;
        }
        let heard = heard(cluster, now);
        let majority = quorum::lease::majority(cluster.membership().settings().nodes.len());
        let notice = match (quorum, self.quorum_held_once) {
            (true, _) => Notice::QuorumRegained { heard, majority },
            // A cold start: no majority heard yet is not an error.
            (false, false) => Notice::QuorumWaiting { heard, majority },
            (false, true) => Notice::QuorumLost { heard, majority },
        };
        out.push(Effect::Notice(notice));
        self.quorum_held_once |= quorum;
        self.quorum_logged = Some(quorum);
    }

    /// Logs `lease_overrun` once when a resource the worker still holds has
    /// outlived its lease: the fence did not finish within `fence_margin`.
    fn check_overrun(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let holding = self.may_hold();
        let mut held: Vec<Resource> = holding
            .environments
            .iter()
            .map(|n| Resource::Environment(n.clone()))
            .collect();
        if holding.master {
            held.push(Resource::Master);
        }
        self.lease_ends.retain(|r, _| held.contains(r));
        for resource in held {
            match cluster.membership().lease_until(&resource, now) {
                Some(until) => {
                    self.lease_ends.insert(resource, until);
                }
                None => {
                    if let Some(ended) = self.lease_ends.remove(&resource) {
                        out.push(Effect::Notice(Notice::LeaseOverrun {
                            resource: resource.to_string(),
                            overrun_ms: millis(now.saturating_duration_since(ended)),
                        }));
                    }
                }
            }
        }
    }

    /// The role the election wants, before the leases have their say.
    fn election_role(&self) -> Role {
        if self.stopping {
            return Role::Stopped;
        }
        match self.router.state() {
            VrrpState::Initialize => Role::Undecided,
            VrrpState::Master => Role::Master,
            VrrpState::Backup | VrrpState::Fault => Role::Follower {
                master: self.router.master(),
            },
        }
    }

    /// A live peer is handing over (its heartbeat says so).
    fn peer_handing_over(&self, now: Instant) -> bool {
        self.cluster.as_ref().is_some_and(|c| {
            c.membership()
                .live_peers(now)
                .any(|p| p.heartbeat.handing_over)
        })
    }

    /// Quiesced for a peer's hand-over: the worker has served the
    /// quiescent decision (or, stopping, the release of everything) and
    /// holds no mount and no environment.
    fn is_quiesced(&self) -> bool {
        let Some(decision) = &self.published else {
            return false;
        };
        let holding = self.holding();
        matches!(decision.role, Role::Quiescent | Role::Stopped)
            && holding.applied >= decision.sequence
            && !holding.mounted
            && !holding.master
            && holding.environments.is_empty()
    }

    /// Master and serving: the worker has served the first decision of
    /// the current master role (its promote finished: the converger is
    /// idle on a master role only once promoted; later decisions, such as
    /// placement changes, do not hide it) and holds the master resources,
    /// and no hand-over is under way.
    pub fn is_serving(&self) -> bool {
        let Some(since) = self.master_since else {
            return false;
        };
        let holding = self.holding();
        self.router.state() == VrrpState::Master
            && self.handover.is_none()
            && holding.applied >= since
            && holding.master
    }

    /// Why the master may not go on serving during a hand-over, if it may
    /// not: the master resources must stay covered by quorum and lease.
    fn handover_forced(&self, now: Instant, fence_blocked: bool) -> Option<&'static str> {
        let cluster = self.cluster.as_ref()?;
        if self.fault.is_some() {
            Some("fault")
        } else if !cluster.has_quorum(now) {
            Some("quorum_lost")
        } else if !cluster.allowed(now).master || fence_blocked {
            Some("lease_ending")
        } else {
            None
        }
    }

    /// Starts, ends and cancels a planned hand-over (see [`Handover`]).
    /// A master the election no longer wants — the operator's `demote`,
    /// SIGTERM, preemption by a better node — whose lease and quorum hold
    /// keeps serving while its followers stop their environments and
    /// unmount; a fault, a lost quorum or an ending lease release at once
    /// (forced fencing keeps "VIP first").
    fn track_handover(
        &mut self,
        election_role: &Role,
        fence_blocked: bool,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Some(timeout) = self.settings.cluster.as_ref().and_then(|c| c.handover) else {
            self.handover = None;
            return;
        };
        let wanted = *election_role == Role::Master;
        match &self.handover {
            None => {
                let was_master = self
                    .published
                    .as_ref()
                    .is_some_and(|p| p.role == Role::Master);
                let holds = self.holding.as_ref().is_some_and(|h| h.master);
                if wanted
                    || !was_master
                    || !holds
                    || self.handover_forced(now, fence_blocked).is_some()
                {
                    return;
                }
                let waiting_for = self.live_peer_names(now);
                if waiting_for.is_empty() {
                    return;
                }
                self.handover = Some(Handover {
                    started: now,
                    until: now + timeout,
                    releasing: false,
                });
                out.push(Effect::Notice(Notice::HandoverStarted {
                    waiting_for,
                    timeout_ms: millis(timeout),
                }));
            }
            Some(h) if wanted => {
                // Master again (a `promote`, the better node went away).
                if !h.releasing {
                    out.push(Effect::Notice(Notice::HandoverCancelled {
                        waited_ms: millis(now.saturating_duration_since(h.started)),
                    }));
                }
                self.handover = None;
            }
            Some(h) if h.releasing => {
                if !self.may_hold().master {
                    self.handover = None;
                }
            }
            Some(h) => {
                let (started, until) = (h.started, h.until);
                let laggards = self.unquiesced_peers(started, now);
                let outcome = if let Some(forced) = self.handover_forced(now, fence_blocked) {
                    forced
                } else if laggards.is_empty() {
                    "quiesced"
                } else if now >= until {
                    "timed_out"
                } else {
                    return;
                };
                out.push(Effect::Notice(Notice::HandoverFinished {
                    outcome,
                    waited_ms: millis(now.saturating_duration_since(started)),
                    laggards,
                }));
                self.handover = Some(Handover {
                    started,
                    until,
                    releasing: true,
                });
            }
        }
    }

    fn live_peer_names(&self, now: Instant) -> Vec<String> {
        self.cluster.as_ref().map_or_else(Vec::new, |c| {
            c.membership()
                .live_peers(now)
                .map(|p| p.heartbeat.node.clone())
                .collect()
        })
    }

    /// Live peers that have not said, since the hand-over started, that
    /// they are quiesced.
    fn unquiesced_peers(&self, since: Instant, now: Instant) -> Vec<String> {
        self.cluster.as_ref().map_or_else(Vec::new, |c| {
            c.membership()
                .live_peers(now)
                .filter(|p| !(p.heartbeat.quiesced && p.heard_at > since))
                .map(|p| p.heartbeat.node.clone())
                .collect()
        })
    }

    /// Joins the election and the leases into a decision, and publishes it
    /// when it changed.
    fn publish(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let election_role = self.election_role();
        // With a watchdog, a node acquires only while it can pat it: what it
        // may hold is all covered by leases. Otherwise (an environment whose
        // stop failed, a stuck release, something found at start without a
        // lease) it keeps what it knows runs, stops what only may run, and
        // starts nothing: a new start would run with no armed countdown
        // behind it. A hand-over does not outlast that either.
        let fence_blocked = self.settings.watchdog.is_some()
            && matches!(self.watchdog(now), Verdict::Withhold { .. });
        self.track_handover(&election_role, fence_blocked, now, out);
        // Handing over: still the master until the followers have quiesced.
        let serving = self.handover.as_ref().is_some_and(|h| !h.releasing);
        let peer_handing_over = self.peer_handing_over(now);
        let may_hold = self.may_hold();
        let reported = self.holding();
        let ride_through = self
            .settings
            .cluster
            .as_ref()
            .is_some_and(|c| c.ride_through);
        // The followed master's heartbeat: (serving, reclaimable).
        let (role, environments, takeover, followed) = match &mut self.cluster {
            None => (election_role, None, Vec::new(), (false, false)),
            Some(cluster) => {
                let election_master = election_role == Role::Master || serving;
                for (name, decision) in cluster.update_claims(election_master, now) {
                    out.push(Effect::Notice(Notice::PlacementDecided {
                        environment: name,
                        claim: decision.claim,
                        reason: decision.reason,
                    }));
                }
                let mut allowed = if self.stopping && !serving {
                    Allowed::default()
                } else {
                    cluster.allowed(now)
                };
                if fence_blocked {
                    allowed.master &= may_hold.master;
                    allowed
                        .environments
                        .retain(|name| reported.running.contains(name));
                }
                let gate = quorum::gate(election_master, &allowed);
                let published = Allowed {
                    master: gate.master,
                    environments: gate.environments.clone(),
                };
                // A resource the previous decision allowed and this one
                // does not is being fenced.
                let before = cluster.published().clone();
                if before.master && !published.master && election_master {
                    out.push(Effect::Notice(Notice::LeaseFencing {
                        resource: Resource::Master.to_string(),
                        left_ms: lease_left(cluster, &Resource::Master, now),
                    }));
                }
                for name in before.environments.difference(&published.environments) {
                    let still_wanted = cluster.decisions().get(name).is_some_and(|d| d.claim);
                    if still_wanted && !self.stopping {
                        let resource = Resource::Environment(name.clone());
                        out.push(Effect::Notice(Notice::LeaseFencing {
                            resource: resource.to_string(),
                            left_ms: lease_left(cluster, &resource, now),
                        }));
                    }
                }
                let role = match election_role {
                    _ if serving && gate.master => Role::Master,
                    // Elected by VRRP without the lease (yet, or any more):
                    // hold nothing, follow nobody.
                    Role::Master if !gate.master => Role::Follower { master: None },
                    other => other,
                };
                // The master hands over and still serves: let go of its
                // mounts now, while they answer; follow the next one after.
                let role = match role {
                    Role::Follower { .. } if peer_handing_over => Role::Quiescent,
                    other => other,
                };
                let environments = self
                    .settings
                    .cluster
                    .as_ref()
                    .filter(|c| c.placement)
                    .map(|_| gate.environments.clone());
                let takeover = cluster.not_live_nodes(now);
                // Recorded at every evaluation (released claims are proven
                // by the worker's report of this sequence or a later one).
                let (master_serving, master_reclaimable) = if ride_through {
                    master_serving(cluster, &role, now)
                } else {
                    (false, false)
                };
                let sequence = self.sequence
                    + u64::from(self.published.as_ref().is_none_or(|p| {
                        p.role != role
                            || p.environments != environments
                            || p.takeover != takeover
                            || p.master_serving != master_serving
                            || p.master_reclaimable != master_reclaimable
                    }));
                cluster.note_published(sequence, &published);
                (
                    role,
                    environments,
                    takeover,
                    (master_serving, master_reclaimable),
                )
            }
        };
        let (master_serving, master_reclaimable) = followed;
        let changed = self.published.as_ref().is_none_or(|p| {
            p.role != role
                || p.environments != environments
                || p.takeover != takeover
                || p.master_serving != master_serving
                || p.master_reclaimable != master_reclaimable
        });
        if !changed {
            return;
        }
        let role_changed = self.published.as_ref().is_none_or(|p| p.role != role);
        let lost_environment = match (self.published.as_ref(), &environments) {
            (
                Some(Decision {
                    environments: Some(old),
                    ..
                }),
                Some(new),
            ) => old.iter().any(|e| !new.contains(e)),
            _ => false,
        };
        self.sequence += 1;
        let cancel = role_changed || lost_environment;
        if cancel {
            self.generation = self.generation.wrapping_add(1);
        }
        let decision = Decision {
            sequence: self.sequence,
            role,
            environments,
            takeover,
            master_serving,
            master_reclaimable,
        };
        if decision.role == Role::Master {
            self.allowed_at.insert(Resource::Master, decision.sequence);
            if self.master_since.is_none() || role_changed {
                self.master_since = Some(decision.sequence);
            }
        } else {
            self.master_since = None;
        }
        for name in decision.environments.iter().flatten() {
            self.allowed_at
                .insert(Resource::Environment(name.clone()), decision.sequence);
        }
        self.published = Some(decision.clone());
        out.push(Effect::Publish { decision, cancel });
    }
}

/// Following `role`'s master: whether a live peer, master by its own
/// heartbeat and following itself at that address, says it serves, and
/// whether it also says its clients can reclaim (`reclaimable`).
fn master_serving(cluster: &NodeQuorum, role: &Role, now: Instant) -> (bool, bool) {
    let Role::Follower { master: Some(m) } = role else {
        return (false, false);
    };
    cluster
        .membership()
        .live_peers(now)
        .find(|p| {
            p.heartbeat.serving
                && p.heartbeat.state == VrrpState::Master
                && p.heartbeat.following == Some(*m)
        })
        .map_or((false, false), |p| (true, p.heartbeat.reclaimable))
}

/// Before the worker's first report, a restarted node may hold anything
/// it could hold (hole D): the master resources if it may be master, every
/// environment placed on it. It keeps claiming them, which blocks grants
/// to others, until the worker has looked.
fn everything_possible(settings: &Settings, cluster: &ClusterSettings) -> Holding {
    Holding {
        applied: 0,
        master: settings.may_be_master,
        environments: cluster.candidates.iter().cloned().collect(),
        running: BTreeSet::new(),
        release_failures: 0,
        mounted: true,
        reclaimable: false,
    }
}

/// The election parameters for the settings, an override and the fault
/// history (see [`NodeCore`]'s `after_failed_promote`).
fn params(
    settings: &Settings,
    override_: Override,
    after_failed_promote: bool,
    retained: bool,
) -> Params {
    let override_ = if retained {
        Override::Promote
    } else {
        override_
    };
    Params {
        preempt: priority::preempt(settings.params.preempt && !after_failed_promote, override_),
        ..settings.params.clone()
    }
}

fn heard(cluster: &NodeQuorum, now: Instant) -> Vec<String> {
    let mut heard = vec![cluster.me().to_owned()];
    heard.extend(
        cluster
            .membership()
            .live_peers(now)
            .map(|p| p.heartbeat.node.clone()),
    );
    heard
}

fn lease_left(cluster: &NodeQuorum, resource: &Resource, now: Instant) -> u64 {
    cluster
        .membership()
        .lease_until(resource, now)
        .map_or(0, |until| millis(until.saturating_duration_since(now)))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
