//! The daemon: a single-threaded tokio loop that feeds the election core with
//! packets, timeouts, control requests and signals, and turns its actions
//! into effects.
//!
//! ```text
//!   raw socket ──datagrams──► admit (pure) ──advert──┐
//!   sleep_until(poll_timeout) ──Timeout────────────────┤
//!   control socket ──Request──► override / status ────┼──► Router::handle ──► actions
//!   signals ──SIGHUP reload / SIGTERM shutdown─────────┘          │
//!                                                                 ├─ SendAdvert  → socket (here, at once)
//!                                                                 ├─ StateChange → log + transition worker
//!                                                                 └─ ResendGarp  → transition worker
//! ```
//!
//! The loop never waits on a command: VIP changes and ARP bursts run in the
//! [`transition`] worker task, which converges on the latest desired role.
//! Adverts keep flowing while it works.
//!
//! With `[cluster]`, heartbeats come and go on a UDP socket beside the raw
//! one ([`cluster`]), and [`gate`] joins the two: no quorum, priority 0;
//! no lease, no master resources and no environments.

mod cluster;
mod gate;
mod metrics;
mod notify;
mod transition;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{self, Config};
use crate::control::protocol::{Counters, Request, Response, Status};
use crate::control::server as control_server;
use crate::election::priority::{self, Override};
use crate::election::{Action, Input, Params, Router, State};
use crate::events::{self, LogFormat, LogTarget};
use crate::net::admit::{self, DropCounters, RecvMeta};
use crate::net::iface;
use crate::net::socket::{SocketConfig, VrrpSocket};
use crate::state::StateStore;
use crate::wire::vrrp::Advertisement;

use transition::{Desired, Role, WorkerEvent};

/// sysexits(3): the configuration is wrong.
pub const EX_CONFIG: u8 = 78;
/// sysexits(3): something the agent needs is missing or unusable.
pub const EX_UNAVAILABLE: u8 = 69;
/// sysexits(3): a system error (socket, permission).
pub const EX_OSERR: u8 = 71;

/// How often drop and send-error summaries are logged, at most.
const SUMMARY_PERIOD: Duration = Duration::from_secs(10);
/// How long shutdown waits for the VIPs to be removed (without runbooks).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the interface's carrier is checked.
const LINK_CHECK_PERIOD: Duration = Duration::from_millis(100);

/// How long SIGTERM waits for the demote runbook: stopping environments,
/// the NFS services and releasing the storage. rc.d's `rcshutdown_timeout`
/// must cover it (docs/operations.md).
fn shutdown_grace(config: &Config) -> Duration {
    if config.cbsd.is_none() {
        return SHUTDOWN_GRACE;
    }
    let r = &config.runbook;
    SHUTDOWN_GRACE
        + config.environments.stop_timeout
        + r.command_timeout * 6
        + r.umount_timeout
        + r.storage_timeout
}
/// Largest datagram we read: an IPv4 header with options plus 255 addresses.
const RECV_BUFFER: usize = 2048;

/// Options of `rcbsd-failover run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config_path: PathBuf,
    pub log_format: LogFormat,
    pub log_target: LogTarget,
}

/// Runs the daemon in the foreground until SIGTERM/SIGINT.
pub fn run(opts: RunOptions) -> ExitCode {
    events::init(opts.log_format, opts.log_target);
    let config = match config::load(&opts.config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rcbsd-failover: cannot start the async runtime: {e}");
            return ExitCode::from(EX_OSERR);
        }
    };
    let code = runtime.block_on(async move {
        match Agent::start(config).await {
            Ok(agent) => agent.run().await,
            Err(e) => {
                events::agent_failed(&e.message);
                eprintln!("rcbsd-failover: {}", e.message);
                ExitCode::from(e.exit_code)
            }
        }
    });
    // A blocking task may be stuck in the kernel (a directory listing on a
    // dead hard NFS mount): dropping the runtime would wait for it forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// A start-up failure with the exit status it maps to.
#[derive(Debug)]
pub struct StartError {
    pub message: String,
    pub exit_code: u8,
}

impl StartError {
    fn new(exit_code: u8, message: impl Into<String>) -> Self {
        StartError {
            message: message.into(),
            exit_code,
        }
    }
}

