//! The flood benchmark's results and their text rendering (JSON through
//! serde).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::sender::Sent;
use super::tap::Gaps;

/// What the benchmark was run with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FloodSettings {
    pub nodes: usize,
    pub advert_interval_ms: u64,
    /// The flood's length.
    pub duration_s: f64,
    /// The quiet window measured before the flood, for comparison.
    pub idle_s: f64,
    pub threads: usize,
    /// Whether the agents ran with `[cluster]` (heartbeats on UDP): only
    /// then does the heartbeat junk hit a listening socket.
    pub heartbeats: bool,
    /// Whether the master had a UDP socket on the heartbeat port during
    /// the run (the agent may accept `[cluster]` before it listens).
    pub heartbeat_listening: bool,
}

/// One agent's load and stability.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentLoad {
    pub node: String,
    pub priority: u8,
    /// CPU (user + system) over the idle window, percent of one core.
    pub cpu_idle_percent: f64,
    /// CPU over the flood, percent of one core.
    pub cpu_flood_percent: f64,
    /// `state_change` events the agent logged from the start of the idle
    /// window to the end of the run: `"<time> <from> -> <to> (<reason>)"`.
    pub state_changes: Vec<String>,
    pub rss_kib: u64,
}

/// The master's own view of the flood, from its control socket's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MasterCounters {
    pub adverts_sent: u64,
    /// What the flood window's length allows at the advert interval.
    pub adverts_expected: u64,
    pub adverts_received: u64,
    /// Packets the agent received and dropped, by reason.
    pub drops: BTreeMap<String, u64>,
}

/// The whole benchmark.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FloodRun {
    pub settings: FloodSettings,
    pub master: String,
    pub sent: Sent,
    /// The VIP was sampled this often during the idle window and the flood...
    pub vip_samples: usize,
    /// ...and this many samples found it elsewhere than on the master alone.
    pub vip_samples_elsewhere: usize,
    /// Adverts on the master's link before and during the flood.
    pub adverts_idle: Gaps,
    pub adverts_flood: Gaps,
    /// Packets the kernel dropped machine-wide for a full input backlog,
    /// during the idle window and during the flood.
    pub backlog_drops_idle: u64,
    pub backlog_drops_flood: u64,
    /// Idle and flood windows, from the master's counters.
    pub counters_idle: Option<MasterCounters>,
    pub counters_flood: Option<MasterCounters>,
    pub agents: Vec<AgentLoad>,
    /// No state change on any node and the VIP on the master alone in
    /// every sample.
    pub master_kept_role: bool,
    pub backup_took_over: bool,
}

impl FloodRun {
    /// Held: kept its role, nobody took over, not one advert missed.
    pub fn held(&self) -> bool {
        self.master_kept_role && !self.backup_took_over && self.adverts_flood.missed == 0
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "lab: flood: {} nodes, advert_interval {} ms, {:.0} s idle then {:.0} s of flood from {} threads; [cluster] {}, heartbeat port {}",
            s.nodes,
            s.advert_interval_ms,
            s.idle_s,
            s.duration_s,
            s.threads,
            if s.heartbeats { "on" } else { "off" },
            if s.heartbeat_listening { "open" } else { "closed" }
        );
        let sent = &self.sent;
        let _ = writeln!(
            out,
            "flood sent {} packets in {:.1} s: {:.0} packets/s, {:.1} Mbit/s (IP bytes); {} send errors",
            sent.packets,
            sent.seconds,
            sent.packets_per_second(),
            sent.megabits_per_second(),
            sent.send_errors
        );
        for (kind, tally) in &sent.by_kind {
            let _ = writeln!(
                out,
                "  {kind:<20} {:>10} packets {:>8.0}/s",
                tally.packets,
                if sent.seconds > 0.0 {
                    tally.packets as f64 / sent.seconds
                } else {
                    0.0
                }
            );
        }
        let threshold = s.advert_interval_ms as f64 * 1.5;
        for (label, gaps) in [("idle", &self.adverts_idle), ("flood", &self.adverts_flood)] {
            let _ = writeln!(
                out,
                "adverts on {}'s link, {label:<5}: {:>6} seen, {} gaps > {threshold:.0} ms, longest gap {:.1} ms",
                self.master, gaps.adverts, gaps.missed, gaps.max_gap_ms
            );
        }
        let _ = writeln!(
            out,
            "kernel input-backlog drops (whole machine): idle {}, flood {}",
            self.backlog_drops_idle, self.backlog_drops_flood
        );
        for (label, counters) in [
            ("idle", &self.counters_idle),
            ("flood", &self.counters_flood),
        ] {
            let Some(c) = counters else {
                let _ = writeln!(out, "{} counters, {label}: unavailable", self.master);
                continue;
            };
            let drops: Vec<String> = c.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(
                out,
                "{} counters, {label:<5}: adverts sent {} (expected ~{}), received {}; dropped: {}",
                self.master,
                c.adverts_sent,
                c.adverts_expected,
                c.adverts_received,
                if drops.is_empty() {
                    "none".to_owned()
                } else {
                    drops.join(", ")
                }
            );
        }
        for agent in &self.agents {
            let _ = writeln!(
                out,
                "  {:<4} priority {:>3}  CPU idle {:>5.1}%  flood {:>5.1}%  state changes {}  RSS {} KiB",
                agent.node,
                agent.priority,
                agent.cpu_idle_percent,
                agent.cpu_flood_percent,
                agent.state_changes.len(),
                agent.rss_kib
            );
            for change in &agent.state_changes {
                let _ = writeln!(out, "       {change}");
            }
        }
        let _ = writeln!(
            out,
            "VIP on {} alone in {}/{} samples",
            self.master,
            self.vip_samples - self.vip_samples_elsewhere.min(self.vip_samples),
            self.vip_samples
        );
        let verdict = if self.held() {
            "the master held: no role change, no backup took over, no missed advert".to_owned()
        } else {
            format!(
                "the master did NOT hold: kept role {}, a backup took over {}, missed adverts {}",
                yes_no(self.master_kept_role),
                yes_no(self.backup_took_over),
                self.adverts_flood.missed
            )
        };
        let _ = writeln!(out, "verdict: {verdict}");
        out
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}
