//! Reading the cluster-wide sections: `[cluster]`, `[[environment]]` and
//! `[auth]`, and the checks that tie them to the node-local ones (this
//! node is a member, an environment's nodes are members, the per-node
//! `[environments]` list gives way to placement).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::{is_plain_name, Reader, Value};
use crate::config::fence::{Watchdog, WATCHDOG_FENCE_MARGIN, WATCHDOG_LEASE};
use crate::config::quorum::{
    Auth, Cluster, ClusterNode, PlacedEnvironment, DEFAULT_FENCE_MARGIN, DEFAULT_HANDOVER_TIMEOUT,
    DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_PORT, DEFAULT_LEASE,
};
use crate::config::{duration, EnvKind, VirtualIp};
use crate::node::watchdog::{WatchdogRule, WATCHDOG_SLACK};
use crate::quorum::lease::holder_span;

const CLUSTER_KEYS: &[&str] = &[
    "nodes",
    "port",
    "heartbeat_interval",
    "lease",
    "fence_margin",
    "handover_timeout",
];
const CLUSTER_NODE_KEYS: &[&str] = &["name", "address"];
const ENVIRONMENT_KEYS: &[&str] = &["name", "kind", "nodes", "failback"];
const AUTH_KEYS: &[&str] = &["key_file", "accept_key_file"];

