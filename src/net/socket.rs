//! The raw IPv4 socket for IP protocol 112 (VRRP), registered with tokio.
//!
//! It sends VRRP payloads (the kernel writes the IP header, with TTL 255)
//! and receives whole datagrams *including* the IP header, with the index
//! of the interface they arrived on; judging them is [`crate::admit`]'s
//! job, not this module's.
//!
//! Two modes, chosen by `unicast_peers` (RFC 5798 only knows multicast;
//! unicast follows keepalived's `unicast_peer`). A socket never falls back
//! from one mode to the other:
//!
//! - **multicast** (no peers): join 224.0.0.18 on the configured interface
//!   only, send there with `IP_MULTICAST_IF` = our primary address. The
//!   socket is *not* bound: a raw socket bound to an address only receives
//!   datagrams whose destination is that address (Linux `raw_v4_match`,
//!   FreeBSD `rip_input` compare `inp_laddr` with `ip_dst`), which would
//!   filter out every advert sent to 224.0.0.18.
//! - **unicast** (peers): bound to our primary address, which both sets the
//!   source of what we send and accepts only datagrams addressed to us;
//!   every peer is checked at open (not multicast, not a broadcast, not one
//!   of our own addresses, routable) and refused with an error otherwise.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::error::NetError;
use super::iface;
use crate::admit::RecvMeta;

/// RFC 5798 §5.1.1.2: the IPv4 multicast address of VRRP.
pub const VRRP_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// RFC 5798 §5.1.1.4: IANA protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;

/// RFC 5798 §5.1.1.3: adverts are sent with TTL 255 (and receivers drop
/// any other TTL, so a routed packet can never pass for a local one).
pub const VRRP_TTL: u32 = 255;

/// IP precedence "internetwork control" (RFC 791 §3.1), as keepalived
/// sets: adverts keep flowing through queues that drop bulk traffic.
const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;

/// A send that finds the socket's queue full is tried this many more
/// times, [`SEND_RETRY_PAUSE`] apart, before it fails as a lost advert.
const SEND_RETRIES: u32 = 5;
const SEND_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// Receive queue asked for the VRRP socket: about 4 MiB, several thousand
/// packets, tens of milliseconds of a line-rate flood.
const RECV_QUEUE_BYTES: usize = 4 << 20;

/// What [`VrrpSocket::open`] needs to know, resolved from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketConfig {
    /// Name of the interface adverts are sent and received on.
    pub interface: String,
    /// That interface's index (if_nametoindex(3)), to match received packets'
    /// `IP_PKTINFO` / `IP_RECVIF`.
    pub ifindex: u32,
    /// Our primary address on the interface: the source of our adverts.
    pub source: Ipv4Addr,
    /// Empty: multicast to 224.0.0.18. Otherwise: unicast to each of them.
    pub unicast_peers: Vec<Ipv4Addr>,
}

impl SocketConfig {
    fn is_unicast(&self) -> bool {
        !self.unicast_peers.is_empty()
    }
}

/// The VRRP socket of one interface.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    unicast: bool,
}

impl VrrpSocket {
    /// Opens and configures the socket. Must be called inside a tokio
    /// runtime (it registers with the reactor).
    pub fn open(config: &SocketConfig) -> Result<VrrpSocket, NetError> {
        let own = iface::ipv4_addresses(&config.interface)?;
        if !own.iter().any(|&(address, _)| address == config.source) {
            return Err(NetError::SourceNotOnInterface {
                interface: config.interface.clone(),
                address: config.source,
            });
        }
        for &peer in &config.unicast_peers {
            check_peer(peer, config.source, &own)?;
        }

        let socket = open_raw(
            Domain::IPV4,
            "socket(AF_INET, SOCK_RAW, 112)",
            &config.interface,
        )?;
        let fail = |action: &'static str| move |error| socket_error(config, action, error);

        socket.set_ttl_v4(VRRP_TTL).map_err(fail("IP_TTL 255"))?;
        socket
            .set_tos_v4(TOS_INTERNETWORK_CONTROL)
            .map_err(fail("IP_TOS"))?;
        enable_receive_interface(&socket).map_err(fail(RECEIVE_INTERFACE_OPTION))?;
        // Linux delivers to a raw socket the multicast of every group any
        // socket on the host joined, on any interface, unless told not to.
        #[cfg(target_os = "linux")]
        socket
            .set_multicast_all_v4(false)
            .map_err(fail("IP_MULTICAST_ALL off"))?;

        if config.is_unicast() {
            socket
                .bind(&SockAddr::from(SocketAddrV4::new(config.source, 0)))
                .map_err(fail("bind to the source address"))?;
        } else {
            // By address: on Linux this also fixes the source of what we
            // send to 224.0.0.18 (`inet->mc_addr`), so a VIP added to the
            // interface later is never picked as the source; on FreeBSD the
            // kernel uses the interface's first address, our primary.
            socket
                .set_multicast_if_v4(&config.source)
                .map_err(fail("IP_MULTICAST_IF"))?;
            socket
                .set_multicast_ttl_v4(VRRP_TTL)
                .map_err(fail("IP_MULTICAST_TTL 255"))?;
            socket
                .set_multicast_loop_v4(false)
                .map_err(fail("IP_MULTICAST_LOOP off"))?;
            socket
                .join_multicast_v4_n(
                    &VRRP_MULTICAST,
                    &InterfaceIndexOrAddress::Index(config.ifindex),
                )
                .map_err(fail("join 224.0.0.18"))?;
        }

        let fd =
            register(socket).map_err(|error| socket_error(config, "register with tokio", error))?;
        Ok(VrrpSocket {
            fd,
            unicast: config.is_unicast(),
        })
    }

