//! One node's view of the cluster: the heartbeats it heard, the resources
//! it supports (grants) and claims, and from those its quorum and leases.
//!
//! The rules (docs/design.md, "Quorum and leases"):
//!
//! 1. **Grant.** A node supports at most one holder per resource. It grants
//!    resource R to node H when it hears H claim R and its grant for R is
//!    free, expired or already H's; the grant lasts `lease` on its own
//!    clock after the last claim heard. A claim no longer made by H (a
//!    newer heartbeat of H without R) releases the grant at once: H stops
//!    claiming only after it stopped using R.
//! 2. **Quiet start.** A node grants nothing during its first `lease` after
//!    start: a previous run of it may have promised R to someone before a
//!    crash it does not remember.
//! 3. **Hold.** H holds R while a strict majority of `nodes` (H included)
//!    grants R to H. A peer's grant counts from the time H *sent* the
//!    newest claim the peer acknowledged, for `lease::holder_span`.
//! 4. **Quorum.** H has quorum while a strict majority (H included) has
//!    acknowledged one of H's recent heartbeats: they hear H and H hears
//!    them.
//! 5. **Same rules.** A heartbeat whose quorum fingerprint (node list,
//!    lease, fence margin) differs from ours is not taken at all: such a
//!    peer computes its majority and lease from other numbers, so neither
//!    its acknowledgements nor its claims may count here.
//!
//! Two holders of R at once would need two majorities granting R, which
//! share a node that would have granted R to two holders at once: rule 1
//! forbids it, rule 2 covers its restart, rule 3 (with the drift bound)
//! makes sure the holder's idea of its lease ends before the grant does.
//!
//! Everything here is pure: times are passed in, nothing is sent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::lease::{holder_span, kth_latest, majority};
use crate::wire::heartbeat::{Ack, Grant, Handoff, Heartbeat, Resource};
use crate::wire::VrrpState;

/// The static part: who is in the cluster and how long a lease lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// This node's name (one of `nodes`).
    pub me: String,
    /// Every node of the cluster, this one included.
    pub nodes: Vec<String>,
    /// `[cluster] lease`: how long a grant lasts on the granting node's
    /// clock after the last claim it heard, and how long a peer stays live.
    pub lease: Duration,
    /// The fingerprint of the node list and lease timings
    /// (`Config::quorum_hash`): only peers with the same one count.
    pub quorum_hash: u64,
}

/// What this node says about itself in its next heartbeat, besides the
/// quorum bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalReport {
    /// Our VRRP state; `None` is sent as Initialize.
    pub state: Option<VrrpState>,
    /// Our effective VRRP priority, 0..=255 (0 = ineligible).
    pub priority: u8,
    /// The primary address of the VRRP master we see (ours when master).
    pub following: Option<IpAddr>,
    /// Our cluster-wide configuration fingerprint (`Config::cluster_hash`),
    /// compared by peers for `cluster_config_mismatch`.
    pub config_hash: u64,
    /// Names of the CBSD environments running here.
    pub running: Vec<String>,
    /// Environments this node is handing over (`rcbsd-failover move`).
    pub handoffs: Vec<Handoff>,
    /// The master is handing over on purpose (see [`Heartbeat::handing_over`]).
    pub handing_over: bool,
    /// Quiesced for a peer's hand-over (see [`Heartbeat::quiesced`]).
    pub quiesced: bool,
    /// Master with its promote finished, and ride-through configured here
    /// (see [`Heartbeat::serving`]).
    pub serving: bool,
    /// Serving, and its nfsd started with the stable restart records on
    /// the storage (see [`Heartbeat::reclaimable`]).
    pub reclaimable: bool,
}

/// Why a heartbeat was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// The sender's name is not in `[cluster] nodes`.
    UnknownNode,
    /// Another host sends with this node's own name (a copied config).
    OwnName,
    /// Not newer than what was already heard from this sender (a duplicate,
    /// a reordered or a replayed heartbeat).
    Stale,
    /// The sender's node list or lease timings differ from ours: it is not
    /// counted toward a majority and granted nothing.
    ConfigMismatch,
}

impl Ignored {
    /// The snake_case reason under which the agent counts the dropped heartbeat.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::UnknownNode => "unknown_node",
            Ignored::OwnName => "own_name",
            Ignored::Stale => "stale",
            Ignored::ConfigMismatch => "config_mismatch",
        }
    }
}

/// A peer as last heard.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The newest heartbeat taken from the peer.
    pub heartbeat: Heartbeat,
    /// When that heartbeat was received, on our clock.
    pub heard_at: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Support {
    holder: String,
    until: Instant,
}

