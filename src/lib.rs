//! rcbsd-failover: a VRRPv3 failover agent for CBSD clusters.
//!
//! The crate is layered so that a reader can tell where a packet is parsed,
//! where a decision is made and where a command is run:
//!
//! - [`wire`] parses and builds packets from byte slices (pure, never panics),
//!   and holds the field types the layers above share;
//! - [`admit`] decides what a received datagram means (RFC 5798 §7.1),
//!   pure;
//! - [`election`] is the RFC 5798 state machine: `(input, now) -> actions`,
//!   with no clock, no socket and no tokio;
//! - [`quorum`] is membership, leases and placement, pure as well;
//! - [`node`] joins them, with faults, overrides and the fence, into one
//!   node's decisions (pure; the agent and the simulation drive it);
//! - [`net`] owns the raw socket, the link-layer ARP sender and the VIP
//!   backends (one module per platform);
//! - [`agent`] is the tokio loop that wires them together, with [`control`]
//!   (the Unix control socket) and [`events`] (the log interface);
//! - [`config`] turns TOML into a validated [`config::Config`];
//! - [`store`] keeps what survives a restart in `state_dir` (the override,
//!   the master marker, the incarnation), written durably;
//! - [`fence`] drives the watchdog that resets a node which stops patting it;
//! - [`doctor`] checks, read-only, what only the node itself can show
//!   (rc.conf, CBSD's workdir, the hostid, the watchdog, the key files);
//! - the `lab` crate (`lab/`) builds throwaway namespace topologies to measure failover.

pub mod admit;
pub mod agent;
pub mod auth;
pub mod cli;
pub mod config;
pub mod control;
pub mod doctor;
pub mod election;
pub mod events;
pub mod exit;
pub mod fence;
pub mod health;
pub mod net;
pub mod node;
pub mod quorum;
pub mod runbook;
pub mod store;
pub mod wire;
