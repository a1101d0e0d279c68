//! The stand-in worlds of a CBSD cluster, under `<run dir>/cbsd/`:
//!
//! ```text
//! cbsd/standin.py          the stand-in (compiled into this program)
//! cbsd/standin.sock        its server (`standin.py serve`), when the thin
//!                          client `rcbsd-standin` is next to this program
//! cbsd/disk/jails-*/       what HAST replicates: the shared dirs, dir.id,
//!                          each environment's jails-system/ and rc.conf
//! cbsd/disk/.nfs-stablerestart/  nfsd's stable restart records on the
//!                          storage (see [`STABLE_RESTART_DIR`])
//! cbsd/nodes.json          the registry: each node's namespace, root,
//!                          state and exports (the stand-in mount_nfs
//!                          finds the NFS server through it)
//! cbsd/cluster.jsonl       every environment start/stop of every node
//! cbsd/<node>/             the node's "/": tools/ (the client, or else
//!                          standin.py, under each tool name; links to
//!                          standin.py and standin.sock), usr/jails/ (workdir), store/
//!                          (storage root, the disk appears there once
//!                          mounted), etc/exports, dev/hast/, state.json,
//!                          calls.jsonl, rules.json, var/db/ (nfsd's
//!                          nfs-stablerestart and .bak: local files, or,
//!                          while the node is master, the agent's links
//!                          into store/.nfs-stablerestart/)
//! ```
//!
//! Nothing outside the run directory is touched: no /etc/exports, no
//! /usr/jails.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{DIR_ID, HAST_RESOURCE, SHARED_DIRS};
use crate::agents::NodeSpec;
use crate::LabError;

/// The directory on the storage holding nfsd's stable restart records,
/// `nfs.stable_restart_dir` under each node's store (the disk while the
/// node has the storage mounted). Nothing links them here: the agent's
/// promote (`link nfs stable restart`) points the world's own
/// `var/db/nfs-stablerestart` and `.bak` ([`stable_restart_files`], as
/// `nfs.stable_restart_files`) into it, and its demote puts local files
/// back, the code path a real master runs.
pub const STABLE_RESTART_DIR: &str = ".nfs-stablerestart";

/// nfsd's stable restart files in the world (`nfs.stable_restart_files`):
/// `NFSD_STABLERESTART` and `NFSD_STABLEBACKUP` (usr.sbin/nfsd/nfsd.c)
/// under the node's "/", where the stand-in nfsd opens them.
pub fn stable_restart_files(world: &WorldPaths) -> [PathBuf; 2] {
    let var_db = world.root.join("var/db");
    [
        var_db.join("nfs-stablerestart"),
        var_db.join("nfs-stablerestart.bak"),
    ]
}

/// The stand-in program (one script answering under every tool name).
const STANDIN: &str = include_str!("../../standins/standin.py");

/// The stand-in's name for what a reboot clears (the lab's watchdog
/// reset): no FreeBSD tool, only the lab runs it.
pub const REBOOT_TOOL: &str = "lab-reboot";

/// The stand-in's name for a daemon dying behind the agent's back (`lab-kill
/// NAME`): no FreeBSD tool, only the lab runs it; logged as a call, so the
/// holder log sees nfsd or the HAST roles go.
pub const KILL_TOOL: &str = "lab-kill";

/// The stand-in's name for the kernel's side of the file-system looks of
/// the agent's `fs-probe` child: no FreeBSD tool, only the lab's copy of
/// the child runs it ([`nfs_access`]).
pub const NFS_ACCESS_TOOL: &str = "lab-nfs-access";

/// The lab's `fs-probe` child (`rcbsd-lab fs-probe ARGS`, the agent's own
/// code) looks at real directories under the stand-ins' emulated mounts,
/// which never hang: before it looks, the stand-in answers for the kernel
/// (`lab-nfs-access` in `standin.py`): on a mount whose NFS server does
/// not answer this call hangs, frozen, as the look would on FreeBSD, and
/// goes on once a server answers again, or fails with EIO once `umount
/// -N` thaws it; a stale mount (another file system) fails at once.
/// `Err` carries the exit status (its reason went to standard error).
/// Paths outside any stand-in world (no `tools/lab-nfs-access` above
/// them) are looked at as they are.
pub fn nfs_access(args: &[std::ffi::OsString]) -> Result<(), u8> {
    let paths: Vec<&Path> = args
        .iter()
        .map(Path::new)
        .filter(|p| p.is_absolute())
        .collect();
    let Some(tool) = paths.iter().find_map(|path| {
        path.ancestors()
            .map(|dir| dir.join("tools").join(NFS_ACCESS_TOOL))
            .find(|tool| tool.symlink_metadata().is_ok())
    }) else {
        return Ok(());
    };
    let status = std::process::Command::new(&tool)
        .args(&paths)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => Err(1),
        Err(e) => {
            eprintln!("{}: {e}", tool.display());
            Err(1)
        }
    }
}

