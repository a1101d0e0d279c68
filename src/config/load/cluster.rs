//! Reading `[cluster]`: the member list (names and addresses unique,
//! never two nodes), the heartbeat port and interval, and the lease rules
//! between heartbeat_interval, lease and fence_margin. What ties
//! `[cluster]` to `[node]` (this node is a member), `[vrrp]` (no member
//! address is a VIP) and `[fence]` (the watchdog's reach) is checked in
//! `cross_checks.rs`; `[fence]` also changes the lease defaults here.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::{Reader, Value};
use crate::config::cluster::{
    Cluster, ClusterNode, DEFAULT_FENCE_MARGIN, DEFAULT_HANDOVER_TIMEOUT,
    DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_PORT, DEFAULT_LEASE,
};
use crate::config::fence::{Watchdog, WATCHDOG_FENCE_MARGIN, WATCHDOG_LEASE};
use crate::config::{duration, VirtualIp, VirtualIp6};

const CLUSTER_KEYS: &[&str] = &[
    "nodes",
    "port",
    "heartbeat_interval",
    "lease",
    "fence_margin",
    "handover_timeout",
];
const CLUSTER_NODE_KEYS: &[&str] = &["name", "address"];

/// Holders and granters run on separate clocks; with up to 1% rate drift on
/// each, a lease measured by the holder may end up to ~2% later on a
/// granter's clock. Keeping the holder's whole fencing window inside 97% of
/// the lease leaves that 2% and 1% more for timer slack.
const LEASE_SAFETY_PERCENT: u128 = 97;