/// Facts about the interface, resolved once per (re)configuration.
#[derive(Clone, Debug, PartialEq)]
struct Link {
    ifindex: u32,
    primary: Ipv4Addr,
}

fn resolve_link(config: &Config) -> Result<Link, StartError> {
    let ifname = &config.vrrp.interface;
    let ifindex = iface::interface_index(ifname).map_err(|e| {
        StartError::new(
            EX_UNAVAILABLE,
            format!("vrrp.interface {ifname:?}: {e} (check the name with ifconfig)"),
        )
    })?;
    let vips = vip_addresses(config);
    let primary = match config.vrrp.source_address {
        Some(a) => a,
        None => iface::primary_address(ifname, &vips).map_err(|e| {
            StartError::new(
                EX_UNAVAILABLE,
                format!("vrrp.interface {ifname:?}: {e} (give it an address or set vrrp.source_address)"),
            )
        })?,
    };
    Ok(Link { ifindex, primary })
}

fn vip_addresses(config: &Config) -> Vec<Ipv4Addr> {
    config.vrrp.virtual_ips.iter().map(|v| v.address).collect()
}

fn socket_config(config: &Config, link: &Link) -> SocketConfig {
    SocketConfig {
        interface: config.vrrp.interface.clone(),
        ifindex: link.ifindex,
        source: link.primary,
        unicast_peers: config.vrrp.unicast_peers.clone(),
    }
}

/// The election parameters for a config, an override and a link.
/// `after_failed_promote`: the node's last promote failed and it has not
/// been master since; it then takes over only from nobody (no preemption),
/// so a node whose promote keeps failing does not pull a healthy master
/// down every hold-off period. An operator's `promote` still preempts.
fn params(config: &Config, override_: Override, link: &Link, after_failed_promote: bool) -> Params {
    Params {
        vrid: config.vrrp.vrid,
        priority: config.vrrp.priority,
        advert_interval: config.vrrp.advert_interval,
        preempt: priority::preempt(config.vrrp.preempt && !after_failed_promote, override_),
        preempt_delay: config.vrrp.preempt_delay,
        primary_address: link.primary,
    }
}

type ControlRequest = (Request, oneshot::Sender<Response>);

/// An operator override after the attempt to store it.
struct SavedOverride {
    new: Override,
    result: Result<(), String>,
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
    router: Router,
    socket: VrrpSocket,
    store: StateStore,
    override_: Override,
    fault: Option<Fault>,
    desired: watch::Sender<Desired>,
    /// Bumped on every new role: a running runbook stops at its next step.
    cancel: watch::Sender<u64>,
    progress: crate::runbook::ProgressHandle,
    stats: metrics::RunbookStats,
    /// Bumped by every applied reload, so the worker gets the new config
    /// without a deep comparison on every advert.
    config_generation: u64,
    /// When the state last changed (wall clock, for the metrics).
    last_transition: Option<std::time::SystemTime>,
    /// Set by SIGTERM/SIGINT: the worker releases master resources.
    stopping: bool,
    /// The last promote failed and the node has not been master since: no
    /// preemption (see [`params`]).
    after_failed_promote: bool,
    garp_now: mpsc::UnboundedSender<Ipv4Addr>,
    worker_events: mpsc::UnboundedReceiver<WorkerEvent>,
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
    /// `[cluster]`: heartbeats, quorum and leases; `None`: plain VRRP.
    cluster: Option<cluster::ClusterLink>,
    /// `[auth]`: signs and checks adverts and heartbeats.
    keys: Option<std::sync::Arc<crate::auth::Keyring>>,
    /// This run's incarnation (also the advert auth counter's high part).
    incarnation: u64,
    /// The advert auth counter's low part.
    advert_seq: u64,
    /// Replay protection for authenticated adverts, per source.
    advert_replay: crate::auth::ReplayGuard<Ipv4Addr>,
    advert_auth_alerts: crate::auth::AuthFailureLimiter<Ipv4Addr>,
    /// Numbers the decisions published to the worker.
    sequence: u64,
}

#[derive(Clone, Debug)]
struct Fault {
    reason: String,
    cause: FaultCause,
    since: Instant,
}