/// CBSD's own limit on jail names is not documented; 64 matches node names
/// and keeps `status` lines readable.
const MAX_ENVIRONMENT_NAME_LEN: usize = 64;

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
        watchdog: Option<&Watchdog>,
    ) -> Option<Option<Cluster>> {
        let Some(value) = root.get("cluster") else {
            return Some(None);
        };
        let table = self.table(value, "cluster")?;
        self.unknown_keys(table, "cluster", CLUSTER_KEYS);
        let nodes = match table.get("nodes") {
            Some(nodes) => self.cluster_nodes(nodes, this_node, vips),
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
        let mut addresses: HashMap<Ipv4Addr, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{KEY}[{index}]");
            match self.cluster_node(item, &item_key, vips) {
                Some((node, name_span, address_span)) => {
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
            if !nodes.iter().any(|node| node.name == name) {
                let listed: Vec<String> = nodes.iter().map(|n| format!("{:?}", n.name)).collect();
                self.error(
                    value.span(),
                    KEY,
                    format!(
                        "this node ({name:?}, node.name) is not listed (listed: {}); every node lists all nodes, itself included",
                        listed.join(", ")
                    ),
                );
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
                .and_then(|text| self.unicast_address(&text, value.span(), &address_key))
                .map(|address| (address, value.span())),
            None => {
                self.error(
                    item.span(),
                    &address_key,
                    "missing; the node's own IPv4 address, where its heartbeats come from",
                );
                None
            }
        };
        let (address, address_span) = address?;
        if vips.iter().any(|vip| vip.address == address) {
            self.error(
                address_span,
                &address_key,
                format!("{address} is a virtual IP; a node's address is its own (a VIP moves between nodes)"),
            );
            return None;
        }
        let (name, name_span) = name?;
        Some((ClusterNode { name, address }, name_span, address_span))
    }

    /// The lease rules; false (with the errors recorded) when broken.
    /// With a watchdog, a healthy holder must be able to pat it: its lease,
    /// renewed every heartbeat, must last longer than the watchdog's reach
    /// (`node::watchdog`) even when an acknowledgement comes two heartbeats
    /// late.
    fn watchdog_timing(
        &mut self,
        table: &DeTable<'_>,
        table_span: Range<usize>,
        interval: Duration,
        lease: Duration,
        margin: Duration,
        watchdog: &Watchdog,
    ) -> bool {
        let rule = WatchdogRule {
            timeout: watchdog.timeout,
            slack: WATCHDOG_SLACK,
        };
        let reach = rule.reach();
        let renewed = holder_span(lease).saturating_sub(interval.saturating_mul(2));
        // A resource is acquired only with more than fence_margin of lease
        // left: that must cover the watchdog's reach, so the pat that arms
        // it for the new resource is a safe one.
        if margin < reach {
            let span = table
                .get("fence_margin")
                .map_or(table_span.clone(), |v| v.span());
            self.error(
                span,
                "cluster.fence_margin",
                format!(
                    "{} is less than the watchdog's reach of {} (fence.watchdog_timeout {} with the device's 20 % tolerance, clock drift and slack): a resource acquired with that little lease left could not be covered by the watchdog; raise fence_margin (and lease) or shorten fence.watchdog_timeout",
                    duration::format(margin),
                    duration::format(reach),
                    duration::format(watchdog.timeout)
                ),
            );
            return false;
        }
        if renewed > reach {
            return true;
        }
        let span = table.get("lease").map_or(table_span, |v| v.span());
        let needed = reach + interval.saturating_mul(3);
        self.error(
            span,
            "cluster.lease",
            format!(
                "{} leaves a holder {} of lease between heartbeats, less than the watchdog's reach of {} (fence.watchdog_timeout {} with clock drift and slack): a healthy node could not pat it and would reset; lengthen lease to at least {} or shorten fence.watchdog_timeout",
                duration::format(lease),
                duration::format(renewed),
                duration::format(reach),
                duration::format(watchdog.timeout),
                duration::format(Duration::from_millis(
                    u64::try_from(needed.as_millis()).unwrap_or(u64::MAX).div_ceil(100) * 100
                ))
            ),
        );
        false
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

    /// Every `[[environment]]`, checked against `[cluster]` (`cluster_given`:
    /// the table is present, even if invalid; `cluster`: its valid content).
    pub(super) fn placement_section(
        &mut self,
        root: &DeTable<'_>,
        cluster_given: bool,
        cluster: Option<&Cluster>,
        this_node: Option<&str>,
        has_cbsd: bool,
    ) -> Option<Vec<PlacedEnvironment>> {
        let Some(value) = root.get("environment") else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                value.span(),
                "environment",
                "an array of tables (one [[environment]] per jail or VM)",
                value.get_ref(),
            );
            return None;
        };
        if !cluster_given {
            let span = items.first().map_or(value.span(), |first| first.span());
            self.error(
                span,
                "environment",
                "[[environment]] needs [cluster]: placement chooses among the cluster's nodes; without [cluster], list this node's environments in [environments] jails/bhyve",
            );
            return None;
        }
        let mut placed = Vec::with_capacity(items.len());
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            let key = format!("environment[{index}]");
            let Some((environment, name_span)) = self.placed_environment(item, &key, cluster)
            else {
                valid = false;
                continue;
            };
            let shown = format!("{:?}", environment.name);
            valid &= self.first_listing(
                &mut names,
                environment.name.clone(),
                &shown,
                &name_span,
                &format!("{key}.name"),
                "; one [[environment]] per jail or VM",
            );
            if let Some(name) = this_node {
                if !has_cbsd && environment.preference(name).is_some() {
                    self.error(
                        item.span(),
                        &format!("{key}.nodes"),
                        format!("lists this node ({name:?}), which has no [cbsd] and so cannot run {shown}; add [cbsd] or remove {name:?} from the list"),
                    );
                    valid = false;
                }
            }
            placed.push(environment);
        }
        valid.then_some(placed)
    }

    fn placed_environment(
        &mut self,
        item: &Value<'_>,
        key: &str,
        cluster: Option<&Cluster>,
    ) -> Option<(PlacedEnvironment, Range<usize>)> {
        let DeValue::Table(table) = item.get_ref() else {
            self.wrong_type(item.span(), key, "a table", item.get_ref());
            return None;
        };
        self.unknown_keys(table, key, ENVIRONMENT_KEYS);
        let name_key = format!("{key}.name");
        let name = match table.get("name") {
            Some(value) => self
                .string(value, &name_key)
                .and_then(|name| self.environment_name(name, value.span(), &name_key))
                .map(|name| (name, value.span())),
            None => {
                self.error(
                    item.span(),
                    &name_key,
                    "missing; the CBSD name of the jail or VM",
                );
                None
            }
        };
        let kind = self.optional(table, "kind", EnvKind::Jail, |r, v| {
            r.environment_kind(v, &format!("{key}.kind"))
        });
        let nodes_key = format!("{key}.nodes");
        let nodes = match table.get("nodes") {
            Some(value) => self.environment_nodes(value, &nodes_key, cluster),
            None => {
                self.error(
                    item.span(),
                    &nodes_key,
                    "missing; the nodes that may run it, most preferred first, e.g. nodes = [\"node1\", \"node3\"]",
                );
                None
            }
        };
        let failback = self.optional(table, "failback", false, |r, v| {
            r.boolean(v, &format!("{key}.failback"))
        });
        let (name, name_span) = name?;
        Some((
            PlacedEnvironment {
                name,
                kind: kind?,
                nodes: nodes?,
                failback: failback?,
            },
            name_span,
        ))
    }

    fn environment_name(&mut self, name: String, span: Range<usize>, key: &str) -> Option<String> {
        let problem = if name.contains(['*', '?']) {
            Some("is a glob; placement names each environment literally (one [[environment]] per jail or VM)")
        } else if !is_plain_name(&name) || name.chars().count() > MAX_ENVIRONMENT_NAME_LEN {
            Some("is not an environment name (1..=64 characters from A-Z a-z 0-9 - _ ., not starting with '-')")
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.error(span, key, format!("{name:?} {problem}"));
                None
            }
            None => Some(name),
        }
    }

    fn environment_kind(&mut self, value: &Value<'_>, key: &str) -> Option<EnvKind> {
        const ACCEPTED: &str = "\"jail\" or \"bhyve\"";
        let DeValue::String(text) = value.get_ref() else {
            self.wrong_type(value.span(), key, ACCEPTED, value.get_ref());
            return None;
        };
        match text.as_ref() {
            "jail" => Some(EnvKind::Jail),
            "bhyve" => Some(EnvKind::Bhyve),
            other => {
                self.error(
                    value.span(),
                    key,
                    format!("{other:?} is not an environment kind (accepted: {ACCEPTED})"),
                );
                None
            }
        }
    }

    fn environment_nodes(
        &mut self,
        value: &Value<'_>,
        key: &str,
        cluster: Option<&Cluster>,
    ) -> Option<Vec<String>> {
        let items = self.string_array(value, key)?;
        if items.is_empty() {
            self.error(
                value.span(),
                key,
                "empty; list the nodes that may run it, most preferred first",
            );
            return None;
        }
        let mut nodes = Vec::with_capacity(items.len());
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (name, span, item_key) in items {
            // Without a valid [cluster] there is nothing to check membership
            // against; its own errors already say why.
            if let Some(cluster) = cluster {
                if cluster.node(&name).is_none() {
                    let members: Vec<String> = cluster
                        .nodes
                        .iter()
                        .map(|n| format!("{:?}", n.name))
                        .collect();
                    self.error(
                        span,
                        &item_key,
                        format!(
                            "{name:?} is not a node of [cluster] (nodes: {})",
                            members.join(", ")
                        ),
                    );
                    valid = false;
                    continue;
                }
            }
            if !self.first_listing(
                &mut seen,
                name.clone(),
                &format!("{name:?}"),
                &span,
                &item_key,
                "",
            ) {
                valid = false;
                continue;
            }
            nodes.push(name);
        }
        valid.then_some(nodes)
    }

    /// With `[cluster]`, the per-node `[environments] jails`/`bhyve` lists
    /// are refused: placement is cluster-wide. The message shows the
    /// `[[environment]]` tables that replace them.
    pub(super) fn refuse_per_node_environments(
        &mut self,
        root: &DeTable<'_>,
        this_node: Option<&str>,
    ) {
        let Some(DeValue::Table(table)) = root.get("environments").map(|v| v.get_ref()) else {
            return;
        };
        let mut listed: Vec<(String, EnvKind)> = Vec::new();
        let mut first_span: Option<(Range<usize>, &str)> = None;
        for (key, kind) in [("jails", EnvKind::Jail), ("bhyve", EnvKind::Bhyve)] {
            let Some(value) = table.get(key) else {
                continue;
            };
            let DeValue::Array(items) = value.get_ref() else {
                continue;
            };
            for item in items.iter() {
                if let DeValue::String(name) = item.get_ref() {
                    listed.push((name.to_string(), kind));
                }
            }
            if !items.is_empty() && first_span.is_none() {
                first_span = Some((value.span(), key));
            }
        }
        let Some((span, key)) = first_span else {
            return;
        };
        let node = this_node.unwrap_or("this-node");
        let mut example = String::new();
        let mut globs = Vec::new();
        for (name, kind) in &listed {
            if name.contains(['*', '?']) {
                globs.push(format!("{name:?}"));
                continue;
            }
            if !example.is_empty() {
                example.push('\n');
            }
            let _ = write!(example, "\n    [[environment]]\n    name = {name:?}\n");
            if *kind == EnvKind::Bhyve {
                example.push_str("    kind = \"bhyve\"\n");
            }
            let _ = write!(example, "    nodes = [{node:?}]");
        }
        let glob_note = if globs.is_empty() {
            String::new()
        } else {
            format!(
                " (no globs: list each environment that {} matches by name)",
                globs.join(", ")
            )
        };
        let shown = if example.is_empty() {
            "\n    [[environment]]\n    name = \"web1\"\n    nodes = [\"node1\", \"node3\"]"
                .to_string()
        } else {
            example
        };
        self.error(
            span,
            &format!("environments.{key}"),
            format!(
                "with [cluster], environments are placed cluster-wide instead of listed per node: remove jails/bhyve from [environments] (its timeouts stay) and add, identically on every node, one [[environment]] per jail or VM, listing the nodes that may run it, most preferred first{glob_note}:{shown}"
            ),
        );
    }

    /// `[auth]`: `Some(None)` when absent, `None` when invalid.
    pub(super) fn auth_section(&mut self, root: &DeTable<'_>) -> Option<Option<Auth>> {
        let Some(value) = root.get("auth") else {
            return Some(None);
        };
        let table = self.table(value, "auth")?;
        self.unknown_keys(table, "auth", AUTH_KEYS);
        let key_file = match table.get("key_file") {
            Some(key_file) => self.clean_path(Some(key_file), "auth.key_file", ""),
            None => {
                self.error(
                    value.span(),
                    "auth.key_file",
                    "missing; the file holding the cluster's shared key, e.g. key_file = \"/usr/local/etc/rcbsd-failover.key\" (owned by root, mode 0600)",
                );
                None
            }
        };
        let accept_key_file = match table.get("accept_key_file") {
            Some(accept) => self
                .clean_path(Some(accept), "auth.accept_key_file", "")
                .map(Some),
            None => Some(None),
        };
        if let (Some(signing), Some(Some(accepted)), Some(accept)) =
            (&key_file, &accept_key_file, table.get("accept_key_file"))
        {
            if signing == accepted {
                self.error(
                    accept.span(),
                    "auth.accept_key_file",
                    "is key_file again; it names the *other* key accepted during a rotation (the new one before it signs, or the old one after)",
                );
                return None;
            }
        }
        Some(Some(Auth {
            key_file: key_file?,
            accept_key_file: accept_key_file?,
        }))
    }

    /// `node.status_group`: a group name, as pw(8) accepts it.
    pub(super) fn status_group(&mut self, value: &Value<'_>) -> Option<String> {
        const KEY: &str = "node.status_group";
        let name = self.string(value, KEY)?;
        let usable = !name.is_empty()
            && name.len() <= MAX_GROUP_NAME_LEN
            && !name.starts_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if usable {
            Some(name)
        } else {
            self.error(
                value.span(),
                KEY,
                format!("{name:?} is not a group name (1..={MAX_GROUP_NAME_LEN} characters from A-Z a-z 0-9 - _ ., not starting with '-')"),
            );
            None
        }
    }
}

/// FreeBSD's MAXLOGNAME (33) less the NUL; Linux accepts 32 too.
const MAX_GROUP_NAME_LEN: usize = 32;
