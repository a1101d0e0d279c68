//! NFSv4 stable restart state on the shared storage (`nfs.stable_restart_dir`).
//!
//! FreeBSD's nfsd keeps the clients it may let reclaim their opens and
//! locks after a server restart in `/var/db/nfs-stablerestart` and its copy
//! `/var/db/nfs-stablerestart.bak` (`NFSD_STABLERESTART`,
//! `NFSD_STABLEBACKUP` in usr.sbin/nfsd/nfsd.c). nfsd opens both at start
//! (`open_stable`: `open(O_RDWR)`, else `O_RDWR|O_CREAT` mode 0600, so a
//! symlink is followed and a missing file is created empty) and the
//! kernel reads the records (sys/fs/nfsserver/nfs_nfsdstate.c
//! `nfsrv_setupstable`); a client missing from them gets `NFSERR_NOGRACE`
//! on reclaim. A new master with its own, local files therefore refuses
//! every reclaim. As TrueNAS HA does, PROMOTE points both paths at files in
//! a directory on the shared storage before nfsd starts, and DEMOTE, after
//! nfsd stopped, puts the node's local files back: a node that is not
//! master keeps its own state, as nfsd expects at boot.
//!
//! The files are local (`/var/db`, and the storage this node has just
//! mounted itself): the agent does this work in place, like the exports
//! block, not through ln(1) and mv(1). A local file found where a link goes
//! is moved aside (`<file>.rcbsd-local`), never deleted.

use std::io;
use std::path::{Path, PathBuf};

use super::step::{Action, Builtin, OnFailure, Step};
use crate::config::Config;

/// Appended to a local file moved aside for a link.
pub const ASIDE_SUFFIX: &str = ".rcbsd-local";

/// nfsd's files and where they live while this node is master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Links {
    /// `nfs.stable_restart_dir`, on the shared storage.
    pub dir: PathBuf,
    /// nfsd's paths (`nfs.stable_restart_files`): each becomes a link to
    /// the file of the same name in `dir`.
    pub files: Vec<PathBuf>,
}

/// What one of nfsd's paths is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Missing (nfsd creates it empty at start).
    Missing,
    /// A regular file: local state.
    Local,
    /// A symbolic link to this path.
    Link(PathBuf),
    /// Something else (a directory, a device...).
    Other,
}

impl Links {
    /// The file in `dir` that `local` points to.
    pub fn target(&self, local: &Path) -> PathBuf {
        self.dir
            .join(local.file_name().unwrap_or(local.as_os_str()))
    }

    /// Where `local` is moved aside.
    pub fn aside(local: &Path) -> PathBuf {
        let mut name = local.as_os_str().to_owned();
        name.push(ASIDE_SUFFIX);
        PathBuf::from(name)
    }
}

/// What `path` is, without following a link.
pub fn look(path: &Path) -> io::Result<Seen> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Ok(Seen::Link(std::fs::read_link(path)?)),
        Ok(meta) if meta.is_file() => Ok(Seen::Local),
        Ok(_) => Ok(Seen::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Seen::Missing),
        Err(e) => Err(e),
    }
}

