//! Shared helpers for the network tests: a cluster of real agents in
//! network namespaces, built on the lab's [`Topology`] and [`Agents`].
//!
//! ```ignore
//! mod common;
//! use common::{require_root, ClusterBuilder};
//!
//! #[test]
//! fn highest_priority_wins() {
//!     if !require_root() { return; }
//!     let cluster = ClusterBuilder::new(3).start();
//!     cluster.wait_master(0, common::WAIT);
//! }
//! ```
//!
//! Every cluster has its own namespaces (`rcbsdlab-<pid>-<tag>-*`), so test
//! binaries and test threads may run in parallel; everything is torn down
//! when the [`Cluster`] drops, also when the test panics, and each agent's
//! log is printed first if it is dropped during a panic.
//! Waits poll with a timeout; no fixed sleep is ever an assertion.
#![cfg(target_os = "linux")]
#![allow(dead_code)] // each test binary uses a different subset

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rcbsd_failover::control::protocol::{Request, Response, Status};
use rcbsd_failover::wire::VrrpState;
use rcbsd_lab::agent_command::AgentCommand;
use rcbsd_lab::agents::{Agents, Implementation, NodeSpec, PlacementSpec, QuorumSpec};
use rcbsd_lab::cbsd::state::{EnvEvent, NodeState};
use rcbsd_lab::cbsd::{self, CbsdSpec, WorldPaths};
use rcbsd_lab::netns::{self, netns_exec_argv, Topology};
use rcbsd_lab::ping::Prober;
use rcbsd_lab::{cmd, watch};

/// A generous default for "the cluster should get there": elections at
/// the default 100 ms interval take well under a second.
pub const WAIT: Duration = Duration::from_secs(10);

/// The lab's VIP (198.18.0.100/24) as every cluster is configured with.
pub const VIP: Ipv4Addr = netns::VIP;

/// The variable `tools/test` sets: every test must run, none may skip.
pub const STRICT_VAR: &str = "RCBSD_TESTS_STRICT";

/// Whether tests run under `tools/test` (or CI), where a skip is a failure.
pub fn strict() -> bool {
    std::env::var_os(STRICT_VAR).is_some_and(|v| v == "1")
}

/// True when running as root. Otherwise prints a loud SKIP line (the test
/// should then return), or, under `tools/test` (`RCBSD_TESTS_STRICT=1`),
/// fails: network tests need root, and CI runs them as root, so there a
/// test that would skip must fail instead of passing silently.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        !strict(),
        "{} needs root and {STRICT_VAR}=1 is set (tools/test): run it as root, or unset {STRICT_VAR} to skip",
        std::thread::current().name().unwrap_or("this test")
    );
    eprintln!(
        "\n*** SKIP {}: network-namespace tests need root ***\n",
        std::thread::current().name().unwrap_or("test")
    );
    false
}

/// The agent: the one in the lab binary cargo built for this test run
/// (`rcbsd-lab agent`), or the `rcbsd-failover` named by
/// `RCBSD_TEST_AGENT_EXE` (to run the network tests against another
/// build, e.g. while bisecting).
pub fn agent() -> AgentCommand {
    match std::env::var_os("RCBSD_TEST_AGENT_EXE") {
        Some(exe) => AgentCommand::exe(Path::new(&exe)),
        None => AgentCommand::in_lab(Path::new(env!("CARGO_BIN_EXE_rcbsd-lab"))),
    }
}

/// A string field of a logged event ("" when absent).
pub fn field<'a>(event: &'a serde_json::Value, name: &str) -> &'a str {
    event.get(name).and_then(|v| v.as_str()).unwrap_or("")
}

/// A CBSD cluster of three: n1 master, n2 and n3 following it, everything
/// mounted and running (waits up to `converge`).
pub fn start_steady(converge: Duration) -> Cluster {
    let cluster = ClusterBuilder::new(3).cbsd().start();
    cluster.wait_converged(&[0, 1, 2], 0, converge);
    cluster
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Describes a cluster before it starts: node `i` is `n{i+1}` at
/// 198.18.0.(11+i), priorities 150, 100, 50, ... (the lab's), advert
/// interval 100 ms, preempt on, multicast, VIP 198.18.0.100/24.
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    specs: Vec<NodeSpec>,
    implementation: Implementation,
}

