//! IPv6 elections with real agents (issue 15): two nodes run an IPv6
//! `[vrrp]` (the virtual router's link-local address first, RFC 5798
//! §5.2.9, then 2001:db8::100/64) over raw IPv6 sockets in network
//! namespaces. One master is elected; cutting its link makes the other
//! take over; restoring it makes it preempt back, announce the VIP with an
//! unsolicited Neighbor Advertisement burst, and leaves one master.
//!
//! Addresses: link-local (fe80::/64) and 2001:db8::/32 only; the nodes'
//! IPv4 lab addresses (198.18.0.0/15) carry the control sockets, never an
//! advert. DAD is turned off on the nodes' eth0 (the VIPs are added
//! `nodad` by the agent anyway) and the kernel's own link-local address is
//! waited for out of DAD before the agents start: it is their advert
//! source. No assertion is about speed.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{
    cluster_ipv6_ready, holds_vip6, ipv6_vips, link_local6, poll_until, require_root, run_in,
    Cluster, ClusterBuilder, VIP6 as VIP, VIP6_ADDRESS as VIP_ADDRESS, VIP6_LL as VIP_LL, WAIT,
};
use rcbsd_failover::net::iface;
use rcbsd_failover::wire::VrrpState;
use rcbsd_lab::netns::in_netns;

/// Two agents, node 0 at 150 and node 1 at 100 (the lab's defaults), an
/// IPv6 `[vrrp]` each.
fn start() -> Cluster {
    let mut builder = ClusterBuilder::new(2);
    for index in 0..2 {
        builder = builder.node(index, ipv6_vips);
    }
    let mut cluster = builder.prepare();
    cluster_ipv6_ready(&cluster);
    for index in 0..2 {
        cluster.start(index);
    }
    cluster
}

fn holds_vip(cluster: &Cluster, index: usize) -> bool {
    holds_vip6(cluster.ns(index))
}

/// Waits until `master` is the only master and the only VIP holder, and
/// every node in `others` follows its link-local address.
fn wait_master(cluster: &Cluster, master: usize, others: &[usize]) {
    let address = IpAddr::V6(link_local6(cluster, master));
    cluster.wait_until(
        &format!("node {master} the only IPv6 master, {others:?} following {address}"),
        WAIT,
        |c| {
            c.try_status(master).is_ok_and(|s| {
                s.state == VrrpState::Master && s.family == "ipv6" && s.master == Some(address)
            }) && holds_vip(c, master)
                && others.iter().all(|&o| {
                    c.try_status(o)
                        .is_ok_and(|s| s.state != VrrpState::Master && s.master == Some(address))
                        && !holds_vip(c, o)
                })
        },
    );
}

fn has_event(cluster: &Cluster, index: usize, event: &str, field: &str, value: &str) -> bool {
    cluster
        .events(index, event)
        .iter()
        .any(|e| e.get(field).and_then(|v| v.as_str()) == Some(value))
}

