//! The network edge on real sockets, in two network namespaces joined by a
//! veth pair: the raw VRRP socket (multicast and unicast), the VIP backend
//! and the gratuitous-ARP sender.
//!
//! Needs root (CI is root); without it each test says so on stderr and
//! passes without checking anything. Every test makes its own namespaces
//! (`rcbsdt-<pid>-<n>-a/b`, addresses from 198.18.0.0/15) and removes them
//! when it ends, also when it fails.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rcbsd_failover::admit::RecvMeta;
use rcbsd_failover::config::VirtualIp;
use rcbsd_failover::net::error::NetError;
use rcbsd_failover::net::garp::GarpSender;
use rcbsd_failover::net::iface;
use rcbsd_failover::net::socket::{SocketConfig, VrrpSocket, VRRP_MULTICAST};
use rcbsd_failover::net::vip;
use rcbsd_failover::wire::arp::{Frame, GratuitousArp};

const ADDR_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const IF_A: &str = "eth-a";
const IF_B: &str = "eth-b";
const WAIT: Duration = Duration::from_secs(5);

/// A VRRPv3 advertisement's shape (RFC 5798 §5.1): version 3, type 1,
/// VRID 51, priority 100, one address, interval 100 cs, one VIP. The
/// checksum is not computed: the socket does not look inside.
const ADVERT: [u8; 12] = [0x31, 51, 100, 1, 0x00, 100, 0xab, 0xcd, 198, 18, 0, 100];

static NEXT_PAIR: AtomicU32 = AtomicU32::new(0);

/// Two namespaces `a` and `b`, `eth-a` in one and `eth-b` in the other,
/// 198.18.0.1/24 and 198.18.0.2/24. Dropping it deletes both namespaces,
/// which deletes the veth pair too.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    /// `None` (and a loud note) when not root.
    fn new(test: &str) -> Option<Pair> {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var_os("RCBSD_TESTS_STRICT").is_none_or(|v| v != "1"),
                "{} would skip ({}) and RCBSD_TESTS_STRICT=1 is set (tools/test): every test must run",
                std::thread::current().name().unwrap_or("test"),
                "not root"
            );
            eprintln!("SKIPPED {test}: network namespace tests need root");
            return None;
        }
        let n = NEXT_PAIR.fetch_add(1, Ordering::Relaxed);
        let base = format!("rcbsdt-{}-{n}", std::process::id());
        let pair = Pair {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
        };
        pair.ip(&["netns", "add", &pair.a]);
        pair.ip(&["netns", "add", &pair.b]);
        // Created directly inside the namespaces: the names never exist in
        // the host's namespace, so they cannot clash with anything there.
        pair.ip(&[
            "link", "add", IF_A, "netns", &pair.a, "type", "veth", "peer", "name", IF_B, "netns",
            &pair.b,
        ]);
        for (ns, ifname, addr) in [(&pair.a, IF_A, ADDR_A), (&pair.b, IF_B, ADDR_B)] {
            pair.ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                ifname,
            ]);
            pair.ip(&["-n", ns, "link", "set", "lo", "up"]);
            pair.ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
        Some(pair)
    }

    fn ip(&self, args: &[&str]) {
        let output = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            output.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `work` on a thread of its own that has entered namespace `ns`
/// (setns changes only the calling thread), so sockets it opens and
/// commands it starts live there.
fn in_netns<R, F>(ns: &str, work: F) -> std::thread::JoinHandle<R>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("open the namespace");
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        work()
    })
}

/// A tokio runtime for the calling (namespace) thread.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn join<R>(handle: std::thread::JoinHandle<R>) -> R {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn socket_config(ifname: &str, source: Ipv4Addr, peers: &[Ipv4Addr]) -> SocketConfig {
    SocketConfig {
        interface: ifname.to_owned(),
        ifindex: iface::interface_index(ifname).expect("interface index"),
        source,
        unicast_peers: peers.to_vec(),
    }
}

/// What B's socket received, and B's interface index to compare with.
struct Received {
    datagram: Vec<u8>,
    meta: RecvMeta,
    b_ifindex: u32,
}

