//! One implementation measured end to end: build a topology, start the
//! agents, watch the election, then cut the master's link `trials` times,
//! measuring what the client sees, and restore it each time.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::agents::{vip_holders, wait_single_holder, Agents, Implementation, NodeSpec};
use super::args::Settings;
use super::cancel::Cancel;
use super::netns::{self, Topology};
use super::ping::Prober;
use super::report::{AgentUsage, NodeRole, Run, Trial};
use super::watch::AddressWatch;
use super::{Family, LabError};

/// Upper bound for anything that should happen within a few
/// Master_Down_Intervals (RFC 5798 §6.1: 3 × interval + skew < 4 × interval).
fn patience(interval: Duration) -> Duration {
    interval * 12 + Duration::from_secs(5)
}

/// A master counts as stable once it has held the VIP alone this long.
fn stability(interval: Duration) -> Duration {
    (interval * 3).max(Duration::from_millis(300))
}

/// Longer than Linux's neighbour-cache lifetime (base_reachable_time 30 s,
/// randomised up to 1.5×, plus delay and probes).
const ARP_EXPIRY: Duration = Duration::from_secs(60);

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Measures `implementation` on a fresh `family` topology; tears it down
/// on return.
pub fn measure(
    implementation: Implementation,
    settings: &Settings,
    family: Family,
    cancel: &Cancel,
) -> Result<Run, LabError> {
    let label = implementation.label();
    let interval = settings.advert_interval;
    let topology = Topology::with_family(settings.nodes, family)?;
    eprintln!(
        "lab: {label}: topology {} ({} nodes + client, bridge in {})",
        topology.run_id(),
        settings.nodes,
        topology.switch_ns()
    );
    let specs: Vec<NodeSpec> = (0..settings.nodes)
        .map(|i| NodeSpec {
            // Our [vrrp] and keepalived's instance are IPv6 when their
            // first VIP is (keepalived: vrrp_parser.c), the same lists.
            virtual_ips: netns::virtual_ips(family),
            ..NodeSpec::lab(i, interval, true)
        })
        .collect();
    let started = Instant::now();
    // Declared after `topology`, so dropped (agents stopped) before it.
    let mut agents = Agents::launch(&topology, implementation, specs)?;
    let vip = netns::vip(family);
    let result = measure_with(&topology, &mut agents, settings, vip, started, cancel);
    agents.show_logs_if_failed(&result);
    result
}

fn measure_with(
    topology: &Topology,
    agents: &mut Agents,
    settings: &Settings,
    vip: IpAddr,
    started: Instant,
    cancel: &Cancel,
) -> Result<Run, LabError> {
    let label = agents.implementation().label().to_owned();
    let interval = settings.advert_interval;
    let name = |i: usize| netns::node_name(i);

    eprintln!("lab: {label}: agents started; waiting for the election…");
    let first_master = wait_single_holder(
        topology,
        vip,
        None,
        Duration::ZERO,
        patience(interval),
        cancel,
    );
    // An agent that died explains a timeout better than the timeout does.
    agents.check_running()?;
    let first_master = first_master?;
    let election = started.elapsed();
    let master = wait_single_holder(
        topology,
        vip,
        Some(highest_priority(agents)),
        stability(interval),
        patience(interval),
        cancel,
    )?;
    let roles = roles(agents, master);
    // The roles and figures are in the report; progress says only where
    // the run is, so nothing is printed twice.
    eprintln!(
        "lab: {label}: {} took the VIP after {:.0} ms; stable master {}",
        name(first_master),
        millis(election),
        name(master)
    );

    let prober = Prober::start(topology.client_ns(), vip, settings.rate_hz)?;
    let mut trials = Vec::new();
    for number in 1..=settings.trials {
        if cancel.is_cancelled() {
            return Err(LabError::Interrupted);
        }
        let progress = |what: &str| {
            eprintln!("lab: {label}: trial {number}/{}: {what}", settings.trials);
        };
        let trial = one_trial(
            topology, agents, &prober, interval, number, &progress, cancel,
        )?;
        trials.push(trial);
    }
    let usage = agents
        .iter()
        .zip(agents.usage())
        .map(|(agent, usage)| {
            let u = usage.unwrap_or_default();
            AgentUsage {
                node: agent.spec.name.clone(),
                rss_kib: u.rss_kib,
                peak_rss_kib: u.peak_rss_kib,
                cpu_seconds: u.cpu_seconds,
                processes: u.processes,
            }
        })
        .collect();
    let pings_sent = prober.requests();
    let pings_answered = prober.replies();
    prober.stop();
    Ok(Run {
        implementation: label,
        election_ms: millis(election),
        initial_master: name(master),
        roles,
        trials,
        outage_ms: None,
        vip_added_ms: None,
        heal_gap_ms: None,
        agents: usage,
        total_rss_kib: 0,
        total_cpu_seconds: 0.0,
        pings_sent,
        pings_answered,
    }
    .summarise())
}

