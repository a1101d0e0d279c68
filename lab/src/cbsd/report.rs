//! The CBSD scenario's results: the failover timeline of each trial, where
//! the time went, min/median/max over the trials, text and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::args::Settings;
use crate::report::Summary;

/// One cut of the master, every figure in milliseconds from the cut.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CbsdTrial {
    pub number: u32,
    pub master: String,
    pub new_master: String,
    /// The VIP appeared on the new master (promote adds it last).
    pub vip_ms: f64,
    /// The new master exports every shared dir and runs nfsd (before the
    /// VIP, by design).
    pub nfs_ms: f64,
    /// Every follower has every shared dir mounted from the VIP again
    /// (`None`: no follower).
    pub remounted_ms: Option<f64>,
    /// Every environment of every reachable node runs again.
    pub environments_ms: f64,
    /// From the cut to the new master's `runbook_started` (promote):
    /// Master_Down_Interval plus the agent's reaction.
    pub detection_ms: f64,
    /// The new master's promote: its duration and the part of it spent in
    /// external commands.
    pub promote_ms: f64,
    pub promote_commands_ms: f64,
    /// Where `environments_ms` went on the node that finished last.
    pub critical: Breakdown,
}

/// How one node spent the time from the cut to its last environment
/// start: `total = commands + waits + agent`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Breakdown {
    pub node: String,
    pub total_ms: f64,
    /// Inside external commands (stand-ins), by the `runbook_step` events.
    pub commands_ms: f64,
    /// Outside any runbook (failure detection, waiting for the new master,
    /// the pause before a failed follow is retried) and retry backoffs.
    pub waits_ms: f64,
    /// The rest: the agent's own overhead.
    pub agent_ms: f64,
    /// Part of `agent_ms`: the agent's own steps (VIP, ARP burst with its
    /// spacing, exports, file checks).
    pub agent_actions_ms: f64,
}

/// One CBSD-scenario run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CbsdRun {
    pub settings: Settings,
    /// The runbook timings every node used, as in their `[runbook]`.
    pub timings: Vec<(String, String)>,
    pub trials: Vec<CbsdTrial>,
    pub summary: Vec<(String, Option<Summary>)>,
}

impl CbsdRun {
    pub fn new(settings: Settings, timings: Vec<(String, String)>, trials: Vec<CbsdTrial>) -> Self {
        let pick = |f: &dyn Fn(&CbsdTrial) -> Option<f64>| -> Option<Summary> {
            Summary::of(&trials.iter().filter_map(f).collect::<Vec<f64>>())
        };
        let summary = vec![
            ("VIP on new master".to_owned(), pick(&|t| Some(t.vip_ms))),
            ("exports + nfsd up".to_owned(), pick(&|t| Some(t.nfs_ms))),
            ("followers remounted".to_owned(), pick(&|t| t.remounted_ms)),
            (
                "environments running".to_owned(),
                pick(&|t| Some(t.environments_ms)),
            ),
            ("detection".to_owned(), pick(&|t| Some(t.detection_ms))),
            ("promote".to_owned(), pick(&|t| Some(t.promote_ms))),
            (
                "  in commands".to_owned(),
                pick(&|t| Some(t.promote_commands_ms)),
            ),
            (
                "critical: commands".to_owned(),
                pick(&|t| Some(t.critical.commands_ms)),
            ),
            (
                "critical: waits".to_owned(),
                pick(&|t| Some(t.critical.waits_ms)),
            ),
            (
                "critical: agent".to_owned(),
                pick(&|t| Some(t.critical.agent_ms)),
            ),
            (
                "  agent actions".to_owned(),
                pick(&|t| Some(t.critical.agent_actions_ms)),
            ),
        ];
        CbsdRun {
            settings,
            timings,
            trials,
            summary,
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "lab --scenario cbsd: {} nodes, advert_interval {} ms, {} trials",
            s.nodes,
            s.advert_interval.as_millis(),
            s.trials
        );
        let timings: Vec<String> = self
            .timings
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "runbook: {}", timings.join(", "));
        for t in &self.trials {
            let _ = writeln!(
                out,
                "trial {:>2}: cut {} -> {}: nfsd {:>7.1}, VIP {:>7.1}, remounted {:>7}, environments {:>7.1} ms; {}: commands {:.1}, waits {:.1}, agent {:.1} ms",
                t.number,
                t.master,
                t.new_master,
                t.nfs_ms,
                t.vip_ms,
                t.remounted_ms.map_or("-".to_owned(), |v| format!("{v:.1}")),
                t.environments_ms,
                t.critical.node,
                t.critical.commands_ms,
                t.critical.waits_ms,
                t.critical.agent_ms,
            );
        }
        let _ = writeln!(
            out,
            "\n{:<24} {:>9} {:>9} {:>9}   (ms from the cut)",
            "stage", "min", "median", "max"
        );
        for (name, summary) in &self.summary {
            match summary {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "{name:<24} {:>9.1} {:>9.1} {:>9.1}",
                        s.min, s.median, s.max
                    );
                }
                None => {
                    let _ = writeln!(out, "{name:<24} {:>9}", "-");
                }
            }
        }
        out.push_str(
            "\ndetection: cut -> promote started on the new master; promote: its runbook;\n\
             critical: the node whose environments ran last, from the cut:\n\
             commands (inside the stand-ins) + waits (outside runbooks, retry backoff)\n\
             + agent (the rest: the agent's own overhead, its actions included)\n",
        );
        out
    }
}
