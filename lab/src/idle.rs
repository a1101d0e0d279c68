//! `lab --scenario idle`: a benchmark of what an agent costs while nothing
//! happens. The nodes elect a master, the lab waits until the VIP has sat
//! on one node for a while, then measures each agent's CPU time (the
//! scheduler's nanosecond account, [`procstat::precise`]) and its
//! context switches (each wake-up of a thread is one) over `--duration`.
//! With `--compare keepalived` keepalived runs the same, on a fresh
//! topology, in the same run, and the report gives the ratios.
//!
//! An agent that polls wakes many times a second even when the network is
//! quiet; one driven by events (adverts, timers it needs, the kernel's link
//! messages) wakes about as often as it sends or receives an advert.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::agents::{wait_single_holder, Agents, Implementation, NodeSpec};
use super::cancel::Cancel;
use super::netns::{self, Topology};
use super::procstat::{self, Precise};
use super::LabError;
use crate::args::Subject;
use crate::AgentCommand;

/// How long the VIP must sit on one node before the measurement starts:
/// the start-up (config, sockets, the first state change) is not idle.
const SETTLE_ADVERTS: u32 = 5;

/// What to run: from `rcbsd-lab` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Our agent (used when `subjects` holds rcbsd-failover).
    pub agent: AgentCommand,
    /// The implementations, in order; each gets a fresh topology.
    pub subjects: Vec<Subject>,
    pub nodes: usize,
    pub advert_interval: Duration,
    /// How long each implementation is measured.
    pub duration: Duration,
}

/// The benchmark's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdleRun {
    pub nodes: usize,
    pub advert_interval_ms: u64,
    pub duration_s: f64,
    pub runs: Vec<IdleSubject>,
    /// CPU of the first implementation over the second's (both nodes
    /// together), when two ran.
    pub cpu_ratio: Option<f64>,
    /// The same for context switches.
    pub switches_ratio: Option<f64>,
}

/// One implementation's measurement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdleSubject {
    pub implementation: &'static str,
    /// The measured window, as it really lasted.
    pub measured_s: f64,
    pub nodes: Vec<IdleNode>,
    /// All nodes together.
    pub cpu_ms: f64,
    /// All nodes together.
    pub switches: u64,
}

/// One node's cost over the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdleNode {
    pub node: String,
    /// Whether it held the VIP during the window.
    pub master: bool,
    pub cpu_ms: f64,
    pub switches: u64,
    pub rss_kib: u64,
}

/// Runs every implementation of the plan in turn; tears everything down
/// on return.
pub fn measure(plan: &Plan, cancel: &Cancel) -> Result<IdleRun, LabError> {
    let mut runs = Vec::new();
    for subject in &plan.subjects {
        let implementation = match subject {
            Subject::RcbsdFailover => Implementation::Rcbsd {
                agent: plan.agent.clone(),
            },
            Subject::Keepalived => Implementation::Keepalived,
        };
        runs.push(measure_one(plan, implementation, cancel)?);
    }
    let ratio = |f: fn(&IdleSubject) -> f64| match runs.as_slice() {
        [ours, theirs] if f(theirs) > 0.0 => Some(f(ours) / f(theirs)),
        _ => None,
    };
    Ok(IdleRun {
        nodes: plan.nodes,
        advert_interval_ms: u64::try_from(plan.advert_interval.as_millis()).unwrap_or(u64::MAX),
        duration_s: plan.duration.as_secs_f64(),
        cpu_ratio: ratio(|s| s.cpu_ms),
        switches_ratio: ratio(|s| s.switches as f64),
        runs,
    })
}

fn measure_one(
    plan: &Plan,
    implementation: Implementation,
    cancel: &Cancel,
) -> Result<IdleSubject, LabError> {
    let label = implementation.label();
    let topology = Topology::new(plan.nodes)?;
    eprintln!(
        "lab: idle: {label}: topology {} ({} nodes)",
        topology.run_id(),
        plan.nodes
    );
    let specs: Vec<NodeSpec> = (0..plan.nodes)
        .map(|i| NodeSpec::lab(i, plan.advert_interval, true))
        .collect();
    // Declared after `topology`, so dropped (agents stopped) before it.
    let mut agents = Agents::launch(&topology, implementation, specs)?;
    let result = measure_with(&topology, &mut agents, plan, label, cancel);
    agents.show_logs_if_failed(&result);
    result
}