/// One node's quorum state. See the module documentation.
#[derive(Clone, Debug)]
pub struct Membership {
    settings: Settings,
    incarnation: u64,
    started: Instant,
    next_seq: u64,
    /// When each of our recent heartbeats was sent, oldest first; only those
    /// younger than `lease` can still give us anything.
    sent: VecDeque<(u64, Instant)>,
    peers: BTreeMap<String, Peer>,
    /// What this node supports, per resource.
    support: BTreeMap<Resource, Support>,
    /// What this node claims, with the first sequence number that claimed
    /// it: an acknowledgement of an older heartbeat proves nothing about R.
    claims: BTreeMap<Resource, u64>,
    /// Per peer, its incarnations superseded since we started: never taken
    /// again (a replayed recording).
    retired: BTreeMap<String, VecDeque<u64>>,
}

/// How many superseded incarnations are remembered per peer.
const RETIRED_INCARNATIONS: usize = 16;

impl Membership {
    /// The state of a node started at `now` (the start of its quiet
    /// period, rule 2); `incarnation` numbers this run in heartbeats.
    pub fn new(settings: Settings, incarnation: u64, now: Instant) -> Self {
        Membership {
            settings,
            incarnation,
            started: now,
            next_seq: 1,
            sent: VecDeque::new(),
            peers: BTreeMap::new(),
            support: BTreeMap::new(),
            claims: BTreeMap::new(),
            retired: BTreeMap::new(),
        }
    }

    /// The settings this state was built with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This run's incarnation, sent in every heartbeat.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Takes one heartbeat heard at `now` (already authenticated and
    /// checked to come from the configured address of `heartbeat.node`).
    pub fn receive(&mut self, heartbeat: Heartbeat, now: Instant) -> Result<(), Ignored> {
        if heartbeat.node == self.settings.me {
            return Err(Ignored::OwnName);
        }
        if !self.settings.nodes.contains(&heartbeat.node) {
            return Err(Ignored::UnknownNode);
        }
        // Rule 5 (hole E): a peer whose majority or lease is computed from
        // other settings is no voter of ours. Its old record stays as it
        // was (and ages out): nothing of this heartbeat is taken.
        if heartbeat.quorum_hash != self.settings.quorum_hash {
            return Err(Ignored::ConfigMismatch);
        }
        let retired = self
            .retired
            .get(&heartbeat.node)
            .is_some_and(|r| r.contains(&heartbeat.incarnation));
        if retired {
            return Err(Ignored::Stale);
        }
        if let Some(known) = self.peers.get(&heartbeat.node) {
            let old = (known.heartbeat.incarnation, known.heartbeat.seq);
            if (heartbeat.incarnation, heartbeat.seq) <= old
                && !self.restarted(known, &heartbeat, now)
            {
                return Err(Ignored::Stale);
            }
        }
        let sender = heartbeat.node.clone();
        if let Some(known) = self.peers.get(&sender) {
            if known.heartbeat.incarnation != heartbeat.incarnation {
                let retired = self.retired.entry(sender.clone()).or_default();
                if retired.len() == RETIRED_INCARNATIONS {
                    retired.pop_front();
                }
                retired.push_back(known.heartbeat.incarnation);
            }
        }
        // Rule 1: a claim no longer made releases our grant at once.
        self.support
            .retain(|resource, s| s.holder != sender || heartbeat.claims.contains(resource));
        for resource in &heartbeat.claims {
            self.grant(resource, &sender, now);
        }
        self.peers.insert(
            sender,
            Peer {
                heartbeat,
                heard_at: now,
            },
        );
        Ok(())
    }

    /// A heartbeat of a lower incarnation than the one known is a restart
    /// when its sender lost its `state_dir` with the wall clock behind
    /// (incarnations then go backwards, liveness hole F): taken when the
    /// known incarnation has been silent for a whole lease (it is gone) and
    /// the new one was never seen before (not a recording of an older run).
    fn restarted(&self, known: &Peer, heartbeat: &Heartbeat, now: Instant) -> bool {
        heartbeat.incarnation != known.heartbeat.incarnation
            && now.saturating_duration_since(known.heard_at) > self.settings.lease
    }

    /// Sets what this node claims: everything it holds, is acquiring, or
    /// has not finished releasing.
    pub fn set_claims(&mut self, claims: &BTreeSet<Resource>) {
        let next = self.next_seq;
        self.claims.retain(|r, _| claims.contains(r));
        for resource in claims {
            self.claims.entry(resource.clone()).or_insert(next);
        }
        let me = self.settings.me.clone();
        self.support
            .retain(|r, s| s.holder != me || self.claims.contains_key(r));
    }

    /// The resources this node claims now (see [`Membership::set_claims`]).
    pub fn claims(&self) -> impl Iterator<Item = &Resource> {
        self.claims.keys()
    }

