//! The fault table (`rcbsd-lab --scenario faults`, docs/faults.md),
//! one test per fault: the same harness and the same checks as the lab
//! scenario (`rcbsd_lab::faults`). Each fault builds a fresh
//! three-node CBSD cluster in namespaces of its own, with quorum,
//! placement, the FreeBSD tool stand-ins and a fake watchdog per node, and
//! fails with the cluster's view, the holder log and every agent's log if
//! what it checks does not hold or two nodes ever held one resource at
//! once.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use rcbsd_lab::cancel::Cancel;
use rcbsd_lab::faults;

fn fault(name: &str) {
    if !common::require_root() {
        return;
    }
    let fault = faults::find(name).unwrap_or_else(|| panic!("no fault {name}"));
    let result = faults::run_one(fault, &common::agent(), &Cancel::never());
    eprintln!("FAULTS: {}", faults::line(&result));
    assert!(
        result.passed,
        "{}\n{}",
        faults::line(&result),
        result.detail
    );
}

#[test]
fn every_fault_of_the_table_has_a_test_here() {
    let here = [
        "master-isolated",
        "master-killed-restart",
        "state-dir-lost",
        "stop-fails-during-move",
        "step-outlives-lease",
        "lease-mismatch",
        "demote-keeps-failing",
        "agent-frozen-watchdog",
        "all-isolated",
        "loss-20pct",
        "wrong-key",
        "follower-cut-off",
        "nfsd-dies-on-master",
        "nfsd-keeps-dying",
        "vip-removed-by-hand",
        "follower-mount-hangs",
        "track-script-fails",
        "storage-degraded",
        "master-killed-followers-ride-through",
        "ride-through-fallback",
    ];
    assert_eq!(faults::names(), here);
}

#[test]
fn master_isolated() {
    fault("master-isolated");
}

#[test]
fn master_killed_restart() {
    fault("master-killed-restart");
}

#[test]
fn state_dir_lost() {
    fault("state-dir-lost");
}

#[test]
fn stop_fails_during_move() {
    fault("stop-fails-during-move");
}

#[test]
fn step_outlives_lease() {
    fault("step-outlives-lease");
}

#[test]
fn lease_mismatch() {
    fault("lease-mismatch");
}

#[test]
fn demote_keeps_failing() {
    fault("demote-keeps-failing");
}

#[test]
fn agent_frozen_watchdog() {
    fault("agent-frozen-watchdog");
}

#[test]
fn all_isolated() {
    fault("all-isolated");
}

#[test]
fn loss_20pct() {
    fault("loss-20pct");
}

#[test]
fn wrong_key() {
    fault("wrong-key");
}

#[test]
fn follower_cut_off() {
    fault("follower-cut-off");
}

#[test]
fn nfsd_dies_on_master() {
    fault("nfsd-dies-on-master");
}

#[test]
fn nfsd_keeps_dying() {
    fault("nfsd-keeps-dying");
}

#[test]
fn vip_removed_by_hand() {
    fault("vip-removed-by-hand");
}

#[test]
fn follower_mount_hangs() {
    fault("follower-mount-hangs");
}

#[test]
fn track_script_fails() {
    fault("track-script-fails");
}

#[test]
fn storage_degraded() {
    fault("storage-degraded");
}

#[test]
fn master_killed_followers_ride_through() {
    fault("master-killed-followers-ride-through");
}

#[test]
fn ride_through_fallback() {
    fault("ride-through-fallback");
}
