//! `[cluster]`: who the nodes are, how they hear each other and how long a
//! lease lasts (read and checked in `load/cluster.rs`).
//!
//! `[cluster]` is meant to be identical on every node;
//! [`super::Config::cluster_hash`] lets the nodes compare it. Without
//! `[cluster]` the node runs plain VRRP: no quorum, no placement.

use std::net::IpAddr;
use std::time::Duration;

/// Default `cluster.port` (UDP, heartbeats).
pub const DEFAULT_HEARTBEAT_PORT: u16 = 7798;
/// Default `cluster.heartbeat_interval`.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(200);
/// Default `cluster.lease`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// Default `cluster.fence_margin`.
pub const DEFAULT_FENCE_MARGIN: Duration = Duration::from_secs(8);
/// Default `cluster.handover_timeout`: long enough for followers to stop
/// their environments (`environments.stop_timeout` is 120 s by default, but
/// a hand-over that waits that long for one slow jail is worse than the
/// dead-server path it avoids).
pub const DEFAULT_HANDOVER_TIMEOUT: Duration = Duration::from_secs(120);

/// `[cluster]`: every node of the cluster, this one included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// In file order; names and addresses are unique, and this node's
    /// `node.name` is one of them. Never two nodes (see `docs/configuration.md`).
    pub nodes: Vec<ClusterNode>,
    /// UDP port of the heartbeats, the same on every node.
    pub port: u16,
    /// `cluster.heartbeat_interval`: how often each node sends a heartbeat to
    /// every other node (default 200 ms).
    pub heartbeat_interval: Duration,
    /// How long a grant of support lasts after the holder's last claim heard.
    pub lease: Duration,
    /// A holder starts fencing when less than this is left of its lease.
    pub fence_margin: Duration,
    /// How long a master handing over on purpose keeps serving NFS while
    /// the followers quiesce (0: no hand-over, the VIP goes first). Local:
    /// not part of the quorum fingerprint.
    pub handover_timeout: Duration,
}

impl Cluster {
    /// The strict majority of `nodes`: how many nodes (the holder included)
    /// must support a holder.
    pub fn majority(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// The node named `name`, if it is a member.
    pub fn node(&self, name: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|node| node.name == name)
    }

    /// The member whose address is `address`: heartbeats are accepted only
    /// from these.
    pub fn node_at(&self, address: IpAddr) -> Option<&ClusterNode> {
        self.nodes.iter().find(|node| node.address == address)
    }

    /// Every member except `name`: where this node sends its heartbeats.
    pub fn peers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ClusterNode> + 'a {
        self.nodes.iter().filter(move |node| node.name != name)
    }
}

/// One entry of `cluster.nodes`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterNode {
    /// A node name (the `node.name` of that node).
    pub name: String,
    /// Where that node's heartbeats come from and where ours go.
    pub address: IpAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(count: u8) -> Cluster {
        Cluster {
            nodes: (1..=count)
                .map(|i| ClusterNode {
                    name: format!("node{i}"),
                    address: std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, i)),
                })
                .collect(),
            port: DEFAULT_HEARTBEAT_PORT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            lease: DEFAULT_LEASE,
            fence_margin: DEFAULT_FENCE_MARGIN,
            handover_timeout: DEFAULT_HANDOVER_TIMEOUT,
        }
    }

    #[test]
    fn a_majority_is_strictly_more_than_half() {
        assert_eq!(cluster(1).majority(), 1);
        assert_eq!(cluster(3).majority(), 2);
        assert_eq!(cluster(4).majority(), 3);
        assert_eq!(cluster(5).majority(), 3);
    }

    #[test]
    fn members_are_found_by_name_and_address_and_peers_exclude_this_node() {
        let cluster = cluster(3);
        assert_eq!(
            cluster.node("node2").map(|n| n.address),
            Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2)))
        );
        assert!(cluster.node("node9").is_none());
        assert_eq!(
            cluster
                .node_at(std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 3)))
                .map(|n| n.name.as_str()),
            Some("node3")
        );
        assert!(cluster
            .node_at(std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 9)))
            .is_none());
        let peers: Vec<&str> = cluster.peers("node2").map(|n| n.name.as_str()).collect();
        assert_eq!(peers, ["node1", "node3"]);
    }
}