fn mac_text(cluster: &Cluster, index: usize) -> String {
    let mac = in_netns(cluster.ns(index), || iface::mac_address("eth0"))
        .expect("in namespace")
        .expect("MAC address");
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn two_agents_elect_one_ipv6_master_take_over_on_link_cut_and_preempt_back_with_na() {
    if !require_root() {
        return;
    }
    let cluster = start();
    wait_master(&cluster, 0, &[1]);
    let status = cluster.status(0);
    assert_eq!(status.vips_held, vec![VIP_LL.to_owned(), VIP.to_owned()]);
    assert!(status.counters.adverts_sent > 0);
    assert!(cluster.status(1).counters.adverts_received > 0);

    // The master loses its link: node 1 takes over when its
    // Master_Down_Timer fires (RFC 5798 §6.4.2).
    cluster.topology.cut_link(0).expect("cut link");
    cluster.wait_until("node 1 holds the IPv6 VIP as master", WAIT, |c| {
        c.try_status(1).is_ok_and(|s| s.state == VrrpState::Master) && holds_vip(c, 1)
    });
    assert!(has_event(
        &cluster,
        1,
        "state_change",
        "reason",
        "master_down"
    ));

    // The client believes the VIP lives elsewhere; node 0's NA burst on
    // becoming master again must point it at node 0 (RFC 5798 §6.4.2,
    // RFC 4861 §7.2.6: Override set, so the entry is replaced).
    let client = cluster.topology.client_ns().to_owned();
    run_in(
        &client,
        &[
            "ip",
            "-6",
            "neigh",
            "replace",
            VIP_ADDRESS,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth0",
            "nud",
            "stale",
        ],
    );

    // Node 0 comes back with the higher priority: it preempts (§6.4.2,
    // Preempt_Mode true) and node 1 drops the VIP.
    cluster.topology.restore_link(0).expect("restore link");
    wait_master(&cluster, 0, &[1]);
    assert!(has_event(
        &cluster,
        1,
        "state_change",
        "reason",
        "higher_priority_master"
    ));
    let mac = mac_text(&cluster, 0);
    let mut last = String::new();
    let announced = poll_until(WAIT, || {
        last = run_in(
            &client,
            &["ip", "-6", "neigh", "show", VIP_ADDRESS, "dev", "eth0"],
        );
        last.contains(&mac) && last.contains("router")
    });
    assert!(
        announced,
        "the client's neighbour entry for {VIP_ADDRESS} is not node 0's ({mac}): {last}"
    );

    // One master at the end.
    let masters: Vec<usize> = (0..2)
        .filter(|&i| {
            cluster
                .try_status(i)
                .is_ok_and(|s| s.state == VrrpState::Master)
        })
        .collect();
    assert_eq!(masters, vec![0]);
    assert!(!holds_vip(&cluster, 1));
}

/// Whether node `index` holds the lab's IPv4 VIP.
fn holds_vip4(cluster: &Cluster, index: usize) -> bool {
    cluster.vip_holders().contains(&index)
}

/// Node `master` is master of `[vrrp]` and so of its synchronised `[vrrp6]`,
/// with both families' VIPs; the others are backups of both, with none.
fn wait_dual_master(cluster: &Cluster, master: usize, others: &[usize]) {
    cluster.wait_until(
        &format!("node {master} master of [vrrp] and [vrrp6] with both VIPs, {others:?} backups"),
        WAIT,
        |c| {
            c.try_status(master).is_ok_and(|s| {
                s.state == VrrpState::Master
                    && s.family == "ipv4"
                    && s.vrrp6
                        .as_ref()
                        .is_some_and(|v6| v6.state == VrrpState::Master && v6.vips_held.len() == 2)
            }) && holds_vip4(c, master)
                && holds_vip(c, master)
                && others.iter().all(|&o| {
                    c.try_status(o).is_ok_and(|s| {
                        s.state != VrrpState::Master
                            && s.vrrp6
                                .as_ref()
                                .is_some_and(|v6| v6.state == VrrpState::Backup)
                    }) && !holds_vip4(c, o)
                        && !holds_vip(c, o)
                })
        },
    );
}

#[test]
fn a_dual_stack_vrrp6_follows_the_vrrp_master_through_takeover_and_preempt() {
    if !require_root() {
        return;
    }
    let mut builder = ClusterBuilder::new(2);
    for index in 0..2 {
        builder = builder.node(index, |spec| {
            spec.vrrp6_virtual_ips = vec![VIP_LL.to_owned(), VIP.to_owned()];
        });
    }
    let mut cluster = builder.prepare();
    cluster_ipv6_ready(&cluster);
    for index in 0..2 {
        cluster.start(index);
    }
    wait_dual_master(&cluster, 0, &[1]);
    // The master advertises [vrrp6] on its own router; the backup admits
    // those adverts and its own [vrrp6] router follows node 0 as master,
    // ineligible (priority 0) while node 1 is not the [vrrp] master.
    cluster.wait_until("node 1's [vrrp6] follows node 0's adverts", WAIT, |c| {
        let master_ll = c.try_status(0).ok().and_then(|s| {
            s.vrrp6
                .filter(|v6| v6.adverts_sent > 0 && v6.priority > 0)
                .and_then(|v6| v6.master)
        });
        master_ll.is_some()
            && c.try_status(1).is_ok_and(|s| {
                s.vrrp6.is_some_and(|v6| {
                    v6.adverts_received > 0
                        && v6.dropped == 0
                        && v6.priority == 0
                        && v6.master == master_ll
                })
            })
    });

    cluster.topology.cut_link(0).expect("cut link");
    cluster.wait_until("node 1 master of both families", WAIT, |c| {
        c.try_status(1).is_ok_and(|s| {
            s.state == VrrpState::Master && s.vrrp6.is_some_and(|v6| v6.state == VrrpState::Master)
        }) && holds_vip4(c, 1)
            && holds_vip(c, 1)
    });

    cluster.topology.restore_link(0).expect("restore link");
    wait_dual_master(&cluster, 0, &[1]);
}

/// Node `index`'s heartbeat address in the IPv6 cluster: 2001:db8::1{index+1}.
fn cluster_address6(index: usize) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11 + index as u16)
}

#[test]
fn an_ipv6_cluster_elects_over_ipv6_heartbeats_with_quorum() {
    if !require_root() {
        return;
    }
    // Three nodes (a cluster of two is refused): an IPv6 [vrrp] each, and
    // [cluster] nodes at 2001:db8::11..13, so heartbeats travel over
    // UDP/IPv6 and carry the IPv6 master they follow (tag 2).
    let mut builder = ClusterBuilder::new(3);
    for index in 0..3 {
        builder = builder.node(index, ipv6_vips);
    }
    let builder = builder.quorum().quorum_edit(|quorum| {
        for (index, node) in quorum.nodes.iter_mut().enumerate() {
            node.1 = IpAddr::V6(cluster_address6(index));
        }
    });
    let mut cluster = builder.prepare();
    cluster_ipv6_ready(&cluster);
    for index in 0..3 {
        let cidr = format!("{}/64", cluster_address6(index));
        run_in(
            cluster.ns(index),
            &["ip", "-6", "addr", "add", &cidr, "dev", "eth0", "nodad"],
        );
    }
    for index in 0..3 {
        cluster.start(index);
    }
    wait_master(&cluster, 0, &[1, 2]);
    cluster.wait_until("every node has a quorum from IPv6 heartbeats", WAIT, |c| {
        (0..3).all(|i| {
            c.try_status(i).is_ok_and(|s| {
                s.cluster.as_ref().is_some_and(|q| {
                    q.quorum
                        && q.not_heard.is_empty()
                        && q.heartbeats_received > 0
                        && q.heartbeats_dropped.is_empty()
                })
            })
        })
    });
}

