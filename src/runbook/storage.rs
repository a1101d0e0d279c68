//! Taking and releasing the storage the shared dirs live on, and binding
//! them into the CBSD workdir.
//!
//! - `none`: the dirs are already under the root on every candidate;
//! - `hast`: hastd running (`service hastd onestart` unless `onestatus`),
//!   `hastctl role primary RES`, wait for `/dev/hast/RES` (hastd's worker
//!   creates it after the role change), `fsck -p -y -t ufs` (exit 8: a
//!   damage preening may not repair, see [`Expect::Preened`]), mount it on
//!   the root; release in reverse with `role secondary` (only two HAST
//!   nodes can be candidates);
//! - `zfs`: a pool on shared disks, imported with `-o cachefile=none -f`
//!   only once a read-only import has shown `multihost=on`; released with
//!   `zpool export POOL` (see [`zfs_take`] for why in this order).
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

/// `service hastd onestart` unless `onestatus` says it runs. hastctl only
/// talks to hastd (its control socket, `/var/run/hastctl`): without it
/// every `hastctl role` fails with "Unable to connect to hastd" and exit
/// 71 (sbin/hastctl/hastctl.c). `hastd_enable="YES"` normally starts it
/// at boot; this covers a hastd that was not enabled, crashed or was
/// stopped. Never undone, never stopped by the agent: a secondary needs
/// hastd as much as a primary (it receives the primary's writes), and
/// stopping it would drop the resource back to role init.
fn start_hastd(config: &Config) -> Step {
    let service = |verb: &str| {
        Command::new([
            config.tools.service.to_string_lossy().as_ref(),
            "hastd",
            verb,
        ])
    };
    Step::new(
        "start hastd",
        Action::Ensure(Ensure {
            probe: Checked {
                command: service("onestatus"),
                expect: Expect::Success,
            },
            acts: vec![service("onestart")],
            when_satisfied: None,
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

/// `zpool list -H -o name POOL`: exit 0 when the pool is imported here
/// (read-only or not); otherwise "cannot open 'POOL': no such pool" and
/// exit 1 (libzfs_pool.c `zpool_open_canfail`).
fn pool_imported(config: &Config, pool: &str) -> Checked {
    Checked {
        command: zpool(config, &["list", "-H", "-o", "name", pool]),
        expect: Expect::Success,
    }
}

/// Imports `pool` with `import_args` unless it is imported already.
fn zpool_import(config: &Config, name: String, pool: &str, import_args: &[&str]) -> Step {
    let mut args = vec!["import"];
    args.extend_from_slice(import_args);
    args.push(pool);
    Step::new(
        name,
        Action::Ensure(Ensure {
            probe: pool_imported(config, pool),
            acts: vec![zpool(config, &args)],
            when_satisfied: None,
        }),
        config.runbook.storage_timeout,
    )
    .undo(zpool_export(config, pool))
}

/// PROMOTE step 4 with `kind = "zfs"`: four steps.
///
/// 1. `zpool import -N -o readonly=on -o cachefile=none -f POOL`
/// 2. `zpool get -H -o value multihost POOL` must print `on`
/// 3. `zpool export POOL` (the read-only import)
/// 4. `zpool import -o cachefile=none -f POOL`
///
/// Why `-f`: the master that died never exported the pool, and without
/// `-f` (`ZFS_IMPORT_ANY_HOST`) OpenZFS refuses a pool whose labels say
/// active under another hostid (cmd/zpool/zpool_main.c
/// `zfs_force_import_required`). That is all `-f` overrides. The kernel's
/// activity check for `multihost=on` (MMP) still runs: module/zfs/spa.c
/// `spa_activity_check_required` skips it only for zdb
/// (`ZFS_IMPORT_SKIP_MMP`), a pool without MMP, a label carrying this
/// node's own hostid (2.3 and later: and exported) or (2.2) an exported
/// pool. The import then watches the labels for
/// `fail_intervals * interval * 2` (20 s by default, plus up to 25 %) and
/// fails with EREMOTEIO when another node still writes its MMP uberblocks
/// (module/zfs/mmp.c), `-f` or not (zpoolprops.7: "cannot be imported,
/// even with the -f option"). With `multihost=off`, `-f` imports a pool
/// that a partitioned ex-master still writes: two writers, a corrupted
/// pool. Hence `multihost=on` is required, and with it a unique non-zero
/// hostid on every node (a shared hostid skips the check; hostid 0 is
/// refused, `MMP_STATE_NO_HOSTID`): FreeBSD's `kern.hostid`, set at boot
/// by rc.d/hostid from `/etc/hostid`.
///
/// Why read-only first: `multihost` lives in the pool, so only an imported
/// pool shows it, and a read-only import writes nothing (spa.c
/// `spa_load_impl` claims the ZIL, starts the txg sync and the MMP thread
/// and rewrites the labels only for a writeable pool; `-N` mounts
/// nothing). A `multihost=off` pool is thus refused before this node has
/// written a block to it, even while a partitioned ex-master writes it;
/// a check after a read-write import would come after the damage. The
/// cost: the activity check runs for both imports (the read-only one
/// leaves the labels as they were).
///
/// Why `cachefile=none`: an import otherwise lists the pool in
/// `/etc/zfs/zpool.cache`, and FreeBSD's libexec/rc/rc.d/zpool runs
/// `zpool import -c /etc/zfs/zpool.cache -a -N` at boot: an ex-master
/// that crashed (so never exported) would take the pool back on its own,
/// outside the agent. With `cachefile=none` the pool "is never cached"
/// (zpoolprops.7): only a promote imports it.
///
/// Each step probes first, so a promote re-run over a partial one (the
/// pool imported read-only or read-write) goes on from where it stopped.
/// A refused pool this promote imported is exported by the undo of step
/// 1; one imported before the promote began, by the demote that follows
/// a failed promote.
fn zfs_take(config: &Config, pool: &str) -> Vec<Step> {
    vec![
        zpool_import(
            config,
            format!("import pool {pool} read-only"),
            pool,
            &["-N", "-o", "readonly=on", "-o", "cachefile=none", "-f"],
        ),
        Step::new(
            format!("check multihost of {pool}"),
            Action::Run(Checked {
                command: zpool(config, &["get", "-H", "-o", "value", "multihost", pool]),
                expect: Expect::Prints {
                    value: "on".into(),
                    otherwise: format!(
                        "refusing pool {pool} without multihost=on (nothing else keeps a second \
                         node from importing it with -f while another still uses it): give every \
                         node a unique hostid (sysctl kern.hostid), then run \
                         'zpool set multihost=on {pool}' where the pool is imported; see [storage] \
                         in rcbsd-failover.toml(5)"
                    ),
                },
            }),
            config.runbook.command_timeout,
        ),
        Step::new(
            format!("export read-only pool {pool}"),
            Action::Ensure(Ensure {
                // Imported read-write already (a promote re-run): nothing
                // to export. Not imported any more: done.
                probe: Checked {
                    command: zpool(config, &["get", "-H", "-o", "value", "readonly", pool]),
                    expect: Expect::DoesNotPrint { value: "on".into() },
                },
                acts: vec![zpool(config, &["export", pool])],
                when_satisfied: None,
            }),
            config.runbook.storage_timeout,
        ),
        zpool_import(
            config,
            format!("import pool {pool}"),
            pool,
            &["-o", "cachefile=none", "-f"],
        ),
    ]
}

fn zpool_export(config: &Config, pool: &str) -> Step {
    Step::new(
        format!("export pool {pool}"),
        Action::Ensure(Ensure {
            probe: Checked {
                expect: Expect::Failure,
                ..pool_imported(config, pool)
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
                start_hastd(config),
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
                        expect: Expect::Preened,
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
        StorageKind::Zfs { pool } => zfs_take(config, pool),
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
            start_hastd(config),
            hast_role(config, "secondary", resource),
        ],
        StorageKind::Zfs { pool } => vec![zpool_export(config, pool)],
    }
}

/// FOLLOW on a HAST candidate: hastd running, then `hastctl role secondary
/// RES`. A node that boots as a backup finds its resource in role `init`,
/// in which hastd does not take the master's writes: the standby would not
/// be one. Idempotent (already secondary is fine); a failure does not stop
/// the follow (the mounts come from the master either way), it is logged.
pub fn stand_by(config: &Config, storage: &Storage) -> Vec<Step> {
    use super::step::OnFailure::Continue;
    match &storage.kind {
        StorageKind::Hast { resource, .. } => vec![
            start_hastd(config).on_failure(Continue),
            hast_role(config, "secondary", resource).on_failure(Continue),
        ],
        StorageKind::None | StorageKind::Zfs { .. } => Vec::new(),
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
