//! Operating the agent: a crash and restart of the master, the JSON log as
//! an interface (events and fields as `docs/events.md` documents them), the
//! notify hook and the metrics textfile. Real agents in network namespaces;
//! skipped loudly without root.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{require_root, Cluster, ClusterBuilder, WAIT};
use nix::sys::signal::Signal;
use rcbsd_failover::wire::VrrpState;
use rcbsd_lab::netns::node_address;

fn json_log(cluster: &Cluster, index: usize) -> Vec<serde_json::Value> {
    cluster
        .agents
        .get(index)
        .expect("node exists")
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn has_event(cluster: &Cluster, index: usize, event: &str) -> bool {
    json_log(cluster, index)
        .iter()
        .any(|e| e.get("event").and_then(|v| v.as_str()) == Some(event))
}

/// Appends TOML to node `index`'s configuration (before it starts).
fn append_config(cluster: &Cluster, index: usize, text: &str) {
    let path = &cluster.agents.get(index).expect("node").config_path;
    let mut config = std::fs::read_to_string(path).expect("read config");
    config.push_str(text);
    std::fs::write(path, config).expect("write config");
}

#[test]
fn a_killed_master_restarts_cleans_its_leftover_vip_and_takes_the_role_back() {
    if !require_root() {
        return;
    }
    let mut cluster = ClusterBuilder::new(2).start();
    cluster.wait_master(0, WAIT);

    // A crash: no priority-0 advert, the VIP stays on node 0's interface.
    cluster.stop(0, Signal::SIGKILL);
    cluster.wait_until("node 1 master after the crash", WAIT, |c| {
        c.try_status(1).is_ok_and(|s| s.state == VrrpState::Master)
    });

    // daemon(8) restarts it: the leftover VIP goes before it may be master,
    // then it preempts back (higher priority) and is the only holder.
    cluster.start(0);
    cluster.wait_master(0, WAIT);
    assert!(has_event(&cluster, 0, "stale_vip_removed"));
    cluster.wait_until("node 1 follows node 0 again", WAIT, |c| {
        c.try_status(1)
            .is_ok_and(|s| s.state == VrrpState::Backup && s.master == Some(node_address(0).into()))
    });
}

/// `event -> documented fields`, from the table in docs/events.md.
fn documented_events() -> BTreeMap<String, Vec<String>> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md"))
            .expect("docs/events.md");
    let mut events = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(name), Some(fields)) = (cells.get(1), cells.get(3)) else {
            continue;
        };
        let name = name.trim_matches('`').to_owned();
        // Fields are the backquoted words outside parentheses (which hold
        // example values).
        let mut depth = 0;
        let fields: String = fields
            .chars()
            .filter(|c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0 && *c != ')'
            })
            .collect();
        let fields: Vec<String> = fields
            .split(',')
            .filter_map(|f| f.trim().strip_prefix('`'))
            .filter_map(|f| f.split('`').next())
            .map(str::to_owned)
            .collect();
        events.insert(name, fields);
    }
    events
}

#[test]
fn the_json_log_of_a_failover_carries_the_documented_events_and_fields() {
    if !require_root() {
        return;
    }
    let documented = documented_events();
    assert!(documented.contains_key("state_change"), "{documented:?}");

    let mut cluster = ClusterBuilder::new(2).start();
    cluster.wait_master(0, WAIT);
    cluster.stop(0, Signal::SIGTERM);
    cluster.wait_master(1, WAIT);

    let mut seen = BTreeMap::new();
    for index in 0..2 {
        for record in json_log(&cluster, index) {
            let Some(name) = record.get("event").and_then(|v| v.as_str()) else {
                continue;
            };
            let Some(fields) = documented.get(name) else {
                panic!("event {name:?} is not documented in docs/events.md: {record}");
            };
            for field in fields {
                assert!(
                    record.get(field).is_some(),
                    "{name}: documented field {field:?} missing in {record}"
                );
            }
            *seen.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    for expected in [
        "agent_started",
        "state_change",
        "vip_added",
        "vip_removed",
        "agent_stopping",
    ] {
        assert!(
            seen.contains_key(expected),
            "{expected} not logged; seen {seen:?}"
        );
    }
}

#[test]
fn the_notify_hook_and_the_metrics_textfile_follow_the_state() {
    if !require_root() {
        return;
    }
    let mut cluster = ClusterBuilder::new(2).prepare();
    let dir = cluster.topology.run_dir().to_owned();
    let hook_out = dir.join("notify.out");
    let prom = dir.join("n1.prom");
    // An operator's hook script: one line per call with what it was told.
    append_config(
        &cluster,
        0,
        &format!(
            "\n[notify]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$RCBSD_NODE $RCBSD_FROM $RCBSD_TO $RCBSD_REASON\\\" >> \\\"$0\\\"\", {:?}]\ntimeout = \"5s\"\n\n[metrics]\ntextfile = {:?}\ninterval = \"1s\"\n",
            hook_out.display().to_string(),
            prom.display().to_string()
        ),
    );
    cluster.start(0);
    cluster.start(1);
    cluster.wait_master(0, WAIT);

    cluster.wait_until("the hook saw node 0 become master", WAIT, |_| {
        std::fs::read_to_string(&hook_out)
            .is_ok_and(|t| t.lines().any(|l| l == "n1 backup master master_down"))
    });
    cluster.wait_until("the textfile says master", WAIT, |_| {
        std::fs::read_to_string(&prom).is_ok_and(|t| {
            t.lines()
                .any(|l| l == "rcbsd_failover_state{node=\"n1\",state=\"master\"} 1")
                && t.lines()
                    .any(|l| l.starts_with("rcbsd_failover_adverts_sent_total{node=\"n1\"} "))
        })
    });

    let reply = cluster.request(0, rcbsd_failover::control::protocol::Request::Demote);
    assert!(reply.ok);
    cluster.wait_master(1, WAIT);
    cluster.wait_until("the hook saw the resignation", WAIT, |_| {
        std::fs::read_to_string(&hook_out)
            .is_ok_and(|t| t.lines().any(|l| l == "n1 master backup resigned"))
    });
    cluster.wait_until("the textfile says backup", Duration::from_secs(10), |_| {
        std::fs::read_to_string(&prom).is_ok_and(|t| {
            t.lines()
                .any(|l| l == "rcbsd_failover_state{node=\"n1\",state=\"backup\"} 1")
        })
    });
}
