//! The lab's building blocks on real namespaces: the topology connects and
//! disconnects, teardown leaves nothing behind, and a keepalived-only trial
//! through the lab API sees the client reach the VIP again after the
//! master's link is cut. No timing is asserted: speed is measured by the
//! lab (`docs/benchmarks.md`), not by tests.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::require_root;
use rcbsd_lab::agents::Implementation;
use rcbsd_lab::cancel::Cancel;
use rcbsd_lab::netns::{self, Topology};
use rcbsd_lab::ping::Prober;
use rcbsd_lab::{cmd, trial, Family, Settings};

fn ping_once(topology: &Topology, from_ns: &str, to: std::net::Ipv4Addr) -> bool {
    let argv = netns::netns_exec_argv(
        from_ns,
        &cmd::argv(&["ping", "-c", "1", "-W", "1", &to.to_string()]),
    );
    let _ = topology;
    cmd::run(&argv).is_ok()
}

#[test]
fn topology_connects_cuts_and_restores_a_node() {
    if !require_root() {
        return;
    }
    let topology = Topology::new(2).expect("topology");
    let client = topology.client_ns().to_owned();
    assert!(ping_once(&topology, &client, netns::node_address(0)));
    topology.cut_link(0).expect("cut");
    assert!(!ping_once(&topology, &client, netns::node_address(0)));
    assert!(ping_once(&topology, &client, netns::node_address(1)));
    topology.restore_link(0).expect("restore");
    assert!(common::poll_until(Duration::from_secs(5), || ping_once(
        &topology,
        &client,
        netns::node_address(0)
    )));
}

#[test]
fn teardown_removes_every_namespace() {
    if !require_root() {
        return;
    }
    let topology = Topology::new(2).expect("topology");
    let mut names: Vec<String> = topology.node_namespaces().to_vec();
    names.push(topology.client_ns().to_owned());
    names.push(topology.switch_ns().to_owned());
    let run_dir = topology.run_dir().to_owned();
    let exists = |ns: &str| std::path::Path::new("/run/netns").join(ns).exists();
    assert!(names.iter().all(|ns| exists(ns)));
    drop(topology);
    assert!(names.iter().all(|ns| !exists(ns)), "left behind: {names:?}");
    assert!(!run_dir.exists());
}

#[test]
fn prober_counts_only_replies_to_requests_sent_after_a_cut() {
    if !require_root() {
        return;
    }
    let topology = Topology::new(1).expect("topology");
    let target = netns::node_address(0);
    let prober = Prober::start(topology.client_ns(), target, 1000).expect("prober");
    let cancel = Cancel::never();
    let before = std::time::Instant::now();
    assert!(prober
        .wait_first_reply_after(before, Duration::from_secs(5), &cancel)
        .is_some());
    topology.cut_link(0).expect("cut");
    let cut = std::time::Instant::now();
    assert_eq!(
        prober.wait_first_reply_after(cut, Duration::from_millis(300), &cancel),
        None
    );
    topology.restore_link(0).expect("restore");
    let back = prober
        .wait_first_reply_after(cut, Duration::from_secs(5), &cancel)
        .expect("replies after the restore");
    assert!(back > cut);
    assert!(prober.longest_gap(cut, back) >= Duration::from_millis(300));
}

#[test]
fn ipv6_topology_has_only_documentation_and_link_local_addresses_and_answers_icmpv6() {
    if !require_root() {
        return;
    }
    let topology = Topology::with_family(1, Family::Ipv6).expect("topology");
    let node = topology.node_ns(0).expect("node").to_owned();
    let show = |family: &str| {
        cmd::run(&netns::netns_exec_argv(
            &node,
            &cmd::argv(&["ip", family, "addr", "show", "dev", "eth0"]),
        ))
        .expect("ip addr")
    };
    assert!(!show("-4").contains("inet "), "{}", show("-4"));
    let v6 = show("-6");
    assert!(v6.contains("inet6 2001:db8::11/64"), "{v6}");
    assert!(v6.contains("inet6 fe80::"), "{v6}");
    assert!(!v6.contains("tentative"), "DAD is off: {v6}");
    // The ICMPv6 prober reaches the node, and stops being answered by a
    // cut node.
    let prober =
        Prober::start(topology.client_ns(), netns::node_address6(0), 1000).expect("prober");
    let cancel = Cancel::never();
    assert!(prober
        .wait_first_reply_after(std::time::Instant::now(), Duration::from_secs(5), &cancel)
        .is_some());
    topology.cut_link(0).expect("cut");
    let cut = std::time::Instant::now();
    assert_eq!(
        prober.wait_first_reply_after(cut, Duration::from_millis(300), &cancel),
        None
    );
}

#[test]
fn nft_block_stops_vrrp_between_two_nodes_and_heal_removes_it() {
    if !require_root() {
        return;
    }
    let topology = Topology::new(2).expect("topology");
    topology.block_between(0, 1).expect("block");
    let list = |i: usize| {
        cmd::run(&netns::netns_exec_argv(
            topology.node_ns(i).expect("node"),
            &cmd::argv(&["nft", "list", "ruleset"]),
        ))
        .expect("nft list")
    };
    assert!(
        list(0).contains("ip saddr 198.18.0.12 ip protocol vrrp drop"),
        "{}",
        list(0)
    );
    assert!(
        list(1).contains("ip saddr 198.18.0.11 ip protocol vrrp drop"),
        "{}",
        list(1)
    );
    topology.heal().expect("heal");
    assert!(!list(0).contains("rcbsdlab"));
}

#[test]
fn keepalived_trial_client_reaches_the_vip_again_after_the_cut() {
    if !require_root() {
        return;
    }
    let settings = Settings {
        nodes: 2,
        advert_interval: Duration::from_millis(100),
        trials: 1,
        rate_hz: 1000,
    };
    let run = trial::measure(
        Implementation::Keepalived,
        &settings,
        Family::Ipv4,
        &Cancel::never(),
    )
    .unwrap_or_else(|e| panic!("keepalived trial failed (is keepalived installed?): {e}"));
    assert_eq!(run.initial_master, "n1");
    let [trial] = run.trials.as_slice() else {
        panic!("expected one trial, got {:?}", run.trials);
    };
    // `measure` only returns once the client got a reply to a request sent
    // after the cut; the backup took over and the old master came back.
    assert_eq!(
        (trial.master.as_str(), trial.new_master.as_str()),
        ("n1", "n2")
    );
    assert!(trial.outage_ms > 0.0);
    assert_eq!(trial.master_after_heal, "n1");
    assert!(run.agents.iter().all(|a| a.processes == 2 && a.rss_kib > 0));
}
