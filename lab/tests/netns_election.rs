//! Network tests: real agents on real raw sockets in network namespaces
//! joined by a bridge, a client namespace pinging the VIP. Each test builds
//! its own topology (unique namespace names, 198.18.0.0/15 only) and tears it
//! down when its `Cluster` drops, also on failure. Without root they skip
//! loudly; CI runs as root.
//!
//! No assertion here is about speed (that is what `lab` and
//! docs/benchmarks.md are for): waits poll with generous timeouts, and the
//! checks are about *which* node ends up master and *why*.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{require_root, Cluster, ClusterBuilder, WAIT};
use nix::sys::signal::Signal;
use rcbsd_failover::control::protocol::Request;
use rcbsd_failover::election::priority::Override;
use rcbsd_failover::wire::VrrpState;
use rcbsd_lab::netns::{self, node_address};

/// The JSON log events of node `index` named `event`.
fn events(cluster: &Cluster, index: usize, event: &str) -> Vec<serde_json::Value> {
    let agent = cluster.agents.get(index).expect("node exists");
    agent
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v.get("event").and_then(|e| e.as_str()) == Some(event))
        .collect()
}

fn has_event(cluster: &Cluster, index: usize, event: &str, field: &str, value: &str) -> bool {
    events(cluster, index, event)
        .iter()
        .any(|e| e.get(field).and_then(|v| v.as_str()) == Some(value))
}

/// Waits until `index` says it is master and every other running node
/// follows it.
fn wait_master_by_status(cluster: &Cluster, index: usize, others: &[usize]) {
    let address = node_address(index);
    cluster.wait_until(
        &format!("node {index} master, nodes {others:?} following it"),
        WAIT,
        |c| {
            c.try_status(index)
                .is_ok_and(|s| s.state == VrrpState::Master)
                && others.iter().all(|&o| {
                    c.try_status(o).is_ok_and(|s| {
                        s.state == VrrpState::Backup && s.master == Some(address.into())
                    })
                })
        },
    );
}

#[test]
fn highest_priority_node_becomes_master() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(3).priorities(&[100, 200, 150]).start();
    cluster.wait_master(1, WAIT);
    wait_master_by_status(&cluster, 1, &[0, 2]);
    let status = cluster.status(1);
    assert_eq!(status.vips_held, vec![format!("{}/24", netns::VIP)]);
    assert!(status.counters.adverts_sent > 0);
}

#[test]
fn master_link_cut_highest_remaining_takes_over_and_old_master_preempts_back() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(3).start();
    cluster.wait_master(0, WAIT);
    let prober = cluster.prober();
    cluster.wait_client_reaches_vip(&prober, WAIT);

    cluster.topology.cut_link(0).expect("cut link");
    wait_master_by_status(&cluster, 1, &[2]);
    cluster.wait_client_reaches_vip(&prober, WAIT);
    assert!(has_event(
        &cluster,
        1,
        "state_change",
        "reason",
        "master_down"
    ));

    // The old master comes back with a higher priority: it preempts (RFC 5798
    // §6.4.2, Preempt_Mode true), and node 1 drops the VIP.
    cluster.topology.restore_link(0).expect("restore link");
    cluster.wait_master(0, WAIT);
    wait_master_by_status(&cluster, 0, &[1, 2]);
    cluster.wait_client_reaches_vip(&prober, WAIT);
    assert!(has_event(
        &cluster,
        1,
        "state_change",
        "reason",
        "higher_priority_master"
    ));
    assert!(has_event(
        &cluster,
        1,
        "vip_removed",
        "reason",
        "not_master"
    ));
}

#[test]
fn preempt_false_keeps_the_running_lower_priority_master() {
    if !require_root() {
        return;
    }
    let mut cluster = ClusterBuilder::new(2).preempt(false).prepare();
    cluster.start(1);
    cluster.wait_master(1, WAIT);
    cluster.start(0);
    // Node 0 (150) joins as backup behind node 1 (100)...
    wait_master_by_status(&cluster, 1, &[0]);
    // ...and stays there for many Master_Down_Intervals (0.3 s + skew at
    // 100 ms): a preempting node would have taken over within one.
    let stayed = !common::poll_until(Duration::from_secs(2), || {
        cluster
            .try_status(0)
            .is_ok_and(|s| s.state == VrrpState::Master)
    });
    assert!(stayed, "node 0 preempted although preempt = false");
    assert_eq!(cluster.vip_holders(), vec![1]);
}

