//! Configuration: the TOML schema, its defaults, and validation with errors
//! that name `file:line:col` and the key.
//!
//! The types here are what the rest of the agent sees: already validated,
//! never re-checked. [`load`] reads a file, [`parse`] validates text; both
//! report every problem at once as [`Diagnostic`]s. `docs/configuration.md`
//! describes every key.
//!
//! Each TOML section has a file named after it, here (its types) and in
//! `load/` (its reader): `cbsd.rs` is `[cbsd]`, `environment.rs` is
//! `[[environment]]`, `environments.rs` is `[environments]`, and so on.
//! `[node]` and `[vrrp]` are in this file and `load.rs`. The checks that
//! tie sections together are in `load/cross_checks.rs`.

mod auth;
mod cbsd;
mod cluster;
mod cluster_hash;
mod duration;
mod environment;
mod environments;
mod error;
pub mod fence;
pub mod file_handles;
pub mod follow;
mod health;
mod load;
mod metrics;
pub mod mount_options;
mod nfs;
mod notify;
pub mod reload;
mod runbook;
mod storage;
mod summary;
mod tools;

pub use auth::Auth;
pub use cbsd::Cbsd;
pub use cluster::{
    Cluster, ClusterNode, DEFAULT_FENCE_MARGIN, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_PORT,
    DEFAULT_LEASE,
};
pub use duration::{format as format_duration, parse as parse_duration, DurationError};
pub use environment::PlacedEnvironment;
pub use environments::{EnvKind, EnvPattern, Environments};
pub use error::{ConfigError, Diagnostic};
pub use health::{
    Health, RestartPolicy, Track, TrackAction, DEFAULT_FALL, DEFAULT_HEALTH_INTERVAL,
    DEFAULT_HEALTH_TIMEOUT, DEFAULT_MAX_REPAIRS, DEFAULT_MAX_RESTARTS, DEFAULT_MOUNT_HANG_LIMIT,
    DEFAULT_REPAIR_WINDOW, DEFAULT_RESTART_WINDOW, DEFAULT_RISE,
};
pub use load::{load, parse, parse_with_hostname, DEFAULT_CONTROL_SOCKET, DEFAULT_STATE_DIR};
pub use metrics::Metrics;
pub use nfs::{Ipv4Net, Nfs, DEFAULT_EXPORTS_FILE, DEFAULT_MOUNT_OPTIONS};
pub use notify::Notify;
pub use runbook::RunbookSettings;
pub use storage::{Storage, StorageKind};
pub use tools::{Tools, TOOL_DEFAULTS};

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::wire::Centis;
use crate::wire::ChecksumMode;

/// Where the daemon looks when `-c` is not given.
pub const DEFAULT_PATH: &str = "/usr/local/etc/rcbsd-failover.toml";

/// A validated configuration. Every field is already checked: the agent
/// never re-validates.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file this was read from (for messages).
    pub path: PathBuf,
    /// `[node]`: this node's name, control socket and state directory.
    pub node: Node,
    /// `[vrrp]`: the interface, virtual router id, priority and virtual IPs of the election.
    pub vrrp: Vrrp,
    /// `[cbsd]`; `None`: a plain VRRP node whose runbooks only move the VIP.
    pub cbsd: Option<Cbsd>,
    /// `[storage]`; `None` with `[cbsd]`: a follower-only node.
    pub storage: Option<Storage>,
    /// `[nfs]`: how the master exports the shared dirs and how followers mount them.
    pub nfs: Nfs,
    /// `[environments]`: the jails and VMs this node runs without `[cluster]`, and their start/stop timeouts.
    pub environments: Environments,
    /// `[runbook]`: the timeouts, retries and backoff of the promote, demote and follow runbooks.
    pub runbook: RunbookSettings,
    /// `[tools]`: absolute paths of the external programs the runbooks and `doctor` run.
    pub tools: Tools,
    /// `[notify]`: a command run on every state change.
    pub notify: Option<Notify>,
    /// `[metrics]`: a Prometheus textfile written every `interval`.
    pub metrics: Option<Metrics>,
    /// `[cluster]`; `None`: plain VRRP, no quorum and no placement.
    pub cluster: Option<Cluster>,
    /// Every `[[environment]]` (only with `[cluster]`), in file order.
    pub placement: Vec<PlacedEnvironment>,
    /// `[auth]`; `None`: adverts and heartbeats are not signed.
    pub auth: Option<Auth>,
    /// `[fence]`: the watchdog.
    pub fence: fence::Fence,
    /// `[health]` and every `[[track]]`: the checks between transitions.
    pub health: Health,
    /// `[follow]`: what a follower does when the master changes.
    pub follow: follow::Follow,
}