    /// Receives one datagram, IP header included, into `buf` and returns
    /// its length and metadata. A datagram longer than `buf` is cut to
    /// `buf.len()` (its IP total length then tells admission so). Cancel
    /// safe: no datagram is lost when the future is dropped.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, RecvMeta)> {
        self.fd
            .async_io(Interest::READABLE, |socket| recv_with_meta(socket, buf))
            .await
    }

    /// Sends one VRRP payload (no IP header) to `dst`: 224.0.0.18 in
    /// multicast mode, each peer in turn in unicast mode.
    pub async fn send_to(&self, vrrp_payload: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        if self.unicast && dst.is_multicast() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to send to {dst}: this socket is in unicast mode"),
            ));
        }
        let address = SockAddr::from(SocketAddrV4::new(dst, 0));
        let socket = self.fd.get_ref();
        let sent = send_now(|| socket.send_to(vrrp_payload, &address)).await?;
        if sent != vrrp_payload.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes to {dst}", vrrp_payload.len()),
            ));
        }
        Ok(())
    }
}

/// A non-blocking raw socket of IP protocol 112 for `domain` (`call` names
/// the system call in errors), with the large receive queue both families
/// need.
pub(super) fn open_raw(
    domain: Domain,
    call: &'static str,
    interface: &str,
) -> Result<Socket, NetError> {
    let socket =
        Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_VRRP))).map_err(|error| {
            match error.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => NetError::RawSocketPermission(error),
                _ => NetError::Socket {
                    interface: interface.to_owned(),
                    action: call,
                    error,
                },
            }
        })?;
    socket
        .set_nonblocking(true)
        .map_err(|error| NetError::Socket {
            interface: interface.to_owned(),
            action: "O_NONBLOCK",
            error,
        })?;
    // Every protocol-112 packet on the host lands in this queue; a flood
    // of junk must not push the master's adverts out of it before we
    // read them (docs/benchmarks.md, "Flood"). The kernel may cap the
    // size (net.core.rmem_max, kern.ipc.maxsockbuf): best effort.
    let _ = socket.set_recv_buffer_size(RECV_QUEUE_BYTES);
    Ok(socket)
}

/// Registers `socket` with tokio for reading only: with write interest
/// too, the kernel's "writable again" edge after every send (sk_write_space,
/// when the sent skb is freed) would wake the loop once more per packet.
/// Sends go straight to the socket instead ([`send_now`]).
pub(super) fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `register_with_interest` needs the fd to stay open and the
    // same for the AsyncFd's whole life. `Socket` owns its fd and closes
    // it only on drop, and the AsyncFd is never unwrapped (no
    // `into_inner`, no `get_mut`) by the callers, so the fd lives exactly
    // as long as the registration.
    unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Sends on a non-blocking socket registered with tokio for reading only
/// (registered for writing too, the kernel's "writable again" edge after
/// every send would wake the loop once more per packet). A full send queue
/// (a jammed link) is tried [`SEND_RETRIES`] more times, [`SEND_RETRY_PAUSE`]
/// apart, as a blocking send would wait, but never more than a few ms.
pub async fn send_now(mut send: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    let mut attempt = 0;
    loop {
        match send() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && attempt < SEND_RETRIES => {
                attempt += 1;
                tokio::time::sleep(SEND_RETRY_PAUSE).await;
            }
            result => return result,
        }
    }
}

fn socket_error(config: &SocketConfig, action: &'static str, error: io::Error) -> NetError {
    NetError::Socket {
        interface: config.interface.clone(),
        action,
        error,
    }
}

/// Why `peer` cannot be a unicast peer, given our addresses, if it cannot.
fn peer_problem(peer: Ipv4Addr, own: &[(Ipv4Addr, u8)]) -> Option<String> {
    if peer.is_unspecified() {
        return Some("0.0.0.0 is no address".into());
    }
    if peer.is_multicast() {
        return Some("it is a multicast address (leave unicast_peers empty for multicast)".into());
    }
    if peer.is_broadcast() {
        return Some("it is the limited broadcast address".into());
    }
    if peer.is_loopback() {
        return Some("it is a loopback address".into());
    }
    if own.iter().any(|&(address, _)| address == peer) {
        return Some("it is one of this node's own addresses".into());
    }
    if let Some(&(address, prefix)) = own
        .iter()
        .find(|&&(address, prefix)| directed_broadcast(address, prefix) == Some(peer))
    {
        return Some(format!(
            "it is the broadcast address of {address}/{prefix} on this interface"
        ));
    }
    None
}

