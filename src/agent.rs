//! The daemon: a single-threaded tokio loop that feeds the election core with
//! packets, timeouts, control requests and signals, and turns its actions
//! into effects.
//!
//! ```text
//!   raw socket ──datagrams──► admit (pure) ──advert──┐
//!   alarm (poll_timeout) ──Timeout─────────────────────┤
//!   control socket ──Request──► override / status ────┼──► Router::handle ──► actions
//!   signals ──SIGHUP reload / SIGTERM shutdown─────────┘          │
//!                                                                 ├─ SendAdvert  → socket (here, at once)
//!                                                                 ├─ StateChange → log + transition worker
//!                                                                 └─ ResendGarp  → transition worker
//! ```
//!
//! Every decision is the pure [`crate::node::NodeCore`]'s: the loop feeds
//! it inputs with the time and carries out its effects. The loop never
//! waits on a command: runbooks run in the [`transition`] worker task,
//! which converges on the latest decision. Adverts keep flowing while it
//! works.
//!
//! With `[cluster]`, heartbeats come and go on a UDP socket beside the raw
//! one ([`cluster`]); with `[fence] watchdog`, the loop pats the device
//! when the core allows it ([`fence`]).
//!
//! Idle, the loop sleeps on one kernel timer ([`alarm`]) armed for its
//! nearest deadline: the core's, the next heartbeat or pat, or a chore
//! (the link's safety poll, health checks, metrics, drop summaries) within
//! its slack. Chores run at whatever wake-up finds them due; the kernel's
//! link and address messages ([`crate::net::link_events`]) wake it for a
//! change at once.

mod alarm;
mod cluster;
mod fence;
mod health;
mod metrics;
mod notify;
mod transition;
mod vrrp_io;

/// The error of the `[cluster]` heartbeat link, carried by [`StartError::Heartbeat`].
pub use cluster::ClusterLinkError;

use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::{mpsc, oneshot, watch};

use crate::admit::DropCounters;
use crate::config::{self, Config};
use crate::control::protocol::{Counters, HeldStatus, Request, Response, Status};
use crate::control::server as control_server;
use crate::election::priority::Override;
use crate::election::Params;
use crate::events::{self, LogFormat, LogTarget};
use crate::exit::ExitStatus;
use crate::net::iface;
use crate::net::link_events::LinkEvents;
use crate::net::socket::SocketConfig;
use crate::net::socket6::SocketConfig6;
use crate::node::{self, Effect, Input, NodeCore, Notice, WorkerReport};
use crate::store::{HoldRecord, Holds, StateDir};
use crate::wire::ChecksumMode;

use transition::Desired;

/// How often drop and send-error summaries are logged, at most.
const SUMMARY_PERIOD: Duration = Duration::from_secs(10);
/// How long shutdown waits for the VIPs to be removed (without runbooks).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the interface's carrier is read while the kernel announces
/// link changes ([`crate::net::link_events`]): a safety net for a message
/// it dropped (FreeBSD's routing socket drops silently when full).
const LINK_POLL_WITH_EVENTS: Duration = Duration::from_secs(5);
/// How often it is read when the announcements cannot be had.
const LINK_POLL_WITHOUT_EVENTS: Duration = Duration::from_millis(100);
/// A source silent for this many advert intervals may come back with a
/// lower incarnation (a restart that lost `state_dir`, see
/// `auth::ReplayGuard::accept_at`).
const RESTART_SILENCE_ADVERTS: u32 = 10;
/// How many failed demotes in a row, with the master resources still held,
/// before the node escalates (see `node::Settings::release_attempts`).
const RELEASE_ATTEMPTS: u32 = 3;

/// How long SIGTERM waits for the demote runbook: stopping environments,
/// the NFS services and releasing the storage. rc.d's `rcshutdown_timeout`
/// must cover it (docs/operations.md).
fn shutdown_grace(config: &Config) -> Duration {
    if config.cbsd.is_none() {
        return SHUTDOWN_GRACE;
    }
    let r = &config.runbook;
    // A planned hand-over first waits for the followers to quiesce.
    let handover = config
        .cluster
        .as_ref()
        .map_or(Duration::ZERO, |c| c.handover_timeout);
    // Each environment stop may be followed by a forceful one and by
    // junregister, a command each (runbook::cbsd::stop).
    SHUTDOWN_GRACE
        + handover
        + config.environments.stop_timeout
        + r.command_timeout * 8
        + r.umount_timeout
        + r.storage_timeout
}
/// Largest datagram we read: an IPv4 header with options plus 255 addresses.
const RECV_BUFFER: usize = 2048;

/// Options of `rcbsd-failover run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The TOML configuration file (`--config`).
    pub config_path: PathBuf,
    /// Text or JSON log lines (`--log-format`).
    pub log_format: LogFormat,
    /// Standard error or syslog(3) (`--log-target`).
    pub log_target: LogTarget,
}

/// Runs the daemon in the foreground until SIGTERM/SIGINT.
pub fn run(opts: RunOptions) -> ExitCode {
    events::init(opts.log_format, opts.log_target);
    let config = match config::load(&opts.config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitStatus::Config.into();
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rcbsd-failover: cannot start the async runtime: {e}");
            return ExitStatus::OsErr.into();
        }
    };
    let code = runtime.block_on(async move {
        match Agent::start(config).await {
            Ok(agent) => agent.run().await,
            Err(e) => {
                let message = e.to_string();
                events::agent_failed(&message);
                eprintln!("rcbsd-failover: {message}");
                e.exit_status().into()
            }
        }
    });
    // A blocking task may be stuck in the kernel (a directory listing on a
    // dead hard NFS mount): dropping the runtime would wait for it forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// What failed at start (and, for the interface, at a reload); each maps