impl ClusterBuilder {
    pub fn new(nodes: usize) -> Self {
        ClusterBuilder {
            specs: (0..nodes)
                .map(|i| NodeSpec::lab(i, Duration::from_millis(100), true))
                .collect(),
            implementation: Implementation::Rcbsd { agent: agent() },
        }
    }

    /// Priorities of nodes 0, 1, ... (extra nodes keep theirs).
    pub fn priorities(mut self, priorities: &[u8]) -> Self {
        for (spec, &p) in self.specs.iter_mut().zip(priorities) {
            spec.priority = p;
        }
        self
    }

    pub fn advert_interval(mut self, interval: Duration) -> Self {
        self.specs
            .iter_mut()
            .for_each(|s| s.advert_interval = interval);
        self
    }

    pub fn preempt(mut self, preempt: bool) -> Self {
        self.specs.iter_mut().for_each(|s| s.preempt = preempt);
        self
    }

    pub fn preempt_delay(mut self, delay: Duration) -> Self {
        self.specs.iter_mut().for_each(|s| s.preempt_delay = delay);
        self
    }

    /// Unicast mode: each node lists every other node as a peer.
    pub fn unicast(mut self) -> Self {
        let addresses: Vec<Ipv4Addr> = self.specs.iter().map(|s| s.address).collect();
        for spec in &mut self.specs {
            spec.unicast_peers = addresses
                .iter()
                .copied()
                .filter(|&a| a != spec.address)
                .collect();
        }
        self
    }

    pub fn checksum(mut self, form: &str) -> Self {
        self.specs
            .iter_mut()
            .for_each(|s| s.checksum = Some(form.to_owned()));
        self
    }

    /// The CBSD scenario: every node runs the full runbooks against the
    /// FreeBSD tool stand-ins (`rcbsd_lab::cbsd`): nodes 0 and 1
    /// are HAST master candidates, the others follower-only; node `i` runs
    /// jail `web<i+1>`, the last node also the bhyve VM `vm1`. Edit one
    /// node's part with [`ClusterBuilder::cbsd_node`].
    pub fn cbsd(mut self) -> Self {
        let nodes = self.specs.len();
        for (index, spec) in self.specs.iter_mut().enumerate() {
            spec.cbsd = Some(CbsdSpec::lab(index, nodes));
        }
        self
    }

    /// Quorum mode: `[cluster]` on every node (heartbeats every 100 ms, a
    /// 1.5 s lease). With [`ClusterBuilder::cbsd`] (call it first), the
    /// environments are placed by `[[environment]]`: `web<i+1>` on node i
    /// then node i+1, `vm1` on the last node then node 0.
    pub fn quorum(mut self) -> Self {
        let mut spec = QuorumSpec::lab(&self.specs);
        let n = self.specs.len();
        for (index, node) in self.specs.iter().enumerate() {
            let Some(cbsd) = &node.cbsd else { continue };
            let next = self.specs[(index + 1) % n].name.clone();
            let nodes = if n > 1 {
                vec![node.name.clone(), next]
            } else {
                vec![node.name.clone()]
            };
            for jail in &cbsd.jails {
                spec.environments.push(PlacementSpec {
                    name: jail.clone(),
                    kind: "jail".into(),
                    nodes: nodes.clone(),
                    failback: false,
                });
            }
            for vm in &cbsd.bhyve {
                spec.environments.push(PlacementSpec {
                    name: vm.clone(),
                    kind: "bhyve".into(),
                    nodes: nodes.clone(),
                    failback: false,
                });
            }
        }
        for node in &mut self.specs {
            node.quorum = Some(spec.clone());
        }
        self
    }

    /// Edits every node's quorum part (after [`ClusterBuilder::quorum`]).
    pub fn quorum_edit(mut self, edit: impl Fn(&mut QuorumSpec)) -> Self {
        for node in &mut self.specs {
            if let Some(q) = node.quorum.as_mut() {
                edit(q);
            }
        }
        self
    }