/// The tools the stand-in answers for: every `[tools]` entry.
pub fn tools() -> impl Iterator<Item = &'static str> {
    rcbsd_failover::config::TOOL_DEFAULTS
        .iter()
        .map(|(name, _)| *name)
}

/// Where one node's world lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorldPaths {
    /// The node's "/".
    pub root: PathBuf,
    pub tools: PathBuf,
    pub workdir: PathBuf,
    pub store: PathBuf,
    pub exports: PathBuf,
    pub hast_device: PathBuf,
    pub state: PathBuf,
    pub calls: PathBuf,
    pub rules: PathBuf,
    /// Shared by every node of the cluster.
    pub cluster_log: PathBuf,
}

impl WorldPaths {
    pub(crate) fn new(cluster: &Path, node: &str) -> Self {
        let root = cluster.join(node);
        WorldPaths {
            tools: root.join("tools"),
            workdir: root.join("usr/jails"),
            store: root.join("store"),
            exports: root.join("etc/exports"),
            hast_device: root.join("dev/hast").join(HAST_RESOURCE),
            state: root.join("state.json"),
            calls: root.join("calls.jsonl"),
            rules: root.join("rules.json"),
            cluster_log: cluster_log(cluster),
            root,
        }
    }
}

/// The directory of a run's CBSD worlds.
pub fn cluster_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("cbsd")
}

fn cluster_log(cluster: &Path) -> PathBuf {
    cluster.join("cluster.jsonl")
}

