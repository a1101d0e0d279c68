//! The VRRP I/O of the agent's virtual router, IPv4 or IPv6: which socket,
//! which admission rules and which advert encoding, behind one enum so that
//! the agent's receive and send paths are written once.
//!
//! RFC 5798 §5.1: an IPv4 virtual router talks to 224.0.0.18 (or unicast
//! peers) from its primary IPv4 address; an IPv6 one to ff02::12 from the
//! interface's link-local address (§5.1.2.1), hop limit 255, with the
//! checksum always over the IPv6 pseudo-header (§5.2.8). A `[vrrp]` is one
//! family or the other (§5.2.9), never both.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::admit::{self, DropReason};
use crate::auth::{Keyring, ReplayGuard};
use crate::election::{Params, ReceivedAdvert, SyncedRouter};
use crate::net::error::NetError;
use crate::net::socket::{SocketConfig, VrrpSocket, VRRP_MULTICAST};
use crate::net::socket6::{SocketConfig6, VrrpSocket6};
use crate::wire::vrrp::Advertisement;
use crate::wire::vrrp6::{Ipv6Advertisement, MULTICAST_GROUP};
use crate::wire::{Centis, ChecksumMode};

/// What the socket is opened with; a reload that changes it reopens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Spec {
    /// An IPv4 virtual router.
    V4(SocketConfig),
    /// An IPv6 virtual router.
    V6(SocketConfig6),
}

impl Spec {
    /// Opens the socket of this family.
    pub(super) fn open(&self) -> Result<Io, NetError> {
        match self {
            Spec::V4(config) => VrrpSocket::open(config).map(Io::V4),
            Spec::V6(config) => VrrpSocket6::open(config).map(Io::V6),
        }
    }
}

/// The open VRRP socket.
#[derive(Debug)]
pub(super) enum Io {
    /// Raw IPv4, protocol 112.
    V4(VrrpSocket),
    /// Raw IPv6, next header 112, joined to ff02::12.
    V6(VrrpSocket6),
}

/// Where a received datagram came from and what the kernel said of it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Meta {
    /// IPv4: the datagram holds its IP header (the source is in it).
    V4(admit::RecvMeta),
    /// IPv6: raw sockets strip the header; the source comes from recvmsg.
    V6 {
        /// The datagram's source address.
        source: Ipv6Addr,
        /// Destination, hop limit and interface from the control messages.
        meta: admit::v6::RecvMeta,
    },
}

impl Io {
    /// Receives one datagram. Cancel safe (both sockets are).
    pub(super) async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Meta)> {
        match self {
            Io::V4(socket) => {
                let (len, meta) = socket.recv(buf).await?;
                Ok((len, Meta::V4(meta)))
            }
            Io::V6(socket) => {
                let (len, source, meta) = socket.recv(buf).await?;
                Ok((len, Meta::V6 { source, meta }))
            }
        }
    }

    /// Sends one VRRP message to `dst` (one of [`Local::destinations`]).
    pub(super) async fn send_to(&self, message: &[u8], dst: IpAddr) -> io::Result<()> {
        match (self, dst) {
            (Io::V4(socket), IpAddr::V4(dst)) => socket.send_to(message, dst).await,
            // The IPv6 socket only multicasts to ff02::12 (RFC 5798 §5.1.2.2).
            (Io::V6(socket), IpAddr::V6(_)) => socket.send(message).await,
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to send to {dst}: the VRRP socket is of the other family"),
            )),
        }
    }
}

/// Replay protection for authenticated adverts, per source, per family.
pub(super) struct Replay {
    v4: ReplayGuard<Ipv4Addr>,
    v6: ReplayGuard<Ipv6Addr>,
}

impl Replay {
    /// Remembers up to `capacity` sources per family.
    pub(super) fn new(capacity: usize) -> Replay {
        Replay {
            v4: ReplayGuard::new(capacity),
            v6: ReplayGuard::new(capacity),
        }
    }
}

/// With `[auth]`: what checks an advert's trailer.
pub(super) struct Auth<'a> {
    /// The accepted keys.
    pub keys: &'a Keyring,
    /// Now, for the replay guard.
    pub now: Instant,
    /// How long a silent source may be before a lower counter is a restart.
    pub restart_silence: Duration,
}

