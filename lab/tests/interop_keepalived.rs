//! Interop: our agent and keepalived 2.2.7 (Debian's package) in one VRRPv3
//! virtual router, in network namespaces. keepalived is a real peer here:
//! its adverts must pass our receive checks (checksum with the IPv4
//! pseudo-header, TTL 255, the address list), and ours must pass its.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{require_root, Cluster, ClusterBuilder, WAIT};
use rcbsd_failover::wire::VrrpState;
use rcbsd_lab::agents::NodeSpec;
use rcbsd_lab::netns::node_address;

/// keepalived running in node `index`'s namespace; stopped (SIGTERM, then
/// SIGKILL) when dropped.
struct Keepalived {
    child: Child,
}

impl Keepalived {
    fn start(cluster: &Cluster, index: usize, spec: &NodeSpec) -> Option<Keepalived> {
        let keepalived = ["/usr/sbin/keepalived", "/sbin/keepalived"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(keepalived) = keepalived else {
            // tools/test installs it; a developer machine may not have it.
            assert!(
                std::env::var_os("RCBSD_TESTS_STRICT").is_none_or(|v| v != "1"),
                "{} would skip ({}) and RCBSD_TESTS_STRICT=1 is set (tools/test): every test must run",
                std::thread::current().name().unwrap_or("test"),
                "keepalived is not installed"
            );
            eprintln!("\n*** SKIP: keepalived is not installed (apt-get install keepalived) ***\n");
            return None;
        };
        let dir = cluster.topology.run_dir();
        let conf = dir.join(format!("{}-keepalived.conf", spec.name));
        std::fs::write(&conf, spec.keepalived_conf()).expect("write keepalived.conf");
        let pid = |kind: &str| dir.join(format!("{}-{kind}.pid", spec.name));
        let log = std::fs::File::create(dir.join(format!("{}-keepalived.log", spec.name)))
            .expect("keepalived log");
        let child = Command::new("ip")
            .args(["netns", "exec", cluster.ns(index), keepalived])
            .args(["-n", "-l", "-D", "-G", "-P", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(pid("keepalived"))
            .arg("-r")
            .arg(pid("vrrp"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start keepalived");
        Some(Keepalived { child })
    }

    /// SIGTERM: keepalived resigns with a priority-0 advert.
    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn keepalived_master_is_followed_and_its_resignation_hands_over_to_us() {
    if !require_root() {
        return;
    }
    // Node 0: our agent at 150. Node 1: keepalived at 200, same VRID,
    // interval and VIP.
    let mut cluster = ClusterBuilder::new(2).prepare();
    let mut spec = NodeSpec::lab(1, Duration::from_millis(100), true);
    spec.priority = 200;
    cluster.start(0);
    cluster.wait_master(0, WAIT);

    let Some(mut keepalived) = Keepalived::start(&cluster, 1, &spec) else {
        return;
    };
    // keepalived preempts us: our agent must accept its adverts (checksum,
    // TTL, address list) and yield, and keepalived must accept ours.
    cluster.wait_until(
        "keepalived (node 1) master, our agent backup following it",
        WAIT,
        |c| {
            c.vip_holders() == [1]
                && c.try_status(0).is_ok_and(|s| {
                    s.state == VrrpState::Backup && s.master == Some(node_address(1).into())
                })
        },
    );
    let status = cluster.status(0);
    assert!(
        status
            .counters
            .checksum_forms
            .get("pseudo-header")
            .copied()
            .unwrap_or(0)
            > 0,
        "{status:?}"
    );
    assert!(
        status.counters.drops.is_empty(),
        "drops: {:?}",
        status.counters.drops
    );

    // keepalived stops: its priority-0 advert makes us take over after
    // Skew_Time (RFC 5798 §6.4.2), reason master_resigned.
    keepalived.stop();
    cluster.wait_master(0, WAIT);
    let log = cluster.agents.get(0).expect("node 0").log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"state_change\"") && l.contains("master_resigned")),
        "{log}"
    );
}

#[test]
fn our_master_is_followed_by_keepalived() {
    if !require_root() {
        return;
    }
    // Node 0: our agent at 150 (master). Node 1: keepalived at 100 must stay
    // backup: it accepts our adverts (it would take the VIP otherwise).
    let mut cluster = ClusterBuilder::new(2).prepare();
    cluster.start(0);
    cluster.wait_master(0, WAIT);
    let spec = NodeSpec::lab(1, Duration::from_millis(100), true);
    let Some(_keepalived) = Keepalived::start(&cluster, 1, &spec) else {
        return;
    };
    // Many Master_Down_Intervals (0.3 s + skew): a keepalived that dropped
    // our adverts would have become master and added the VIP.
    let second_holder = common::poll_until(Duration::from_secs(3), || {
        cluster.vip_holders().contains(&1)
    });
    assert!(
        !second_holder,
        "keepalived took the VIP: it rejects our adverts"
    );
    assert_eq!(cluster.status(0).state, VrrpState::Master);
    assert_eq!(cluster.vip_holders(), vec![0]);
}

// ----- IPv6 (issue 15) --------------------------------------------------------
//
// keepalived makes an instance IPv6 when its virtual addresses are (the
// first one decides, vrrp_parser.c); it sends from the interface's
// link-local address to ff02::12 with hop limit 255 and the IPv6
// pseudo-header checksum, as we do. Both lists start with the virtual
// router's link-local address (RFC 5798 §5.2.9).

/// A two-node cluster prepared for IPv6 (DAD off, link-local ready), our
/// agent on node 0 with the IPv6 VIPs, and keepalived's spec for node 1.
fn ipv6_pair(keepalived_priority: u8) -> (Cluster, NodeSpec) {
    let mut cluster = ClusterBuilder::new(2).node(0, common::ipv6_vips).prepare();
    common::cluster_ipv6_ready(&cluster);
    let mut spec = NodeSpec::lab(1, Duration::from_millis(100), true);
    common::ipv6_vips(&mut spec);
    spec.priority = keepalived_priority;
    cluster.start(0);
    let us = std::net::IpAddr::V6(common::link_local6(&cluster, 0));
    cluster.wait_until("our agent the IPv6 master", WAIT, |c| {
        c.try_status(0)
            .is_ok_and(|s| s.state == VrrpState::Master && s.master == Some(us))
            && common::holds_vip6(c.ns(0))
    });
    (cluster, spec)
}

#[test]
fn ipv6_keepalived_master_is_followed_and_its_resignation_hands_over_to_us() {
    if !require_root() {
        return;
    }
    let (cluster, spec) = ipv6_pair(200);
    let Some(mut keepalived) = Keepalived::start(&cluster, 1, &spec) else {
        return;
    };
    let them = std::net::IpAddr::V6(common::link_local6(&cluster, 1));
    cluster.wait_until(
        "keepalived (node 1) the IPv6 master, our agent backup following it",
        WAIT,
        |c| {
            common::holds_vip6(c.ns(1))
                && !common::holds_vip6(c.ns(0))
                && c.try_status(0)
                    .is_ok_and(|s| s.state == VrrpState::Backup && s.master == Some(them))
        },
    );
    let status = cluster.status(0);
    assert!(status.counters.adverts_received > 0, "{status:?}");
    assert!(
        status.counters.drops.is_empty(),
        "drops: {:?}",
        status.counters.drops
    );

    keepalived.stop();
    let us = std::net::IpAddr::V6(common::link_local6(&cluster, 0));
    cluster.wait_until("our agent the IPv6 master again", WAIT, |c| {
        c.try_status(0)
            .is_ok_and(|s| s.state == VrrpState::Master && s.master == Some(us))
            && common::holds_vip6(c.ns(0))
    });
    let log = cluster.agents.get(0).expect("node 0").log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"state_change\"") && l.contains("master_resigned")),
        "{log}"
    );
}

#[test]
fn ipv6_our_master_is_followed_by_keepalived() {
    if !require_root() {
        return;
    }
    let (cluster, spec) = ipv6_pair(100);
    let Some(mut keepalived) = Keepalived::start(&cluster, 1, &spec) else {
        return;
    };
    // Many Master_Down_Intervals: a keepalived that dropped our IPv6
    // adverts would have become master and added the VIP.
    let second_holder =
        common::poll_until(Duration::from_secs(3), || common::holds_vip6(cluster.ns(1)));
    assert!(
        !second_holder,
        "keepalived took the IPv6 VIP: it rejects our adverts"
    );
    assert_eq!(cluster.status(0).state, VrrpState::Master);
    assert!(common::holds_vip6(cluster.ns(0)));
    // ... and it is still running (a config it refused would end it).
    assert!(
        matches!(keepalived.child.try_wait(), Ok(None)),
        "keepalived exited"
    );
}
