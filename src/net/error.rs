//! Errors of the network edge: interface queries, the raw VRRP socket, the
//! link-layer ARP sender and the start-up checks. Each message says what
//! failed, on which interface or address, and what to do about it.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why the network edge could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configured interface is unknown to the kernel.
    #[error("interface {interface:?} not found ({errno}); check the name with ifconfig / ip link")]
    NoSuchInterface {
        /// The interface name as configured.
        interface: String,
        /// The errno the lookup returned.
        errno: nix::Error,
    },

    /// getifaddrs(3) failed.
    #[error("cannot list the interfaces' addresses (getifaddrs): {0}")]
    ListAddresses(#[source] nix::Error),

    /// The interface has no IPv4 address to send adverts from (RFC 5798
    /// §5.1.1.1: the source is the interface's primary address, not a VIP).
    #[error(
        "interface {interface:?} has no IPv4 address other than the virtual IPs; \
         give it one, or set vrrp.source_address"
    )]
    NoPrimaryAddress {
        /// The interface name.
        interface: String,
    },

    /// The interface has no IPv6 link-local address to send IPv6 adverts
    /// and Neighbor Advertisements from (RFC 5798 §5.1.2.1).
    #[error(
        "interface {interface:?} has no IPv6 link-local address (fe80::/10) other than \
         the virtual ones: enable IPv6 on it (FreeBSD: ifconfig IF inet6 -ifdisabled \
         auto_linklocal; Linux: sysctl net.ipv6.conf.IF.disable_ipv6=0)"
    )]
    NoLinkLocalAddress {
        /// The interface name.
        interface: String,
    },

    /// The IPv6 source given for adverts is not a link-local address of the
    /// interface (RFC 5798 §5.1.2.1).
    #[error("IPv6 source {address} is not a link-local address of interface {interface:?}")]
    SourceNotLinkLocal {
        /// The interface name.
        interface: String,
        /// The source asked for.
        address: Ipv6Addr,
    },

    /// The interface has no link-layer (MAC) address to send gratuitous ARP
    /// from.
    #[error("interface {interface:?} has no Ethernet address (is it an Ethernet-like interface?)")]
    NoMacAddress {
        /// The interface name.
        interface: String,
    },

    /// `vrrp.source_address` is not assigned to the interface.
    #[error("source address {address} is not an address of interface {interface:?}")]
    SourceNotOnInterface {
        /// The interface name.
        interface: String,
        /// The configured source address.
        address: Ipv4Addr,
    },

    /// The OS refused the raw IP socket: not root, or no CAP_NET_RAW.
    #[error(
        "opening a raw socket for VRRP (IP protocol 112) was refused: \
         run as root or grant CAP_NET_RAW ({0})"
    )]
    RawSocketPermission(#[source] io::Error),

    /// A system call on the raw VRRP socket failed.
    #[error("VRRP socket on interface {interface:?}: {action}: {error}")]
    Socket {
        /// The interface the socket serves.
        interface: String,
        /// What was being done, e.g. the socket option being set.
        action: &'static str,
        /// The OS error.
        error: io::Error,
    },

    /// A configured unicast peer cannot receive our adverts.
    #[error(
        "unicast peer {peer} cannot be used: {reason}; fix vrrp.unicast_peers \
         (multicast is never used in its place)"
    )]
    UnusablePeer {
        /// The peer address from `vrrp.unicast_peers`.
        peer: Ipv4Addr,
        /// Why it cannot be used: not a unicast address, one of our own, or no
        /// route to it.
        reason: String,
    },

    /// Opening or using the link-layer socket (BPF or AF_PACKET) that sends
    /// gratuitous ARP failed.
    #[error("link-layer (ARP) sender on interface {interface:?}: {action}: {error}")]
    Link {
        /// The interface the frames go out of.
        interface: String,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        error: io::Error,
    },

    /// Opening or using the ICMPv6 socket that sends unsolicited Neighbor
    /// Advertisements failed.
    #[error("Neighbor Advertisement sender on interface {interface:?}: {action}: {error}")]
    NeighborAdvert {
        /// The interface the advertisements go out of.
        interface: String,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        error: io::Error,
    },

    /// FreeBSD: carp(4) is loaded and would take every packet of IP protocol
    /// 112 (see [`super::preflight`]).
    #[error(
        "carp(4) is loaded: it takes IP protocol 112 in the kernel, so this \
         agent's raw socket would receive no VRRP advertisement; unload it with \
         `kldunload carp` and remove carp_load / device carp from loader.conf / \
         the kernel config, or run CARP instead of this agent"
    )]
    CarpLoaded,

    /// A start-up check's command (kldstat(8)) could not be started.
    #[error("start-up check {argv:?} could not run: {error}")]
    PreflightCommand {
        /// The command line, program first.
        argv: Vec<String>,
        /// Why it could not be started.
        error: io::Error,
    },
}
