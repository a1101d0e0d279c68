//! [`Config::cluster_hash`]: a fingerprint of the sections that must be the
//! same on every node, carried in heartbeats so that a node whose copy
//! differs is noticed (`cluster_config_mismatch`).
//!
//! The hash is SHA-256 over a canonical text, not `std::hash`: the value
//! must be the same in every process, on every platform and across
//! versions of the agent (std's hashers promise none of that). The text
//! starts with a version line; changing its format means a new version
//! line, so that mixed versions report a mismatch instead of a false match.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::Config;

/// First line of the canonical text; bump the number when its format changes.
const FORMAT: &str = "rcbsd-failover cluster-config v1";
/// First line of the quorum hash's text.
const QUORUM_FORMAT: &str = "rcbsd-failover quorum-config v1";

/// One line per node (sorted, so the file's order does not matter), then
/// the heartbeat port.
fn write_members(text: &mut String, cluster: &super::Cluster) {
    let mut nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.name, n.address))
        .collect();
    nodes.sort();
    for node in nodes {
        let _ = writeln!(text, "node {node}");
    }
    let _ = writeln!(text, "port {}", cluster.port);
}

/// The first 8 bytes of a digest, big-endian.
fn first_eight(digest: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    for (slot, byte) in first.iter_mut().zip(digest.iter()) {
        *slot = *byte;
    }
    u64::from_be_bytes(first)
}

impl Config {
    /// The first 8 bytes (big-endian) of SHA-256 over the canonical text of
    /// `[cluster]`, every `[[environment]]`, `vrrp.vrid` and
    /// `vrrp.virtual_ips` (either family), and `[vrrp6]`'s `vrid` and
    /// `virtual_ips`. Node-local keys (priority, paths, timeouts...) do
    /// not change it; neither does the order of entries in the file, except
    /// an environment's preference order, which is meaningful.
    pub fn cluster_hash(&self) -> u64 {
        first_eight(&Sha256::digest(self.canonical_cluster_text().as_bytes()))
    }

    /// The fingerprint of what the leases' arithmetic depends on: the node
    /// list (names and addresses), the heartbeat port, `lease` and
    /// `fence_margin`. A node counts a peer toward a majority, and grants
    /// it anything, only when their quorum hashes match (hole E of the
    /// safety review: a peer with a longer `lease` would count our grants
    /// longer than we give them; one with another node list computes
    /// another majority). Placement and VIPs are not in it: they may
    /// differ for a moment during a rolling change without harm.
    pub fn quorum_hash(&self) -> u64 {
        let mut text = String::new();
        let _ = writeln!(text, "{QUORUM_FORMAT}");
        if let Some(cluster) = &self.cluster {
            write_members(&mut text, cluster);
            let _ = writeln!(text, "lease_ns {}", cluster.lease.as_nanos());
            let _ = writeln!(text, "fence_margin_ns {}", cluster.fence_margin.as_nanos());
        }
        first_eight(&Sha256::digest(text.as_bytes()))
    }

