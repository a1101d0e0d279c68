//! Launching a cluster of VRRP agents in the topology's node namespaces:
//! our own binary or keepalived, with the same priorities, interval and
//! VIP, so the two can be measured side by side.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use super::cancel::Cancel;
use super::cbsd::{self, CbsdSpec};
use super::netns::{self, netns_exec_argv, Topology};
use super::procstat::{self, Usage};
use super::watch;
use super::LabError;
use crate::agent_command::AgentCommand;
use rcbsd_failover::control::client;
use rcbsd_failover::control::protocol::{Request, Response, Status};

/// Priorities given to nodes 0, 1, 2...: distinct, highest first, so the
/// expected master is always node 0 (n1). 150/100 are the figures the issue
/// measured keepalived with.
pub const DEFAULT_PRIORITIES: [u8; netns::MAX_NODES] = [150, 100, 50, 40, 30, 20, 10];

/// The VRID every lab cluster uses.
pub const LAB_VRID: u8 = 51;

/// Which VRRP implementation runs on the nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// Our agent: `AGENT run -c CFG --log-format json`.
    Rcbsd { agent: AgentCommand },
    /// keepalived (VRRP only), from `$PATH`.
    Keepalived,
}

impl Implementation {
    pub fn label(&self) -> &'static str {
        match self {
            Implementation::Rcbsd { .. } => "rcbsd-failover",
            Implementation::Keepalived => "keepalived",
        }
    }
}

/// What one node runs with; rendered to our TOML or to keepalived.conf.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub address: Ipv4Addr,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub advert_interval: Duration,
    /// `"198.18.0.100/24"` form.
    pub virtual_ips: Vec<String>,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// Empty: multicast.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// `"pseudo-header"` / `"no-pseudo-header"`; `None` leaves the default.
    pub checksum: Option<String>,
    /// The CBSD scenario: this node runs the runbooks against stand-ins
    /// (our agent only; see [`super::cbsd`]).
    pub cbsd: Option<CbsdSpec>,
    /// `[cluster]` (quorum, leases), `[[environment]]` and `[auth]`; our
    /// agent only.
    pub quorum: Option<QuorumSpec>,
    /// `[fence] watchdog` (a FIFO read by the lab's fake watchdog) and
    /// `watchdog_timeout`; our agent only.
    pub watchdog: Option<(PathBuf, Duration)>,
    /// `[health]` keys set and `[[track]]`s; `None` leaves the agent's
    /// defaults. Our agent only.
    pub health: Option<HealthSpec>,
    /// A dual-stack node's `[vrrp6]` VIPs (link-local first), same VRID;
    /// empty: no `[vrrp6]`. Our agent only.
    pub vrrp6_virtual_ips: Vec<String>,
    /// `[vrrp6].advert_interval`; `None`: `[vrrp]`'s. Our agent only.
    pub vrrp6_advert_interval: Option<Duration>,
}

/// `[health]` settings a scenario changes (unset ones keep the agent's
/// defaults) and the node's `[[track]]`s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthSpec {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub max_repairs: Option<u32>,
    pub repair_window: Option<Duration>,
    pub mount_hang_limit: Option<Duration>,
    pub tracks: Vec<TrackSpec>,
}

/// One `[[track]]`: `command` an argv (absolute program), `weight` a
/// priority delta while it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackSpec {
    pub name: String,
    pub command: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub weight: i16,
}

impl HealthSpec {
    /// The checks every second, failed after two failures in a row: a
    /// fault's failure is seen within seconds instead of the default 15.
    pub fn quick() -> HealthSpec {
        HealthSpec {
            interval: Some(Duration::from_secs(1)),
            timeout: Some(Duration::from_secs(2)),
            rise: Some(2),
            fall: Some(2),
            ..HealthSpec::default()
        }
    }

