//! The agent's side of the quorum layer: the heartbeat socket,
//! authentication, counters and the config-mismatch alerts around the
//! pure node core (which holds the quorum state and decides).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::auth::{AuthFailureLimiter, Keyring};
use crate::config::{Cluster, Config};
use crate::control::protocol::{ClusterStatus, EnvironmentStatus};
use crate::events;
use crate::net::socket::send_now;
use crate::node::NodeCore;
use crate::quorum::{Ignored, NodeQuorumSettings, Settings};
use crate::wire::heartbeat::{self, Heartbeat, Resource};

/// Large enough for any heartbeat the codec accepts.
pub const HEARTBEAT_BUFFER: usize = 65_536;

/// Heartbeat counters for `status` and the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatCounters {
    pub sent: u64,
    pub send_errors: u64,
    pub received: u64,
    /// Dropped heartbeats by reason.
    pub dropped: BTreeMap<&'static str, u64>,
}

/// The quorum settings of the node core for this configuration.
pub fn state_settings(config: &Config, cluster: &Cluster) -> NodeQuorumSettings {
    NodeQuorumSettings {
        membership: Settings {
            me: config.node.name.clone(),
            nodes: cluster.nodes.iter().map(|n| n.name.clone()).collect(),
            lease: cluster.lease,
            quorum_hash: config.quorum_hash(),
        },
        fence_margin: cluster.fence_margin,
        placement: config.placement.clone(),
        config_hash: config.cluster_hash(),
    }
}

pub struct ClusterLink {
    cluster: Cluster,
    me: String,
    socket: AsyncFd<std::net::UdpSocket>,
    keys: Option<Arc<Keyring>>,
    auth_alerts: AuthFailureLimiter<IpAddr>,
    pub counters: HeartbeatCounters,
    /// Our cluster-wide config hash, compared with every peer's.
    config_hash: u64,
    /// Peers whose differing config hash was alerted, with that hash.
    mismatch_alerted: BTreeMap<String, u64>,
}

/// The next heartbeat datagram; never ready without `[cluster]`.
pub async fn recv_heartbeat(
    cluster: Option<&ClusterLink>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match cluster {
        Some(cluster) => {
            cluster
                .socket
                .async_io(Interest::READABLE, |socket| socket.recv_from(buf))
                .await
        }
        None => std::future::pending().await,
    }
}

/// Why the heartbeat socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ClusterLinkError {
    /// `node.name` has no entry in `cluster.nodes`, so no address to bind.
    #[error("node.name {node} is not in cluster.nodes")]
    NotAMember {
        /// This node's `node.name`.
        node: String,
    },
    /// The UDP socket cannot be bound (the address is not on this host, or
    /// the port is taken).
    #[error("cannot bind the heartbeat socket to {address}: {source}")]
    Bind {
        /// This node's `cluster.nodes` address and `cluster.port`.
        address: SocketAddr,
        /// What bind(2) said.
        #[source]
        source: std::io::Error,
    },
}

impl ClusterLink {
    /// Binds the heartbeat socket on this node's configured address.
    pub async fn open(
        config: &Config,
        cluster: &Cluster,
        keys: Option<Arc<Keyring>>,
    ) -> Result<ClusterLink, ClusterLinkError> {
        let me = config.node.name.clone();
        let address = cluster
            .node(&me)
            .map(|n| n.address)
            .ok_or_else(|| ClusterLinkError::NotAMember { node: me.clone() })?;
        let bind = SocketAddr::new(address, cluster.port);
        let bind_error = |source| ClusterLinkError::Bind {
            address: bind,
            source,
        };
        let socket = std::net::UdpSocket::bind(bind).map_err(bind_error)?;
        socket.set_nonblocking(true).map_err(bind_error)?;
        // Registered for reading only; sends go straight out
        // (net::socket::send_now): no wake-up per heartbeat sent.
        //
        // SAFETY: `register_with_interest` needs the fd to stay open and the
        // same for the AsyncFd's whole life. The `UdpSocket` owns its fd and
        // closes it only on drop, and the AsyncFd is never unwrapped (no
        // `into_inner`, no `get_mut`), so the fd lives exactly as long as
        // the registration.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| bind_error(e.into_parts().1))?;
        Ok(ClusterLink {
            cluster: cluster.clone(),
            me,
            socket,
            keys,
            auth_alerts: AuthFailureLimiter::new(
                AuthFailureLimiter::<IpAddr>::PERIOD,
                AuthFailureLimiter::<IpAddr>::CAPACITY,
            ),
            counters: HeartbeatCounters::default(),
            config_hash: config.cluster_hash(),
            mismatch_alerted: BTreeMap::new(),
        })
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.cluster.heartbeat_interval
    }

