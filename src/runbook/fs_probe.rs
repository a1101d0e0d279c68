//! Looks at paths that may sit on an NFS mount (`dir.id`, the write probe,
//! the listing of `jails-system/`) from a child process: the agent runs
//! itself as `rcbsd-failover fs-probe ...` under the step's time limit.
//!
//! A read on a hard mount whose server is gone blocks uninterruptibly
//! (mount_nfs(8)). Done on one of the agent's threads, it would hold that
//! thread for ever, and the runtime's shutdown would wait for it. A child
//! in that state is killed and, if it does not die, abandoned like any
//! other command (see [`super::command`]).
//!
//! The protocol between the agent and its child is private: argv in, one
//! answer on standard output, exit status 0 (the answer), 1 (a failed
//! check, the reason on standard error) or 64 (a malformed request).

use std::path::{Path, PathBuf};

use super::step::Command;
use crate::exit::ExitStatus;

/// The hidden subcommand the agent runs itself with.
pub const SUBCOMMAND: &str = "fs-probe";

/// One look at the file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsProbe {
    /// `dir.id` exists, is non-empty and, if known, equals `expected`.
    DirId {
        /// CBSD's `dir.id` under the workdir (`cbsd.dir_id_file`).
        path: PathBuf,
        /// `cbsd.dir_id`: the content it must hold; `None`: any, but not
        /// empty.
        expected: Option<String>,
    },
    /// Create, sync and remove a file: the mount is writable by root.
    Write {
        /// The probe file to create, inside the directory tested.
        path: PathBuf,
    },
    /// The names of the subdirectories of `dir` (hidden ones left out),
    /// sorted, one per line.
    List {
        /// The directory listed, e.g. `<workdir>/jails-system`.
        dir: PathBuf,
    },
    /// CBSD's lock file `lock` (jails-system/J/locked) and this node's
    /// CBSD nodename file: a [`LockSeen`] as one JSON line.
    Lock {
        /// The jail's lock file, `<workdir>/jails-system/J/locked`.
        lock: PathBuf,
        /// CBSD's nodename file, `<workdir>/nodename`.
        nodename: PathBuf,
    },
    /// Removes CBSD's lock `lock` if it still names `holder`: a node that
    /// is not live (its lease ran out) left it, and sudoexec/jstart refuses
    /// a fresh foreign lock ("You may remove the lockfile if you believe
    /// that jail is not running on this node").
    Unlock {
        /// The jail's lock file, `<workdir>/jails-system/J/locked`.
        lock: PathBuf,
        /// The node the lock must still name to be removed.
        holder: String,
    },
}

/// A malformed `fs-probe` request (the child exits 64).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{SUBCOMMAND}: expected dir-id PATH [ID] | write PATH | list DIR | lock PATH NODENAME-FILE | unlock PATH HOLDER, got {args:?}")]
struct UsageError {
    /// The arguments after `fs-probe`, as given.
    pub args: Vec<String>,
}

/// Why a look at the file system failed (the child exits 1 and prints it).
#[derive(Debug, thiserror::Error)]
enum FsProbeError {
    /// Reading a file (`dir.id`, a lock, the nodename file) failed, other
    /// than by its absence where that is allowed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The error reading it returned.
        #[source]
        source: std::io::Error,
    },
    /// The lock's mtime could not be read.
    #[error("cannot stat {}: {source}", path.display())]
    Stat {
        /// The lock file.
        path: PathBuf,
        /// The error stat(2) returned.
        #[source]
        source: std::io::Error,
    },
    /// The directory could not be listed.
    #[error("cannot list {}: {source}", dir.display())]
    List {
        /// The directory.
        dir: PathBuf,
        /// The error reading it returned.
        #[source]
        source: std::io::Error,
    },
    /// A lock to take over could not be removed.
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        /// The lock file.
        path: PathBuf,
        /// The error unlink(2) returned.
        #[source]
        source: std::io::Error,
    },
    /// `dir.id` holds nothing.
    #[error("{} is empty", path.display())]
    EmptyDirId {
        /// The `dir.id` file.
        path: PathBuf,
    },
    /// `dir.id` names another cluster's data.
    #[error("{} holds {found:?}, not the cluster's {wanted:?}: wrong data under the shared dirs", path.display())]
    WrongDirId {
        /// The `dir.id` file.
        path: PathBuf,
        /// Its content (trimmed).
        found: String,
        /// `cbsd.dir_id`: what it must hold.
        wanted: String,
    },
    /// Creating, syncing or removing the probe file failed.
    #[error("write probe {}: {source}", path.display())]
    WriteProbe {
        /// The probe file.
        path: PathBuf,
        /// The error the failed operation returned.
        #[source]
        source: std::io::Error,
    },
    /// The probe file came back owned by someone else.
    #[error("write probe {}: a file created by uid {me} shows uid {owner}: NFSv4 owner names are not mapped (run nfsuserd on every node with the same domain: sysrc nfsuserd_enable=YES; service nfsuserd start)", path.display())]
    OwnerNotMapped {
        /// The probe file.
        path: PathBuf,
        /// The uid the file showed once created.
        owner: u32,
        /// The uid that created it (the probe's effective uid, root).
        me: u32,
    },
    /// The lock names another holder than the one to remove.
    #[error("{} now names {now:?}, not {holder:?}: left alone", lock.display())]
    LockHolderChanged {
        /// The lock file.
        lock: PathBuf,
        /// The holder the lock names now.
        now: String,
        /// The holder it was to be removed for.
        holder: String,
    },
    /// The [`LockSeen`] answer could not be written as JSON (a bug).
    #[error("internal error: {0}")]
    Encode(#[source] serde_json::Error),
}

