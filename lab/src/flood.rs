//! `lab --scenario flood`: a benchmark, not a test. Three agents (n1 the
//! master by priority) and a flooder on the same bridge; the flooder sends
//! junk VRRP (IP protocol 112) and junk heartbeats (UDP) at the highest rate
//! its threads manage, while the lab watches whether the master keeps its
//! role, whether it misses an advert, and what the flood costs it in CPU.
//!
//! - [`junk`]: the packets; [`sender`]: the flooding threads;
//! - [`tap`]: the master's adverts as they leave its link;
//! - [`report`]: the results.
//!
//! The flooder lives in the topology's client namespace (198.18.0.2): a
//! namespace on the same bridge that no agent runs in.

pub mod junk;
pub mod report;
pub mod sender;
pub mod tap;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::agents::{self, wait_single_holder, Agents, Implementation, NodeSpec, LAB_VRID};
use super::cancel::Cancel;
use super::cmd;
use super::netns::{self, Topology};
use super::LabError;
use crate::agent_command::AgentCommand;
use junk::Target;
use rcbsd_failover::control::protocol::Counters;
use report::{AgentLoad, FloodRun, FloodSettings, MasterCounters};
use sender::Flooder;
use tap::AdvertTap;

/// The heartbeat port of `[cluster]` (its default).
pub const HEARTBEAT_PORT: u16 = 7798;
/// How often the VIP's holders are sampled during the measured windows.
const VIP_SAMPLE: Duration = Duration::from_millis(200);
/// The quiet window before the flood, at most this long.
const IDLE_MAX: Duration = Duration::from_secs(10);
/// The node expected to be master: the highest priority.
const MASTER: usize = 0;

/// What to run: from `rcbsd-lab` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub agent: AgentCommand,
    pub nodes: usize,
    pub advert_interval: Duration,
    pub duration: Duration,
    pub threads: usize,
}

/// Runs the benchmark on a fresh topology; tears everything down on return.
pub fn measure(plan: &Plan, cancel: &Cancel) -> Result<FloodRun, LabError> {
    let topology = Topology::new(plan.nodes)?;
    eprintln!(
        "lab: flood: topology {} ({} nodes + flooder, bridge in {})",
        topology.run_id(),
        plan.nodes,
        topology.switch_ns()
    );
    let specs: Vec<NodeSpec> = (0..plan.nodes)
        .map(|i| NodeSpec::lab(i, plan.advert_interval, true))
        .collect();
    let implementation = Implementation::Rcbsd {
        agent: plan.agent.clone(),
    };
    // Declared after `topology`, so dropped (agents stopped) before it.
    let mut agents = Agents::configure(&topology, implementation, specs)?;
    let heartbeats = add_cluster_sections(&plan.agent, &agents)?;
    for index in 0..agents.len() {
        agents.start(index)?;
    }
    let result = measure_with(&topology, &mut agents, plan, heartbeats, cancel);
    agents.show_logs_if_failed(&result);
    result
}

