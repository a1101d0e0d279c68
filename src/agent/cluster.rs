//! The agent's side of the quorum layer: the heartbeat socket,
//! authentication, counters and events around the pure
//! [`crate::quorum::ClusterState`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::auth::{AuthFailureLimiter, Keyring};
use crate::config::{Cluster, Config};
use crate::events;
use crate::quorum::{ClusterState, LocalReport, Settings, StateSettings};
use crate::wire::heartbeat::{self, Resource};

/// Heartbeat counters for `status` and the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatCounters {
    pub sent: u64,
    pub send_errors: u64,
    pub received: u64,
    /// Dropped heartbeats by reason.
    pub dropped: BTreeMap<String, u64>,
}

pub struct ClusterLink {
    cluster: Cluster,
    socket: UdpSocket,
    pub state: ClusterState,
    keys: Option<Arc<Keyring>>,
    auth_alerts: AuthFailureLimiter<Ipv4Addr>,
    pub counters: HeartbeatCounters,
    /// The last quorum state logged (`None` until the first evaluation).
    quorum_logged: Option<bool>,
    /// Peers whose differing config hash was alerted, with that hash.
    mismatch_alerted: BTreeMap<String, u64>,
    /// The last lease end seen per held resource, to notice a resource
    /// still held after its lease ran out (`lease_overrun`).
    lease_ends: BTreeMap<Resource, Instant>,
}

