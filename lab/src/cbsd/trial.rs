//! `rcbsd-lab --scenario cbsd`: a CBSD cluster of real agents
//! running the full runbooks against the stand-ins. Each trial cuts the
//! master's link and times, from the cut: exports and nfsd up on the new
//! master, the VIP on it, every follower remounted, every environment
//! running again; then reads the agents' JSON logs to split the time into
//! external commands, waits and the agent's own overhead.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::pause::PauseProbe;
use super::report::{Breakdown, CbsdRun, CbsdTrial, IoPause, Restart};
use super::state::{self, check_converged, exports_everything, NodeState, NodeView};
use super::{CbsdSpec, FollowMode, WorldPaths};
use crate::agent_command::AgentCommand;
use crate::agents::{format_duration, vip_holders, Agents, Implementation, NodeSpec};
use crate::args::Settings;
use crate::cancel::Cancel;
use crate::netns::{self, Topology};
use crate::watch::AddressWatch;
use crate::LabError;

/// How long a failover or a heal may take before the trial gives up: the
/// runbooks retry for seconds with the stand-ins' timings.
const PATIENCE: Duration = Duration::from_secs(90);
/// Polling period of the end-state and stage checks.
const POLL: Duration = Duration::from_millis(5);

/// Seconds since the epoch, as the stand-ins and the JSON logs record time.
pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Measures the CBSD scenario with our agent `exe`; tears down on return.
/// `cluster`: the nodes run `[cluster]` (quorum, leases, placement), as
/// ride-through needs (its followers learn from the new master's
/// heartbeat that it serves); the remount mode of `--compare-follow`
/// runs it too, so that both modes measure the same cluster.
pub fn measure(
    agent: AgentCommand,
    settings: &Settings,
    follow: FollowMode,
    cluster: bool,
    cancel: &Cancel,
) -> Result<CbsdRun, LabError> {
    let topology = Topology::new(settings.nodes)?;
    eprintln!(
        "lab: cbsd: topology {} ({} nodes + client), stand-in worlds in {}",
        topology.run_id(),
        settings.nodes,
        super::world::cluster_dir(topology.run_dir()).display()
    );
    let specs: Vec<NodeSpec> = (0..settings.nodes)
        .map(|i| {
            let mut spec = NodeSpec::lab(i, settings.advert_interval, true);
            let mut cbsd = CbsdSpec::lab(i, settings.nodes);
            cbsd.follow = follow;
            spec.cbsd = Some(cbsd);
            spec
        })
        .collect();
    let mut specs = specs;
    if cluster || follow == FollowMode::RideThrough {
        let quorum = super::placed_quorum(&specs);
        for spec in &mut specs {
            spec.quorum = Some(quorum.clone());
        }
    }
    let mut agents = Agents::launch(&topology, Implementation::Rcbsd { agent }, specs)?;
    let result = measure_with(&topology, &mut agents, settings, follow, cancel);
    agents.show_logs_if_failed(&result);
    result
}

fn cbsd_of(agents: &Agents, index: usize) -> Result<(&CbsdSpec, &WorldPaths), LabError> {
    let agent = agents.get(index)?;
    let cbsd = agent
        .spec
        .cbsd
        .as_ref()
        .ok_or_else(|| LabError::Config(format!("{} has no CBSD part", agent.spec.name)))?;
    let world = cbsd
        .world
        .as_ref()
        .ok_or_else(|| LabError::Config(format!("{} has no world", agent.spec.name)))?;
    Ok((cbsd, world))
}

/// Whether the cluster restricted to `live` is converged with `master`.
pub fn converged(
    topology: &Topology,
    agents: &Agents,
    live: &[usize],
    master: usize,
) -> Result<Result<(), String>, LabError> {
    let holders = vip_holders(topology, netns::VIP)?;
    let mut views = Vec::new();
    for &i in live {
        let (cbsd, world) = cbsd_of(agents, i)?;
        views.push(NodeView {
            name: &agents.get(i)?.spec.name,
            cbsd,
            world,
            holds_vip: holders.contains(&i),
        });
    }
    let master_name = netns::node_name(master);
    // With [cluster] the environments are placed: each runs once among
    // the live nodes, a lost node's adopted elsewhere.
    let mut placed = BTreeSet::new();
    let mut clustered = false;
    for i in 0..agents.len() {
        let agent = agents.get(i)?;
        clustered |= agent.spec.quorum.is_some();
        if let Some(cbsd) = &agent.spec.cbsd {
            placed.extend(cbsd.environments());
        }
    }
    Ok(check_converged(
        &views,
        &master_name,
        netns::VIP,
        clustered.then_some(&placed),
    ))
}