/// The node every preempting cluster should elect.
fn highest_priority(agents: &Agents) -> usize {
    agents
        .iter()
        .enumerate()
        .max_by_key(|(_, a)| a.spec.priority)
        .map_or(0, |(i, _)| i)
}

fn roles(agents: &Agents, master: usize) -> Vec<NodeRole> {
    agents
        .iter()
        .enumerate()
        .map(|(i, agent)| NodeRole {
            node: agent.spec.name.clone(),
            priority: agent.spec.priority,
            // Our agent says its state; keepalived's is read off the VIP.
            role: match agent.status() {
                Ok(status) => status.state.to_string(),
                Err(_) if i == master => "master".to_owned(),
                Err(_) => "backup".to_owned(),
            },
        })
        .collect()
}

/// Cut the stable master's link, measure, restore, wait until settled.
fn one_trial(
    topology: &Topology,
    agents: &mut Agents,
    prober: &Prober,
    interval: Duration,
    number: u32,
    progress: &dyn Fn(&str),
    cancel: &Cancel,
) -> Result<Trial, LabError> {
    let vip = prober.target();
    // Every node runs with preempt on: the highest priority is the master
    // before each cut and again once the link is back (RFC 5798 §6.4.2).
    let expected = highest_priority(agents);
    let master = wait_single_holder(
        topology,
        vip,
        Some(expected),
        stability(interval),
        patience(interval),
        cancel,
    )?;
    // The client must reach the VIP before the cut, or the outage would
    // include an earlier one.
    prober
        .wait_first_reply_after(Instant::now(), patience(interval), cancel)
        .ok_or_else(|| interrupted_or(cancel, "the client to reach the VIP before the cut"))?;
    // The wait above ends a fixed time after the master's last transition,
    // i.e. at a fixed phase of its advert timer; cutting there would always
    // measure the same point of Master_Down_Interval. A random delay within
    // one interval samples the phase uniformly, as a real failure does.
    cancel.sleep(crate::rng::Rng::from_clock().below(interval))?;
    let others: Vec<usize> = (0..topology.node_count())
        .filter(|&i| i != master)
        .collect();
    let watch = AddressWatch::start(topology.node_namespaces(), &others, vip)?;

    progress(&format!(
        "cut {}'s link; waiting for takeover…",
        netns::node_name(master)
    ));
    let cut_started = Instant::now();
    topology.cut_link(master)?;
    let cut_done = Instant::now();
    // Requests sent before the link was surely down may still have been
    // answered by the old master: only later ones count.
    let reply = prober
        .wait_first_reply_after(cut_done, patience(interval), cancel)
        .ok_or_else(|| interrupted_or(cancel, "an echo reply from the VIP after the cut"))?;
    let (new_master, vip_added) = watch
        .first(patience(interval))
        .ok_or_else(|| interrupted_or(cancel, "the VIP on another node after the cut"))?;
    drop(watch);
    agents.check_running()?;

    progress(&format!(
        "{} took over; link restored, waiting for {} to take the VIP back…",
        netns::node_name(new_master),
        netns::node_name(expected)
    ));
    let restored = Instant::now();
    topology.restore_link(master)?;
    let settled_master = wait_single_holder(
        topology,
        vip,
        Some(expected),
        stability(interval),
        patience(interval),
        cancel,
    )?;
    // The client must reach the settled master too, or the gap is open-ended.
    // A master that never sends a gratuitous ARP leaves the client on the
    // wrong MAC until its neighbour entry expires (tens of seconds): that is
    // a result to report, not a reason to give up early.
    let after = prober
        .wait_first_reply_after(Instant::now(), patience(interval) + ARP_EXPIRY, cancel)
        .ok_or_else(|| interrupted_or(cancel, "the client to reach the VIP after the heal"))?;
    let heal_gap = prober.longest_gap(restored, after);
    prober.forget_before(restored);
    agents.check_running()?;
    // Nobody but the settled master may still hold the VIP.
    let holders = vip_holders(topology, vip)?;
    if holders != [settled_master] {
        return Err(LabError::Misbehaved(format!(
            "after trial {number}, VIP held by {holders:?}, expected only {settled_master}"
        )));
    }
    Ok(Trial {
        number,
        master: netns::node_name(master),
        new_master: netns::node_name(new_master),
        outage_ms: millis(reply.saturating_duration_since(cut_started)),
        vip_added_ms: millis(vip_added.saturating_duration_since(cut_started)),
        cut_command_ms: millis(cut_done.duration_since(cut_started)),
        heal_gap_ms: millis(heal_gap),
        master_after_heal: netns::node_name(settled_master),
    })
}

fn interrupted_or(cancel: &Cancel, what: &str) -> LabError {
    if cancel.is_cancelled() {
        LabError::Interrupted
    } else {
        LabError::Timeout(what.to_owned())
    }
}
