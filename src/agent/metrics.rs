//! `[metrics] textfile`: Prometheus text exposition for node_exporter's
//! textfile collector, rendered from the same [`Status`] that `status`
//! shows (one source of truth) plus runbook statistics, and written
//! atomically (temporary file, rename) so the collector never reads half a
//! file. Metric names are documented in `docs/alerting.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::control::protocol::Status;
use crate::runbook::{Kind, Outcome};
use crate::wire::VrrpState;

/// Runbook outcomes and durations, shared by the worker (writer) and the
/// metrics writer (reader).
#[derive(Clone, Debug, Default)]
pub struct RunbookStats(Arc<Mutex<StatsInner>>);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsInner {
    /// (runbook, outcome) -> runs.
    pub runs: BTreeMap<(&'static str, &'static str), u64>,
    /// runbook -> duration of its last run.
    pub last_duration: BTreeMap<&'static str, Duration>,
}

impl RunbookStats {
    pub fn record(&self, kind: Kind, outcome: &Outcome, duration: Duration) {
        let outcome = match outcome {
            Outcome::Succeeded { .. } => "succeeded",
            Outcome::Failed { .. } => "failed",
            Outcome::Cancelled { .. } => "cancelled",
        };
        if let Ok(mut inner) = self.0.lock() {
            *inner.runs.entry((kind.as_str(), outcome)).or_default() += 1;
            inner.last_duration.insert(kind.as_str(), duration);
        }
    }