/// What this node's virtual router is, as admission and encoding need it.
pub(super) struct Local<'a> {
    /// `vrrp.vrid`.
    pub vrid: u8,
    /// The interface's index.
    pub ifindex: u32,
    /// Our primary address: IPv4, or the IPv6 link-local.
    pub primary: IpAddr,
    /// `vrrp.unicast_peers` (IPv4 only; empty: multicast).
    pub unicast_peers: &'a [Ipv4Addr],
    /// The IPv4 VIPs (empty for an IPv6 router).
    pub vips: &'a [Ipv4Addr],
    /// The IPv6 VIPs, link-local first (empty for an IPv4 router).
    pub vips6: &'a [Ipv6Addr],
    /// Priority 255: we own the addresses (§6.1).
    pub we_are_owner: bool,
}

/// An admitted advert, and the checksum form it used (IPv6: always the
/// pseudo-header, §5.2.8).
pub(super) struct Admitted {
    /// What the election core takes.
    pub advert: ReceivedAdvert,
    /// How its checksum was computed.
    pub checksum: ChecksumMode,
}

/// A dropped datagram: why, and its source when it had one (for the
/// authentication alerts).
pub(super) struct Dropped {
    /// The drop reason counted.
    pub reason: DropReason,
    /// The datagram's source, unspecified when unreadable.
    pub source: IpAddr,
}

impl Local<'_> {
    /// Runs the family's admission rules (RFC 5798 §7.1) over `datagram`.
    pub(super) fn admit(
        &self,
        datagram: &[u8],
        meta: &Meta,
        auth: Option<(Auth<'_>, &mut Replay)>,
    ) -> Result<Admitted, Dropped> {
        match (*meta, self.primary) {
            (Meta::V4(meta), IpAddr::V4(primary)) => {
                let own = [primary];
                let policy = admit::Policy {
                    vrid: self.vrid,
                    ifindex: self.ifindex,
                    own_addresses: &own,
                    unicast_peers: self.unicast_peers,
                    virtual_ips: self.vips,
                    we_are_owner: self.we_are_owner,
                };
                let mut auth = auth.map(|(a, replay)| admit::AdvertAuth {
                    keys: a.keys,
                    replay: &mut replay.v4,
                    now: a.now,
                    restart_silence: a.restart_silence,
                });
                admit::admit_with_auth(datagram, &meta, &policy, auth.as_mut())
                    .map(|admitted| Admitted {
                        advert: admitted.advert,
                        checksum: admitted.checksum,
                    })
                    .map_err(|reason| Dropped {
                        reason,
                        source: crate::wire::ipv4::Header::parse(datagram)
                            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ip| ip.src.into()),
                    })
            }
            (Meta::V6 { source, meta }, IpAddr::V6(primary)) => {
                let own = [primary];
                let policy = admit::Policy {
                    vrid: self.vrid,
                    ifindex: self.ifindex,
                    own_addresses: &own,
                    unicast_peers: &[],
                    virtual_ips: self.vips6,
                    we_are_owner: self.we_are_owner,
                };
                let mut auth = auth.map(|(a, replay)| admit::AdvertAuth {
                    keys: a.keys,
                    replay: &mut replay.v6,
                    now: a.now,
                    restart_silence: a.restart_silence,
                });
                admit::v6::admit_with_auth(datagram, source, &meta, &policy, auth.as_mut())
                    .map(|admitted| Admitted {
                        advert: ReceivedAdvert {
                            source: admitted.source.into(),
                            priority: admitted.priority,
                            max_advert_interval: admitted.max_advert_interval,
                        },
                        checksum: ChecksumMode::PseudoHeader,
                    })
                    .map_err(|reason| Dropped {
                        reason,
                        source: source.into(),
                    })
            }
            // The socket is opened from the same link as `primary`: a
            // mismatch is impossible, but it is a drop, never a panic.
            (Meta::V4(_), _) | (Meta::V6 { .. }, _) => Err(Dropped {
                reason: DropReason::BadDestination,
                source: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            }),
        }
    }

    /// Where adverts go: 224.0.0.18 or each unicast peer; ff02::12.
    pub(super) fn destinations(&self) -> Vec<IpAddr> {
        match self.primary {
            IpAddr::V4(_) if self.unicast_peers.is_empty() => vec![VRRP_MULTICAST.into()],
            IpAddr::V4(_) => self.unicast_peers.iter().map(|&p| p.into()).collect(),
            IpAddr::V6(_) => vec![MULTICAST_GROUP.into()],
        }
    }

    /// Encodes one advert to `dst` into `buf`; returns its length.
    pub(super) fn encode(
        &self,
        buf: &mut [u8],
        priority: u8,
        interval: Centis,
        dst: IpAddr,
        checksum: ChecksumMode,
    ) -> Result<usize, String> {
        match (self.primary, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Advertisement {
                vrid: self.vrid,
                priority,
                max_advert_interval: interval,
                addresses: self.vips,
            }
            .emit(buf, src, dst, checksum)
            .map_err(|e| e.to_string()),
            // RFC 5798 §5.2.8: the IPv6 checksum always covers the
            // pseudo-header; `vrrp.checksum` is an IPv4 interop knob.
            (IpAddr::V6(src), IpAddr::V6(dst)) => Ipv6Advertisement {
                vrid: self.vrid,
                priority,
                max_advert_interval: interval,
                addresses: self.vips6,
            }
            .emit(buf, src, dst)
            .map_err(|e| e.to_string()),
            (src, dst) => Err(format!("advert from {src} to {dst}: families differ")),
        }
    }
}

