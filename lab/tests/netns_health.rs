//! Health between transitions (issue 12) with real agents in namespaces
//! and the FreeBSD tool stand-ins: what dies on a master while the election
//! still sees a healthy node is found by the checks and repaired with the
//! promote runbook's own steps, and the node stays master.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{field, require_root, start_steady, Cluster};
use rcbsd_failover::wire::VrrpState;

/// Long enough for a converged cluster, the default checks (every 5 s,
/// three failures in a row) and a repair on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(120);

fn repaired(cluster: &Cluster, index: usize, check: &str) -> bool {
    cluster
        .events(index, "repair_succeeded")
        .iter()
        .any(|e| field(e, "check") == check)
}

/// The stand-ins' state of node `index`, edited as a tool call would
/// (under the same lock): a jail that dies behind the agent's back. (A
/// daemon dies through `cbsd::world::kill_service`, which the holder log
/// sees; no holder log is kept here.)
fn edit_standin_state(cluster: &Cluster, index: usize, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = &cluster.cbsd(index).1.state;
    let lock_path = format!("{}.lock", path.display());
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&lock_path)
        .unwrap();
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut state);
    std::fs::write(path, serde_json::to_vec(&state).unwrap()).unwrap();
}

#[test]
fn a_dead_nfsd_on_the_master_is_restarted_and_the_node_stays_master() {
    if !require_root() {
        return;
    }
    let cluster = start_steady(CONVERGE);
    // nfsd dies: rc.subr's onestatus now says "nfsd is not running.".
    rcbsd_lab::cbsd::world::kill_service(cluster.ns(0), cluster.cbsd(0).1, "nfsd").unwrap();
    assert!(!cluster.standin_state(0).runs_nfsd());
    // Two checks see it: `service nfsd` (onestatus) and `nfsd listening`
    // (sockstat); whichever reaches `fall` first repairs.
    let nfsd_checks = ["service nfsd", "nfsd listening"];
    cluster.wait_until("n1 repaired nfsd", CONVERGE, |c| {
        nfsd_checks.iter().any(|check| repaired(c, 0, check))
    });
    let failed = cluster.events(0, "health_check_failed");
    assert!(
        failed
            .iter()
            .any(|e| nfsd_checks.contains(&field(e, "check")) && field(e, "response") == "repair"),
        "{failed:?}"
    );
    let started = cluster.events(0, "repair_started");
    assert!(
        started
            .iter()
            .any(|e| nfsd_checks.contains(&field(e, "check"))
                && field(e, "repair")
                    .split(", ")
                    .any(|step| step == "start nfsd")),
        "{started:?}"
    );
    assert!(cluster.standin_state(0).runs_nfsd());
    // The repair ran `service nfsd onestart`, as the promote does.
    let n1 = cluster.status(0);
    assert_eq!(n1.state, VrrpState::Master, "{n1:?}");
    assert!(cluster.events(0, "resigned_unhealthy").is_empty());
    let listed = n1.health.iter().find(|h| h.check == "service nfsd");
    assert!(listed.is_some(), "status lists the checks: {:?}", n1.health);
}

#[test]
fn a_vip_removed_by_hand_is_added_again_with_an_arp_burst() {
    if !require_root() {
        return;
    }
    let cluster = start_steady(CONVERGE);
    let vip = format!("{}/24", common::VIP);
    let removed = std::process::Command::new("ip")
        .args(["-n", cluster.ns(0), "addr", "del", &vip, "dev", "eth0"])
        .status()
        .unwrap();
    assert!(removed.success());
    cluster.wait_until("n1 re-added the VIP", CONVERGE, |c| repaired(c, 0, "vip"));
    assert_eq!(cluster.vip_holders(), [0]);
    let started = cluster.events(0, "repair_started");
    assert!(
        started
            .iter()
            .any(|e| field(e, "check") == "vip" && field(e, "repair") == "add vip, arp burst"),
        "{started:?}"
    );
    assert_eq!(cluster.status(0).state, VrrpState::Master);
}

