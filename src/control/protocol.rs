//! Control-socket messages. One JSON object per line each way. Field names
//! are an interface, documented in `docs/status.md`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::election::priority::Override;
use crate::wire::VrrpState;

/// A request from the CLI: `{"command":"status"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Report the agent's state ([`Status`]); the only command a
    /// `node.status_group` member may send.
    Status,
    /// Set the override to `promote`: priority 254 with preemption, kept
    /// across restarts.
    Promote,
    /// Set the override to `demote`: give up mastership (priority 0) until
    /// `resume`.
    Demote,
    /// Clear the override (back to the configured priority), leave fault and
    /// drop a retained master role: the operator vouches for the node.
    Resume,
    /// `rcbsd-failover move ENVIRONMENT NODE`: on the node that runs it,
    /// stop it, then let `node` start it (`[[environment]]` placement).
    Move {
        /// The `[[environment]]` to move.
        environment: String,
        /// The node that starts it once it is stopped.
        node: String,
    },
    /// `rcbsd-failover env hold NAME`: the operator stopped (or will stop)
    /// the environment on purpose: no runbook starts it and the health
    /// watch neither restarts nor alerts it, until `release`. Kept in
    /// `node.state_dir` across restarts.
    Hold {
        /// An `[[environment]]` name, or one an `[environments]` pattern
        /// names.
        environment: String,
    },
    /// `rcbsd-failover env release NAME`: clear a hold.
    Release {
        /// A held environment.
        environment: String,
    },
}

/// The daemon's reply: `{"ok":true,...}` or `{"ok":false,"error":"..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What was wrong, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The agent's state, for `status` and the override commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// For promote/demote/resume: what changed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
}

impl Response {
    /// A failure reply (`ok: false`) carrying `message`.
    pub fn error(message: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(message.into()),
            status: None,
            changed: None,
        }
    }
}

/// A dual-stack node's `[vrrp6]` as `status` shows it: a VRRP router of
/// its own, synchronised to `[vrrp]` (Master only while this node is the
/// `[vrrp]` master; docs/election.md, "Dual stack").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlavedStatus {
    /// `[vrrp6].interface`.
    pub interface: String,
    /// `[vrrp6].vrid`.
    pub vrid: u8,
    /// Its own RFC 5798 §6.4 state.
    pub state: VrrpState,
    /// The `[vrrp6]` master's link-local address as this router knows it
    /// (ours when master); `None` when unknown.
    #[serde(default)]
    pub master: Option<IpAddr>,
    /// Its effective priority: `[vrrp6].priority` while this node is the
    /// `[vrrp]` master, 0 (ineligible) otherwise.
    #[serde(default)]
    pub priority: u8,
    /// `[vrrp6].advert_interval` in milliseconds.
    #[serde(default)]
    pub advert_interval_ms: u64,
    /// Master_Adver_Interval (§6.1) in milliseconds: ours when master,
    /// the master's otherwise.
    #[serde(default)]
    pub master_advert_interval_ms: u64,
    /// Its IPv6 VIPs on its interface now, `address/prefix`.
    pub vips_held: Vec<String>,
    /// Its adverts sent.
    pub adverts_sent: u64,
    /// Other `[vrrp6]` routers' adverts admitted (its election input).
    pub adverts_received: u64,
    /// Datagrams its admission dropped (also in `counters.drops`).
    pub dropped: u64,
}

/// The agent's state as `status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `node.name`.
    pub node: String,
    /// The agent's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The agent's process id.
    pub pid: u32,
    /// The VRRP state.
    pub state: VrrpState,
    /// `vrrp.interface`.
    pub interface: String,
    /// `vrrp.vrid`, 1..=255.
    pub vrid: u8,
    /// The virtual router's address family, `ipv4` or `ipv6` (RFC 5798
    /// runs one per family); absent from older agents, which ran IPv4 only.
    #[serde(default = "ipv4")]
    pub family: String,
    /// `vrrp.priority`.
    pub configured_priority: u8,
    /// The priority advertised now: 254 under `promote`, 0 under `demote` or
    /// in fault, else the configured one.
    pub effective_priority: u8,
    /// A follower-only node (`[cbsd]` without `[storage]`): it votes and
    /// follows but never becomes master.
    #[serde(default)]
    pub follower_only: bool,
    /// Address of the current master (ours when master), if known.
    pub master: Option<IpAddr>,
    /// Virtual IPs this node holds on its interface right now.
    pub vips_held: Vec<String>,
    /// The operator's override (`none`, `promote`, `demote`), kept in
    /// `node.state_dir` across restarts. Serialized as `override`.
    #[serde(rename = "override")]
    pub override_: Override,
    /// Why the node is in fault, if it is.
    pub fault: Option<String>,
    /// The runbook in progress (promote, demote, follow), if any.
    #[serde(default)]
    pub runbook: Option<crate::runbook::Progress>,
    /// Our `vrrp.advert_interval`, in milliseconds.
    pub advert_interval_ms: u64,
    /// The master's advert interval as learned from its adverts (RFC 5798
    /// §6.1 Master_Adver_Interval), in milliseconds.
    pub master_advert_interval_ms: u64,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Packet and transition counters since the start.
    pub counters: Counters,
    /// With `[cluster]`: quorum, leases and where environments run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    /// With `[fence] watchdog`: the device and what the agent does with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<WatchdogStatus>,
    /// Demotes kept failing and the node took the master role back (it
    /// holds the storage anyway); `resume` once the cause is fixed.
    #[serde(default)]
    pub retained: bool,
    /// A dual-stack node's `[vrrp6]`, synchronised to `[vrrp]`; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp6: Option<SlavedStatus>,
    /// A planned hand-over: this master keeps serving NFS while the
    /// followers quiesce, then demotes.
    #[serde(default)]
    pub handing_over: bool,
    /// The checks between transitions that apply now (issue 12).
    #[serde(default)]
    pub health: Vec<HealthStatus>,
    /// The environments the operator holds (`env hold`), by name.
    #[serde(default)]
    pub held: Vec<HeldStatus>,
    /// A ride through a master change in progress (`null` when none).
    #[serde(default)]
    pub riding: Option<RideStatus>,
}

