//! The link-layer sender of gratuitous ARPs (RFC 5798 §6.4.2), one frame
//! per call; the burst timing (`garp_master_repeat`, `garp_interval`,
//! `garp_master_delay`) is the caller's, with tokio sleeps.
//!
//! Transmit only, by design. pnet_datalink always opens a channel with a
//! receive side: on Linux an `AF_PACKET`/`ETH_P_ALL` socket that copies
//! every frame of the interface into a buffer nobody reads, and puts the
//! interface in promiscuous mode by default. So:
//!
//! - **Linux**: our own `AF_PACKET` socket with protocol 0, which per
//!   packet(7) receives nothing at all; frames go out with `sendto` and a
//!   `sockaddr_ll` naming the interface.
//! - **FreeBSD**: pnet's BPF channel (the usual way to send a frame there),
//!   not promiscuous, with the smallest read buffer; its receive half is
//!   dropped at once. The BPF device keeps only its fixed store buffer in
//!   the kernel, never more, and counts what it cannot store as drops.

use std::net::Ipv4Addr;

use crate::wire::arp::GratuitousArp;

use super::error::NetError;
use super::iface;

/// Sends gratuitous ARP announcements of virtual IPs on one interface,
/// from the interface's own MAC address.
pub struct GarpSender {
    interface: String,
    mac: [u8; 6],
    link: platform::Link,
}

impl std::fmt::Debug for GarpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarpSender")
            .field("interface", &self.interface)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl GarpSender {
    /// Opens a transmit-only link-layer socket on `interface` and reads its MAC.
    pub fn open(interface: &str) -> Result<Self, NetError> {
        let mac = iface::mac_address(interface)?;
        let link = platform::Link::open(interface)?;
        Ok(GarpSender {
            interface: interface.to_owned(),
            mac,
            link,
        })
    }

    /// Broadcasts one announcement of `vip` at this interface's MAC.
    pub fn send(&mut self, vip: Ipv4Addr) -> Result<(), NetError> {
        let frame = GratuitousArp {
            sender_mac: self.mac,
            address: vip,
        }
        .to_frame();
        self.link.send(&frame).map_err(|error| NetError::Link {
            interface: self.interface.clone(),
            action: "send a gratuitous ARP",
            error,
        })
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use std::io;

    use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

    use crate::net::error::NetError;
    use crate::net::iface;
    use crate::wire::arp::ETHERTYPE_ARP;

    pub struct Link {
        socket: Socket,
        destination: SockAddr,
    }

    impl Link {
        pub fn open(interface: &str) -> Result<Link, NetError> {
            let ifindex = iface::interface_index(interface)?;
            let fail = |action: &'static str| {
                move |error| NetError::Link {
                    interface: interface.to_owned(),
                    action,
                    error,
                }
            };
            // Protocol 0: packet(7) "no packets are received".
            let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0))).map_err(
                fail("socket(AF_PACKET, SOCK_RAW, 0) (needs root or CAP_NET_RAW)"),
            )?;
            // A full transmit queue then fails one frame of the burst
            // instead of stalling the task that sends it.
            socket.set_nonblocking(true).map_err(fail("O_NONBLOCK"))?;
            let ifindex = i32::try_from(ifindex)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
                .map_err(fail("interface index"))?;
            Ok(Link {
                socket,
                destination: broadcast_on(ifindex),
            })
        }

        pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
            let sent = self.socket.send_to(frame, &self.destination)?;
            if sent != frame.len() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("sent {sent} of {} bytes", frame.len()),
                ));
            }
            Ok(())
        }
    }

    /// `sockaddr_ll` for "this interface, to the Ethernet broadcast".
    fn broadcast_on(ifindex: i32) -> SockAddr {
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: SockAddrStorage is a sockaddr_storage, which is larger
        // than and suitably aligned for sockaddr_ll; zeroed is a valid
        // sockaddr_ll.
        let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
        ll.sll_family = libc::AF_PACKET as libc::sa_family_t;
        ll.sll_protocol = ETHERTYPE_ARP.to_be();
        ll.sll_ifindex = ifindex;
        ll.sll_halen = 6;
        ll.sll_addr = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: the storage holds an initialised sockaddr_ll of `len` bytes.
        unsafe { SockAddr::new(storage, len) }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use std::io;

    use pnet_datalink::{Channel, Config, DataLinkSender};

    use crate::net::error::NetError;

    /// The smallest read buffer pnet accepts for BPF: the kernel keeps two
    /// of these (store and hold) and nothing more.
    const BPF_READ_BUFFER: usize = 4096;

    pub struct Link {
        tx: Box<dyn DataLinkSender>,
    }

    impl Link {
        pub fn open(interface: &str) -> Result<Link, NetError> {
            let fail = |action: &'static str| {
                move |error| NetError::Link {
                    interface: interface.to_owned(),
                    action,
                    error,
                }
            };
            let Some(link) = pnet_datalink::interfaces()
                .into_iter()
                .find(|candidate| candidate.name == interface)
            else {
                return Err(fail("find the interface")(io::Error::from(
                    io::ErrorKind::NotFound,
                )));
            };
            let config = Config {
                read_buffer_size: BPF_READ_BUFFER,
                promiscuous: false,
                ..Config::default()
            };
            match pnet_datalink::channel(&link, config) {
                // The receive half is dropped here: we never read frames.
                Ok(Channel::Ethernet(tx, _rx)) => Ok(Link { tx }),
                Ok(_) => Err(fail("open /dev/bpf")(io::Error::other(
                    "not an Ethernet channel",
                ))),
                Err(error) => Err(fail("open /dev/bpf (needs root)")(error)),
            }
        }

        pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
            self.tx
                .send_to(frame, None)
                .unwrap_or_else(|| Err(io::Error::other("the BPF sender is closed")))
        }
    }
}
