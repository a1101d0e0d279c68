//! The CBSD scenario: every node runs the full runbooks (promote, demote,
//! follow) against the FreeBSD tool stand-ins of `lab/standins/`, each in
//! a world of its own under the run directory, sharing one "disk" (what
//! HAST replicates) and a registry through which the stand-in `mount_nfs`
//! reaches the stand-in NFS server of whichever node holds the VIP.
//!
//! - [`CbsdSpec`]: what a node is in the CBSD cluster (storage, the
//!   environments it runs, runbook timings), rendered into its `[cbsd]`,
//!   `[storage]`, `[nfs]`, `[environments]`, `[runbook]` and `[tools]`;
//! - [`world`]: the directories, the stand-ins and the registry;
//! - [`state`]: reading the stand-ins' state back, and the end-state check;
//! - [`trial`] and [`report`]: `rcbsd-lab --scenario cbsd`.

pub mod freezer;
pub mod pause;
pub mod report;
pub mod state;
pub mod trial;
pub mod world;

use std::time::Duration;

use serde::Serialize;

use super::agents::{format_duration, NodeSpec, PlacementSpec, QuorumSpec};
use super::LabError;
use rcbsd_failover::config::RunbookSettings;
pub use world::WorldPaths;

/// The directories CBSD keeps under its workdir and the master shares.
pub const SHARED_DIRS: &[&str] = &["jails-data", "jails-system", "jails-rcconf", "jails-fstab"];
/// The cluster's `dir.id` (CBSD writes one per workdir; the runbooks check
/// that the right data is in place).
pub const DIR_ID: &str = "rcbsdlab-cluster";
/// The HAST resource of the master candidates.
pub const HAST_RESOURCE: &str = "cbsd";
/// Who may mount the exports: the lab's network (contains the VIP).
pub const EXPORT_NETWORK: &str = "198.18.0.0/24";

/// How a node holds the shared dirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageSpec {
    /// `[storage] kind = "hast"`: a master candidate on HAST.
    Hast,
    /// `[storage] kind = "none"`: a master candidate whose dirs are in place.
    Shared,
    /// No `[storage]`: a follower-only node, never master.
    FollowerOnly,
}

/// `[cluster]` for the CBSD nodes of `specs` ([`QuorumSpec::lab`]), each
/// node's environments placed on it, then on the next node: the lost
/// master's are adopted by placement (`[[environment]]`).
pub fn placed_quorum(specs: &[NodeSpec]) -> QuorumSpec {
    let mut quorum = QuorumSpec::lab(specs);
    for (index, node) in specs.iter().enumerate() {
        let Some(cbsd) = &node.cbsd else { continue };
        let nodes = vec![
            node.name.clone(),
            specs[(index + 1) % specs.len()].name.clone(),
        ];
        for (names, kind) in [(&cbsd.jails, "jail"), (&cbsd.bhyve, "bhyve")] {
            for name in names {
                quorum.environments.push(PlacementSpec {
                    name: name.clone(),
                    kind: kind.into(),
                    nodes: nodes.clone(),
                    failback: false,
                });
            }
        }
    }
    quorum
}

/// What followers do on a master change: `[follow] on_master_change`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FollowMode {
    /// The default: stop, force-dismount, remount from the VIP, start.
    #[default]
    Remount,
    /// Keep the mounts and environments; probe the mounts once the new
    /// master serves; the full follow only on a stale, hung or changed
    /// mount.
    RideThrough,
}

impl FollowMode {
    /// The `follow.on_master_change` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FollowMode::Remount => "remount",
            FollowMode::RideThrough => "ride-through",
        }
    }
}

/// The runbook timings of a node: its `[runbook]` settings (the agent's own
/// type) and the environment timeouts of `[environments]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunbookTimings {
    pub runbook: RunbookSettings,
    pub stop_timeout: Duration,
    pub start_timeout: Duration,
}

