//! Errors of the network edge: interface queries, the raw VRRP socket, the
//! link-layer ARP sender and the start-up checks. Each message says what
//! failed, on which interface or address, and what to do about it.

use std::io;
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("interface {interface:?} not found ({errno}); check the name with ifconfig / ip link")]
    NoSuchInterface {
        interface: String,
        errno: nix::Error,
    },

    #[error("cannot list the interfaces' addresses (getifaddrs): {0}")]
    ListAddresses(#[source] nix::Error),

    #[error(
        "interface {interface:?} has no IPv4 address other than the virtual IPs; \
         give it one, or set vrrp.source_address"
    )]
    NoPrimaryAddress { interface: String },

    #[error("interface {interface:?} has no Ethernet address (is it an Ethernet-like interface?)")]
    NoMacAddress { interface: String },

    #[error("source address {address} is not an address of interface {interface:?}")]
    SourceNotOnInterface {
        interface: String,
        address: Ipv4Addr,
    },

    #[error(
        "opening a raw socket for VRRP (IP protocol 112) was refused: \
         run as root or grant CAP_NET_RAW ({0})"
    )]
    RawSocketPermission(#[source] io::Error),

    #[error("VRRP socket on interface {interface:?}: {action}: {error}")]
    Socket {
        interface: String,
        action: &'static str,
        error: io::Error,
    },

    #[error(
        "unicast peer {peer} cannot be used: {reason}; fix vrrp.unicast_peers \
         (multicast is never used in its place)"
    )]
    UnusablePeer { peer: Ipv4Addr, reason: String },

    #[error("link-layer (ARP) sender on interface {interface:?}: {action}: {error}")]
    Link {
        interface: String,
        action: &'static str,
        error: io::Error,
    },

    #[error(
        "carp(4) is loaded: it takes IP protocol 112 in the kernel, so this \
         agent's raw socket would receive no VRRP advertisement; unload it with \
         `kldunload carp` and remove carp_load / device carp from loader.conf / \
         the kernel config, or run CARP instead of this agent"
    )]
    CarpLoaded,

    #[error("start-up check {argv:?} could not run: {error}")]
    PreflightCommand { argv: Vec<String>, error: io::Error },
}
