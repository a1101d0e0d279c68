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

#[test]
fn a_dead_nfsd_on_the_master_is_restarted_and_the_node_stays_master() {
    if !require_root() {
        return;
    }
    let cluster = start_steady(CONVERGE);
    // nfsd dies: rc.subr's onestatus now says "nfsd is not running.".
    rcbsd_lab::cbsd::world::kill_service(cluster.ns(0), cluster.cbsd(0).1, "nfsd").unwrap();
    assert!(!cluster.standin_state(0).runs_nfsd());
    cluster.wait_until("n1 repaired nfsd", CONVERGE, |c| {
        repaired(c, 0, "service nfsd")
    });
    let failed = cluster.events(0, "health_check_failed");
    assert!(
        failed
            .iter()
            .any(|e| field(e, "check") == "service nfsd" && field(e, "response") == "repair"),
        "{failed:?}"
    );
    let started = cluster.events(0, "repair_started");
    assert!(
        started
            .iter()
            .any(|e| field(e, "check") == "service nfsd" && field(e, "repair") == "start nfsd"),
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
