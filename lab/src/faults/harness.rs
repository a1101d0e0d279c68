//! The fault table's cluster: three real agents in namespaces running the
//! CBSD runbooks against the stand-ins, with quorum and placement (n1 and
//! n2 HAST master candidates, n3 follower-only; `web<i>` placed on node i
//! then the next, `vm1` on n3 then n1), a fake watchdog per node, and the
//! holder log of who held the VIP, the storage, nfsd and each environment.
//!
//! A fake watchdog that runs out resets its node as a reboot would: every
//! process in the node's namespace is killed, the VIP goes, and the
//! stand-ins forget what a reboot clears (`lab-reboot`: mounts, services,
//! HAST role, imported pools, running jails); the agent starts again after
//! [`BOOT`]. Every wait goes through [`Harness::wait`], which carries out
//! resets and boots as they fall due.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::agent_command::AgentCommand;
use crate::agents::{Agents, Implementation, NodeSpec};
use crate::cancel::Cancel;
use crate::cbsd::state::NodeState;
use crate::cbsd::{self, CbsdSpec, WorldPaths};
use crate::fake_watchdog::FakeWatchdog;
use crate::holders::{HolderLog, Recorder};
use crate::netns::{self, netns_exec_argv, Topology, VIP};
use crate::{cmd, watch, LabError};
use rcbsd_failover::control::protocol::Status;
use rcbsd_failover::wire::VrrpState;

/// How long a node takes to boot after its watchdog reset it.
pub const BOOT: Duration = Duration::from_secs(3);
/// The fake watchdogs' countdown: the Python stand-ins make the start-up
/// probe of a restarted agent take a second or two, which a real node's
/// tools do in milliseconds; 5 s lets a promptly restarted agent pat again
/// (its reach, 6.2 s, fits the lab's 14 s fence margin).
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(5);
/// The rc.d script's restart delay (`daemon -R 1`).
pub const RC_RESTART_DELAY: Duration = Duration::from_secs(1);
/// Every placed environment (what the lab's CBSD nodes run).
pub const ENVIRONMENTS: [&str; 4] = ["vm1", "web1", "web2", "web3"];
/// Generous: a promote and two follows against the Python stand-ins on a
/// loaded two-core machine. Waits return as soon as they succeed.
pub const CONVERGE: Duration = Duration::from_secs(90);

/// A fault-table cluster. Field order matters: agents stop before the
/// namespaces go.
pub struct Harness {
    pub agents: Agents,
    pub topology: Topology,
    recorder: Recorder,
    watchdogs: Vec<Option<FakeWatchdog>>,
    /// Per node, when its watchdog reset it.
    resets: Vec<Vec<Instant>>,
    /// Per node, when it boots again after a reset.
    boots: Vec<Option<Instant>>,
    names: Vec<String>,
    cancel: Cancel,
    pub started: Instant,
}

impl Harness {
    /// Builds the topology, the worlds and the watchdogs, and writes the
    /// configurations (after `edit`); starts nothing.
    pub fn prepare(
        agent: &AgentCommand,
        cancel: &Cancel,
        edit: impl FnOnce(&Path, &mut [NodeSpec]),
    ) -> Result<Harness, LabError> {
        const NODES: usize = 3;
        let topology = Topology::new(NODES)?;
        let mut specs: Vec<NodeSpec> = (0..NODES)
            .map(|i| NodeSpec::lab(i, Duration::from_millis(100), true))
            .collect();
        for (index, spec) in specs.iter_mut().enumerate() {
            spec.cbsd = Some(CbsdSpec::lab(index, NODES));
        }
        let quorum = crate::cbsd::placed_quorum(&specs);
        let mut watchdogs = Vec::new();
        for spec in &mut specs {
            spec.quorum = Some(quorum.clone());
            let fifo = topology.run_dir().join(format!("{}-watchdog", spec.name));
            watchdogs.push(Some(FakeWatchdog::create(&fifo).map_err(|source| {
                LabError::Io {
                    what: format!("creating the fake watchdog {}", fifo.display()),
                    source,
                }
            })?));
            spec.watchdog = Some((fifo, WATCHDOG_TIMEOUT));
        }
        edit(topology.run_dir(), &mut specs);
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let agents = Agents::configure(
            &topology,
            Implementation::Rcbsd {
                agent: agent.clone(),
            },
            specs,
        )?;
        let recorder = Recorder::start(topology.node_namespaces(), &names, VIP)?;
        Ok(Harness {
            agents,
            topology,
            recorder,
            watchdogs,
            resets: vec![Vec::new(); NODES],
            boots: vec![None; NODES],
            names,
            cancel: cancel.clone(),
            started: Instant::now(),
        })
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or("?", String::as_str)
    }