/// to its sysexits(3) status ([`StartError::exit_status`]).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The platform lacks what the agent needs (preflight).
    #[error(transparent)]
    Preflight(crate::net::error::NetError),
    /// `vrrp.interface` does not exist. The hint (check the name) is the
    /// source's own: [`crate::net::error::NetError::NoSuchInterface`].
    #[error("vrrp.interface {interface:?}: {source}")]
    Interface {
        /// The configured `vrrp.interface`.
        interface: String,
        /// The lookup failure.
        #[source]
        source: crate::net::error::NetError,
    },
    /// `vrrp.interface` has no address to send adverts from.
    #[error(
        "vrrp.interface {interface:?}: {source} (give it an address or set vrrp.source_address)"
    )]
    PrimaryAddress {
        /// The configured `vrrp.interface`.
        interface: String,
        /// Why no address could be chosen.
        #[source]
        source: crate::net::error::NetError,
    },
    /// `node.state_dir` cannot be created or used.
    #[error("node.state_dir: {0}")]
    StateDir(#[source] crate::store::StateDirError),
    /// The stored operator override is unreadable or corrupt.
    #[error(transparent)]
    Override(crate::store::StateDirError),
    /// The stored environment holds (`env hold`) are unreadable or
    /// corrupt: starting without them could start what the operator
    /// stopped on purpose.
    #[error(transparent)]
    Holds(crate::store::StateDirError),
    /// A virtual IP left by an earlier run is still on the interface.
    #[error("cannot remove the leftover virtual IP {vip}: {source}")]
    LeftoverVip {
        /// The virtual IP that could not be removed, with its prefix.
        vip: String,
        /// Why the removal failed.
        #[source]
        source: crate::net::vip::VipError,
    },
    /// The `[auth]` key files.
    #[error("[auth]: {0}")]
    AuthKeys(#[source] crate::auth::KeyFileError),
    /// The incarnation counter in `node.state_dir`.
    #[error("node.state_dir: cannot store the incarnation: {0}")]
    Incarnation(#[source] std::io::Error),
    /// The `[cluster]` heartbeat socket.
    #[error(transparent)]
    Heartbeat(cluster::ClusterLinkError),
    /// The `[fence] watchdog` device.
    #[error("[fence] watchdog: {0}")]
    Watchdog(#[source] crate::fence::watchdog::WatchdogError),
    /// The control socket.
    #[error(transparent)]
    ControlSocket(crate::control::server::ControlError),
    /// The raw VRRP socket.
    #[error("VRRP socket on {interface}: {source}")]
    VrrpSocket {
        /// The configured `vrrp.interface`.
        interface: String,
        /// Why opening or configuring it failed.
        #[source]
        source: crate::net::error::NetError,
    },
    /// The transition worker (its link-layer ARP sender).
    #[error(transparent)]
    Worker(crate::runbook::VipError),
    /// SIGHUP/SIGINT/SIGTERM handlers.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

impl StartError {
    /// The exit status `run` ends with.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            StartError::Preflight(_)
            | StartError::Interface { .. }
            | StartError::PrimaryAddress { .. }
            | StartError::Heartbeat(_)
            | StartError::Watchdog(_)
            | StartError::ControlSocket(_) => ExitStatus::Unavailable,
            StartError::StateDir(_)
            | StartError::LeftoverVip { .. }
            | StartError::Incarnation(_)
            | StartError::VrrpSocket { .. }
            | StartError::Worker(_)
            | StartError::Signals(_) => ExitStatus::OsErr,
            StartError::Override(_) | StartError::Holds(_) | StartError::AuthKeys(_) => {
                ExitStatus::Config
            }
        }
    }
}

/// Facts about the interface, resolved once per (re)configuration.
#[derive(Clone, Debug, PartialEq)]
struct Link {
    ifindex: u32,
    /// IPv4: the primary address; IPv6: the interface's link-local address
    /// (RFC 5798 §5.1.2.1), never the virtual one.
    primary: IpAddr,
}

fn resolve_link(config: &Config) -> Result<Link, StartError> {
    let ifname = &config.vrrp.interface;
    let ifindex = iface::interface_index(ifname).map_err(|source| StartError::Interface {
        interface: ifname.clone(),
        source,
    })?;
    let no_address = |source| StartError::PrimaryAddress {
        interface: ifname.clone(),
        source,
    };
    let primary = if config.vrrp.virtual_ips6.is_empty() {
        match config.vrrp.source_address {
            Some(a) => IpAddr::V4(a),
            None => IpAddr::V4(
                iface::primary_address(ifname, &vip_addresses(config)).map_err(no_address)?,
            ),
        }
    } else {
        match config.vrrp.source_address6 {
            Some(a) => IpAddr::V6(a),
            None => IpAddr::V6(
                iface::link_local_address(ifname, &vip_addresses6(config)).map_err(no_address)?,
            ),
        }
    };
    Ok(Link { ifindex, primary })
}

fn vip_addresses(config: &Config) -> Vec<Ipv4Addr> {
    config.vrrp.virtual_ips.iter().map(|v| v.address).collect()
}

fn vip_addresses6(config: &Config) -> Vec<Ipv6Addr> {
    config.vrrp.virtual_ips6.iter().map(|v| v.address).collect()
}

fn socket_config(config: &Config, link: &Link) -> vrrp_io::Spec {
    match link.primary {
        IpAddr::V4(source) => vrrp_io::Spec::V4(SocketConfig {
            interface: config.vrrp.interface.clone(),
            ifindex: link.ifindex,
            source,
            unicast_peers: config.vrrp.unicast_peers.clone(),
        }),
        IpAddr::V6(source) => vrrp_io::Spec::V6(SocketConfig6 {
            interface: config.vrrp.interface.clone(),
            ifindex: link.ifindex,
            source,
        }),
    }
}

/// The configured election parameters for a config and a link.
fn params(config: &Config, link: &Link) -> Params {
    Params {
        vrid: config.vrrp.vrid,
        priority: config.vrrp.priority,
        advert_interval: config.vrrp.advert_interval,
        preempt: config.vrrp.preempt,
        preempt_delay: config.vrrp.preempt_delay,
        primary_address: link.primary,
    }
}

/// What the node core needs of a configuration.
fn node_settings(
    config: &Config,
    link: &Link,
    watchdog: Option<node::WatchdogRule>,
) -> node::Settings {
    node::Settings {
        interface: config.vrrp.interface.clone(),
        params: params(config, link),
        may_be_master: config.may_be_master(),
        fault_hold_off: config.runbook.fault_hold_off,
        cluster: config.cluster.as_ref().map(|c| node::ClusterSettings {
            state: cluster::state_settings(config, c),
            placement: config.cbsd.is_some(),
            candidates: transition::placed_here(config)
                .into_iter()
                .map(|e| e.name)
                .collect(),
            // Only CBSD followers mount anything to quiesce; riding
            // through, they keep their mounts and the I/O pauses instead
            // (quiescing would restart every environment they run).
            handover: Some(c.handover_timeout).filter(|t| {
                config.cbsd.is_some() && !t.is_zero() && config.follow.ride_through().is_none()
            }),
            ride_through: config.follow.ride_through().is_some(),
        }),
        watchdog,
        release_attempts: RELEASE_ATTEMPTS,
    }
}

type ControlRequest = (Request, oneshot::Sender<Response>);

/// Why an operator override could not be stored (the reply says
/// `override not changed: ...`).
#[derive(Debug, thiserror::Error)]
enum OverrideSaveError {
    #[error(transparent)]
    StateDir(#[from] crate::store::StateDirError),
    /// The blocking task that wrote it panicked or was cancelled.
    #[error("{0}")]
    Join(#[source] tokio::task::JoinError),
}

/// `env hold` or `env release`, waiting for its turn to be stored.
struct HoldChange {
    environment: String,
    hold: bool,
    reply: oneshot::Sender<Response>,
}

/// The holds after the attempt to store them.
struct SavedHolds {
    holds: Holds,
    environment: String,
    hold: bool,
    result: Result<(), OverrideSaveError>,
    reply: oneshot::Sender<Response>,
}

/// An operator override after the attempt to store it.
struct SavedOverride {
    new: Override,
    result: Result<(), OverrideSaveError>,
    reply: oneshot::Sender<Response>,
}

fn send_reply(reply: oneshot::Sender<Response>, response: Response) {
    if reply.send(response).is_err() {
        events::control_error("client went away before the reply");
    }
}

struct Agent {
    config: Config,
    link: Link,
    /// Every decision: the election, quorum, faults, overrides, the fence.
    core: NodeCore,
    socket: vrrp_io::Io,
    store: StateDir,
    /// What the worker serves; replaced with every published decision and
    /// every applied reload.
    desired: watch::Sender<Desired>,
    /// The core's cancel generation: a running runbook stops at its next
    /// safe point when it changes.
    cancel: watch::Sender<u64>,
    /// What the worker may acquire now: an acquiring step is killed when
    /// its resource leaves it (the fence).
    allowance: watch::Sender<node::Allowance>,
    progress: crate::runbook::ProgressHandle,
    /// The worker's ride through a master change (`status`).
    ride: transition::RideHandle,
    stats: metrics::RunbookStats,
    /// Bumped by every applied reload, so the worker gets the new config
    /// without a deep comparison on every advert.
    config_generation: u64,
    /// When the state last changed (wall clock, for the metrics).
    last_transition: Option<std::time::SystemTime>,
    garp_now: mpsc::UnboundedSender<IpAddr>,
    worker_events: mpsc::UnboundedReceiver<WorkerReport>,
    worker: tokio::task::JoinHandle<()>,
    control_rx: mpsc::Receiver<ControlRequest>,
    overrides_saved: mpsc::UnboundedSender<SavedOverride>,
    overrides_saved_rx: mpsc::UnboundedReceiver<SavedOverride>,
    control_shutdown: watch::Sender<bool>,
    signals: Signals,
    counters: Counters,
    drops: DropCounters,
    drops_logged: DropCounters,
    send_errors: u64,
    send_errors_logged: u64,
    started: Instant,
    /// `[cluster]`: the heartbeat socket and its counters; `None`: plain VRRP.
    cluster: Option<cluster::ClusterLink>,
    /// `[fence] watchdog`: the device and what was last done with it.
    fence: Option<fence::Fence>,
    /// `[auth]`: signs and checks adverts and heartbeats.
    keys: Option<std::sync::Arc<crate::auth::Keyring>>,
    /// This run's incarnation (also the advert auth counter's high part).
    incarnation: u64,
    /// The advert auth counter's low part.
    advert_seq: u64,
    /// Replay protection for authenticated adverts, per source.
    advert_replay: vrrp_io::Replay,
    advert_auth_alerts: crate::auth::AuthFailureLimiter<IpAddr>,
    /// The VIPs, built once per configuration (the receive path compares
    /// every advert with them).
    vips: Vec<Ipv4Addr>,
    /// The IPv6 VIPs, link-local first (empty for an IPv4 router).
    vips6: Vec<Ipv6Addr>,
    /// A dual-stack node's `[vrrp6]`: its own router, synchronised to `[vrrp]`.
    vrrp6: Option<vrrp_io::Slaved>,
    /// The checks between transitions (issue 12).
    health: health::HealthWatch,
    /// How the worker's repairs went.
    repaired: mpsc::UnboundedReceiver<transition::RepairDone>,
    /// What the worker last said it holds.
    holding: Option<crate::quorum::Holding>,
    /// What the health checks were last chosen from.
    health_key: Option<(health::Scope, Option<crate::quorum::Holding>, u64)>,
    /// Reads `vrrp.interface`'s carrier.
    carrier: iface::CarrierProbe,
    /// Adverts accepted per checksum form (named only for `status`).
    checksum_forms: ChecksumForms,
    /// The advert being sent, reused: no allocation per advert.
    advert_packet: Vec<u8>,
    /// The kernel's link and address messages; `None` when they cannot be
    /// read (then the carrier is polled often).
    link_events: Option<LinkEvents>,
    /// The environments the operator holds, as stored in `state_dir`.
    holds: Holds,
    /// Hold and release requests, stored one at a time in arrival order
    /// (each write holds the whole set: two at once could lose one).
    holds_queue: VecDeque<HoldChange>,
    /// A holds file write is under way.
    holds_busy: bool,
    holds_saved: mpsc::UnboundedSender<SavedHolds>,
    holds_saved_rx: mpsc::UnboundedReceiver<SavedHolds>,
}

impl Agent {
    async fn start(config: Config) -> Result<Agent, StartError> {
        crate::net::preflight::check(&config.tools.kldstat).map_err(StartError::Preflight)?;
        let link = resolve_link(&config)?;
        let store = StateDir::open(&config.node.state_dir).map_err(StartError::StateDir)?;
        let override_ = store.load_override().map_err(StartError::Override)?;
        let holds = store.load_holds().map_err(StartError::Holds)?;

        // A VIP left by a crashed earlier run must go before we may become
        // master: otherwise two nodes could answer ARP for it.
        // Both families: an IPv6 VIP left behind would answer Neighbor
        // Solicitations as an IPv4 one answers ARP.
        let leftovers = config
            .vrrp
            .virtual_ips
            .iter()
            .map(|v| v as &dyn crate::net::vip::VipAddress)
            .chain(
                config
                    .vrrp
                    .virtual_ips6
                    .iter()
                    .map(|v| v as &dyn crate::net::vip::VipAddress),
            );
        let vrrp6 = config.vrrp6.iter().flat_map(|v6| {
            v6.virtual_ips
                .iter()
                .map(move |v| (v6.interface.as_str(), v as &dyn crate::net::vip::VipAddress))
        });
        let backend = crate::net::vip::platform_backend(&config.tools.ifconfig);
        for (interface, vip) in leftovers
            .map(|vip| (config.vrrp.interface.as_str(), vip))
            .chain(vrrp6)
        {
            match crate::net::vip::ensure_absent(&*backend, interface, vip).await {
                Ok(true) => events::stale_vip_removed(interface, &vip.to_string()),
                Ok(false) => {}
                Err(source) => {
                    return Err(StartError::LeftoverVip {
                        vip: vip.to_string(),
                        source,
                    })
                }
            }
        }

        let keys = match &config.auth {
            Some(auth) => Some(std::sync::Arc::new(
                crate::auth::Keyring::load(&auth.key_file, auth.accept_key_file.as_deref())
                    .map_err(StartError::AuthKeys)?,
            )),
            None => None,
        };
        let incarnation = crate::auth::next_incarnation(&config.node.state_dir)
            .map_err(StartError::Incarnation)?;
        let cluster = match &config.cluster {
            Some(c) => Some(
                cluster::ClusterLink::open(&config, c, keys.clone())
                    .await
                    .map_err(StartError::Heartbeat)?,
            ),
            None => None,
        };
        let fence = match &config.fence.watchdog {
            Some(watchdog) => Some(fence::Fence::open(watchdog).map_err(StartError::Watchdog)?),
            None => None,
        };

        let listener = control_server::bind_with_access(
            &config.node.control_socket,
            config.node.status_group.as_deref(),
        )
        .map_err(StartError::ControlSocket)?;
        let socket =
            socket_config(&config, &link)
                .open()
                .map_err(|source| StartError::VrrpSocket {
                    interface: config.vrrp.interface.clone(),
                    source,
                })?;

        let vrrp6 = match &config.vrrp6 {
            Some(v6) => Some(vrrp_io::Slaved::open(v6, Instant::now()).map_err(|source| {
                StartError::VrrpSocket {
                    interface: v6.interface.clone(),
                    source,
                }
            })?),
            None => None,
        };

        let transition::Handles {
            task: worker,
            desired,
            cancel,
            allowance,
            garp_now,
            events: worker_events,
            progress,
            ride,
            stats,
            repairs,
            repaired,
        } = transition::spawn(&config, held_names(&holds)).map_err(StartError::Worker)?;
        let mut health = health::HealthWatch::new(&config, repairs);
        health.set_held(held_names(&holds));
        let (holds_saved, holds_saved_rx) = mpsc::unbounded_channel();

        let (control_tx, control_rx) = mpsc::channel(16);
        let (overrides_saved, overrides_saved_rx) = mpsc::unbounded_channel();
        let (control_shutdown, control_shutdown_rx) = watch::channel(false);
        tokio::spawn(control_server::serve(
            listener,
            control_tx,
            control_shutdown_rx,
        ));

        // Installed before the election starts: a SIGTERM from now on is a
        // clean shutdown, never the default (abrupt) one.
        let signals = Signals::new([SIGHUP, SIGINT, SIGTERM]).map_err(StartError::Signals)?;
        let now = Instant::now();
        let mut core = NodeCore::new(
            node_settings(&config, &link, fence.as_ref().map(fence::Fence::rule)),
            incarnation,
            now,
        );
        core.restore_override(override_);
        let vips = vip_addresses(&config);
        let vips6 = vip_addresses6(&config);
        let carrier = iface::CarrierProbe::open(&config.vrrp.interface).map_err(|source| {
            StartError::Interface {
                interface: config.vrrp.interface.clone(),
                source,
            }
        })?;
        let link_events = match LinkEvents::open(link.ifindex) {
            Ok(events) => Some(events),
            Err(e) => {
                events::link_watch_unavailable(&config.vrrp.interface, &e.to_string());
                None
            }
        };
        let mut agent = Agent {
            config,
            link,
            core,
            socket,
            store,
            desired,
            cancel,
            allowance,
            progress,
            ride,
            stats,
            config_generation: 0,
            last_transition: None,
            garp_now,
            worker_events,
            worker,
            control_rx,
            overrides_saved,
            overrides_saved_rx,
            control_shutdown,
            signals,
            counters: Counters::default(),
            drops: DropCounters::default(),
            drops_logged: DropCounters::default(),
            send_errors: 0,
            send_errors_logged: 0,
            started: now,
            cluster,
            fence,
            keys,
            incarnation,
            advert_seq: 0,
            advert_replay: vrrp_io::Replay::new(256),
            advert_auth_alerts: crate::auth::AuthFailureLimiter::new(
                crate::auth::AuthFailureLimiter::<IpAddr>::PERIOD,
                crate::auth::AuthFailureLimiter::<IpAddr>::CAPACITY,
            ),
            vips,
            vips6,
            vrrp6,
            health,
            repaired,
            holding: None,
            health_key: None,
            carrier,
            link_events,
            checksum_forms: ChecksumForms::default(),
            advert_packet: Vec::with_capacity(RECV_BUFFER),
            holds,
            holds_queue: VecDeque::new(),
            holds_busy: false,
            holds_saved,
            holds_saved_rx,
        };
        events::agent_started(
            &agent.config.node.name,
            &agent.config.vrrp.interface,
            agent.config.vrrp.vrid,
            agent.config.vrrp.priority,
            env!("CARGO_PKG_VERSION"),
        );
        if override_ != Override::None {
            events::override_restored(override_.as_str());
        }
        for name in agent.holds.held.keys() {
            events::environment_held(name, true);
        }
        for warning in agent.config.warnings() {
            events::config_warning(&warning);
        }
        // Until the worker has looked at what this node holds (its first
        // report), the core claims everything the node could hold: a
        // heartbeat without those claims would release them to the others.
        let effects = agent.core.handle(Input::Start, Instant::now());
        agent.apply(effects).await;
        Ok(agent)
    }

    async fn run(mut self) -> ExitCode {
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut link_up = true;
        let (mut alarm, refused) = alarm::Alarm::new();
        if let Some(e) = refused {
            events::kernel_timer_unavailable(&e.to_string());
        }
        let mut chores = Chores {
            link_poll_at: Instant::now(),
            metrics_written: None,
            summarized: Instant::now(),
            heartbeat_at: self.cluster.as_ref().map(|_| Instant::now()),
            watchdog_at: self.fence.as_ref().map(|_| Instant::now()),
        };
        let mut heartbeat_buf = vec![0u8; cluster::HEARTBEAT_BUFFER];
        let mut buf6 = vec![0u8; RECV_BUFFER];
        // SIGTERM/SIGINT: the worker releases everything (demote) while the
        // election keeps running and this node keeps advertising, so no
        // other node promotes onto storage we still hold; only then the
        // priority-0 advert hands over (RFC 5798 §6.4.3 Shutdown).
        let mut shutdown_deadline: Option<Instant> = None;
        let released = loop {
            // Whatever woke the loop, the chores due by now run with it.
            let effects = self.due_chores(&mut chores, &mut link_up, Instant::now());
            if !effects.is_empty() {
                self.apply(effects).await;
            }
            self.sync_vrrp6().await;
            let deadline = self.core.poll_timeout(Instant::now());
            let deadline6 = self.vrrp6.as_ref().and_then(|v6| v6.router.poll_timeout());
            let wake = [deadline, deadline6].into_iter().flatten().min();
            alarm.set(self.wake_at(&chores, wake, shutdown_deadline));
            let effects = tokio::select! {
                received = cluster::recv_heartbeat(self.cluster.as_ref(), &mut heartbeat_buf) => match received {
                    Ok((len, from)) => match self.on_heartbeat(heartbeat_buf.get(..len).unwrap_or(&[]), from) {
                        Some(effects) => effects,
                        None => continue,
                    },
                    Err(e) => {
                        events::receive_failed(&format!("heartbeat socket: {e}"));
                        Vec::new()
                    }
                },
                received = vrrp_io::recv_slaved(self.vrrp6.as_ref(), &mut buf6) => {
                    match received {
                        Ok((len, meta)) => {
                            if let Some(advert) = self.on_slaved_datagram(buf6.get(..len).unwrap_or(&[]), &meta) {
                                self.on_vrrp6(crate::election::Input::Advert(advert), Instant::now()).await;
                            }
                        }
                        Err(e) => events::receive_failed(&format!("[vrrp6] socket: {e}")),
                    }
                    continue;
                }
                received = self.socket.recv(&mut buf) => match received {
                    // A dropped packet changes nothing: back to waiting at
                    // once, so a flood costs a parse per packet, no more.
                    Ok((len, meta)) => match self.on_datagram(buf.get(..len).unwrap_or(&[]), &meta) {
                        Some(effects) => effects,
                        None => continue,
                    },
                    Err(e) => {
                        events::receive_failed(&e.to_string());
                        Vec::new()
                    }
                },
                () = alarm.fired() => {
                    let now = Instant::now();
                    if shutdown_deadline.is_some_and(|at| at <= now) {
                        events::shutdown_timeout(shutdown_grace(&self.config).as_secs());
                        break false;
                    }
                    // `[vrrp6]`'s own timers (its Adver_Timer and
                    // Master_Down_Timer, RFC 5798 §6.2).
                    if deadline6.is_some_and(|at| at <= now) {
                        self.on_vrrp6(crate::election::Input::Timeout, now).await;
                    }
                    // Otherwise a chore is due (it runs at the top of the
                    // loop) or the core's own deadline passed.
                    match deadline {
                        Some(at) if at <= now => self.core.handle(Input::Timeout, now),
                        _ => continue,
                    }
                }
                Some((request, reply)) = self.control_rx.recv() => self.on_request(request, reply),
                Some(saved) = self.overrides_saved_rx.recv() => self.on_override_saved(saved),
                Some(saved) = self.holds_saved_rx.recv() => {
                    self.on_holds_saved(saved);
                    continue;
                }
                Some(signal) = self.signals.next() => match signal {
                    SIGHUP if !self.core.is_stopping() => self.reload().await,
                    SIGHUP => Vec::new(),
                    other if !self.core.is_stopping() => {
                        let name = if other == SIGINT { "SIGINT" } else { "SIGTERM" };
                        events::agent_stopping(name, self.core.state());
                        let grace = shutdown_grace(&self.config);
                        shutdown_deadline = Some(Instant::now() + grace);
                        // The core publishes Stopped: the worker releases.
                        self.core.handle(Input::Stop, Instant::now())
                    }
                    // A second signal: stop waiting for the release.
                    _ => break false,
                },
                _ = &mut self.worker => {
                    if self.core.is_stopping() {
                        break true;
                    }
                    // Only a panic ends the worker early: nothing would
                    // converge any more. Exit; daemon(8) restarts us.
                    events::agent_failed("the transition worker ended unexpectedly");
                    break false;
                }
                Some(report) = self.worker_events.recv() => {
                    if let WorkerReport::Holding(holding) = &report {
                        self.holding = Some(holding.clone());
                    }
                    self.core.handle(Input::Worker(report), Instant::now())
                }
                Some(run) = self.health.results.recv() => {
                    self.health.on_result(run, Instant::now());
                    self.health_verdict()
                }
                Some(done) = self.repaired.recv() => {
                    self.health.on_repaired(done);
                    continue;
                }
                change = next_link_change(self.link_events.as_mut()) => match change {
                    Ok(change) => {
                        if change.addresses {
                            // A VIP removed by hand is seen now, not at
                            // the next `vip` check.
                            self.health.addresses_changed(Instant::now());
                        }
                        match change.link.then(|| self.check_link(&mut link_up)).flatten() {
                            Some(up) => self.core.handle(Input::Link { up }, Instant::now()),
                            None => continue,
                        }
                    }
                    Err(e) => {
                        events::link_watch_unavailable(&self.config.vrrp.interface, &e.to_string());
                        self.link_events = None;
                        continue;
                    }
                },
            };
            self.apply(effects).await;
            self.select_health_checks();
        };
        self.shutdown(released).await
    }

    /// Runs the loop's chores that are due: the link's safety poll, the
    /// health checks, the metrics file, the drop summary. Returns what
    /// they mean for the core.
    fn due_chores(&mut self, chores: &mut Chores, link_up: &mut bool, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Heartbeats and watchdog pats keep their period exactly (no slack):
        // the peers' leases and the device's countdown are measured in it.
        if let (Some(at), Some(cluster)) = (chores.heartbeat_at, &self.cluster) {
            if at <= now {
                chores.heartbeat_at = Some(now + cluster.heartbeat_interval());
                effects.extend(self.core.handle(Input::HeartbeatDue, now));
            }
        }
        if let (Some(at), Some(fence)) = (chores.watchdog_at, &self.fence) {
            if at <= now {
                chores.watchdog_at = Some(now + fence.pat_interval());
                self.tend_watchdog();
            }
        }
        if chores.link_poll_at <= now {
            chores.link_poll_at = now + self.link_poll_period();
            if let Some(up) = self.check_link(link_up) {
                effects.extend(self.core.handle(Input::Link { up }, now));
            }
        }
        if self.health.next_due().is_some_and(|at| at <= now) {
            self.health.launch_due(&self.config, now);
            effects.extend(self.health_verdict());
        }
        if self.metrics_due(chores).is_some_and(|at| at <= now) {
            chores.metrics_written = Some(now);
            self.write_metrics();
        }
        if self.summary_due(chores).is_some_and(|at| at <= now) {
            chores.summarized = now;
            self.log_summaries();
        }
        effects
    }

    /// When the loop must wake if nothing else wakes it: the core's
    /// deadline and the shutdown's exactly, each chore within its slack
    /// (so that it mostly rides on a wake-up for an advert).
    fn wake_at(
        &self,
        chores: &Chores,
        core_deadline: Option<Instant>,
        shutdown_deadline: Option<Instant>,
    ) -> Option<Instant> {
        let link_period = self.link_poll_period();
        let link = chores.link_poll_at
            + if self.link_events.is_some() {
                alarm::slack(link_period)
            } else {
                Duration::ZERO
            };
        let health_period = self
            .config
            .health
            .tracks
            .iter()
            .map(|t| t.interval)
            .fold(self.config.health.interval, Duration::min);
        let health = self
            .health
            .next_due()
            .map(|at| at + alarm::slack(health_period));
        let metrics = self.metrics_due(chores).map(|at| {
            at + self
                .config
                .metrics
                .as_ref()
                .map_or(Duration::ZERO, |m| alarm::slack(m.interval))
        });
        let summary = self
            .summary_due(chores)
            .map(|at| at + alarm::slack(SUMMARY_PERIOD));
        [
            core_deadline,
            shutdown_deadline,
            chores.heartbeat_at,
            chores.watchdog_at,
            Some(link),
            health,
            metrics,
            summary,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The carrier's safety poll: slow while the kernel announces changes.
    fn link_poll_period(&self) -> Duration {
        if self.link_events.is_some() {
            LINK_POLL_WITH_EVENTS
        } else {
            LINK_POLL_WITHOUT_EVENTS
        }
    }

    /// When the metrics file is next due, from the config in force (a
    /// reload that adds `[metrics]` applies at once); never without it.
    fn metrics_due(&self, chores: &Chores) -> Option<Instant> {
        let metrics = self.config.metrics.as_ref()?;
        Some(
            chores
                .metrics_written
                .map_or(self.started, |at| at + metrics.interval),
        )
    }

    /// When the next drop summary is due: at most one per
    /// [`SUMMARY_PERIOD`], none while there is nothing to summarize.
    fn summary_due(&self, chores: &Chores) -> Option<Instant> {
        self.has_unsummarized()
            .then(|| chores.summarized + SUMMARY_PERIOD)
    }

    /// The checks that apply now ([`health::Scope`]): the master's while
    /// it serves (a promote completed and no runbook runs), a follower's
    /// between its runbooks, the tracks always.
    fn select_health_checks(&mut self) {
        let holding = self.holding.as_ref();
        let master = self.core.state() == crate::wire::VrrpState::Master
            && holding.is_some_and(|h| h.master);
        // A repair runs under the same progress handle: not a runbook.
        let runbook = self
            .progress
            .get()
            .is_some_and(|p| p.runbook != crate::runbook::Kind::Repair);
        let scope = health::Scope::of(master, runbook, self.core.is_stopping());
        // Most iterations (an advert, a heartbeat) change none of it.
        let unchanged = self.health_key.as_ref().is_some_and(|(s, h, g)| {
            *s == scope && h.as_ref() == holding && *g == self.config_generation
        });
        if unchanged {
            return;
        }
        self.health.select(&self.config, scope, holding);
        self.health_key = Some((scope, holding.cloned(), self.config_generation));
    }

    /// Hands a changed health verdict to the node core.
    fn health_verdict(&mut self) -> Vec<Effect> {
        match self.health.changed_verdict(Instant::now()) {
            Some(verdict) => self.core.handle(
                Input::Health {
                    priority_delta: verdict.priority_delta,
                    resign: verdict.resign,
                },
                Instant::now(),
            ),
            None => Vec::new(),
        }
    }

    /// What admission and encoding need of this node's virtual router.
    fn local(&self) -> vrrp_io::Local<'_> {
        vrrp_io::Local {
            vrid: self.config.vrrp.vrid,
            ifindex: self.link.ifindex,
            primary: self.link.primary,
            unicast_peers: &self.config.vrrp.unicast_peers,
            vips: &self.vips,
            vips6: &self.vips6,
            we_are_owner: self.config.vrrp.priority == 255,
        }
    }

    /// One packet from the raw socket; `None` when it was dropped.
    fn on_datagram(&mut self, datagram: &[u8], meta: &vrrp_io::Meta) -> Option<Vec<Effect>> {
        let restart_silence = self
            .config
            .vrrp
            .advert_interval
            .to_duration()
            .saturating_mul(RESTART_SILENCE_ADVERTS);
        // Out for the call: admission borrows the rest of `self`.
        let mut replay = std::mem::replace(&mut self.advert_replay, vrrp_io::Replay::new(0));
        let auth = self.keys.as_deref().map(|keys| {
            (
                vrrp_io::Auth {
                    keys,
                    now: Instant::now(),
                    restart_silence,
                },
                &mut replay,
            )
        });
        let admitted = self.local().admit(datagram, meta, auth);
        self.advert_replay = replay;
        match admitted {
            Ok(admitted) => {
                self.counters.adverts_received += 1;
                let form = match admitted.checksum {
                    ChecksumMode::PseudoHeader => &mut self.checksum_forms.pseudo_header,
                    ChecksumMode::NoPseudoHeader => &mut self.checksum_forms.no_pseudo_header,
                };
                *form = form.saturating_add(1);
                Some(
                    self.core
                        .handle(Input::Advert(admitted.advert), Instant::now()),
                )
            }
            Err(vrrp_io::Dropped { reason, source }) => {
                self.drops.record(reason);
                if reason.is_auth_failure() {
                    if let Some(alert) = self.advert_auth_alerts.record(&source, Instant::now()) {
                        events::auth_failed(
                            "advert",
                            &source.to_string(),
                            reason.as_str(),
                            alert.suppressed,
                        );
                    }
                }
                None
            }
        }
    }

    /// One datagram on the `[vrrp6]` socket: admitted and counted; the
    /// admitted advert is `[vrrp6]`'s election input (its own router, never
    /// `[vrrp]`'s; docs/election.md, "Dual stack").
    fn on_slaved_datagram(
        &mut self,
        datagram: &[u8],
        meta: &vrrp_io::Meta,
    ) -> Option<crate::election::ReceivedAdvert> {
        let restart_silence = self
            .config
            .vrrp
            .advert_interval
            .to_duration()
            .saturating_mul(RESTART_SILENCE_ADVERTS);
        let slaved = self.vrrp6.as_mut()?;
        let mut replay = std::mem::replace(&mut slaved.replay, vrrp_io::Replay::new(0));
        let auth = self.keys.as_deref().map(|keys| {
            (
                vrrp_io::Auth {
                    keys,
                    now: Instant::now(),
                    restart_silence,
                },
                &mut replay,
            )
        });
        let admitted = slaved.local().admit(datagram, meta, auth);
        slaved.replay = replay;
        match admitted {
            Ok(admitted) => {
                slaved.adverts_received += 1;
                Some(admitted.advert)
            }
            Err(dropped) => {
                slaved.dropped += 1;
                self.drops.record(dropped.reason);
                None
            }
        }
    }

    /// Keeps `[vrrp6]` in step with the node's decided role (Master only
    /// while the node's decision is Master; docs/election.md "Dual stack")
    /// and carries out what its router decides.
    async fn sync_vrrp6(&mut self) {
        let node_master = self
            .core
            .published()
            .is_some_and(|d| d.role == node::Role::Master);
        let now = Instant::now();
        let Some(slaved) = &mut self.vrrp6 else {
            return;
        };
        let actions = if slaved.router.state() == crate::wire::VrrpState::Initialize {
            slaved.router.startup(node_master, now)
        } else {
            slaved.router.follow_node(node_master, now)
        };
        self.vrrp6_actions(actions).await;
    }

    /// An advert or a timeout for `[vrrp6]`'s router.
    async fn on_vrrp6(&mut self, input: crate::election::Input, now: Instant) {
        let Some(slaved) = &mut self.vrrp6 else {
            return;
        };
        let actions = slaved.router.handle(input, now);
        self.vrrp6_actions(actions).await;
    }

    /// Carries out `[vrrp6]`'s actions. Its VIPs and their Neighbor
    /// Advertisements are the runbooks' (with the `[vrrp]` ones, in the
    /// promote/demote order), so only its adverts are sent here; a state
    /// change shows in `status`.
    async fn vrrp6_actions(&mut self, actions: Vec<crate::election::Action>) {
        for action in actions {
            if let crate::election::Action::SendAdvert { priority } = action {
                self.send_slaved_advert(priority).await;
            }
        }
    }

    /// One heartbeat datagram; `None` when it was dropped.
    fn on_heartbeat(&mut self, datagram: &[u8], from: SocketAddr) -> Option<Vec<Effect>> {
        let cluster = self.cluster.as_mut()?;
        let heartbeat = cluster.admit(datagram, from, Instant::now())?;
        Some(
            self.core
                .handle(Input::Heartbeat(heartbeat), Instant::now()),
        )
    }

    /// Carries out the core's effects, in order.
    async fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::SendAdvert { priority } => self.send_advert(priority).await,
                Effect::SendHeartbeat(heartbeat) => {
                    if let Some(cluster) = &mut self.cluster {
                        cluster.send(&heartbeat).await;
                    }
                }
                Effect::HeartbeatIgnored(ignored) => {
                    if let Some(cluster) = &mut self.cluster {
                        cluster.ignored(ignored);
                    }
                }
                Effect::Publish { decision, cancel } => self.publish(decision, cancel),
                Effect::ResendGarp { other_master } => {
                    let _ = self.garp_now.send(other_master);
                }
                Effect::Notice(notice) => self.notice(notice),
            }
        }
        // A change of what is held or allowed changes the watchdog's
        // verdict at once, not only at its next tick.
        self.tend_watchdog();
        // A new decision moves `[vrrp6]` at once (Master with the node,
        // resign without it), including at shutdown.
        self.sync_vrrp6().await;
    }

    /// Hands the worker a new decision (with the configuration in force).
    fn publish(&mut self, decision: node::Decision, cancel: bool) {
        let allowance = decision.allowance();
        self.allowance.send_if_modified(|current| {
            let changed = *current != allowance;
            *current = allowance;
            changed
        });
        let desired = Desired {
            decision,
            config: self.config.clone(),
            config_generation: self.config_generation,
            held: held_names(&self.holds),
        };
        self.desired.send_replace(desired);
        if cancel {
            self.cancel.send_replace(self.core.generation());
        }
    }

    /// Logs what the core decided (and runs the notify hook).
    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::StateChange {
                from,
                to,
                reason,
                priority,
                master,
            } => {
                self.counters.transitions += 1;
                self.last_transition = Some(std::time::SystemTime::now());
                events::state_change(from, to, reason, priority, master);
                if let Some(notify) = &self.config.notify {
                    notify::spawn(
                        notify,
                        notify::Notification {
                            event: events::Event::StateChange,
                            from: from.to_string(),
                            to: to.to_string(),
                            reason: reason.as_str().to_owned(),
                            node: self.config.node.name.clone(),
                            priority,
                            master: master.map_or_else(|| "none".to_owned(), |m| m.to_string()),
                            vips: self
                                .config
                                .vrrp
                                .virtual_ips
                                .iter()
                                .map(ToString::to_string)
                                .chain(
                                    self.config
                                        .vrrp
                                        .virtual_ips6
                                        .iter()
                                        .map(ToString::to_string),
                                )
                                .collect::<Vec<_>>()
                                .join(","),
                        },
                    );
                }
            }
            Notice::MasterConflict {
                other_master,
                priority,
            } => events::master_conflict(other_master, priority),
            Notice::Fault { reason } => events::fault(&reason),
            Notice::FaultCleared { how } => events::fault_cleared(how),
            Notice::PromoteFailedSuperseded { reason } => {
                events::promote_failed_superseded(&reason);
            }
            Notice::QuorumWaiting { heard, majority } => {
                events::quorum_waiting(&heard.join(","), majority);
            }
            Notice::QuorumLost { heard, majority } => {
                events::quorum_lost(&heard.join(","), majority);
            }
            Notice::QuorumRegained { heard, majority } => {
                events::quorum_regained(&heard.join(","), majority);
            }
            Notice::PlacementDecided {
                environment,
                claim,
                reason,
            } => events::placement_decided(&environment, claim, &reason),
            Notice::LeaseFencing { resource, left_ms } => events::lease_fencing(&resource, left_ms),
            Notice::LeaseOverrun {
                resource,
                overrun_ms,
            } => events::lease_overrun(&resource, overrun_ms),
            Notice::ReleaseStuck { failures, action } => {
                events::release_stuck(failures, action.as_str());
            }
            Notice::HandoverStarted {
                waiting_for,
                timeout_ms,
            } => events::handover_started(&waiting_for.join(","), timeout_ms),
            Notice::HandoverFinished {
                outcome,
                waited_ms,
                laggards,
            } => events::handover_finished(outcome, waited_ms, &laggards.join(",")),
            Notice::HandoverCancelled { waited_ms } => events::handover_cancelled(waited_ms),
        }
    }

    /// Pats, withholds or disarms the watchdog as the core says.
    fn tend_watchdog(&mut self) {
        if let Some(fence) = &mut self.fence {
            fence.tend(self.core.watchdog(Instant::now()));
        }
    }

    /// Drops or send errors happened since the last summary.
    fn has_unsummarized(&self) -> bool {
        self.drops.total() > self.drops_logged.total() || self.send_errors > self.send_errors_logged
    }

    fn log_summaries(&mut self) {
        let total = self.drops.total() - self.drops_logged.total();
        if total > 0 {
            let by_reason: Vec<String> = self
                .drops
                .iter()
                .zip(self.drops_logged.iter())
                .filter(|((_, now), (_, before))| now > before)
                .map(|((name, now), (_, before))| format!("{name}={}", now - before))
                .collect();
            events::packet_dropped(SUMMARY_PERIOD.as_secs(), total, &by_reason.join(","));
            self.drops_logged = self.drops.clone();
        }
        if self.send_errors > self.send_errors_logged {
            let dst = self
                .local()
                .destinations()
                .first()
                .copied()
                .unwrap_or(IpAddr::V4(crate::net::socket::VRRP_MULTICAST));
            events::send_failed(
                dst,
                "see earlier error",
                self.send_errors - self.send_errors_logged,
            );
            self.send_errors_logged = self.send_errors;
        }
    }

    fn on_request(&mut self, request: Request, reply: oneshot::Sender<Response>) -> Vec<Effect> {
        let hold = matches!(request, Request::Hold { .. });
        let (new, effects) = match request {
            Request::Status => {
                let response = Response {
                    ok: true,
                    error: None,
                    status: Some(self.status()),
                    changed: None,
                };
                send_reply(reply, response);
                return Vec::new();
            }
            Request::Move { environment, node } => {
                let response = match self.core.start_move(&environment, &node, Instant::now()) {
                    Ok(changed) => {
                        events::environment_move(&environment, &node);
                        Response {
                            ok: true,
                            error: None,
                            status: None,
                            changed: Some(changed),
                        }
                    }
                    Err(e) => Response::error(e.to_string()),
                };
                send_reply(reply, response);
                // The next evaluation gives the environment up here.
                return self.core.handle(Input::HeartbeatDue, Instant::now());
            }
            Request::Hold { environment } | Request::Release { environment } => {
                self.holds_queue.push_back(HoldChange {
                    environment,
                    hold,
                    reply,
                });
                self.next_hold_change();
                return Vec::new();
            }
            Request::Promote => (Override::Promote, Vec::new()),
            Request::Demote => (Override::Demote, Vec::new()),
            // The operator vouches for the node: out of fault, and
            // preemption as configured.
            Request::Resume => {
                // A resignation for failed repairs ends with it too.
                self.health.resume();
                let mut effects = self.health_verdict();
                effects.extend(self.core.handle(Input::Resume, Instant::now()));
                (Override::None, effects)
            }
        };
        if new == self.core.override_() {
            let mut effects = effects;
            effects.extend(self.apply_override(new, reply));
            return effects;
        }
        // Persist first, off the election loop (an fsync on a busy disk
        // must not delay an advert): the override applies when the file is
        // written, and is refused rather than half-applied if it cannot be.
        let store = self.store.clone();
        let saved = self.overrides_saved.clone();
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || store.save_override(new))
                .await
                .map_err(OverrideSaveError::Join)
                .and_then(|r| r.map_err(OverrideSaveError::from));
            let _ = saved.send(SavedOverride { new, result, reply });
        });
        effects
    }

    /// Takes the next queued hold or release, unless a write is under way:
    /// answers at once what changes nothing or is refused, else stores the
    /// new set off the election loop.
    fn next_hold_change(&mut self) {
        while !self.holds_busy {
            let Some(change) = self.holds_queue.pop_front() else {
                return;
            };
            let HoldChange {
                environment,
                hold,
                reply,
            } = change;
            let held = self.holds.held.get(&environment).copied();
            let mut holds = self.holds.clone();
            let changed = match (hold, held) {
                (true, Some(record)) => Err(Ok(format!(
                    "{environment} already held since {} (Unix time); nothing changed",
                    record.since
                ))),
                (true, None) => match self.unknown_environment(&environment) {
                    Some(why) => Err(Err(why)),
                    None => {
                        holds.held.insert(
                            environment.clone(),
                            HoldRecord {
                                since: crate::store::unix_now(),
                            },
                        );
                        Ok(())
                    }
                },
                (false, Some(_)) => {
                    holds.held.remove(&environment);
                    Ok(())
                }
                // A stale hold of a name since removed from the
                // configuration can still be released (above).
                (false, None) => match self.unknown_environment(&environment) {
                    Some(why) => Err(Err(why)),
                    None => Err(Ok(format!("{environment} is not held; nothing changed"))),
                },
            };
            match changed {
                Ok(()) => {}
                Err(Ok(unchanged)) => {
                    send_reply(
                        reply,
                        Response {
                            ok: true,
                            error: None,
                            status: None,
                            changed: Some(unchanged),
                        },
                    );
                    continue;
                }
                Err(Err(why)) => {
                    send_reply(reply, Response::error(why));
                    continue;
                }
            }
            self.holds_busy = true;
            let store = self.store.clone();
            let saved = self.holds_saved.clone();
            tokio::spawn(async move {
                let to_store = holds.clone();
                let result = tokio::task::spawn_blocking(move || store.save_holds(&to_store))
                    .await
                    .map_err(OverrideSaveError::Join)
                    .and_then(|r| r.map_err(OverrideSaveError::from));
                let _ = saved.send(SavedHolds {
                    holds,
                    environment,
                    hold,
                    result,
                    reply,
                });
            });
        }
    }

    /// Why `name` cannot be held: not an environment this node's
    /// configuration knows (`[[environment]]`, or an `[environments]`
    /// pattern that names it).
    fn unknown_environment(&self, name: &str) -> Option<String> {
        if !crate::store::valid_hold_name(name) {
            return Some(format!("{name:?} is not an environment name"));
        }
        let placed = self.config.placement.iter().any(|p| p.name == name);
        let patterned = self
            .config
            .environments
            .patterns
            .iter()
            .any(|p| p.matches(name));
        if placed || patterned {
            return None;
        }
        Some(format!(
            "unknown environment {name:?}: neither an [[environment]] nor named by an [environments] pattern of this node's configuration"
        ))
    }

    /// The holds file was written (or not): put the holds in force and
    /// answer, then take the next request.
    fn on_holds_saved(&mut self, saved: SavedHolds) {
        self.holds_busy = false;
        let SavedHolds {
            holds,
            environment,
            hold,
            result,
            reply,
        } = saved;
        let verb = if hold { "hold" } else { "release" };
        let response = match result {
            Ok(()) => {
                self.holds = holds;
                let names = held_names(&self.holds);
                self.health.set_held(names.clone());
                self.desired.send_modify(|desired| desired.held = names);
                let changed = if hold {
                    events::environment_held(&environment, false);
                    format!(
                        "{environment} held: the agent will not start or restart it (and not alert on its stop) until `rcbsd-failover env release {environment}`; stop it yourself if it runs"
                    )
                } else {
                    events::environment_released(&environment);
                    format!(
                        "{environment} released: the agent manages it again (runbooks start it, health.restart_policy applies)"
                    )
                };
                Response {
                    ok: true,
                    error: None,
                    status: Some(self.status()),
                    changed: Some(changed),
                }
            }
            Err(e) => Response::error(format!("{verb} of {environment} not done: {e}")),
        };
        send_reply(reply, response);
        self.next_hold_change();
    }

    /// The override file was written (or not): apply it and answer.
    fn on_override_saved(&mut self, saved: SavedOverride) -> Vec<Effect> {
        match saved.result {
            Ok(()) => self.apply_override(saved.new, saved.reply),
            Err(e) => {
                send_reply(
                    saved.reply,
                    Response::error(format!("override not changed: {e}")),
                );
                Vec::new()
            }
        }
    }

    /// Puts a (stored) override in force and answers with what changed.
    fn apply_override(&mut self, new: Override, reply: oneshot::Sender<Response>) -> Vec<Effect> {
        let old = self.core.override_();
        let old_priority = self.core.router().effective_priority();
        let effects = self.core.handle(Input::Override(new), Instant::now());
        let new_priority = self.core.router().effective_priority();
        let changed = if old == new {
            format!(
                "override already {} (effective priority {new_priority}); nothing changed",
                new.as_str()
            )
        } else {
            events::override_changed(old.as_str(), new.as_str(), new_priority);
            format!(
                "override {} -> {}; effective priority {old_priority} -> {new_priority}",
                old.as_str(),
                new.as_str()
            )
        };
        let response = Response {
            ok: true,
            error: None,
            status: Some(self.status()),
            changed: Some(changed),
        };
        send_reply(reply, response);
        effects
    }

    fn status(&self) -> Status {
        let interface = &self.config.vrrp.interface;
        let vips_held = if self.config.vrrp.virtual_ips6.is_empty() {
            iface::ipv4_addresses(interface).map(|addrs| {
                self.config
                    .vrrp
                    .virtual_ips
                    .iter()
                    .filter(|v| addrs.iter().any(|(a, _)| *a == v.address))
                    .map(ToString::to_string)
                    .collect()
            })
        } else {
            iface::ipv6_addresses(interface).map(|addrs| {
                self.config
                    .vrrp
                    .virtual_ips6
                    .iter()
                    .filter(|v| addrs.iter().any(|(a, _)| *a == v.address))
                    .map(ToString::to_string)
                    .collect()
            })
        }
        .unwrap_or_default();
        let mut counters = self.counters.clone();
        counters.checksum_forms = self.checksum_forms.named();
        counters.drops = self
            .drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| (name.to_owned(), n))
            .collect();
        let now = Instant::now();
        let router = self.core.router();
        Status {
            node: self.config.node.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            state: router.state(),
            interface: self.config.vrrp.interface.clone(),
            family: if self.link.primary.is_ipv6() {
                "ipv6"
            } else {
                "ipv4"
            }
            .to_owned(),
            vrid: self.config.vrrp.vrid,
            configured_priority: self.config.vrrp.priority,
            effective_priority: router.effective_priority(),
            follower_only: !self.config.may_be_master(),
            master: router.master(),
            vips_held,
            override_: self.core.override_(),
            fault: self.core.fault().map(|f| f.reason.clone()),
            runbook: self.progress.get(),
            advert_interval_ms: self.config.vrrp.advert_interval.to_duration().as_millis() as u64,
            master_advert_interval_ms: router.master_advert_interval().to_duration().as_millis()
                as u64,
            uptime_s: self.started.elapsed().as_secs(),
            counters,
            cluster: self
                .cluster
                .as_ref()
                .and_then(|link| cluster::status(link, &self.core, now)),
            watchdog: self.fence.as_ref().map(|f| f.status(&self.core, now)),
            retained: self.core.is_retained(),
            vrrp6: self.vrrp6.as_ref().map(|slaved| {
                let held = iface::ipv6_addresses(&slaved.interface).unwrap_or_default();
                let vips_held = self
                    .config
                    .vrrp6
                    .iter()
                    .flat_map(|v6| v6.virtual_ips.iter())
                    .filter(|v| held.iter().any(|(a, _)| *a == v.address))
                    .map(ToString::to_string)
                    .collect();
                crate::control::protocol::SlavedStatus {
                    interface: slaved.interface.clone(),
                    vrid: slaved.vrid,
                    state: slaved.router.state(),
                    master: slaved.router.router().master(),
                    priority: slaved.router.router().effective_priority(),
                    advert_interval_ms: slaved.advert_interval.to_duration().as_millis() as u64,
                    master_advert_interval_ms: slaved
                        .router
                        .router()
                        .master_advert_interval()
                        .to_duration()
                        .as_millis() as u64,
                    vips_held,
                    adverts_sent: slaved.adverts_sent,
                    adverts_received: slaved.adverts_received,
                    dropped: slaved.dropped,
                }
            }),
            handing_over: self.core.is_handing_over(),
            riding: self.ride.get(),
            health: self.health.status(),
            held: self
                .holds
                .held
                .iter()
                .map(|(name, record)| HeldStatus {
                    name: name.clone(),
                    since: record.since,
                })
                .collect(),
        }
    }

    /// SIGHUP: apply a valid new configuration without dropping the VIP when
    /// the role does not change; refuse an invalid one and keep the old.
    async fn reload(&mut self) -> Vec<Effect> {
        let path = self.config.path.clone();
        let shown = path.display().to_string();
        let new = match config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                events::config_rejected(&shown, &e.to_string());
                return Vec::new();
            }
        };
        if let Some(rule) = config::reload::needs_restart(&self.config, &new) {
            events::config_rejected(
                &shown,
                &format!(
                    "a reload cannot change {}: {}; restart the agent to apply it",
                    rule.setting, rule.why
                ),
            );
            return Vec::new();
        }
        let link = match resolve_link(&new) {
            Ok(l) => l,
            Err(e) => {
                events::config_rejected(&shown, &e.to_string());
                return Vec::new();
            }
        };
        let new_socket_config = socket_config(&new, &link);
        if new_socket_config != socket_config(&self.config, &self.link) {
            // Open the new socket before dropping the old one, so a failure
            // leaves everything as it was.
            match new_socket_config.open() {
                Ok(socket) => self.socket = socket,
                Err(e) => {
                    events::config_rejected(&shown, &format!("VRRP socket: {e}"));
                    return Vec::new();
                }
            }
        }
        // [auth] may change in place: that is how keys rotate.
        let keys = match &new.auth {
            Some(auth) if new.auth != self.config.auth || self.keys.is_none() => {
                match crate::auth::Keyring::load(&auth.key_file, auth.accept_key_file.as_deref()) {
                    Ok(keys) => Some(std::sync::Arc::new(keys)),
                    Err(e) => {
                        events::config_rejected(&shown, &format!("[auth]: {e}"));
                        return Vec::new();
                    }
                }
            }
            Some(_) => self.keys.clone(),
            None => None,
        };
        self.keys = keys.clone();
        if let Some(cluster) = &mut self.cluster {
            cluster.set_keys(keys);
        }
        let changes = describe_changes(&self.config, &new);
        let settings = node_settings(&new, &link, self.fence.as_ref().map(fence::Fence::rule));
        self.config = new;
        self.health.reconfigure(&self.config);
        self.vips = vip_addresses(&self.config);
        self.vips6 = vip_addresses6(&self.config);
        self.config_generation += 1;
        self.link = link;
        let effects = self.core.reconfigure(settings, Instant::now());
        // The worker takes the new configuration with its next runbook.
        self.desired.send_modify(|desired| {
            desired.config = self.config.clone();
            desired.config_generation = self.config_generation;
        });
        events::config_reloaded(&shown, &changes);
        effects
    }

    /// After the worker released (or gave up): the priority-0 advert, the
    /// control socket removed. Exit 0 only when everything was released.
    async fn shutdown(mut self, released: bool) -> ExitCode {
        // The worker's last report (everything released), then one last
        // heartbeat without the claims: the peers free their grants at once
        // instead of waiting for the lease to run out.
        while let Ok(report) = self.worker_events.try_recv() {
            let effects = self.core.handle(Input::Worker(report), Instant::now());
            self.apply(effects).await;
        }
        if released && self.cluster.is_some() {
            let effects = self.core.handle(Input::HeartbeatDue, Instant::now());
            self.apply(effects).await;
        }
        let effects = self.core.shutdown(Instant::now());
        self.apply(effects).await;
        if let Some(fence) = &mut self.fence {
            fence.stop(released);
        }
        let _ = self.control_shutdown.send(true);
        control_server::remove(&self.config.node.control_socket);
        if released {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    async fn send_advert(&mut self, priority: u8) {
        let mut buf = [0u8; RECV_BUFFER];
        let destinations = self.local().destinations();
        for dst in destinations {
            // The pseudo-header checksum covers the destination: one packet per peer.
            let encoded = self.local().encode(
                &mut buf,
                priority,
                self.config.vrrp.advert_interval,
                dst,
                self.config.vrrp.checksum,
            );
            let len = match encoded {
                Ok(len) => len,
                Err(e) => {
                    events::advert_encode_failed(&e);
                    continue;
                }
            };
            let mut packet = std::mem::take(&mut self.advert_packet);
            packet.clear();
            packet.extend_from_slice(buf.get(..len).unwrap_or(&[]));
            if let Some(keys) = &self.keys {
                // The counter grows with every advert sent: receivers refuse
                // anything not newer (replay).
                self.advert_seq += 1;
                crate::wire::advert_auth::append(
                    &mut packet,
                    keys,
                    self.link.primary,
                    dst,
                    crate::auth::Counter {
                        incarnation: self.incarnation,
                        seq: self.advert_seq,
                    },
                );
            }
            let sent = self.socket.send_to(&packet, dst).await;
            self.advert_packet = packet;
            match sent {
                Ok(()) => self.counters.adverts_sent += 1,
                Err(e) => {
                    self.send_errors += 1;
                    if self.send_errors == 1 {
                        events::send_failed(dst, &e.to_string(), 1);
                        self.send_errors_logged = 1;
                    }
                }
            }
        }
    }

    /// One `[vrrp6]` advert, as its router decided: its own priority (0 on
    /// resign) and its own Advertisement_Interval.
    async fn send_slaved_advert(&mut self, priority: u8) {
        let Some(slaved) = &mut self.vrrp6 else {
            return;
        };
        let mut buf = [0u8; RECV_BUFFER];
        let dst = IpAddr::V6(crate::wire::vrrp6::MULTICAST_GROUP);
        let encoded = slaved.local().encode(
            &mut buf,
            priority,
            slaved.advert_interval,
            dst,
            ChecksumMode::PseudoHeader,
        );
        let len = match encoded {
            Ok(len) => len,
            Err(e) => {
                events::advert_encode_failed(&e);
                return;
            }
        };
        let mut packet = buf.get(..len).unwrap_or(&[]).to_vec();
        if let Some(keys) = &self.keys {
            self.advert_seq += 1;
            crate::wire::advert_auth::append(
                &mut packet,
                keys,
                slaved.primary,
                dst,
                crate::auth::Counter {
                    incarnation: self.incarnation,
                    seq: self.advert_seq,
                },
            );
        }
        match slaved.io.send_to(&packet, dst).await {
            Ok(()) => slaved.adverts_sent += 1,
            Err(e) => {
                self.send_errors += 1;
                if self.send_errors == 1 {
                    events::send_failed(dst, &e.to_string(), 1);
                    self.send_errors_logged = 1;
                }
            }
        }
    }

    /// Writes the Prometheus textfile off the loop (a slow disk must not
    /// delay an advert).
    fn write_metrics(&self) {
        let Some(metrics) = &self.config.metrics else {
            return;
        };
        let text = metrics::render(&self.status(), &self.stats.snapshot(), self.last_transition);
        let path = metrics.textfile.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = metrics::write_atomically(&path, &text) {
                events::metrics_failed(&path.display().to_string(), &e.to_string());
            }
        });
    }

    /// A master whose link is down keeps the VIP on a dead wire and, when
    /// the link returns, is a second master; like keepalived, go to fault
    /// (resign, drop the VIP) on carrier loss and come back when it returns.
    /// `Some(up)` when the carrier changed.
    fn check_link(&mut self, link_up: &mut bool) -> Option<bool> {
        let ifname = &self.config.vrrp.interface;
        // An error reading the flags is not proof of a dead link.
        let up = self.carrier.is_up().unwrap_or(*link_up);
        if up == *link_up {
            return None;
        }
        *link_up = up;
        if up {
            events::link_up(ifname);
        } else {
            events::link_down(ifname);
        }
        Some(up)
    }
}

