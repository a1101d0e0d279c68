//! `rcbsd-failover doctor -c CONFIG` as an operator runs it, against the
//! stand-ins of the FreeBSD tools (`lab/standins/`): a node set up as
//! the docs say passes every check, a misconfigured one gets a FAIL line
//! with the fix for each mistake and a non-zero exit status, and doctor
//! changes nothing on the node. Runs without root.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "standins/mod.rs"]
mod standins;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use standins::{tool_names, World, DIR_ID};

/// One printed line: the verdict, what was found, the fix.
#[derive(Debug)]
struct Line {
    verdict: String,
    found: String,
    fix: Option<String>,
}

struct Run {
    code: i32,
    stdout: String,
    lines: BTreeMap<String, Line>,
}

impl Run {
    fn line(&self, name: &str) -> &Line {
        self.lines
            .get(name)
            .unwrap_or_else(|| panic!("no line for {name}:\n{}", self.stdout))
    }

    /// Asserts the verdict of `name` and that what was found mentions
    /// `found`; returns its fix.
    fn expect(&self, name: &str, verdict: &str, found: &str) -> Option<&str> {
        let line = self.line(name);
        assert_eq!(line.verdict, verdict, "{name}:\n{}", self.stdout);
        assert!(
            line.found.contains(found),
            "{name} lacks {found:?}:\n{}",
            self.stdout
        );
        if verdict == "ok" {
            assert_eq!(line.fix, None, "{name}:\n{}", self.stdout);
        } else {
            assert!(line.fix.is_some(), "{name} has no fix:\n{}", self.stdout);
        }
        line.fix.as_deref()
    }
}

fn doctor(config: &Path) -> Run {
    // `rcbsd-lab agent ARGS` is `rcbsd-failover ARGS` (the same cli::main).
    let output: Output = Command::new(env!("CARGO_BIN_EXE_rcbsd-lab"))
        .args(["agent", "doctor", "-c"])
        .arg(config)
        .output()
        .expect("run rcbsd-lab agent doctor");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = BTreeMap::new();
    for text in stdout.lines().filter(|l| !l.starts_with("doctor: ")) {
        let (verdict, rest) = text.split_once(' ').unwrap_or_else(|| panic!("{text:?}"));
        let (name, rest) = rest
            .trim_start()
            .split_once(": ")
            .unwrap_or_else(|| panic!("{text:?}"));
        let (found, fix) = match rest.split_once(" -- fix: ") {
            Some((found, fix)) => (found.to_owned(), Some(fix.to_owned())),
            None => (rest.to_owned(), None),
        };
        let previous = lines.insert(
            name.to_owned(),
            Line {
                verdict: verdict.to_owned(),
                found,
                fix,
            },
        );
        assert!(previous.is_none(), "{name} printed twice:\n{stdout}");
    }
    Run {
        code: output.status.code().expect("an exit status"),
        stdout,
        lines,
    }
}

/// A node's configuration file on the world's stand-ins.
struct Node<'a> {
    world: &'a World,
    interface: &'a str,
    socket: PathBuf,
    dir_id: bool,
    /// `[storage]` and anything after it.
    rest: String,
}

