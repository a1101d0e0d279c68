//! Taking and releasing the storage the shared dirs live on, and binding
//! them into the CBSD workdir.
//!
//! - `none`: the dirs are already under the root on every candidate;
//! - `hast`: `hastctl role primary RES`, wait for `/dev/hast/RES`,
//!   `fsck -p -y -t ufs`, mount it on the root; release in reverse with
//!   `role secondary` (only two HAST nodes can be candidates);
//! - `zfs`: `zpool import -f POOL` / `zpool export POOL` (a pool on shared
//!   disks; `-f` because the dead master never exported it).
//!
//! Then each `<root>/<d>` is nullfs-mounted on `<workdir>/<d>`, so promote
//! and demote only change how `<workdir>/<d>` is mounted.

use std::path::Path;

use super::expect::Expect;
use super::nfs;
use super::step::{Action, Builtin, Checked, Command, Ensure, Step};
use crate::config::{Cbsd, Config, Storage, StorageKind};

fn tool(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn hast_role(config: &Config, role: &str, resource: &str) -> Step {
    Step::new(
        format!("hast role {role}"),
        Action::Run(Checked {
            command: Command::new([
                tool(&config.tools.hastctl),
                "role".into(),
                role.into(),
                resource.into(),
            ]),
            expect: Expect::Success,
        }),
        config.runbook.command_timeout,
    )
}

fn unmount_root(config: &Config, storage: &Storage) -> Step {
    nfs::unmount(
        config,
        format!("unmount {}", storage.root.display()),
        &storage.root,
        None,
    )
}

fn zpool(config: &Config, args: &[&str]) -> Command {
    let mut argv = vec![tool(&config.tools.zpool)];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    Command::new(argv)
}

fn zpool_export(config: &Config, pool: &str) -> Step {
    Step::new(
        format!("export pool {pool}"),
        Action::Ensure(Ensure {
            probe: Checked {
                command: zpool(config, &["list", "-H", "-o", "name", pool]),
                expect: Expect::Failure,
            },
            acts: vec![zpool(config, &["export", pool])],
            when_satisfied: None,
        }),
        config.runbook.storage_timeout,
    )
}

/// PROMOTE step 4: take the storage; each step knows its undo.
pub fn take(config: &Config, cbsd: &Cbsd, storage: &Storage) -> Vec<Step> {
    let settings = &config.runbook;
    let mut steps = match &storage.kind {
        StorageKind::None => Vec::new(),
        StorageKind::Hast {
            resource,
            fstype,
            device,
        } => {
            let device = device.to_string_lossy().into_owned();
            vec![
                hast_role(config, "primary", resource).undo(hast_role(
                    config,
                    "secondary",
                    resource,
                )),
                Step::new(
                    format!("wait for {device}"),
                    Action::Builtin(Builtin::WaitForPath {
                        path: device.clone().into(),
                    }),
                    settings.device_wait,
                ),
                Step::new(
                    format!("fsck {device}"),
                    Action::Run(Checked {
                        command: Command::new([
                            tool(&config.tools.fsck),
                            "-p".into(),
                            "-y".into(),
                            "-t".into(),
                            fstype.clone(),
                            device.clone(),
                        ]),
                        expect: Expect::Success,
                    }),
                    settings.storage_timeout,
                ),
                Step::new(
                    format!("mount {}", storage.root.display()),
                    Action::Ensure(Ensure {
                        probe: Checked {
                            command: nfs::list_mounts(config, None),
                            expect: Expect::Mounted {
                                mountpoint: storage.root.clone(),
                                source: Some(device.clone()),
                            },
                        },
                        acts: vec![Command::new([
                            tool(&config.tools.mount),
                            device,
                            storage.root.to_string_lossy().into_owned(),
                        ])],
                        when_satisfied: None,
                    }),
                    settings.storage_timeout,
                )
                .undo(unmount_root(config, storage)),
            ]
        }
        StorageKind::Zfs { pool } => vec![Step::new(
            format!("import pool {pool}"),
            Action::Ensure(Ensure {
                probe: Checked {
                    command: zpool(config, &["list", "-H", "-o", "name", pool]),
                    expect: Expect::Success,
                },
                acts: vec![zpool(config, &["import", "-f", pool])],
                when_satisfied: None,
            }),
            settings.storage_timeout,
        )
        .undo(zpool_export(config, pool))],
    };
    for dir in &cbsd.shared_dirs {
        let path = storage.dir_path(dir);
        steps.push(Step::new(
            format!("find {}", path.display()),
            Action::Builtin(Builtin::WaitForPath { path }),
            settings.command_timeout,
        ));
    }
    steps
}

/// DEMOTE step 6: release the storage.
pub fn release(config: &Config, storage: &Storage) -> Vec<Step> {
    match &storage.kind {
        StorageKind::None => Vec::new(),
        StorageKind::Hast { resource, .. } => vec![
            unmount_root(config, storage),
            hast_role(config, "secondary", resource),
        ],
        StorageKind::Zfs { pool } => vec![zpool_export(config, pool)],
    }
}

/// FOLLOW on a HAST candidate: `hastctl role secondary RES`. A node that
/// boots as a backup finds its resource in role `init`, in which hastd does
/// not take the master's writes: the standby would not be one. Idempotent
/// (already secondary is fine); a failure does not stop the follow (the
/// mounts come from the master either way), it is logged.
pub fn stand_by(config: &Config, storage: &Storage) -> Option<Step> {
    match &storage.kind {
        StorageKind::Hast { resource, .. } => Some(
            hast_role(config, "secondary", resource).on_failure(super::step::OnFailure::Continue),
        ),
        StorageKind::None | StorageKind::Zfs { .. } => None,
    }
}

/// PROMOTE step 5: `mount -t nullfs <root>/<d> <workdir>/<d>`.
pub fn bind(config: &Config, cbsd: &Cbsd, storage: &Storage, dir: &str) -> Step {
    let source = storage.dir_path(dir);
    let target = cbsd.workdir_path(dir);
    Step::new(
        format!("bind {dir}"),
        Action::Ensure(Ensure {
            probe: Checked {
                command: nfs::list_mounts(config, Some("nullfs")),
                expect: Expect::Mounted {
                    mountpoint: target.clone(),
                    source: Some(source.to_string_lossy().into_owned()),
                },
            },
            acts: vec![Command::new([
                tool(&config.tools.mount),
                "-t".into(),
                "nullfs".into(),
                source.to_string_lossy().into_owned(),
                target.to_string_lossy().into_owned(),
            ])],
            when_satisfied: None,
        }),
        config.runbook.command_timeout,
    )
    .undo(unbind(config, cbsd, dir))
}

/// DEMOTE step 5: `umount <workdir>/<d>`.
pub fn unbind(config: &Config, cbsd: &Cbsd, dir: &str) -> Step {
    nfs::unmount(
        config,
        format!("unbind {dir}"),
        &cbsd.workdir_path(dir),
        Some("nullfs"),
    )
}

/// CBSD's `dir.id` matches the cluster's (the right data is in place).
pub fn verify_dir_id(config: &Config, cbsd: &Cbsd) -> Step {
    Step::new(
        "verify dir.id",
        Action::Builtin(Builtin::VerifyDirId {
            path: cbsd.workdir.join(&cbsd.dir_id_file),
            expected: cbsd.dir_id.clone(),
        }),
        config.runbook.command_timeout,
    )
}
