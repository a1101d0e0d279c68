//! What a (re)started agent holds, read from the real world rather than
//! from a marker file (hole D of the safety review): a marker can be lost
//! with `state_dir`, or never written, while the node still holds the HAST
//! primary role, an imported pool, the storage mount, the nullfs binds, a
//! running nfsd or an exports block. Any of these means the master
//! resources may be held: the node keeps claiming them (which blocks the
//! majority from granting them elsewhere) until a demote has released
//! them.
//!
//! The checks are pure ([`master_checks`]: argv and how to read the
//! answer); the runner runs them under a timeout. A check that cannot be
//! answered (it timed out, or its output is not understood) counts as
//! held: the demote that follows is idempotent, so being wrong that way
//! costs a demote, the other way two storage owners.

use std::path::PathBuf;

use super::expect::Expect;
use super::nfs;
use super::step::Command;
use crate::config::{Config, StorageKind};

/// One question about the real world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What is held when the answer says so, for the log.
    pub what: String,
    /// How to ask, and how to read the answer.
    pub source: Source,
}

/// Where the answer comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command and the rule saying "held".
    Command {
        /// The read-only command to run (e.g. `hastctl status RES`).
        command: Command,
        /// How its answer says "held".
        held: Held,
    },
    /// The agent's block in the exports file is not empty.
    ExportsBlock {
        /// `nfs.exports_file`.
        file: PathBuf,
    },
}

/// How to read a command's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// Exit status 0 (`service nfsd onestatus`, `zpool list POOL`).
    OnSuccess,
    /// `mount -p` lists this mount point.
    Mounted(PathBuf),
    /// `hastctl status RES` shows the resource in role primary.
    HastPrimary(String),
}

impl Held {
    /// Whether the answer says "held"; `None` when it cannot tell.
    pub fn read(&self, exit: Option<i32>, stdout: &str, stderr: &str) -> Option<bool> {
        match self {
            Held::OnSuccess => exit.map(|code| code == 0),
            Held::Mounted(mountpoint) => match exit {
                Some(0) => Some(
                    Expect::Mounted {
                        mountpoint: mountpoint.clone(),
                        source: None,
                    }
                    .check(Some(0), stdout)
                    .is_ok(),
                ),
                _ => None,
            },
            Held::HastPrimary(resource) => hast_primary(exit, stdout, stderr, resource),
        }
    }
}

/// The role of `resource` in `hastctl status` output. Two formats exist:
/// a block per resource (`RES:` then `  role: primary`, sbin/hastctl/
/// hastctl.c `control_status` before FreeBSD 13), and a table with a line
/// per resource (`Name Status Role Components`, FreeBSD 13 and later).
/// hastctl exits `EX_OSERR` (71) when it cannot reach hastd: no hastd, no
/// HAST role at all (the provider goes with the daemon).
fn hast_primary(exit: Option<i32>, stdout: &str, stderr: &str, resource: &str) -> Option<bool> {
    if exit == Some(71) && stderr.contains("Unable to connect to hastd") {
        return Some(false);
    }
    if exit != Some(0) {
        return None;
    }
    // The resource not in the output: hastd does not know it.
    let (role, _) = super::expect::hast_state(stdout, resource);
    Some(role.as_deref() == Some("primary"))
}

/// The checks for this node's configuration: storage, binds, NFS service,
/// exports. Empty for a node that can never hold them.
pub fn master_checks(config: &Config) -> Vec<Check> {
    let (Some(cbsd), Some(storage)) = (&config.cbsd, &config.storage) else {
        return Vec::new();
    };
    let tool = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let mut checks = Vec::new();
    match &storage.kind {
        StorageKind::None => {}
        StorageKind::Hast { resource, .. } => checks.push(Check {
            what: format!("HAST resource {resource} primary"),
            source: Source::Command {
                command: Command::new([
                    tool(&config.tools.hastctl),
                    "status".into(),
                    resource.clone(),
                ]),
                held: Held::HastPrimary(resource.clone()),
            },
        }),
        StorageKind::Zfs { pool } => checks.push(Check {
            what: format!("pool {pool} imported"),
            source: Source::Command {
                command: Command::new([
                    tool(&config.tools.zpool),
                    "list".into(),
                    "-H".into(),
                    "-o".into(),
                    "name".into(),
                    pool.clone(),
                ]),
                held: Held::OnSuccess,
            },
        }),
    }
    if !matches!(storage.kind, StorageKind::None) {
        checks.push(Check {
            what: format!("{} mounted", storage.root.display()),
            source: Source::Command {
                command: nfs::list_mounts(config, None),
                held: Held::Mounted(storage.root.clone()),
            },
        });
    }
    for dir in &cbsd.shared_dirs {
        let target = cbsd.workdir_path(dir);
        checks.push(Check {
            what: format!("{} bound (nullfs)", target.display()),
            source: Source::Command {
                command: nfs::list_mounts(config, Some("nullfs")),
                held: Held::Mounted(target),
            },
        });
    }
    checks.push(Check {
        what: "nfsd running".to_owned(),
        source: Source::Command {
            command: Command::new([
                tool(&config.tools.service),
                "nfsd".into(),
                "onestatus".into(),
            ]),
            held: Held::OnSuccess,
        },
    });
    checks.push(Check {
        what: format!("exports block in {}", config.nfs.exports_file.display()),
        source: Source::ExportsBlock {
            file: config.nfs.exports_file.clone(),
        },
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hast_primary_reads_both_status_formats() {
        let old = "cbsd:\n  role: primary\n  provname: cbsd\n";
        assert_eq!(hast_primary(Some(0), old, "", "cbsd"), Some(true));
        let old_secondary = "other:\n  role: primary\ncbsd:\n  role: secondary\n";
        assert_eq!(
            hast_primary(Some(0), old_secondary, "", "cbsd"),
            Some(false)
        );
        let table =
            "Name\tStatus\t Role\t\tComponents\ncbsd\tcomplete\t primary\t\t/dev/ada1\tnode2\n";
        assert_eq!(hast_primary(Some(0), table, "", "cbsd"), Some(true));
        let table_init = "Name\tStatus\t Role\t\tComponents\ncbsd\t-\t init\t\t/dev/ada1\n";
        assert_eq!(hast_primary(Some(0), table_init, "", "cbsd"), Some(false));
    }

    #[test]
    fn no_hastd_means_no_role_and_anything_else_unknown() {
        let stderr = "hastctl: Unable to connect to hastd via uds:///var/run/hastctl: No such file or directory.";
        assert_eq!(hast_primary(Some(71), "", stderr, "cbsd"), Some(false));
        assert_eq!(
            hast_primary(Some(70), "", "Error 3 received from hastd.", "cbsd"),
            None
        );
        assert_eq!(
            hast_primary(None, "", "", "cbsd"),
            None,
            "killed by a signal"
        );
    }

    #[test]
    fn a_mount_table_is_read_for_the_mount_point() {
        let held = Held::Mounted(PathBuf::from("/store"));
        let table = "/dev/hast/cbsd\t/store\tufs\trw\t0\t0\n";
        assert_eq!(held.read(Some(0), table, ""), Some(true));
        assert_eq!(held.read(Some(0), "", ""), Some(false));
        assert_eq!(held.read(Some(1), table, ""), None);
    }
}