    /// Edits node `index`'s CBSD part (after [`ClusterBuilder::cbsd`]).
    pub fn cbsd_node(self, index: usize, edit: impl FnOnce(&mut CbsdSpec)) -> Self {
        self.node(index, |spec| {
            if let Some(cbsd) = spec.cbsd.as_mut() {
                edit(cbsd);
            }
        })
    }

    /// Anything else, for one node.
    pub fn node(mut self, index: usize, edit: impl FnOnce(&mut NodeSpec)) -> Self {
        if let Some(spec) = self.specs.get_mut(index) {
            edit(spec);
        }
        self
    }

    /// Runs keepalived (or another implementation) instead of our agent.
    pub fn implementation(mut self, implementation: Implementation) -> Self {
        self.implementation = implementation;
        self
    }

    /// Builds the topology and writes the configurations; starts nothing
    /// (see [`Cluster::start`]).
    pub fn prepare(self) -> Cluster {
        static LEFTOVERS: std::sync::Once = std::sync::Once::new();
        LEFTOVERS.call_once(|| {
            for ns in netns::cleanup_leftovers() {
                eprintln!("removed namespace {ns} left by a dead earlier run");
            }
        });
        let topology = Topology::new(self.specs.len())
            .unwrap_or_else(|e| panic!("cannot build the test topology: {e}"));
        let agents = Agents::configure(&topology, self.implementation, self.specs)
            .unwrap_or_else(|e| panic!("cannot configure the agents: {e}"));
        Cluster { agents, topology }
    }

    /// Builds the topology and starts every agent.
    pub fn start(self) -> Cluster {
        let mut cluster = self.prepare();
        for i in 0..cluster.len() {
            cluster.start(i);
        }
        cluster
    }
}

/// A running cluster. Field order matters: agents stop before the
/// namespaces go.
pub struct Cluster {
    pub agents: Agents,
    pub topology: Topology,
}

impl Cluster {
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Panics with `message`; every agent's log is printed as the cluster
    /// drops during the unwind.
    pub fn fail(&self, message: &str) -> ! {
        panic!("{message} (agent logs follow on stderr)");
    }

    /// Starts (or restarts) agent `index`.
    pub fn start(&mut self, index: usize) {
        if let Err(e) = self.agents.start(index) {
            self.fail(&format!("cannot start node {index}: {e}"));
        }
    }

    /// Stops agent `index` with `signal` (SIGTERM: a clean shutdown; SIGKILL:
    /// a crash), waiting up to 5 s before killing it.
    pub fn stop(&mut self, index: usize, signal: Signal) {
        if let Err(e) = self.agents.stop(index, signal, Duration::from_secs(5)) {
            self.fail(&format!("cannot stop node {index}: {e}"));
        }
    }

    /// Sends `signal` (e.g. SIGHUP) to agent `index` without waiting.
    pub fn signal(&self, index: usize, signal: Signal) {
        if let Err(e) = self.agents.signal(index, signal) {
            self.fail(&format!("cannot signal node {index}: {e}"));
        }
    }

