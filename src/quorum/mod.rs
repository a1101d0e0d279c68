//! Quorum, leases and environment placement: what keeps two nodes from
//! holding the VIP, the storage or an environment at the same time.
//!
//! VRRP alone elects a master per broadcast domain; a master cut off from
//! the others keeps its role while they elect another. Here every node
//! also sends a heartbeat to every other node of `[cluster] nodes`, and
//! uses them for three things:
//!
//! - **quorum** ([`Membership::quorum_until`]): a node without a majority
//!   advertises priority 0 and may not become master;
//! - **leases** ([`Membership::lease_until`]): the master role and every
//!   environment are *resources*; a node uses one only while a majority
//!   grants it, and stops using it before its lease can run out;
//! - **placement** ([`placement::decide`]): which environments a node
//!   claims, from `[[environment]]` and what the live nodes report.
//!
//! Everything here is pure ([`NodeQuorum`] is one node's whole quorum
//! state); `agent::cluster` sends, receives and logs, and the simulation
//! (tests/simulation.rs) drives the same code.

pub mod lease;
mod membership;
mod node_quorum;
pub mod placement;

pub use membership::{Ignored, LocalReport, Membership, Peer, Settings};
pub use node_quorum::{gate, Allowed, Gate, Holding, MoveRefused, NodeQuorum, NodeQuorumSettings};

#[cfg(test)]
mod tests;