    /// One `key value` line per fact. Names and kinds are validated to
    /// contain no spaces or newlines, so the lines need no escaping.
    fn canonical_cluster_text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(text, "{FORMAT}");
        let _ = writeln!(text, "vrid {}", self.vrrp.vrid);
        let mut vips: Vec<String> = self
            .vrrp
            .virtual_ips
            .iter()
            .map(|v| v.to_string())
            .collect();
        // An IPv6 [vrrp]'s addresses are its virtual IPs as well; the
        // lines of an IPv4-only file are unchanged.
        vips.extend(self.vrrp.virtual_ips6.iter().map(|v| v.to_string()));
        vips.sort();
        for vip in vips {
            let _ = writeln!(text, "virtual_ip {vip}");
        }
        if let Some(v6) = &self.vrrp6 {
            let _ = writeln!(text, "vrid6 {}", v6.vrid);
            let mut vips6: Vec<String> = v6.virtual_ips.iter().map(|v| v.to_string()).collect();
            vips6.sort();
            for vip in vips6 {
                let _ = writeln!(text, "virtual_ip6 {vip}");
            }
        }
        if let Some(cluster) = &self.cluster {
            write_members(&mut text, cluster);
            // Nanoseconds: exact, and independent of how the file spelled them.
            let _ = writeln!(
                text,
                "heartbeat_interval_ns {}",
                cluster.heartbeat_interval.as_nanos()
            );
            let _ = writeln!(text, "lease_ns {}", cluster.lease.as_nanos());
            let _ = writeln!(text, "fence_margin_ns {}", cluster.fence_margin.as_nanos());
        } else {
            let _ = writeln!(text, "no-cluster");
        }
        let mut environments: Vec<String> = self
            .placement
            .iter()
            .map(|e| {
                format!(
                    "environment {} kind={} failback={} nodes={}",
                    e.name,
                    e.kind.as_str(),
                    e.failback,
                    e.nodes.join(",")
                )
            })
            .collect();
        environments.sort();
        for environment in environments {
            let _ = writeln!(text, "{environment}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{parse_with_hostname, Config};

    const CLUSTER: &str = r#"
[cluster]
nodes = [
  { name = "node1", address = "198.18.0.1" },
  { name = "node2", address = "198.18.0.2" },
  { name = "node3", address = "198.18.0.3" },
]

[[environment]]
name = "web1"
nodes = ["node1", "node3"]

[[environment]]
name = "vm1"
kind = "bhyve"
nodes = ["node2"]
"#;

    fn config(node: &str, priority: u8, extra: &str) -> Config {
        let text = format!(
            "[node]\nname = \"{node}\"\nstate_dir = \"/tmp/{node}\"\n\
             [vrrp]\ninterface = \"em0\"\nvrid = 51\npriority = {priority}\n\
             virtual_ips = [\"198.18.0.100/24\"]\n[cbsd]\n{extra}"
        );
        parse_with_hostname(&text, Path::new("/t.toml"), None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn node_local_keys_do_not_change_the_hash() {
        let node1 = config("node1", 150, CLUSTER);
        let node3 = config("node3", 50, CLUSTER);
        assert_eq!(node1.cluster_hash(), node3.cluster_hash());
    }

    #[test]
    fn the_order_of_nodes_and_environments_in_the_file_does_not_matter() {
        let reordered = CLUSTER
            .replace(
                "  { name = \"node1\", address = \"198.18.0.1\" },\n",
                "",
            )
            .replace(
                "  { name = \"node3\", address = \"198.18.0.3\" },\n",
                "  { name = \"node3\", address = \"198.18.0.3\" },\n  { name = \"node1\", address = \"198.18.0.1\" },\n",
            );
        assert_ne!(reordered, CLUSTER, "the test must reorder something");
        assert_eq!(
            config("node1", 100, CLUSTER).cluster_hash(),
            config("node1", 100, &reordered).cluster_hash()
        );
    }

    #[test]
    fn changing_an_environment_changes_the_hash() {
        let base = config("node1", 100, CLUSTER).cluster_hash();
        let preference = CLUSTER.replace(r#"["node1", "node3"]"#, r#"["node3", "node1"]"#);
        let failback = CLUSTER.replace(
            "nodes = [\"node2\"]\n",
            "nodes = [\"node2\"]\nfailback = true\n",
        );
        let kind = CLUSTER.replace("kind = \"bhyve\"\n", "");
        for changed in [preference, failback, kind] {
            assert_ne!(changed, CLUSTER);
            assert_ne!(
                config("node1", 100, &changed).cluster_hash(),
                base,
                "{changed}"
            );
        }
    }

    #[test]
    fn changing_the_cluster_or_the_virtual_router_changes_the_hash() {
        let base = config("node1", 100, CLUSTER);
        let with_lease = CLUSTER.replacen(
            "]\n\n[[environment]]",
            "]\nlease = \"12s\"\n\n[[environment]]",
            1,
        );
        assert_ne!(
            config("node1", 100, &with_lease).cluster_hash(),
            base.cluster_hash()
        );
        let mut other_vrid = base.clone();
        other_vrid.vrrp.vrid = 52;
        assert_ne!(other_vrid.cluster_hash(), base.cluster_hash());
    }

    #[test]
    fn the_ipv6_routers_are_in_the_hash() {
        let base = config("node1", 100, "");
        let dual = |vrid: u8, vip: &str| {
            let text = format!(
                "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"198.18.0.100/24\"]\n\
                 [vrrp6]\nvrid = {vrid}\nvirtual_ips = [\"fe80::51/64\", \"{vip}\"]\n[cbsd]\n"
            );
            parse_with_hostname(&text, Path::new("/t.toml"), Some("n")).unwrap()
        };
        let a = dual(51, "2001:db8::51/64");
        assert_ne!(a.cluster_hash(), base.cluster_hash());
        assert_ne!(a.cluster_hash(), dual(52, "2001:db8::51/64").cluster_hash());
        assert_ne!(a.cluster_hash(), dual(51, "2001:db8::52/64").cluster_hash());
        assert!(a.canonical_cluster_text().ends_with(
            "vrid6 51\nvirtual_ip6 2001:db8::51/64\nvirtual_ip6 fe80::51/64\nno-cluster\n"
        ));
    }

    #[test]
    fn the_hash_is_a_fixed_function_of_the_canonical_text() {
        // Pinned: a change here breaks mixed-version clusters, so it must be
        // deliberate (and come with a new FORMAT line).
        let plain = config("node1", 100, "");
        assert_eq!(
            plain.canonical_cluster_text(),
            "rcbsd-failover cluster-config v1\nvrid 51\nvirtual_ip 198.18.0.100/24\nno-cluster\n"
        );
        assert_eq!(plain.cluster_hash(), PINNED_PLAIN_HASH);
    }

    const PINNED_PLAIN_HASH: u64 = 0xe4bf_ed76_e67c_d51d;
}