    pub fn start(&mut self, index: usize) -> Result<(), LabError> {
        self.agents.start(index)
    }

    pub fn start_all(&mut self) -> Result<(), LabError> {
        for i in 0..self.len() {
            self.start(i)?;
        }
        self.started = Instant::now();
        Ok(())
    }

    /// Stops agent `index` with `signal` (SIGKILL: a crash).
    pub fn stop(&mut self, index: usize, signal: Signal) -> Result<(), LabError> {
        self.agents.stop(index, signal, Duration::from_secs(5))
    }

    /// Sends `signal` without waiting (SIGSTOP, SIGCONT, SIGHUP).
    pub fn signal(&self, index: usize, signal: Signal) -> Result<(), LabError> {
        self.agents.signal(index, signal)
    }

    /// Node `index`'s stand-in world.
    pub fn world(&self, index: usize) -> Result<&WorldPaths, LabError> {
        let agent = self.agents.get(index)?;
        agent
            .spec
            .cbsd
            .as_ref()
            .and_then(|c| c.world.as_ref())
            .ok_or(LabError::NoSuchNode(index))
    }

    /// Node `index`'s `state_dir`.
    pub fn state_dir(&self, index: usize) -> Result<PathBuf, LabError> {
        let agent = self.agents.get(index)?;
        Ok(agent
            .config_path
            .with_file_name(format!("{}-state", agent.spec.name)))
    }

    /// Replaces node `index`'s stand-in fail/hang rules.
    pub fn set_rules(&self, index: usize, rules: &serde_json::Value) -> Result<(), LabError> {
        cbsd::world::set_rules(self.world(index)?, rules)
    }

