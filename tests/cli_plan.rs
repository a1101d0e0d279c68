//! `rcbsd-failover plan` as an operator runs it: FreeBSD's commands by
//! default, whatever system it runs on, `--os linux` for the test
//! platform, and plain words when a runbook has nothing to do.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn plan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcbsd-failover"))
        .arg("plan")
        .args(args)
        .output()
        .expect("run rcbsd-failover")
}

fn example(name: &str) -> String {
    format!("{}/contrib/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn text(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn plan_prints_freebsd_commands_by_default_on_any_system() {
    let out = text(&plan(&["promote", "-c", &example("rcbsd-failover.toml")]));
    let header = out.lines().next().unwrap();
    assert!(header.ends_with(", as run on FreeBSD"), "{header}");
    assert!(
        out.contains("/sbin/ifconfig em0 inet 192.168.10.200/32 alias"),
        "{out}"
    );
    assert!(!out.contains("/sbin/ip "), "{out}");
    let demote = text(&plan(&["demote", "-c", &example("rcbsd-failover.toml")]));
    assert!(
        demote.contains("/sbin/ifconfig em0 inet 192.168.10.200 -alias"),
        "{demote}"
    );
}

#[test]
fn plan_os_linux_prints_the_test_platform_commands() {
    let out = text(&plan(&[
        "promote",
        "--os",
        "linux",
        "-c",
        &example("rcbsd-failover.toml"),
    ]));
    assert!(
        out.lines().next().unwrap().ends_with(", as run on Linux"),
        "{out}"
    );
    assert!(
        out.contains("/sbin/ip -4 addr add 192.168.10.200/24 dev em0"),
        "{out}"
    );
    let refused = plan(&["promote", "--os", "solaris"]);
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn plan_promote_on_a_follower_only_node_says_it_is_never_master() {
    let out = text(&plan(&["promote", "-c", &example("follower-only.toml")]));
    assert!(
        out.contains("# nothing to do: node node3 is never master"),
        "{out}"
    );
    assert!(!out.contains("add vip"), "{out}");
}

#[test]
fn an_empty_plan_says_nothing_to_do() {
    let out = text(&plan(&["follow", "-c", &example("minimal.toml")]));
    assert!(out.contains("# nothing to do"), "{out}");
}
