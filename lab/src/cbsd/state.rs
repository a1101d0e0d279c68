//! Reading the stand-ins back: each node's state (services, mounts, HAST
//! roles, running environments), the exports it serves, the cluster-wide
//! log of environment starts and stops, and the end state a converged
//! cluster must be in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Deserialize;

use super::world::WorldPaths;
use super::{CbsdSpec, HAST_RESOURCE, SHARED_DIRS};

/// One emulated mount.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    #[serde(rename = "type")]
    pub fstype: String,
    /// When it was mounted (seconds since the epoch; absent in old states).
    #[serde(default)]
    pub t: f64,
    /// An NFS mount's: the node whose nfsd answered the mount (the VIP's
    /// holder then); absent without a cluster registry.
    #[serde(default)]
    pub server: Option<String>,
    /// The node whose nfsd the client recovered its state with since (a
    /// new server of the same file system: standin.py `settle`); absent
    /// until then.
    #[serde(default)]
    pub serving: Option<String>,
}

impl Mount {
    /// The node serving this mount now: the one it recovered with, else
    /// the one it was mounted from.
    pub fn served_by(&self) -> Option<&str> {
        self.serving.as_deref().or(self.server.as_deref())
    }
}

/// An NFS mount among `mounts` made from another node than `master`: on
/// FreeBSD it is dead (the old server is gone, or its file handles are
/// stale on the new one), however the same VIP:/path it names. With
/// `recovered_counts` (ride-through) a mount the client recovered with
/// `master` is `master`'s; otherwise (remount) only a mount made from it.
pub fn mount_from_another_master<'a>(
    mounts: &'a [Mount],
    master: &str,
    recovered_counts: bool,
) -> Option<&'a Mount> {
    mounts.iter().find(|m| {
        let by = if recovered_counts {
            m.served_by()
        } else {
            m.server.as_deref()
        };
        m.fstype == "nfs" && by.is_some_and(|s| s != master)
    })
}

/// One node's stand-in state (`state.json`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct NodeState {
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub hast: BTreeMap<String, String>,
    /// Registered environments and their kind.
    #[serde(default)]
    pub registered: BTreeMap<String, String>,
    /// Running environments and their jid.
    #[serde(default)]
    pub running: BTreeMap<String, u64>,
}

impl NodeState {
    /// The node's state now; empty when the stand-ins never ran (or the
    /// file is being replaced: it is renamed into place, so never torn).
    pub fn read(world: &WorldPaths) -> NodeState {
        std::fs::read_to_string(&world.state)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    pub fn runs_nfsd(&self) -> bool {
        self.services.iter().any(|s| s == "nfsd")
    }

    pub fn hast_primary(&self) -> bool {
        self.hast.get(HAST_RESOURCE).map(String::as_str) == Some("primary")
    }

    pub fn running_set(&self) -> BTreeSet<String> {
        self.running.keys().cloned().collect()
    }

    /// The NFS mounts of the shared dirs from `vip`, as `(dir, mounted at)`.
    pub fn nfs_mounts_from(&self, world: &WorldPaths, vip: Ipv4Addr) -> Vec<(String, f64)> {
        SHARED_DIRS
            .iter()
            .filter_map(|dir| {
                let source = format!("{vip}:{}", world.store.join(dir).display());
                let target = world.workdir.join(dir).to_string_lossy().into_owned();
                self.mounts
                    .iter()
                    .find(|m| m.fstype == "nfs" && m.source == source && m.target == target)
                    .map(|m| ((*dir).to_owned(), m.t))
            })
            .collect()
    }
}

/// Whether the stand-in noted, since `since` (epoch seconds), that the
/// node's NFS client lost its state to a server that did not hold its
/// stable restart record (standin.py `settle`: silent on FreeBSD).
pub fn lost_nfs_state_since(world: &WorldPaths, since: f64) -> bool {
    #[derive(Deserialize)]
    struct Lost {
        #[serde(default)]
        nfs_state_lost: Vec<LostAt>,
    }
    #[derive(Deserialize)]
    struct LostAt {
        t: f64,
    }
    std::fs::read_to_string(&world.state)
        .ok()
        .and_then(|text| serde_json::from_str::<Lost>(&text).ok())
        .is_some_and(|lost| lost.nfs_state_lost.iter().any(|l| l.t >= since))
}

/// Whether the node's exports file has a `V4:` line and exports every
/// shared dir of its store.
pub fn exports_everything(world: &WorldPaths) -> bool {
    let text = std::fs::read_to_string(&world.exports).unwrap_or_default();
    let mut v4 = false;
    let mut paths = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("V4:") => v4 = true,
            Some(first) if first.starts_with('/') => {
                paths.insert(first.to_owned());
                paths.extend(words.filter(|w| w.starts_with('/')).map(str::to_owned));
            }
            _ => {}
        }
    }
    v4 && SHARED_DIRS
        .iter()
        .all(|dir| paths.contains(world.store.join(dir).to_string_lossy().as_ref()))
}