fn measure_with(
    topology: &Topology,
    agents: &mut Agents,
    plan: &Plan,
    heartbeats: bool,
    cancel: &Cancel,
) -> Result<FloodRun, LabError> {
    let interval = plan.advert_interval;
    let patience = interval * 12 + Duration::from_secs(10);
    let settled = wait_single_holder(
        topology,
        netns::VIP,
        Some(MASTER),
        (interval * 3).max(Duration::from_millis(300)),
        patience,
        cancel,
    );
    agents.check_running()?;
    settled?;
    let listening = heartbeat_socket_open(topology)?;
    eprintln!(
        "lab: flood: n1 is master; heartbeat port {HEARTBEAT_PORT} {}; measuring",
        if listening { "open" } else { "closed" }
    );
    let master_address = netns::node_address(MASTER);
    let tap = AdvertTap::start(topology.switch_ns(), "p1", master_address, LAB_VRID)?;

    let idle = plan.duration.min(IDLE_MAX);
    let start = Snapshot::take(agents);
    let mut vip = VipSamples::default();
    vip.sample_for(topology, idle, cancel)?;
    let flood_start = Snapshot::take(agents);

    let target = Target {
        source: netns::CLIENT_ADDRESS,
        master: master_address,
        vrid: LAB_VRID,
        vip: netns::VIP,
        heartbeat_port: HEARTBEAT_PORT,
    };
    eprintln!(
        "lab: flood: flooding for {:.0} s from {} threads",
        plan.duration.as_secs_f64(),
        plan.threads
    );
    let flooder = Flooder::start(topology.client_ns(), plan.threads, target)?;
    let sampled = vip.sample_for(topology, plan.duration, cancel);
    let sent = flooder.stop()?;
    sampled?;
    let flood_end = Snapshot::take(agents);
    // Adverts sent just before the flood stopped are on the wire by now.
    std::thread::sleep(interval * 2);
    let seen = tap.stop()?;
    agents.check_running()?;

    let adverts_idle = tap::gaps(&seen, start.wall..flood_start.wall, interval);
    let adverts_flood = tap::gaps(&seen, flood_start.wall..flood_end.wall, interval);
    let logs: Vec<String> = agents.iter().map(|a| a.log()).collect();
    let loads: Vec<AgentLoad> = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| AgentLoad {
            node: agent.spec.name.clone(),
            priority: agent.spec.priority,
            cpu_idle_percent: cpu_percent(&start, &flood_start, i),
            cpu_flood_percent: cpu_percent(&flood_start, &flood_end, i),
            state_changes: logs
                .get(i)
                .map(|log| state_changes_after(log, start.log_len(i)))
                .unwrap_or_default(),
            rss_kib: agent
                .pid()
                .and_then(super::procstat::usage)
                .map_or(0, |u| u.rss_kib),
        })
        .collect();
    let backup_took_over = loads
        .iter()
        .skip(1)
        .zip(logs.iter().skip(1))
        .enumerate()
        .any(|(i, (_, log))| became_master_after(log, start.log_len(i + 1)));
    let master_kept_role =
        vip.elsewhere == 0 && loads.first().is_some_and(|m| m.state_changes.is_empty());
    Ok(FloodRun {
        settings: FloodSettings {
            nodes: plan.nodes,
            advert_interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            duration_s: flood_end.at.duration_since(flood_start.at).as_secs_f64(),
            idle_s: flood_start.at.duration_since(start.at).as_secs_f64(),
            threads: plan.threads,
            heartbeats,
            heartbeat_listening: listening,
        },
        master: netns::node_name(MASTER),
        sent,
        vip_samples: vip.samples,
        vip_samples_elsewhere: vip.elsewhere,
        adverts_idle,
        adverts_flood,
        backlog_drops_idle: flood_start
            .backlog_drops
            .saturating_sub(start.backlog_drops),
        backlog_drops_flood: flood_end
            .backlog_drops
            .saturating_sub(flood_start.backlog_drops),
        counters_idle: counters_between(&start, &flood_start, interval),
        counters_flood: counters_between(&flood_start, &flood_end, interval),
        agents: loads,
        master_kept_role,
        backup_took_over,
    })
}

/// The agents' state at one instant of the run.
struct Snapshot {
    at: Instant,
    /// Wall clock, comparable with the tap's kernel timestamps.
    wall: Duration,
    cpu_seconds: Vec<f64>,
    log_lens: Vec<usize>,
    master: Option<Counters>,
    backlog_drops: u64,
}

impl Snapshot {
    fn take(agents: &Agents) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            cpu_seconds: agents
                .usage()
                .into_iter()
                .map(|u| u.map_or(0.0, |u| u.cpu_seconds))
                .collect(),
            log_lens: agents.iter().map(|a| a.log().len()).collect(),
            master: agents
                .get(MASTER)
                .and_then(|a| a.status())
                .ok()
                .map(|s| s.counters),
            backlog_drops: backlog_drops(),
        }
    }

    fn log_len(&self, index: usize) -> usize {
        self.log_lens.get(index).copied().unwrap_or(0)
    }
}