/// Opens a VRRP socket in B (peers `b_peers`), then one in A (peers
/// `a_peers`), runs `prepare_a` in A, sends [`ADVERT`] from A to `dst`
/// and returns the first datagram B receives.
fn send_a_to_b(
    pair: &Pair,
    a_peers: Vec<Ipv4Addr>,
    b_peers: Vec<Ipv4Addr>,
    dst: Ipv4Addr,
    prepare_a: fn(),
) -> Received {
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = in_netns(&pair.b, move || {
        runtime().block_on(async move {
            let config = socket_config(IF_B, ADDR_B, &b_peers);
            let socket = VrrpSocket::open(&config).expect("open the socket in B");
            ready_tx.send(()).expect("signal ready");
            let mut buf = [0u8; 2048];
            let (len, meta) = tokio::time::timeout(WAIT, socket.recv(&mut buf))
                .await
                .expect("B received nothing within 5 s")
                .expect("recv");
            Received {
                datagram: buf[..len].to_vec(),
                meta,
                b_ifindex: config.ifindex,
            }
        })
    });
    ready_rx.recv_timeout(WAIT).expect("B's socket is open");
    let sender = in_netns(&pair.a, move || {
        prepare_a();
        runtime().block_on(async move {
            let socket = VrrpSocket::open(&socket_config(IF_A, ADDR_A, &a_peers))
                .expect("open the socket in A");
            socket.send_to(&ADVERT, dst).await.expect("send from A");
        })
    });
    join(sender);
    join(receiver)
}

/// Checks the IPv4 header B received (IHL from the header, never 20).
fn assert_vrrp_datagram(received: &Received, src: Ipv4Addr, dst: Ipv4Addr) {
    let d = &received.datagram;
    assert!(d.len() >= 20, "short datagram {d:?}");
    assert_eq!(d[0] >> 4, 4, "IP version");
    let ihl = usize::from(d[0] & 0x0f) * 4;
    assert_eq!(d[8], 255, "TTL must be 255 (RFC 5798 §5.1.1.3)");
    assert_eq!(d[9], 112, "protocol");
    assert_eq!(Ipv4Addr::new(d[12], d[13], d[14], d[15]), src, "source");
    assert_eq!(
        Ipv4Addr::new(d[16], d[17], d[18], d[19]),
        dst,
        "destination"
    );
    assert_eq!(&d[ihl..], &ADVERT, "payload");
    assert_eq!(received.meta.ifindex, Some(received.b_ifindex), "ifindex");
}

#[test]
fn multicast_advert_arrives_with_ttl_255_and_the_receiving_interface() {
    let Some(pair) = Pair::new("multicast_advert") else {
        return;
    };
    let received = send_a_to_b(&pair, vec![], vec![], VRRP_MULTICAST, || {});
    assert_vrrp_datagram(&received, ADDR_A, VRRP_MULTICAST);
}

#[test]
fn multicast_source_stays_the_primary_when_vips_are_on_the_interface() {
    let Some(pair) = Pair::new("multicast_source") else {
        return;
    };
    // A master holds its VIPs while it advertises. The worst case for the
    // kernel's source choice: a /32 VIP listed *before* the primary (as
    // after an operator re-adds the primary), so "the interface's first
    // address" would be the VIP; plus a secondary in the primary's subnet.
    let received = send_a_to_b(&pair, vec![], vec![], VRRP_MULTICAST, || {
        let backend = vip::platform_backend(std::path::Path::new("/sbin/ifconfig"));
        runtime().block_on(async {
            for (address, prefix_len) in [
                (Ipv4Addr::new(198, 19, 0, 100), 32),
                (Ipv4Addr::new(198, 18, 0, 100), 24),
            ] {
                let vip = VirtualIp {
                    address,
                    prefix_len,
                };
                assert!(vip::ensure_present(&*backend, IF_A, &vip)
                    .await
                    .expect("add VIP"));
            }
        });
        let primary = format!("{ADDR_A}/24");
        for verb in ["del", "add"] {
            let status = Command::new("ip")
                .args(["-4", "addr", verb, &primary, "dev", IF_A])
                .status()
                .expect("run ip");
            assert!(status.success(), "ip addr {verb} {primary}");
        }
        let listed = iface::ipv4_addresses(IF_A).expect("addresses");
        assert_eq!(listed.first(), Some(&(Ipv4Addr::new(198, 19, 0, 100), 32)));
    });
    assert_vrrp_datagram(&received, ADDR_A, VRRP_MULTICAST);
}

#[test]
fn unicast_advert_goes_to_the_peer_with_ttl_255() {
    let Some(pair) = Pair::new("unicast_advert") else {
        return;
    };
    let received = send_a_to_b(&pair, vec![ADDR_B], vec![ADDR_A], ADDR_B, || {});
    assert_vrrp_datagram(&received, ADDR_A, ADDR_B);
}