    /// The namespace of node `index`.
    pub fn ns(&self, index: usize) -> &str {
        self.topology
            .node_ns(index)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `argv` inside node `index`'s namespace; its stdout.
    pub fn exec(&self, index: usize, argv: &[&str]) -> String {
        let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
        cmd::run(&netns_exec_argv(self.ns(index), &argv))
            .unwrap_or_else(|e| self.fail(&format!("node {index}: {e}")))
    }

    /// Rewrites node `index`'s configuration file (then SIGHUP or restart).
    pub fn rewrite_config(&self, index: usize, edit: impl FnOnce(&mut NodeSpec)) {
        let agent = self.agents.get(index).unwrap_or_else(|e| panic!("{e}"));
        let mut spec = agent.spec.clone();
        edit(&mut spec);
        let (Some(socket), Some(state_dir)) = (
            agent.control_socket.as_deref(),
            agent
                .config_path
                .parent()
                .map(|d| d.join(format!("{}-state", spec.name))),
        ) else {
            self.fail("rewrite_config is for our agent only");
        };
        let text = spec
            .rcbsd_toml(socket, &state_dir)
            .unwrap_or_else(|e| self.fail(&e.to_string()));
        std::fs::write(&agent.config_path, text).unwrap_or_else(|e| self.fail(&e.to_string()));
    }

    /// Sends a control request to node `index`.
    pub fn request(&self, index: usize, req: Request) -> Response {
        let agent = self.agents.get(index).unwrap_or_else(|e| panic!("{e}"));
        agent
            .request(req, Duration::from_secs(5))
            .unwrap_or_else(|e| self.fail(&e.to_string()))
    }

    /// Node `index`'s status, or why it could not be read.
    pub fn try_status(&self, index: usize) -> Result<Status, String> {
        let agent = self.agents.get(index).map_err(|e| e.to_string())?;
        agent.status().map_err(|e| e.to_string())
    }

    /// Node `index`'s status; fails the test if unreadable.
    pub fn status(&self, index: usize) -> Status {
        self.try_status(index)
            .unwrap_or_else(|e| self.fail(&format!("status of node {index}: {e}")))
    }

    /// Nodes holding the VIP now.
    pub fn vip_holders(&self) -> Vec<usize> {
        watch::holders(self.topology.node_namespaces(), VIP)
            .unwrap_or_else(|e| self.fail(&e.to_string()))
    }

    /// Nodes whose agent reports state master now (unreachable agents are
    /// not masters).
    pub fn masters(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| matches!(self.try_status(i), Ok(s) if s.state == VrrpState::Master))
            .collect()
    }

    /// Waits until node `index` is the only master (by its status, for our
    /// agent) and the only VIP holder, failing with the logs after
    /// `timeout`.
    pub fn wait_master(&self, index: usize, timeout: Duration) {
        let by_status = matches!(self.agents.implementation(), Implementation::Rcbsd { .. });
        let ok = poll_until(timeout, || {
            self.vip_holders() == [index] && (!by_status || self.masters() == [index])
        });
        if !ok {
            self.fail(&format!(
                "after {timeout:?}: expected node {index} as the only master; VIP holders {:?}, masters {:?}",
                self.vip_holders(),
                if by_status { self.masters() } else { Vec::new() }
            ));
        }
    }

    /// Waits until `condition(self)` holds, failing with `what` and the logs.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Cluster) -> bool,
    ) {
        if !poll_until(timeout, || condition(self)) {
            self.fail(&format!("after {timeout:?}: {what}"));
        }
    }

    /// Starts pinging the VIP from the client namespace at 1 kHz.
    pub fn prober(&self) -> Prober {
        Prober::start(self.topology.client_ns(), VIP, 1000)
            .unwrap_or_else(|e| self.fail(&format!("cannot start the prober: {e}")))
    }

    /// Waits until the client gets an echo reply from the VIP to a request
    /// sent after now.
    pub fn wait_client_reaches_vip(&self, prober: &Prober, timeout: Duration) {
        let since = Instant::now();
        if prober
            .wait_first_reply_after(since, timeout, &rcbsd_lab::cancel::Cancel::never())
            .is_none()
        {
            self.fail(&format!(
                "after {timeout:?}: the client gets no reply from {VIP}"
            ));
        }
    }
}

/// The CBSD scenario (clusters built with [`ClusterBuilder::cbsd`]).
impl Cluster {
    /// Node `index`'s CBSD part and stand-in world.
    pub fn cbsd(&self, index: usize) -> (&CbsdSpec, &WorldPaths) {
        let agent = self.agents.get(index).unwrap_or_else(|e| panic!("{e}"));
        let cbsd = agent
            .spec
            .cbsd
            .as_ref()
            .unwrap_or_else(|| panic!("node {index} has no CBSD part"));
        let world = cbsd
            .world
            .as_ref()
            .unwrap_or_else(|| panic!("node {index}'s world was not prepared"));
        (cbsd, world)
    }

    /// Replaces node `index`'s stand-in fail/hang rules.
    pub fn set_rules(&self, index: usize, rules: serde_json::Value) {
        cbsd::world::set_rules(self.cbsd(index).1, &rules)
            .unwrap_or_else(|e| self.fail(&e.to_string()));
    }

    /// Node `index`'s stand-in state now.
    pub fn standin_state(&self, index: usize) -> NodeState {
        NodeState::read(self.cbsd(index).1)
    }