fn wait_converged(
    topology: &Topology,
    agents: &mut Agents,
    live: &[usize],
    master: usize,
    cancel: &Cancel,
) -> Result<(), LabError> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if cancel.is_cancelled() {
            return Err(LabError::Interrupted);
        }
        let why = match converged(topology, agents, live, master)? {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        agents.check_running()?;
        if Instant::now() >= deadline {
            return Err(LabError::Timeout(format!(
                "{} master of {live:?} with every runbook done: {why}",
                netns::node_name(master)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn measure_with(
    topology: &Topology,
    agents: &mut Agents,
    settings: &Settings,
    follow: FollowMode,
    cancel: &Cancel,
) -> Result<CbsdRun, LabError> {
    let all: Vec<usize> = (0..topology.node_count()).collect();
    let started = Instant::now();
    wait_converged(topology, agents, &all, 0, cancel)?;
    eprintln!(
        "lab: cbsd: n1 master, every node mounted and running its environments after {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let mut trials = Vec::new();
    for number in 1..=settings.trials {
        let trial = one_trial(topology, agents, number, cancel)?;
        eprintln!(
            "lab: cbsd: trial {number}/{}: cut {} -> {}: nfsd {:.0} ms, VIP {:.0} ms, environments {:.0} ms",
            settings.trials, trial.master, trial.new_master, trial.nfs_ms, trial.vip_ms, trial.environments_ms
        );
        trials.push(trial);
        topology.restore_link(0)?;
        wait_converged(topology, agents, &all, 0, cancel)?;
        let doubles = state::double_runs(&state::env_log(&cbsd_of(agents, 0)?.1.cluster_log));
        if !doubles.is_empty() {
            return Err(LabError::Misbehaved(format!(
                "environments ran on two nodes at once: {doubles:?}"
            )));
        }
    }
    let t = &cbsd_of(agents, 0)?.0.timings.runbook;
    let timings = vec![
        ("mount_timeout".to_owned(), format_duration(t.mount_timeout)),
        ("mount_attempts".to_owned(), t.mount_attempts.to_string()),
        ("retry_backoff".to_owned(), format_duration(t.retry_backoff)),
        (
            "retry_backoff_max".to_owned(),
            format_duration(t.retry_backoff_max),
        ),
    ];
    Ok(CbsdRun::new(*settings, follow, timings, trials))
}

fn one_trial(
    topology: &Topology,
    agents: &mut Agents,
    number: u32,
    cancel: &Cancel,
) -> Result<CbsdTrial, LabError> {
    let master = 0;
    let others: Vec<usize> = (1..topology.node_count()).collect();
    let watch = AddressWatch::start(topology.node_namespaces(), &others, netns::VIP)?;
    let mut probed = Vec::new();
    for &i in &others {
        probed.push((
            i,
            topology.node_ns(i)?.to_owned(),
            cbsd_of(agents, i)?.1.clone(),
        ));
    }
    let cut_wall = now_epoch();
    let cut = Instant::now();
    topology.cut_link(master)?;
    let follow = cbsd_of(agents, master)?.0.follow;
    let pauses = PauseProbe::start(probed, &netns::node_name(master), follow, cut_wall);
    let deadline = cut + PATIENCE;
    let mut vip: Option<(usize, f64)> = None;
    let mut nfs: Option<f64> = None;
    loop {
        if cancel.is_cancelled() {
            return Err(LabError::Interrupted);
        }
        if vip.is_none() {
            vip = watch
                .first(Duration::ZERO)
                .map(|(i, at)| (i, millis(at.saturating_duration_since(cut))));
        }
        if nfs.is_none() {
            for &i in &others {
                let (_, world) = cbsd_of(agents, i)?;
                if NodeState::read(world).runs_nfsd() && exports_everything(world) {
                    nfs = Some(millis(cut.elapsed()));
                }
            }
        }
        if let (Some((new_master, _)), Some(_)) = (vip, nfs) {
            if converged(topology, agents, &others, new_master)?.is_ok() {
                break;
            }
        }
        agents.check_running()?;
        if Instant::now() >= deadline {
            return Err(LabError::Timeout(format!(
                "trial {number}: the cluster to converge after the cut (VIP {vip:?}, nfsd {nfs:?})"
            )));
        }
        std::thread::sleep(POLL);
    }
    drop(watch);
    // A follower whose mounts are back answers within a probe or two.
    let answers = pauses.finish(Duration::from_secs(5));
    let (Some((new_master, vip_ms)), Some(nfs_ms)) = (vip, nfs) else {
        return Err(LabError::Misbehaved(
            "converged without a new master".into(),
        ));
    };
    let mut trial = timeline(
        agents, &others, new_master, cut_wall, number, vip_ms, nfs_ms,
    )?;
    trial.io_pause = answers
        .into_iter()
        .filter(|(i, _)| *i != new_master)
        .map(|(i, at)| IoPause {
            node: netns::node_name(i),
            ms: at.map(|at| (at - cut_wall) * 1000.0),
        })
        .collect();
    let lost_master = cbsd_of(agents, master)?.0.environments();
    trial.restarted = restarts(
        &state::env_log(&cbsd_of(agents, new_master)?.1.cluster_log),
        cut_wall,
        &lost_master,
        &netns::node_name(new_master),
    );
    for &i in others.iter().filter(|&&i| i != new_master) {
        let (_, world) = cbsd_of(agents, i)?;
        if state::lost_nfs_state_since(world, cut_wall) {
            trial.state_lost.push(netns::node_name(i));
        }
    }
    Ok(trial)
}

/// The environments (re)started after the cut, from the cluster log: each
/// start, with whether the environment ran on the lost master (adopted)
/// or on a follower (restarted in place: what ride-through avoids).
pub fn restarts(
    log: &[state::EnvEvent],
    cut_wall: f64,
    lost_master: &[String],
    new_master: &str,
) -> Vec<Restart> {
    log.iter()
        .filter(|e| e.t >= cut_wall && e.event == "start")
        .map(|e| Restart {
            node: e.node.clone(),
            env: e.env.clone(),
            of_lost_master: lost_master.contains(&e.env),
            on_new_master: e.node == new_master && !lost_master.contains(&e.env),
            stopped_first: log
                .iter()
                .any(|s| s.t >= cut_wall && s.t <= e.t && s.event == "stop" && s.env == e.env),
        })
        .collect()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The remount and environment stages from the stand-ins' own timestamps,
/// and the time split from the agents' logs.
fn timeline(
    agents: &Agents,
    live: &[usize],
    new_master: usize,
    cut_wall: f64,
    number: u32,
    vip_ms: f64,
    nfs_ms: f64,
) -> Result<CbsdTrial, LabError> {
    let vip = netns::VIP;
    let mut remounted: Option<f64> = None;
    for &i in live.iter().filter(|&&i| i != new_master) {
        let (_, world) = cbsd_of(agents, i)?;
        let last = NodeState::read(world)
            .nfs_mounts_from(world, vip)
            .into_iter()
            .map(|(_, t)| t)
            .fold(cut_wall, f64::max);
        remounted = Some(remounted.map_or(last, |r: f64| r.max(last)));
    }
    // The last (re)start of each live node's environments after the cut.
    let log = state::env_log(&cbsd_of(agents, new_master)?.1.cluster_log);
    let mut last_start: Option<(usize, f64)> = None;
    for &i in live {
        let (cbsd, _) = cbsd_of(agents, i)?;
        let name = netns::node_name(i);
        for env in cbsd.environments() {
            let t = log
                .iter()
                .filter(|e| e.node == name && e.env == env && e.event == "start" && e.t >= cut_wall)
                .map(|e| e.t)
                .fold(f64::NAN, f64::max);
            if t.is_finite() && last_start.is_none_or(|(_, l)| t > l) {
                last_start = Some((i, t));
            }
        }
    }
    let (critical, end) = last_start.ok_or_else(|| {
        LabError::Misbehaved(format!(
            "trial {number}: no environment restarted after the cut"
        ))
    })?;
    let events = |i: usize| -> Result<Vec<LogEvent>, LabError> {
        Ok(agents
            .get(i)?
            .log()
            .lines()
            .filter_map(LogEvent::parse)
            .collect())
    };
    let master_events = events(new_master)?;
    let promote_start = master_events
        .iter()
        .find(|e| e.t >= cut_wall && e.event == "runbook_started" && e.runbook == "promote")
        .map(|e| e.t);
    let promote_end = master_events
        .iter()
        .find(|e| {
            promote_start.is_some_and(|s| e.t >= s)
                && e.event == "runbook_finished"
                && e.runbook == "promote"
        })
        .map(|e| e.t);
    let promote_commands: f64 = master_events
        .iter()
        .filter(|e| {
            e.event == "runbook_step"
                && e.runbook == "promote"
                && promote_start.is_some_and(|s| e.t >= s)
                && promote_end.is_some_and(|f| e.t <= f)
                && !e.argv.is_empty()
        })
        .map(|e| e.duration_ms)
        .sum();
    let ms = |from: f64, to: f64| (to - from) * 1000.0;
    Ok(CbsdTrial {
        number,
        master: netns::node_name(0),
        new_master: netns::node_name(new_master),
        vip_ms,
        nfs_ms,
        remounted_ms: remounted.map(|r| ms(cut_wall, r)),
        environments_ms: ms(cut_wall, end),
        detection_ms: promote_start.map_or(f64::NAN, |s| ms(cut_wall, s)),
        promote_ms: promote_start
            .zip(promote_end)
            .map_or(f64::NAN, |(s, f)| ms(s, f)),
        promote_commands_ms: promote_commands,
        critical: breakdown(
            &netns::node_name(critical),
            &events(critical)?,
            cut_wall,
            end,
        ),
        restarted: Vec::new(),
        io_pause: Vec::new(),
        state_lost: Vec::new(),
    })
}

/// One line of an agent's JSON log, the fields the breakdown needs.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEvent {
    /// Seconds since the epoch.
    pub t: f64,
    pub event: String,
    pub runbook: String,
    pub step: String,
    pub argv: String,
    pub duration_ms: f64,
    pub outcome: String,
    pub attempt: u64,
}

impl LogEvent {
    pub fn parse(line: &str) -> Option<LogEvent> {
        let v: Value = serde_json::from_str(line).ok()?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Some(LogEvent {
            t: parse_timestamp(v.get("timestamp")?.as_str()?)?,
            event: text("event"),
            runbook: text("runbook"),
            step: text("step"),
            argv: text("argv"),
            duration_ms: v.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0),
            outcome: text("outcome"),
            attempt: v.get("attempt").and_then(Value::as_u64).unwrap_or(0),
        })
    }
}

/// How node `node` spent `[from, to]` (epoch seconds), from its events.
pub fn breakdown(node: &str, events: &[LogEvent], from: f64, to: f64) -> Breakdown {
    let clip = |a: f64, b: f64| (b.min(to) - a.max(from)).max(0.0) * 1000.0;
    let mut commands = 0.0;
    let mut actions = 0.0;
    let mut backoff = 0.0;
    let mut inside = 0.0;
    let mut previous_step: Option<&LogEvent> = None;
    let mut runbook_start: Option<f64> = None;
    for e in events.iter().filter(|e| e.t >= from) {
        match e.event.as_str() {
            "runbook_started" => runbook_start = Some(e.t),
            "runbook_finished" | "runbook_failed" | "runbook_cancelled" => {
                inside += clip(runbook_start.unwrap_or(from), e.t);
                runbook_start = None;
            }
            "runbook_step" => {
                let start = e.t - e.duration_ms / 1000.0;
                let span = clip(start, e.t);
                match e.outcome.as_str() {
                    "skipped" => {}
                    _ if e.argv.is_empty() => actions += span,
                    _ => commands += span,
                }
                // A retry follows its backoff: the gap after the failed
                // attempt of the same step.
                if let Some(p) = previous_step {
                    if p.step == e.step
                        && p.runbook == e.runbook
                        && e.attempt == p.attempt + 1
                        && matches!(p.outcome.as_str(), "failed" | "timeout")
                    {
                        backoff += clip(p.t, start);
                    }
                }
                previous_step = Some(e);
            }
            _ => {}
        }
    }
    if let Some(start) = runbook_start {
        inside += clip(start, to);
    }
    let total = (to - from).max(0.0) * 1000.0;
    let waits = (total - inside).max(0.0) + backoff;
    Breakdown {
        node: node.to_owned(),
        total_ms: total,
        commands_ms: commands,
        waits_ms: waits,
        agent_ms: (total - commands - waits).max(0.0),
        agent_actions_ms: actions,
    }
}

/// `2025-01-02T03:04:05.678901Z` (tracing-subscriber's UTC RFC 3339) as
/// seconds since the epoch.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: f64 = t.next()?.parse().ok()?;
    // Days from civil (proleptic Gregorian), H. Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60) as f64 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_epoch_seconds() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(1.5));
        let t = parse_timestamp("2024-02-29T12:00:00.000001Z").expect("valid");
        assert!((t - 1_709_208_000.000_001).abs() < 1e-6, "{t}");
        assert_eq!(parse_timestamp("2024-02-29 12:00:00"), None);
    }

    fn step(t: f64, step: &str, argv: &str, ms: f64, outcome: &str, attempt: u64) -> LogEvent {
        LogEvent {
            t,
            event: "runbook_step".into(),
            runbook: "follow".into(),
            step: step.into(),
            argv: argv.into(),
            duration_ms: ms,
            outcome: outcome.into(),
            attempt,
        }
    }

    #[test]
    fn restarts_tell_adopted_from_restarted_in_place() {
        let e = |node: &str, env: &str, event: &str, t: f64| state::EnvEvent {
            node: node.into(),
            env: env.into(),
            event: event.into(),
            t,
        };
        let log = [
            e("n3", "web3", "start", 1.0),
            // The cut at 5.0: n3 restarts web3 in place (remount), n2
            // adopts the lost master's web1.
            e("n3", "web3", "stop", 6.0),
            e("n2", "web1", "start", 7.0),
            e("n3", "web3", "start", 8.0),
            e("n2", "web2", "start", 9.0),
        ];
        let restarted = restarts(&log, 5.0, &["web1".to_owned()], "n2");
        assert_eq!(restarted.len(), 3, "{restarted:?}");
        assert!(restarted[0].of_lost_master && !restarted[0].stopped_first);
        assert!(!restarted[0].on_new_master);
        assert!(!restarted[1].of_lost_master && restarted[1].stopped_first);
        assert!(!restarted[1].on_new_master);
        assert!(restarted[2].on_new_master);
    }

    #[test]
    fn breakdown_adds_up() {
        let mark = |t: f64, event: &str| LogEvent {
            t,
            event: event.into(),
            runbook: "follow".into(),
            step: String::new(),
            argv: String::new(),
            duration_ms: 0.0,
            outcome: String::new(),
            attempt: 0,
        };
        // From 10.0: 0.5 s outside, then a follow: a failed mount (0.1 s),
        // 0.2 s backoff, the mount again (0.1 s), a builtin (0.05 s), done
        // at 11.0.
        let events = [
            mark(10.5, "runbook_started"),
            step(10.6, "mount", "mount_nfs", 100.0, "failed", 1),
            step(10.9, "mount", "mount_nfs", 100.0, "ok", 2),
            step(10.95, "verify", "", 50.0, "ok", 1),
            mark(11.0, "runbook_finished"),
        ];
        let b = breakdown("n3", &events, 10.0, 11.0);
        assert!((b.total_ms - 1000.0).abs() < 1e-6);
        assert!((b.commands_ms - 200.0).abs() < 1e-6, "{b:?}");
        assert!((b.waits_ms - 700.0).abs() < 1e-6, "{b:?}");
        assert!((b.agent_actions_ms - 50.0).abs() < 1e-6, "{b:?}");
        assert!((b.agent_ms - 100.0).abs() < 1e-6, "{b:?}");
    }
}
