//! The `rcbsd-failover` binary as an operator uses it: help texts,
//! `check-config` exit codes and messages, `status` and the override
//! commands against no agent and against a fake one.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rcbsd_failover::control::protocol::{Counters, HeldStatus, Request, Response, Status};
use rcbsd_failover::control::server;
use rcbsd_failover::election::priority::Override;
use rcbsd_failover::wire::VrrpState;

const EX_NOINPUT: i32 = 66;
const EX_UNAVAILABLE: i32 = 69;
const EX_CONFIG: i32 = 78;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcbsd-failover"))
        .args(args)
        .output()
        .expect("run rcbsd-failover")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A valid config whose control socket is `socket`.
fn write_config(dir: &Path, socket: &Path) -> PathBuf {
    let path = dir.join("rcbsd-failover.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nname = \"node1\"\ncontrol_socket = \"{}\"\n\n[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.168.10.200/24\"]\n",
            socket.display()
        ),
    )
    .unwrap();
    path
}

/// `check-config` on MINIMAL plus `extra`, expecting failure.
fn check_invalid(extra: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), Path::new("/tmp/x.sock"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(extra);
    std::fs::write(&path, text).unwrap();
    let output = cli(&["check-config", "-c", path.to_str().unwrap()]);
    (
        output.status.code().unwrap(),
        stderr(&output),
        path.display().to_string(),
    )
}

#[test]
fn help_lists_every_subcommand_and_the_default_config_path() {
    let output = cli(&["--help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    for subcommand in [
        "run",
        "check-config",
        "doctor",
        "status",
        "promote",
        "demote",
        "resume",
        "move",
        "env",
        "plan",
    ] {
        assert!(
            help.contains(&format!("\n  {subcommand} ")),
            "{subcommand} missing:\n{help}"
        );
    }
    // The lab is its own program (rcbsd-lab), not part of the daemon.
    assert!(!help.contains("\n  lab "), "the daemon has a lab:\n{help}");
    for subcommand in [
        "run",
        "check-config",
        "doctor",
        "status",
        "promote",
        "demote",
        "resume",
    ] {
        let help = stdout(&cli(&[subcommand, "--help"]));
        assert!(
            help.contains("[default: /usr/local/etc/rcbsd-failover.toml]"),
            "{subcommand} --help:\n{help}"
        );
    }
}

#[test]
fn doctor_help_names_the_exit_codes() {
    let help = stdout(&cli(&["doctor", "--help"]));
    for words in [
        "0 no check FAILs",
        "1 at least one FAILs",
        "78 (EX_CONFIG)",
        "66 (EX_NOINPUT)",
    ] {
        assert!(help.contains(words), "{words:?} missing:\n{help}");
    }
}

#[test]
fn version_is_the_crate_version() {
    let output = cli(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output).trim(),
        format!("rcbsd-failover {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/examples/rcbsd-failover.toml"
    );
    let output = cli(&["check-config", "--file-only", "-c", example]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.starts_with(&format!("{example}: ok\n")), "{out}");
    assert!(out.contains("em0 vrid 51"), "{out}");
}

#[test]
fn check_config_out_of_range_priority_is_ex_config_with_position() {
    let (code, err, path) = check_invalid("priority = 0\n");
    assert_eq!(code, EX_CONFIG);
    assert!(
        err.contains(&format!("{path}:9:12: vrrp.priority: 0 is out of range")),
        "{err}"
    );
}

#[test]
fn check_config_unknown_key_is_ex_config_with_position() {
    let (code, err, path) = check_invalid("advert_int = 1\n");
    assert_eq!(code, EX_CONFIG);
    assert!(
        err.contains(&format!("{path}:9:1: vrrp.advert_int: unknown key")),
        "{err}"
    );
}

#[test]
fn check_config_wrong_type_is_ex_config_with_position() {
    let (code, err, path) = check_invalid("preempt = 1\n");
    assert_eq!(code, EX_CONFIG);
    assert!(
        err.contains(&format!(
            "{path}:9:11: vrrp.preempt: expected true or false, found an integer"
        )),
        "{err}"
    );
}

#[test]
fn check_config_syntax_error_is_ex_config_with_position() {
    let (code, err, path) = check_invalid("priority = = 5\n");
    assert_eq!(code, EX_CONFIG);
    assert!(err.contains(&format!("{path}:9:")), "{err}");
    assert!(err.contains("TOML syntax error"), "{err}");
}

#[test]
fn check_config_missing_file_is_ex_noinput() {
    let output = cli(&["check-config", "-c", "/nonexistent/rcbsd-failover.toml"]);
    assert_eq!(output.status.code(), Some(EX_NOINPUT));
    assert!(
        stderr(&output).contains("/nonexistent/rcbsd-failover.toml: cannot read the configuration")
    );
}

#[test]
fn status_without_an_agent_is_ex_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let config = write_config(dir.path(), &socket);
    let output = cli(&["status", "-c", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(EX_UNAVAILABLE));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "no agent running (socket {} not found)",
            socket.display()
        )),
        "{err}"
    );

    let output = cli(&["demote", "--socket", socket.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(EX_UNAVAILABLE));
}