/// The directed broadcast address of a subnet; /31 and /32 have none
/// (RFC 3021).
fn directed_broadcast(address: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix >= 31 {
        return None;
    }
    let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    Some(Ipv4Addr::from(u32::from(address) | host_bits))
}

fn check_peer(peer: Ipv4Addr, source: Ipv4Addr, own: &[(Ipv4Addr, u8)]) -> Result<(), NetError> {
    if let Some(reason) = peer_problem(peer, own) {
        return Err(NetError::UnusablePeer { peer, reason });
    }
    // A UDP connect() is a route lookup and nothing else: no packet leaves.
    // It fails with ENETUNREACH/EHOSTUNREACH when no route leads to the peer.
    let probe =
        UdpSocket::bind(SocketAddrV4::new(source, 0)).map_err(|e| NetError::UnusablePeer {
            peer,
            reason: format!("cannot check the route from {source}: {e}"),
        })?;
    probe
        .connect(SocketAddrV4::new(peer, 9))
        .map_err(|e| NetError::UnusablePeer {
            peer,
            reason: format!("no route from {source}: {e}"),
        })
}

/// Control-message buffer for one received datagram. Aligned for
/// `cmsghdr`, and roomy: FreeBSD's IP_RECVIF sockaddr_dl carries the
/// interface name and MAC after the index, and nix reads a whole
/// `sockaddr_dl` from it whatever `sdl_len` says.
#[repr(C, align(8))]
pub(super) struct CmsgBuffer(pub(super) [u8; 256]);

#[cfg(target_os = "linux")]
const RECEIVE_INTERFACE_OPTION: &str = "IP_PKTINFO";
#[cfg(not(target_os = "linux"))]
const RECEIVE_INTERFACE_OPTION: &str = "IP_RECVIF";

#[cfg(target_os = "linux")]
fn enable_receive_interface(socket: &Socket) -> io::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
        .map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn enable_receive_interface(socket: &Socket) -> io::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::Ipv4RecvIf, &true)
        .map_err(io::Error::from)
}

/// The interface index a control message reports, if it is the one we
/// asked for.
fn ifindex_of(message: ControlMessageOwned) -> Option<u32> {
    match message {
        #[cfg(target_os = "linux")]
        ControlMessageOwned::Ipv4PacketInfo(info) => u32::try_from(info.ipi_ifindex).ok(),
        #[cfg(not(target_os = "linux"))]
        ControlMessageOwned::Ipv4RecvIf(link) => Some(u32::from(link.sdl_index)),
        _ => None,
    }
}

fn recv_with_meta(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, RecvMeta)> {
    let mut cmsg = CmsgBuffer([0; 256]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let message = nix::sys::socket::recvmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg.0),
        MsgFlags::empty(),
    )?;
    // A truncated control area (MSG_CTRUNC) yields no interface: admission
    // then refuses the datagram rather than guessing where it came from.
    let ifindex = message
        .cmsgs()
        .ok()
        .and_then(|mut messages| messages.find_map(ifindex_of));
    Ok((message.bytes, RecvMeta { ifindex }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: [(Ipv4Addr, u8); 2] = [
        (Ipv4Addr::new(198, 18, 0, 1), 24),
        (Ipv4Addr::new(198, 19, 7, 9), 32),
    ];

    #[test]
    fn a_neighbour_is_a_usable_peer() {
        assert_eq!(peer_problem(Ipv4Addr::new(198, 18, 0, 2), &OWN), None);
    }

    #[test]
    fn multicast_broadcast_loopback_and_self_are_not_peers() {
        for peer in [
            VRRP_MULTICAST,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 255),
        ] {
            assert!(peer_problem(peer, &OWN).is_some(), "{peer} accepted");
        }
    }

    #[test]
    fn the_broadcast_reason_names_the_subnet() {
        let reason = peer_problem(Ipv4Addr::new(198, 18, 0, 255), &OWN).unwrap();
        assert!(reason.contains("198.18.0.1/24"), "{reason}");
    }

    #[test]
    fn directed_broadcast_of_prefixes() {
        let a = Ipv4Addr::new(198, 18, 3, 4);
        assert_eq!(
            directed_broadcast(a, 24),
            Some(Ipv4Addr::new(198, 18, 3, 255))
        );
        assert_eq!(
            directed_broadcast(a, 15),
            Some(Ipv4Addr::new(198, 19, 255, 255))
        );
        assert_eq!(directed_broadcast(a, 0), Some(Ipv4Addr::BROADCAST));
        assert_eq!(directed_broadcast(a, 31), None);
        assert_eq!(directed_broadcast(a, 32), None);
    }
}
