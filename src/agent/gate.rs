//! Where the election meets the quorum layer (with `[cluster]` only):
//! heartbeats in and out, quorum into the effective priority, and leases
//! into what the worker may hold (`quorum::gate`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use super::cluster::ClusterLink;
use super::transition::{placed_here, Role};
use super::Agent;
use crate::control::protocol::{ClusterStatus, EnvironmentStatus};
use crate::election::{Action, Input};
use crate::events;
use crate::quorum::{self, Allowed, LocalReport};
use crate::runbook::Placement;
use crate::wire::heartbeat::Resource;

/// Large enough for any heartbeat the codec accepts.
pub const HEARTBEAT_BUFFER: usize = 65_536;

/// A decision after the leases had their say.
pub struct Gated {
    pub role: Role,
    pub placement: Option<Placement>,
    /// What the published decision lets the worker hold.
    pub allowed: Allowed,
}

/// The next heartbeat datagram; never ready without `[cluster]`.
pub async fn recv_heartbeat(
    cluster: Option<&ClusterLink>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match cluster {
        Some(cluster) => cluster.recv(buf).await,
        None => std::future::pending().await,
    }
}

impl Agent {
    /// One heartbeat datagram; `None` when it was dropped.
    pub(super) fn on_heartbeat(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
    ) -> Option<Vec<Action>> {
        let accepted = self
            .cluster
            .as_mut()
            .is_some_and(|c| c.on_datagram(datagram, from, Instant::now()));
        accepted.then(|| self.refresh_quorum())
    }

    pub(super) async fn on_heartbeat_tick(&mut self) -> Vec<Action> {
        let local = LocalReport {
            state: Some(self.router.state()),
            priority: self.router.effective_priority(),
            following: self.router.master(),
            ..LocalReport::default()
        };
        if let Some(cluster) = &mut self.cluster {
            cluster.send_heartbeat(Instant::now(), &local).await;
        }
        self.refresh_quorum()
    }

    /// Quorum into the effective priority: a node without quorum
    /// advertises 0 (and a master resigns). The leases are applied when
    /// the caller's `execute` publishes the decision.
    pub(super) fn refresh_quorum(&mut self) -> Vec<Action> {
        let Some(cluster) = &mut self.cluster else {
            return Vec::new();
        };
        let now = Instant::now();
        cluster.evaluate_quorum(now);
        cluster.check_overrun(now);
        let priority = self.effective_priority();
        if priority == self.router.effective_priority() {
            return Vec::new();
        }
        self.router.handle(Input::SetPriority(priority), now)
    }

    /// Applies the leases to the election's role; `None` without
    /// `[cluster]`.
    pub(super) fn gate(&mut self, election_role: Role) -> Option<Gated> {
        let cluster = self.cluster.as_mut()?;
        let now = Instant::now();
        let election_master = election_role == Role::Master;
        for (name, decision) in cluster.state.update_claims(election_master, now) {
            events::placement_decided(&name, decision.claim, &decision.reason);
        }
        let allowed = if self.stopping {
            Allowed::default()
        } else {
            cluster.state.allowed(now)
        };
        let gate = quorum::gate(election_master, &allowed);
        let published = Allowed {
            master: gate.master,
            environments: gate.environments.clone(),
        };
        // What the previous decision allowed: a resource it had and this one
        // has not is being fenced.
        let before = cluster.state.published().clone();
        if before.master && !published.master && election_master {
            events::lease_fencing(
                "master",
                cluster.lease_ms(&Resource::Master, now).unwrap_or(0),
            );
        }
        for name in before.environments.difference(&published.environments) {
            let still_wanted = cluster.state.decisions().get(name).is_some_and(|d| d.claim);
            if still_wanted && !self.stopping {
                let resource = Resource::Environment(name.clone());
                events::lease_fencing(
                    &resource.to_string(),
                    cluster.lease_ms(&resource, now).unwrap_or(0),
                );
            }
        }
        let role = match election_role {
            // Elected by VRRP, but no lease (yet, or any more): hold
            // nothing, follow nobody.
            Role::Master if !gate.master => Role::Follower { master: None },
            other => other,
        };
        let placement = self.config.cbsd.is_some().then(|| {
            let candidates = placed_here(&self.config);
            Placement {
                environments: candidates
                    .iter()
                    .filter(|e| gate.environments.contains(&e.name))
                    .cloned()
                    .collect(),
                candidates,
                takeover: cluster.state.not_live_nodes(now),
            }
        });
        Some(Gated {
            role,
            placement,
            allowed: published,
        })
    }

    pub(super) fn cluster_status(&self) -> Option<ClusterStatus> {
        let cluster = self.cluster.as_ref()?;
        let now = Instant::now();
        let state = &cluster.state;
        let heard = cluster.heard(now);
        let not_heard = state.not_live_nodes(now);
        let locations = state.environment_locations(now);
        let environments = state
            .decisions()
            .iter()
            .map(|(name, decision)| EnvironmentStatus {
                name: name.clone(),
                running_on: locations.get(name).cloned().unwrap_or_default(),
                claimed_here: decision.claim,
                reason: decision.reason.clone(),
                lease_ms: cluster.lease_ms(&Resource::Environment(name.clone()), now),
            })
            .collect();
        Some(ClusterStatus {
            quorum: state.has_quorum(now),
            majority: cluster.majority(),
            heard,
            not_heard,
            claims: state
                .membership()
                .claims()
                .map(ToString::to_string)
                .collect(),
            master_lease_ms: cluster.lease_ms(&Resource::Master, now),
            config_mismatch: cluster.mismatched_peers(),
            incarnation: state.membership().incarnation(),
            heartbeats_sent: cluster.counters.sent,
            heartbeats_received: cluster.counters.received,
            heartbeats_dropped: cluster
                .counters
                .dropped
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<BTreeMap<_, _>>(),
            environments,
        })
    }
}
