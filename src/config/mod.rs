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
mod load;
mod metrics;
pub mod mount_options;
mod nfs;
mod notify;
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
    pub node: Node,
    pub vrrp: Vrrp,
    /// `[cbsd]`; `None`: a plain VRRP node whose runbooks only move the VIP.
    pub cbsd: Option<Cbsd>,
    /// `[storage]`; `None` with `[cbsd]`: a follower-only node.
    pub storage: Option<Storage>,
    pub nfs: Nfs,
    pub environments: Environments,
    pub runbook: RunbookSettings,
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
}

impl Config {
    /// Whether this node may ever become master: a CBSD node needs storage
    /// to serve (`[storage]`); a plain VRRP node (no `[cbsd]`) always may.
    /// Feeds `election::priority::Inputs::may_be_master`.
    pub fn may_be_master(&self) -> bool {
        self.cbsd.is_none() || self.storage.is_some()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique in the cluster; default: the hostname.
    pub name: String,
    pub control_socket: PathBuf,
    pub state_dir: PathBuf,
    /// Members of this group may read `status` over the control socket;
    /// everything else stays root's.
    pub status_group: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Vrrp {
    pub interface: String,
    pub vrid: u8,
    /// 1..=255; 255 = address owner.
    pub priority: u8,
    pub advert_interval: Centis,
    pub virtual_ips: Vec<VirtualIp>,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// Empty = multicast to 224.0.0.18.
    pub unicast_peers: Vec<Ipv4Addr>,
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
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

impl std::fmt::Display for VirtualIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}
