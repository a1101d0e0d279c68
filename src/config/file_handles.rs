//! Which exports keep their NFS file handles across nodes, for
//! `follow.on_master_change = "ride-through"` (docs/design.md, "Stable
//! file handles").
//!
//! An NFS file handle names the file system it is on: the server puts
//! the mount's `f_fsid` in every handle (sys/fs/nfsserver/nfs_nfsdport.c
//! `nfsvno_getfh`) and maps a handle back with `vfs_busyfs(fsid)`; a
//! handle whose fsid the server does not have mounted is `NFSERR_STALE`.
//! A follower's mount therefore survives a master change only when the
//! new master exports the *same* file system:
//!
//! - UFS on the HAST provider: `f_fsid` is the superblock's `fs_id`
//!   (sys/ufs/ffs/ffs_vfsops.c `ffs_mountfs`), replicated with the disk;
//! - a ZFS dataset: its fsid derives from the dataset's guid
//!   (`zfs_domount`, `dmu_objset_fsid_guid`), which moves with the pool;
//! - not a nullfs mount (sys/fs/nullfs/null_vfsops.c `nullfs_mount`
//!   calls `vfs_getnewfsid`: a new fsid at every mount), nor tmpfs (the
//!   same), nor a directory on each node's own disks (`storage.kind =
//!   "none"`: every candidate has its own file system).
//!
//! The followers' NFSv4 state (opens, locks) is a separate matter: it
//! survives only when the new master's nfsd holds them in its stable
//! restart records (`nfs.stable_restart_dir` on the storage). That is a
//! state of the nodes, not of this file, so `doctor` checks it; without
//! it the clients drop their opens and locks without an error
//! (sys/fs/nfsclient/nfs_clstate.c `nfscl_recover`).
//!
//! Pure: the reader maps each problem to the key's place in the file.

use std::path::Path;

use super::nfs::Nfs;
use super::storage::{Storage, StorageKind};

/// A layout that would not keep the followers' handles or state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandleProblem {
    /// The dotted key to fix (`storage.kind`, `nfs.remote_root`).
    pub key: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// Why this node's layout would not let followers ride through a master
/// change, when `ride_through` is configured; empty when it would (or
/// when it is not configured). `storage`: this node's `[storage]` (a
/// master candidate); `nfs`: its `[nfs]`; `workdir`: `cbsd.workdir`.
pub fn ride_through_problems(
    ride_through: bool,
    storage: Option<&Storage>,
    nfs: &Nfs,
    workdir: Option<&Path>,
) -> Vec<HandleProblem> {
    let mut problems = Vec::new();
    if !ride_through {
        return problems;
    }
    if let Some(storage) = storage {
        if storage.kind == StorageKind::None {
            problems.push(HandleProblem {
                key: "storage.kind",
                message: format!(
                    "\"none\" with follow.on_master_change = \"ride-through\": each candidate exports its own copy of {}, a file system with its own fsid, so the followers' file handles go stale (ESTALE) on every master change; ride-through needs the storage that moves, kind = \"hast\" (UFS on the provider) or \"zfs\" (the pool's datasets), or follow.on_master_change = \"remount\"",
                    storage.root.display()
                ),
            });
        }
    }
    if let Some(workdir) = workdir {
        if nfs.remote_root.starts_with(workdir) {
            problems.push(HandleProblem {
                key: "nfs.remote_root",
                message: format!(
                    "{} is under cbsd.workdir {} with follow.on_master_change = \"ride-through\": there the master binds the storage with nullfs, a mount with a new fsid on every master, so the followers' file handles would go stale; mount the storage itself (storage.root, e.g. \"/store\")",
                    nfs.remote_root.display(),
                    workdir.display()
                ),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn hast() -> Storage {
        Storage {
            root: PathBuf::from("/store"),
            kind: StorageKind::Hast {
                resource: "cbsd".into(),
                fstype: "ufs".into(),
                device: PathBuf::from("/dev/hast/cbsd"),
            },
        }
    }

    fn with_records() -> Nfs {
        Nfs {
            stable_restart_dir: Some(PathBuf::from("/store/.nfs-stablerestart")),
            ..Nfs::default()
        }
    }

    fn keys(problems: &[HandleProblem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.key).collect()
    }

    #[test]
    fn remount_mode_checks_nothing() {
        let none = Storage {
            root: PathBuf::from("/store"),
            kind: StorageKind::None,
        };
        let problems = ride_through_problems(
            false,
            Some(&none),
            &Nfs::default(),
            Some(Path::new("/store")),
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn hast_or_zfs_keeps_the_followers_file_handles() {
        let zfs = Storage {
            root: PathBuf::from("/store"),
            kind: StorageKind::Zfs {
                pool: "tank".into(),
            },
        };
        let workdir = Some(Path::new("/usr/jails"));
        for storage in [hast(), zfs] {
            let problems = ride_through_problems(true, Some(&storage), &with_records(), workdir);
            assert!(problems.is_empty(), "{problems:?}");
        }
    }

    #[test]
    fn storage_none_is_refused_each_candidate_has_its_own_file_system() {
        let none = Storage {
            root: PathBuf::from("/store"),
            kind: StorageKind::None,
        };
        let problems = ride_through_problems(true, Some(&none), &with_records(), None);
        assert_eq!(keys(&problems), ["storage.kind"]);
        assert!(problems[0].message.contains("ESTALE"), "{problems:?}");
    }

    #[test]
    fn a_remote_root_in_the_workdir_is_a_nullfs_mount_and_refused() {
        let nfs = Nfs {
            remote_root: PathBuf::from("/usr/jails/jails-data"),
            ..with_records()
        };
        // A follower-only node: no [storage], only where it mounts from.
        let problems = ride_through_problems(true, None, &nfs, Some(Path::new("/usr/jails")));
        assert_eq!(keys(&problems), ["nfs.remote_root"]);
        assert!(problems[0].message.contains("nullfs"), "{problems:?}");
    }
}