/// A dual-stack node's `[vrrp6]`: a VRRP router of its own (its own
/// [`SyncedRouter`], timers and adverts), synchronised to the node's
/// `[vrrp]` role (docs/election.md, "Dual stack"): it may be Master only
/// while this node is the `[vrrp]` master, because the storage has one
/// owner. Its VIPs are not its own: the runbooks add and remove them with
/// the `[vrrp]` ones (VIPs last on promote, first on demote).
pub(super) struct Slaved {
    /// The IPv6 socket of `[vrrp6].interface`.
    pub io: Io,
    /// `[vrrp6].interface`.
    pub interface: String,
    /// `[vrrp6].vrid`.
    pub vrid: u8,
    /// `[vrrp6].priority`: what its adverts carry as master.
    pub priority: u8,
    /// `[vrrp6].advert_interval`: what its adverts carry.
    pub advert_interval: Centis,
    /// Its election, gated by the node's role.
    pub router: SyncedRouter,
    /// Its interface's index.
    pub ifindex: u32,
    /// Its link-local advert source.
    pub primary: Ipv6Addr,
    /// Its VIPs, link-local first.
    pub vips6: Vec<Ipv6Addr>,
    /// Replay protection for its authenticated adverts.
    pub replay: Replay,
    /// Adverts sent.
    pub adverts_sent: u64,
    /// Adverts admitted (another `[vrrp6]` router's).
    pub adverts_received: u64,
    /// Datagrams dropped by admission.
    pub dropped: u64,
}

impl Slaved {
    /// Opens `[vrrp6]`'s socket on its interface, from its link-local
    /// address.
    pub(super) fn open(v6: &crate::config::Vrrp6, now: Instant) -> Result<Slaved, NetError> {
        let ifindex = crate::net::iface::interface_index(&v6.interface)?;
        let vips6: Vec<Ipv6Addr> = v6.virtual_ips.iter().map(|v| v.address).collect();
        let primary = match v6.source_address {
            Some(a) => a,
            None => crate::net::iface::link_local_address(&v6.interface, &vips6)?,
        };
        let io = Spec::V6(SocketConfig6 {
            interface: v6.interface.clone(),
            ifindex,
            source: primary,
        })
        .open()?;
        let router = SyncedRouter::new(
            Params {
                vrid: v6.vrid,
                priority: v6.priority,
                advert_interval: v6.advert_interval,
                preempt: v6.preempt,
                preempt_delay: v6.preempt_delay,
                primary_address: IpAddr::V6(primary),
            },
            now,
        );
        Ok(Slaved {
            io,
            interface: v6.interface.clone(),
            vrid: v6.vrid,
            priority: v6.priority,
            advert_interval: v6.advert_interval,
            router,
            ifindex,
            primary,
            vips6,
            replay: Replay::new(256),
            adverts_sent: 0,
            adverts_received: 0,
            dropped: 0,
        })
    }

    /// What admission and encoding need of it.
    pub(super) fn local(&self) -> Local<'_> {
        Local {
            vrid: self.vrid,
            ifindex: self.ifindex,
            primary: IpAddr::V6(self.primary),
            unicast_peers: &[],
            vips: &[],
            vips6: &self.vips6,
            we_are_owner: self.priority == 255,
        }
    }
}

/// Receives on the `[vrrp6]` socket; never ready without one.
pub(super) async fn recv_slaved(
    slaved: Option<&Slaved>,
    buf: &mut [u8],
) -> io::Result<(usize, Meta)> {
    match slaved {
        Some(slaved) => slaved.io.recv(buf).await,
        None => std::future::pending().await,
    }
}
