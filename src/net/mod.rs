//! The network edge: the raw VRRP socket, interface queries, the VIP
//! backends (one per platform) and the link-layer gratuitous-ARP sender.
//! Receive admission (`admit`) is pure: it turns a datagram and its
//! metadata into an accepted advert or a counted drop reason.

pub mod error;
pub mod garp;
pub mod iface;
pub mod link_events;
pub mod preflight;
pub mod socket;
pub mod vip;
