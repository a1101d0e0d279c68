//! Quorum and leases with real agents in network namespaces: the basics.
//! (The fault suite is tests/netns_faults.rs.)

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::{require_root, ClusterBuilder, WAIT};

/// Waits with the CBSD runbooks: a 16 s lease, and stand-ins that take
/// tenths of a second per command on a loaded machine.
const CBSD_WAIT: Duration = Duration::from_secs(60);

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

/// Where each placed environment runs, as node `index` sees it.
fn locations(cluster: &common::Cluster, index: usize) -> Vec<(String, Vec<String>)> {
    cluster
        .try_status(index)
        .ok()
        .and_then(|s| s.cluster)
        .map(|c| {
            c.environments
                .into_iter()
                .map(|e| (e.name, e.running_on))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn environments_run_on_their_first_node_and_move_on_request() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(3).cbsd().quorum().start();
    // No node grants anything during its first lease (16 s with the CBSD
    // runbooks): the first master comes after that.
    cluster.wait_master(0, CBSD_WAIT);
    let names: Vec<String> = (0..3).map(|i| cluster.status(i).node).collect();
    let expected = vec![
        ("vm1".to_owned(), vec![names[2].clone()]),
        ("web1".to_owned(), vec![names[0].clone()]),
        ("web2".to_owned(), vec![names[1].clone()]),
        ("web3".to_owned(), vec![names[2].clone()]),
    ];
    cluster.wait_until("every environment on its first node", CBSD_WAIT, |c| {
        locations(c, 0) == expected
    });
    let response = cluster.request(
        0,
        rcbsd_failover::control::protocol::Request::Move {
            environment: "web1".into(),
            node: names[1].clone(),
        },
    );
    assert!(response.ok, "{response:?}");
    cluster.wait_until("web1 moved to the second node", CBSD_WAIT, |c| {
        locations(c, 0)
            .iter()
            .any(|(e, on)| e == "web1" && on == &[names[1].clone()])
    });
    // The stop on the first node came before the start on the second.
    let log: Vec<_> = cluster
        .env_log()
        .into_iter()
        .filter(|e| e.env == "web1")
        .map(|e| (e.node, e.event))
        .collect();
    assert_eq!(
        log,
        [
            (names[0].clone(), "start".to_owned()),
            (names[0].clone(), "stop".to_owned()),
            (names[1].clone(), "start".to_owned()),
        ],
        "web1's log"
    );
    // A move of an environment this node does not run is refused, saying
    // where it runs.
    let refused = cluster.request(
        0,
        rcbsd_failover::control::protocol::Request::Move {
            environment: "web2".into(),
            node: names[2].clone(),
        },
    );
    assert!(!refused.ok);
    assert!(
        refused
            .error
            .as_deref()
            .unwrap_or("")
            .contains("run the move there"),
        "{refused:?}"
    );
}

/// Sends `count` adverts for the lab's VRID at priority 254 from the
/// client namespace, authenticated with a key the cluster does not know.
fn send_forged_adverts(cluster: &common::Cluster, count: usize) {
    use rcbsd_failover::auth::{Counter, Keyring};
    use rcbsd_failover::wire::vrrp::Advertisement;
    use rcbsd_failover::wire::Centis;
    use rcbsd_failover::wire::{advert_auth, ChecksumMode};
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::{Ipv4Addr, SocketAddrV4};

    let source = Ipv4Addr::new(198, 18, 0, 2);
    let group = Ipv4Addr::new(224, 0, 0, 18);
    let wrong = Keyring::from_secrets(b"not the cluster's key, 32 bytes or more", None);
    rcbsd_lab::netns::in_netns(cluster.topology.client_ns(), move || {
        let socket =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).expect("raw socket");
        socket.set_ttl_v4(255).expect("ttl");
        socket.set_multicast_ttl_v4(255).expect("multicast ttl");
        socket
            .set_multicast_if_v4(&source)
            .expect("multicast interface");
        let vips = [common::VIP];
        let advert = Advertisement {
            vrid: 51,
            priority: 254,
            max_advert_interval: Centis(10),
            addresses: &vips,
        };
        for seq in 1..=count as u64 {
            let mut buf = [0u8; 64];
            let len = advert
                .emit(&mut buf, source, group, ChecksumMode::PseudoHeader)
                .expect("advert");
            let mut packet = buf[..len].to_vec();
            advert_auth::append(
                &mut packet,
                &wrong,
                source,
                group,
                Counter {
                    incarnation: 1,
                    seq,
                },
            );
            socket
                .send_to(&packet, &SocketAddrV4::new(group, 0).into())
                .expect("send");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    })
    .expect("in the client namespace");
}

#[test]
fn forged_adverts_with_a_wrong_key_change_nothing_and_are_alerted() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("cluster.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef-cluster\n").expect("key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let cluster = ClusterBuilder::new(3)
        .quorum()
        .quorum_edit(|q| q.auth = Some((key.clone(), None)))
        .start();
    cluster.wait_master(0, WAIT);
    send_forged_adverts(&cluster, 50);
    cluster.wait_until("auth_failed for the forged adverts", WAIT, |c| {
        c.events(0, "auth_failed")
            .iter()
            .any(|e| e["message"] == "advert" && e["source"] == "198.18.0.2")
    });
    // Priority 254 would have won against 150 without auth.
    cluster.wait_master(0, WAIT);
    let drops = cluster.status(0).counters.drops;
    assert!(
        drops.get("auth_bad").copied().unwrap_or(0) >= 40,
        "{drops:?}"
    );
    assert!(
        cluster.events(0, "state_change").len() <= 2,
        "no role change"
    );
}

/// A planned `demote` of a healthy master (issue 10 item 7): the followers
/// stop their environments and unmount while it still serves NFS, and only
/// then does the VIP go. Nobody meets a dead server (no `nfs_server_gone`,
/// no `umount -N`), and every environment runs again afterwards.
#[test]
fn a_planned_demote_hands_over_after_the_followers_unmounted() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(3).cbsd().quorum().start();
    // Generous: the stand-ins are slow on a loaded machine.
    cluster.wait_master(0, CBSD_WAIT * 3);
    // Where each runs does not matter here (a cold start may place one on
    // its second node), only that each runs once.
    cluster.wait_until("every environment running once", CBSD_WAIT * 3, |c| {
        let now = locations(c, 0);
        now.len() == 4 && now.iter().all(|(_, on)| on.len() == 1)
    });
    let gone_before: usize = (0..3)
        .map(|i| cluster.events(i, "nfs_server_gone").len())
        .sum();

    let response = cluster.request(0, rcbsd_failover::control::protocol::Request::Demote);
    assert!(response.ok, "{response:?}");
    cluster.wait_master(1, CBSD_WAIT * 3);
    cluster.wait_until("every environment running again", CBSD_WAIT * 3, |c| {
        let now = locations(c, 1);
        now.len() == 4 && now.iter().all(|(_, on)| on.len() == 1)
    });

    let started = cluster.events(0, "handover_started");
    assert_eq!(started.len(), 1, "{started:?}");
    let finished = cluster.events(0, "handover_finished");
    assert_eq!(
        finished
            .iter()
            .map(|e| e["outcome"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["quiesced"],
        "{finished:?}"
    );
    for i in [1, 2] {
        let quiesced = cluster
            .events(i, "runbook_finished")
            .into_iter()
            .filter(|e| e["runbook"] == "quiesce")
            .count();
        assert!(quiesced >= 1, "node {i} ran no quiesce");
    }
    let gone_after: usize = (0..3)
        .map(|i| cluster.events(i, "nfs_server_gone").len())
        .sum();
    assert_eq!(gone_after, gone_before, "a follower met a dead server");
    assert!(
        rcbsd_lab::cbsd::state::double_runs(&cluster.env_log()).is_empty(),
        "an environment ran on two nodes"
    );
}