#[test]
fn promote_demote_resume_and_the_override_survives_a_restart() {
    if !require_root() {
        return;
    }
    let mut cluster = ClusterBuilder::new(2).start();
    cluster.wait_master(0, WAIT);

    // demote: the master resigns (priority-0 advert) and node 1 takes over.
    let reply = cluster.request(0, Request::Demote);
    assert!(reply.ok, "{reply:?}");
    assert!(reply
        .changed
        .as_deref()
        .unwrap_or("")
        .contains("none -> demote"));
    cluster.wait_master(1, WAIT);
    assert!(has_event(
        &cluster,
        1,
        "state_change",
        "reason",
        "master_resigned"
    ));
    let status = cluster.status(0);
    assert_eq!(
        (status.override_, status.effective_priority),
        (Override::Demote, 0)
    );

    // A restarted node stays demoted (the override is in state_dir).
    cluster.stop(0, Signal::SIGTERM);
    cluster.start(0);
    cluster.wait_until("node 0 back, still demoted, following node 1", WAIT, |c| {
        c.try_status(0).is_ok_and(|s| {
            s.override_ == Override::Demote
                && s.state == VrrpState::Backup
                && s.master == Some(node_address(1).into())
        })
    });
    assert_eq!(cluster.vip_holders(), vec![1]);

    // resume: node 0 may be master again and, with the higher priority, is.
    assert!(cluster.request(0, Request::Resume).ok);
    cluster.wait_master(0, WAIT);

    // promote: node 1 (100) goes to 254 and preempts node 0 (150).
    assert!(cluster.request(1, Request::Promote).ok);
    cluster.wait_master(1, WAIT);
    assert_eq!(cluster.status(1).effective_priority, 254);
    assert!(cluster.request(1, Request::Resume).ok);
    cluster.wait_master(0, WAIT);
}

#[test]
fn sigterm_master_hands_over_with_a_priority_zero_advert() {
    if !require_root() {
        return;
    }
    let mut cluster = ClusterBuilder::new(2)
        .advert_interval(Duration::from_secs(1))
        .start();
    cluster.wait_master(0, Duration::from_secs(15));
    cluster.stop(0, Signal::SIGTERM);
    cluster.wait_master(1, WAIT);
    // `master_resigned` is the Skew_Time path of RFC 5798 §6.4.2; a silent
    // master would give `master_down` after Master_Down_Interval.
    assert!(has_event(
        &cluster,
        1,
        "state_change",
        "reason",
        "master_resigned"
    ));
    assert!(has_event(
        &cluster,
        0,
        "vip_removed",
        "reason",
        "not_master"
    ));
    let exit = cluster.agents.get(0).expect("node 0").log();
    assert!(exit.contains("agent_stopping"), "{exit}");
}

#[test]
fn a_virtual_ip_left_by_a_crashed_run_is_removed_at_start() {
    if !require_root() {
        return;
    }
    let mut cluster = ClusterBuilder::new(2).prepare();
    let vip = format!("{}/24", netns::VIP);
    cluster.exec(1, &["ip", "-4", "addr", "add", &vip, "dev", "eth0"]);
    assert_eq!(cluster.vip_holders(), vec![1]);
    cluster.start(0);
    cluster.start(1);
    cluster.wait_master(0, WAIT);
    assert!(has_event(&cluster, 1, "stale_vip_removed", "vip", &vip));
}

#[test]
fn unicast_peers_elect_and_fail_over() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(3).unicast().start();
    cluster.wait_master(0, WAIT);
    wait_master_by_status(&cluster, 0, &[1, 2]);
    cluster.topology.cut_link(0).expect("cut link");
    wait_master_by_status(&cluster, 1, &[2]);
}

#[test]
fn a_healed_partition_leaves_one_master_and_the_client_follows_it() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(3).start();
    cluster.wait_master(0, WAIT);
    let prober = cluster.prober();

    // Node 0 hears no adverts from the others and they none from it: two
    // masters, both holding the VIP.
    cluster
        .topology
        .partition(&[&[0], &[1, 2]])
        .expect("partition");
    cluster.wait_until("two masters during the partition", WAIT, |c| {
        c.vip_holders() == [0, 1]
    });
    cluster.topology.heal().expect("heal");
    let healed = std::time::Instant::now();
    cluster.wait_master(0, WAIT);
    wait_master_by_status(&cluster, 0, &[1, 2]);
    // The higher master answered the lower one and re-announced the VIP.
    assert!(!events(&cluster, 0, "master_conflict").is_empty());
    cluster.wait_client_reaches_vip(&prober, WAIT);
    let gap = prober.longest_gap(healed, std::time::Instant::now());
    eprintln!("client's longest reply gap after the heal: {gap:?} (measured, not asserted)");
}