fn cpu_percent(from: &Snapshot, to: &Snapshot, index: usize) -> f64 {
    let seconds = to.at.duration_since(from.at).as_secs_f64();
    let used = to.cpu_seconds.get(index).copied().unwrap_or(0.0)
        - from.cpu_seconds.get(index).copied().unwrap_or(0.0);
    if seconds > 0.0 {
        100.0 * used / seconds
    } else {
        0.0
    }
}

fn counters_between(from: &Snapshot, to: &Snapshot, interval: Duration) -> Option<MasterCounters> {
    let (before, after) = (from.master.as_ref()?, to.master.as_ref()?);
    let mut drops = BTreeMap::new();
    for (reason, &count) in &after.drops {
        let delta = count.saturating_sub(before.drops.get(reason).copied().unwrap_or(0));
        if delta > 0 {
            drops.insert(reason.clone(), delta);
        }
    }
    let window = to.at.duration_since(from.at);
    Some(MasterCounters {
        adverts_sent: after.adverts_sent.saturating_sub(before.adverts_sent),
        adverts_expected: (window.as_secs_f64() / interval.as_secs_f64()).floor() as u64,
        adverts_received: after
            .adverts_received
            .saturating_sub(before.adverts_received),
        drops,
    })
}

/// Packets the kernel dropped because a CPU's input backlog was full, all
/// CPUs together (the second column of /proc/net/softnet_stat, in hex).
/// Machine-wide, not per namespace: every veth of the lab goes through
/// these queues, so a non-zero count during the flood means adverts may
/// have been lost between the master and the bridge, not late at the
/// master.
fn backlog_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .map(|table| softnet_dropped(&table))
        .unwrap_or(0)
}

fn softnet_dropped(table: &str) -> u64 {
    table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .sum()
}

/// VIP holder samples: how many, and how many did not find it on the
/// master alone.
#[derive(Debug, Default)]
struct VipSamples {
    samples: usize,
    elsewhere: usize,
}

impl VipSamples {
    fn sample_for(
        &mut self,
        topology: &Topology,
        window: Duration,
        cancel: &Cancel,
    ) -> Result<(), LabError> {
        let end = Instant::now() + window;
        while Instant::now() < end {
            if cancel.is_cancelled() {
                return Err(LabError::Interrupted);
            }
            let holders = agents::vip_holders(topology, netns::VIP)?;
            self.samples += 1;
            if holders != [MASTER] {
                self.elsewhere += 1;
            }
            let left = end.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(VIP_SAMPLE));
        }
        Ok(())
    }
}

/// The JSON log lines after byte `offset` (a line cut by the offset is
/// skipped).
fn events_after(log: &str, offset: usize) -> impl Iterator<Item = serde_json::Value> + '_ {
    log.get(offset..)
        .unwrap_or("")
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
}

