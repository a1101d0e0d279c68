//! Quorum and leases with real agents in network namespaces: the basics.
//! (The fault suite is tests/netns_faults.rs.)

mod common;

use common::{require_root, ClusterBuilder, WAIT};

#[test]
fn a_quorate_cluster_elects_the_highest_priority_and_reports_quorum() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(3).quorum().start();
    cluster.wait_master(0, WAIT);
    let status = cluster.status(0);
    let q = status.cluster.expect("status shows the cluster");
    assert!(q.quorum, "{q:?}");
    assert_eq!(q.majority, 2);
    assert_eq!(q.heard.len(), 3, "{q:?}");
    assert!(q.master_lease_ms.is_some(), "{q:?}");
    assert_eq!(q.claims, ["master"]);
    let backup = cluster.status(1).cluster.expect("cluster status");
    assert!(backup.quorum && backup.claims.is_empty(), "{backup:?}");
}

#[test]
fn an_isolated_master_fences_itself_and_the_majority_elects_another() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(3).quorum().start();
    cluster.wait_master(0, WAIT);
    cluster.topology.split(&[&[0], &[1, 2]]).expect("split");
    cluster.wait_master(1, WAIT);
    let lost = cluster.events(0, "quorum_lost");
    assert!(!lost.is_empty(), "node 0 logged no quorum_lost");
    let status = cluster.status(0).cluster.expect("cluster status");
    assert!(!status.quorum && status.claims.is_empty(), "{status:?}");
    cluster.topology.heal().expect("heal");
    // Node 0 has the highest priority and preempts once it has quorum
    // again: the handover goes through the release of node 1's lease.
    cluster.wait_master(0, WAIT);
}