    pub fn snapshot(&self) -> StatsInner {
        self.0.lock().map(|inner| inner.clone()).unwrap_or_default()
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Label values are our own names; escape anyway (`\`, `"`, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text. Pure: everything comes in as arguments.
pub fn render(status: &Status, stats: &StatsInner, last_transition: Option<SystemTime>) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    };
    let node = format!("node=\"{}\"", label(&status.node));
    let with = |extra: String| format!("{node},{extra}");
    metric(
        "rcbsd_failover_up",
        "gauge",
        "1 while the agent runs.",
        &[(node.clone(), "1".into())],
    );
    let states = [
        VrrpState::Initialize,
        VrrpState::Backup,
        VrrpState::Master,
        VrrpState::Fault,
    ];
    let one_hot: Vec<(String, String)> = states
        .iter()
        .map(|s| {
            let v = if *s == status.state { "1" } else { "0" };
            (with(format!("state=\"{s}\"")), v.to_owned())
        })
        .collect();
    metric(
        "rcbsd_failover_state",
        "gauge",
        "The node's VRRP state (one-hot).",
        &one_hot,
    );
    metric(
        "rcbsd_failover_priority",
        "gauge",
        "Configured and effective (advertised) priority.",
        &[
            (
                with("kind=\"configured\"".into()),
                status.configured_priority.to_string(),
            ),
            (
                with("kind=\"effective\"".into()),
                status.effective_priority.to_string(),
            ),
        ],
    );
    metric(
        "rcbsd_failover_fault",
        "gauge",
        "1 while the node is in fault.",
        &[(node.clone(), u8::from(status.fault.is_some()).to_string())],
    );
    let c = &status.counters;
    for (name, help, value) in [
        (
            "rcbsd_failover_transitions_total",
            "State changes.",
            c.transitions,
        ),
        (
            "rcbsd_failover_adverts_sent_total",
            "Advertisements sent.",
            c.adverts_sent,
        ),
        (
            "rcbsd_failover_adverts_received_total",
            "Advertisements accepted.",
            c.adverts_received,
        ),
    ] {
        metric(name, "counter", help, &[(node.clone(), value.to_string())]);
    }
    let drops: Vec<(String, String)> = c
        .drops
        .iter()
        .map(|(reason, n)| (with(format!("reason=\"{}\"", label(reason))), n.to_string()))
        .collect();
    metric(
        "rcbsd_failover_packets_dropped_total",
        "counter",
        "Received packets dropped, by reason.",
        &drops,
    );
    let runs: Vec<(String, String)> = stats
        .runs
        .iter()
        .map(|((runbook, outcome), n)| {
            (
                with(format!("runbook=\"{runbook}\",outcome=\"{outcome}\"")),
                n.to_string(),
            )
        })
        .collect();
    metric(
        "rcbsd_failover_runbook_runs_total",
        "counter",
        "Runbook runs by outcome (succeeded, failed, cancelled).",
        &runs,
    );
    let durations: Vec<(String, String)> = stats
        .last_duration
        .iter()
        .map(|(runbook, d)| {
            (
                with(format!("runbook=\"{runbook}\"")),
                format!("{:.3}", d.as_secs_f64()),
            )
        })
        .collect();
    metric(
        "rcbsd_failover_runbook_last_duration_seconds",
        "gauge",
        "Duration of the last run of each runbook.",
        &durations,
    );
    if let Some(t) = last_transition {
        metric(
            "rcbsd_failover_last_transition_timestamp_seconds",
            "gauge",
            "When the node last changed state (Unix time).",
            &[(node.clone(), format!("{:.3}", unix_seconds(t)))],
        );
    }
    let check =
        |h: &crate::control::protocol::HealthStatus| with(format!("check=\"{}\"", label(&h.check)));
    let good: Vec<(String, String)> = status
        .health
        .iter()
        .map(|h| (check(h), u8::from(h.good).to_string()))
        .collect();
    metric(
        "rcbsd_failover_health_check_good",
        "gauge",
        "1 while a health check is good, 0 once failed (health.fall in a row).",
        &good,
    );
    for (name, help, value) in [
        (
            "rcbsd_failover_health_check_runs_total",
            "Runs of each health check since it applies.",
            (|h: &crate::control::protocol::HealthStatus| h.runs)
                as fn(&crate::control::protocol::HealthStatus) -> u64,
        ),
        (
            "rcbsd_failover_health_check_failures_total",
            "Failed runs of each health check since it applies.",
            |h| h.failures,
        ),
        (
            "rcbsd_failover_health_check_repairs_total",
            "Repairs and remounts started for each health check since it applies.",
            |h| h.repairs,
        ),
        (
            "rcbsd_failover_health_check_restarts_total",
            "Environment restarts started for each health check since it applies.",
            |h| h.restarts,
        ),
    ] {
        let samples: Vec<(String, String)> = status
            .health
            .iter()
            .map(|h| (check(h), value(h).to_string()))
            .collect();
        metric(name, "counter", help, &samples);
    }
    let held: Vec<(String, String)> = status
        .held
        .iter()
        .map(|h| {
            (
                with(format!("environment=\"{}\"", label(&h.name))),
                "1".to_owned(),
            )
        })
        .collect();
    metric(
        "rcbsd_failover_environment_held",
        "gauge",
        "1 for each environment the operator holds (env hold).",
        &held,
    );
    if let Some(cluster) = &status.cluster {
        metric(
            "rcbsd_failover_quorum",
            "gauge",
            "1 while this node hears and is heard by a strict majority.",
            &[(node.clone(), u8::from(cluster.quorum).to_string())],
        );
        metric(
            "rcbsd_failover_master_lease_seconds",
            "gauge",
            "Seconds left of the master lease (0 when not held).",
            &[(
                node.clone(),
                format!(
                    "{:.3}",
                    cluster.master_lease_ms.unwrap_or(0) as f64 / 1000.0
                ),
            )],
        );
        metric(
            "rcbsd_failover_config_mismatch_peers",
            "gauge",
            "Peers whose cluster-wide configuration differs from this node's.",
            &[(node.clone(), cluster.config_mismatch.len().to_string())],
        );
        for (name, help, value) in [
            (
                "rcbsd_failover_heartbeats_sent_total",
                "Heartbeats sent (one per peer per interval).",
                cluster.heartbeats_sent,
            ),
            (
                "rcbsd_failover_heartbeats_received_total",
                "Heartbeats accepted.",
                cluster.heartbeats_received,
            ),
        ] {
            metric(name, "counter", help, &[(node.clone(), value.to_string())]);
        }
        let dropped: Vec<(String, String)> = cluster
            .heartbeats_dropped
            .iter()
            .map(|(reason, n)| (with(format!("reason=\"{}\"", label(reason))), n.to_string()))
            .collect();
        metric(
            "rcbsd_failover_heartbeats_dropped_total",
            "counter",
            "Heartbeats dropped, by reason (auth, malformed, stale, unknown_address...).",
            &dropped,
        );
        let here: Vec<(String, String)> = cluster
            .environments
            .iter()
            .map(|env| {
                let runs_here = env.running_on.iter().any(|n| n == &status.node);
                (
                    with(format!("environment=\"{}\"", label(&env.name))),
                    u8::from(runs_here).to_string(),
                )
            })
            .collect();
        metric(
            "rcbsd_failover_environment_running",
            "gauge",
            "1 for each placed environment running on this node.",
            &here,
        );
    }
    out
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, then rename.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map_or_else(|| "metrics".into(), |n| n.to_string_lossy().into_owned());
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::Counters;
    use crate::election::priority::Override;

    fn status() -> Status {
        let mut counters = Counters {
            adverts_sent: 7,
            adverts_received: 3,
            transitions: 2,
            ..Counters::default()
        };
        counters.drops.insert("bad_ttl".into(), 4);
        Status {
            node: "node1".into(),
            version: "0".into(),
            pid: 1,
            state: VrrpState::Master,
            interface: "em0".into(),
            vrid: 51,
            family: "ipv4".into(),
            configured_priority: 150,
            effective_priority: 150,
            follower_only: false,
            master: None,
            vips_held: vec![],
            override_: Override::None,
            fault: None,
            runbook: None,
            advert_interval_ms: 1000,
            master_advert_interval_ms: 1000,
            uptime_s: 1,
            counters,
            cluster: None,
            watchdog: None,
            retained: false,
            vrrp6: None,
            handing_over: false,
            riding: None,
            health: Vec::new(),
            held: Vec::new(),
        }
    }

    #[test]
    fn renders_every_documented_metric() {
        let stats = RunbookStats::default();
        stats.record(
            Kind::Promote,
            &Outcome::Succeeded { skipped: vec![] },
            Duration::from_millis(1500),
        );
        let text = render(
            &status(),
            &stats.snapshot(),
            Some(UNIX_EPOCH + Duration::from_secs(10)),
        );
        for line in [
            "rcbsd_failover_up{node=\"node1\"} 1",
            "rcbsd_failover_state{node=\"node1\",state=\"master\"} 1",
            "rcbsd_failover_state{node=\"node1\",state=\"backup\"} 0",
            "rcbsd_failover_priority{node=\"node1\",kind=\"effective\"} 150",
            "rcbsd_failover_fault{node=\"node1\"} 0",
            "rcbsd_failover_transitions_total{node=\"node1\"} 2",
            "rcbsd_failover_adverts_sent_total{node=\"node1\"} 7",
            "rcbsd_failover_adverts_received_total{node=\"node1\"} 3",
            "rcbsd_failover_packets_dropped_total{node=\"node1\",reason=\"bad_ttl\"} 4",
            "rcbsd_failover_runbook_runs_total{node=\"node1\",runbook=\"promote\",outcome=\"succeeded\"} 1",
            "rcbsd_failover_runbook_last_duration_seconds{node=\"node1\",runbook=\"promote\"} 1.500",
            "rcbsd_failover_last_transition_timestamp_seconds{node=\"node1\"} 10.000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn renders_each_health_check_and_the_holds() {
        use crate::control::protocol::{HealthStatus, HeldStatus};
        let mut s = status();
        s.health = vec![HealthStatus {
            check: "service nfsd".into(),
            good: false,
            detail: "nfsd is not running.".into(),
            repairing: true,
            last_run_s_ago: Some(1),
            last_change_s_ago: Some(4),
            runs: 9,
            failures: 3,
            repairs: 1,
            restarts: 0,
            held: false,
        }];
        s.held = vec![HeldStatus {
            name: "web1".into(),
            since: 1,
        }];
        let text = render(&s, &StatsInner::default(), None);
        for line in [
            "rcbsd_failover_health_check_good{node=\"node1\",check=\"service nfsd\"} 0",
            "rcbsd_failover_health_check_runs_total{node=\"node1\",check=\"service nfsd\"} 9",
            "rcbsd_failover_health_check_failures_total{node=\"node1\",check=\"service nfsd\"} 3",
            "rcbsd_failover_health_check_repairs_total{node=\"node1\",check=\"service nfsd\"} 1",
            "rcbsd_failover_health_check_restarts_total{node=\"node1\",check=\"service nfsd\"} 0",
            "rcbsd_failover_environment_held{node=\"node1\",environment=\"web1\"} 1",
            "# TYPE rcbsd_failover_health_check_runs_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rcbsd_failover.prom");
        write_atomically(&path, "a 1\n").expect("write");
        write_atomically(&path, "b 2\n").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "b 2\n");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "temporary file left behind");
    }
}
