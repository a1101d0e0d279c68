//! The CBSD scenario's results: the failover timeline of each trial, where
//! the time went, min/median/max over the trials, text and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::FollowMode;
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
    /// Every environment started after the cut (ride-through should
    /// restart only the lost master's).
    pub restarted: Vec<Restart>,
    /// Each follower's I/O pause (not the new master's).
    pub io_pause: Vec<IoPause>,
    /// Followers whose NFS client lost its opens and locks (a new master
    /// without their stable restart record; silent on FreeBSD).
    pub state_lost: Vec<String>,
}

/// One environment start after the cut.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Restart {
    pub node: String,
    pub env: String,
    /// It ran on the lost master: adopted here, as placement says.
    pub of_lost_master: bool,
    /// One of the new master's own: its shared dirs go from NFS mounts
    /// to the storage itself, so it restarts them in either mode.
    pub on_new_master: bool,
    /// A stop of it came first (a follower's restart in place).
    pub stopped_first: bool,
}

/// A follower's I/O pause: from the cut until its mounts answer again
/// (`None`: not within the trial).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IoPause {
    pub node: String,
    pub ms: Option<f64>,
}

impl CbsdTrial {
    /// Environments of followers restarted (neither the lost master's
    /// nor the new master's own): what ride-through avoids.
    pub fn followers_restarted(&self) -> usize {
        self.restarted
            .iter()
            .filter(|r| !r.of_lost_master && !r.on_new_master)
            .count()
    }

    /// The lost master's environments started elsewhere.
    pub fn adopted(&self) -> usize {
        self.restarted.iter().filter(|r| r.of_lost_master).count()
    }

    /// The longest follower I/O pause; None when one never ended.
    pub fn io_pause_max_ms(&self) -> Option<f64> {
        self.io_pause
            .iter()
            .map(|p| p.ms)
            .try_fold(0.0_f64, |max, ms| ms.map(|ms| max.max(ms)))
            .filter(|_| !self.io_pause.is_empty())
    }

    /// The followers' pauses added up (follower-milliseconds without
    /// I/O); None when one never ended.
    pub fn io_pause_total_ms(&self) -> Option<f64> {
        self.io_pause
            .iter()
            .map(|p| p.ms)
            .sum::<Option<f64>>()
            .filter(|_| !self.io_pause.is_empty())
    }
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
    /// The followers' `follow.on_master_change`.
    pub follow: FollowMode,
    /// The runbook timings every node used, as in their `[runbook]`.
    pub timings: Vec<(String, String)>,
    pub trials: Vec<CbsdTrial>,
    pub summary: Vec<(String, Option<Summary>)>,
}