/// What `fs-probe lock` saw. The judgement is the agent's
/// ([`super::cbsd::judge_lock`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockSeen {
    /// The lock's content with the trailing newlines removed (what
    /// sudoexec/jstart's `$( cat lock )` yields); `None`: no lock file.
    pub holder: Option<String>,
    /// Seconds since the lock's mtime (0 when in the future).
    pub age_s: u64,
    /// CBSD's nodename: the first word of each line of the nodename file,
    /// run together (cbsd.conf: `awk '{printf $1}'`); `None`: no such
    /// file.
    pub nodename: Option<String>,
}

impl FsProbe {
    /// The argv that runs this probe in a child: `exe fs-probe VERB ARGS`.
    pub fn command(&self, exe: &Path) -> Command {
        let mut argv = vec![exe.to_string_lossy().into_owned(), SUBCOMMAND.to_owned()];
        match self {
            FsProbe::DirId { path, expected } => {
                argv.push("dir-id".into());
                argv.push(path.to_string_lossy().into_owned());
                argv.extend(expected.clone());
            }
            FsProbe::Write { path } => {
                argv.push("write".into());
                argv.push(path.to_string_lossy().into_owned());
            }
            FsProbe::List { dir } => {
                argv.push("list".into());
                argv.push(dir.to_string_lossy().into_owned());
            }
            FsProbe::Lock { lock, nodename } => {
                argv.push("lock".into());
                argv.push(lock.to_string_lossy().into_owned());
                argv.push(nodename.to_string_lossy().into_owned());
            }
            FsProbe::Unlock { lock, holder } => {
                argv.push("unlock".into());
                argv.push(lock.to_string_lossy().into_owned());
                argv.push(holder.clone());
            }
        }
        Command::new(argv)
    }

    /// The request in `args` (what follows `fs-probe`).
    fn parse(args: &[String]) -> Result<FsProbe, UsageError> {
        match args {
            [verb, path] if verb == "dir-id" => Ok(FsProbe::DirId {
                path: PathBuf::from(path),
                expected: None,
            }),
            [verb, path, expected] if verb == "dir-id" => Ok(FsProbe::DirId {
                path: PathBuf::from(path),
                expected: Some(expected.clone()),
            }),
            [verb, path] if verb == "write" => Ok(FsProbe::Write {
                path: PathBuf::from(path),
            }),
            [verb, dir] if verb == "list" => Ok(FsProbe::List {
                dir: PathBuf::from(dir),
            }),
            [verb, lock, nodename] if verb == "lock" => Ok(FsProbe::Lock {
                lock: PathBuf::from(lock),
                nodename: PathBuf::from(nodename),
            }),
            [verb, lock, holder] if verb == "unlock" => Ok(FsProbe::Unlock {
                lock: PathBuf::from(lock),
                holder: holder.clone(),
            }),
            _ => Err(UsageError {
                args: args.to_vec(),
            }),
        }
    }

    /// Does the look (in the child): the answer, or why the check failed.
    fn look(&self) -> Result<String, FsProbeError> {
        match self {
            FsProbe::DirId { path, expected } => {
                verify_dir_id(path, expected.as_deref()).map(|()| String::new())
            }
            FsProbe::Write { path } => write_probe(path).map(|()| String::new()),
            FsProbe::List { dir } => list_dirs(dir).map(|names| {
                let mut text = names.join("\n");
                if !text.is_empty() {
                    text.push('\n');
                }
                text
            }),
            FsProbe::Lock { lock, nodename } => read_lock(lock, nodename).and_then(|seen| {
                serde_json::to_string(&seen)
                    .map(|line| line + "\n")
                    .map_err(FsProbeError::Encode)
            }),
            FsProbe::Unlock { lock, holder } => remove_lock(lock, holder).map(|()| String::new()),
        }
    }
}