/// `state_change` events after `offset`, each as
/// `"<timestamp> <from> -> <to> (<reason>)"`.
fn state_changes_after(log: &str, offset: usize) -> Vec<String> {
    let field = |e: &serde_json::Value, key: &str| {
        e.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    events_after(log, offset)
        .filter(|e| e.get("event").and_then(|v| v.as_str()) == Some("state_change"))
        .map(|e| {
            format!(
                "{} {} -> {} ({})",
                field(&e, "timestamp"),
                field(&e, "from"),
                field(&e, "to"),
                field(&e, "reason")
            )
        })
        .collect()
}

fn became_master_after(log: &str, offset: usize) -> bool {
    events_after(log, offset).any(|e| {
        e.get("event").and_then(|v| v.as_str()) == Some("state_change")
            && e.get("to").and_then(|v| v.as_str()) == Some("master")
    })
}

/// Whether the master has a UDP socket bound to the heartbeat port: a
/// config that declares `[cluster]` proves nothing if the agent does not
/// open it yet.
fn heartbeat_socket_open(topology: &Topology) -> Result<bool, LabError> {
    let ns = topology.node_ns(MASTER)?;
    // The thread's own view: /proc/self/net would show the process's
    // namespace, not the one this thread entered.
    let table = netns::in_netns(ns, || std::fs::read_to_string("/proc/thread-self/net/udp"))?
        .map_err(|source| LabError::Io {
            what: "reading the master's UDP sockets".into(),
            source,
        })?;
    Ok(udp_port_bound(&table, HEARTBEAT_PORT))
}

/// Whether a `/proc/net/udp` table has a socket bound to local `port`.
fn udp_port_bound(table: &str, port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .any(|local| local.ends_with(&wanted))
}

/// Adds `[cluster]` (every lab node, default port) to each agent's
/// configuration when the agent accepts it, so heartbeats run and the
/// heartbeat junk meets a listening socket. An agent that predates
/// `[cluster]` keeps its plain configuration; returns whether it was added.
fn add_cluster_sections(agent: &AgentCommand, agents: &Agents) -> Result<bool, LabError> {
    let nodes: Vec<toml::Value> = (0..agents.len())
        .map(|i| {
            let mut node = toml::Table::new();
            node.insert("name".into(), netns::node_name(i).into());
            node.insert("address".into(), netns::node_address(i).to_string().into());
            toml::Value::Table(node)
        })
        .collect();
    let mut cluster = toml::Table::new();
    cluster.insert("nodes".into(), toml::Value::Array(nodes));
    cluster.insert("port".into(), i64::from(HEARTBEAT_PORT).into());
    let mut section = toml::Table::new();
    section.insert("cluster".into(), toml::Value::Table(cluster));
    let section = toml::to_string(&section).map_err(|e| LabError::Config(e.to_string()))?;
    let io = |what: String| move |source| LabError::Io { what, source };
    let mut originals = Vec::new();
    for agent in agents.iter() {
        let path = &agent.config_path;
        let plain =
            std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
        std::fs::write(path, format!("{plain}\n{section}"))
            .map_err(io(format!("writing {}", path.display())))?;
        originals.push((path.clone(), plain));
    }
    let first = agents
        .get(MASTER)?
        .config_path
        .to_string_lossy()
        .into_owned();
    let check = agent.argv(&["check-config", "--file-only", "-c", &first]);
    if cmd::run(&check).is_ok() {
        return Ok(true);
    }
    eprintln!("lab: flood: this agent does not accept [cluster]; running without heartbeats");
    for (path, plain) in originals {
        std::fs::write(&path, plain).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = concat!(
        r#"{"event":"agent_started","node":"n2"}"#,
        "\n",
        r#"{"event":"state_change","from":"initialize","to":"backup"}"#,
        "\n",
        "not json\n",
        r#"{"event":"state_change","from":"backup","to":"master"}"#,
        "\n",
    );

    #[test]
    fn sums_softnet_drops_over_cpus() {
        let table = "0000a000 00000002 00000000\n0000b000 0000000f 00000000\n";
        assert_eq!(softnet_dropped(table), 17);
        assert_eq!(softnet_dropped(""), 0);
    }

    #[test]
    fn finds_a_bound_udp_port() {
        let table = "  sl  local_address rem_address   st\n   \
             0: 0B0012C6:1E76 00000000:0000 07\n   \
             1: 00000000:0044 00000000:0000 07\n";
        assert!(udp_port_bound(table, 7798));
        assert!(udp_port_bound(table, 68));
        assert!(!udp_port_bound(table, 7799));
    }

    #[test]
    fn counts_state_changes_after_an_offset() {
        assert_eq!(
            state_changes_after(LOG, 0),
            ["? initialize -> backup (?)", "? backup -> master (?)"]
        );
        assert!(became_master_after(LOG, 0));
        let after_first = LOG.find("not json").unwrap_or(0);
        assert_eq!(state_changes_after(LOG, after_first).len(), 1);
        let end = LOG.len();
        assert!(!became_master_after(LOG, end));
        assert!(state_changes_after(LOG, end + 10).is_empty());
    }
}