    /// `[health]` and `[[track]]` as TOML.
    fn sections(&self) -> toml::Table {
        let mut health = toml::Table::new();
        for (key, value) in [
            ("rise", self.rise),
            ("fall", self.fall),
            ("max_repairs", self.max_repairs),
        ] {
            if let Some(value) = value {
                health.insert(key.into(), toml::Value::Integer(i64::from(value)));
            }
        }
        for (key, value) in [
            ("interval", self.interval),
            ("timeout", self.timeout),
            ("repair_window", self.repair_window),
            ("mount_hang_limit", self.mount_hang_limit),
        ] {
            if let Some(value) = value {
                health.insert(key.into(), toml::Value::String(format_duration(value)));
            }
        }
        let mut out = toml::Table::new();
        out.insert("health".into(), toml::Value::Table(health));
        if !self.tracks.is_empty() {
            let tracks = self
                .tracks
                .iter()
                .map(|t| {
                    let mut table = toml::Table::new();
                    table.insert("name".into(), toml::Value::String(t.name.clone()));
                    table.insert(
                        "command".into(),
                        toml::Value::Array(
                            t.command.iter().cloned().map(toml::Value::String).collect(),
                        ),
                    );
                    table.insert(
                        "interval".into(),
                        toml::Value::String(format_duration(t.interval)),
                    );
                    table.insert(
                        "timeout".into(),
                        toml::Value::String(format_duration(t.timeout)),
                    );
                    table.insert("rise".into(), toml::Value::Integer(i64::from(t.rise)));
                    table.insert("fall".into(), toml::Value::Integer(i64::from(t.fall)));
                    table.insert("weight".into(), toml::Value::Integer(i64::from(t.weight)));
                    toml::Value::Table(table)
                })
                .collect();
            out.insert("track".into(), toml::Value::Array(tracks));
        }
        out
    }
}

/// One `[[environment]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlacementSpec {
    pub name: String,
    /// `"jail"` or `"bhyve"`.
    pub kind: String,
    pub nodes: Vec<String>,
    pub failback: bool,
}

/// The quorum part of a node's configuration: the same on every node,
/// except `auth`, which a test may set per node (a wrong key).
#[derive(Clone, Debug, PartialEq)]
pub struct QuorumSpec {
    pub nodes: Vec<(String, std::net::IpAddr)>,
    pub heartbeat_interval: Duration,
    pub lease: Duration,
    pub fence_margin: Duration,
    pub environments: Vec<PlacementSpec>,
    /// `[auth] key_file` and `accept_key_file`.
    pub auth: Option<(PathBuf, Option<PathBuf>)>,
}

impl QuorumSpec {
    /// Every node of `specs`, with the defaults scaled for tests:
    /// heartbeats every 100 ms; a 1.5 s lease with a 1 s fence margin for
    /// plain VRRP nodes (dropping the VIP takes milliseconds), a 16 s lease
    /// with a 14 s margin when the nodes run the CBSD runbooks: the
    /// stand-ins' demote takes up to about 9 s on a loaded 2-core machine,
    /// and all of it must fit in the margin.
    pub fn lab(specs: &[NodeSpec]) -> QuorumSpec {
        let cbsd = specs.iter().any(|s| s.cbsd.is_some());
        let (lease, fence_margin) = if cbsd {
            (Duration::from_secs(16), Duration::from_secs(14))
        } else {
            (Duration::from_millis(1500), Duration::from_millis(1000))
        };
        QuorumSpec {
            nodes: specs
                .iter()
                .map(|s| (s.name.clone(), s.address.into()))
                .collect(),
            heartbeat_interval: Duration::from_millis(100),
            lease,
            fence_margin,
            environments: Vec::new(),
            auth: None,
        }
    }

    fn sections(&self) -> Result<toml::Table, LabError> {
        #[derive(Serialize)]
        struct Sections<'a> {
            cluster: Cluster,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            environment: &'a [PlacementSpec],
            #[serde(skip_serializing_if = "Option::is_none")]
            auth: Option<Auth<'a>>,
        }
        #[derive(Serialize)]
        struct Cluster {
            nodes: Vec<Member>,
            heartbeat_interval: String,
            lease: String,
            fence_margin: String,
        }
        #[derive(Serialize)]
        struct Member {
            name: String,
            address: String,
        }
        #[derive(Serialize)]
        struct Auth<'a> {
            key_file: &'a Path,
            #[serde(skip_serializing_if = "Option::is_none")]
            accept_key_file: Option<&'a Path>,
        }
        let sections = Sections {
            cluster: Cluster {
                nodes: self
                    .nodes
                    .iter()
                    .map(|(name, address)| Member {
                        name: name.clone(),
                        address: address.to_string(),
                    })
                    .collect(),
                heartbeat_interval: format_duration(self.heartbeat_interval),
                lease: format_duration(self.lease),
                fence_margin: format_duration(self.fence_margin),
            },
            environment: &self.environments,
            auth: self.auth.as_ref().map(|(key, accept)| Auth {
                key_file: key,
                accept_key_file: accept.as_deref(),
            }),
        };
        toml::Table::try_from(&sections).map_err(|e| LabError::Config(e.to_string()))
    }
}