    /// The heartbeat to send now (to every other node).
    pub fn heartbeat(&mut self, now: Instant, local: &LocalReport, quorum: bool) -> Heartbeat {
        let me = self.settings.me.clone();
        let claimed: Vec<Resource> = self.claims.keys().cloned().collect();
        for resource in &claimed {
            self.grant(resource, &me, now);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.sent.push_back((seq, now));
        let lease = self.settings.lease;
        while self
            .sent
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) > lease)
        {
            self.sent.pop_front();
        }
        Heartbeat {
            node: me,
            incarnation: self.incarnation,
            seq,
            state: local.state.unwrap_or(VrrpState::Initialize),
            priority: local.priority,
            quorum,
            handing_over: local.handing_over,
            quiesced: local.quiesced,
            serving: local.serving,
            reclaimable: local.reclaimable,
            following: local.following,
            config_hash: local.config_hash,
            quorum_hash: self.settings.quorum_hash,
            acks: self
                .live_peers(now)
                .map(|p| Ack {
                    node: p.heartbeat.node.clone(),
                    incarnation: p.heartbeat.incarnation,
                    seq: p.heartbeat.seq,
                })
                .collect(),
            claims: claimed,
            grants: self
                .support
                .iter()
                .filter(|(_, s)| s.until > now)
                .map(|(resource, s)| Grant {
                    resource: resource.clone(),
                    holder: s.holder.clone(),
                })
                .collect(),
            running: local.running.clone(),
            handoffs: local.handoffs.clone(),
        }
    }

    /// Peers heard within the last `lease`.
    pub fn live_peers(&self, now: Instant) -> impl Iterator<Item = &Peer> {
        let lease = self.settings.lease;
        self.peers
            .values()
            .filter(move |p| now.saturating_duration_since(p.heard_at) <= lease)
    }

    /// The peer `name` as last heard, live or not; `None` if never heard.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.get(name)
    }

    /// Whether `name` (this node or a peer) is live: heard within `lease`.
    pub fn is_live(&self, name: &str, now: Instant) -> bool {
        name == self.settings.me
            || self
                .peers
                .get(name)
                .is_some_and(|p| now.saturating_duration_since(p.heard_at) <= self.settings.lease)
    }

    /// Rule 4: until when a majority has acknowledged us; `None` if no
    /// majority does now.
    pub fn quorum_until(&self, now: Instant) -> Option<Instant> {
        let span = holder_span(self.settings.lease);
        let mut deadlines = vec![now + span];
        for peer in self.peers.values() {
            if let Some(sent) = self.acknowledged_send_time(&peer.heartbeat, 0) {
                deadlines.push(sent + span);
            }
        }
        kth_latest(deadlines, majority(self.settings.nodes.len())).filter(|until| *until > now)
    }

    /// Rule 3: until when this node holds `resource`; `None` if it does not
    /// (not claimed, or no majority grants it).
    pub fn lease_until(&self, resource: &Resource, now: Instant) -> Option<Instant> {
        let since = *self.claims.get(resource)?;
        let span = holder_span(self.settings.lease);
        let mut deadlines = Vec::new();
        if let Some(own) = self.support.get(resource) {
            if own.holder == self.settings.me && own.until > now {
                deadlines.push(own.until.min(now + span));
            }
        }
        for peer in self.peers.values() {
            let grants_us = peer
                .heartbeat
                .grants
                .iter()
                .any(|g| g.resource == *resource && g.holder == self.settings.me);
            if !grants_us {
                continue;
            }
            if let Some(sent) = self.acknowledged_send_time(&peer.heartbeat, since) {
                deadlines.push(sent + span);
            }
        }
        kth_latest(deadlines, majority(self.settings.nodes.len())).filter(|until| *until > now)
    }

    /// Whether this node still grants nothing (rule 2), and until when.
    pub fn quiet_until(&self) -> Instant {
        self.started + self.settings.lease
    }

    /// Who this node supports for `resource` now, if anyone.
    pub fn supported_holder(&self, resource: &Resource, now: Instant) -> Option<&str> {
        self.support
            .get(resource)
            .filter(|s| s.until > now)
            .map(|s| s.holder.as_str())
    }

    /// When the send time of our heartbeat that `heartbeat` acknowledges,
    /// if it acknowledges one of this incarnation numbered `min_seq` or
    /// later that is recent enough to be remembered.
    fn acknowledged_send_time(&self, heartbeat: &Heartbeat, min_seq: u64) -> Option<Instant> {
        let ack = heartbeat
            .acks
            .iter()
            .find(|a| a.node == self.settings.me && a.incarnation == self.incarnation)?;
        if ack.seq < min_seq {
            return None;
        }
        self.sent
            .iter()
            .find(|(seq, _)| *seq == ack.seq)
            .map(|(_, at)| *at)
    }

    /// Rule 1 and 2 for one claim heard (or made, for our own claims).
    fn grant(&mut self, resource: &Resource, holder: &str, now: Instant) {
        if now < self.quiet_until() {
            return;
        }
        let free = match self.support.get(resource) {
            None => true,
            Some(s) => s.until <= now || s.holder == holder,
        };
        if free {
            self.support.insert(
                resource.clone(),
                Support {
                    holder: holder.to_owned(),
                    until: now + self.settings.lease,
                },
            );
        }
    }
}