/// Node `index` drops every IPv6 VRRP datagram it receives (next header
/// 112), or stops doing so: a partition of the IPv6 adverts only.
fn block_ipv6_vrrp(cluster: &Cluster, index: usize, block: bool) {
    let ns = cluster.ns(index);
    if block {
        for command in [
            &["nft", "add", "table", "ip6", "v6block"][..],
            &[
                "nft", "add", "chain", "ip6", "v6block", "input", "{", "type", "filter", "hook",
                "input", "priority", "0", ";", "policy", "accept", ";", "}",
            ],
            &[
                "nft", "add", "rule", "ip6", "v6block", "input", "meta", "l4proto", "112", "drop",
            ],
        ] {
            let out = run_in(ns, command);
            assert!(!out.starts_with("error"), "{ns}: {out}");
        }
    } else {
        let out = run_in(ns, &["nft", "delete", "table", "ip6", "v6block"]);
        assert!(!out.starts_with("error"), "{ns}: {out}");
    }
}

#[test]
fn after_an_ipv6_partition_heals_the_remaining_master_re_announces_with_na() {
    if !require_root() {
        return;
    }
    let cluster = start();
    wait_master(&cluster, 0, &[1]);

    // Partition: neither hears the other; node 1 becomes a second master.
    for index in 0..2 {
        block_ipv6_vrrp(&cluster, index, true);
    }
    cluster.wait_until("two IPv6 masters during the partition", WAIT, |c| {
        (0..2).all(|i| c.try_status(i).is_ok_and(|s| s.state == VrrpState::Master))
    });
    // The client follows whoever announced last; make it follow neither.
    let client = cluster.topology.client_ns().to_owned();
    run_in(
        &client,
        &[
            "ip",
            "-6",
            "neigh",
            "replace",
            VIP_ADDRESS,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth0",
            "nud",
            "stale",
        ],
    );

    // Heal: node 1 yields (lower priority, §6.4.3); node 0 hears a second
    // master and re-sends its NA burst at once (the ARP policy), which
    // points the client back at it.
    for index in 0..2 {
        block_ipv6_vrrp(&cluster, index, false);
    }
    wait_master(&cluster, 0, &[1]);
    let mac = mac_text(&cluster, 0);
    let mut last = String::new();
    let announced = poll_until(WAIT, || {
        last = run_in(
            &client,
            &["ip", "-6", "neigh", "show", VIP_ADDRESS, "dev", "eth0"],
        );
        last.contains(&mac) && last.contains("router")
    });
    assert!(
        announced,
        "after the heal the client's entry for {VIP_ADDRESS} is not node 0's ({mac}): {last}"
    );
    assert!(!cluster.events(0, "master_conflict").is_empty());
}

#[test]
fn a_dual_stack_vrrp6_advertises_at_its_own_interval() {
    if !require_root() {
        return;
    }
    // [vrrp6] at 370 ms, unlike [vrrp]: the backup's [vrrp6] router learns
    // Master_Adver_Interval from the Max Adver Int field of the adverts it
    // receives on the wire (RFC 5798 §6.4.2), so it shows what they carry.
    let interval6 = Duration::from_millis(370);
    let mut builder = ClusterBuilder::new(2);
    for index in 0..2 {
        builder = builder.node(index, |spec| {
            spec.vrrp6_virtual_ips = vec![VIP_LL.to_owned(), VIP.to_owned()];
            spec.vrrp6_advert_interval = Some(interval6);
        });
    }
    let mut cluster = builder.prepare();
    cluster_ipv6_ready(&cluster);
    for index in 0..2 {
        cluster.start(index);
    }
    wait_dual_master(&cluster, 0, &[1]);
    let ms6 = interval6.as_millis() as u64;
    cluster.wait_until("node 1's [vrrp6] learned 370 ms from the wire", WAIT, |c| {
        c.try_status(0).is_ok_and(|s| {
            s.master_advert_interval_ms != ms6
                && s.vrrp6
                    .is_some_and(|v6| v6.advert_interval_ms == ms6 && v6.adverts_sent > 0)
        }) && c.try_status(1).is_ok_and(|s| {
            s.master_advert_interval_ms != ms6
                && s.vrrp6.is_some_and(|v6| {
                    v6.adverts_received > 0 && v6.master_advert_interval_ms == ms6
                })
        })
    });
}
