//! State that survives a restart, kept in `node.state_dir`.
//!
//! That is the operator's override (`promote` / `demote`), the
//! environments the operator holds (`env hold`), the master marker and the
//! incarnation. A node demoted for maintenance must stay
//! demoted after a reboot, so the file is written atomically (temporary file in the same directory, fsync, rename,
//! fsync of the directory) and a file that cannot be read back is an error,
//! never silently "no override".

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::election::priority::Override;

/// The override file's name inside `state_dir`.
pub const OVERRIDE_FILE: &str = "override.json";

/// Larger than any file we write; a bigger file is not ours.
const MAX_OVERRIDE_FILE_LEN: u64 = 4096;

/// The holds file's name inside `state_dir`.
pub const HOLDS_FILE: &str = "holds.json";

/// Larger than any holds file we write (a thousand long names fit).
const MAX_HOLDS_FILE_LEN: u64 = 256 * 1024;

/// Why the state directory or a file in it could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// The directory was missing and could not be created, or could not
    /// even be examined.
    #[error("cannot create the state directory {}: {source}", path.display())]
    CreateDir {
        /// The configured `node.state_dir`.
        path: PathBuf,
        /// The error of `stat(2)` or `mkdir(2)`.
        #[source]
        source: io::Error,
    },
    /// Something other than a directory has the state directory's path.
    #[error("{} exists but is not a directory", path.display())]
    NotADirectory {
        /// The configured `node.state_dir`.
        path: PathBuf,
    },
    /// A state file exists but could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The state file being read.
        path: PathBuf,
        /// The error of the open or the read.
        #[source]
        source: io::Error,
    },
    /// A state file was read but its content is not what we write (too
    /// long, not UTF-8, not the expected JSON): never taken as "no override".
    #[error("{} is corrupt ({detail}); fix or delete it, then {redo}", path.display())]
    Corrupt {
        /// The state file that was read.
        path: PathBuf,
        /// What is wrong with it, for the operator.
        detail: String,
        /// How to set again what the file held, for the operator.
        redo: &'static str,
    },
    /// Writing, syncing, renaming or removing a state file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory the failing step acted on (the temporary
        /// file, the target, or its directory when syncing it).
        path: PathBuf,
        /// The error of that step.
        #[source]
        source: io::Error,
    },
}

/// The override file's content: `{"override":"demote","since":1732550000}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRecord {
    /// The stored instruction (`"none"`, `"promote"` or `"demote"` in JSON).
    #[serde(rename = "override")]
    pub override_: Override,
    /// When it was set, in seconds since the Unix epoch.
    pub since: u64,
}

/// The holds file's content:
/// `{"held":{"web1":{"since":1732550000}}}`, one entry per environment
/// the operator holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holds {
    /// Environment name -> when it was held.
    pub held: BTreeMap<String, HoldRecord>,
}

/// One held environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRecord {
    /// When it was held, in seconds since the Unix epoch.
    pub since: u64,
}

const REDO_OVERRIDE: &str = "set the override again with promote/demote/resume";
const REDO_HOLDS: &str = "hold the environments again with `rcbsd-failover env hold NAME`";

