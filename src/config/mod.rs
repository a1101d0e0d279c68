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
pub use nfs::{Ipv4Net, Ipv6Net, Nfs, DEFAULT_EXPORTS_FILE, DEFAULT_MOUNT_OPTIONS};
pub use notify::Notify;
pub use runbook::RunbookSettings;
pub use storage::{Storage, StorageKind};
pub use tools::{Tools, TOOL_DEFAULTS};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    /// `[vrrp6]`: a second, IPv6 virtual router next to an IPv4 `[vrrp]`
    /// (dual stack); `None` without the section.
    pub vrrp6: Option<Vrrp6>,
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

    /// Every virtual router this node runs: `[vrrp]`, then `[vrrp6]` when
    /// present. Each is a separate instance with its own VRID and state
    /// machine (RFC 5798 §1: the IPv4 and IPv6 virtual routers "are a domain
    /// unto themselves and do not overlap").
    pub fn instances(&self) -> Vec<Instance<'_>> {
        let vrrp = &self.vrrp;
        let first = Instance {
            section: "vrrp",
            interface: &vrrp.interface,
            vrid: vrrp.vrid,
            priority: vrrp.priority,
            advert_interval: vrrp.advert_interval,
            preempt: vrrp.preempt,
            preempt_delay: vrrp.preempt_delay,
            addresses: if vrrp.virtual_ips6.is_empty() {
                InstanceAddresses::V4 {
                    virtual_ips: &vrrp.virtual_ips,
                    source_address: vrrp.source_address,
                    unicast_peers: &vrrp.unicast_peers,
                }
            } else {
                InstanceAddresses::V6 {
                    virtual_ips: &vrrp.virtual_ips6,
                    source_address: vrrp.source_address6,
                }
            },
        };
        let mut instances = vec![first];
        if let Some(v6) = &self.vrrp6 {
            instances.push(Instance {
                section: "vrrp6",
                interface: &v6.interface,
                vrid: v6.vrid,
                priority: v6.priority,
                advert_interval: v6.advert_interval,
                preempt: v6.preempt,
                preempt_delay: v6.preempt_delay,
                addresses: InstanceAddresses::V6 {
                    virtual_ips: &v6.virtual_ips,
                    source_address: v6.source_address,
                },
            });
        }
        instances
    }

    /// The IPv4 virtual IPs, on `vrrp.interface` (empty when `[vrrp]` is
    /// IPv6).
    pub fn virtual_ips4(&self) -> &[VirtualIp] {
        &self.vrrp.virtual_ips
    }

    /// The IPv6 virtual IPs and the interface they are added to: `[vrrp]`'s
    /// when it is IPv6, else `[vrrp6]`'s; `None` on an IPv4-only node.
    pub fn virtual_ips6(&self) -> Option<(&str, &[VirtualIp6])> {
        if !self.vrrp.virtual_ips6.is_empty() {
            return Some((&self.vrrp.interface, &self.vrrp.virtual_ips6));
        }
        self.vrrp6
            .as_ref()
            .map(|v6| (v6.interface.as_str(), v6.virtual_ips.as_slice()))
    }

    /// The address followers mount the shared dirs from: the first virtual
    /// IP of `[vrrp]`, skipping link-local IPv6 ones (a link-local address
    /// needs a scope, which `mount_nfs`'s `host:path` cannot carry). In dual
    /// stack that is `[vrrp]`'s IPv4 address: `[vrrp6]` only adds the IPv6
    /// router. Validation guarantees one exists on a `[cbsd]` node.
    pub fn mount_address(&self) -> Option<IpAddr> {
        match self.vrrp.virtual_ips.first() {
            Some(vip) => Some(IpAddr::V4(vip.address)),
            None => self
                .vrrp
                .virtual_ips6
                .iter()
                .find(|v| !is_link_local6(v.address))
                .map(|v| IpAddr::V6(v.address)),
        }
    }
}

/// Whether `address` is in fe80::/10 (RFC 4291 §2.5.6).
pub fn is_link_local6(address: Ipv6Addr) -> bool {
    address.segments()[0] & 0xffc0 == 0xfe80
}