/// One line of the cluster-wide environment log.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct EnvEvent {
    pub node: String,
    pub env: String,
    /// `start` or `stop`.
    pub event: String,
    /// Seconds since the epoch.
    pub t: f64,
}

/// Every environment start/stop of every node, in log order.
pub fn env_log(path: &Path) -> Vec<EnvEvent> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Environments that ran on two nodes at once, from the cluster log: each
/// as "env on A and B". The log is appended under a lock, so its order is
/// the order of the starts and stops.
pub fn double_runs(log: &[EnvEvent]) -> Vec<String> {
    let mut running: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut found = Vec::new();
    for e in log {
        let nodes = running.entry(e.env.as_str()).or_default();
        match e.event.as_str() {
            "start" => {
                if let Some(other) = nodes.iter().find(|n| **n != e.node) {
                    found.push(format!(
                        "{} on {other} and {} (t={:.3})",
                        e.env, e.node, e.t
                    ));
                }
                nodes.insert(e.node.as_str());
            }
            _ => {
                nodes.remove(e.node.as_str());
            }
        }
    }
    found
}

/// One node as the end-state check sees it.
pub struct NodeView<'a> {
    pub name: &'a str,
    pub cbsd: &'a CbsdSpec,
    pub world: &'a WorldPaths,
    /// It holds the VIP now.
    pub holds_vip: bool,
}

