//! The sender of unsolicited Neighbor Advertisements for IPv6 virtual
//! addresses (RFC 5798 §6.4.1/§6.4.2, RFC 4861 §7.2.6): IPv6's gratuitous
//! ARP ([`super::garp`]), one advertisement per call. The burst timing is
//! the caller's, with the same knobs as ARP (`garp_master_repeat`,
//! `garp_interval`, `garp_master_delay`): the same policy for both
//! families, on becoming master and when a second master shows up.
//!
//! A raw ICMPv6 socket, not a link-layer one: the kernel writes the IPv6
//! header and computes the ICMPv6 checksum itself (RFC 3542 §3.1, always
//! on for ICMPv6 and not switchable off), and resolves ff02::1 to
//! 33:33:00:00:00:01. What it needs from us:
//!
//! - hop limit 255 (RFC 4861 §7.1.2: receivers drop any other), through
//!   `IPV6_MULTICAST_HOPS`;
//! - the interface, by `IPV6_MULTICAST_IF` and the `IPV6_PKTINFO` of every
//!   send, which also sets the source: the interface's own link-local
//!   address (§7.2.6 asks for "an address assigned to the interface";
//!   keepalived sends from the VIP itself, docs/election.md);
//! - no receive queue filling up: an ICMPv6 raw socket gets a copy of
//!   every ICMPv6 message of the host, so `ICMP6_FILTER` blocks all types
//!   (RFC 3542 §3.2) and nothing is ever queued.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn6};
use socket2::{Domain, Protocol, Socket, Type};

use super::error::NetError;
use super::iface;
use super::socket6::pktinfo;
use crate::wire::ipv6::ALL_NODES;
use crate::wire::ndisc::{NeighborAdvertisement, HOP_LIMIT, MESSAGE_LEN};

/// Sends unsolicited Neighbor Advertisements of virtual IPv6 addresses on
/// one interface, announcing the interface's own MAC address.
#[derive(Debug)]
pub struct NaSender {
    interface: String,
    ifindex: u32,
    mac: [u8; 6],
    source: Ipv6Addr,
    socket: Socket,
}

impl NaSender {
    /// Opens the ICMPv6 socket on `interface` and reads its index, MAC and
    /// link-local source (one that is not among `virtual_ips`).
    pub fn open(interface: &str, virtual_ips: &[Ipv6Addr]) -> Result<Self, NetError> {
        let ifindex = iface::interface_index(interface)?;
        let mac = iface::mac_address(interface)?;
        let source = iface::link_local_address(interface, virtual_ips)?;
        let fail = |action: &'static str| {
            move |error| NetError::NeighborAdvert {
                interface: interface.to_owned(),
                action,
                error,
            }
        };
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(fail(
            "socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6) (needs root or CAP_NET_RAW)",
        ))?;
        // A full transmit queue then fails one advertisement of the burst
        // instead of stalling the task that sends it (as for ARP).
        socket.set_nonblocking(true).map_err(fail("O_NONBLOCK"))?;
        block_all_input(&socket).map_err(fail("ICMP6_FILTER block all"))?;
        socket
            .set_multicast_if_v6(ifindex)
            .map_err(fail("IPV6_MULTICAST_IF"))?;
        socket
            .set_multicast_hops_v6(u32::from(HOP_LIMIT))
            .map_err(fail("IPV6_MULTICAST_HOPS 255"))?;
        socket
            .set_multicast_loop_v6(false)
            .map_err(fail("IPV6_MULTICAST_LOOP off"))?;
        Ok(NaSender {
            interface: interface.to_owned(),
            ifindex,
            mac,
            source,
            socket,
        })
    }

    /// The link-local address the advertisements are sent from.
    pub fn source(&self) -> Ipv6Addr {
        self.source
    }

    /// The MAC address announced as Target Link-Layer Address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Sends one unsolicited advertisement of `vip` at this interface's MAC
    /// to ff02::1: Router and Override set, Solicited clear (RFC 5798
    /// §6.4.2, [`NeighborAdvertisement::unsolicited`]).
    pub fn send(&mut self, vip: Ipv6Addr) -> Result<(), NetError> {
        let fail = |action: &'static str| {
            let interface = self.interface.clone();
            move |error| NetError::NeighborAdvert {
                interface,
                action,
                error,
            }
        };
        let mut message = [0u8; MESSAGE_LEN];
        // The checksum written here is the right one for this source; the
        // kernel computes it again anyway (RFC 3542 §3.1).
        let len = NeighborAdvertisement::unsolicited(vip, self.mac)
            .emit(&mut message, self.source, ALL_NODES)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))
            .map_err(fail("build a Neighbor Advertisement"))?;
        let info = pktinfo(self.source, self.ifindex);
        let destination = SockaddrIn6::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex));
        let sent = nix::sys::socket::sendmsg(
            self.socket.as_raw_fd(),
            &[io::IoSlice::new(message.get(..len).unwrap_or(&message))],
            &[ControlMessage::Ipv6PacketInfo(&info)],
            MsgFlags::empty(),
            Some(&destination),
        )
        .map_err(io::Error::from)
        .map_err(fail("send a Neighbor Advertisement"))?;
        if sent != len {
            return Err(fail("send a Neighbor Advertisement")(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {len} bytes"),
            )));
        }
        Ok(())
    }
}

/// `ICMP6_FILTER` (RFC 3542 §3.2): the socket only sends. The option and
/// the meaning of a set bit differ: Linux `ICMPV6_FILTER` = 1
/// (include/uapi/linux/icmpv6.h), a set bit *blocks* the type
/// (net/ipv6/raw.c `icmpv6_filter`); FreeBSD `ICMP6_FILTER` = 18
/// (sys/netinet6/in6.h), a set bit *passes* it (sys/netinet/icmp6.h:
/// `ICMP6_FILTER_SETBLOCKALL` zeroes the filter, `ICMP6_FILTER_SETPASS`
/// sets the type's bit).
#[cfg(target_os = "linux")]
const FILTER: (libc::c_int, [u32; 8]) = (1, [u32::MAX; 8]);
#[cfg(not(target_os = "linux"))]
const FILTER: (libc::c_int, [u32; 8]) = (18, [0; 8]);

fn block_all_input(socket: &Socket) -> io::Result<()> {
    let (option, filter) = FILTER;
    let len = std::mem::size_of_val(&filter) as libc::socklen_t;
    // SAFETY: `filter` is a live 32-byte `struct icmp6_filter` (eight
    // u32s) for the duration of the call, `len` is its size, and the
    // socket's fd is open while `socket` is borrowed; setsockopt only
    // reads the buffer.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            option,
            std::ptr::from_ref(&filter).cast::<libc::c_void>(),
            len,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