#[test]
fn status_with_an_invalid_config_points_to_socket() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[vrrp]\nvrid = 0\n").unwrap();
    let output = cli(&["status", "-c", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(EX_CONFIG));
    assert!(
        stderr(&output).contains("--socket PATH"),
        "{}",
        stderr(&output)
    );
}

fn canned_status() -> Status {
    let mut counters = Counters {
        adverts_sent: 7,
        ..Counters::default()
    };
    counters.drops.insert("bad_ttl".into(), 2);
    Status {
        node: "node1".into(),
        version: "0.1.0".into(),
        pid: 1234,
        state: VrrpState::Backup,
        interface: "em0".into(),
        vrid: 51,
        family: "ipv4".into(),
        configured_priority: 100,
        effective_priority: 0,
        follower_only: false,
        master: Some("192.168.10.202".parse().unwrap()),
        vips_held: Vec::new(),
        override_: Override::Demote,
        fault: None,
        runbook: None,
        advert_interval_ms: 1000,
        master_advert_interval_ms: 1000,
        uptime_s: 61,
        counters,
        cluster: None,
        watchdog: None,
        retained: false,
        vrrp6: None,
        handing_over: false,
        riding: None,
        health: Vec::new(),
        held: vec![HeldStatus {
            name: "web1".into(),
            since: 1_732_550_000,
        }],
    }
}

/// Serve `socket` with a fake agent on its own thread until the test ends.
fn fake_agent(socket: PathBuf) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = server::bind(&socket).unwrap();
            let (requests, mut inbox) = tokio::sync::mpsc::channel(4);
            let (_shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(server::serve(listener, requests, shutdown_rx));
            ready_tx.send(()).unwrap();
            while let Some((request, reply)) = inbox.recv().await {
                let response = match request {
                    Request::Status => Response {
                        ok: true,
                        error: None,
                        status: Some(canned_status()),
                        changed: None,
                    },
                    Request::Demote => Response {
                        ok: true,
                        error: None,
                        status: None,
                        changed: Some("override: none -> demote".into()),
                    },
                    // As the agent answers: web1 is known, anything else
                    // is not.
                    Request::Hold { environment } if environment == "web1" => Response {
                        ok: true,
                        error: None,
                        status: None,
                        changed: Some(
                            "web1 already held since 1732550000 (Unix time); nothing changed"
                                .into(),
                        ),
                    },
                    Request::Hold { environment } | Request::Release { environment } => {
                        Response::error(format!("unknown environment {environment:?}"))
                    }
                    _ => Response::error("refused by the fake agent"),
                };
                let _ = reply.send(response);
            }
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
}

#[test]
fn status_demote_and_a_refusal_against_a_fake_agent() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    fake_agent(socket.clone());
    let socket = socket.to_str().unwrap();

    let output = cli(&["status", "--socket", socket]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("state:") && text.contains("backup"), "{text}");
    assert!(
        text.contains("bad_ttl:") && text.contains("override:"),
        "{text}"
    );

    let output = cli(&["status", "--json", "--socket", socket]);
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["state"], "backup");
    assert_eq!(json["override"], "demote");
    assert_eq!(json["counters"]["drops"]["bad_ttl"], 2);

    let output = cli(&["demote", "--socket", socket]);
    assert!(output.status.success());
    assert_eq!(stdout(&output).trim(), "override: none -> demote");

    let output = cli(&["promote", "--socket", socket]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("refused by the fake agent"));
}

#[test]
fn env_hold_release_and_list_against_a_fake_agent() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    fake_agent(socket.clone());
    let socket = socket.to_str().unwrap();

    let output = cli(&["env", "hold", "web1", "--socket", socket]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("already held"),
        "{}",
        stdout(&output)
    );

    // An unknown environment: refused, exit 1, the reason on stderr.
    let output = cli(&["env", "hold", "nosuch", "--socket", socket]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown environment \"nosuch\""),
        "{}",
        stderr(&output)
    );
    let output = cli(&["env", "release", "nosuch", "--socket", socket]);
    assert_eq!(output.status.code(), Some(1));

    let output = cli(&["env", "list", "--socket", socket]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("web1  held for ") && text.contains("(since 1732550000 Unix time)"),
        "{text}"
    );
    let output = cli(&["env", "list", "--json", "--socket", socket]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["name"], "web1");
    assert_eq!(json[0]["since"], 1_732_550_000);

    let output = cli(&["status", "--socket", socket]);
    assert!(stdout(&output).contains("\nheld:"), "{}", stdout(&output));

    // No name: a usage error from the parser, nothing sent.
    let output = cli(&["env", "hold", "--socket", socket]);
    assert_eq!(output.status.code(), Some(2));
    let output = cli(&["env", "hold", "web1"]);
    assert_ne!(
        output.status.code(),
        Some(0),
        "no agent at the default socket"
    );
}

#[test]
fn help_points_to_the_installed_man_pages_not_the_source_tree() {
    let help = stdout(&cli(&["--help"]));
    assert!(help.contains("rcbsd-failover.toml(5)"), "{help}");
    assert!(!help.contains("docs/configuration.md"), "{help}");
}