/// Removes `lock` if it names `holder`; gone already is fine, a lock that
/// names someone else now is not touched (the check fails).
fn remove_lock(lock: &Path, holder: &str) -> Result<(), FsProbeError> {
    match std::fs::read(lock) {
        Ok(bytes) => {
            let now = String::from_utf8_lossy(&bytes);
            let now = now.trim_end_matches('\n');
            if now != holder {
                return Err(FsProbeError::LockHolderChanged {
                    lock: lock.to_path_buf(),
                    now: now.to_owned(),
                    holder: holder.to_owned(),
                });
            }
            match std::fs::remove_file(lock) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(FsProbeError::Remove {
                    path: lock.to_path_buf(),
                    source,
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FsProbeError::Read {
            path: lock.to_path_buf(),
            source,
        }),
    }
}

/// Reads CBSD's lock and nodename files (see [`LockSeen`]).
fn read_lock(lock: &Path, nodename: &Path) -> Result<LockSeen, FsProbeError> {
    let nodename = match std::fs::read_to_string(nodename) {
        Ok(text) => Some(
            text.lines()
                .filter_map(|line| line.split_whitespace().next())
                .collect(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(FsProbeError::Read {
                path: nodename.to_path_buf(),
                source,
            })
        }
    };
    let (holder, age_s) = match std::fs::read(lock) {
        Ok(bytes) => {
            let age_s = std::fs::metadata(lock)
                .and_then(|m| m.modified())
                .map_err(|source| FsProbeError::Stat {
                    path: lock.to_path_buf(),
                    source,
                })?
                .elapsed()
                .map_or(0, |age| age.as_secs());
            let text = String::from_utf8_lossy(&bytes);
            (Some(text.trim_end_matches('\n').to_owned()), age_s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0),
        Err(source) => {
            return Err(FsProbeError::Read {
                path: lock.to_path_buf(),
                source,
            })
        }
    };
    Ok(LockSeen {
        holder,
        age_s,
        nodename,
    })
}

/// The child's side: `rcbsd-failover fs-probe ARGS`. Prints the answer
/// and returns the exit status.
pub fn main(args: &[String]) -> ExitStatus {
    let probe = match FsProbe::parse(args) {
        Ok(probe) => probe,
        Err(why) => {
            eprintln!("{why}");
            return ExitStatus::Usage;
        }
    };
    match probe.look() {
        Ok(answer) => {
            print!("{answer}");
            ExitStatus::Success
        }
        Err(why) => {
            eprintln!("{why}");
            ExitStatus::Failure
        }
    }
}

fn verify_dir_id(path: &Path, expected: Option<&str>) -> Result<(), FsProbeError> {
    let text = std::fs::read_to_string(path).map_err(|source| FsProbeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let found = text.trim();
    match expected {
        _ if found.is_empty() => Err(FsProbeError::EmptyDirId {
            path: path.to_path_buf(),
        }),
        Some(wanted) if wanted != found => Err(FsProbeError::WrongDirId {
            path: path.to_path_buf(),
            found: found.to_owned(),
            wanted: wanted.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Creates, syncs and removes `path`, and checks that the file came back
/// owned by whoever created it: an NFSv4 client that does not map owner
/// strings (no nfsuserd here, or another domain than the server's) shows
/// every file as owned by nobody, and CBSD's chowns fail (the server,
/// running nfsuserd, refuses numeric owner strings: nfs_commonsubs.c
/// `nfsv4_strtouid`).
fn write_probe(path: &Path) -> Result<(), FsProbeError> {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let write = || -> std::io::Result<u32> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(b"rcbsd-failover write probe\n")?;
        file.sync_all()?;
        let owner = file.metadata()?.uid();
        std::fs::remove_file(path)?;
        Ok(owner)
    };
    let owner = write().map_err(|source| FsProbeError::WriteProbe {
        path: path.to_path_buf(),
        source,
    })?;
    owner_matches(path, owner, nix::unistd::geteuid().as_raw())
}

fn owner_matches(path: &Path, owner: u32, me: u32) -> Result<(), FsProbeError> {
    if owner == me {
        Ok(())
    } else {
        Err(FsProbeError::OwnerNotMapped {
            path: path.to_path_buf(),
            owner,
            me,
        })
    }
}

fn list_dirs(dir: &Path) -> Result<Vec<String>, FsProbeError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FsProbeError::List {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_id_must_match_when_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dir.id");
        assert!(verify_dir_id(&path, None).is_err(), "missing");
        std::fs::write(&path, "\n").unwrap();
        assert!(verify_dir_id(&path, None).is_err(), "empty");
        std::fs::write(&path, "abc\n").unwrap();
        assert!(verify_dir_id(&path, None).is_ok());
        assert!(verify_dir_id(&path, Some("abc")).is_ok());
        assert!(verify_dir_id(&path, Some("xyz")).is_err());
    }

    #[test]
    fn every_probe_survives_its_argv() {
        let exe = Path::new("/usr/local/sbin/rcbsd-failover");
        for probe in [
            FsProbe::DirId {
                path: "/usr/jails/jails-data/dir.id".into(),
                expected: Some("c0ffee".into()),
            },
            FsProbe::DirId {
                path: "/a b/dir.id".into(),
                expected: None,
            },
            FsProbe::Write {
                path: "/usr/jails/jails-system/.probe.node1".into(),
            },
            FsProbe::List {
                dir: "/usr/jails/jails-system".into(),
            },
            FsProbe::Lock {
                lock: "/usr/jails/jails-system/web1/locked".into(),
                nodename: "/usr/jails/nodename".into(),
            },
            FsProbe::Unlock {
                lock: "/usr/jails/jails-system/web1/locked".into(),
                holder: "node3".into(),
            },
        ] {
            let command = probe.command(exe);
            assert_eq!(
                command.argv[..2],
                [exe.display().to_string(), SUBCOMMAND.to_owned()]
            );
            assert_eq!(FsProbe::parse(&command.argv[2..]), Ok(probe));
        }
    }

    #[test]
    fn a_malformed_request_is_refused_with_the_usage() {
        for args in [
            vec![],
            vec!["dir-id".to_owned()],
            vec!["rm".into(), "/".into()],
        ] {
            let why = FsProbe::parse(&args).unwrap_err().to_string();
            assert!(why.contains("expected dir-id"), "{why}");
        }
    }

    #[test]
    fn list_names_subdirectories_sorted_without_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["web1", "db1", ".probe"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("file"), "").unwrap();
        let answer = FsProbe::List {
            dir: dir.path().to_path_buf(),
        }
        .look()
        .unwrap();
        assert_eq!(answer, "db1\nweb1\n");
    }

    #[test]
    fn lock_reports_holder_age_and_cbsd_nodename() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("locked");
        let nodename = dir.path().join("nodename");
        let seen = read_lock(&lock, &nodename).unwrap();
        assert_eq!(seen, LockSeen::default(), "neither file");
        std::fs::write(&nodename, "cbsd-a extra words\n").unwrap();
        std::fs::write(&lock, "cbsd-b\n\n").unwrap();
        let answer = FsProbe::Lock {
            lock: lock.clone(),
            nodename: nodename.clone(),
        }
        .look()
        .unwrap();
        let seen: LockSeen = serde_json::from_str(answer.trim()).unwrap();
        assert_eq!(seen.holder.as_deref(), Some("cbsd-b"));
        assert_eq!(seen.nodename.as_deref(), Some("cbsd-a"));
        assert!(seen.age_s < 60, "{seen:?}");
        std::fs::write(&lock, "").unwrap();
        assert_eq!(
            read_lock(&lock, &nodename).unwrap().holder.as_deref(),
            Some("")
        );
    }

    #[test]
    fn unlock_removes_only_the_holders_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("locked");
        let unlock = |holder: &str| {
            FsProbe::Unlock {
                lock: lock.clone(),
                holder: holder.to_owned(),
            }
            .look()
            .map_err(|e| e.to_string())
        };
        assert_eq!(unlock("n3"), Ok(String::new()), "no lock: nothing to do");
        std::fs::write(&lock, "n2\n").unwrap();
        let why = unlock("n3").unwrap_err().to_string();
        assert!(why.contains("now names \"n2\""), "{why}");
        assert!(lock.exists(), "another node's lock is left alone");
        std::fs::write(&lock, "n3\n").unwrap();
        assert_eq!(unlock("n3"), Ok(String::new()));
        assert!(!lock.exists());
    }

    #[test]
    fn a_probe_file_owned_by_someone_else_means_unmapped_owner_names() {
        let path = Path::new("/usr/jails/jails-system/.probe.node2");
        assert!(owner_matches(path, 0, 0).is_ok());
        let why = owner_matches(path, 65534, 0).unwrap_err().to_string();
        assert!(
            why.contains("uid 65534") && why.contains("nfsuserd"),
            "{why}"
        );
    }

    #[test]
    fn the_write_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".probe.node1");
        FsProbe::Write { path: path.clone() }.look().unwrap();
        assert!(!path.exists());
        let missing = FsProbe::Write {
            path: dir.path().join("no/such/dir/.probe"),
        };
        assert!(missing
            .look()
            .unwrap_err()
            .to_string()
            .contains("write probe"));
    }
}
