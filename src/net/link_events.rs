//! The kernel's word that an interface changed: its link (up/down,
//! carrier) or its addresses (a VIP added or removed, also by hand).
//!
//! The agent used to poll the carrier ten times a second and noticed a
//! VIP removed by hand only at the next health check. Both systems tell a
//! listening socket instead, at once and for free while nothing changes:
//!
//! - Linux: a `NETLINK_ROUTE` socket bound to the `RTMGRP_LINK` and
//!   `RTMGRP_IPV4_IFADDR` groups receives `RTM_NEWLINK`/`RTM_DELLINK` and
//!   `RTM_NEWADDR`/`RTM_DELADDR` (rtnetlink(7)). A receive queue that
//!   overflowed says so with `ENOBUFS`: then anything may have changed.
//! - FreeBSD: a `PF_ROUTE` socket receives `RTM_IFINFO` (flags and link
//!   state, sent by `rt_ifmsg` from `if_link_state_change` and `if_up`/
//!   `if_down`), `RTM_NEWADDR`/`RTM_DELADDR` (`rt_newaddrmsg_fib`) and
//!   `RTM_IFANNOUNCE` (route(4); sys/net/route.h, sys/net/rtsock.c). It
//!   has no `ROUTE_MSGFILTER` (OpenBSD's), so the route messages it also
//!   carries are skipped here; opening it for `AF_INET` keeps out the
//!   other families' address and route messages.
//!
//! What a message says is only a hint: the agent reads the state itself
//! (carrier ioctl, getifaddrs) when woken, and keeps a slow poll as a
//! safety net for a message the kernel dropped. The parsers are pure and
//! compiled on every system for their tests; the socket is the system's.

use std::io;

/// What changed on the watched interface, as far as the messages say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Its flags or link state (carrier), or it came or went.
    pub link: bool,
    /// An address was added to it or removed from it.
    pub addresses: bool,
}

impl Change {
    /// Anything may have changed (messages were lost).
    pub const ALL: Change = Change {
        link: true,
        addresses: true,
    };

    /// Whether the messages said anything about the interface.
    pub fn any(self) -> bool {
        self.link || self.addresses
    }

    fn merge(&mut self, other: Change) {
        self.link |= other.link;
        self.addresses |= other.addresses;
    }
}

/// Linux rtnetlink messages (linux/netlink.h, linux/rtnetlink.h,
/// linux/if_link.h, linux/if_addr.h).
#[cfg(any(target_os = "linux", test))]
pub mod netlink {
    use super::Change;

    /// `struct nlmsghdr`: length (u32), type (u16), flags, seq, pid.
    const HEADER_LEN: usize = 16;
    /// `NLMSG_ALIGNTO`.
    const ALIGN: usize = 4;
    /// `NLMSG_OVERRUN`: data lost.
    const NLMSG_OVERRUN: u16 = 4;
    /// `RTM_NEWLINK`, `RTM_DELLINK`: followed by a `struct ifinfomsg`
    /// (family u8, pad u8, type u16, index i32, flags u32, change u32).
    const RTM_NEWLINK: u16 = 16;
    const RTM_DELLINK: u16 = 17;
    /// `RTM_NEWADDR`, `RTM_DELADDR`: followed by a `struct ifaddrmsg`
    /// (family u8, prefixlen u8, flags u8, scope u8, index u32).
    const RTM_NEWADDR: u16 = 20;
    const RTM_DELADDR: u16 = 21;
    /// The index's offset in both bodies.
    const INDEX_OFFSET: usize = 4;

    /// The multicast groups to bind to: `RTMGRP_LINK | RTMGRP_IPV4_IFADDR`.
    pub const GROUPS: u32 = 0x1 | 0x10;

    /// What one receive of messages says about interface `ifindex`.
    /// Messages are in host byte order; a truncated one ends the walk.
    pub fn changes(buf: &[u8], ifindex: u32) -> Change {
        let mut change = Change::default();
        let mut rest = buf;
        while rest.len() >= HEADER_LEN {
            let len = u32_at(rest, 0).map_or(0, |l| l as usize);
            let kind = u16_at(rest, 4).unwrap_or(0);
            if len < HEADER_LEN || len > rest.len() {
                break;
            }
            let body = rest.get(HEADER_LEN..len).unwrap_or(&[]);
            let index = u32_at(body, INDEX_OFFSET);
            match kind {
                NLMSG_OVERRUN => change.merge(Change::ALL),
                RTM_NEWLINK | RTM_DELLINK if index == Some(ifindex) => change.link = true,
                RTM_NEWADDR | RTM_DELADDR if index == Some(ifindex) => change.addresses = true,
                _ => {}
            }
            let aligned = len.div_ceil(ALIGN) * ALIGN;
            rest = rest.get(aligned..).unwrap_or(&[]);
        }
        change
    }

    fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
    }

    fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
    }
}

/// FreeBSD routing messages (sys/net/route.h, sys/net/if.h).
#[cfg(any(target_os = "freebsd", test))]
pub mod route {
    use super::Change;