impl NodeSpec {
    /// Node `index` of a lab cluster: address 198.18.0.(11+index), priority
    /// from [`DEFAULT_PRIORITIES`], the lab VIP, multicast.
    pub fn lab(index: usize, advert_interval: Duration, preempt: bool) -> NodeSpec {
        NodeSpec {
            name: netns::node_name(index),
            address: netns::node_address(index),
            interface: "eth0".into(),
            vrid: LAB_VRID,
            priority: DEFAULT_PRIORITIES.get(index).copied().unwrap_or(1),
            advert_interval,
            virtual_ips: vec![format!("{}/{}", netns::VIP, netns::PREFIX_LEN)],
            preempt,
            preempt_delay: Duration::ZERO,
            unicast_peers: Vec::new(),
            checksum: None,
            cbsd: None,
            quorum: None,
            watchdog: None,
            health: None,
            vrrp6_virtual_ips: Vec::new(),
            vrrp6_advert_interval: None,
        }
    }

    /// Our agent's TOML configuration for this node.
    pub fn rcbsd_toml(&self, control_socket: &Path, state_dir: &Path) -> Result<String, LabError> {
        #[derive(Serialize)]
        struct File<'a> {
            node: Node<'a>,
            vrrp: Vrrp<'a>,
        }
        #[derive(Serialize)]
        struct Node<'a> {
            name: &'a str,
            control_socket: &'a Path,
            state_dir: &'a Path,
        }
        #[derive(Serialize)]
        struct Vrrp<'a> {
            interface: &'a str,
            vrid: u8,
            priority: u8,
            advert_interval: String,
            virtual_ips: &'a [String],
            preempt: bool,
            preempt_delay: String,
            // Absent when empty (multicast, the default): an IPv6 [vrrp]
            // refuses the key.
            #[serde(skip_serializing_if = "Vec::is_empty")]
            unicast_peers: Vec<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            checksum: Option<&'a str>,
        }
        let file = File {
            node: Node {
                name: &self.name,
                control_socket,
                state_dir,
            },
            vrrp: Vrrp {
                interface: &self.interface,
                vrid: self.vrid,
                priority: self.priority,
                advert_interval: format_duration(self.advert_interval),
                virtual_ips: &self.virtual_ips,
                preempt: self.preempt,
                preempt_delay: format_duration(self.preempt_delay),
                unicast_peers: self.unicast_peers.iter().map(|p| p.to_string()).collect(),
                checksum: self.checksum.as_deref(),
            },
        };
        let mut table =
            toml::Table::try_from(&file).map_err(|e| LabError::Config(e.to_string()))?;
        if !self.vrrp6_virtual_ips.is_empty() {
            let mut vrrp6 = toml::Table::new();
            vrrp6.insert("vrid".into(), toml::Value::Integer(i64::from(self.vrid)));
            vrrp6.insert(
                "virtual_ips".into(),
                toml::Value::Array(
                    self.vrrp6_virtual_ips
                        .iter()
                        .map(|v| toml::Value::String(v.clone()))
                        .collect(),
                ),
            );
            if let Some(interval) = self.vrrp6_advert_interval {
                vrrp6.insert(
                    "advert_interval".into(),
                    toml::Value::String(format_duration(interval)),
                );
            }
            table.insert("vrrp6".into(), toml::Value::Table(vrrp6));
        }
        if let Some(cbsd) = &self.cbsd {
            table.extend(cbsd.sections(self.quorum.is_none())?);
        }
        if let Some(quorum) = &self.quorum {
            table.extend(quorum.sections()?);
        }
        if let Some((device, timeout)) = &self.watchdog {
            let mut fence = toml::Table::new();
            fence.insert(
                "watchdog".into(),
                toml::Value::String(device.to_string_lossy().into_owned()),
            );
            fence.insert(
                "watchdog_timeout".into(),
                toml::Value::String(format_duration(*timeout)),
            );
            table.insert("fence".into(), toml::Value::Table(fence));
        }
        if let Some(health) = &self.health {
            table.extend(health.sections());
        }
        toml::to_string(&table).map_err(|e| LabError::Config(e.to_string()))
    }

    /// keepalived.conf for this node: VRRPv3, the same VRID, priority,
    /// interval, VIP and preemption as [`NodeSpec::rcbsd_toml`].
    pub fn keepalived_conf(&self) -> String {
        let mut conf = format!(
            "global_defs {{\n    router_id {name}\n    vrrp_version 3\n}}\n\n\
             vrrp_instance VI_{vrid} {{\n    state BACKUP\n    interface {iface}\n    \
             virtual_router_id {vrid}\n    priority {priority}\n    advert_int {interval}\n",
            name = self.name,
            vrid = self.vrid,
            iface = self.interface,
            priority = self.priority,
            interval = keepalived_seconds(self.advert_interval),
        );
        if !self.preempt {
            conf.push_str("    nopreempt\n");
        } else if !self.preempt_delay.is_zero() {
            conf.push_str(&format!(
                "    preempt_delay {}\n",
                keepalived_seconds(self.preempt_delay)
            ));
        }
        if !self.unicast_peers.is_empty() {
            conf.push_str(&format!(
                "    unicast_src_ip {}\n    unicast_peer {{\n",
                self.address
            ));
            for peer in &self.unicast_peers {
                conf.push_str(&format!("        {peer}\n"));
            }
            conf.push_str("    }\n");
        }
        conf.push_str("    virtual_ipaddress {\n");
        for vip in &self.virtual_ips {
            conf.push_str(&format!("        {vip} dev {}\n", self.interface));
        }
        conf.push_str("    }\n}\n");
        conf
    }
}

