//! The network edge: the raw VRRP sockets (IPv4 and IPv6), interface
//! queries, the VIP backends (one per platform), the link-layer
//! gratuitous-ARP sender and the IPv6 Neighbor Advertisement sender.
//! Receive admission (`admit`) is pure: it turns a datagram and its
//! metadata into an accepted advert or a counted drop reason.

pub mod error;
pub mod garp;
pub mod iface;
pub mod link_events;
pub mod na;
pub mod preflight;
pub mod socket;
pub mod socket6;
pub mod vip;
