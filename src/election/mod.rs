//! The election core: the RFC 5798 §6 state machine (VRRPv3), sans I/O.
//!
//! [`Router`] takes an [`Input`] and the current time and returns the
//! [`Action`]s the edges must carry out. It never reads a clock, never touches
//! a socket and never sleeps: the caller asks [`Router::poll_timeout`] when to
//! call back with [`Input::Timeout`]. The same struct runs in the daemon, in
//! the rule-by-rule tests and in the many-node simulation.
//!
//! Eligibility is expressed through the *effective priority* the edges compute
//! with [`priority::effective`] (configured priority, operator override,
//! fault, and later quorum): an effective priority of 0 means "never become
//! master; if master, resign with a priority-0 advertisement".

pub mod priority;
mod router;
mod synced;
pub mod timers;

pub use router::Router;
pub use synced::SyncedRouter;

use std::net::IpAddr;
use std::time::Duration;

use crate::wire::{Centis, VrrpState};

/// RFC 5798 §6.4.3: on equal priority, "the primary IPvX Address of the
/// sender of the advertisement is higher than the local primary IPvX
/// Address", compared as an unsigned integer in network byte order. The two
/// addresses are of one family (an IPv4 and an IPv6 virtual router are
/// separate instances, §5.2.9, and admission checks the family); a mixed
/// pair never wins, so a stray advert of the other family cannot take a
/// router over on a tie.
pub fn address_wins_tie(theirs: IpAddr, ours: IpAddr) -> bool {
    match (theirs, ours) {
        (IpAddr::V4(theirs), IpAddr::V4(ours)) => u32::from(theirs) > u32::from(ours),
        (IpAddr::V6(theirs), IpAddr::V6(ours)) => u128::from(theirs) > u128::from(ours),
        _ => false,
    }
}

/// Static parameters of one virtual router (RFC 5798 §6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Virtual Router Identifier, 1..=255 (§5.2.3), shared by every router
    /// of the group.
    pub vrid: u8,
    /// Configured priority, 1..=255 (255 = address owner, §6.1).
    pub priority: u8,
    /// Advertisement_Interval in centiseconds (12 bits, 1..=4095).
    pub advert_interval: Centis,
    /// Preempt_Mode (§6.1).
    pub preempt: bool,
    /// Delay, after first hearing a lower-priority master, before preempting it.
    pub preempt_delay: Duration,
    /// This router's primary address on the interface: the tie-breaker of
    /// §6.4.3 and the source of our adverts. IPv4 for an IPv4 router; for an
    /// IPv6 router its link-local address (§5.1.2.1: the source of an IPv6
    /// advert is the interface's link-local address).
    pub primary_address: IpAddr,
}

/// An advertisement that passed every receive check (RFC 5798 §7.1) and is
/// for our VRID; the edges do the checking, the core only decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedAdvert {
    /// The IP source of the datagram (IPv4, or the IPv6 link-local): the
    /// sender's primary address,
    /// compared with ours to break a priority tie (§6.4.3).
    pub source: IpAddr,
    /// The advertised priority (§5.2.4): 0 = the master resigns, 255 = owner.
    pub priority: u8,
    /// The sender's Max Adver Int field (§5.2.7), which a backup adopts as
    /// its Master_Adver_Interval (§6.4.2).
    pub max_advert_interval: Centis,
}

/// An event for [`Router::handle`]: the RFC 5798 §6.4 events, plus the
/// priority and fault changes the edges decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// §6.4.1: the Startup event.
    Startup,
    /// §6.4.2/§6.4.3: the Shutdown event (agent stopping).
    Shutdown,
    /// A validated advertisement for our VRID.
    Advert(ReceivedAdvert),
    /// The time returned by [`Router::poll_timeout`] has been reached.
    Timeout,
    /// The effective priority changed (override, fault, quorum); 0 = ineligible.
    SetPriority(u8),
    /// Enter or leave the Fault state.
    SetFault(bool),
}

/// Why a transition happened; logged as the `reason` field of `state_change`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// §6.4.1: priority 255, the address owner becomes master at startup.
    AddressOwner,
    /// §6.4.1: startup as backup.
    Startup,
    /// §6.4.2: Master_Down_Timer fired.
    MasterDown,
    /// §6.4.2: Master_Down_Timer fired after a priority-0 advert (Skew_Time).
    MasterResigned,
    /// §6.4.3: an advert with a higher priority (or equal priority, higher address).
    HigherPriorityMaster,
    /// The effective priority dropped to 0 (operator demote, quorum loss).
    Resigned,
    /// §6.4.2/§6.4.3: the Shutdown event.
    Shutdown,
    /// Fault entered ([`Input::SetFault`] with `true`).
    Fault,
    /// Fault cleared ([`Input::SetFault`] with `false`): back to Backup.
    FaultCleared,
    /// A `[vrrp6]` router follows the node's `[vrrp]` role
    /// ([`SyncedRouter`]): Master at once when the node became master.
    SyncGroup,
}

impl Reason {
    /// The snake_case name logged as `reason` (the same as the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AddressOwner => "address_owner",
            Reason::Startup => "startup",
            Reason::MasterDown => "master_down",
            Reason::MasterResigned => "master_resigned",
            Reason::HigherPriorityMaster => "higher_priority_master",
            Reason::Resigned => "resigned",
            Reason::Shutdown => "shutdown",
            Reason::Fault => "fault",
            Reason::FaultCleared => "fault_cleared",
            Reason::SyncGroup => "sync_group",
        }
    }
}

/// What the edges must do, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send one advertisement with this priority and our Advertisement_Interval.
    SendAdvert {
        /// The Priority field to send: our effective priority, or 0 when a
        /// master resigns (Shutdown, §6.4.3, or effective priority 0).
        priority: u8,
    },
    /// The state changed. Entering Master means: take the VIPs and send the
    /// gratuitous-ARP burst; leaving Master means: drop the VIPs.
    StateChange {
        /// The state left.
        from: VrrpState,
        /// The state entered.
        to: VrrpState,
        /// The rule that caused it.
        reason: Reason,
    },
    /// We are and stay master, but a lower-priority master was heard (a healed
    /// partition): re-send the gratuitous-ARP burst at once, so that clients
    /// that followed the other master come back without waiting for their ARP
    /// entries to expire.
    ResendGarp {
        /// Source address of the lower-priority master's advert.
        other_master: IpAddr,
    },
}