/// One virtual router of [`Config::instances`]: the keys the election
/// needs, whichever section (`[vrrp]` or `[vrrp6]`) it comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Instance<'a> {
    /// `"vrrp"` or `"vrrp6"`: the section, for messages and `status`.
    pub section: &'static str,
    /// The interface carrying its adverts and its VIPs.
    pub interface: &'a str,
    /// Its virtual router id (a `[vrrp]` and a `[vrrp6]` may share one).
    pub vrid: u8,
    /// 1..=255; 255 = address owner.
    pub priority: u8,
    /// How often its master advertises.
    pub advert_interval: Centis,
    /// RFC 5798 Preempt_Mode.
    pub preempt: bool,
    /// The wait before preempting a lower-priority master.
    pub preempt_delay: Duration,
    /// Its family and addresses.
    pub addresses: InstanceAddresses<'a>,
}

/// The addresses of one [`Instance`]: a virtual router is IPv4 or IPv6,
/// never both (RFC 5798 §5.2.9: one advert carries one family's addresses).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InstanceAddresses<'a> {
    /// An IPv4 virtual router.
    V4 {
        /// Its virtual IPs.
        virtual_ips: &'a [VirtualIp],
        /// Its advert source; `None`: the interface's first IPv4 address.
        source_address: Option<Ipv4Addr>,
        /// Empty: multicast to 224.0.0.18.
        unicast_peers: &'a [Ipv4Addr],
    },
    /// An IPv6 virtual router (multicast to ff02::12 only).
    V6 {
        /// Its virtual IPs, the link-local one first (§5.2.9).
        virtual_ips: &'a [VirtualIp6],
        /// Its link-local advert source; `None`: the interface's.
        source_address: Option<Ipv6Addr>,
    },
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
    /// `vrrp.virtual_ips`: the IPv4 addresses the master holds, 1..=255, in
    /// file order; empty when the list is IPv6 (then in `virtual_ips6`).
    pub virtual_ips: Vec<VirtualIp>,
    /// `vrrp.virtual_ips` when they are IPv6 (the instance is then IPv6),
    /// the link-local one first; empty for an IPv4 `[vrrp]`.
    pub virtual_ips6: Vec<VirtualIp6>,
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
    /// that is not a virtual IP. `None` when `[vrrp]` is IPv6.
    pub source_address: Option<Ipv4Addr>,
    /// `vrrp.source_address` of an IPv6 `[vrrp]`: a link-local address;
    /// default: the interface's first link-local address that is not a VIP.
    pub source_address6: Option<Ipv6Addr>,
    /// Gratuitous ARPs per burst (keepalived's `garp_master_repeat`); the
    /// Neighbor Advertisement burst of the IPv6 VIPs uses the same three
    /// knobs.
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

/// `[vrrp6]`: the IPv6 virtual router of a dual-stack node, next to an
/// IPv4 `[vrrp]`. The keys it does not set are `[vrrp]`'s.
#[derive(Clone, Debug, PartialEq)]
pub struct Vrrp6 {
    /// `vrrp6.interface`; default `vrrp.interface`.
    pub interface: String,
    /// `vrrp6.vrid`: its own virtual router id, 1..=255 (may equal
    /// `vrrp.vrid`: the families do not overlap, RFC 5798 §1, §7.3).
    pub vrid: u8,
    /// `vrrp6.priority`; default `vrrp.priority`.
    pub priority: u8,
    /// `vrrp6.advert_interval`; default `vrrp.advert_interval`.
    pub advert_interval: Centis,
    /// `vrrp6.virtual_ips`: IPv6 only, the link-local one first (§5.2.9).
    pub virtual_ips: Vec<VirtualIp6>,
    /// `vrrp6.preempt`; default `vrrp.preempt`.
    pub preempt: bool,
    /// `vrrp6.preempt_delay`; default `vrrp.preempt_delay`.
    pub preempt_delay: Duration,
    /// `vrrp6.source_address`: link-local; default the interface's first
    /// link-local address that is not a VIP.
    pub source_address: Option<Ipv6Addr>,
}

/// One virtual IPv6 address with the prefix length it is added with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VirtualIp6 {
    /// The address added to the interface (never ::, multicast, loopback
    /// or IPv4-mapped).
    pub address: Ipv6Addr,
    /// Prefix length it is added with, 1..=128; `/128` when the entry has
    /// none (`/64` for a link-local one).
    pub prefix_len: u8,
}

impl std::fmt::Display for VirtualIp6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}