/// A follower riding through a master change (`follow.on_master_change =
/// "ride-through"`): its mounts of the old master are kept until the new
/// one serves and they answer, or until the deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RideStatus {
    /// The master whose mounts are kept.
    pub from: IpAddr,
    /// The master now followed, when known.
    pub to: Option<IpAddr>,
    /// When the change was seen, in seconds since the Unix epoch.
    pub since: u64,
    /// When the full follow takes over if the ride has not ended, in
    /// seconds since the Unix epoch.
    pub deadline: u64,
}

/// One environment the operator holds, as `status` and `env list` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldStatus {
    /// The environment's name.
    pub name: String,
    /// When it was held, in seconds since the Unix epoch.
    pub since: u64,
}

/// One health check as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// Which check (`service nfsd`, `vip`, `environment web1`...).
    pub check: String,
    /// False once it failed `health.fall` times in a row.
    pub good: bool,
    /// What its last run said ("" when it succeeded).
    pub detail: String,
    /// A repair, remount or restart for it is running.
    pub repairing: bool,
    /// Seconds since its last run; `None` before the first.
    pub last_run_s_ago: Option<u64>,
    /// Seconds since its state last changed (good to failed or back), or
    /// since its first run when it never changed; `None` before the first.
    #[serde(default)]
    pub last_change_s_ago: Option<u64>,
    /// Runs since the check applies (it applies anew after a role change).
    #[serde(default)]
    pub runs: u64,
    /// Failed runs since the check applies.
    #[serde(default)]
    pub failures: u64,
    /// Repairs (and remounts) started since the check applies.
    #[serde(default)]
    pub repairs: u64,
    /// Restarts started since the check applies (environment checks).
    #[serde(default)]
    pub restarts: u64,
    /// An environment check of an environment the operator holds: a stop
    /// is neither restarted nor alerted.
    #[serde(default)]
    pub held: bool,
}

/// The watchdog as `status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchdogStatus {
    /// The configured watchdog path (`[fence] watchdog`).
    pub device: String,
    /// `freebsd` (watchdog(4)), `linux` (/dev/watchdog) or `fifo`.
    pub kind: String,
    /// The countdown the device runs (after its rounding).
    pub timeout_ms: u64,
    /// Whether the countdown runs now.
    pub armed: bool,
    /// What the agent does: `pat`, `withhold`, `disarm` or `keep`.
    pub verdict: String,
    /// Why it withholds, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Milliseconds since the last pat, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pat_ms: Option<u64>,
    /// Successful pats since the start.
    pub pats: u64,
    /// Failed watchdog operations (open, pat, disarm) since the start.
    pub failures: u64,
}

/// The quorum layer as `status` shows it (`docs/status.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This node hears, and is heard by, a strict majority.
    pub quorum: bool,
    /// How many nodes make a majority.
    pub majority: usize,
    /// This node and the peers heard within the lease.
    pub heard: Vec<String>,
    /// Nodes not heard within the lease.
    pub not_heard: Vec<String>,
    /// What this node claims (`master`, `env:NAME`).
    pub claims: Vec<String>,
    /// Milliseconds left of the master lease, when held.
    pub master_lease_ms: Option<u64>,
    /// Peers whose `[cluster]`/`[[environment]]` sections differ from ours.
    pub config_mismatch: Vec<String>,
    /// This run's incarnation (grows at every start).
    pub incarnation: u64,
    /// Heartbeats sent since the start (one per peer per interval).
    pub heartbeats_sent: u64,
    /// Heartbeats accepted since the start.
    pub heartbeats_received: u64,
    /// Heartbeats dropped, by reason.
    pub heartbeats_dropped: BTreeMap<String, u64>,
    /// One entry per `[[environment]]`.
    pub environments: Vec<EnvironmentStatus>,
}

/// Where one `[[environment]]` runs, and what this node thinks of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentStatus {
    /// The environment's name.
    pub name: String,
    /// Nodes that report running it (this one included): one at most.
    pub running_on: Vec<String>,
    /// Whether this node claims it, and why (or why not).
    pub claimed_here: bool,
    /// Why this node claims it or not, e.g. `first choice`, `runs on node2`.
    pub reason: String,
    /// Milliseconds left of this node's lease on it, when held.
    pub lease_ms: Option<u64>,
}

/// Counters since the agent started, as `status` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Advertisements sent.
    pub adverts_sent: u64,
    /// Advertisements accepted.
    pub adverts_received: u64,
    /// VRRP state changes.
    pub transitions: u64,
    /// Received packets dropped, by reason (`bad_ttl`, `bad_checksum`, ...).
    pub drops: BTreeMap<String, u64>,
    /// Adverts accepted per checksum form seen (`pseudo-header`, `no-pseudo-header`).
    pub checksum_forms: BTreeMap<String, u64>,
}

fn ipv4() -> String {
    "ipv4".to_owned()
}
