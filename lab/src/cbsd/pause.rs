//! Each follower's I/O pause across a master change, seen as its
//! environments would see it: from the cut, a prober per node runs the
//! stand-in `df -k <workdir>/jails-data/dir.id` in the node's namespace,
//! one call after another, until one answers with every shared dir
//! mounted from the VIP and served by another node than the lost master.
//!
//! `df` is statfs(2), an RPC on NFS: on a gone server it hangs (frozen,
//! as a hard mount's caller) until the server answers again or `umount
//! -N` fails it, so a ride-through follower's pause ends when the new
//! master answers, a remounting follower's when its mounts are back. The
//! probe is any process's I/O: on a real node it would also make the
//! kernel recover the client's state (the stand-in's `settle`), as the
//! environments' own I/O does. It is `df` rather than `lab-nfs-access`,
//! which hangs its caller's parent too (the agent's fs-probe), here the
//! lab itself.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::state::NodeState;
use super::world::WorldPaths;
use super::{FollowMode, SHARED_DIRS};
use crate::netns;

/// The probers of one trial.
pub struct PauseProbe {
    stop: Arc<AtomicBool>,
    threads: Vec<(usize, JoinHandle<Option<f64>>)>,
}

impl PauseProbe {
    /// Starts a prober for each `(index, namespace, world)`; `lost` is
    /// the lost master's node name, `cut` the cut (epoch seconds).
    pub fn start(
        nodes: Vec<(usize, String, WorldPaths)>,
        lost: &str,
        follow: FollowMode,
        cut: f64,
    ) -> PauseProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = nodes
            .into_iter()
            .map(|(index, ns, world)| {
                let stop = Arc::clone(&stop);
                let lost = lost.to_owned();
                (
                    index,
                    std::thread::spawn(move || probe(&ns, &world, &lost, follow, cut, &stop)),
                )
            })
            .collect();
        PauseProbe { stop, threads }
    }

    /// Waits up to `patience` for every prober to see its answer, then
    /// stops those still looking: each node's first answer (epoch
    /// seconds), None when it had none (the new master: its mounts are
    /// gone, it serves).
    pub fn finish(self, patience: Duration) -> Vec<(usize, Option<f64>)> {
        let deadline = std::time::Instant::now() + patience;
        while std::time::Instant::now() < deadline
            && self.threads.iter().any(|(_, t)| !t.is_finished())
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::SeqCst);
        self.threads
            .into_iter()
            .map(|(index, thread)| (index, thread.join().ok().flatten()))
            .collect()
    }
}

/// Whether `world`'s shared dirs are all mounted from the VIP as they
/// will stay: with `follow` remount, every NFS mount made after `cut`
/// (the follow stops the environments and remounts even when the old
/// mounts recovered meanwhile: their I/O resumes on the new ones); with
/// ride-through, none still served by `lost` (recovered or remounted).
pub fn answered(world: &WorldPaths, lost: &str, follow: FollowMode, cut: f64) -> bool {
    let state = NodeState::read(world);
    let nfs = || state.mounts.iter().filter(|m| m.fstype == "nfs");
    state.nfs_mounts_from(world, netns::VIP).len() == SHARED_DIRS.len()
        && match follow {
            FollowMode::Remount => nfs().all(|m| m.t >= cut),
            FollowMode::RideThrough => !nfs().any(|m| m.served_by() == Some(lost)),
        }
}

fn probe(
    ns: &str,
    world: &WorldPaths,
    lost: &str,
    follow: FollowMode,
    cut: f64,
    stop: &AtomicBool,
) -> Option<f64> {
    let path: PathBuf = world.workdir.join("jails-data").join("dir.id");
    let argv = netns::netns_exec_argv(
        ns,
        &[
            world.tools.join("df").to_string_lossy().into_owned(),
            "-k".to_owned(),
            path.to_string_lossy().into_owned(),
        ],
    );
    let (program, args) = argv.split_first()?;
    while !stop.load(Ordering::SeqCst) {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(_) => return None,
            }
            if stop.load(Ordering::SeqCst) {
                // Frozen on a server that never came back: the kill lands
                // when the world's teardown thaws it; not waited for.
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let at = super::trial::now_epoch();
        if status.success() && answered(world, lost, follow, cut) {
            return Some(at);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
