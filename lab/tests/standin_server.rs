//! The stand-in server (`standin.py serve`) and its thin client
//! (`rcbsd-standin`): a served call answers as `standin.py` run by the
//! caller would, and the caller stays the process that is killed or frozen.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "standins/mod.rs"]
mod standins;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use standins::World;

/// (exit code, stdout, stderr) of `tool args` run from `/` by `program`.
fn answer(program: &std::path::Path, pre: &[&str], args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(program)
        .args(pre)
        .args(args)
        .current_dir("/")
        .env("NOINTER", "1")
        .env("NOCOLOR", "1")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The same calls in two worlds, one through the server, one by
/// `python3 standin.py as TOOL` (the client's fallback, as a symlink to
/// standin.py ran before the server): the same answers and state.
#[test]
fn a_served_call_answers_byte_for_byte_as_the_script_run_directly() {
    let served = World::new("node1");
    let direct = World::new("node1");
    // Without the script next to it the client can only be served.
    std::fs::remove_file(served.tools.join("standin.py")).unwrap();
    served.add_environment("web1", false);
    direct.add_environment("web1", false);
    let calls: &[&[&str]] = &[
        &["service", "nfsd", "onestatus"],
        &["service", "nfsd", "onestart"],
        &["service", "nfsd", "onestart"],
        &["service", "nfsd", "start"],
        &["service", "nfsd", "onestatus"],
        &["service", "nfsd", "bogus"],
        &["service"],
        &["cbsd", "jregister", "jname=web1"],
        &["cbsd", "jstatus", "jname=web1"],
        &["cbsd", "jorder"],
        &["mount", "-p"],
        &["sysrc", "-n", "nfs_server_enable"],
        &["sysctl", "-n", "no.such.oid"],
        &["zpool", "list", "-H", "-o", "name", "tank"],
    ];
    for call in calls {
        let (tool, args) = (call[0], &call[1..]);
        let script = direct.tools.join("standin.py");
        let tool_path = direct.tools.join(tool);
        let tool_path = tool_path.to_str().unwrap();
        let want = answer(
            std::path::Path::new("python3"),
            &[script.to_str().unwrap(), "as", tool_path],
            args,
        );
        let got = answer(&served.tools.join(tool), &[], args);
        // Each world's own paths aside.
        let local = |(code, out, err): (Option<i32>, String, String), w: &World| {
            let root = w.dir.path().to_str().unwrap().to_owned();
            (code, out.replace(&root, "ROOT"), err.replace(&root, "ROOT"))
        };
        assert_eq!(local(got, &served), local(want, &direct), "{call:?}");
    }
    // Every logged call but its time.
    let calls = |w: &World| -> Vec<serde_json::Value> {
        w.calls()
            .into_iter()
            .map(|mut c| {
                if let Some(m) = c.as_object_mut() {
                    m.remove("t");
                }
                c
            })
            .collect()
    };
    assert_eq!(calls(&served), calls(&direct));
    assert_eq!(served.services(), direct.services());
    assert_eq!(served.state()["registered"], direct.state()["registered"]);
}

/// A caller that kills a call (the agent's deadline) ends it: the server's
/// child for it does not go on and change the state later.
#[test]
fn a_killed_call_does_not_finish_in_the_server() {
    let world = World::new("node1");
    world.set_rules(json!([
        {"match": ["service", "nfsd", "onestart"], "action": "delay", "seconds": 1.0}
    ]));
    let mut child = Command::new(world.tools.join("service"))
        .args(["nfsd", "onestart"])
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Logged before the delay: the call is under way.
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.calls().is_empty() {
        assert!(Instant::now() < deadline, "the call never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(world.services().is_empty(), "{:?}", world.services());
}

/// A served call that hangs on a gone NFS server freezes the process its
/// caller spawned (the client), so that SIGKILL waits until `umount -N`,
/// as for a process in uninterruptible NFS I/O.
#[cfg(target_os = "linux")]
#[test]
fn a_served_hang_freezes_the_process_the_caller_spawned() {
    if !standins::require_freezer() {
        return;
    }
    let world = World::new("node2");
    let target = world.workdir.join("jails-data");
    let target = target.to_str().unwrap();
    world.set_state(
        "mounts",
        json!([{"source": "198.18.0.100:/store/jails-data", "target": target,
                "type": "nfs", "options": "nfsv4", "server": null}]),
    );
    world.server_gone("198.18.0.100");
    let mut child = Command::new(world.tools.join("df"))
        .args(["-k", &format!("{target}/x")])
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let frozen = || {
        std::fs::read_to_string(&status)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("D"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !frozen() {
        assert!(
            Instant::now() < deadline,
            "the spawned process was never frozen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGKILL ended a process frozen on a gone server"
    );
    let (code, err) = world.run_tool("umount", &["-N", target]);
    assert_eq!(code, Some(0), "{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "still frozen after umount -N");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(world.lenient_hangs(), 0);
}

// ---- NFSv4 server state across a server change (standin.py "NFSv4 server
// state"): the client's file handles and state survive another server
// only with the same file system and the client in the stable restart
// records nfsd read at its start.

/// The VIP every client mounts from in these tests.
const VIP: &str = "198.18.0.100";

/// Where nfsd's stable restart records live on the shared storage (the
/// agent's `nfs.stable_restart_dir`), under `store`.
fn shared_records(store: &std::path::Path) -> std::path::PathBuf {
    store.join(".nfs-stablerestart")
}

/// The storage every server node holds (/store), with dir.id.
fn shared_store() -> tempfile::TempDir {
    let store = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(store.path().join("jails-data")).unwrap();
    std::fs::write(store.path().join("jails-data/dir.id"), "c0ffee-cluster\n").unwrap();
    store
}

/// How a server node holds the store it exports.
#[derive(Clone, Copy, PartialEq)]
enum Holds {
    /// UFS on the HAST provider: the same file system on every node.
    Hast,
    /// Nothing mounted: the node's own root file system.
    Local,
    /// A dataset of pool `tank` mounted there: its guid moves with the pool.
    Zfs,
    /// A nullfs mount of another directory: a new fsid at every mount.
    Nullfs,
}

/// Server `node` serving `store` (the same path on every node, as /store
/// is): `holds` decides the file system under it; with `shared`, its
/// /var/db/nfs-stablerestart is a link into the storage (the agent's
/// LinkStableRestart), else nfsd's local file. nfsd started last.
fn serving(node: &str, store: &std::path::Path, holds: Holds, shared: bool) -> World {
    let mut world = World::new(node);
    world.store = store.to_path_buf();
    if holds == Holds::Hast {
        std::fs::create_dir_all(&world.hast_dev).unwrap();
        let device = world.hast_dev.join("cbsd");
        std::fs::write(&device, "").unwrap();
        let (code, err) = world.run_tool(
            "mount",
            &[device.to_str().unwrap(), store.to_str().unwrap()],
        );
        assert_eq!(code, Some(0), "{err}");
    }
    if holds == Holds::Zfs {
        world.set_state(
            "pools",
            json!({"tank": {"imported": true, "mounted": true, "mountpoint": store}}),
        );
    }
    if holds == Holds::Nullfs {
        world.set_state(
            "mounts",
            json!([{"source": "/elsewhere", "target": store, "type": "nullfs", "t": 1.0}]),
        );
    }
    if shared {
        let dir = shared_records(store);
        std::fs::create_dir_all(&dir).unwrap();
        let var_db = world.dir.path().join("var/db");
        std::fs::create_dir_all(&var_db).unwrap();
        std::os::unix::fs::symlink(
            dir.join("nfs-stablerestart"),
            var_db.join("nfs-stablerestart"),
        )
        .unwrap();
    }
    std::fs::write(
        &world.exports,
        format!(
            "V4: / -network 198.18.0.0/24\n{} -network 198.18.0.0/24\n",
            store.join("jails-data").display()
        ),
    )
    .unwrap();
    for service in ["mountd", "nfsd"] {
        let (code, err) = world.run_tool("service", &[service, "onestart"]);
        assert_eq!(code, Some(0), "{err}");
    }
    world
}

/// The client node3 of `master`, with VIP:/store/jails-data mounted on
/// its workdir's jails-data; returns it and the path it reads.
fn client_of(master: &World) -> (World, String) {
    let client = World::follower_of("node3", master, "198.18.0.13");
    let target = client.workdir.join("jails-data");
    let source = format!("{VIP}:{}", master.store.join("jails-data").display());
    let (code, err) = client.run_tool(
        "mount_nfs",
        &["-o", "nfsv4,retrycnt=1", &source, target.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");
    (client, target.join("dir.id").to_str().unwrap().to_owned())
}

/// The VIP moves: `old` stops serving, `new` answers for it from now on.
fn master_moves(client: &World, old: &World, new: &World) {
    let (code, err) = old.run_tool("service", &["nfsd", "onestop"]);
    assert_eq!(code, Some(0), "{err}");
    client.set_standin("server", json!({"node": new.node, "state": new.state}));
}

/// The client's NFS mount record.
fn nfs_mount(client: &World) -> serde_json::Value {
    client.state()["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "nfs")
        .cloned()
        .unwrap()
}

#[test]
fn a_new_server_with_the_same_file_system_and_shared_records_lets_the_client_reclaim() {
    let store = shared_store();
    let old = serving("node1", store.path(), Holds::Hast, true);
    let store = store.path();
    let (client, path) = client_of(&old);
    // The client's record went to the storage through old's link.
    let records = std::fs::read_to_string(shared_records(store).join("nfs-stablerestart")).unwrap();
    assert!(records.contains("\"node3\""), "{records}");
    let new = serving("node2", store, Holds::Hast, true);
    master_moves(&client, &old, &new);
    let (code, err) = client.run_tool("lab-nfs-access", &[&path]);
    assert_eq!(code, Some(0), "{err}");
    let mount = nfs_mount(&client);
    assert_eq!(mount["serving"], "node2", "{mount}");
    assert_eq!(mount["server"], "node1", "mounted from node1: {mount}");
    assert!(mount.get("lost_state").is_none(), "{mount}");
    assert!(client.state().get("nfs_state_lost").is_none());
    assert_eq!(new.state()["nfsd_stable"]["clients"], json!(["node3"]));
}

#[test]
fn a_new_server_exporting_another_file_system_answers_stale() {
    let store = shared_store();
    let old = serving("node1", store.path(), Holds::Hast, true);
    let store = store.path();
    let (client, path) = client_of(&old);
    // Same path, same records, but the store is the new node's own
    // directory: another fsid in every file handle.
    let new = serving("node2", store, Holds::Local, true);
    master_moves(&client, &old, &new);
    let (code, err) = client.run_tool("lab-nfs-access", &[&path]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Stale NFS file handle"), "{err}");
    let (code, err) = client.run_tool("df", &["-k", &path]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Stale NFS file handle"), "{err}");
}

/// The same for a ZFS dataset (its guid moves with the pool), and the
/// opposite for a nullfs mount of the same directory (a fresh fsid on
/// each node).
#[test]
fn a_zfs_dataset_keeps_the_handles_and_a_nullfs_mount_does_not() {
    for (holds, want) in [(Holds::Zfs, Some(0)), (Holds::Nullfs, Some(1))] {
        let store = shared_store();
        let old = serving("node1", store.path(), holds, true);
        let (client, path) = client_of(&old);
        let new = serving("node2", store.path(), holds, true);
        master_moves(&client, &old, &new);
        let (code, err) = client.run_tool("lab-nfs-access", &[&path]);
        assert_eq!(code, want, "{err}");
    }
}

#[test]
fn a_new_server_without_the_clients_record_loses_its_state_silently() {
    let store = shared_store();
    let old = serving("node1", store.path(), Holds::Hast, false);
    let store = store.path();
    let (client, path) = client_of(&old);
    // The same file system, but nfsd's local records: the client is in
    // old's file only, so the reclaim gets NFSERR_NOGRACE.
    let new = serving("node2", store, Holds::Hast, false);
    assert_eq!(new.state()["nfsd_stable"]["clients"], json!([]));
    master_moves(&client, &old, &new);
    // I/O goes on with the special stateid: nothing the caller sees.
    let (code, err) = client.run_tool("lab-nfs-access", &[&path]);
    assert_eq!(code, Some(0), "{err}");
    let mount = nfs_mount(&client);
    assert_eq!(mount["lost_state"]["server"], "node2", "{mount}");
    let lost = client.state()["nfs_state_lost"].clone();
    assert_eq!(lost.as_array().map(Vec::len), Some(1), "{lost}");
    // Noted once: the mount now talks to the new instance.
    let (code, _) = client.run_tool("df", &["-k", &path]);
    assert_eq!(code, Some(0));
    assert_eq!(
        client.state()["nfs_state_lost"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn nfsd_exits_at_start_when_its_link_leads_nowhere() {
    let world = World::new("node1");
    let var_db = world.dir.path().join("var/db");
    std::fs::create_dir_all(&var_db).unwrap();
    // The storage that holds the records is not mounted.
    std::os::unix::fs::symlink(
        world.store.join("not-mounted/nfs-stablerestart"),
        var_db.join("nfs-stablerestart"),
    )
    .unwrap();
    let (code, err) = world.run_tool("service", &["nfsd", "onestart"]);
    assert_eq!(code, Some(0), "rc.subr sees the daemon start: {err}");
    assert!(!world.services().contains(&"nfsd".to_owned()));
    assert!(
        world
            .syslog()
            .iter()
            .any(|m| m == "Can't open /var/db/nfs-stablerestart"),
        "{:?}",
        world.syslog()
    );
}

/// A hard mount's caller hangs while nobody serves the address and goes
/// on when a server answers again (the RPC is retried), getting what the
/// new server answers: here the state was reclaimed.
#[cfg(target_os = "linux")]
#[test]
fn a_hang_on_a_gone_server_ends_when_a_server_answers_again() {
    hang_until_a_server_answers(true);
}

/// The same, the tool run as `standin.py` itself (no server: the
/// process freezes itself, and a watcher it forked first looks).
#[cfg(target_os = "linux")]
#[test]
fn a_direct_hang_on_a_gone_server_ends_when_a_server_answers_again() {
    hang_until_a_server_answers(false);
}

#[cfg(target_os = "linux")]
fn hang_until_a_server_answers(served: bool) {
    if !standins::require_freezer() {
        return;
    }
    let store = shared_store();
    let old = serving("node1", store.path(), Holds::Hast, true);
    let store = store.path();
    let (client, path) = client_of(&old);
    if !served {
        std::fs::remove_file(client.tools.join("standin.sock")).unwrap();
    }
    let (code, err) = old.run_tool("service", &["nfsd", "onestop"]);
    assert_eq!(code, Some(0), "{err}");
    let mut child = Command::new(client.tools.join("df"))
        .args(["-k", &path])
        .current_dir("/")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let frozen = || {
        std::fs::read_to_string(&status)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("D"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !frozen() {
        assert!(Instant::now() < deadline, "df never hung");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Still hung a while later: nobody answers yet.
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none());
    let new = serving("node2", store, Holds::Hast, true);
    client.set_standin("server", json!({"node": new.node, "state": new.state}));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still hung after the server returned"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains(VIP), "{out}");
    assert_eq!(nfs_mount(&client)["serving"], "node2");
    assert_eq!(client.lenient_hangs(), 0);
}