/// Whether every path is a link to its file in the dir and that file is a
/// regular file (the promote step's probe).
pub fn linked(links: &Links) -> io::Result<bool> {
    for local in &links.files {
        let target = links.target(local);
        if look(local)? != Seen::Link(target.clone()) || look(&target)? != Seen::Local {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether nfsd will find client records on the storage: the file its
/// `NFSD_STABLERESTART` path leads to in the dir (the first of
/// `nfs.stable_restart_files`) is a regular file and not empty. An empty
/// or missing one holds no client record (nfs_nfsdstate.c
/// `nfsrv_setupstable` reads none), so the new server refuses every
/// reclaim (`NFSERR_NOGRACE`). Looked at before the link, thus before
/// nfsd starts. Not empty is no proof that every client is recorded: it
/// tells the storage's records apart from a fresh or emptied file.
pub fn records_present(links: &Links) -> bool {
    links.files.first().is_some_and(|local| {
        std::fs::metadata(links.target(local)).is_ok_and(|meta| meta.is_file() && meta.len() > 0)
    })
}

fn context(what: &str, path: &Path, error: io::Error) -> String {
    format!("{what} {}: {error}", path.display())
}

/// Puts the links in place: creates the dir (0700) and its files (empty,
/// 0600, as nfsd's `open_stable` would) when missing, moves a local file
/// aside and links. `Ok(false)`: everything was in place already.
pub fn link(links: &Links) -> Result<bool, String> {
    if linked(links).map_err(|e| context("look at", &links.dir, e))? {
        return Ok(false);
    }
    create_dir(&links.dir)?;
    for local in &links.files {
        let target = links.target(local);
        match look(&target).map_err(|e| context("look at", &target, e))? {
            Seen::Local => {}
            Seen::Missing => create_empty(&target)?,
            other => {
                return Err(format!(
                    "{} is not a regular file ({other:?}); nfsd's state must be a plain file there",
                    target.display()
                ))
            }
        }
        match look(local).map_err(|e| context("look at", local, e))? {
            Seen::Link(to) if to == target => continue,
            Seen::Missing => {}
            Seen::Other => {
                return Err(format!(
                    "{} is neither a file nor a link; left as it is",
                    local.display()
                ))
            }
            Seen::Local | Seen::Link(_) => {
                let aside = Links::aside(local);
                if look(&aside).map_err(|e| context("look at", &aside, e))? != Seen::Missing {
                    return Err(format!(
                        "both {} and {} exist: move one away (neither is deleted)",
                        local.display(),
                        aside.display()
                    ));
                }
                std::fs::rename(local, &aside).map_err(|e| context("move aside", local, e))?;
            }
        }
        std::os::unix::fs::symlink(&target, local).map_err(|e| context("link", local, e))?;
    }
    if linked(links).map_err(|e| context("look at", &links.dir, e))? {
        Ok(true)
    } else {
        Err(format!(
            "the links to {} are not in place after linking",
            links.dir.display()
        ))
    }
}

/// Puts the local files back: each link to the dir is removed and the file
/// moved aside returns (none: nfsd creates it empty at its next start).
/// A local file is left as it is; a link elsewhere is refused.
/// `Ok(false)`: nothing to do.
pub fn restore(links: &Links) -> Result<bool, String> {
    let mut acted = false;
    for local in &links.files {
        let target = links.target(local);
        match look(local).map_err(|e| context("look at", local, e))? {
            Seen::Link(to) if to == target => {
                std::fs::remove_file(local).map_err(|e| context("remove link", local, e))?;
                acted = true;
            }
            Seen::Link(to) => {
                return Err(format!(
                    "{} links to {}, not to {}: left as it is",
                    local.display(),
                    to.display(),
                    links.dir.display()
                ))
            }
            Seen::Local | Seen::Other => continue,
            Seen::Missing => {}
        }
        let aside = Links::aside(local);
        if look(&aside).map_err(|e| context("look at", &aside, e))? == Seen::Local {
            std::fs::rename(&aside, local).map_err(|e| context("restore", &aside, e))?;
            acted = true;
        }
    }
    Ok(acted)
}

fn create_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match look(dir).map_err(|e| context("look at", dir, e))? {
        Seen::Missing => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| context("create", dir, e)),
        Seen::Other if dir.is_dir() => Ok(()),
        _ => Err(format!("{} is not a directory", dir.display())),
    }
}

fn create_empty(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| context("create", path, e))
}

/// nfsd's files and the configured dir, when `nfs.stable_restart_dir` is set.
pub fn configured(config: &Config) -> Option<Links> {
    config.nfs.stable_restart_dir.as_ref().map(|dir| Links {
        dir: dir.clone(),
        files: config.nfs.stable_restart_files.to_vec(),
    })
}

