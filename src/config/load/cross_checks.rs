//! The checks that tie several sections together, each called by the
//! section reader that has both sides at hand (so every problem is still
//! reported once, where the operator has to fix it):
//!
//! - `[storage]`, `[nfs]` and `[environments]` need `[cbsd]`;
//! - `storage.root` and `cbsd.workdir` are separate trees;
//! - a master candidate (`[storage]`) has `[nfs]` naming who may mount,
//!   and `nfs.remote_root` equals its `storage.root`;
//! - `nfs.export_network` contains every virtual IP of `[vrrp]`, and
//!   `nfs.export_hosts` lists none;
//! - `cluster.nodes` lists this node (`node.name`) and no VIP;
//! - with `[fence] watchdog`, `[cluster]`'s lease and fence_margin cover
//!   the watchdog's reach;
//! - `[[environment]]` needs `[cluster]`, lists only its members, and
//!   lists this node only if it has `[cbsd]`;
//! - with `[cluster]`, `[environments]` lists no jails or VMs (placement
//!   is cluster-wide);
//! - with `follow.on_master_change = "ride-through"`, the exports keep
//!   the followers' file handles across nodes
//!   (`config::file_handles`).
//!
//! The checks within one section stay with that section's reader.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::Reader;
use crate::config::cluster::{Cluster, ClusterNode};
use crate::config::environment::PlacedEnvironment;
use crate::config::fence::Watchdog;
use crate::config::file_handles::ride_through_problems;
use crate::config::nfs::Ipv4Net;
use crate::config::nfs::Nfs;
use crate::config::storage::Storage;
use crate::config::{duration, EnvKind, VirtualIp, VirtualIp6};
use crate::node::watchdog::{WatchdogRule, WATCHDOG_SLACK};
use crate::quorum::lease::holder_span;

