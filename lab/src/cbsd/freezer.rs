//! The cgroup-v1 freezer groups in which the stand-ins model processes hung
//! on a gone NFS server (see "a gone NFS server" in `standin.py`): a frozen
//! task survives SIGKILL until its group is thawed, as a process in
//! uninterruptible NFS I/O survives it until `umount -N`.
//!
//! Every group's name starts with the [`prefix`] of the run that built the
//! worlds (its process and directory), so a run's teardown releases its own groups and
//! [`release_leftovers`] those of runs that died without one. Releasing a
//! group thaws it, kills what is in it and removes it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Where the cgroup-v1 freezer hierarchy is mounted.
pub const FREEZER: &str = "/sys/fs/cgroup/freezer";
const NAME: &str = "rcbsd-standin";

/// Whether the stand-ins can model an uninterruptible hang here (without
/// the freezer they fall back to a hang that a kill ends, and log it).
pub fn available() -> bool {
    Path::new(FREEZER).join("cgroup.procs").exists()
}

/// The group-name prefix of the stand-ins of the worlds under `run_dir`
/// (this process's pid, then a hash of the directory: runs in parallel
/// threads of one test binary release only their own groups).
pub fn prefix(run_dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    run_dir.hash(&mut hasher);
    format!(
        "{NAME}-{}-{:08x}",
        std::process::id(),
        hasher.finish() & 0xffff_ffff
    )
}

/// Releases every group whose name starts with `prefix`.
pub fn release(prefix: &str) {
    for group in groups().into_iter().filter(|g| {
        g.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix))
    }) {
        release_group(&group);
    }
}

/// Releases the groups of runs whose process is gone.
pub fn release_leftovers() {
    for group in groups() {
        let owner = group
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(NAME))
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if owner.is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists()) {
            release_group(&group);
        }
    }
}

fn groups() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(FREEZER) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(NAME))
        })
        .collect()
}

/// Thaw, SIGKILL every task, wait (bounded) for the group to empty, remove
/// it. Best effort: teardown never fails loudly.
fn release_group(group: &Path) {
    let _ = std::fs::write(group.join("freezer.state"), "THAWED");
    let tasks = || -> Vec<i32> {
        std::fs::read_to_string(group.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    for pid in tasks() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !tasks().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir(group);
}
