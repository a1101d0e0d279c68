//! Who may use the control socket, end to end: the real CLI, run as root,
//! as a member of `node.status_group` and as a stranger, against a served
//! socket whose fake agent records every request that reaches it.
//!
//! Switching uid needs root (CI runs as root); elsewhere each test prints
//! a SKIP line and returns.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcbsd_failover::control::protocol::{Request, Response, Status};
use rcbsd_failover::control::server;

/// The traditional unprivileged account: uid and gid 65534 (`nobody`,
/// group `nogroup` on Debian and FreeBSD, `nobody` elsewhere).
const NOBODY: u32 = 65534;
/// A uid and gid no account has.
const STRANGER: u32 = 4242;

fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("RCBSD_TESTS_STRICT").is_none_or(|v| v != "1"),
        "{} would skip ({}) and RCBSD_TESTS_STRICT=1 is set (tools/test): every test must run",
        std::thread::current().name().unwrap_or("test"),
        "not root"
    );
    eprintln!(
        "\n*** SKIP {}: running the CLI as another user needs root ***\n",
        std::thread::current().name().unwrap_or("test")
    );
    false
}

/// The name of the group with gid 65534, whatever this system calls it.
fn nobody_group() -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(NOBODY))
        .unwrap()
        .expect("a group with gid 65534 (nogroup) exists")
        .name
}

/// A control socket served by a fake agent on its own thread until the
/// test ends. `seen` lists every request the agent received: a refused
/// request must never get there.
struct FakeAgent {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl FakeAgent {
    fn start(status_group: Option<&str>) -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        // Other users must reach the socket inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("control.sock");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (path, group, record) = (
            socket.clone(),
            status_group.map(str::to_owned),
            seen.clone(),
        );
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = server::bind_with_access(&path, group.as_deref()).unwrap();
                let (requests, mut inbox) = tokio::sync::mpsc::channel(4);
                let (_shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
                tokio::spawn(server::serve(listener, requests, shutdown_rx));
                ready_tx.send(()).unwrap();
                while let Some((request, reply)) = inbox.recv().await {
                    record.lock().unwrap().push(request.clone());
                    let _ = reply.send(answer(request));
                }
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        FakeAgent {
            _dir: dir,
            socket,
            seen,
        }
    }

    /// Let everyone open the socket file, as a careless `chmod` would:
    /// only the peer-credential check stands between a stranger and the
    /// agent then.
    fn widen_socket_mode(&self) {
        std::fs::set_permissions(&self.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    }

    fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// Run `rcbsd-failover COMMAND --socket ...` as `user` (`None`: as
    /// ourselves, root), with no supplementary groups.
    fn cli(&self, user: Option<(u32, u32)>, command: &str) -> Output {
        let mut cli = Command::new(env!("CARGO_BIN_EXE_rcbsd-failover"));
        cli.args([command, "--socket"]).arg(&self.socket);
        if let Some((uid, gid)) = user {
            // std drops the supplementary groups when root sets a uid.
            cli.uid(uid).gid(gid);
        }
        cli.output().unwrap()
    }
}

fn answer(request: Request) -> Response {
    match request {
        Request::Status => Response {
            ok: true,
            error: None,
            status: Some(canned_status()),
            changed: None,
        },
        other => Response {
            ok: true,
            error: None,
            status: None,
            changed: Some(format!("{other:?} done")),
        },
    }
}

/// A status as a backup would report it. Built from JSON so that fields
/// the protocol adds later with a default do not break this test.
fn canned_status() -> Status {
    serde_json::from_value(serde_json::json!({
        "node": "node1", "version": "test", "pid": 1, "state": "backup",
        "interface": "em0", "vrid": 51, "configured_priority": 100,
        "effective_priority": 100, "master": null, "vips_held": [],
        "override": "none", "fault": null, "advert_interval_ms": 1000,
        "master_advert_interval_ms": 1000, "uptime_s": 1, "counters": {
            "adverts_sent": 0, "adverts_received": 0, "transitions": 0,
            "drops": {}, "checksum_forms": {}
        }
    }))
    .expect("the canned status matches the protocol")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_refused(output: &Output, says: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let text = stderr(output);
    assert!(text.contains(says), "expected {says:?} in: {text}");
}

#[test]
fn root_may_promote_with_a_status_group_configured() {
    if !require_root() {
        return;
    }
    let agent = FakeAgent::start(Some(&nobody_group()));
    let output = agent.cli(None, "promote");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "Promote done"
    );
    assert_eq!(agent.seen(), [Request::Promote]);
}

#[test]
fn a_status_group_member_may_read_status_and_nothing_else() {
    if !require_root() {
        return;
    }
    let agent = FakeAgent::start(Some(&nobody_group()));
    let member = Some((NOBODY, NOBODY));

    let output = agent.cli(member, "status");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("node1"));

    let output = agent.cli(member, "promote");
    assert_refused(
        &output,
        &format!(
            "permission denied: promote needs root; peer uid {NOBODY} (gid {NOBODY}) is in group {}, which may only run status",
            nobody_group()
        ),
    );
    assert_refused(&agent.cli(member, "demote"), "permission denied: demote");
    assert_refused(&agent.cli(member, "resume"), "permission denied: resume");
    assert_eq!(agent.seen(), [Request::Status]);
}

#[test]
fn a_stranger_is_refused_at_connect_even_through_a_widened_mode() {
    if !require_root() {
        return;
    }
    let agent = FakeAgent::start(Some(&nobody_group()));
    agent.widen_socket_mode();
    let output = agent.cli(Some((STRANGER, STRANGER)), "status");
    assert_refused(
        &output,
        &format!(
            "permission denied: peer uid {STRANGER} (gid {STRANGER}) may not use the control socket; it needs root or membership of group {}",
            nobody_group()
        ),
    );
    assert_eq!(agent.seen(), Vec::<Request>::new());
}

#[test]
fn a_stranger_cannot_open_the_socket_file() {
    if !require_root() {
        return;
    }
    let agent = FakeAgent::start(Some(&nobody_group()));
    let output = agent.cli(Some((STRANGER, STRANGER)), "status");
    // EX_NOPERM: the file's mode 0660 stops it before the agent sees it.
    assert_eq!(output.status.code(), Some(77), "{}", stderr(&output));
    assert_eq!(agent.seen(), Vec::<Request>::new());
}

#[test]
fn without_a_status_group_only_root_gets_in() {
    if !require_root() {
        return;
    }
    let agent = FakeAgent::start(None);
    agent.widen_socket_mode();
    let output = agent.cli(Some((NOBODY, NOBODY)), "status");
    assert_refused(
        &output,
        &format!(
            "permission denied: peer uid {NOBODY} (gid {NOBODY}) may not use the control socket; it needs root"
        ),
    );
    let output = agent.cli(None, "status");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(agent.seen(), [Request::Status]);
}

#[test]
fn the_socket_file_belongs_to_the_status_group() {
    use std::os::unix::fs::MetadataExt;
    if !require_root() {
        return;
    }
    let agent = FakeAgent::start(Some(&nobody_group()));
    let meta = std::fs::metadata(&agent.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!((meta.uid(), meta.gid()), (0, NOBODY));
}