/// Seconds since the Unix epoch (0 on a clock before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The state directory of one node.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Use `dir`, creating it (mode 0700) if it does not exist. An existing
    /// directory keeps its mode.
    pub fn open(dir: &Path) -> Result<Self, StateDirError> {
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StateDirError::NotADirectory {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| StateDirError::CreateDir {
                        path: dir.to_path_buf(),
                        source,
                    })?;
            }
            Err(source) => {
                return Err(StateDirError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory's path, as configured in `node.state_dir`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Full path of the override file, `state_dir/override.json`.
    pub fn override_path(&self) -> PathBuf {
        self.dir.join(OVERRIDE_FILE)
    }

    /// The stored override; [`Override::None`] when none was ever stored.
    pub fn load_override(&self) -> Result<Override, StateDirError> {
        Ok(self
            .load_override_record()?
            .map_or(Override::None, |record| record.override_))
    }

    /// The stored override with the time it was set; `None` when no file.
    pub fn load_override_record(&self) -> Result<Option<OverrideRecord>, StateDirError> {
        read_json(&self.override_path(), MAX_OVERRIDE_FILE_LEN, REDO_OVERRIDE)
    }

    /// Full path of the holds file, `state_dir/holds.json`.
    pub fn holds_path(&self) -> PathBuf {
        self.dir.join(HOLDS_FILE)
    }

    /// The environments the operator holds; none when no file was ever
    /// written. A file that cannot be read back is an error, never "no
    /// holds": the agent would start what the operator stopped on purpose.
    pub fn load_holds(&self) -> Result<Holds, StateDirError> {
        let path = self.holds_path();
        let holds: Holds = read_json(&path, MAX_HOLDS_FILE_LEN, REDO_HOLDS)?.unwrap_or_default();
        if let Some(bad) = holds.held.keys().find(|name| !valid_hold_name(name)) {
            return Err(StateDirError::Corrupt {
                path,
                detail: format!("{bad:?} is not an environment name"),
                redo: REDO_HOLDS,
            });
        }
        Ok(holds)
    }

    /// Stores `holds` as [`StateDir::save_override`] does: readers see the
    /// old file or the new one, never a torn write.
    pub fn save_holds(&self, holds: &Holds) -> Result<(), StateDirError> {
        let mut bytes = serde_json::to_vec(holds).map_err(|e| StateDirError::Write {
            path: self.holds_path(),
            source: io::Error::other(e),
        })?;
        bytes.push(b'\n');
        self.write_atomically(HOLDS_FILE, &bytes)
    }

    /// Store `override_` so that it survives a crash at any point: readers
    /// see either the old file or the new one, never a torn write.
    pub fn save_override(&self, override_: Override) -> Result<(), StateDirError> {
        let record = OverrideRecord {
            override_,
            since: unix_now(),
        };
        let mut bytes = serde_json::to_vec(&record).map_err(|e| StateDirError::Write {
            path: self.override_path(),
            source: io::Error::other(e),
        })?;
        bytes.push(b'\n');
        self.write_atomically(OVERRIDE_FILE, &bytes)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<(), StateDirError> {
        write_durably(&self.dir.join(name), bytes)
    }
}

/// Whether `name` can be a CBSD environment name (a jail's `jname`): what
/// the holds file may hold. Not empty, at most 255 bytes, no `/`, no
/// control characters, not `.` or `..`.
pub fn valid_hold_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c.is_control())
}

/// Reads a JSON state file of at most `max_len` bytes; `None` when it does
/// not exist. Anything else we did not write is [`StateDirError::Corrupt`].
fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    max_len: u64,
    redo: &'static str,
) -> Result<Option<T>, StateDirError> {
    let read_error = |source| StateDirError::Read {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |detail: String| StateDirError::Corrupt {
        path: path.to_path_buf(),
        detail,
        redo,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let mut text = String::new();
    let read = io::Read::read_to_string(&mut io::Read::take(file, max_len + 1), &mut text);
    match read {
        Ok(len) if len as u64 > max_len => Err(corrupt(format!("longer than {max_len} bytes"))),
        Ok(_) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| corrupt(e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(corrupt("not UTF-8".to_string())),
        Err(e) => Err(read_error(e)),
    }
}

/// Writes `bytes` to `target` so that it survives a crash at any point:
/// a temporary file in the same directory (mode 0600, never through a
/// symbolic link), fsync, rename, fsync of the directory. Readers see the
/// old file or the new one, never a torn write.
pub fn write_durably(target: &Path, bytes: &[u8]) -> Result<(), StateDirError> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateDirError::Write { path, source }
    };
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(write_error(&temp)(e));
    }
    if let Err(e) = fs::rename(&temp, target) {
        let _ = fs::remove_file(&temp);
        return Err(write_error(target)(e));
    }
    // The rename is durable only once the directory entry is on disk.
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error(dir))
}

