//! The raw IPv6 socket for next header 112 (VRRP over IPv6, RFC 5798
//! §5.1.2), registered with tokio: the IPv6 sibling of [`super::socket`].
//!
//! An IPv6 raw socket never sees the IPv6 header (RFC 3542 §3: "the
//! complete packet is never passed to the application"), so what IPv4
//! admission reads from the header comes from the socket here:
//!
//! - the **source** from `recvmsg`'s address;
//! - the **destination** and **interface** from `IPV6_PKTINFO`, enabled by
//!   `IPV6_RECVPKTINFO` (RFC 3542 §6.1);
//! - the **hop limit** from `IPV6_HOPLIMIT`, enabled by `IPV6_RECVHOPLIMIT`
//!   (RFC 3542 §6.3), which admission requires to be 255 (§7.1).
//!
//! Sending: to ff02::12 (§5.1.2.2) with hop limit 255 (`IPV6_MULTICAST_HOPS`,
//! §5.1.2.3) out of the configured interface (`IPV6_MULTICAST_IF`), and every
//! datagram carries an `IPV6_PKTINFO` naming the interface and our link-local
//! source (§5.1.2.1), so a VIP added to the interface is never picked as the
//! source. The socket is *not* bound: FreeBSD's `rip6_input`
//! (sys/netinet6/raw_ip6.c) skips a socket whose bound address differs from
//! the destination, which would filter out ff02::12 (Linux's `raw_v6_match`
//! would still pass joined groups, but one rule for both is simpler). Our own
//! adverts are not looped back (`IPV6_MULTICAST_LOOP` off).
//!
//! **The checksum is ours, not the kernel's.** RFC 3542 §3.1 lets a raw
//! socket ask the kernel to compute and verify a checksum at an offset
//! (`IPV6_CHECKSUM`, 6 for VRRP; keepalived does so). We leave it off (the
//! default for every protocol but ICMPv6: Linux `rawv6_init_sk`, FreeBSD
//! `rip6_attach` sets `in6p_cksum = -1`) because the kernel would checksum
//! the whole payload and drop bad ones silently: our `[auth]` trailer lies
//! outside the VRRP checksum (§5.2.8 covers the VRRP message only), and a
//! bad checksum must reach admission to be counted (`bad_checksum`).
//! [`crate::wire::vrrp6::Ipv6Advertisement::emit`] computes it over the IPv6
//! pseudo-header with the same source we put in `IPV6_PKTINFO`.
//!
//! Multicast only for now: `unicast_peers` over IPv6 is the agent wiring's
//! to add (admission already knows the mode).

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6};
use socket2::{Domain, Socket};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::error::NetError;
use super::iface;
use super::socket::{open_raw, register, send_now, CmsgBuffer};
use crate::admit::v6::RecvMeta;
use crate::wire::vrrp6::{HOP_LIMIT, MULTICAST_GROUP};

/// What [`VrrpSocket6::open`] needs, resolved from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketConfig6 {
    /// Name of the interface adverts are sent and received on.
    pub interface: String,
    /// Its index: the scope of ff02::12 and of the link-local source, and
    /// what `IPV6_PKTINFO` reports for received packets.
    pub ifindex: u32,
    /// Our link-local address on it ([`iface::link_local_address`]).
    pub source: Ipv6Addr,
}

/// The IPv6 VRRP socket of one interface.
#[derive(Debug)]
pub struct VrrpSocket6 {
    fd: AsyncFd<Socket>,
    interface: String,
    ifindex: u32,
    source: Ipv6Addr,
}

