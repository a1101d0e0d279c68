//! The IPv6 network layer (issue 15) between two namespaces on the lab's
//! bridge, without the agent: the raw VRRP socket and its control messages,
//! admission of what it receives, VIPs added without DAD, and the
//! unsolicited Neighbor Advertisements of a new master.
//!
//! Addresses: link-local (fe80::/64, from the kernel) and 2001:db8::/64
//! only. The link-local addresses are waited for until DAD has finished
//! (no fixed sleep); the test's own global addresses are added `nodad`.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{poll_until, require_root, WAIT};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6};
use rcbsd_failover::admit::{self, v6::RecvMeta, DropReason, Policy};
use rcbsd_failover::config::VirtualIp6;
use rcbsd_failover::net::na::NaSender;
use rcbsd_failover::net::socket6::{SocketConfig6, VrrpSocket6};
use rcbsd_failover::net::vip::{self, LinuxIp};
use rcbsd_failover::net::{iface, vip::VipBackend};
use rcbsd_failover::wire::ndisc::NeighborAdvertisement;
use rcbsd_failover::wire::vrrp6::{Ipv6Advertisement, MULTICAST_GROUP};
use rcbsd_failover::wire::Centis;
use rcbsd_lab::cmd::{self, argv};
use rcbsd_lab::netns::{in_netns, Topology};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const VID: u8 = 61;
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const VIP_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x61);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Node `index`'s global test address, 2001:db8::11, ::12.
fn node_address(index: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11 + index as u16)
}

fn run_in(ns: &str, parts: &[&str]) -> Result<String, String> {
    let mut full = argv(&["ip", "netns", "exec", ns]);
    full.extend(parts.iter().map(|p| (*p).to_owned()));
    cmd::run(&full).map_err(|e| e.to_string())
}

/// Two nodes with IPv6 ready on eth0: the link-local address out of DAD,
/// and 2001:db8::1x/64 (nodad, the test's own).
fn topology() -> Topology {
    let topology = Topology::new(2).expect("topology");
    for index in 0..2 {
        let ns = topology.node_ns(index).unwrap().to_owned();
        let cidr = format!("{}/64", node_address(index));
        run_in(
            &ns,
            &["ip", "-6", "addr", "add", &cidr, "dev", "eth0", "nodad"],
        )
        .expect("global test address");
        let ready = poll_until(WAIT, || {
            run_in(&ns, &["ip", "-6", "addr", "show", "dev", "eth0"])
                .is_ok_and(|out| out.contains("fe80::") && !out.contains("tentative"))
        });
        assert!(ready, "{ns}: no link-local address out of DAD");
    }
    topology
}

fn link_local_of(ns: &str) -> (Ipv6Addr, u32) {
    in_netns(ns, || {
        (
            iface::link_local_address("eth0", &[]).expect("link-local"),
            iface::interface_index("eth0").expect("index"),
        )
    })
    .expect("in namespace")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// One message received on the VRRP socket.
#[derive(Debug)]
struct Received {
    bytes: Vec<u8>,
    source: Ipv6Addr,
    meta: RecvMeta,
}

/// Opens the IPv6 VRRP socket in `ns`, says so on `ready`, and collects
/// `count` messages (or what came within the deadline).
fn receive_in(
    ns: &str,
    count: usize,
    ready: mpsc::Sender<()>,
) -> std::thread::JoinHandle<Vec<Received>> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        rcbsd_lab::netns::enter_netns(&ns).expect("enter namespace");
        runtime().block_on(async move {
            let config = SocketConfig6 {
                interface: "eth0".into(),
                ifindex: iface::interface_index("eth0").unwrap(),
                source: iface::link_local_address("eth0", &[]).unwrap(),
            };
            let socket = VrrpSocket6::open(&config).expect("open the receiving socket");
            ready.send(()).unwrap();
            let mut got = Vec::new();
            let deadline = Instant::now() + WAIT;
            while got.len() < count {
                let mut buf = [0u8; 2048];
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, socket.recv(&mut buf)).await {
                    Ok(Ok((len, source, meta))) => got.push(Received {
                        bytes: buf[..len].to_vec(),
                        source,
                        meta,
                    }),
                    Ok(Err(e)) => panic!("recv: {e}"),
                    Err(_) => break,
                }
            }
            got
        })
    })
}

fn advert(priority: u8, source: Ipv6Addr) -> Vec<u8> {
    let addresses = [VIP_LL, VIP];
    let advert = Ipv6Advertisement {
        vrid: VID,
        priority,
        max_advert_interval: Centis(100),
        addresses: &addresses,
    };
    let mut buf = vec![0u8; advert.buffer_len()];
    advert
        .emit(&mut buf, source, MULTICAST_GROUP)
        .expect("emit");
    buf
}