    /// `RTM_VERSION` of FreeBSD 5 and later; other versions have other
    /// layouts and are skipped.
    const RTM_VERSION: u8 = 5;
    const RTM_NEWADDR: u8 = 0xc;
    const RTM_DELADDR: u8 = 0xd;
    const RTM_IFINFO: u8 = 0xe;
    const RTM_IFANNOUNCE: u8 = 0x11;
    /// `struct if_msghdr` and `struct ifa_msghdr` both start with msglen
    /// (u16), version (u8), type (u8), addrs (int), flags (int), then the
    /// index (u16) at offset 12.
    const INDEX_OFFSET: usize = 12;
    /// `struct if_announcemsghdr`: msglen, version, type, then the index
    /// (u16) at offset 4.
    const ANNOUNCE_INDEX_OFFSET: usize = 4;
    /// msglen, version and type.
    const COMMON_LEN: usize = 4;

    /// What one read of the routing socket says about interface `ifindex`.
    /// Each message is read whole (a routing socket is a datagram-like
    /// raw socket); several are walked by `rtm_msglen` all the same.
    pub fn changes(buf: &[u8], ifindex: u32) -> Change {
        let mut change = Change::default();
        let mut rest = buf;
        while rest.len() >= COMMON_LEN {
            let len = usize::from(u16_at(rest, 0).unwrap_or(0));
            if len < COMMON_LEN || len > rest.len() {
                break;
            }
            let message = rest.get(..len).unwrap_or(&[]);
            let version = message.get(2).copied().unwrap_or(0);
            let kind = message.get(3).copied().unwrap_or(0);
            let index = |offset| u16_at(message, offset).map(u32::from);
            if version == RTM_VERSION {
                match kind {
                    RTM_IFINFO if index(INDEX_OFFSET) == Some(ifindex) => change.link = true,
                    RTM_NEWADDR | RTM_DELADDR if index(INDEX_OFFSET) == Some(ifindex) => {
                        change.addresses = true;
                    }
                    // The interface came or went: both may have changed.
                    RTM_IFANNOUNCE if index(ANNOUNCE_INDEX_OFFSET) == Some(ifindex) => {
                        change.merge(Change::ALL);
                    }
                    _ => {}
                }
            }
            rest = rest.get(len..).unwrap_or(&[]);
        }
        change
    }

    fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
    }
}

/// Largest read: many messages of a burst (an interface with its
/// addresses going down) fit in one.
const READ_BUFFER: usize = 16 * 1024;

/// A socket on which the kernel announces interface changes.
pub struct LinkEvents {
    fd: tokio::io::unix::AsyncFd<socket2::Socket>,
    ifindex: u32,
    buf: Vec<u8>,
}

impl LinkEvents {
    /// Listens for changes of the interface with index `ifindex`.
    pub fn open(ifindex: u32) -> io::Result<LinkEvents> {
        let socket = open_socket()?;
        socket.set_nonblocking(true)?;
        // SAFETY: `register` needs the fd to stay open and the same for the
        // AsyncFd's whole life. `Socket` owns its fd and closes it only on
        // drop, and the AsyncFd is never unwrapped (no `into_inner`, no
        // `get_mut`), so the fd lives exactly as long as the registration.
        let fd =
            unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(LinkEvents {
            fd,
            ifindex,
            buf: vec![0; READ_BUFFER],
        })
    }