/// `"1s"`, `"100ms"`: the spelling our config accepts.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms != 0 && ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// keepalived wants seconds as a decimal number (`1`, `0.1`, `0.02`).
fn keepalived_seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}", ms / 1000)
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
            .trim_end_matches('0')
            .to_owned()
    }
}

/// One running agent.
#[derive(Debug)]
pub struct Agent {
    pub spec: NodeSpec,
    pub namespace: String,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    /// Our agent only.
    pub control_socket: Option<PathBuf>,
    child: Option<Child>,
}

impl Agent {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the agent wrote so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends `req` over the agent's control socket (our agent only).
    pub fn request(&self, req: Request, timeout: Duration) -> Result<Response, LabError> {
        let control = |message: String| LabError::Control {
            node: self.spec.name.clone(),
            message,
        };
        let socket = self
            .control_socket
            .as_deref()
            .ok_or_else(|| control("this implementation has no control socket".into()))?;
        client::request(socket, req, timeout).map_err(|e| control(e.to_string()))
    }

    /// The agent's `status` (our agent only).
    pub fn status(&self) -> Result<Status, LabError> {
        let response = self.request(Request::Status, Duration::from_secs(2))?;
        match (response.ok, response.status) {
            (true, Some(status)) => Ok(status),
            _ => Err(LabError::Control {
                node: self.spec.name.clone(),
                message: response
                    .error
                    .unwrap_or_else(|| "reply without a status".into()),
            }),
        }
    }
}

/// The agents of one cluster, index `i` running in node namespace `i`.
/// Dropping it stops them (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct Agents {
    implementation: Implementation,
    agents: Vec<Agent>,
    /// The CBSD stand-ins' server: dropped (stopped) after the agents.
    _standins: Option<cbsd::world::StandinServer>,
}

impl Agents {
    /// Writes each node's configuration into the topology's run directory
    /// and starts one agent per spec (spec `i` in node namespace `i`).
    pub fn launch(
        topology: &Topology,
        implementation: Implementation,
        specs: Vec<NodeSpec>,
    ) -> Result<Agents, LabError> {
        let mut agents = Agents::configure(topology, implementation, specs)?;
        for index in 0..agents.len() {
            agents.start(index)?;
        }
        Ok(agents)
    }