impl Config {
    /// Whether this node may ever become master: a CBSD node needs storage
    /// to serve (`[storage]`); a plain VRRP node (no `[cbsd]`) always may.
    /// Feeds `election::priority::Inputs::may_be_master`.
    pub fn may_be_master(&self) -> bool {
        self.cbsd.is_none() || self.storage.is_some()
    }
}

/// `[node]`: who this node is and where it keeps its socket and state.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique in the cluster; default: the hostname.
    pub name: String,
    /// `node.control_socket`: the Unix socket `status`, `promote`, `demote` and
    /// `resume` connect to (default `/var/run/rcbsd-failover.sock`).
    pub control_socket: PathBuf,
    /// `node.state_dir`: where state that survives a restart (the override,
    /// `override.json`) is kept (default `/var/db/rcbsd-failover`).
    pub state_dir: PathBuf,
    /// Members of this group may read `status` over the control socket;
    /// everything else stays root's.
    pub status_group: Option<String>,
}

/// `[vrrp]`: this node's VRRPv3 router (RFC 5798): what it advertises, where,
/// and how it takes and hands over the virtual IPs.
#[derive(Clone, Debug, PartialEq)]
pub struct Vrrp {
    /// `vrrp.interface`: the interface carrying the advertisements and the VIPs, e.g. `em0`.
    pub interface: String,
    /// `vrrp.vrid`: the virtual router id (RFC 5798 §5.2.3), 1..=255, the same on every node.
    pub vrid: u8,
    /// 1..=255; 255 = address owner.
    pub priority: u8,
    /// `vrrp.advert_interval`: how often the master advertises, in 10 ms steps
    /// (10 ms..=40.95 s; default 1 s).
    pub advert_interval: Centis,
    /// `vrrp.virtual_ips`: the addresses the master holds, 1..=255, in file order.
    pub virtual_ips: Vec<VirtualIp>,
    /// `vrrp.preempt`: whether a higher priority takes over a running lower-priority
    /// master (RFC 5798 Preempt_Mode; default true).
    pub preempt: bool,
    /// `vrrp.preempt_delay`: how long a higher-priority node waits after first hearing
    /// a lower-priority master before preempting it (default 0).
    pub preempt_delay: Duration,
    /// Empty = multicast to 224.0.0.18.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// `vrrp.checksum`: which VRRPv3 checksum form is sent (with or without the IPv4
    /// pseudo-header); both are accepted on receive.
    pub checksum: ChecksumMode,
    /// Source/primary address; default: the interface's first IPv4 address
    /// that is not a virtual IP.
    pub source_address: Option<Ipv4Addr>,
    /// Gratuitous ARPs per burst (keepalived's `garp_master_repeat`).
    pub garp_master_repeat: u32,
    /// Spacing between the ARPs of one burst (keepalived's `garp_interval`).
    pub garp_interval: Duration,
    /// Delay before the second burst after becoming master; zero disables it
    /// (keepalived's `garp_master_delay`).
    pub garp_master_delay: Duration,
}

/// One virtual IPv4 address with the prefix length it is added with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VirtualIp {
    /// The address added to `vrrp.interface` (never 0.0.0.0, multicast or loopback).
    pub address: Ipv4Addr,
    /// Prefix length it is added with, 0..=32; `/32` when the entry has none.
    pub prefix_len: u8,
}

impl std::fmt::Display for VirtualIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// One virtual IPv6 address with the prefix length it is added with (the
/// network layer's type; the `[vrrp]` section does not take IPv6 yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VirtualIp6 {
    /// The address added to the interface.
    pub address: std::net::Ipv6Addr,
    /// Prefix length it is added with, 0..=128.
    pub prefix_len: u8,
}

impl std::fmt::Display for VirtualIp6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}