/// PROMOTE: link nfsd's files to the storage (after it is mounted, before
/// nfsd starts); undone by [`restore_step`].
pub fn link_step(config: &Config, links: Links) -> Step {
    Step::new(
        "link nfs stable restart",
        Action::Builtin(Builtin::LinkStableRestart(links.clone())),
        config.runbook.command_timeout,
    )
    .undo(restore_step(config, links))
}

/// DEMOTE (after nfsd stopped) and the undo of [`link_step`]: local files
/// back. A failure is logged and the demote goes on: the storage must
/// still be released, and the next promote links again.
pub fn restore_step(config: &Config, links: Links) -> Step {
    Step::new(
        "restore local nfs stable restart",
        Action::Builtin(Builtin::RestoreStableRestart(links)),
        config.runbook.command_timeout,
    )
    .on_failure(OnFailure::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Links) {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(root.path().join("var/db")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(root.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        let links = Links {
            dir: root.path().join("store/.nfs-stablerestart"),
            files: vec![
                root.path().join("var/db/nfs-stablerestart"),
                root.path().join("var/db/nfs-stablerestart.bak"),
            ],
        };
        (root, links)
    }

    #[test]
    fn link_creates_the_dir_and_files_then_is_idempotent() {
        let (_root, links) = setup();
        assert_eq!(link(&links), Ok(true));
        for local in &links.files {
            assert_eq!(look(local).ok(), Some(Seen::Link(links.target(local))));
            assert_eq!(look(&links.target(local)).ok(), Some(Seen::Local));
        }
        assert_eq!(link(&links), Ok(false), "the probe is satisfied");
        assert_eq!(restore(&links), Ok(true));
        for local in &links.files {
            assert_eq!(look(local).ok(), Some(Seen::Missing));
        }
        assert_eq!(restore(&links), Ok(false));
    }

    #[test]
    fn a_local_file_is_moved_aside_and_comes_back_and_shared_state_stays() {
        let (_root, links) = setup();
        let local = &links.files[0];
        std::fs::write(local, "local records").unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(&links.dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(links.target(local), "shared records").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(link(&links), Ok(true));
        assert_eq!(
            std::fs::read_to_string(local).ok().as_deref(),
            Some("shared records"),
            "nfsd reads the shared file through the link"
        );
        assert_eq!(
            std::fs::read_to_string(Links::aside(local)).ok().as_deref(),
            Some("local records")
        );
        assert_eq!(restore(&links), Ok(true));
        assert_eq!(look(local).ok(), Some(Seen::Local));
        assert_eq!(
            std::fs::read_to_string(local).ok().as_deref(),
            Some("local records")
        );
        assert_eq!(look(&Links::aside(local)).ok(), Some(Seen::Missing));
        assert_eq!(
            std::fs::read_to_string(links.target(local)).ok().as_deref(),
            Some("shared records")
        );
    }

    #[test]
    fn nothing_is_deleted_when_both_the_file_and_its_aside_exist() {
        let (_root, links) = setup();
        let local = &links.files[0];
        std::fs::write(local, "new").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(Links::aside(local), "old").unwrap_or_else(|e| panic!("{e}"));
        let error = link(&links).err().unwrap_or_default();
        assert!(error.contains("both"), "{error}");
        assert_eq!(std::fs::read_to_string(local).ok().as_deref(), Some("new"));
        assert_eq!(
            std::fs::read_to_string(Links::aside(local)).ok().as_deref(),
            Some("old")
        );
    }

    #[test]
    fn a_link_elsewhere_is_not_removed_by_restore() {
        let (root, links) = setup();
        let elsewhere = root.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, &links.files[0]).unwrap_or_else(|e| panic!("{e}"));
        let error = restore(&links).err().unwrap_or_default();
        assert!(error.contains("left as it is"), "{error}");
        assert_eq!(look(&links.files[0]).ok(), Some(Seen::Link(elsewhere)));
    }
}
