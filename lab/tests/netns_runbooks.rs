//! Network tests of the runbooks: three real agents in namespaces run the
//! full promote / demote / follow against the FreeBSD tool stand-ins
//! (`lab/standins/standin.py`, one world per node under the run
//! directory; see `rcbsd_lab::cbsd`). Node n1 and n2 are HAST
//! master candidates, n3 is follower-only; n1 runs jail web1, n2 web2, n3
//! web3 and the bhyve VM vm1. The stand-in `mount_nfs` mounts from the VIP
//! only when the node holding it runs nfsd and exports the dir, so a
//! follower that mounts too early fails and retries, as on FreeBSD.
//!
//! No assertion is about speed: waits poll with generous timeouts (the
//! stand-ins are Python processes, slow on a busy machine).

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::{field, require_root, start_steady, ClusterBuilder};
use rcbsd_failover::wire::VrrpState;
use rcbsd_lab::cbsd::state::double_runs;
use serde_json::json;

/// Long enough for a promote plus a follow with retries on a loaded
/// two-core machine (each stand-in call is a Python start).
const CONVERGE: Duration = Duration::from_secs(120);

#[test]
fn steady_state_one_node_serves_the_others_mount_and_run_their_environments() {
    if !require_root() {
        return;
    }
    let cluster = start_steady(CONVERGE);
    // The converged check covers: only n1 holds the VIP, runs nfsd, exports
    // every dir and is HAST primary; n2, n3 mount every dir from the VIP;
    // each node runs exactly its environments. Spot-check it independently.
    let master = cluster.standin_state(0);
    assert!(master.runs_nfsd() && master.hast_primary(), "{master:?}");
    for i in [1, 2] {
        let state = cluster.standin_state(i);
        assert!(!state.runs_nfsd() && !state.hast_primary(), "{state:?}");
        assert_eq!(
            state.nfs_mounts_from(cluster.cbsd(i).1, common::VIP).len(),
            4
        );
    }
    assert_eq!(
        cluster.standin_state(2).running_set(),
        ["vm1".to_owned(), "web3".to_owned()].into()
    );
    // The follower-only node takes part in the election but never with a
    // priority that could make it master.
    let n3 = cluster.status(2);
    assert_eq!(n3.state, VrrpState::Backup);
    assert_eq!(n3.effective_priority, 0, "{n3:?}");
    assert!(
        n3.follower_only,
        "status must say n3 is follower-only: {n3:?}"
    );
    assert!(double_runs(&cluster.env_log()).is_empty());
}

#[test]
fn master_link_cut_next_candidate_promotes_and_no_environment_runs_twice() {
    if !require_root() {
        return;
    }
    let cluster = start_steady(CONVERGE);
    cluster.topology.cut_link(0).expect("cut link");
    cluster.wait_converged(&[1, 2], 1, CONVERGE);
    // The cut master lost carrier: it released what it held (it cannot
    // serve anyone any more).
    cluster.wait_until("n1 released nfsd and the storage", CONVERGE, |c| {
        let s = c.standin_state(0);
        !s.runs_nfsd() && !s.hast_primary()
    });
    let log = cluster.env_log();
    assert!(
        log.iter()
            .any(|e| e.node == "n3" && e.env == "vm1" && e.event == "stop"),
        "n3 stopped its environments before remounting: {log:?}"
    );
    let doubles = double_runs(&log);
    assert!(doubles.is_empty(), "{doubles:?}");
    let promoted = cluster.events(1, "runbook_finished");
    assert!(
        promoted.iter().any(|e| field(e, "runbook") == "promote"),
        "{promoted:?}"
    );
}

/// A promote failing at `failed_step` on n1 (the first would-be master):
/// n1 undoes, enters fault, and n2 becomes master for n3.
fn promote_failure_faults_and_the_next_candidate_takes_over(
    rule: serde_json::Value,
    failed_step: &str,
) {
    let mut cluster = ClusterBuilder::new(3).cbsd().prepare();
    cluster.set_rules(0, json!([rule]));
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.wait_converged(&[1, 2], 1, CONVERGE);
    // The fault event, not the current state: the fault clears after
    // `fault_hold_off`, which a loaded machine's convergence can outlast.
    cluster.wait_until("n1 entered fault", CONVERGE, |c| {
        c.events(0, "state_change")
            .iter()
            .any(|e| field(e, "to") == "fault")
    });
    let failed = cluster.events(0, "runbook_failed");
    assert!(
        failed
            .iter()
            .any(|e| field(e, "runbook") == "promote" && field(e, "step") == failed_step),
        "{failed:?}"
    );
    // Undone: n1 serves nothing and holds no storage.
    let n1 = cluster.standin_state(0);
    assert!(!n1.runs_nfsd() && !n1.hast_primary(), "{n1:?}");
    assert!(!cluster.vip_holders().contains(&0));
    assert!(double_runs(&cluster.env_log()).is_empty());
}

#[test]
fn nfsd_failing_to_start_puts_the_node_in_fault_and_another_takes_over() {
    if !require_root() {
        return;
    }
    promote_failure_faults_and_the_next_candidate_takes_over(
        json!({"match": ["service", "nfsd", "onestart"], "action": "fail"}),
        "start nfsd",
    );
}

#[test]
fn hast_role_primary_failing_puts_the_node_in_fault() {
    if !require_root() {
        return;
    }
    promote_failure_faults_and_the_next_candidate_takes_over(
        json!({"match": ["hastctl", "role", "primary"], "action": "fail"}),
        "hast role primary",
    );
}

#[test]
fn mount_nfs_hanging_times_out_alerts_keeps_environments_stopped_then_recovers() {
    if !require_root() {
        return;
    }
    let mut cluster = ClusterBuilder::new(3)
        .cbsd()
        .cbsd_node(2, |c| {
            c.timings.runbook.mount_timeout = Duration::from_secs(1);
            c.timings.runbook.mount_attempts = 2;
        })
        .prepare();
    cluster.set_rules(2, json!([{"match": ["mount_nfs"], "action": "hang"}]));
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.wait_converged(&[0, 1], 0, CONVERGE);
    cluster.wait_until("n3 alerts: follow failed", CONVERGE, |c| {
        c.events(2, "runbook_failed")
            .iter()
            .any(|e| field(e, "runbook") == "follow")
    });
    let timeouts: Vec<serde_json::Value> = cluster
        .events(2, "runbook_step")
        .into_iter()
        .filter(|e| field(e, "outcome") == "timeout")
        .collect();
    assert!(
        timeouts.len() >= 2,
        "each attempt timed out and was retried: {timeouts:?}"
    );
    let n3 = cluster.standin_state(2);
    assert!(n3.running.is_empty(), "environments stay stopped: {n3:?}");
    assert!(
        !cluster.env_log().iter().any(|e| e.node == "n3"),
        "n3 never started anything"
    );
    // The hang goes away: the follow is retried and succeeds.
    cluster.set_rules(2, json!([]));
    cluster.wait_converged(&[0, 1, 2], 0, CONVERGE);
}