impl VrrpSocket6 {
    /// Opens and configures the socket. Must be called inside a tokio
    /// runtime (it registers with the reactor).
    pub fn open(config: &SocketConfig6) -> Result<VrrpSocket6, NetError> {
        let own = iface::ipv6_addresses(&config.interface)?;
        if !config.source.is_unicast_link_local()
            || !own.iter().any(|&(address, _)| address == config.source)
        {
            return Err(NetError::SourceNotLinkLocal {
                interface: config.interface.clone(),
                address: config.source,
            });
        }
        let socket = open_raw(
            Domain::IPV6,
            "socket(AF_INET6, SOCK_RAW, 112)",
            &config.interface,
        )?;
        let fail = |action: &'static str| {
            move |error| NetError::Socket {
                interface: config.interface.clone(),
                action,
                error,
            }
        };
        set_receive_options(&socket).map_err(fail("IPV6_RECVPKTINFO / IPV6_RECVHOPLIMIT"))?;
        // As for IPv4: Linux otherwise delivers the multicast of every group
        // any socket of the host joined, on any interface.
        #[cfg(target_os = "linux")]
        socket
            .set_multicast_all_v6(false)
            .map_err(fail("IPV6_MULTICAST_ALL off"))?;
        socket
            .set_multicast_if_v6(config.ifindex)
            .map_err(fail("IPV6_MULTICAST_IF"))?;
        socket
            .set_multicast_hops_v6(u32::from(HOP_LIMIT))
            .map_err(fail("IPV6_MULTICAST_HOPS 255"))?;
        socket
            .set_unicast_hops_v6(u32::from(HOP_LIMIT))
            .map_err(fail("IPV6_UNICAST_HOPS 255"))?;
        socket
            .set_multicast_loop_v6(false)
            .map_err(fail("IPV6_MULTICAST_LOOP off"))?;
        socket
            .join_multicast_v6(&MULTICAST_GROUP, config.ifindex)
            .map_err(fail("join ff02::12"))?;
        let fd = register(socket).map_err(fail("register with tokio"))?;
        Ok(VrrpSocket6 {
            fd,
            interface: config.interface.clone(),
            ifindex: config.ifindex,
            source: config.source,
        })
    }

    /// Our link-local source, for the advert's checksum (§5.2.8).
    pub fn source(&self) -> Ipv6Addr {
        self.source
    }

    /// Receives one VRRP message (no IPv6 header: raw IPv6 sockets strip
    /// it) into `buf`; returns its length, its source and what the control
    /// messages said. A message longer than `buf` is cut (admission then
    /// refuses its length). Cancel safe.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr, RecvMeta)> {
        self.fd
            .async_io(Interest::READABLE, |socket| recv_with_meta(socket, buf))
            .await
    }

    /// Sends one VRRP message (built with [`Self::source`] as the checksum's
    /// source) to ff02::12 on our interface, from our link-local address.
    pub async fn send(&self, vrrp_message: &[u8]) -> io::Result<()> {
        let info = pktinfo(self.source, self.ifindex);
        let destination = SockaddrIn6::from(SocketAddrV6::new(MULTICAST_GROUP, 0, 0, self.ifindex));
        let socket = self.fd.get_ref();
        let sent = send_now(|| {
            nix::sys::socket::sendmsg(
                socket.as_raw_fd(),
                &[io::IoSlice::new(vrrp_message)],
                &[ControlMessage::Ipv6PacketInfo(&info)],
                MsgFlags::empty(),
                Some(&destination),
            )
            .map_err(io::Error::from)
        })
        .await?;
        if sent != vrrp_message.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "sent {sent} of {} bytes to ff02::12 on {}",
                    vrrp_message.len(),
                    self.interface
                ),
            ));
        }
        Ok(())
    }
}

/// `IPV6_PKTINFO` for sending (RFC 3542 §6.1): `source` out of `ifindex`.
pub(super) fn pktinfo(source: Ipv6Addr, ifindex: u32) -> libc::in6_pktinfo {
    libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: source.octets(),
        },
        ipi6_ifindex: ifindex,
    }
}

fn set_receive_options(socket: &Socket) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)?;
    setsockopt(socket, sockopt::Ipv6RecvHopLimit, &true)?;
    Ok(())
}

/// Folds one control message into `meta`.
fn note(meta: &mut RecvMeta, message: ControlMessageOwned) {
    match message {
        ControlMessageOwned::Ipv6PacketInfo(info) => {
            meta.ifindex = Some(info.ipi6_ifindex);
            meta.destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
        }
        // An int per RFC 3542 §6.3; anything outside 0..=255 is no hop
        // limit we could compare, and admission refuses a missing one.
        ControlMessageOwned::Ipv6HopLimit(limit) => meta.hop_limit = u8::try_from(limit).ok(),
        _ => {}
    }
}

fn recv_with_meta(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr, RecvMeta)> {
    let mut cmsg = CmsgBuffer([0; 256]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let message = nix::sys::socket::recvmsg::<SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg.0),
        MsgFlags::empty(),
    )?;
    let mut meta = RecvMeta::default();
    // A truncated control area (MSG_CTRUNC) leaves fields unset: admission
    // then refuses the message rather than guessing.
    if let Ok(messages) = message.cmsgs() {
        for control in messages {
            note(&mut meta, control);
        }
    }
    // No address: unspecified, which admission refuses as not link-local.
    let source = message
        .address
        .map_or(Ipv6Addr::UNSPECIFIED, |address| address.ip());
    Ok((message.bytes, source, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_fill_the_metadata() {
        let mut meta = RecvMeta::default();
        note(
            &mut meta,
            ControlMessageOwned::Ipv6PacketInfo(pktinfo(MULTICAST_GROUP, 7)),
        );
        note(&mut meta, ControlMessageOwned::Ipv6HopLimit(255));
        assert_eq!(
            meta,
            RecvMeta {
                ifindex: Some(7),
                destination: Some(MULTICAST_GROUP),
                hop_limit: Some(255),
            }
        );
        note(&mut meta, ControlMessageOwned::Ipv6HopLimit(-1));
        assert_eq!(meta.hop_limit, None);
    }
}