#[test]
fn unusable_unicast_peers_are_refused_never_replaced_by_multicast() {
    let Some(pair) = Pair::new("unusable_peers") else {
        return;
    };
    join(in_netns(&pair.a, || {
        runtime().block_on(async {
            for (peer, why) in [
                (VRRP_MULTICAST, "multicast"),
                (Ipv4Addr::new(198, 18, 0, 255), "broadcast"),
                (ADDR_A, "own addresses"),
                // In 198.18.0.0/15 but off every subnet, and no default
                // route in the namespace: checked by route lookup only.
                (Ipv4Addr::new(198, 19, 200, 1), "no route"),
            ] {
                let error = VrrpSocket::open(&socket_config(IF_A, ADDR_A, &[peer]))
                    .expect_err("an unusable peer must be refused");
                assert!(
                    matches!(&error, NetError::UnusablePeer { peer: p, .. } if *p == peer),
                    "{peer}: {error}"
                );
                assert!(error.to_string().contains(why), "{peer}: {error}");
            }

            let socket = VrrpSocket::open(&socket_config(IF_A, ADDR_A, &[ADDR_B])).expect("open");
            let error = socket.send_to(&ADVERT, VRRP_MULTICAST).await.unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
        })
    }));
}

#[test]
fn a_source_address_not_on_the_interface_is_refused() {
    let Some(pair) = Pair::new("foreign_source") else {
        return;
    };
    join(in_netns(&pair.a, || {
        runtime().block_on(async {
            let error = VrrpSocket::open(&socket_config(IF_A, ADDR_B, &[])).unwrap_err();
            assert!(
                matches!(error, NetError::SourceNotOnInterface { .. }),
                "{error}"
            );
        })
    }));
}

#[test]
fn vip_add_and_remove_are_idempotent() {
    let Some(pair) = Pair::new("vip_idempotent") else {
        return;
    };
    join(in_netns(&pair.a, || {
        let backend = vip::platform_backend(std::path::Path::new("/sbin/ifconfig"));
        let vip = VirtualIp {
            address: Ipv4Addr::new(198, 18, 0, 100),
            prefix_len: 24,
        };
        runtime().block_on(async {
            assert!(vip::ensure_present(&*backend, IF_A, &vip)
                .await
                .expect("add"));
            assert!(!vip::ensure_present(&*backend, IF_A, &vip)
                .await
                .expect("add again"));
            let addresses = iface::ipv4_addresses(IF_A).expect("addresses");
            assert!(addresses.contains(&(vip.address, 24)), "{addresses:?}");
            assert_eq!(
                iface::primary_address(IF_A, &[vip.address]).expect("primary"),
                ADDR_A
            );

            assert!(vip::ensure_absent(&*backend, IF_A, &vip)
                .await
                .expect("remove"));
            assert!(!vip::ensure_absent(&*backend, IF_A, &vip)
                .await
                .expect("remove again"));
            let addresses = iface::ipv4_addresses(IF_A).expect("addresses");
            assert_eq!(addresses, [(ADDR_A, 24)]);
        });
    }));
}

#[test]
fn a_missing_interface_makes_ensure_present_fail_with_the_argv() {
    let Some(pair) = Pair::new("vip_missing_iface") else {
        return;
    };
    join(in_netns(&pair.a, || {
        let backend = vip::platform_backend(std::path::Path::new("/sbin/ifconfig"));
        let vip = VirtualIp {
            address: Ipv4Addr::new(198, 18, 0, 100),
            prefix_len: 24,
        };
        runtime().block_on(async {
            let error = vip::ensure_present(&*backend, "eth-none", &vip)
                .await
                .unwrap_err();
            assert!(error.to_string().contains("eth-none"), "{error}");
        });
    }));
}

#[test]
fn gratuitous_arp_reaches_the_other_namespace_from_the_interface_mac() {
    let Some(pair) = Pair::new("garp") else {
        return;
    };
    let vip_address = Ipv4Addr::new(198, 18, 0, 100);
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = in_netns(&pair.b, move || {
        let socket = arp_listener();
        ready_tx.send(()).expect("signal ready");
        let mut buf = [0u8; 1600];
        loop {
            let len = nix::sys::socket::recv(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            )
            .expect("an ARP frame within 5 s");
            let Ok(frame) = Frame::new_checked(&buf[..len]) else {
                continue;
            };
            if let Ok(arp) = GratuitousArp::parse(&frame) {
                if arp.address == vip_address {
                    return (arp, frame.src_mac());
                }
            }
        }
    });
    ready_rx.recv_timeout(WAIT).expect("B listens");
    let a_mac = join(in_netns(&pair.a, move || {
        let mut sender = GarpSender::open(IF_A).expect("open the ARP sender");
        sender.send(vip_address).expect("send");
        iface::mac_address(IF_A).expect("A's MAC")
    }));
    let (arp, frame_source) = join(receiver);
    assert_eq!(arp.sender_mac, a_mac);
    assert_eq!(frame_source, a_mac);
}

/// An AF_PACKET socket receiving every ARP frame of the namespace, with a
/// 5 s receive timeout.
fn arp_listener() -> socket2::Socket {
    let eth_p_arp = i32::from(0x0806u16.to_be());
    let socket = socket2::Socket::new(
        socket2::Domain::PACKET,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(eth_p_arp)),
    )
    .expect("AF_PACKET socket");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    socket
}