#[test]
fn override_commands_help_names_the_exit_codes() {
    for subcommand in ["promote", "demote", "resume"] {
        let help = stdout(&cli(&[subcommand, "--help"]));
        for words in ["0 done", "1 the agent refused", "69 (EX_UNAVAILABLE)"] {
            assert!(
                help.contains(words),
                "{subcommand}: {words:?} missing:\n{help}"
            );
        }
    }
}

/// The three-node example with its control socket in `dir` (no agent).
fn cluster_config(dir: &Path) -> PathBuf {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/examples/cluster/node1.toml"
    );
    let text = std::fs::read_to_string(example).unwrap().replace(
        "[node]\n",
        &format!(
            "[node]\ncontrol_socket = \"{}\"\n",
            dir.join("control.sock").display()
        ),
    );
    let path = dir.join("node1.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn move_of_an_unknown_environment_says_so_without_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path());
    let config = config.to_str().unwrap();
    let output = cli(&["move", "foo", "node2", "-c", config]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("unknown environment \"foo\""), "{err}");
    assert!(err.contains("web1"), "{err}");

    let output = cli(&["move", "web1", "node3", "-c", config]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("web1 may not run on \"node3\": its nodes are node1, node2"),
        "{}",
        stderr(&output)
    );

    // A known environment and node: only then is the agent asked.
    let output = cli(&["move", "web1", "node2", "-c", config]);
    assert_eq!(output.status.code(), Some(EX_UNAVAILABLE));
}

#[test]
fn status_json_without_an_agent_prints_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let output = cli(&["status", "--json", "--socket", socket.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(EX_UNAVAILABLE));
    let reply: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["exit_status"], EX_UNAVAILABLE);
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("no agent running"),
        "{reply}"
    );
    // Without --json, standard output stays empty.
    let output = cli(&["status", "--socket", socket.to_str().unwrap()]);
    assert!(stdout(&output).is_empty());
}

/// A config for this machine: interface `lo`, the control socket in
/// `dir`, `[auth]` with the key file `key`, plus `extra`.
fn local_config(dir: &Path, interface: &str, key: &Path) -> PathBuf {
    let path = dir.join("local.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nname = \"node1\"\ncontrol_socket = \"{}\"\n\n[vrrp]\ninterface = \"{interface}\"\nvrid = 51\nvirtual_ips = [\"198.18.200.1/24\"]\n\n[auth]\nkey_file = \"{}\"\n",
            dir.join("run/control.sock").display(),
            key.display()
        ),
    )
    .unwrap();
    path
}

fn write_key(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, "0123456789abcdef0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

#[test]
fn check_config_refuses_what_run_refuses_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rcbsd.key");
    let config = local_config(dir.path(), "lo", &key);
    let config = config.to_str().unwrap();

    // No key file: run exits 78, so does check-config; --file-only does not look.
    let output = cli(&["check-config", "-c", config]);
    assert_eq!(output.status.code(), Some(EX_CONFIG), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("on this machine: auth_key_files"), "{err}");
    assert!(err.contains("rcbsd.key"), "{err}");
    // The control socket's directory does not exist either.
    assert!(err.contains("control_socket_dir"), "{err}");
    assert!(err.contains("--file-only"), "{err}");
    let output = cli(&["check-config", "--file-only", "-c", config]);
    assert!(output.status.success(), "{}", stderr(&output));

    // A key others can read: refused, with the chmod that fixes it.
    std::fs::create_dir(dir.path().join("run")).unwrap();
    write_key(&key, 0o644);
    let output = cli(&["check-config", "-c", config]);
    assert_eq!(output.status.code(), Some(EX_CONFIG), "{}", stderr(&output));
    let err = stderr(&output);
    if is_root() {
        assert!(
            err.contains(&format!("chmod 600 {}", key.display())),
            "{err}"
        );
    }
    assert!(!err.contains("control_socket_dir"), "{err}");

    // As the agent wants it (root's, mode 0600): ok, and it says what it checked.
    write_key(&key, 0o600);
    let output = cli(&["check-config", "-c", config]);
    if is_root() {
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).contains("checked on this machine too"));
    } else {
        // Not root: the file is not root's, which the agent refuses too.
        assert_eq!(output.status.code(), Some(EX_CONFIG));
    }
}

#[test]
fn check_config_on_the_node_finds_a_missing_interface() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("run")).unwrap();
    let key = dir.path().join("rcbsd.key");
    write_key(&key, 0o600);
    let config = local_config(dir.path(), "rcbsdnone9", &key);
    let config = config.to_str().unwrap();
    let output = cli(&["check-config", "-c", config]);
    let err = stderr(&output);
    assert!(err.contains("on this machine: vrrp_interface"), "{err}");
    assert!(err.contains("\"rcbsdnone9\" not found"), "{err}");
    if is_root() {
        assert_eq!(output.status.code(), Some(EX_UNAVAILABLE), "{err}");
    }
    let output = cli(&["check-config", "--file-only", "-c", config]);
    assert!(output.status.success(), "{}", stderr(&output));
}