fn describe_changes(old: &Config, new: &Config) -> String {
    let mut changes = Vec::new();
    let (a, b) = (&old.vrrp, &new.vrrp);
    if a.priority != b.priority {
        changes.push(format!("priority {} -> {}", a.priority, b.priority));
    }
    if a.advert_interval != b.advert_interval {
        changes.push("advert_interval".to_owned());
    }
    if a.virtual_ips != b.virtual_ips {
        changes.push("virtual_ips".to_owned());
    }
    if a.preempt != b.preempt || a.preempt_delay != b.preempt_delay {
        changes.push("preempt".to_owned());
    }
    if a.unicast_peers != b.unicast_peers {
        changes.push("unicast_peers".to_owned());
    }
    if a != b && changes.is_empty() {
        changes.push("other vrrp settings".to_owned());
    }
    if old.follow != new.follow {
        changes.push(format!(
            "follow.on_master_change {} (ride_through_timeout {})",
            new.follow.on_master_change.as_str(),
            crate::config::format_duration(new.follow.ride_through_timeout)
        ));
    }
    if changes.is_empty() {
        "none".to_owned()
    } else {
        changes.join(", ")
    }
}

/// Adverts accepted per checksum form, counted by the form itself.
#[derive(Clone, Copy, Debug, Default)]
struct ChecksumForms {
    pseudo_header: u64,
    no_pseudo_header: u64,
}