fn measure_with(
    topology: &Topology,
    agents: &mut Agents,
    plan: &Plan,
    label: &'static str,
    cancel: &Cancel,
) -> Result<IdleSubject, LabError> {
    let interval = plan.advert_interval;
    let master = wait_single_holder(
        topology,
        netns::VIP,
        Some(0),
        interval * SETTLE_ADVERTS,
        interval * 12 + Duration::from_secs(10),
        cancel,
    )?;
    agents.check_running()?;
    eprintln!(
        "lab: idle: {label}: {} is master; measuring for {:.0} s",
        netns::node_name(master),
        plan.duration.as_secs_f64()
    );
    let before = snapshot(agents);
    let started = Instant::now();
    cancel.sleep(plan.duration)?;
    let after = snapshot(agents);
    let measured = started.elapsed();
    agents.check_running()?;
    // Whoever holds the VIP now must be the one who held it before: a
    // change of master is not idle.
    let holders = super::agents::vip_holders(topology, netns::VIP)?;
    if holders != [master] {
        return Err(LabError::Timeout(format!(
            "{label}: the VIP moved during the idle window (held by {holders:?})"
        )));
    }
    let usage = agents.usage();
    let nodes: Vec<IdleNode> = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| {
            let from = before.get(i).copied().flatten().unwrap_or_default();
            let to = after.get(i).copied().flatten().unwrap_or_default();
            IdleNode {
                node: agent.spec.name.clone(),
                master: i == master,
                cpu_ms: to.cpu_ns.saturating_sub(from.cpu_ns) as f64 / 1e6,
                switches: to.switches.saturating_sub(from.switches),
                rss_kib: usage.get(i).copied().flatten().map_or(0, |u| u.rss_kib),
            }
        })
        .collect();
    Ok(IdleSubject {
        implementation: label,
        measured_s: measured.as_secs_f64(),
        cpu_ms: nodes.iter().map(|n| n.cpu_ms).sum(),
        switches: nodes.iter().map(|n| n.switches).sum(),
        nodes,
    })
}

fn snapshot(agents: &Agents) -> Vec<Option<Precise>> {
    agents
        .iter()
        .map(|a| a.pid().and_then(procstat::precise))
        .collect()
}

impl IdleRun {
    /// The report as text.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "idle: {} nodes, adverts every {} ms, each implementation measured for {:.0} s after the election settled\n\n",
            self.nodes, self.advert_interval_ms, self.duration_s
        );
        out.push_str(&format!(
            "{:<16} {:>14} {:>16}   per node: CPU ms / wake-ups\n",
            "", "CPU (ms)", "wake-ups/s"
        ));
        for run in &self.runs {
            let per_node: Vec<String> = run
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "{}{} {:.1} / {}",
                        n.node,
                        if n.master { " (master)" } else { "" },
                        n.cpu_ms,
                        n.switches
                    )
                })
                .collect();
            out.push_str(&format!(
                "{:<16} {:>14.1} {:>16.1}   {}\n",
                run.implementation,
                run.cpu_ms,
                run.switches as f64 / run.measured_s.max(f64::EPSILON),
                per_node.join(", ")
            ));
        }
        if let (Some(cpu), Some(switches)) = (self.cpu_ratio, self.switches_ratio) {
            out.push_str(&format!(
                "\nratio {} / {}: CPU {cpu:.2}, wake-ups {switches:.2}\n",
                self.runs.first().map_or("", |r| r.implementation),
                self.runs.get(1).map_or("", |r| r.implementation),
            ));
        }
        out.push_str(
            "\nCPU: user + system time of every thread of the agent (and its children), from\n\
             /proc/PID/task/*/schedstat; wake-ups: context switches of those threads.\n",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(name: &'static str, cpu_ms: f64, switches: u64) -> IdleSubject {
        IdleSubject {
            implementation: name,
            measured_s: 60.0,
            nodes: vec![IdleNode {
                node: "n1".into(),
                master: true,
                cpu_ms,
                switches,
                rss_kib: 1000,
            }],
            cpu_ms,
            switches,
        }
    }

    #[test]
    fn text_shows_both_implementations_and_the_ratios() {
        let run = IdleRun {
            nodes: 2,
            advert_interval_ms: 1000,
            duration_s: 60.0,
            runs: vec![
                subject("rcbsd-failover", 12.0, 120),
                subject("keepalived", 10.0, 100),
            ],
            cpu_ratio: Some(1.2),
            switches_ratio: Some(1.2),
        };
        let text = run.to_text();
        assert!(text.contains("rcbsd-failover"), "{text}");
        assert!(text.contains("keepalived"), "{text}");
        assert!(text.contains("CPU 1.20, wake-ups 1.20"), "{text}");
        assert!(text.contains("n1 (master) 12.0 / 120"), "{text}");
    }
}
