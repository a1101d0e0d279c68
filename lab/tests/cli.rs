//! `rcbsd-lab`'s command line: its own options, and the agent it carries
//! (`rcbsd-lab agent ARGS` is `rcbsd-failover ARGS`).

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcbsd-lab"))
        .args(args)
        .output()
        .expect("run rcbsd-lab")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn help_lists_the_scenarios_and_the_agent_option() {
    let output = lab(&["--help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    assert!(
        help.starts_with("Measure rcbsd-failover's failover"),
        "{help}"
    );
    for text in [
        "--scenario",
        "--agent-exe",
        "--compare",
        "faults",
        "cbsd",
        "flood",
        "--family",
        "ipv6",
    ] {
        assert!(help.contains(text), "{text} missing:\n{help}");
    }
    // The agent it carries is hidden: operators run rcbsd-failover.
    assert!(!help.contains("\n  agent "), "{help}");
}

#[test]
fn the_agent_subcommand_is_the_agents_command_line() {
    let output = lab(&["agent", "--help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    assert!(help.contains("Usage: rcbsd-failover"), "{help}");
    assert!(help.contains("check-config"), "{help}");
    let output = lab(&["agent", "check-config", "-c", "/nonexistent/rcbsd.toml"]);
    assert_eq!(output.status.code(), Some(66), "{output:?}");
}

#[test]
fn a_wrong_option_is_a_usage_error_that_names_it() {
    let output = lab(&["--scenario", "nope"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--scenario"), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
}

#[test]
fn ipv6_is_refused_by_the_scenarios_that_do_not_measure_it_yet() {
    // Refused before anything is built (and before the root check), with
    // the scenario named: only `vrrp` has an IPv6 topology and prober.
    for scenario in ["cbsd", "flood", "faults", "idle"] {
        let output = lab(&["--family", "ipv6", "--scenario", scenario]);
        assert_eq!(output.status.code(), Some(64), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--family ipv6"), "{stderr}");
        assert!(stderr.contains(scenario), "{stderr}");
    }
}