/// `env hold` (issue 12): with `restart_policy = "on-failure"`, a placed
/// environment that dies on a follower is started again, while one the
/// operator holds is left stopped, said once, and never alerted.
#[test]
fn a_held_environment_that_dies_is_not_restarted_while_an_unheld_one_is() {
    if !require_root() {
        return;
    }
    let mut cluster = common::ClusterBuilder::new(3).cbsd().quorum().prepare();
    for index in 0..cluster.len() {
        let path = cluster.agents.get(index).unwrap().config_path.clone();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(
            "\n[health]\ninterval = \"1s\"\nrestart_policy = \"on-failure\"\nmax_restarts = 3\nrestart_window = \"600s\"\n",
        );
        std::fs::write(&path, text).unwrap();
    }
    for index in 0..cluster.len() {
        cluster.start(index);
    }
    // web2 runs first on node 1, web3 on node 2 (ClusterBuilder::quorum).
    let running =
        |c: &Cluster, index: usize, env: &str| c.standin_state(index).running_set().contains(env);
    cluster.wait_until("web2 on n2 and web3 on n3, checked", CONVERGE, |c| {
        running(c, 1, "web2")
            && running(c, 2, "web3")
            && c.status(1)
                .health
                .iter()
                .any(|h| h.check == "environment web2")
            && c.status(2)
                .health
                .iter()
                .any(|h| h.check == "environment web3")
    });
    let hold = |c: &Cluster| {
        c.request(
            1,
            rcbsd_failover::control::protocol::Request::Hold {
                environment: "web2".into(),
            },
        )
    };
    let response = hold(&cluster);
    assert!(response.ok, "{response:?}");
    let again = hold(&cluster);
    assert!(
        again.ok
            && again
                .changed
                .as_deref()
                .unwrap_or("")
                .contains("already held"),
        "{again:?}"
    );
    let unknown = cluster.request(
        1,
        rcbsd_failover::control::protocol::Request::Hold {
            environment: "nosuch".into(),
        },
    );
    assert!(!unknown.ok, "{unknown:?}");
    // Both die behind the agents' backs (as `jail -r` would).
    edit_standin_state(&cluster, 1, |state| {
        if let Some(running) = state.get_mut("running").and_then(|r| r.as_object_mut()) {
            running.remove("web2");
        }
    });
    edit_standin_state(&cluster, 2, |state| {
        if let Some(running) = state.get_mut("running").and_then(|r| r.as_object_mut()) {
            running.remove("web3");
        }
    });
    cluster.wait_until("n3 restarted web3", CONVERGE, |c| {
        repaired(c, 2, "environment web3")
    });
    cluster.wait_until("n2 found held web2 stopped", CONVERGE, |c| {
        c.events(1, "held_not_started")
            .iter()
            .any(|e| field(e, "environment") == "web2" && field(e, "by") == "health")
    });
    assert!(running(&cluster, 2, "web3"));
    // Several more check intervals: still stopped, said once, no alert.
    let runs = |c: &Cluster| {
        c.status(1)
            .health
            .iter()
            .find(|h| h.check == "environment web2")
            .map_or(0, |h| h.runs)
    };
    let seen = runs(&cluster);
    cluster.wait_until("n2 checked web2 five more times", CONVERGE, |c| {
        runs(c) >= seen + 5
    });
    assert!(
        !running(&cluster, 1, "web2"),
        "a held environment was started"
    );
    let n2 = cluster.status(1);
    let check = n2
        .health
        .iter()
        .find(|h| h.check == "environment web2")
        .unwrap();
    assert!(
        check.held && !check.good && check.restarts == 0,
        "{check:?}"
    );
    assert_eq!(n2.held.len(), 1, "{:?}", n2.held);
    assert_eq!(cluster.events(1, "held_not_started").len(), 1);
    for event in ["environment_died", "health_check_failed", "repair_started"] {
        assert!(
            cluster
                .events(1, event)
                .iter()
                .all(|e| field(e, "environment") != "web2"
                    && field(e, "check") != "environment web2"),
            "{event} for a held environment"
        );
    }
    let n3 = cluster.status(2);
    let web3 = n3
        .health
        .iter()
        .find(|h| h.check == "environment web3")
        .unwrap();
    assert!(web3.restarts >= 1 && web3.failures >= 1, "{web3:?}");
}