/// The shared disk (what HAST replicates between the candidates).
pub fn disk(cluster: &Path) -> PathBuf {
    cluster.join("disk")
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> LabError {
    move |source| LabError::Io { what, source }
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

fn mkdir(path: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(path).map_err(io(format!("creating {}", path.display())))
}

/// The stand-ins' server (`standin.py serve`) of a run's worlds: one
/// Python for every tool call of every node, instead of one per call
/// (100–400 ms each on a loaded 2-core machine). Stopped when dropped.
#[derive(Debug)]
pub struct StandinServer {
    child: std::process::Child,
    socket: PathBuf,
}

impl Drop for StandinServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stand-ins' thin client (`rcbsd-standin`, built with this program):
/// `RCBSD_STANDIN_CLIENT`, else next to this program, else one directory
/// up (a test binary runs from `target/*/deps/`).
fn standin_client() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RCBSD_STANDIN_CLIENT") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [
        dir.join("rcbsd-standin"),
        dir.parent()?.join("rcbsd-standin"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Starts `standin.py serve` on `socket` and waits (bounded) until it
/// accepts.
pub fn start_server(script: &Path, socket: &Path) -> Result<StandinServer, LabError> {
    let child = std::process::Command::new("python3")
        .arg(script)
        .arg("serve")
        .arg(socket)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(io(format!("starting python3 {} serve", script.display())))?;
    let mut server = StandinServer {
        child,
        socket: socket.to_owned(),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !socket.exists() {
        let exited = !matches!(server.child.try_wait(), Ok(None));
        if exited || std::time::Instant::now() > deadline {
            return Err(LabError::Io {
                what: format!("waiting for the stand-in server on {}", socket.display()),
                source: std::io::Error::other(if exited { "it exited" } else { "timed out" }),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(server)
}

/// Builds the worlds of every spec that has a `cbsd` part (spec `i` runs in
/// `namespaces[i]`) and fills in their paths. Specs without one are left
/// alone. Returns the stand-ins' server, when the thin client was found
/// (without it each tool is `standin.py` itself, as before the server).
pub fn prepare(
    run_dir: &Path,
    namespaces: &[String],
    specs: &mut [NodeSpec],
) -> Result<Option<StandinServer>, LabError> {
    if specs.iter().all(|s| s.cbsd.is_none()) {
        return Ok(None);
    }
    let cluster = cluster_dir(run_dir);
    mkdir(&cluster)?;
    let script = cluster.join("standin.py");
    write(&script, STANDIN)?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .map_err(io(format!("making {} executable", script.display())))?;
    let client = standin_client();
    prepare_disk(&cluster, specs)?;
    write(&cluster_log(&cluster), "")?;
    let mut registry = Vec::new();
    for (index, spec) in specs.iter_mut().enumerate() {
        let name = spec.name.clone();
        let Some(cbsd) = spec.cbsd.as_mut() else {
            continue;
        };
        let netns = namespaces.get(index).ok_or(LabError::NoSuchNode(index))?;
        let world = WorldPaths::new(&cluster, &name);
        prepare_node(&cluster, &script, client.as_deref(), &name, &world)?;
        registry.push(serde_json::json!({
            "node": name,
            "netns": netns,
            "root": world.root,
            "state": world.state,
            "exports": world.exports,
        }));
        cbsd.world = Some(world);
    }
    let registry_path = cluster.join("nodes.json");
    write(
        &registry_path,
        &serde_json::Value::Array(registry).to_string(),
    )?;
    match client {
        Some(_) => start_server(&script, &cluster.join("standin.sock")).map(Some),
        None => Ok(None),
    }
}

/// The shared dirs with `dir.id`, and every environment any node runs,
/// unregistered (its rc.conf waiting in jails-rcconf/ for `jregister`).
fn prepare_disk(cluster: &Path, specs: &[NodeSpec]) -> Result<(), LabError> {
    let disk = disk(cluster);
    for dir in SHARED_DIRS {
        mkdir(&disk.join(dir))?;
    }
    write(&disk.join("jails-data/dir.id"), &format!("{DIR_ID}\n"))?;
    let mut environments: BTreeMap<&str, bool> = BTreeMap::new();
    for cbsd in specs.iter().filter_map(|s| s.cbsd.as_ref()) {
        for jail in &cbsd.jails {
            environments.insert(jail, false);
        }
        for vm in &cbsd.bhyve {
            environments.insert(vm, true);
        }
    }
    for (name, bhyve) in environments {
        mkdir(&disk.join("jails-system").join(name))?;
        let mut rc = format!("jname=\"{name}\"\n");
        if bhyve {
            rc.push_str("emulator=\"bhyve\"\n");
            // A VM's settings: CBSD reads them from here (subr/rcconf.subr
            // init_bhyve_rcconf), the stand-in checks they are there.
            write(
                &disk.join("jails-system").join(name).join("local.sqlite"),
                "",
            )?;
        }
        write(
            &disk.join("jails-rcconf").join(format!("rc.conf_{name}")),
            &rc,
        )?;
    }
    Ok(())
}

fn prepare_node(
    cluster: &Path,
    script: &Path,
    client: Option<&Path>,
    node: &str,
    world: &WorldPaths,
) -> Result<(), LabError> {
    mkdir(&world.tools)?;
    let link = |target: &Path, link: PathBuf| {
        std::os::unix::fs::symlink(target, &link).map_err(io(format!("linking {}", link.display())))
    };
    for tool in tools().chain([REBOOT_TOOL, NFS_ACCESS_TOOL, KILL_TOOL]) {
        link(client.unwrap_or(script), world.tools.join(tool))?;
    }
    if client.is_some() {
        // What the client looks for next to itself: the server's socket,
        // and the script it runs itself without one.
        link(script, world.tools.join("standin.py"))?;
        link(
            &cluster.join("standin.sock"),
            world.tools.join("standin.sock"),
        )?;
    }
    for dir in SHARED_DIRS {
        mkdir(&world.workdir.join(dir))?;
    }
    mkdir(&world.store)?;
    mkdir(&world.root.join("var/db"))?;
    if let Some(parent) = world.exports.parent() {
        mkdir(parent)?;
    }
    write(&world.exports, "")?;
    if let Some(parent) = world.hast_device.parent() {
        mkdir(parent)?;
    }
    write(&world.rules, "[]")?;
    let mut devices = serde_json::Map::new();
    devices.insert(
        world.hast_device.to_string_lossy().into_owned(),
        serde_json::Value::String(disk(cluster).to_string_lossy().into_owned()),
    );
    let config = serde_json::json!({
        "node": node,
        "state": world.state,
        "log": world.calls,
        "cluster_log": world.cluster_log,
        "rules": world.rules,
        "workdir": world.workdir,
        "nfs_server": "/nonexistent",
        "exports": world.exports,
        "hast_dev_dir": world.hast_device.parent(),
        "devices": devices,
        "cluster": cluster.join("nodes.json"),
        "freezer_prefix": super::freezer::prefix(cluster.parent().unwrap_or(cluster)),
    });
    write(&world.tools.join("standin.json"), &config.to_string())
}

/// Replaces node `world`'s fail/hang rules (see `standin.py`).
pub fn set_rules(world: &WorldPaths, rules: &serde_json::Value) -> Result<(), LabError> {
    // The stand-ins read the rules under this lock; replace atomically.
    let tmp = world.rules.with_extension("json.new");
    write(&tmp, &rules.to_string())?;
    std::fs::rename(&tmp, &world.rules).map_err(io(format!("replacing {}", world.rules.display())))
}

/// Daemon `name` of the node whose world is `world` (in namespace `ns`)
/// dies behind its agent's back: the stand-in `lab-kill` ([`KILL_TOOL`])
/// takes it out of the running services under the stand-ins' lock and
/// logs the call, so the holder log sees nfsd or the HAST roles go.
pub fn kill_service(ns: &str, world: &WorldPaths, name: &str) -> Result<(), LabError> {
    let tool = world.tools.join(KILL_TOOL).to_string_lossy().into_owned();
    crate::cmd::run(&crate::netns::netns_exec_argv(ns, &[tool, name.to_owned()])).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbsd::{CbsdSpec, StorageSpec};
    use std::time::Duration;

    #[test]
    fn prepares_worlds_and_sections_that_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut specs: Vec<NodeSpec> = (0..3)
            .map(|i| {
                let mut spec = NodeSpec::lab(i, Duration::from_millis(100), true);
                spec.cbsd = Some(CbsdSpec::lab(i, 3));
                spec
            })
            .collect();
        let namespaces: Vec<String> = (0..3).map(|i| format!("ns{i}")).collect();
        prepare(dir.path(), &namespaces, &mut specs).expect("prepared");
        let cluster = cluster_dir(dir.path());
        assert!(cluster.join("disk/jails-data/dir.id").is_file());
        assert!(cluster.join("disk/jails-rcconf/rc.conf_vm1").is_file());
        for (i, spec) in specs.iter().enumerate() {
            let text = spec
                .rcbsd_toml(&dir.path().join("s.sock"), &dir.path().join("state"))
                .expect("toml");
            let path = dir.path().join(format!("n{i}.toml"));
            std::fs::write(&path, &text).expect("write");
            let config = rcbsd_failover::config::load(&path)
                .unwrap_or_else(|e| panic!("node {i}: {e}\n{text}"));
            let cbsd = spec.cbsd.as_ref().expect("cbsd");
            assert_eq!(
                config.may_be_master(),
                cbsd.storage != StorageSpec::FollowerOnly
            );
            let world = cbsd.world.as_ref().expect("world");
            assert!(world.tools.join("mount_nfs").exists());
            assert_eq!(config.tools.mount_nfs, world.tools.join("mount_nfs"));
            // The agent links nfsd's paths of the world; nothing is
            // linked before it runs.
            assert_eq!(config.nfs.stable_restart_files, stable_restart_files(world));
            assert_eq!(
                config.nfs.stable_restart_dir,
                Some(world.store.join(STABLE_RESTART_DIR))
            );
            assert!(!world.root.join("var/db/nfs-stablerestart").exists());
        }
        // Ride-through (with [cluster] and placement) passes check-config.
        let quorum = crate::cbsd::placed_quorum(&specs);
        for (i, spec) in specs.iter_mut().enumerate() {
            spec.quorum = Some(quorum.clone());
            if let Some(cbsd) = spec.cbsd.as_mut() {
                cbsd.follow = crate::cbsd::FollowMode::RideThrough;
            }
            let text = spec
                .rcbsd_toml(&dir.path().join("s.sock"), &dir.path().join("state"))
                .expect("toml");
            let path = dir.path().join(format!("ride{i}.toml"));
            std::fs::write(&path, &text).expect("write");
            let config = rcbsd_failover::config::load(&path)
                .unwrap_or_else(|e| panic!("node {i}: {e}\n{text}"));
            assert!(config.follow.ride_through().is_some());
            assert!(config.nfs.v4_only);
        }
    }
}