impl Reader<'_> {
    /// With ride-through asked for at `asked` (the value of
    /// `follow.on_master_change`), refuses a layout whose exports would
    /// not keep the followers' file handles on another
    /// master (`config::file_handles`), at the key to fix.
    pub(super) fn exports_keep_file_handles(
        &mut self,
        root: &DeTable<'_>,
        asked: Range<usize>,
        storage: Option<&Storage>,
        nfs: &Nfs,
        workdir: Option<&Path>,
    ) {
        for problem in ride_through_problems(true, storage, nfs, workdir) {
            let (section, key) = problem.key.split_once('.').unwrap_or(("", problem.key));
            let table = root.get(section);
            let at = table
                .and_then(|t| t.get_ref().as_table())
                .and_then(|t| t.get(key))
                .map(|v| v.span())
                .or_else(|| table.map(|t| t.span()))
                .unwrap_or(asked.clone());
            self.error(at, problem.key, problem.message);
        }
    }

    /// `[storage]`, `[nfs]` and `[environments]` only mean something on a
    /// CBSD node.
    pub(super) fn sections_needing_cbsd(&mut self, root: &DeTable<'_>) {
        for needs_cbsd in ["storage", "nfs", "environments"] {
            if root.get("cbsd").is_none() {
                if let Some(value) = root.get(needs_cbsd) {
                    self.error(
                        value.span(),
                        needs_cbsd,
                        format!("[{needs_cbsd}] needs a [cbsd] table (without it the node only moves the virtual IP)"),
                    );
                }
            }
        }
    }

    /// `storage.root` against `cbsd.workdir`: the master binds one into the
    /// other, so neither may contain the other.
    pub(super) fn storage_root_apart_from_workdir(
        &mut self,
        table: &DeTable<'_>,
        span: &Range<usize>,
        root: &Path,
        workdir: &Path,
    ) {
        if root.starts_with(workdir) || workdir.starts_with(root) {
            let at = table.get("root").map_or(span.clone(), |v| v.span());
            self.error(
                at,
                "storage.root",
                format!(
                    "{} overlaps cbsd.workdir {}: the master binds <root>/<dir> onto <workdir>/<dir>, so they must be separate trees (e.g. \"/store\")",
                    root.display(),
                    workdir.display()
                ),
            );
        }
    }

    /// A master candidate (`[storage]`) without `[nfs]`.
    pub(super) fn master_candidate_without_nfs(&mut self, root: &DeTable<'_>) {
        self.error(
            root.get("storage").map_or(0..0, |v| v.span()),
            "nfs.export_network",
            "a master candidate ([storage]) must say who may mount: add [nfs] with export_network or export_hosts",
        );
    }

    /// A master candidate's `[nfs]` (at `span`) names its clients.
    pub(super) fn master_candidate_names_its_clients(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
    ) {
        if table.get("export_network").is_none()
            && table.get("export_network6").is_none()
            && table.get("export_hosts").is_none()
        {
            self.error(
                span,
                "nfs.export_network",
                "missing; a master candidate ([storage]) must say who may mount: set export_network (e.g. \"192.168.10.0/24\") or export_hosts",
            );
        }
    }

    /// `nfs.remote_root` (at `span`) against `storage.root`.
    pub(super) fn remote_root_is_storage_root(
        &mut self,
        span: Range<usize>,
        remote: &Path,
        local: &Path,
    ) {
        if remote != local {
            self.error(
                span,
                "nfs.remote_root",
                format!(
                    "{} differs from storage.root {}: every node mounts what the master exports, so both must be the same path on every node",
                    remote.display(),
                    local.display()
                ),
            );
        }
    }

    /// `nfs.export_network` (at `span`) against `vrrp.virtual_ips`; false
    /// when a VIP lies outside it.
    pub(super) fn export_network_contains_the_vips(
        &mut self,
        span: Range<usize>,
        net: Ipv4Net,
        vips: &[VirtualIp],
    ) -> bool {
        if let Some(vip) = vips.iter().find(|v| !net.contains(v.address)) {
            self.error(
                span,
                "nfs.export_network",
                format!(
                    "{net} does not contain the virtual IP {}: the followers mount from the VIP's network, export to it",
                    vip.address
                ),
            );
            return false;
        }
        true
    }

    /// One of `nfs.export_hosts` (at `span`, `key`) against
    /// `vrrp.virtual_ips`; false when it is a VIP.
    pub(super) fn export_host_is_not_a_vip(
        &mut self,
        host: Ipv4Addr,
        vips: &[VirtualIp],
        span: Range<usize>,
        key: &str,
    ) -> bool {
        if vips.iter().any(|v| v.address == host) {
            self.error(
                span,
                key,
                format!("{host} is a virtual IP; list the nodes' own addresses (the NFS clients)"),
            );
            return false;
        }
        true
    }

    /// `cluster.nodes` (at `span`) lists this node; false when it does not.
    pub(super) fn cluster_lists_this_node(
        &mut self,
        span: Range<usize>,
        nodes: &[ClusterNode],
        name: &str,
    ) -> bool {
        if !nodes.iter().any(|node| node.name == name) {
            let listed: Vec<String> = nodes.iter().map(|n| format!("{:?}", n.name)).collect();
            self.error(
                span,
                "cluster.nodes",
                format!(
                    "this node ({name:?}, node.name) is not listed (listed: {}); every node lists all nodes, itself included",
                    listed.join(", ")
                ),
            );
            return false;
        }
        true
    }

    /// A member's address (at `span`, `key`) against `vrrp.virtual_ips`;
    /// false when it is a VIP.
    pub(super) fn node_address_is_not_a_vip(
        &mut self,
        address: IpAddr,
        span: Range<usize>,
        key: &str,
        vips: &[VirtualIp],
        vips6: &[VirtualIp6],
    ) -> bool {
        let is_vip = match address {
            IpAddr::V4(a) => vips.iter().any(|vip| vip.address == a),
            IpAddr::V6(a) => vips6.iter().any(|vip| vip.address == a),
        };
        if is_vip {
            self.error(
                span,
                key,
                format!("{address} is a virtual IP; a node's address is its own (a VIP moves between nodes)"),
            );
            return false;
        }
        true
    }

    /// `[cluster]`'s lease rules under `[fence] watchdog`; false (with the
    /// errors recorded) when broken. With a watchdog, a healthy holder must be able to pat it: its lease,
    /// renewed every heartbeat, must last longer than the watchdog's reach
    /// (`node::watchdog`) even when an acknowledgement comes two heartbeats
    /// late.
    pub(super) fn watchdog_timing(
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

    /// `[[environment]]` (its first table at `span`) without `[cluster]`.
    pub(super) fn placement_without_cluster(&mut self, span: Range<usize>) {
        self.error(
            span,
            "environment",
            "[[environment]] needs [cluster]: placement chooses among the cluster's nodes; without [cluster], list this node's environments in [environments] jails/bhyve",
        );
    }

    /// One of an `[[environment]]`'s nodes (at `span`, `key`) against
    /// `cluster.nodes`; false when it is not a member.
    pub(super) fn is_cluster_member(
        &mut self,
        cluster: &Cluster,
        name: &str,
        span: Range<usize>,
        key: &str,
    ) -> bool {
        if cluster.node(name).is_none() {
            let members: Vec<String> = cluster
                .nodes
                .iter()
                .map(|n| format!("{:?}", n.name))
                .collect();
            self.error(
                span,
                key,
                format!(
                    "{name:?} is not a node of [cluster] (nodes: {})",
                    members.join(", ")
                ),
            );
            return false;
        }
        true
    }

    /// An `[[environment]]` (at `span`, `key`; its name `shown`) may list
    /// this node (`name`) only if it has `[cbsd]`; false when it may not.
    pub(super) fn this_node_can_run(
        &mut self,
        environment: &PlacedEnvironment,
        name: &str,
        has_cbsd: bool,
        span: Range<usize>,
        key: &str,
        shown: &str,
    ) -> bool {
        if !has_cbsd && environment.preference(name).is_some() {
            self.error(
                span,
                &format!("{key}.nodes"),
                format!("lists this node ({name:?}), which has no [cbsd] and so cannot run {shown}; add [cbsd] or remove {name:?} from the list"),
            );
            return false;
        }
        true
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
}

/// The span of `follow.on_master_change` when it asks for ride-through,
/// for the exports checks that run before `[follow]` is read: the value
/// itself is parsed and checked by its section (`load/follow.rs`), which
/// also refuses anything but the two modes.
pub(super) fn ride_through_asked(root: &DeTable<'_>) -> Option<Range<usize>> {
    let value = root
        .get("follow")?
        .get_ref()
        .as_table()?
        .get("on_master_change")?;
    match value.get_ref() {
        DeValue::String(mode) if mode == "ride-through" => Some(value.span()),
        _ => None,
    }
}