    /// Runs stand-in `tool` of node `index` with `args` in its namespace,
    /// as its operator would (or, for `lab-kill`, as its kernel would);
    /// what it printed.
    pub fn run_tool(&self, index: usize, tool: &str, args: &[&str]) -> Result<String, LabError> {
        let ns = self.topology.node_ns(index)?;
        let mut argv = vec![self
            .world(index)?
            .tools
            .join(tool)
            .to_string_lossy()
            .into_owned()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        cmd::run(&netns_exec_argv(ns, &argv))
    }

    /// Daemon `name` of node `index` dies behind its agent's back
    /// (`lab-kill`, logged as a call for the holder log).
    pub fn kill_service(&self, index: usize, name: &str) -> Result<(), LabError> {
        cbsd::world::kill_service(self.topology.node_ns(index)?, self.world(index)?, name)
    }

    /// Rewrites node `index`'s configuration (applied at its next start).
    pub fn rewrite_config(
        &self,
        index: usize,
        edit: impl FnOnce(&mut NodeSpec),
    ) -> Result<(), LabError> {
        let agent = self.agents.get(index)?;
        let mut spec = agent.spec.clone();
        edit(&mut spec);
        let socket = agent
            .control_socket
            .clone()
            .ok_or(LabError::NoSuchNode(index))?;
        let text = spec.rcbsd_toml(&socket, &self.state_dir(index)?)?;
        std::fs::write(&agent.config_path, text).map_err(|source| LabError::Io {
            what: format!("writing {}", agent.config_path.display()),
            source,
        })
    }

    // ----- the fake watchdogs -----------------------------------------------

    /// Carries out what is due: a reset for every expired watchdog, a boot
    /// for every reset node whose boot time has come.
    pub fn poll(&mut self) -> Result<(), LabError> {
        for index in 0..self.len() {
            let expired = self
                .watchdogs
                .get(index)
                .and_then(Option::as_ref)
                .is_some_and(FakeWatchdog::expired);
            if expired {
                self.reset(index)?;
            }
            if self.boots[index].is_some_and(|at| at <= Instant::now()) {
                self.boots[index] = None;
                self.start(index)?;
            }
        }
        Ok(())
    }

    /// What a reset does to node `index` (see the module documentation).
    fn reset(&mut self, index: usize) -> Result<(), LabError> {
        self.resets[index].push(Instant::now());
        let ns = self.topology.node_ns(index)?.to_owned();
        // Every process of the machine: the agent, and any tool it ran
        // (they run in process groups of their own).
        self.agents
            .stop(index, Signal::SIGKILL, Duration::from_secs(2))?;
        if let Ok(pids) = cmd::run(&cmd::argv(&["ip", "netns", "pids", &ns])) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let vip = format!("{VIP}/{}", netns::PREFIX_LEN);
        let _ = cmd::run(&cmd::argv(&[
            "ip", "-n", &ns, "addr", "del", &vip, "dev", "eth0",
        ]));
        let reboot = self.world(index)?.tools.join(cbsd::world::REBOOT_TOOL);
        cmd::run(&netns_exec_argv(
            &ns,
            &[reboot.to_string_lossy().into_owned()],
        ))?;
        if let Some(watchdog) = self.watchdogs.get(index).and_then(Option::as_ref) {
            watchdog.reboot();
        }
        self.boots[index] = Some(Instant::now() + BOOT);
        Ok(())
    }

    /// Node `index` loses its power and stays off: what a reset does
    /// (every process killed, the VIP gone, the world's volatile state
    /// cleared), without the boot.
    pub fn power_off(&mut self, index: usize) -> Result<(), LabError> {
        self.reset(index)?;
        self.resets[index].pop();
        self.boots[index] = None;
        Ok(())
    }

    /// When node `index`'s watchdog reset it.
    pub fn resets(&self, index: usize) -> &[Instant] {
        self.resets.get(index).map_or(&[], Vec::as_slice)
    }

    // ----- waiting ------------------------------------------------------------

    /// Polls `condition` (and the watchdogs) every 10 ms until it holds;
    /// how long it took, or an error naming `what`.
    pub fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Harness) -> bool,
    ) -> Result<Duration, String> {
        let since = Instant::now();
        loop {
            self.poll().map_err(|e| e.to_string())?;
            if condition(self) {
                return Ok(since.elapsed());
            }
            if self.cancel.is_cancelled() {
                return Err("interrupted".into());
            }
            if since.elapsed() >= timeout {
                return Err(format!("after {timeout:?}: {what}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lets `length` pass while resets and boots are carried out.
    pub fn pass(&mut self, length: Duration) -> Result<(), String> {
        let until = Instant::now() + length;
        self.wait("time passing", length + Duration::from_secs(1), |_| {
            Instant::now() >= until
        })
        .map(|_| ())
    }

    /// Waits until one node is the only master and every environment runs
    /// exactly once; returns that master.
    pub fn wait_settled(&mut self, what: &str) -> Result<usize, String> {
        let mut master = None;
        self.wait(what, CONVERGE, |h| {
            master = h.sole_master();
            master.is_some() && h.placed_once()
        })?;
        master.ok_or_else(|| "settled without a master".to_owned())
    }

    // ----- what holds what -------------------------------------------------

    /// Nodes holding the VIP now.
    pub fn vip_holders(&self) -> Vec<usize> {
        watch::holders(self.topology.node_namespaces(), VIP).unwrap_or_default()
    }

    pub fn status(&self, index: usize) -> Result<Status, LabError> {
        self.agents.get(index)?.status()
    }

    /// Nodes whose agent reports state master now.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| matches!(self.status(i), Ok(s) if s.state == VrrpState::Master))
            .collect()
    }

    /// Node `index`'s stand-in state now.
    pub fn standin(&self, index: usize) -> NodeState {
        self.world(index).map(NodeState::read).unwrap_or_default()
    }

    /// Where each environment runs now, by the stand-ins' own state.
    pub fn running(&self) -> BTreeMap<String, Vec<usize>> {
        let mut at: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in 0..self.len() {
            for env in self.standin(i).running_set() {
                at.entry(env).or_default().push(i);
            }
        }
        at
    }

    /// Every environment runs on exactly one node.
    pub fn placed_once(&self) -> bool {
        let at = self.running();
        ENVIRONMENTS
            .iter()
            .all(|env| at.get(*env).is_some_and(|nodes| nodes.len() == 1))
    }

    /// `master` alone holds the VIP, reports master, and alone holds the
    /// storage and runs nfsd.
    pub fn is_sole_master(&self, master: usize) -> bool {
        if self.vip_holders() != [master] || self.masters() != [master] {
            return false;
        }
        (0..self.len()).all(|i| {
            let s = self.standin(i);
            (s.hast_primary() && s.runs_nfsd()) == (i == master)
                && (i == master || (!s.hast_primary() && !s.runs_nfsd()))
        })
    }

    /// Some node is the sole master; which.
    pub fn sole_master(&self) -> Option<usize> {
        match self.vip_holders().as_slice() {
            [only] if self.is_sole_master(*only) => Some(*only),
            _ => None,
        }
    }

    /// Node `index` holds nothing: no VIP, storage, nfsd or environment.
    pub fn holds_nothing(&self, index: usize) -> bool {
        let s = self.standin(index);
        !self.vip_holders().contains(&index)
            && !s.hast_primary()
            && !s.runs_nfsd()
            && s.running.is_empty()
    }

    /// Node `index`'s JSON log events named `event`.
    pub fn events(&self, index: usize, event: &str) -> Vec<serde_json::Value> {
        let Ok(agent) = self.agents.get(index) else {
            return Vec::new();
        };
        agent
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v.get("event").and_then(|e| e.as_str()) == Some(event))
            .collect()
    }

    /// Node `index`'s events named `event` whose `field` is `value`.
    pub fn events_where(
        &self,
        index: usize,
        event: &str,
        field: &str,
        value: &str,
    ) -> Vec<serde_json::Value> {
        self.events(index, event)
            .into_iter()
            .filter(|e| e.get(field).and_then(|v| v.as_str()) == Some(value))
            .collect()
    }

    /// Every tool call node `index`'s stand-ins logged so far, as argv
    /// (the tool's name first).
    pub fn calls(&self, index: usize) -> Vec<Vec<String>> {
        let Ok(world) = self.world(index) else {
            return Vec::new();
        };
        std::fs::read_to_string(&world.calls)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|call| {
                call.get("argv")?
                    .as_array()?
                    .iter()
                    .map(|a| a.as_str().map(str::to_owned))
                    .collect()
            })
            .collect()
    }

    /// `state_change` events of every node so far.
    pub fn state_changes(&self) -> usize {
        (0..self.len())
            .map(|i| self.events(i, "state_change").len())
            .sum()
    }

    /// The holder log so far.
    pub fn holder_log(&self) -> HolderLog {
        let worlds: Vec<&WorldPaths> = (0..self.len()).filter_map(|i| self.world(i).ok()).collect();
        self.recorder.log(&self.names, &worlds)
    }

    /// Why the holder log shows two holders at once, if it does.
    pub fn overlap(&self) -> Option<String> {
        let log = self.holder_log();
        let overlaps = log.overlaps();
        if overlaps.is_empty() {
            return None;
        }
        let list: Vec<String> = overlaps.iter().map(ToString::to_string).collect();
        Some(format!(
            "two holders at once:\n  {}\n{}",
            list.join("\n  "),
            log.render(self.recorder.origin)
        ))
    }

    /// The longest gap between two VIP samples, in milliseconds.
    pub fn max_sampling_gap_ms(&self) -> f64 {
        self.recorder.max_sampling_gap() * 1000.0
    }

    /// One line per node: role, quorum, VIP, storage, environments.
    pub fn view(&self) -> String {
        let vip = self.vip_holders();
        let mut out = String::new();
        for i in 0..self.len() {
            let status = self.status(i).map_or_else(
                |e| format!("unreachable ({e})"),
                |s| format!("{:?} quorum={:?}", s.state, s.cluster.map(|c| c.quorum)),
            );
            let st = self.standin(i);
            out.push_str(&format!(
                "\n  {}: {status} vip={} hast_primary={} nfsd={} running={:?} resets={}",
                self.name(i),
                vip.contains(&i),
                st.hast_primary(),
                st.runs_nfsd(),
                st.running_set(),
                self.resets(i).len()
            ));
        }
        out
    }

    /// Every agent's log, for a failure report.
    pub fn logs(&self) -> String {
        self.agents.dump_logs()
    }
}