impl Node<'_> {
    fn write(&self) -> PathBuf {
        let dir_id = if self.dir_id {
            format!("dir_id = \"{DIR_ID}\"\n")
        } else {
            String::new()
        };
        let text = format!(
            r#"[node]
name = "{node}"
control_socket = "{socket}"
[vrrp]
interface = "{interface}"
vrid = 51
virtual_ips = ["198.18.0.100/24"]
[cbsd]
workdir = "{workdir}"
{dir_id}{rest}
[tools]
{tools}
"#,
            node = self.world.node,
            socket = self.socket.display(),
            interface = self.interface,
            workdir = self.world.workdir.display(),
            rest = self.rest,
            tools = tool_names()
                .map(|t| format!("{t} = \"{}\"", self.world.tools.join(t).display()))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let path = self.world.dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn nfs(world: &World) -> String {
    format!(
        "[nfs]\nexport_network = \"198.18.0.0/24\"\nexports_file = \"{}\"\nremote_root = \"{}\"\n",
        world.exports.display(),
        world.store.display()
    )
}

/// CBSD's initenv has run: its nc.inventory at the top of the workdir.
fn initialise_cbsd(world: &World, zfsfeat: u8) {
    std::fs::write(
        world.workdir.join("nc.inventory"),
        format!(
            "workdir=\"{}\"\nnodename=\"{}\"\nzfsfeat=\"{zfsfeat}\"\n",
            world.workdir.display(),
            world.node
        ),
    )
    .unwrap();
}

/// A watchdog FIFO (the line protocol of src/fence/watchdog.rs) and its
/// read end, as a supervisor holds it.
fn watchdog_fifo(path: &Path) -> File {
    use nix::sys::stat::Mode;
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

/// A HAST candidate running a VM, set up as docs/operations.md says, with
/// a watchdog FIFO and its reader.
fn good_candidate(world: &World) -> (PathBuf, File) {
    let run = world.dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let fifo = world.dir.path().join("watchdog");
    let watchdog = watchdog_fifo(&fifo);
    initialise_cbsd(world, 0);
    world.set_state(
        "rc_conf",
        json!({
            "nfsv4_server_enable": "YES",
            "nfsuserd_enable": "YES",
            "cbsd_workdir": world.workdir,
            "mountd_flags": format!("-r -S {}", world.exports.display()),
        }),
    );
    let node = Node {
        world,
        interface: "lo",
        socket: run.join("rcbsd-failover.sock"),
        dir_id: true,
        rest: format!(
            "{}{}[environments]\nbhyve = [\"vm1\"]\n[fence]\nwatchdog = \"{}\"\n",
            world.storage_hast(),
            nfs(world),
            fifo.display()
        ),
    };
    (node.write(), watchdog)
}

/// Only reads: sysrc -n, sysctl -n, pkg config, a service's onestatus.
fn assert_read_only(world: &World) {
    let calls = world.argvs();
    assert!(!calls.is_empty());
    for call in &calls {
        assert!(
            call.starts_with("sysrc -n ")
                || call.starts_with("sysctl -n ")
                || call.starts_with("pkg config ")
                || call.ends_with(" onestatus"),
            "doctor ran {call:?}: {calls:#?}"
        );
    }
    let state = world.state();
    for changed in [
        "services",
        "mounts",
        "hast",
        "pools",
        "registered",
        "running",
    ] {
        let value = &state[changed];
        assert!(
            value.is_null() || *value == json!([]) || *value == json!({}),
            "doctor changed {changed}: {state}"
        );
    }
}

#[test]
fn a_node_set_up_as_documented_passes_every_check() {
    let world = World::new("node1");
    let (config, mut watchdog) = good_candidate(&world);
    let run = doctor(&config);
    assert_eq!(run.code, 0, "{}", run.stdout);
    for (name, line) in &run.lines {
        assert_eq!(line.verdict, "ok", "{name}:\n{}", run.stdout);
    }
    for name in [
        "vrrp_interface",
        "control_socket_dir",
        "watchdog",
        "watchdogd",
        "cbsd_workdir",
        "cbsd_initenv",
        "cbsd_dir_id",
        "cbsd_zfsfeat",
        "pkg_nfs_locking",
        "nfsuserd",
        "nfsv4_server",
        "nfsv4_server_only",
        "mountd_exports",
        "nfs_server_enable",
        "mountd_enable",
        "rpc_lockd_enable",
        "rpc_statd_enable",
    ] {
        run.line(name);
    }
    run.expect("watchdog", "ok", "fifo watchdog, effective timeout 2s");
    run.expect("pkg_nfs_locking", "ok", "since pkg 1.11");
    assert!(
        run.stdout
            .ends_with(&format!("doctor: {} ok, 0 warn, 0 FAIL\n", run.lines.len())),
        "{}",
        run.stdout
    );
    // Examined, never armed: not a byte (a `pat` line) was written, and
    // the writer is gone (end of file, not "would block").
    let mut written = String::new();
    watchdog.read_to_string(&mut written).unwrap();
    assert_eq!(written, "");
    assert_read_only(&world);
}

#[test]
fn a_misconfigured_zfs_candidate_fails_with_a_fix_for_each_mistake() {
    let world = World::new("node1");
    initialise_cbsd(&world, 1);
    world.set_state(
        "rc_conf",
        json!({
            // A release whose defaults lack nfsv4_server_only.
            "nfsv4_server_only": null,
            "nfs_server_enable": "YES",
            "cbsd_workdir": "/usr/jails",
        }),
    );
    // A hostid never set, and a pkg older than 1.11.
    world.set_state("hostid", json!("0x0"));
    world.set_state("pkg_config", json!({"NFS_WITH_PROPER_LOCKING": "no"}));
    let node = Node {
        world: &world,
        interface: "lo",
        socket: world.dir.path().join("rcbsd-failover.sock"),
        dir_id: false,
        rest: format!(
            "{}{}[environments]\nbhyve = [\"vm1\"]\n",
            world.storage_zfs("tank"),
            nfs(&world)
        ),
    };
    let path = node.write();
    let run = doctor(&path);
    assert_eq!(run.code, 1, "{}", run.stdout);

    let fix = run.expect("nfsv4_server", "FAIL", "cap the server at NFSv3");
    assert_eq!(fix, Some("sysrc nfsv4_server_enable=YES"));
    let fix = run.expect(
        "mountd_exports",
        "FAIL",
        &format!("mountd reads /etc/exports, not {}", world.exports.display()),
    );
    assert_eq!(
        fix.unwrap(),
        format!("sysrc mountd_flags=\"-r -S {}\"", world.exports.display())
    );
    let fix = run.expect("nfs_server_enable", "warn", "rc(8) starts it at boot");
    assert_eq!(fix, Some("sysrc nfs_server_enable=NO"));
    run.expect("mountd_enable", "ok", "mountd_enable=\"NO\"");
    run.expect("nfsv4_server_only", "ok", "nfsv4_server_only unset");
    let fix = run.expect("nfsuserd", "warn", "nfsuserd_enable=\"NO\"");
    assert_eq!(
        fix,
        Some("sysrc nfsuserd_enable=YES && service nfsuserd start")
    );
    let fix = run.expect("cbsd_workdir", "FAIL", "cbsd_workdir=\"/usr/jails\", not");
    assert_eq!(
        fix.unwrap(),
        format!("sysrc cbsd_workdir={}", world.workdir.display())
    );
    run.expect("cbsd_initenv", "ok", "initenv ran");
    run.expect("cbsd_dir_id", "warn", "dir_id is not set");
    run.expect("cbsd_zfsfeat", "FAIL", "bhyve environments (vm1)");
    let fix = run.expect("pkg_nfs_locking", "warn", "NFS_WITH_PROPER_LOCKING=no");
    assert_eq!(
        fix,
        Some("echo 'NFS_WITH_PROPER_LOCKING = true;' >> /usr/local/etc/pkg.conf")
    );
    let fix = run.expect("zfs_hostid", "FAIL", "kern.hostid=0");
    assert_eq!(fix, Some("service hostid onereset"));
    run.expect("zfs_hostid_unique", "warn", "one hostid");
    // The words of check-config, not a copy of them.
    let config = rcbsd_failover::config::load(&path).unwrap();
    let warning = config.missing_watchdog_warning().unwrap();
    assert_eq!(run.line("watchdog").verdict, "warn");
    assert_eq!(run.line("watchdog").found, warning);
    assert!(
        run.stdout.ends_with("doctor: 7 ok, 6 warn, 5 FAIL\n"),
        "{}",
        run.stdout
    );
    assert_read_only(&world);
}

#[test]
fn a_node_that_would_not_start_the_agent_fails_before_it_does() {
    let world = World::new("node3");
    // No initenv, watchdogd enabled, a key file others may read.
    world.set_state(
        "rc_conf",
        json!({"watchdogd_enable": "YES", "nfsuserd_enable": "YES", "cbsd_workdir": world.workdir}),
    );
    let key = world.dir.path().join("rcbsd-failover.key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let not_a_watchdog = world.dir.path().join("fido");
    std::fs::write(&not_a_watchdog, "").unwrap();
    let node = Node {
        world: &world,
        interface: "rcbsd-none0",
        socket: world.dir.path().join("missing/rcbsd-failover.sock"),
        dir_id: true,
        rest: format!(
            "[auth]\nkey_file = \"{}\"\n[fence]\nwatchdog = \"{}\"\n",
            key.display(),
            not_a_watchdog.display()
        ),
    };
    let run = doctor(&node.write());
    assert_eq!(run.code, 1, "{}", run.stdout);
    let fix = run.expect("vrrp_interface", "FAIL", "rcbsd-none0");
    assert_eq!(fix, Some("set vrrp.interface to one of `ifconfig -l`"));
    let missing = world.dir.path().join("missing");
    let fix = run.expect("control_socket_dir", "FAIL", "does not exist");
    assert_eq!(fix.unwrap(), format!("mkdir -p {}", missing.display()));
    // Not root's (or, run as root, readable by others): refused either way.
    run.expect("auth_key_files", "FAIL", "auth key file");
    let fix = run.expect("watchdog", "FAIL", "is a regular file, not a watchdog");
    assert_eq!(
        fix,
        Some("set [fence] watchdog to the watchdog device (FreeBSD: /dev/fido)")
    );
    let fix = run.expect("watchdogd", "FAIL", "watchdogd is enabled");
    assert_eq!(
        fix,
        Some("sysrc watchdogd_enable=NO && service watchdogd onestop")
    );
    let fix = run.expect("cbsd_initenv", "FAIL", "nc.inventory does not exist");
    assert_eq!(
        fix.unwrap(),
        format!(
            "env workdir={} /usr/local/cbsd/sudoexec/initenv",
            world.workdir.display()
        )
    );
    run.expect("cbsd_zfsfeat", "warn", "cannot tell");
    // A follower-only node: nothing of the NFS server is checked.
    assert!(!run.lines.contains_key("nfsv4_server"), "{}", run.stdout);
    assert_read_only(&world);
}

#[test]
fn warnings_alone_exit_zero_and_an_unanswered_check_is_one() {
    let world = World::new("node1");
    let (config, _watchdog) = good_candidate(&world);
    world.set_rules(json!([{
        "match": ["sysrc", "-n", "nfsuserd_enable"],
        "action": "fail",
        "exit": 2,
        "stderr": "sysrc: /etc/rc.conf: syntax error"
    }]));
    world.set_state(
        "rc_conf",
        json!({
            "nfsv4_server_enable": "YES",
            "cbsd_workdir": world.workdir,
            "mountd_flags": format!("-r -S {}", world.exports.display()),
            "rpc_statd_enable": "YES",
        }),
    );
    let run = doctor(&config);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let fix = run.expect(
        "nfsuserd",
        "warn",
        "could not be checked: exited with status 2 (sysrc: /etc/rc.conf: syntax error)",
    );
    assert_eq!(
        fix.unwrap(),
        format!(
            "run `{} -n nfsuserd_enable` by hand, and check the tool's path in [tools]",
            world.tools.join("sysrc").display()
        )
    );
    run.expect("rpc_statd_enable", "warn", "rpc_statd_enable=\"YES\"");
    assert!(run.stdout.ends_with(" 2 warn, 0 FAIL\n"), "{}", run.stdout);
}

#[test]
fn an_invalid_configuration_is_refused_as_check_config_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[vrrp]\nvrid = 0\n").unwrap();
    let run = doctor(&path);
    assert_eq!(run.code, 78, "{}", run.stdout);
    let run = doctor(&dir.path().join("missing.toml"));
    assert_eq!(run.code, 66);
}
