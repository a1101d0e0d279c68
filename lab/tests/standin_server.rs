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