#[test]
fn sighup_applies_a_valid_config_without_dropping_the_vip_and_refuses_a_bad_one() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(2).start();
    cluster.wait_master(0, WAIT);

    cluster.rewrite_config(0, |spec| spec.priority = 160);
    cluster.signal(0, Signal::SIGHUP);
    cluster.wait_until("node 0 reloaded with priority 160", WAIT, |c| {
        c.try_status(0).is_ok_and(|s| s.configured_priority == 160)
    });
    assert_eq!(cluster.status(0).state, VrrpState::Master);
    assert!(
        events(&cluster, 0, "vip_removed").is_empty(),
        "the VIP was dropped on reload"
    );

    let config = cluster.agents.get(0).expect("node 0").config_path.clone();
    std::fs::write(&config, "[vrrp]\npriority = 0\n").expect("write bad config");
    cluster.signal(0, Signal::SIGHUP);
    cluster.wait_until("config_rejected logged", WAIT, |c| {
        !events(c, 0, "config_rejected").is_empty()
    });
    let status = cluster.status(0);
    assert_eq!(
        (status.state, status.configured_priority),
        (VrrpState::Master, 160)
    );
    let rejected = events(&cluster, 0, "config_rejected");
    let error = rejected[0]["error"].as_str().unwrap_or("");
    assert!(error.contains(":2:"), "no line number in {error:?}");
}

/// Sends crafted datagrams (IP header included) from the client namespace.
fn inject(cluster: &Cluster, datagrams: Vec<Vec<u8>>) {
    use socket2::{Domain, Protocol, Socket, Type};
    let ns = cluster.topology.client_ns().to_owned();
    netns::in_netns(&ns, move || {
        let socket =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).expect("raw socket");
        socket.set_header_included_v4(true).expect("IP_HDRINCL");
        let group = std::net::SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 18), 0);
        socket
            .set_multicast_if_v4(&netns::CLIENT_ADDRESS)
            .expect("IP_MULTICAST_IF");
        for d in datagrams {
            socket.send_to(&d, &group.into()).expect("send");
        }
    })
    .expect("enter the client namespace");
}

/// A datagram as a higher-priority master would send it, then spoiled by
/// `spoil` (TTL, checksum, VRID, length).
fn crafted(vrid: u8, ttl: u8, spoil: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    use rcbsd_failover::wire::Centis;
    use rcbsd_failover::wire::{ipv4, vrrp, ChecksumMode};
    let src = netns::CLIENT_ADDRESS;
    let dst = Ipv4Addr::new(224, 0, 0, 18);
    let addresses = [netns::VIP];
    let advert = vrrp::Advertisement {
        vrid,
        priority: 254,
        max_advert_interval: Centis(10),
        addresses: &addresses,
    };
    let mut body = vec![0u8; advert.buffer_len()];
    let len = advert
        .emit(&mut body, src, dst, ChecksumMode::PseudoHeader)
        .expect("emit");
    body.truncate(len);
    spoil(&mut body);
    let mut datagram = vec![0u8; 20 + body.len()];
    let header = ipv4::emit_header(&mut datagram, src, dst, 112, ttl, body.len()).expect("header");
    datagram[header..].copy_from_slice(&body);
    datagram
}

#[test]
fn bad_packets_are_ignored_and_counted_by_reason() {
    if !require_root() {
        return;
    }
    let cluster = ClusterBuilder::new(2).start();
    cluster.wait_master(0, WAIT);
    let transitions = cluster.status(0).counters.transitions;
    let vrid = rcbsd_lab::agents::LAB_VRID;

    inject(
        &cluster,
        vec![
            crafted(vrid, 254, |_| {}),                      // TTL 254
            crafted(vrid, 255, |b| b[6] ^= 0xff),            // checksum
            crafted(vrid.wrapping_add(1), 255, |_| {}),      // another VRID
            crafted(vrid, 255, |b| b.truncate(b.len() - 2)), // truncated body
        ],
    );
    cluster.wait_until("all four drops counted", WAIT, |c| {
        c.try_status(0).is_ok_and(|s| {
            let d = &s.counters.drops;
            ["bad_ttl", "bad_checksum", "wrong_vrid", "bad_length"]
                .iter()
                .all(|r| d.get(*r).copied().unwrap_or(0) >= 1)
        })
    });
    // None of them, all claiming priority 254, moved node 0 off master.
    let status = cluster.status(0);
    assert_eq!(
        (status.state, status.counters.transitions),
        (VrrpState::Master, transitions)
    );
}