impl RunbookTimings {
    /// Short timeouts for the stand-ins: a hang is found out in seconds,
    /// not minutes. A step's timeout bounds all the commands of an attempt
    /// (a probe, an act, the probe again: three stand-in calls), so each
    /// leaves room for a loaded machine.
    pub fn quick() -> Self {
        RunbookTimings {
            runbook: RunbookSettings {
                command_timeout: Duration::from_secs(8),
                umount_timeout: Duration::from_secs(5),
                nfs_answer_timeout: Duration::from_secs(3),
                storage_timeout: Duration::from_secs(10),
                device_wait: Duration::from_secs(2),
                mount_timeout: Duration::from_secs(5),
                mount_attempts: 4,
                retry_backoff: Duration::from_millis(200),
                retry_backoff_max: Duration::from_secs(1),
                fault_hold_off: Duration::from_secs(30),
            },
            stop_timeout: Duration::from_secs(8),
            start_timeout: Duration::from_secs(8),
        }
    }
}

/// What one node is in the CBSD cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct CbsdSpec {
    pub storage: StorageSpec,
    /// Jails this node runs (`[environments] jails`).
    pub jails: Vec<String>,
    /// bhyve VMs this node runs (`[environments] bhyve`).
    pub bhyve: Vec<String>,
    pub timings: RunbookTimings,
    /// `[follow] on_master_change`: written only when not the default
    /// (remount), so that a configuration without it stays as it was.
    pub follow: FollowMode,
    /// Where the node's world is; filled in when the cluster is configured
    /// ([`world::prepare`]).
    pub world: Option<WorldPaths>,
}

impl CbsdSpec {
    /// Node `index` of the lab's CBSD cluster: nodes 0 and 1 are HAST
    /// master candidates, the others follower-only; node `index` runs jail
    /// `web<index+1>`, the last node also the bhyve VM `vm1`.
    pub fn lab(index: usize, nodes: usize) -> CbsdSpec {
        CbsdSpec {
            storage: if index < 2 {
                StorageSpec::Hast
            } else {
                StorageSpec::FollowerOnly
            },
            jails: vec![format!("web{}", index + 1)],
            bhyve: if index + 1 == nodes && nodes > 1 {
                vec!["vm1".to_owned()]
            } else {
                Vec::new()
            },
            timings: RunbookTimings::quick(),
            follow: FollowMode::Remount,
            world: None,
        }
    }

    /// Whether this node may become master (has `[storage]`).
    pub fn may_be_master(&self) -> bool {
        self.storage != StorageSpec::FollowerOnly
    }

    /// Every environment this node runs (jails, then bhyve VMs).
    pub fn environments(&self) -> Vec<String> {
        self.jails.iter().chain(&self.bhyve).cloned().collect()
    }