impl ClusterLink {
    /// Binds the heartbeat socket on this node's configured address.
    pub async fn open(
        config: &Config,
        cluster: &Cluster,
        keys: Option<Arc<Keyring>>,
        incarnation: u64,
    ) -> Result<ClusterLink, String> {
        let me = config.node.name.clone();
        let address = cluster
            .node(&me)
            .map(|n| n.address)
            .ok_or_else(|| format!("node.name {me} is not in cluster.nodes"))?;
        let bind = SocketAddrV4::new(address, cluster.port);
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|e| format!("cannot bind the heartbeat socket to {bind}: {e}"))?;
        let settings = StateSettings {
            membership: Settings {
                me,
                nodes: cluster.nodes.iter().map(|n| n.name.clone()).collect(),
                lease: cluster.lease,
            },
            fence_margin: cluster.fence_margin,
            placement: config.placement.clone(),
            config_hash: config.cluster_hash(),
        };
        Ok(ClusterLink {
            cluster: cluster.clone(),
            socket,
            state: ClusterState::new(settings, incarnation, Instant::now()),
            keys,
            auth_alerts: AuthFailureLimiter::new(
                AuthFailureLimiter::<Ipv4Addr>::PERIOD,
                AuthFailureLimiter::<Ipv4Addr>::CAPACITY,
            ),
            counters: HeartbeatCounters::default(),
            quorum_logged: None,
            mismatch_alerted: BTreeMap::new(),
            lease_ends: BTreeMap::new(),
        })
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.cluster.heartbeat_interval
    }

    pub fn majority(&self) -> usize {
        self.cluster.majority()
    }

    /// A reload may change the keys (rotation).
    pub fn set_keys(&mut self, keys: Option<Arc<Keyring>>) {
        self.keys = keys;
    }

    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    /// One datagram from the heartbeat socket; whether it was taken.
    pub fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) -> bool {
        let SocketAddr::V4(from) = from else {
            self.drop_heartbeat("not_ipv4");
            return false;
        };
        // Heartbeats are taken only from the configured addresses, and the
        // name inside must be the one configured at that address.
        let Some(sender) = self.cluster.node_at(*from.ip()).map(|n| n.name.clone()) else {
            self.drop_heartbeat("unknown_address");
            return false;
        };
        let heartbeat = match heartbeat::decode(datagram, self.keys.as_deref()) {
            Ok(heartbeat) => heartbeat,
            Err(e) if e.is_auth_failure() => {
                self.drop_heartbeat("auth");
                if let Some(alert) = self.auth_alerts.record(from.ip(), now) {
                    events::auth_failed(
                        "heartbeat",
                        &from.ip().to_string(),
                        &e.to_string(),
                        alert.suppressed,
                    );
                }
                return false;
            }
            Err(_) => {
                self.drop_heartbeat("malformed");
                return false;
            }
        };
        if heartbeat.node != sender {
            self.drop_heartbeat("name_address_mismatch");
            return false;
        }
        let their_hash = heartbeat.config_hash;
        match self.state.receive(heartbeat, now) {
            Ok(()) => {
                self.counters.received += 1;
                self.check_config_hash(&sender, their_hash);
                true
            }
            Err(ignored) => {
                self.drop_heartbeat(ignored.as_str());
                false
            }
        }
    }

    fn drop_heartbeat(&mut self, reason: &str) {
        *self.counters.dropped.entry(reason.to_owned()).or_default() += 1;
    }

    fn check_config_hash(&mut self, peer: &str, theirs: u64) {
        let ours = self.state.config_hash();
        if theirs == ours {
            if self.mismatch_alerted.remove(peer).is_some() {
                events::cluster_config_match(peer);
            }
            return;
        }
        if self.mismatch_alerted.get(peer) != Some(&theirs) {
            self.mismatch_alerted.insert(peer.to_owned(), theirs);
            events::cluster_config_mismatch(peer, theirs, ours);
        }
    }

    /// Peers whose cluster-wide config differs from ours.
    pub fn mismatched_peers(&self) -> Vec<String> {
        self.mismatch_alerted.keys().cloned().collect()
    }

    /// Sends this node's heartbeat to every other node.
    pub async fn send_heartbeat(&mut self, now: Instant, local: &LocalReport) {
        let heartbeat = self.state.heartbeat(now, local);
        let bytes = match heartbeat::encode(&heartbeat, self.keys.as_deref()) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.counters.send_errors += 1;
                events::heartbeat_encode_failed(&e.to_string());
                return;
            }
        };
        let me = self.state.me().to_owned();
        for peer in self.cluster.peers(&me) {
            let to = SocketAddrV4::new(peer.address, self.cluster.port);
            match self.socket.send_to(&bytes, to).await {
                Ok(_) => self.counters.sent += 1,
                // A peer that is down (no route, refused) is normal while
                // it is down; counted, and shown in status.
                Err(_) => self.counters.send_errors += 1,
            }
        }
    }

    /// Whether this node has quorum now; logs `quorum_lost` /
    /// `quorum_regained` on a change.
    pub fn evaluate_quorum(&mut self, now: Instant) -> bool {
        let quorum = self.state.has_quorum(now);
        if self.quorum_logged != Some(quorum) {
            let heard = self.heard(now).join(",");
            if quorum {
                events::quorum_regained(&heard, self.majority());
            } else {
                events::quorum_lost(&heard, self.majority());
            }
            self.quorum_logged = Some(quorum);
        }
        quorum
    }

    /// This node and the peers heard within the lease.
    pub fn heard(&self, now: Instant) -> Vec<String> {
        let mut heard = vec![self.state.me().to_owned()];
        heard.extend(
            self.state
                .membership()
                .live_peers(now)
                .map(|p| p.heartbeat.node.clone()),
        );
        heard
    }

    /// Milliseconds left of our lease on `resource`; `None` when not held.
    pub fn lease_ms(&self, resource: &Resource, now: Instant) -> Option<u64> {
        self.state
            .membership()
            .lease_until(resource, now)
            .map(|until| u64::try_from(until.duration_since(now).as_millis()).unwrap_or(u64::MAX))
    }

    /// Logs `lease_overrun` once when a resource the worker still holds has
    /// outlived its lease: the fence did not finish within `fence_margin`.
    pub fn check_overrun(&mut self, now: Instant) {
        let holding = self.state.holding().clone();
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
            match self.state.membership().lease_until(&resource, now) {
                Some(until) => {
                    self.lease_ends.insert(resource, until);
                }
                None => {
                    if let Some(ended) = self.lease_ends.remove(&resource) {
                        let overrun = now.saturating_duration_since(ended).as_millis();
                        events::lease_overrun(
                            &resource.to_string(),
                            u64::try_from(overrun).unwrap_or(u64::MAX),
                        );
                    }
                }
            }
        }
    }
}