impl ChecksumForms {
    /// The forms seen, by their configuration spelling, for `status`.
    fn named(self) -> std::collections::BTreeMap<String, u64> {
        [
            (ChecksumMode::PseudoHeader, self.pseudo_header),
            (ChecksumMode::NoPseudoHeader, self.no_pseudo_header),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(form, n)| (form.as_str().to_owned(), n))
        .collect()
    }
}

/// When the loop's chores are next due (see [`Agent::due_chores`]).
struct Chores {
    /// The carrier's next safety poll.
    link_poll_at: Instant,
    /// When the metrics file was last written.
    metrics_written: Option<Instant>,
    /// When the last drop summary was logged (or the loop started).
    summarized: Instant,
    /// The next heartbeat (`[cluster]` only).
    heartbeat_at: Option<Instant>,
    /// The next watchdog pat (`[fence] watchdog` only).
    watchdog_at: Option<Instant>,
}

/// The next change the kernel announces; never, without the socket.
async fn next_link_change(
    events: Option<&mut LinkEvents>,
) -> std::io::Result<crate::net::link_events::Change> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// The names of the held environments.
fn held_names(holds: &Holds) -> BTreeSet<String> {
    holds.held.keys().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interface_is_explained_once() {
        let error = StartError::Interface {
            interface: "em9".to_owned(),
            source: crate::net::error::NetError::NoSuchInterface {
                interface: "em9".to_owned(),
                errno: nix::Error::ENODEV,
            },
        };
        let text = error.to_string();
        assert_eq!(text.matches("check the name").count(), 1, "{text}");
        assert!(
            text.starts_with("vrrp.interface \"em9\": interface \"em9\" not found"),
            "{text}"
        );
    }
}