impl CbsdRun {
    pub fn new(
        settings: Settings,
        follow: FollowMode,
        timings: Vec<(String, String)>,
        trials: Vec<CbsdTrial>,
    ) -> Self {
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
            (
                "follower I/O pause max".to_owned(),
                pick(&|t| t.io_pause_max_ms()),
            ),
            (
                "follower I/O pause sum".to_owned(),
                pick(&|t| t.io_pause_total_ms()),
            ),
            (
                "followers' envs restarted".to_owned(),
                pick(&|t| Some(t.followers_restarted() as f64)),
            ),
            (
                "lost master's adopted".to_owned(),
                pick(&|t| Some(t.adopted() as f64)),
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
            follow,
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
            "lab --scenario cbsd: {} nodes, advert_interval {} ms, {} trials, follow {}",
            s.nodes,
            s.advert_interval.as_millis(),
            s.trials,
            self.follow.as_str()
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
            let restarted: Vec<String> = t
                .restarted
                .iter()
                .map(|r| {
                    format!(
                        "{}@{}{}",
                        r.env,
                        r.node,
                        if r.of_lost_master {
                            " (adopted)"
                        } else if r.on_new_master {
                            " (new master)"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            let pauses: Vec<String> = t
                .io_pause
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p.node,
                        p.ms.map_or("never".to_owned(), |ms| format!("{ms:.1}"))
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "          restarted {} ({} of followers): {}; I/O pause ms: {}; sum {}{}",
                t.restarted.len(),
                t.followers_restarted(),
                if restarted.is_empty() {
                    "-".to_owned()
                } else {
                    restarted.join(" ")
                },
                if pauses.is_empty() {
                    "-".to_owned()
                } else {
                    pauses.join(", ")
                },
                t.io_pause_total_ms()
                    .map_or("-".to_owned(), |v| format!("{v:.1}")),
                if t.state_lost.is_empty() {
                    String::new()
                } else {
                    format!("; NFS state LOST on {}", t.state_lost.join(", "))
                },
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
             + agent (the rest: the agent's own overhead, its actions included);\n\
             I/O pause: from the cut until a follower's df on its mounts answers with\n\
             every shared dir mounted as it stays: remounted (remount) or served by the\n\
             new master, recovered or remounted (ride-through); see cbsd/pause.rs\n",
        );
        out
    }
}

/// `--compare-follow`: the same trials with each follow mode, one
/// cluster after the other in the same run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FollowComparison {
    pub runs: Vec<CbsdRun>,
}

impl FollowComparison {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for run in &self.runs {
            out.push_str(&run.to_text());
            out.push('\n');
        }
        let _ = write!(out, "{:<28}", "median (ms, or count)");
        for run in &self.runs {
            let _ = write!(out, " {:>14}", run.follow.as_str());
        }
        out.push('\n');
        let names: Vec<&String> = self
            .runs
            .first()
            .map(|r| r.summary.iter().map(|(name, _)| name).collect())
            .unwrap_or_default();
        for name in names {
            let _ = write!(out, "{name:<28}");
            for run in &self.runs {
                let median = run
                    .summary
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, s)| s.as_ref())
                    .map_or("-".to_owned(), |s| format!("{:.1}", s.median));
                let _ = write!(out, " {median:>14}");
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(pauses: &[Option<f64>], restarted: &[(&str, bool)]) -> CbsdTrial {
        CbsdTrial {
            number: 1,
            master: "n1".into(),
            new_master: "n2".into(),
            vip_ms: 1.0,
            nfs_ms: 1.0,
            remounted_ms: None,
            environments_ms: 1.0,
            detection_ms: 1.0,
            promote_ms: 1.0,
            promote_commands_ms: 1.0,
            critical: Breakdown::default(),
            restarted: restarted
                .iter()
                .map(|(env, lost)| Restart {
                    node: "n3".into(),
                    env: (*env).into(),
                    of_lost_master: *lost,
                    on_new_master: false,
                    stopped_first: !*lost,
                })
                .collect(),
            io_pause: pauses
                .iter()
                .enumerate()
                .map(|(i, ms)| IoPause {
                    node: format!("n{}", i + 3),
                    ms: *ms,
                })
                .collect(),
            state_lost: Vec::new(),
        }
    }

    #[test]
    fn pauses_add_up_and_one_that_never_ended_has_no_total() {
        let t = trial(
            &[Some(100.0), Some(250.0)],
            &[("web1", true), ("web3", false)],
        );
        assert_eq!(t.io_pause_max_ms(), Some(250.0));
        assert_eq!(t.io_pause_total_ms(), Some(350.0));
        assert_eq!((t.adopted(), t.followers_restarted()), (1, 1));
        let stuck = trial(&[Some(100.0), None], &[]);
        assert_eq!(stuck.io_pause_max_ms(), None);
        assert_eq!(stuck.io_pause_total_ms(), None);
        assert_eq!(trial(&[], &[]).io_pause_total_ms(), None);
    }

    #[test]
    fn the_comparison_puts_the_modes_side_by_side() {
        let settings = Settings {
            nodes: 3,
            advert_interval: std::time::Duration::from_millis(100),
            trials: 1,
            rate_hz: 100,
        };
        let runs = [FollowMode::Remount, FollowMode::RideThrough]
            .into_iter()
            .map(|mode| CbsdRun::new(settings, mode, Vec::new(), vec![trial(&[Some(5.0)], &[])]))
            .collect();
        let text = FollowComparison { runs }.to_text();
        assert!(
            text.contains("follow remount") && text.contains("follow ride-through"),
            "{text}"
        );
        let row = text
            .lines()
            .rfind(|l| l.starts_with("follower I/O pause sum"))
            .expect("a row");
        assert_eq!(row.matches("5.0").count(), 2, "{row}");
    }
}