#[test]
fn an_advert_arrives_with_pktinfo_and_hop_limit_and_passes_admission() {
    if !require_root() {
        return;
    }
    let topology = topology();
    let (sender_ns, receiver_ns) = (
        topology.node_ns(0).unwrap().to_owned(),
        topology.node_ns(1).unwrap().to_owned(),
    );
    let (sender_ll, sender_index) = link_local_of(&sender_ns);
    let (receiver_ll, receiver_index) = link_local_of(&receiver_ns);

    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = receive_in(&receiver_ns, 3, ready_tx);
    ready_rx.recv_timeout(WAIT).expect("receiver ready");

    in_netns(&sender_ns, move || {
        runtime().block_on(async move {
            let config = SocketConfig6 {
                interface: "eth0".into(),
                ifindex: sender_index,
                source: sender_ll,
            };
            // A global source is refused with a clear error (§5.1.2.1).
            let global = SocketConfig6 {
                source: node_address(0),
                ..config.clone()
            };
            let refused = VrrpSocket6::open(&global).expect_err("a global source");
            assert!(
                refused.to_string().contains("not a link-local address"),
                "{refused}"
            );
            let socket = VrrpSocket6::open(&config).expect("open the sending socket");
            assert_eq!(socket.source(), sender_ll);
            // 150: a good advert through our socket.
            socket.send(&advert(150, sender_ll)).await.expect("send");
            // 130: the same socket, the checksum broken: the kernel must
            // hand it to us (IPV6_CHECKSUM off) for admission to count.
            let mut broken = advert(130, sender_ll);
            broken[6] ^= 0xff;
            socket.send(&broken).await.expect("send broken");
        });
        // 140: hop limit 64, through a plain raw socket.
        let plain = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(112))).unwrap();
        plain.set_multicast_if_v6(sender_index).unwrap();
        plain.set_multicast_hops_v6(64).unwrap();
        let to = SockAddr::from(SocketAddrV6::new(MULTICAST_GROUP, 0, 0, sender_index));
        plain.send_to(&advert(140, sender_ll), &to).unwrap();
    })
    .expect("in the sender's namespace");

    let got = receiver.join().expect("receiver thread");
    assert_eq!(got.len(), 3, "received: {got:?}");
    let own = [receiver_ll];
    let virtual_ips = [VIP_LL, VIP];
    let policy = Policy {
        vrid: VID,
        ifindex: receiver_index,
        own_addresses: &own,
        unicast_peers: &[],
        virtual_ips: &virtual_ips,
        we_are_owner: false,
    };
    for message in &got {
        assert_eq!(message.source, sender_ll, "{message:?}");
        assert_eq!(message.meta.ifindex, Some(receiver_index), "{message:?}");
        assert_eq!(
            message.meta.destination,
            Some(MULTICAST_GROUP),
            "{message:?}"
        );
        let verdict = admit::v6::admit(&message.bytes, message.source, &message.meta, &policy);
        match message.bytes[2] {
            150 => {
                assert_eq!(message.meta.hop_limit, Some(255));
                let admitted = verdict.expect("the good advert is admitted");
                assert_eq!((admitted.source, admitted.priority), (sender_ll, 150));
            }
            140 => {
                assert_eq!(message.meta.hop_limit, Some(64));
                assert_eq!(verdict, Err(DropReason::BadTtl));
            }
            130 => {
                assert_eq!(message.meta.hop_limit, Some(255));
                assert_eq!(verdict, Err(DropReason::BadChecksum));
            }
            other => panic!("unexpected priority {other}"),
        }
    }
}

fn linux_ip() -> LinuxIp {
    LinuxIp {
        ip_path: "ip".into(),
    }
}

const VIP6: VirtualIp6 = VirtualIp6 {
    address: VIP,
    prefix_len: 64,
};

/// Runs `vip::ensure_present` (`add`) or `ensure_absent` in `ns`.
fn converge_in(ns: &str, add: bool) -> bool {
    in_netns(ns, move || {
        runtime().block_on(async move {
            let backend = linux_ip();
            if add {
                vip::ensure_present(&backend, "eth0", &VIP6).await
            } else {
                vip::ensure_absent(&backend, "eth0", &VIP6).await
            }
        })
    })
    .expect("in namespace")
    .expect("VIP command")
}