    /// Waits until a message concerns the interface (or messages were
    /// lost). Cancel safe: a message read is judged before returning, and
    /// one not yet read stays in the socket.
    pub async fn next(&mut self) -> io::Result<Change> {
        loop {
            let ifindex = self.ifindex;
            let buf = &mut self.buf;
            let read = self
                .fd
                .async_io(tokio::io::Interest::READABLE, |socket| {
                    use std::io::Read;
                    let mut reader: &socket2::Socket = socket;
                    reader.read(buf)
                })
                .await;
            let change = match read {
                Ok(0) => continue,
                Ok(len) => parse(self.buf.get(..len).unwrap_or(&[]), ifindex),
                // Linux: the receive queue overflowed and messages were
                // dropped (netlink(7)); the state must be read afresh.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Change::ALL,
                Err(e) => return Err(e),
            };
            if change.any() {
                return Ok(change);
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn parse(buf: &[u8], ifindex: u32) -> Change {
    netlink::changes(buf, ifindex)
}

#[cfg(target_os = "freebsd")]
fn parse(buf: &[u8], ifindex: u32) -> Change {
    route::changes(buf, ifindex)
}

#[cfg(target_os = "linux")]
fn open_socket() -> io::Result<socket2::Socket> {
    use std::os::fd::AsRawFd;
    let socket = socket2::Socket::new(
        socket2::Domain::from(libc::AF_NETLINK),
        socket2::Type::RAW,
        Some(socket2::Protocol::from(libc::NETLINK_ROUTE)),
    )?;
    // Port id 0: the kernel assigns one.
    let address = nix::sys::socket::NetlinkAddr::new(0, netlink::GROUPS);
    nix::sys::socket::bind(socket.as_raw_fd(), &address)?;
    Ok(socket)
}

#[cfg(target_os = "freebsd")]
fn open_socket() -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::from(libc::PF_ROUTE),
        socket2::Type::RAW,
        Some(socket2::Protocol::from(libc::AF_INET)),
    )?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One rtnetlink message with a body whose index is at offset 4.
    fn nl_message(kind: u16, index: u32, body_len: usize) -> Vec<u8> {
        let len = 16 + body_len;
        let mut m = Vec::new();
        m.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        let mut body = vec![0u8; body_len];
        if let Some(slot) = body.get_mut(4..8) {
            slot.copy_from_slice(&index.to_ne_bytes());
        }
        m.extend_from_slice(&body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    #[test]
    fn netlink_link_and_address_messages_of_our_interface() {
        assert_eq!(
            netlink::changes(&nl_message(16, 7, 16), 7),
            Change {
                link: true,
                addresses: false
            }
        );
        assert_eq!(
            netlink::changes(&nl_message(21, 7, 8), 7),
            Change {
                link: false,
                addresses: true
            }
        );
    }

    #[test]
    fn netlink_messages_of_other_interfaces_and_kinds_are_skipped() {
        let mut buf = nl_message(16, 3, 16);
        buf.extend(nl_message(20, 3, 8));
        // RTM_NEWROUTE of our interface: not a link or address change.
        buf.extend(nl_message(24, 7, 12));
        assert_eq!(netlink::changes(&buf, 7), Change::default());
    }

    #[test]
    fn netlink_walks_several_messages_with_padding() {
        // A 9-byte body pads to 12: the next message must still be found.
        let mut buf = nl_message(24, 7, 9);
        buf.extend(nl_message(20, 7, 8));
        buf.extend(nl_message(17, 7, 16));
        assert_eq!(netlink::changes(&buf, 7), Change::ALL);
    }

    #[test]
    fn netlink_overrun_means_anything_changed() {
        assert_eq!(netlink::changes(&nl_message(4, 0, 0), 7), Change::ALL);
    }

    #[test]
    fn netlink_garbage_and_truncation_never_panic() {
        assert_eq!(netlink::changes(&[], 7), Change::default());
        let mut truncated = nl_message(16, 7, 16);
        truncated.truncate(20);
        assert_eq!(netlink::changes(&truncated, 7), Change::default());
        // A length shorter than the header would loop for ever if trusted.
        let mut zero = nl_message(16, 7, 16);
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(netlink::changes(&zero, 7), Change::default());
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = netlink::changes(&junk, 7);
        }
    }

    /// One FreeBSD routing message with the index at `index_at`.
    fn rt_message(kind: u8, index: u16, index_at: usize, len: usize) -> Vec<u8> {
        let mut m = vec![0u8; len];
        m[0..2].copy_from_slice(&u16::try_from(len).unwrap().to_ne_bytes());
        m[2] = 5;
        m[3] = kind;
        m[index_at..index_at + 2].copy_from_slice(&index.to_ne_bytes());
        m
    }

    #[test]
    fn route_ifinfo_newaddr_deladdr_and_announce_of_our_interface() {
        // sizeof(struct if_msghdr) on amd64 is 168, ifa_msghdr 152.
        assert_eq!(
            route::changes(&rt_message(0xe, 2, 12, 168), 2),
            Change {
                link: true,
                addresses: false
            }
        );
        let mut buf = rt_message(0xd, 2, 12, 152);
        buf.extend(rt_message(0xc, 2, 12, 152));
        assert_eq!(
            route::changes(&buf, 2),
            Change {
                link: false,
                addresses: true
            }
        );
        assert_eq!(route::changes(&rt_message(0x11, 2, 4, 24), 2), Change::ALL);
    }

    #[test]
    fn route_messages_of_other_interfaces_versions_and_routes_are_skipped() {
        let mut buf = rt_message(0xe, 3, 12, 168);
        // RTM_ADD (a route) with our index in the rtm_index slot (offset 4).
        buf.extend(rt_message(0x1, 2, 4, 92));
        let mut old = rt_message(0xe, 2, 12, 168);
        old[2] = 4;
        buf.extend(old);
        assert_eq!(route::changes(&buf, 2), Change::default());
    }

    #[test]
    fn route_garbage_and_truncation_never_panic() {
        assert_eq!(route::changes(&[], 2), Change::default());
        let mut short = rt_message(0xe, 2, 12, 168);
        short.truncate(100);
        assert_eq!(route::changes(&short, 2), Change::default());
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 53 % 241) as u8).collect();
            let _ = route::changes(&junk, 2);
        }
    }

    /// The real socket opens and binds without privilege (rtnetlink's
    /// link and address groups are open to every user); that it wakes on
    /// a change is shown with the agent in namespaces (a VIP removed by
    /// hand, lab/tests/netns_health.rs).
    #[cfg(target_os = "linux")]
    #[test]
    fn netlink_socket_opens() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let events = LinkEvents::open(1);
            assert!(events.is_ok(), "{:?}", events.err());
        });
    }
}