/// What put the node in fault, which decides what clears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultCause {
    /// A promote failed: cleared by `resume` or after `runbook.fault_hold_off`.
    Runbook,
    /// The interface lost its carrier: cleared when it comes back (or `resume`).
    LinkDown,
}

impl Agent {
    async fn start(config: Config) -> Result<Agent, StartError> {
        crate::net::preflight::check()
            .map_err(|e| StartError::new(EX_UNAVAILABLE, e.to_string()))?;
        let link = resolve_link(&config)?;
        let store = StateStore::open(&config.node.state_dir)
            .map_err(|e| StartError::new(EX_OSERR, format!("node.state_dir: {e}")))?;
        let override_ = store
            .load_override()
            .map_err(|e| StartError::new(EX_CONFIG, e.to_string()))?;

        // A VIP left by a crashed earlier run must go before we may become
        // master: otherwise two nodes could answer ARP for it.
        for vip in &config.vrrp.virtual_ips {
            match crate::net::vip::ensure_absent(
                &*crate::net::vip::platform_backend(&config.tools.ifconfig),
                &config.vrrp.interface,
                vip,
            )
            .await
            {
                Ok(true) => events::stale_vip_removed(&config.vrrp.interface, &vip.to_string()),
                Ok(false) => {}
                Err(e) => {
                    return Err(StartError::new(
                        EX_OSERR,
                        format!("cannot remove the leftover virtual IP {vip}: {e}"),
                    ))
                }
            }
        }

        let keys = match &config.auth {
            Some(auth) => Some(std::sync::Arc::new(
                crate::auth::Keyring::load(&auth.key_file, auth.accept_key_file.as_deref())
                    .map_err(|e| StartError::new(EX_CONFIG, format!("[auth]: {e}")))?,
            )),
            None => None,
        };
        let incarnation = crate::auth::next_incarnation(&config.node.state_dir).map_err(|e| {
            StartError::new(
                EX_OSERR,
                format!("node.state_dir: cannot store the incarnation: {e}"),
            )
        })?;
        let cluster = match &config.cluster {
            Some(c) => Some(
                cluster::ClusterLink::open(&config, c, keys.clone(), incarnation)
                    .await
                    .map_err(|e| StartError::new(EX_UNAVAILABLE, e))?,
            ),
            None => None,
        };

        let listener = control_server::bind_with_access(
            &config.node.control_socket,
            config.node.status_group.as_deref(),
        )
        .map_err(|e| StartError::new(EX_UNAVAILABLE, e.to_string()))?;
        let socket = VrrpSocket::open(&socket_config(&config, &link)).map_err(|e| {
            StartError::new(
                EX_OSERR,
                format!("VRRP socket on {}: {e}", config.vrrp.interface),
            )
        })?;

        let transition::Handles {
            task: worker,
            desired,
            cancel,
            garp_now,
            events: worker_events,
            progress,
            stats,
        } = transition::spawn(&config).map_err(|e| StartError::new(EX_OSERR, e))?;

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
        let signals = Signals::new([SIGHUP, SIGINT, SIGTERM]).map_err(|e| {
            StartError::new(EX_OSERR, format!("cannot install signal handlers: {e}"))
        })?;
        let router = Router::new(params(&config, override_, &link, false));
        let mut agent = Agent {
            config,
            link,
            router,
            socket,
            store,
            override_,
            fault: None,
            desired,
            cancel,
            progress,
            stats,
            config_generation: 0,
            last_transition: None,
            stopping: false,
            after_failed_promote: false,
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
            started: Instant::now(),
            cluster,
            keys,
            incarnation,
            advert_seq: 0,
            advert_replay: crate::auth::ReplayGuard::new(256),
            advert_auth_alerts: crate::auth::AuthFailureLimiter::new(
                crate::auth::AuthFailureLimiter::<Ipv4Addr>::PERIOD,
                crate::auth::AuthFailureLimiter::<Ipv4Addr>::CAPACITY,
            ),
            sequence: 0,
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
        // The worker's first report (a master marker, environments that may
        // still run after a crash) must be claimed before the first
        // heartbeat goes out: a heartbeat without those claims would
        // release them to the other nodes.
        while let Ok(event) = agent.worker_events.try_recv() {
            let _ = agent.on_worker_event(event);
        }
        agent.publish_desired();
        let now = Instant::now();
        let p = agent.effective_priority();
        let mut actions = agent.router.handle(Input::SetPriority(p), now);
        actions.extend(agent.router.handle(Input::Startup, now));
        agent.execute(actions).await;
        Ok(agent)
    }

    /// Hands the election core the parameters and the effective priority
    /// that follow from the config, the override and the link.
    fn apply_params(&mut self) -> Vec<Action> {
        let now = Instant::now();
        let mut actions = self.router.set_params(
            params(
                &self.config,
                self.override_,
                &self.link,
                self.after_failed_promote,
            ),
            now,
        );
        actions.extend(
            self.router
                .handle(Input::SetPriority(self.effective_priority()), now),
        );
        actions
    }

    fn effective_priority(&self) -> u8 {
        priority::effective(priority::Inputs {
            configured: self.config.vrrp.priority,
            override_: self.override_,
            may_be_master: self.config.may_be_master(),
            quorum: self
                .cluster
                .as_ref()
                .is_none_or(|c| c.state.has_quorum(Instant::now())),
        })
    }

    async fn run(mut self) -> ExitCode {
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut link_check = tokio::time::interval(LINK_CHECK_PERIOD);
        link_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut link_up = true;
        // Checked every second so a reload that adds [metrics] or changes
        // its interval applies at once.
        let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
        metrics_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut metrics_written: Option<Instant> = None;
        let mut summary = tokio::time::interval(SUMMARY_PERIOD);
        summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat_tick = tokio::time::interval(
            self.cluster
                .as_ref()
                .map_or(SUMMARY_PERIOD, cluster::ClusterLink::heartbeat_interval),
        );
        heartbeat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat_buf = vec![0u8; gate::HEARTBEAT_BUFFER];
        // SIGTERM/SIGINT: the worker releases everything (demote) while the
        // election keeps running and this node keeps advertising, so no
        // other node promotes onto storage we still hold; only then the
        // priority-0 advert hands over (RFC 5798 §6.4.3 Shutdown).
        let mut shutdown_deadline: Option<tokio::time::Instant> = None;
        let released = loop {
            let deadline = self
                .router
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let fence_point = self
                .cluster
                .as_ref()
                .and_then(|c| c.state.next_fence_point(Instant::now()))
                .map(tokio::time::Instant::from_std);
            let actions = tokio::select! {
                received = gate::recv_heartbeat(self.cluster.as_ref(), &mut heartbeat_buf) => match received {
                    Ok((len, from)) => match self.on_heartbeat(heartbeat_buf.get(..len).unwrap_or(&[]), from) {
                        Some(actions) => actions,
                        None => continue,
                    },
                    Err(e) => {
                        events::receive_failed(&format!("heartbeat socket: {e}"));
                        Vec::new()
                    }
                },
                _ = heartbeat_tick.tick(), if self.cluster.is_some() => self.on_heartbeat_tick().await,
                () = sleep_until_opt(fence_point) => self.refresh_quorum(),
                received = self.socket.recv(&mut buf) => match received {
                    // A dropped packet changes nothing: back to waiting at
                    // once, so a flood costs a parse per packet, no more.
                    Ok((len, meta)) => match self.on_datagram(buf.get(..len).unwrap_or(&[]), &meta) {
                        Some(actions) => actions,
                        None => continue,
                    },
                    Err(e) => {
                        events::receive_failed(&e.to_string());
                        Vec::new()
                    }
                },
                () = sleep_until_opt(deadline) => self.router.handle(Input::Timeout, Instant::now()),
                Some((request, reply)) = self.control_rx.recv() => self.on_request(request, reply),
                Some(saved) = self.overrides_saved_rx.recv() => self.on_override_saved(saved),
                Some(signal) = self.signals.next() => match signal {
                    SIGHUP if !self.stopping => self.reload().await,
                    SIGHUP => Vec::new(),
                    other if !self.stopping => {
                        let name = if other == SIGINT { "SIGINT" } else { "SIGTERM" };
                        events::agent_stopping(name, self.router.state());
                        self.stopping = true;
                        let grace = shutdown_grace(&self.config);
                        shutdown_deadline = Some(tokio::time::Instant::now() + grace);
                        // publish_desired (in execute) hands the worker Stopped.
                        Vec::new()
                    }
                    // A second signal: stop waiting for the release.
                    _ => break false,
                },
                _ = &mut self.worker => {
                    if self.stopping {
                        break true;
                    }
                    // Only a panic ends the worker early: nothing would
                    // converge any more. Exit; daemon(8) restarts us.
                    events::agent_failed("the transition worker ended unexpectedly");
                    break false;
                }
                () = sleep_until_opt(shutdown_deadline) => {
                    events::shutdown_timeout(shutdown_grace(&self.config).as_secs());
                    break false;
                }
                Some(event) = self.worker_events.recv() => self.on_worker_event(event),
                _ = link_check.tick() => self.check_link(&mut link_up),
                _ = metrics_tick.tick() => {
                    let due = self.config.metrics.as_ref().is_some_and(|m| {
                        metrics_written.is_none_or(|at| at.elapsed() >= m.interval)
                    });
                    if due {
                        metrics_written = Some(Instant::now());
                        self.write_metrics();
                    }
                    Vec::new()
                }
                _ = summary.tick() => {
                    self.log_summaries();
                    self.check_fault_hold_off()
                }
            };
            self.execute(actions).await;
        };
        self.shutdown(released).await
    }

    /// One packet from the raw socket; `None` when it was dropped.
    fn on_datagram(&mut self, datagram: &[u8], meta: &RecvMeta) -> Option<Vec<Action>> {
        let vips = vip_addresses(&self.config);
        let own = [self.link.primary];
        let policy = admit::Policy {
            vrid: self.config.vrrp.vrid,
            ifindex: self.link.ifindex,
            own_addresses: &own,
            unicast_peers: &self.config.vrrp.unicast_peers,
            virtual_ips: &vips,
            we_are_owner: self.config.vrrp.priority == 255,
        };
        let mut auth = self.keys.as_deref().map(|keys| admit::AdvertAuth {
            keys,
            replay: &mut self.advert_replay,
        });
        let admitted = admit::admit_with_auth(datagram, meta, &policy, auth.as_mut());
        match admitted {
            Ok(admitted) => {
                self.counters.adverts_received += 1;
                *self
                    .counters
                    .checksum_forms
                    .entry(admitted.checksum.as_str().to_owned())
                    .or_default() += 1;
                Some(
                    self.router
                        .handle(Input::Advert(admitted.advert), Instant::now()),
                )
            }
            Err(reason) => {
                self.drops.record(reason);
                if reason.is_auth_failure() {
                    let source = crate::wire::ipv4::Header::parse(datagram)
                        .map(|ip| ip.src)
                        .unwrap_or(Ipv4Addr::UNSPECIFIED);
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

    async fn execute(&mut self, actions: Vec<Action>) {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::SendAdvert { priority } => self.send_advert(priority).await,
                Action::StateChange { from, to, reason } => {
                    self.counters.transitions += 1;
                    if to == State::Master && self.after_failed_promote {
                        // Elected without preempting anyone: preemption as
                        // configured from now on.
                        self.after_failed_promote = false;
                        queue.extend(self.apply_params());
                    }
                    self.last_transition = Some(std::time::SystemTime::now());
                    let (priority, master) =
                        (self.router.effective_priority(), self.router.master());
                    events::state_change(from, to, reason, priority, master);
                    if let Some(notify) = &self.config.notify {
                        notify::spawn(
                            notify,
                            notify::Notification {
                                event: "state_change",
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
                                    .collect::<Vec<_>>()
                                    .join(","),
                            },
                        );
                    }
                }
                Action::ResendGarp { other_master } => {
                    events::master_conflict(other_master, self.router.effective_priority());
                    let _ = self.garp_now.send(other_master);
                }
            }
        }
        // The master may change without a state change (a backup learns
        // a new master): the worker then follows it.
        self.publish_desired();
    }

    /// Tells the transition worker the role the election wants now; a new
    /// role also stops a runbook in progress at its next safe point.
    fn publish_desired(&mut self) {
        let election_role = if self.stopping {
            Role::Stopped
        } else {
            match self.router.state() {
                State::Initialize => Role::Undecided,
                State::Master => Role::Master,
                State::Backup | State::Fault => Role::Follower {
                    master: self.router.master(),
                },
            }
        };
        // With [cluster], the leases have the last word (see `gate`).
        let (role, placement, allowed) = match self.gate(election_role.clone()) {
            Some(gated) => (gated.role, gated.placement, Some(gated.allowed)),
            None => (election_role, None, None),
        };
        let mut role_changed = false;
        let mut lost_environment = false;
        let next_sequence = self.sequence + 1;
        let modified = self.desired.send_if_modified(|current| {
            role_changed = current.role != role;
            lost_environment = match (&current.placement, &placement) {
                (Some(old), Some(new)) => old
                    .environments
                    .iter()
                    .any(|e| !new.environments.contains(e)),
                _ => false,
            };
            if role_changed
                || current.config_generation != self.config_generation
                || current.placement != placement
            {
                current.role = role;
                current.config = self.config.clone();
                current.config_generation = self.config_generation;
                current.placement = placement;
                current.sequence = next_sequence;
                true
            } else {
                false
            }
        });
        if modified {
            self.sequence = next_sequence;
        }
        if let (Some(allowed), Some(cluster)) = (allowed, &mut self.cluster) {
            cluster.state.note_published(self.sequence, &allowed);
        }
        // A lost lease stops a runbook in progress too: it must not go on
        // to start an environment it may no longer run.
        if role_changed || lost_environment {
            self.cancel
                .send_modify(|generation| *generation = generation.wrapping_add(1));
        }
    }

    async fn send_advert(&mut self, priority: u8) {
        let vips = vip_addresses(&self.config);
        let advert = Advertisement {
            vrid: self.config.vrrp.vrid,
            priority,
            max_advert_interval: self.config.vrrp.advert_interval,
            addresses: &vips,
        };
        let multicast = [crate::net::socket::VRRP_MULTICAST];
        let destinations: &[Ipv4Addr] = if self.config.vrrp.unicast_peers.is_empty() {
            &multicast
        } else {
            &self.config.vrrp.unicast_peers
        };
        let mut buf = [0u8; RECV_BUFFER];
        for &dst in destinations {
            // The pseudo-header checksum covers the destination: one packet per peer.
            let len = match advert.emit(&mut buf, self.link.primary, dst, self.config.vrrp.checksum)
            {
                Ok(len) => len,
                Err(e) => {
                    events::advert_encode_failed(&e.to_string());
                    continue;
                }
            };
            let mut packet = buf.get(..len).unwrap_or(&[]).to_vec();
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
            match self.socket.send_to(&packet, dst).await {
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

    fn on_worker_event(&mut self, event: WorkerEvent) -> Vec<Action> {
        match event {
            WorkerEvent::Holding(holding) => {
                if let Some(cluster) = &mut self.cluster {
                    cluster.state.set_holding(holding);
                }
                // execute() publishes again: claims may be released now.
                Vec::new()
            }
            WorkerEvent::PromoteFailed { reason, generation } => {
                if generation != *self.cancel.borrow() || self.stopping {
                    // The promote served a decision already superseded (the
                    // node is no longer meant to be master): no fault.
                    events::promote_failed_superseded(&reason);
                    return Vec::new();
                }
                self.after_failed_promote = true;
                let mut actions = self.apply_params();
                actions.extend(
                    self.enter_fault(FaultCause::Runbook, format!("promote failed at {reason}")),
                );
                actions
            }
        }
    }

    fn enter_fault(&mut self, cause: FaultCause, reason: String) -> Vec<Action> {
        if self.fault.is_some() {
            // Already resigned; the first cause decides how it clears.
            return Vec::new();
        }
        events::fault(&reason);
        self.fault = Some(Fault {
            reason,
            cause,
            since: Instant::now(),
        });
        self.router.handle(Input::SetFault(true), Instant::now())
    }

    fn clear_fault(&mut self, how: &str) -> Vec<Action> {
        if self.fault.take().is_none() {
            return Vec::new();
        }
        events::fault_cleared(how);
        self.router.handle(Input::SetFault(false), Instant::now())
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
    fn check_link(&mut self, link_up: &mut bool) -> Vec<Action> {
        let ifname = &self.config.vrrp.interface;
        // An error reading the flags is not proof of a dead link.
        let up = iface::is_up(ifname).unwrap_or(*link_up);
        if up == *link_up {
            return Vec::new();
        }
        *link_up = up;
        if up {
            events::link_up(ifname);
            match &self.fault {
                Some(f) if f.cause == FaultCause::LinkDown => self.clear_fault("link_up"),
                _ => Vec::new(),
            }
        } else {
            events::link_down(ifname);
            let reason = format!("{ifname} has no carrier");
            self.enter_fault(FaultCause::LinkDown, reason)
        }
    }

    fn check_fault_hold_off(&mut self) -> Vec<Action> {
        match &self.fault {
            Some(f)
                if f.cause == FaultCause::Runbook
                    && f.since.elapsed() >= self.config.runbook.fault_hold_off =>
            {
                self.clear_fault("hold_off_expired")
            }
            _ => Vec::new(),
        }
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
                .config
                .vrrp
                .unicast_peers
                .first()
                .copied()
                .unwrap_or(crate::net::socket::VRRP_MULTICAST);
            events::send_failed(
                dst,
                "see earlier error",
                self.send_errors - self.send_errors_logged,
            );
            self.send_errors_logged = self.send_errors;
        }
    }

    fn on_request(&mut self, request: Request, reply: oneshot::Sender<Response>) -> Vec<Action> {
        let (new, mut actions) = match request {
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
                let response = match &mut self.cluster {
                    None => Response::error(
                        "move needs [cluster] and [[environment]] placement; this node runs plain VRRP",
                    ),
                    Some(cluster) => {
                        match cluster.state.start_move(&environment, &node, Instant::now()) {
                            Ok(changed) => {
                                events::environment_move(&environment, &node);
                                Response {
                                    ok: true,
                                    error: None,
                                    status: None,
                                    changed: Some(changed),
                                }
                            }
                            Err(e) => Response::error(e),
                        }
                    }
                };
                send_reply(reply, response);
                // execute() publishes: the environment is given up here.
                return Vec::new();
            }
            Request::Promote => (Override::Promote, Vec::new()),
            Request::Demote => (Override::Demote, Vec::new()),
            Request::Resume => {
                // The operator vouches for the node: out of fault, and
                // preemption as configured.
                self.after_failed_promote = false;
                (Override::None, self.clear_fault("resume"))
            }
        };
        if new == self.override_ {
            actions.extend(self.apply_override(new, reply));
            return actions;
        }
        // Persist first, off the election loop (an fsync on a busy disk
        // must not delay an advert): the override applies when the file is
        // written, and is refused rather than half-applied if it cannot be.
        let store = self.store.clone();
        let saved = self.overrides_saved.clone();
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || store.save_override(new))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            let _ = saved.send(SavedOverride { new, result, reply });
        });
        actions
    }

    /// The override file was written (or not): apply it and answer.
    fn on_override_saved(&mut self, saved: SavedOverride) -> Vec<Action> {
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
    fn apply_override(&mut self, new: Override, reply: oneshot::Sender<Response>) -> Vec<Action> {
        let old = std::mem::replace(&mut self.override_, new);
        let old_priority = self.router.effective_priority();
        let actions = self.apply_params();
        let new_priority = self.router.effective_priority();
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
        actions
    }

    fn status(&self) -> Status {
        let vips_held = iface::ipv4_addresses(&self.config.vrrp.interface)
            .map(|addrs| {
                self.config
                    .vrrp
                    .virtual_ips
                    .iter()
                    .filter(|v| addrs.iter().any(|(a, _)| *a == v.address))
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut counters = self.counters.clone();
        counters.drops = self
            .drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| (name.to_owned(), n))
            .collect();
        Status {
            node: self.config.node.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            state: self.router.state(),
            interface: self.config.vrrp.interface.clone(),
            vrid: self.config.vrrp.vrid,
            configured_priority: self.config.vrrp.priority,
            effective_priority: self.router.effective_priority(),
            follower_only: !self.config.may_be_master(),
            master: self.router.master(),
            vips_held,
            override_: self.override_,
            fault: self.fault.as_ref().map(|f| f.reason.clone()),
            runbook: self.progress.get(),
            advert_interval_ms: self.config.vrrp.advert_interval.to_duration().as_millis() as u64,
            master_advert_interval_ms: self
                .router
                .master_advert_interval()
                .to_duration()
                .as_millis() as u64,
            uptime_s: self.started.elapsed().as_secs(),
            counters,
            cluster: self.cluster_status(),
        }
    }

    /// SIGHUP: apply a valid new configuration without dropping the VIP when
    /// the role does not change; refuse an invalid one and keep the old.
    async fn reload(&mut self) -> Vec<Action> {
        let path = self.config.path.clone();
        let shown = path.display().to_string();
        let new = match config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                events::config_rejected(&shown, &e.to_string());
                return Vec::new();
            }
        };
        if let Some(why) = needs_restart(&self.config, &new) {
            events::config_rejected(&shown, &format!("{why}: restart the agent to apply it"));
            return Vec::new();
        }
        let link = match resolve_link(&new) {
            Ok(l) => l,
            Err(e) => {
                events::config_rejected(&shown, &e.message);
                return Vec::new();
            }
        };
        let new_socket_config = socket_config(&new, &link);
        if new_socket_config != socket_config(&self.config, &self.link) {
            // Open the new socket before dropping the old one, so a failure
            // leaves everything as it was.
            match VrrpSocket::open(&new_socket_config) {
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
        self.config = new;
        self.config_generation += 1;
        self.link = link;
        let actions = self.apply_params();
        self.publish_desired();
        events::config_reloaded(&shown, &changes);
        actions
    }

    /// After the worker released (or gave up): the priority-0 advert, the
    /// control socket removed. Exit 0 only when everything was released.
    async fn shutdown(mut self, released: bool) -> ExitCode {
        // The worker's last report (everything released), then one last
        // heartbeat without the claims: the peers free their grants at once
        // instead of waiting for the lease to run out.
        while let Ok(event) = self.worker_events.try_recv() {
            let _ = self.on_worker_event(event);
        }
        if released && self.cluster.is_some() {
            self.publish_desired();
            let _ = self.on_heartbeat_tick().await;
        }
        let actions = self.router.handle(Input::Shutdown, Instant::now());
        self.execute(actions).await;
        let _ = self.control_shutdown.send(true);
        control_server::remove(&self.config.node.control_socket);
        if released {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Settings that a reload cannot change in place.
fn needs_restart(old: &Config, new: &Config) -> Option<&'static str> {
    if old.vrrp.interface != new.vrrp.interface {
        return Some("vrrp.interface changed");
    }
    if old.vrrp.vrid != new.vrrp.vrid {
        return Some("vrrp.vrid changed");
    }
    if old.node.control_socket != new.node.control_socket {
        return Some("node.control_socket changed");
    }
    // Resolved once, when the socket is made.
    if old.node.status_group != new.node.status_group {
        return Some("node.status_group changed");
    }
    if old.node.state_dir != new.node.state_dir {
        return Some("node.state_dir changed");
    }
    if old.vrrp.virtual_ips != new.vrrp.virtual_ips {
        // The runbooks add and remove the VIPs they were started with; a
        // master must not lose track of one it holds.
        return Some("vrrp.virtual_ips changed");
    }
    // What demote releases comes from the config promote used: a master
    // must never lose track of storage, binds or an NFS server it holds. A
    // restart demotes with the old settings first, then starts afresh.
    if old.cbsd != new.cbsd {
        return Some("[cbsd] changed");
    }
    if old.storage != new.storage {
        return Some("[storage] changed");
    }
    if old.nfs != new.nfs {
        return Some("[nfs] changed");
    }
    if old.tools != new.tools {
        return Some("[tools] changed");
    }
    // Membership and placement are what the leases are about: changing them
    // under a running agent could make two nodes disagree on a majority.
    if old.cluster != new.cluster {
        return Some("[cluster] changed");
    }
    if old.placement != new.placement {
        return Some("[[environment]] changed");
    }
    if old.auth.is_some() != new.auth.is_some() {
        return Some("[auth] added or removed");
    }
    None
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
    if changes.is_empty() {
        "none".to_owned()
    } else {
        changes.join(", ")
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