/// Removes `target` (absent is fine) and syncs its directory, so that the
/// removal survives a crash.
pub fn remove_durably(target: &Path) -> Result<(), StateDirError> {
    match fs::remove_file(target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StateDirError::Write {
                path: target.to_path_buf(),
                source,
            })
        }
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StateDirError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_missing_file_means_no_override() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        assert_eq!(store.load_override().unwrap(), Override::None);
    }

    #[test]
    fn open_creates_the_directory_private() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("a/b");
        StateDir::open(&state_dir).unwrap();
        let mode = fs::metadata(&state_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn open_refuses_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        assert!(matches!(
            StateDir::open(&file),
            Err(StateDirError::NotADirectory { .. })
        ));
    }

    #[test]
    fn a_saved_override_is_read_back_by_a_new_store() {
        let dir = tempfile::tempdir().unwrap();
        for override_ in [Override::Demote, Override::Promote, Override::None] {
            StateDir::open(dir.path())
                .unwrap()
                .save_override(override_)
                .unwrap();
            let again = StateDir::open(dir.path()).unwrap();
            assert_eq!(again.load_override().unwrap(), override_);
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [OVERRIDE_FILE], "temporary files left behind");
    }

    #[test]
    fn the_file_is_private_json() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        store.save_override(Override::Demote).unwrap();
        let path = store.override_path();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(r#"{"override":"demote","since":"#),
            "{text}"
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        for garbage in [
            "",
            "{",
            r#"{"override":"sideways","since":1}"#,
            r#"{"override":"demote"}"#,
            "\u{0}\u{1}",
        ] {
            fs::write(store.override_path(), garbage).unwrap();
            let error = store.load_override().unwrap_err();
            assert!(
                matches!(error, StateDirError::Corrupt { .. }),
                "{garbage:?}: {error}"
            );
            assert!(error.to_string().contains(OVERRIDE_FILE), "{error}");
        }
        fs::write(store.override_path(), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            store.load_override(),
            Err(StateDirError::Corrupt { .. })
        ));
    }

    fn holds(names: &[&str]) -> Holds {
        Holds {
            held: names
                .iter()
                .map(|n| {
                    (
                        (*n).to_owned(),
                        HoldRecord {
                            since: 1_732_550_000,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn no_holds_file_means_nothing_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        assert_eq!(store.load_holds().unwrap(), Holds::default());
    }

    #[test]
    fn saved_holds_are_read_back_by_a_new_store() {
        let dir = tempfile::tempdir().unwrap();
        for names in [&["web1", "db1"][..], &["db1"], &[]] {
            StateDir::open(dir.path())
                .unwrap()
                .save_holds(&holds(names))
                .unwrap();
            let again = StateDir::open(dir.path()).unwrap();
            assert_eq!(again.load_holds().unwrap(), holds(names));
        }
        let store = StateDir::open(dir.path()).unwrap();
        store.save_holds(&holds(&["web1"])).unwrap();
        let text = fs::read_to_string(store.holds_path()).unwrap();
        assert_eq!(text, "{\"held\":{\"web1\":{\"since\":1732550000}}}\n");
        let mode = fs::metadata(store.holds_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, [HOLDS_FILE], "temporary files left behind");
    }

    #[test]
    fn a_corrupt_holds_file_is_an_error_naming_it_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        for garbage in [
            "",
            "[",
            r#"{"held":["web1"]}"#,
            r#"{"held":{"web1":{}}}"#,
            r#"{"held":{"web1":{"since":-1}}}"#,
            r#"{"held":{},"other":1}"#,
            r#"{"held":{"../etc":{"since":1}}}"#,
            r#"{"held":{"":{"since":1}}}"#,
            "\u{0}\u{1}",
        ] {
            fs::write(store.holds_path(), garbage).unwrap();
            let error = store.load_holds().unwrap_err();
            assert!(
                matches!(error, StateDirError::Corrupt { .. }),
                "{garbage:?}: {error}"
            );
            let text = error.to_string();
            assert!(text.contains(HOLDS_FILE), "{text}");
            assert!(text.contains("env hold"), "{text}");
        }
        fs::write(store.holds_path(), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            store.load_holds(),
            Err(StateDirError::Corrupt { .. })
        ));
        let huge = format!(
            "{{\"held\":{{\"{}\":{{\"since\":1}}}}}}",
            "x".repeat(300_000)
        );
        fs::write(store.holds_path(), huge).unwrap();
        assert!(matches!(
            store.load_holds(),
            Err(StateDirError::Corrupt { detail, .. }) if detail.contains("longer than")
        ));
    }

    #[test]
    fn hold_names_are_environment_names() {
        for good in ["web1", "db-2", "vm_10", "a.b"] {
            assert!(valid_hold_name(good), "{good}");
        }
        let long = "x".repeat(256);
        for bad in ["", ".", "..", "a/b", "a\nb", long.as_str()] {
            assert!(!valid_hold_name(bad), "{bad:?}");
        }
    }
}