/// The end state of a converged cluster among `nodes` (the reachable
/// ones): exactly one node (`master`) holds the VIP and the storage (HAST
/// primary), exports every shared dir and runs nfsd; every other node runs
/// no nfsd, has every shared dir mounted from the VIP (served by the
/// master, not by a master before it); every node runs
/// exactly its assigned environments, or, with placement (`placed`: every
/// environment of the cluster), each of them runs on exactly one of
/// `nodes` (a lost node's are adopted by another). `Err` says what is not
/// so yet.
pub fn check_converged(
    nodes: &[NodeView<'_>],
    master: &str,
    vip: Ipv4Addr,
    placed: Option<&BTreeSet<String>>,
) -> Result<(), String> {
    let holders: Vec<&str> = nodes
        .iter()
        .filter(|n| n.holds_vip)
        .map(|n| n.name)
        .collect();
    if holders != [master] {
        return Err(format!("VIP holders {holders:?}, expected [{master}]"));
    }
    for node in nodes {
        let state = NodeState::read(node.world);
        let name = node.name;
        if node.name == master {
            if !state.runs_nfsd() {
                return Err(format!("{name} (master) does not run nfsd"));
            }
            if !exports_everything(node.world) {
                return Err(format!("{name} (master) does not export every shared dir"));
            }
            if node.cbsd.storage == super::StorageSpec::Hast && !state.hast_primary() {
                return Err(format!("{name} (master) is not HAST primary"));
            }
        } else {
            if state.runs_nfsd() {
                return Err(format!("{name} (not master) runs nfsd"));
            }
            if state.hast_primary() {
                return Err(format!("{name} (not master) is HAST primary"));
            }
            // Not yet remounted from the new master: converged only in
            // appearance (the follower has not acted on the change yet).
            let ride_through = node.cbsd.follow == super::FollowMode::RideThrough;
            if let Some(m) = mount_from_another_master(&state.mounts, master, ride_through) {
                return Err(format!(
                    "{name} still has {} mounted from {}, not {master}",
                    m.target,
                    m.server.as_deref().unwrap_or_default()
                ));
            }
            let mounted = state.nfs_mounts_from(node.world, vip).len();
            if mounted != SHARED_DIRS.len() {
                return Err(format!(
                    "{name} has {mounted} of {} shared dirs mounted from {vip}: {:?}",
                    SHARED_DIRS.len(),
                    state.mounts
                ));
            }
        }
        if placed.is_some() {
            continue;
        }
        let assigned: BTreeSet<String> = node.cbsd.environments().into_iter().collect();
        let running = state.running_set();
        if running != assigned {
            return Err(format!("{name} runs {running:?}, assigned {assigned:?}"));
        }
    }
    if let Some(placed) = placed {
        let mut at: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let states: Vec<(&str, BTreeSet<String>)> = nodes
            .iter()
            .map(|n| (n.name, NodeState::read(n.world).running_set()))
            .collect();
        for (name, running) in &states {
            for env in running {
                at.entry(env.as_str()).or_default().push(name);
            }
        }
        for env in placed {
            match at.get(env.as_str()).map(Vec::as_slice) {
                Some([_]) => {}
                other => {
                    return Err(format!(
                        "{env} runs on {:?}, expected exactly one node",
                        other.unwrap_or_default()
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(node: &str, env: &str, event: &str, t: f64) -> EnvEvent {
        EnvEvent {
            node: node.into(),
            env: env.into(),
            event: event.into(),
            t,
        }
    }

    #[test]
    fn a_start_elsewhere_before_the_stop_is_a_double_run() {
        let moved = [
            event("n1", "web1", "start", 1.0),
            event("n1", "web1", "stop", 2.0),
            event("n2", "web1", "start", 3.0),
        ];
        assert!(double_runs(&moved).is_empty());
        let twice = [
            event("n1", "web1", "start", 1.0),
            event("n2", "web1", "start", 2.0),
            event("n1", "web1", "stop", 3.0),
        ];
        assert_eq!(double_runs(&twice).len(), 1);
        let restarted_same_node = [
            event("n1", "web1", "start", 1.0),
            event("n1", "web1", "start", 2.0),
        ];
        assert!(double_runs(&restarted_same_node).is_empty());
    }

    #[test]
    fn a_mount_served_by_an_earlier_master_is_not_converged() {
        let mount = |fstype: &str, server: Option<&str>| Mount {
            source: "198.18.0.100:/s".into(),
            target: "/w".into(),
            fstype: fstype.into(),
            t: 1.0,
            server: server.map(Into::into),
            serving: None,
        };
        let old = [mount("nfs", Some("n2")), mount("nfs", Some("n1"))];
        assert_eq!(
            mount_from_another_master(&old, "n2", false).and_then(|m| m.server.clone()),
            Some("n1".into())
        );
        let current = [
            mount("nfs", Some("n2")),
            mount("nfs", None),
            mount("ufs", None),
        ];
        assert!(mount_from_another_master(&current, "n2", false).is_none());
        // Recovered with n2 after n1 went: n2's for ride-through only.
        let recovered = [Mount {
            serving: Some("n2".into()),
            ..mount("nfs", Some("n1"))
        }];
        assert!(mount_from_another_master(&recovered, "n2", false).is_some());
        assert!(mount_from_another_master(&recovered, "n2", true).is_none());
    }
}