    /// The cluster-wide log of environment starts and stops.
    pub fn env_log(&self) -> Vec<EnvEvent> {
        cbsd::state::env_log(&self.cbsd(0).1.cluster_log)
    }

    /// Whether the nodes `live` are converged with `master`: see
    /// `lab::cbsd::state::check_converged`. `Err` says what is not so yet.
    pub fn converged(&self, live: &[usize], master: usize) -> Result<(), String> {
        cbsd::trial::converged(&self.topology, &self.agents, live, master)
            .unwrap_or_else(|e| self.fail(&e.to_string()))
    }

    /// Waits until [`Cluster::converged`] holds, failing with the last
    /// reason and the logs after `timeout`.
    pub fn wait_converged(&self, live: &[usize], master: usize, timeout: Duration) {
        let mut why = String::new();
        let ok = poll_until(timeout, || match self.converged(live, master) {
            Ok(()) => true,
            Err(e) => {
                why = e;
                false
            }
        });
        if !ok {
            self.fail(&format!(
                "after {timeout:?}: node {master} master of {live:?} with every runbook done: {why}"
            ));
        }
    }

    /// Node `index`'s JSON log events named `event`.
    pub fn events(&self, index: usize, event: &str) -> Vec<serde_json::Value> {
        let agent = self.agents.get(index).unwrap_or_else(|e| panic!("{e}"));
        agent
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v.get("event").and_then(|e| e.as_str()) == Some(event))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.agents.dump_logs());
        }
    }
}

/// IPv6 test addresses (issue 15): the virtual router's link-local address
/// (first in the advert, RFC 5798 §5.2.9) and a VIP from 2001:db8::/32.
pub const VIP6_LL: &str = "fe80::61/64";
/// The IPv6 VIP with its prefix, as `ip -6 addr show` prints it.
pub const VIP6: &str = "2001:db8::100/64";
/// The IPv6 VIP's address alone.
pub const VIP6_ADDRESS: &str = "2001:db8::100";

/// Runs `argv` in namespace `ns`; its stdout, or the error as text (the
/// callers look for what they expect in it).
pub fn run_in(ns: &str, argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
    cmd::run(&netns_exec_argv(ns, &argv)).unwrap_or_else(|e| format!("error: {e}"))
}

/// No DAD on `ns`'s eth0 (also when its carrier comes back after a cut),
/// and its kernel link-local address usable: the IPv6 advert source.
pub fn ipv6_ready(ns: &str) {
    for key in [
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
        "net.ipv6.conf.eth0.accept_dad=0",
    ] {
        run_in(ns, &["sysctl", "-q", "-w", key]);
    }
    let ready = poll_until(WAIT, || {
        let out = run_in(ns, &["ip", "-6", "addr", "show", "dev", "eth0"]);
        out.contains("fe80::") && !out.contains("tentative")
    });
    assert!(ready, "{ns}: no link-local address out of DAD");
}

/// Whether namespace `ns` holds the IPv6 VIP, usable (not tentative).
pub fn holds_vip6(ns: &str) -> bool {
    let out = run_in(ns, &["ip", "-6", "addr", "show", "dev", "eth0"]);
    out.lines()
        .any(|line| line.contains(VIP6) && !line.contains("tentative"))
}

/// Node `index`'s kernel link-local address (not the virtual one): its
/// IPv6 advert source and what followers report as the master.
pub fn link_local6(cluster: &Cluster, index: usize) -> std::net::Ipv6Addr {
    let virtual_ll: std::net::Ipv6Addr = "fe80::61".parse().expect("address");
    netns::in_netns(cluster.ns(index), move || {
        rcbsd_failover::net::iface::link_local_address("eth0", &[virtual_ll])
    })
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Node specs with the IPv6 VIPs instead of the IPv4 one.
pub fn ipv6_vips(spec: &mut NodeSpec) {
    spec.virtual_ips = vec![VIP6_LL.to_owned(), VIP6.to_owned()];
}

/// Makes every namespace of `cluster` IPv6-ready ([`ipv6_ready`]).
pub fn cluster_ipv6_ready(cluster: &Cluster) {
    for index in 0..cluster.len() {
        ipv6_ready(cluster.ns(index));
    }
    ipv6_ready(cluster.topology.client_ns());
}