    /// Like [`Agents::launch`] but starts nothing: for tests that prepare
    /// a node (e.g. a leftover VIP) before its agent starts.
    pub fn configure(
        topology: &Topology,
        implementation: Implementation,
        mut specs: Vec<NodeSpec>,
    ) -> Result<Agents, LabError> {
        if specs.iter().any(|s| s.cbsd.is_some())
            && !matches!(implementation, Implementation::Rcbsd { .. })
        {
            return Err(LabError::Config(
                "the CBSD scenario runs our agent only".into(),
            ));
        }
        let standins =
            cbsd::world::prepare(topology.run_dir(), topology.node_namespaces(), &mut specs)?;
        let mut agents = Agents {
            implementation,
            agents: Vec::new(),
            _standins: standins,
        };
        for (index, spec) in specs.into_iter().enumerate() {
            let agent = agents.prepare(topology, index, spec)?;
            agents.agents.push(agent);
        }
        Ok(agents)
    }

    pub fn implementation(&self) -> &Implementation {
        &self.implementation
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn get(&self, index: usize) -> Result<&Agent, LabError> {
        self.agents.get(index).ok_or(LabError::NoSuchNode(index))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Agent> {
        self.agents.iter()
    }

    fn prepare(
        &self,
        topology: &Topology,
        index: usize,
        spec: NodeSpec,
    ) -> Result<Agent, LabError> {
        let dir = topology.run_dir();
        let namespace = topology.node_ns(index)?.to_owned();
        let log_path = dir.join(format!("{}.log", spec.name));
        let io = |what: String| move |source| LabError::Io { what, source };
        let (config_path, control_socket) = match &self.implementation {
            Implementation::Rcbsd { .. } => {
                let config_path = dir.join(format!("{}.toml", spec.name));
                let socket = dir.join(format!("{}.sock", spec.name));
                let state_dir = dir.join(format!("{}-state", spec.name));
                std::fs::create_dir_all(&state_dir)
                    .map_err(io(format!("creating {}", state_dir.display())))?;
                let text = spec.rcbsd_toml(&socket, &state_dir)?;
                std::fs::write(&config_path, text)
                    .map_err(io(format!("writing {}", config_path.display())))?;
                (config_path, Some(socket))
            }
            Implementation::Keepalived => {
                let config_path = dir.join(format!("{}-keepalived.conf", spec.name));
                std::fs::write(&config_path, spec.keepalived_conf())
                    .map_err(io(format!("writing {}", config_path.display())))?;
                (config_path, None)
            }
        };
        Ok(Agent {
            spec,
            namespace,
            config_path,
            log_path,
            control_socket,
            child: None,
        })
    }

    /// (Re)starts agent `index` with its existing configuration.
    pub fn start(&mut self, index: usize) -> Result<(), LabError> {
        let implementation = self.implementation.clone();
        let agent = self
            .agents
            .get_mut(index)
            .ok_or(LabError::NoSuchNode(index))?;
        if agent.child.is_some() {
            return Ok(());
        }
        let config = agent.config_path.to_string_lossy().into_owned();
        let command = match &implementation {
            Implementation::Rcbsd { agent } => {
                agent.argv(&["run", "-c", &config, "--log-format", "json"])
            }
            Implementation::Keepalived => {
                let pid_file = |kind: &str| {
                    agent
                        .config_path
                        .with_file_name(format!("{}-{kind}.pid", agent.spec.name))
                        .to_string_lossy()
                        .into_owned()
                };
                // -n: stay in the foreground (its VRRP child forks off it);
                // -l -D -G: detailed log to the console, none to syslog;
                // -P: VRRP only; -p/-r: pid files of our own, so several
                // instances can run on one host.
                vec![
                    "keepalived".into(),
                    "-n".into(),
                    "-l".into(),
                    "-D".into(),
                    "-G".into(),
                    "-P".into(),
                    "-f".into(),
                    config,
                    "-p".into(),
                    pid_file("keepalived"),
                    "-r".into(),
                    pid_file("vrrp"),
                ]
            }
        };
        let argv = netns_exec_argv(&agent.namespace, &command);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&agent.log_path)
            .map_err(|source| LabError::Io {
                what: format!("opening {}", agent.log_path.display()),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| LabError::Io {
            what: "duplicating the log file".into(),
            source,
        })?;
        let (program, args) = argv.split_first().ok_or(LabError::EmptyCommand)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Own process group: a terminal's Ctrl-C reaches the lab only,
            // and the lab stops the agents in order during teardown.
            .process_group(0)
            .spawn()
            .map_err(|source| LabError::Spawn {
                command: argv.join(" "),
                source,
            })?;
        agent.child = Some(child);
        Ok(())
    }

    /// Sends `signal` to agent `index` and waits up to `timeout` for it to
    /// exit (then kills it); the agent can be started again.
    pub fn stop(
        &mut self,
        index: usize,
        signal: Signal,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let agent = self
            .agents
            .get_mut(index)
            .ok_or(LabError::NoSuchNode(index))?;
        if let Some(mut child) = agent.child.take() {
            stop_child(&mut child, signal, timeout);
        }
        Ok(())
    }

    /// Sends `signal` to agent `index` without waiting (e.g. SIGHUP).
    pub fn signal(&self, index: usize, signal: Signal) -> Result<(), LabError> {
        let agent = self.get(index)?;
        if let Some(child) = agent.child.as_ref() {
            kill(child_pid(child), signal)?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for agent `index` to exit by itself; its exit
    /// status, or `None` if it is still running (or was never started).
    pub fn wait_exit(
        &mut self,
        index: usize,
        timeout: Duration,
    ) -> Result<Option<std::process::ExitStatus>, LabError> {
        let agent = self
            .agents
            .get_mut(index)
            .ok_or(LabError::NoSuchNode(index))?;
        let deadline = Instant::now() + timeout;
        while let Some(child) = agent.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                agent.child = None;
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(None)
    }

    /// Fails, naming the node and showing its log's tail, if an agent that
    /// was started has exited.
    pub fn check_running(&mut self) -> Result<(), LabError> {
        for agent in &mut self.agents {
            if let Some(child) = agent.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = agent.log();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    return Err(LabError::AgentExited {
                        node: agent.spec.name.clone(),
                        status: status.to_string(),
                        log_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Memory and CPU of each agent (keepalived: both processes).
    pub fn usage(&self) -> Vec<Option<Usage>> {
        self.agents
            .iter()
            .map(|a| a.pid().and_then(procstat::usage))
            .collect()
    }

    /// Prints every agent's log on stderr when a measurement failed (not
    /// when it was interrupted): what a failed run needs to be understood.
    pub fn show_logs_if_failed<T>(&self, result: &Result<T, LabError>) {
        if let Err(e) = result {
            if !matches!(e, LabError::Interrupted) {
                eprint!("{}", self.dump_logs());
            }
        }
    }

    /// Every agent's log, each under a header line.
    pub fn dump_logs(&self) -> String {
        let mut out = String::new();
        for agent in &self.agents {
            out.push_str(&format!(
                "===== {} ({}) log: {} =====\n{}\n",
                agent.spec.name,
                self.implementation.label(),
                agent.log_path.display(),
                agent.log()
            ));
        }
        out
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            if let Some(child) = agent.child.as_mut() {
                let _ = kill(child_pid(child), Signal::SIGTERM);
            }
        }
        for agent in &mut self.agents {
            if let Some(mut child) = agent.child.take() {
                stop_child(&mut child, Signal::SIGTERM, Duration::from_secs(3));
            }
        }
    }
}

fn child_pid(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
}

fn stop_child(child: &mut Child, signal: Signal, timeout: Duration) {
    let _ = kill(child_pid(child), signal);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Node indices holding `vip` now: the implementation-neutral "who is master".
pub fn vip_holders(
    topology: &Topology,
    vip: impl Into<std::net::IpAddr>,
) -> Result<Vec<usize>, LabError> {
    watch::holders(topology.node_namespaces(), vip)
}

/// Waits until exactly one node holds `vip` — node `expected` if given —
/// and has held it alone for `stable_for`; returns that node. Fails after
/// `timeout`.
pub fn wait_single_holder(
    topology: &Topology,
    vip: impl Into<std::net::IpAddr>,
    expected: Option<usize>,
    stable_for: Duration,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<usize, LabError> {
    let vip = vip.into();
    let deadline = Instant::now() + timeout;
    let mut candidate: Option<(usize, Instant)> = None;
    loop {
        if cancel.is_cancelled() {
            return Err(LabError::Interrupted);
        }
        let now = Instant::now();
        let holders = vip_holders(topology, vip)?;
        match holders.as_slice() {
            [single] if expected.is_none_or(|e| e == *single) => match candidate {
                Some((node, since)) if node == *single => {
                    if now.duration_since(since) >= stable_for {
                        return Ok(node);
                    }
                }
                _ => candidate = Some((*single, now)),
            },
            _ => candidate = None,
        }
        if now >= deadline {
            let whom = expected.map_or("exactly one node".to_owned(), netns::node_name);
            return Err(LabError::Timeout(format!(
                "{whom} holding {vip} alone for {stable_for:?} (holders now: {holders:?})"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_conf_matches_the_spec() {
        let mut spec = NodeSpec::lab(1, Duration::from_millis(100), false);
        spec.unicast_peers = vec![Ipv4Addr::new(198, 18, 0, 11)];
        let conf = spec.keepalived_conf();
        assert!(conf.contains("vrrp_version 3"), "{conf}");
        assert!(conf.contains("priority 100"), "{conf}");
        assert!(conf.contains("advert_int 0.1\n"), "{conf}");
        assert!(conf.contains("nopreempt"), "{conf}");
        assert!(conf.contains("unicast_src_ip 198.18.0.12"), "{conf}");
        assert!(conf.contains("198.18.0.100/24 dev eth0"), "{conf}");
    }

    #[test]
    fn keepalived_seconds_are_decimal() {
        assert_eq!(keepalived_seconds(Duration::from_secs(1)), "1");
        assert_eq!(keepalived_seconds(Duration::from_millis(20)), "0.02");
        assert_eq!(keepalived_seconds(Duration::from_millis(1500)), "1.5");
    }

    #[test]
    fn rcbsd_toml_has_the_documented_keys() {
        let spec = NodeSpec::lab(0, Duration::from_millis(20), true);
        let text = spec
            .rcbsd_toml(Path::new("/tmp/x/n1.sock"), Path::new("/tmp/x/n1-state"))
            .expect("serialisable");
        let value: toml::Table = text.parse().expect("valid TOML");
        let vrrp = value
            .get("vrrp")
            .and_then(|v| v.as_table())
            .expect("[vrrp]");
        assert_eq!(
            vrrp.get("advert_interval").and_then(|v| v.as_str()),
            Some("20ms")
        );
        assert_eq!(vrrp.get("priority").and_then(|v| v.as_integer()), Some(150));
        assert_eq!(
            value
                .get("node")
                .and_then(|n| n.get("control_socket"))
                .and_then(|v| v.as_str()),
            Some("/tmp/x/n1.sock")
        );
    }

    #[test]
    fn health_and_tracks_are_what_the_agent_reads() {
        let mut spec = NodeSpec::lab(0, Duration::from_millis(100), true);
        spec.health = Some(HealthSpec {
            max_repairs: Some(2),
            repair_window: Some(Duration::from_secs(120)),
            mount_hang_limit: Some(Duration::from_secs(5)),
            tracks: vec![TrackSpec {
                name: "app".into(),
                command: vec!["/usr/bin/test".into(), "-e".into(), "/tmp/x".into()],
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(2),
                rise: 2,
                fall: 2,
                weight: -60,
            }],
            ..HealthSpec::quick()
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let text = spec
            .rcbsd_toml(&dir.path().join("n1.sock"), &dir.path().join("state"))
            .expect("serialisable");
        let path = dir.path().join("n1.toml");
        std::fs::write(&path, &text).expect("write");
        let config = rcbsd_failover::config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let health = &config.health;
        assert_eq!(health.interval, Duration::from_secs(1), "{text}");
        assert_eq!((health.rise, health.fall, health.max_repairs), (2, 2, 2));
        assert_eq!(health.repair_window, Duration::from_secs(120));
        assert_eq!(health.mount_hang_limit, Duration::from_secs(5));
        let track = health.tracks.first().expect("a track");
        assert_eq!(track.command, ["/usr/bin/test", "-e", "/tmp/x"]);
        assert_eq!(
            track.on_fail,
            rcbsd_failover::config::TrackAction::Weight(-60)
        );
    }

    #[test]
    fn priorities_are_distinct_and_descending() {
        assert!(DEFAULT_PRIORITIES.windows(2).all(|w| w[0] > w[1]));
    }
}