    /// The configuration sections of this node, to merge into its TOML.
    /// `own_environments`: list this node's environments in
    /// `[environments]` (without `[cluster]`); with `[cluster]` they are
    /// placed by `[[environment]]` instead.
    pub fn sections(&self, own_environments: bool) -> Result<toml::Table, LabError> {
        let world = self.world.as_ref().ok_or_else(|| {
            LabError::Config("the CBSD world of this node was not prepared".into())
        })?;
        #[derive(Serialize)]
        struct Sections<'a> {
            cbsd: Cbsd<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            storage: Option<Storage<'a>>,
            nfs: Nfs<'a>,
            environments: Environments<'a>,
            runbook: Runbook,
            #[serde(skip_serializing_if = "Option::is_none")]
            follow: Option<Follow>,
            tools: toml::Table,
        }
        #[derive(Serialize)]
        struct Follow {
            on_master_change: FollowMode,
        }
        #[derive(Serialize)]
        struct Cbsd<'a> {
            workdir: &'a std::path::Path,
            shared_dirs: &'a [&'a str],
            dir_id: &'a str,
        }
        #[derive(Serialize)]
        struct Storage<'a> {
            kind: &'a str,
            root: &'a std::path::Path,
            #[serde(skip_serializing_if = "Option::is_none")]
            resource: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            device: Option<&'a std::path::Path>,
        }
        #[derive(Serialize)]
        struct Nfs<'a> {
            export_network: &'a str,
            exports_file: &'a std::path::Path,
            remote_root: &'a std::path::Path,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            v4_only: bool,
            stable_restart_dir: std::path::PathBuf,
            stable_restart_files: [std::path::PathBuf; 2],
        }
        #[derive(Serialize)]
        struct Environments<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            jails: Option<&'a [String]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            bhyve: Option<&'a [String]>,
            stop_timeout: String,
            start_timeout: String,
        }
        #[derive(Serialize)]
        struct Runbook {
            command_timeout: String,
            umount_timeout: String,
            nfs_answer_timeout: String,
            storage_timeout: String,
            device_wait: String,
            mount_timeout: String,
            mount_attempts: u32,
            retry_backoff: String,
            retry_backoff_max: String,
            fault_hold_off: String,
        }
        let t = &self.timings;
        let storage = match self.storage {
            StorageSpec::Hast => Some(Storage {
                kind: "hast",
                root: &world.store,
                resource: Some(HAST_RESOURCE),
                device: Some(&world.hast_device),
            }),
            StorageSpec::Shared => Some(Storage {
                kind: "none",
                root: &world.store,
                resource: None,
                device: None,
            }),
            StorageSpec::FollowerOnly => None,
        };
        let mut tools = toml::Table::new();
        for tool in world::tools() {
            tools.insert(
                tool.to_owned(),
                toml::Value::String(world.tools.join(tool).to_string_lossy().into_owned()),
            );
        }
        let sections = Sections {
            cbsd: Cbsd {
                workdir: &world.workdir,
                shared_dirs: SHARED_DIRS,
                dir_id: DIR_ID,
            },
            storage,
            nfs: Nfs {
                export_network: EXPORT_NETWORK,
                exports_file: &world.exports,
                // Every node's world is its "/": the store is at the same
                // path relative to it on every node, as /store is on real
                // ones (the stand-in mount_nfs translates).
                remote_root: &world.store,
                // Ride-through needs NFSv4 only (check-config): NFSv3's
                // lock state (statd) would not move.
                v4_only: self.follow == FollowMode::RideThrough,
                // nfsd's records on the storage, linked by the agent's
                // promote from the world's own /var/db paths (the key
                // nfsd's compiled-in paths are for tests).
                stable_restart_dir: world.store.join(world::STABLE_RESTART_DIR),
                stable_restart_files: world::stable_restart_files(world),
            },
            environments: Environments {
                jails: own_environments.then_some(self.jails.as_slice()),
                bhyve: own_environments.then_some(self.bhyve.as_slice()),
                stop_timeout: format_duration(t.stop_timeout),
                start_timeout: format_duration(t.start_timeout),
            },
            runbook: Runbook {
                command_timeout: format_duration(t.runbook.command_timeout),
                umount_timeout: format_duration(t.runbook.umount_timeout),
                nfs_answer_timeout: format_duration(t.runbook.nfs_answer_timeout),
                storage_timeout: format_duration(t.runbook.storage_timeout),
                device_wait: format_duration(t.runbook.device_wait),
                mount_timeout: format_duration(t.runbook.mount_timeout),
                mount_attempts: t.runbook.mount_attempts,
                retry_backoff: format_duration(t.runbook.retry_backoff),
                retry_backoff_max: format_duration(t.runbook.retry_backoff_max),
                fault_hold_off: format_duration(t.runbook.fault_hold_off),
            },
            follow: (self.follow != FollowMode::Remount).then_some(Follow {
                on_master_change: self.follow,
            }),
            tools,
        };
        toml::Table::try_from(&sections).map_err(|e| LabError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_nodes_two_candidates_then_followers() {
        let specs: Vec<CbsdSpec> = (0..3).map(|i| CbsdSpec::lab(i, 3)).collect();
        let kinds: Vec<StorageSpec> = specs.iter().map(|s| s.storage).collect();
        assert_eq!(
            kinds,
            [
                StorageSpec::Hast,
                StorageSpec::Hast,
                StorageSpec::FollowerOnly
            ]
        );
        assert_eq!(specs[2].environments(), ["web3", "vm1"]);
        assert_eq!(specs[0].environments(), ["web1"]);
    }

    #[test]
    fn the_follow_mode_is_written_only_when_not_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = CbsdSpec::lab(2, 3);
        spec.world = Some(WorldPaths::new(dir.path(), "n3"));
        let remount = spec.sections(true).expect("sections");
        assert!(remount.get("follow").is_none(), "{remount:?}");
        spec.follow = FollowMode::RideThrough;
        let ride = spec.sections(true).expect("sections");
        assert_eq!(
            ride["follow"]["on_master_change"].as_str(),
            Some("ride-through")
        );
    }

    #[test]
    fn sections_need_a_prepared_world() {
        assert!(CbsdSpec::lab(0, 3).sections(true).is_err());
    }
}