impl Reader<'_> {
    /// `[cluster]`: `Some(None)` when absent, `None` when invalid.
    pub(super) fn cluster_section(
        &mut self,
        root: &DeTable<'_>,
        this_node: Option<&str>,
        vips: &[VirtualIp],
        vips6: &[VirtualIp6],
        watchdog: Option<&Watchdog>,
    ) -> Option<Option<Cluster>> {
        let Some(value) = root.get("cluster") else {
            return Some(None);
        };
        let table = self.table(value, "cluster")?;
        self.unknown_keys(table, "cluster", CLUSTER_KEYS);
        let nodes = match table.get("nodes") {
            Some(nodes) => self.cluster_nodes(nodes, this_node, vips, vips6),
            None => {
                self.error(
                    value.span(),
                    "cluster.nodes",
                    "missing; list every node, this one included, e.g. nodes = [{ name = \"node1\", address = \"192.168.10.201\" }, ...]",
                );
                None
            }
        };
        let port = self.optional(table, "port", i128::from(DEFAULT_HEARTBEAT_PORT), |r, v| {
            r.integer(v, "cluster.port", 1..=65535, "1..=65535")
        });
        let heartbeat_interval = self.duration_in(
            table.get("heartbeat_interval"),
            "cluster.heartbeat_interval",
            DEFAULT_HEARTBEAT_INTERVAL,
            Duration::from_millis(10)..=Duration::from_secs(10),
        );
        let hour = Duration::from_secs(3600);
        // With a watchdog the lease only has to cover its countdown, not
        // the slowest demote (docs/design.md, "The fence").
        let (default_lease, default_margin) = match watchdog {
            Some(_) => (WATCHDOG_LEASE, WATCHDOG_FENCE_MARGIN),
            None => (DEFAULT_LEASE, DEFAULT_FENCE_MARGIN),
        };
        let lease = self.duration_in(
            table.get("lease"),
            "cluster.lease",
            default_lease,
            Duration::from_millis(40)..=hour,
        );
        let fence_margin = self.duration_in(
            table.get("fence_margin"),
            "cluster.fence_margin",
            default_margin,
            Duration::from_millis(10)..=hour,
        );
        let handover_timeout = self.duration_in(
            table.get("handover_timeout"),
            "cluster.handover_timeout",
            DEFAULT_HANDOVER_TIMEOUT,
            Duration::ZERO..=hour,
        );
        let timing_ok = match (heartbeat_interval, lease, fence_margin) {
            (Some(interval), Some(lease), Some(margin)) => {
                self.lease_timing(table, value.span(), interval, lease, margin)
                    && watchdog.is_none_or(|w| {
                        self.watchdog_timing(table, value.span(), interval, lease, margin, w)
                    })
            }
            _ => false,
        };
        if !timing_ok {
            return None;
        }
        Some(Some(Cluster {
            nodes: nodes?,
            port: u16::try_from(port?).ok()?,
            heartbeat_interval: heartbeat_interval?,
            lease: lease?,
            fence_margin: fence_margin?,
            handover_timeout: handover_timeout?,
        }))
    }

    fn cluster_nodes(
        &mut self,
        value: &Value<'_>,
        this_node: Option<&str>,
        vips: &[VirtualIp],
        vips6: &[VirtualIp6],
    ) -> Option<Vec<ClusterNode>> {
        const KEY: &str = "cluster.nodes";
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                value.span(),
                KEY,
                "an array of { name = \"...\", address = \"...\" } tables",
                value.get_ref(),
            );
            return None;
        };
        let mut nodes = Vec::with_capacity(items.len());
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut addresses: HashMap<IpAddr, Range<usize>> = HashMap::new();
        let mut first_family: Option<(bool, String)> = None;
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{KEY}[{index}]");
            match self.cluster_node(item, &item_key, vips, vips6) {
                Some((node, name_span, address_span)) => {
                    // One UDP socket, bound to this node's address, talks
                    // to every peer: one family for the whole cluster.
                    let family_ok = match &first_family {
                        None => {
                            first_family = Some((node.address.is_ipv6(), item_key.clone()));
                            true
                        }
                        Some((ipv6, first)) if *ipv6 != node.address.is_ipv6() => {
                            self.error(
                                address_span.clone(),
                                &format!("{item_key}.address"),
                                format!(
                                    "{} is of the other family than {first}.address; every node's heartbeats travel over one socket, so all cluster addresses are IPv4 or all are IPv6",
                                    node.address
                                ),
                            );
                            false
                        }
                        Some(_) => true,
                    };
                    valid &= family_ok;
                    let unique_name = self.first_listing(
                        &mut names,
                        node.name.clone(),
                        &format!("{:?}", node.name),
                        &name_span,
                        &format!("{item_key}.name"),
                        "; node names are unique in the cluster",
                    );
                    let unique_address = self.first_listing(
                        &mut addresses,
                        node.address,
                        &node.address.to_string(),
                        &address_span,
                        &format!("{item_key}.address"),
                        "; each node has its own address",
                    );
                    valid &= unique_name && unique_address;
                    nodes.push(node);
                }
                None => valid = false,
            }
        }
        if !valid {
            return None;
        }
        match nodes.len() {
            0 => {
                self.error(
                    value.span(),
                    KEY,
                    "empty; list every node, this one included",
                );
                return None;
            }
            // The documented rule: with two voters a majority is both, so
            // losing either node (or the link) leaves no master at all.
            2 => {
                self.error(
                    value.span(),
                    KEY,
                    "two nodes: a majority of two is both, so the loss of either node or of the link between them would leave no master; add a third node as a voter (a follower-only node votes: [cbsd] without [storage], or a plain VRRP node)",
                );
                return None;
            }
            _ => {}
        }
        if let Some(name) = this_node {
            if !self.cluster_lists_this_node(value.span(), &nodes, name) {
                return None;
            }
        }
        Some(nodes)
    }

    /// One `{ name, address }` entry with the spans of both values.
    fn cluster_node(
        &mut self,
        item: &Value<'_>,
        key: &str,
        vips: &[VirtualIp],
        vips6: &[VirtualIp6],
    ) -> Option<(ClusterNode, Range<usize>, Range<usize>)> {
        let DeValue::Table(entry) = item.get_ref() else {
            self.wrong_type(
                item.span(),
                key,
                "a table { name = \"...\", address = \"...\" }",
                item.get_ref(),
            );
            return None;
        };
        self.unknown_keys(entry, key, CLUSTER_NODE_KEYS);
        let name_key = format!("{key}.name");
        let name = match entry.get("name") {
            Some(value) => self
                .string(value, &name_key)
                .and_then(|name| self.node_name(&name, value.span(), &name_key, false))
                .map(|name| (name, value.span())),
            None => {
                self.error(item.span(), &name_key, "missing; the node's node.name");
                None
            }
        };
        let address_key = format!("{key}.address");
        let address = match entry.get("address") {
            Some(value) => self
                .string(value, &address_key)
                .and_then(|text| self.cluster_address(&text, value.span(), &address_key))
                .map(|address| (address, value.span())),
            None => {
                self.error(
                    item.span(),
                    &address_key,
                    "missing; the node's own IPv4 or IPv6 address, where its heartbeats come from",
                );
                None
            }
        };
        let (address, address_span) = address?;
        if !self.node_address_is_not_a_vip(address, address_span.clone(), &address_key, vips, vips6)
        {
            return None;
        }
        let (name, name_span) = name?;
        Some((ClusterNode { name, address }, name_span, address_span))
    }

    /// A node's heartbeat address: IPv4 as everywhere, or a global IPv6
    /// unicast address (a link-local one would need a scope the config
    /// cannot carry per peer).
    fn cluster_address(&mut self, text: &str, span: Range<usize>, key: &str) -> Option<IpAddr> {
        let Ok(address) = text.parse::<Ipv6Addr>() else {
            return self.unicast_address(text, span, key).map(IpAddr::V4);
        };
        let problem = if address.is_unspecified() {
            Some("the unspecified address")
        } else if address.is_multicast() {
            Some("a multicast address")
        } else if address.is_loopback() {
            Some("a loopback address")
        } else if address.is_unicast_link_local() {
            Some(
                "link-local (its scope cannot be given here); use a global or unique-local address",
            )
        } else if address.to_ipv4_mapped().is_some() {
            Some("IPv4-mapped; write the IPv4 address itself")
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.error(
                    span,
                    key,
                    format!("{address} is {problem}; a unicast host address is required"),
                );
                None
            }
            None => Some(IpAddr::V6(address)),
        }
    }

    fn lease_timing(
        &mut self,
        table: &DeTable<'_>,
        table_span: Range<usize>,
        interval: Duration,
        lease: Duration,
        margin: Duration,
    ) -> bool {
        let span_of = |key: &str| table.get(key).map_or(table_span.clone(), |v| v.span());
        let shown = duration::format;
        let mut ok = true;
        // A lease shorter than a few heartbeats expires on ordinary loss.
        if lease < interval.saturating_mul(4) {
            self.error(
                span_of("lease"),
                "cluster.lease",
                format!(
                    "{} is less than 4 × heartbeat_interval ({}): two lost heartbeats would already end a lease; use at least {}",
                    shown(lease),
                    shown(interval),
                    shown(interval.saturating_mul(4))
                ),
            );
            ok = false;
        }
        // The holder must hear at least one round of acknowledgements while
        // it still has time to fence.
        if margin < interval {
            self.error(
                span_of("fence_margin"),
                "cluster.fence_margin",
                format!(
                    "{} is less than heartbeat_interval ({}): a holder would notice too late that it lost its majority",
                    shown(margin),
                    shown(interval)
                ),
            );
            ok = false;
        }
        let window = margin.saturating_add(interval.saturating_mul(2));
        let safe_nanos = lease.as_nanos() * LEASE_SAFETY_PERCENT / 100;
        if window.as_nanos() > safe_nanos {
            // The smallest whole-millisecond lease that satisfies the rule.
            let needed_nanos = (window.as_nanos() * 100).div_ceil(LEASE_SAFETY_PERCENT);
            let needed_millis = needed_nanos.div_ceil(1_000_000);
            let needed = Duration::from_millis(u64::try_from(needed_millis).unwrap_or(u64::MAX));
            self.error(
                span_of("fence_margin"),
                "cluster.fence_margin",
                format!(
                    "fence_margin + 2 × heartbeat_interval ({}) exceeds 97% of lease ({}): the holder must have finished fencing before a majority may grant the resource to another node, with up to 1% clock drift on each node; lengthen lease to at least {} or shorten fence_margin",
                    shown(window),
                    shown(lease),
                    shown(needed)
                ),
            );
            ok = false;
        }
        ok
    }
}