#[test]
fn a_vip_added_without_dad_is_not_tentative_and_answers_ping6() {
    if !require_root() {
        return;
    }
    let topology = topology();
    let (master, peer) = (
        topology.node_ns(0).unwrap().to_owned(),
        topology.node_ns(1).unwrap().to_owned(),
    );
    assert_eq!(
        linux_ip()
            .add_argv("eth0", &VIP6)
            .last()
            .map(String::as_str),
        Some("nodad")
    );
    assert!(converge_in(&master, true), "added");
    let shown = run_in(&master, &["ip", "-6", "addr", "show", "dev", "eth0"]).unwrap();
    let line = shown
        .lines()
        .find(|l| l.contains("2001:db8::100/64"))
        .unwrap_or_else(|| panic!("VIP missing: {shown}"));
    assert!(!line.contains("tentative"), "{line}");
    // The control: the same kind of address added with DAD is tentative
    // (so the check above can fail).
    run_in(
        &master,
        &["ip", "-6", "addr", "add", "2001:db8::200/64", "dev", "eth0"],
    )
    .unwrap();
    let shown = run_in(&master, &["ip", "-6", "addr", "show", "dev", "eth0"]).unwrap();
    let control = shown
        .lines()
        .find(|l| l.contains("2001:db8::200/64"))
        .unwrap_or_default();
    assert!(control.contains("tentative"), "{shown}");
    assert!(!converge_in(&master, true), "a second add changes nothing");
    let answered = poll_until(WAIT, || {
        run_in(
            &peer,
            &["ping", "-6", "-c", "1", "-W", "1", "2001:db8::100"],
        )
        .is_ok()
    });
    assert!(answered, "the VIP does not answer ping6 from the peer");
    assert!(converge_in(&master, false), "removed");
    assert!(
        !converge_in(&master, false),
        "a second removal changes nothing"
    );
    let shown = run_in(&master, &["ip", "-6", "addr", "show", "dev", "eth0"]).unwrap();
    assert!(!shown.contains("2001:db8::100"), "{shown}");
}

/// Waits in `ns` for a Neighbor Advertisement of `target`; returns it with
/// its source and hop limit.
fn receive_na_in(
    ns: &str,
    target: Ipv6Addr,
    ready: mpsc::Sender<()>,
) -> std::thread::JoinHandle<Option<(NeighborAdvertisement, Ipv6Addr, Option<i32>)>> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        rcbsd_lab::netns::enter_netns(&ns).expect("enter namespace");
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
        socket.set_recv_hoplimit_v6(true).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        ready.send(()).unwrap();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let mut buf = [0u8; 1500];
            let mut cmsg = [0u8; 128];
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let Ok(message) = nix::sys::socket::recvmsg::<SockaddrIn6>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) else {
                continue;
            };
            let hop_limit = message.cmsgs().ok().and_then(|mut all| {
                all.find_map(|c| match c {
                    ControlMessageOwned::Ipv6HopLimit(limit) => Some(limit),
                    _ => None,
                })
            });
            let source = message.address.map(|a| a.ip()).unwrap();
            let len = message.bytes;
            if let Ok(na) = NeighborAdvertisement::parse(&buf[..len], source, ALL_NODES) {
                if na.target == target {
                    return Some((na, source, hop_limit));
                }
            }
        }
        None
    })
}

#[test]
fn an_na_burst_reaches_the_peer_and_updates_its_neighbour_cache() {
    if !require_root() {
        return;
    }
    let topology = topology();
    let (master, peer) = (
        topology.node_ns(0).unwrap().to_owned(),
        topology.node_ns(1).unwrap().to_owned(),
    );
    assert!(converge_in(&master, true));
    // The peer believes the VIP lives at another MAC (the old master's).
    run_in(
        &peer,
        &[
            "ip",
            "-6",
            "neigh",
            "replace",
            "2001:db8::100",
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth0",
            "nud",
            "stale",
        ],
    )
    .unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = receive_na_in(&peer, VIP, ready_tx);
    ready_rx.recv_timeout(WAIT).expect("receiver ready");

    let (mac, source) = in_netns(&master, || {
        let mut sender = NaSender::open("eth0", &[VIP_LL]).expect("open the NA sender");
        // The burst: garp_master_repeat adverts, garp_interval apart.
        for _ in 0..3 {
            sender.send(VIP).expect("send an NA");
            std::thread::sleep(Duration::from_millis(20));
        }
        (sender.mac(), sender.source())
    })
    .expect("in the master's namespace");

    let (na, na_source, hop_limit) = receiver
        .join()
        .expect("receiver thread")
        .expect("the peer received the NA");
    assert_eq!(na, NeighborAdvertisement::unsolicited(VIP, mac));
    assert!(na.router && na.override_flag && !na.solicited);
    assert_eq!(na_source, source);
    assert!(source.is_unicast_link_local());
    assert_eq!(hop_limit, Some(255));

    let mac_text = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let mut last = String::new();
    let updated = poll_until(WAIT, || {
        last = run_in(
            &peer,
            &["ip", "-6", "neigh", "show", "2001:db8::100", "dev", "eth0"],
        )
        .unwrap_or_default();
        last.contains(&mac_text) && last.contains("router")
    });
    assert!(updated, "neighbour cache not updated to {mac_text}: {last}");
    assert!(converge_in(&master, false));
}