    /// A reload may change the keys (rotation).
    pub fn set_keys(&mut self, keys: Option<Arc<Keyring>>) {
        self.keys = keys;
    }

    /// One datagram from the heartbeat socket: the heartbeat, if it comes
    /// from a configured address with the name configured there and (with
    /// `[auth]`) a valid tag. The core decides what it means.
    pub fn admit(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) -> Option<Heartbeat> {
        // A socket bound to an IPv6 address receives IPv6 only; an IPv4
        // peer never appears as an IPv4-mapped one.
        let Some(sender) = self.cluster.node_at(from.ip()).map(|n| n.name.clone()) else {
            self.drop_heartbeat("unknown_address");
            return None;
        };
        let heartbeat = match heartbeat::decode(datagram, self.keys.as_deref()) {
            Ok(heartbeat) => heartbeat,
            Err(e) if e.is_auth_failure() => {
                self.drop_heartbeat("auth");
                if let Some(alert) = self.auth_alerts.record(&from.ip(), now) {
                    events::auth_failed(
                        "heartbeat",
                        &from.ip().to_string(),
                        &e.to_string(),
                        alert.suppressed,
                    );
                }
                return None;
            }
            Err(_) => {
                self.drop_heartbeat("malformed");
                return None;
            }
        };
        if heartbeat.node != sender {
            self.drop_heartbeat("name_address_mismatch");
            return None;
        }
        self.counters.received += 1;
        self.check_config_hash(&sender, heartbeat.config_hash);
        Some(heartbeat)
    }

    /// The core did not take a heartbeat.
    pub fn ignored(&mut self, ignored: Ignored) {
        self.counters.received = self.counters.received.saturating_sub(1);
        self.drop_heartbeat(ignored.as_str());
    }

    fn drop_heartbeat(&mut self, reason: &'static str) {
        *self.counters.dropped.entry(reason).or_default() += 1;
    }

    fn check_config_hash(&mut self, peer: &str, theirs: u64) {
        if theirs == self.config_hash {
            if self.mismatch_alerted.remove(peer).is_some() {
                events::cluster_config_match(peer);
            }
            return;
        }
        if self.mismatch_alerted.get(peer) != Some(&theirs) {
            self.mismatch_alerted.insert(peer.to_owned(), theirs);
            events::cluster_config_mismatch(peer, theirs, self.config_hash);
        }
    }

    /// Peers whose cluster-wide config differs from ours.
    pub fn mismatched_peers(&self) -> Vec<String> {
        self.mismatch_alerted.keys().cloned().collect()
    }

    /// Sends `heartbeat` to every other node.
    pub async fn send(&mut self, heartbeat: &Heartbeat) {
        let bytes = match heartbeat::encode(heartbeat, self.keys.as_deref()) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.counters.send_errors += 1;
                events::heartbeat_encode_failed(&e.to_string());
                return;
            }
        };
        for peer in self.cluster.peers(&self.me) {
            let to = SocketAddr::new(peer.address, self.cluster.port);
            let socket = self.socket.get_ref();
            match send_now(|| socket.send_to(&bytes, to)).await {
                Ok(_) => self.counters.sent += 1,
                // A peer that is down (no route, refused) is normal while
                // it is down; counted, and shown in status.
                Err(_) => self.counters.send_errors += 1,
            }
        }
    }
}

/// The quorum layer as `status` shows it; `None` without `[cluster]`.
pub fn status(link: &ClusterLink, core: &NodeCore, now: Instant) -> Option<ClusterStatus> {
    let state = core.cluster()?;
    let mut heard = vec![state.me().to_owned()];
    heard.extend(
        state
            .membership()
            .live_peers(now)
            .map(|p| p.heartbeat.node.clone()),
    );
    let locations = state.environment_locations(now);
    let environments = state
        .decisions()
        .iter()
        .map(|(name, decision)| EnvironmentStatus {
            name: name.clone(),
            running_on: locations.get(name).cloned().unwrap_or_default(),
            claimed_here: decision.claim,
            reason: decision.reason.clone(),
            lease_ms: core.lease_ms(&Resource::Environment(name.clone()), now),
        })
        .collect();
    Some(ClusterStatus {
        quorum: state.has_quorum(now),
        majority: link.cluster.majority(),
        heard,
        not_heard: state.not_live_nodes(now),
        claims: state
            .membership()
            .claims()
            .map(ToString::to_string)
            .collect(),
        master_lease_ms: core.lease_ms(&Resource::Master, now),
        config_mismatch: link.mismatched_peers(),
        incarnation: state.membership().incarnation(),
        heartbeats_sent: link.counters.sent,
        heartbeats_received: link.counters.received,
        heartbeats_dropped: link
            .counters
            .dropped
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        environments,
    })
}
