//! The lab's results: per-trial figures, min/median/max summaries, the
//! comparison ratios, and their text and JSON renderings.

use std::fmt::Write as _;

use serde::Serialize;

use super::args::Settings;

/// One link cut of the master.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trial {
    pub number: u32,
    /// The master whose link was cut.
    pub master: String,
    /// The node that added the VIP after the cut.
    pub new_master: String,
    /// From the cut to the first echo reply to a request sent after it.
    pub outage_ms: f64,
    /// From the cut to the VIP present on the new master's interface.
    pub vip_added_ms: f64,
    /// How long `ip link set down` took: the uncertainty of the cut instant
    /// (the outage is measured from the command's start).
    pub cut_command_ms: f64,
    /// Longest gap between echo replies from the link's restoration until
    /// the cluster settled again (preemption back to the old master).
    pub heal_gap_ms: f64,
    /// The VIP holder once settled after the restoration.
    pub master_after_heal: String,
}

/// A node's role right after the first election.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeRole {
    pub node: String,
    pub priority: u8,
    /// `master` / `backup` (from the VIP, or from the agent's status).
    pub role: String,
}

/// Memory and CPU of one agent over the whole run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentUsage {
    pub node: String,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub cpu_seconds: f64,
    /// keepalived runs as two processes; both are counted.
    pub processes: usize,
}

/// min / median / max of one figure over the trials.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub count: usize,
}

impl Summary {
    /// `None` for no values. The median of an even count is the mean of
    /// the two middle values.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let (first, last) = (*sorted.first()?, *sorted.last()?);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            *sorted.get(mid)?
        } else {
            (sorted.get(mid - 1)? + sorted.get(mid)?) / 2.0
        };
        Some(Summary {
            min: first,
            median,
            max: last,
            count: sorted.len(),
        })
    }
}

/// One implementation's run: election, trials, resources.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    pub implementation: String,
    /// From starting the agents to one node holding the VIP.
    pub election_ms: f64,
    pub initial_master: String,
    pub roles: Vec<NodeRole>,
    pub trials: Vec<Trial>,
    pub outage_ms: Option<Summary>,
    pub vip_added_ms: Option<Summary>,
    pub heal_gap_ms: Option<Summary>,
    pub agents: Vec<AgentUsage>,
    pub total_rss_kib: u64,
    pub total_cpu_seconds: f64,
    /// Echo requests sent / replies received over the run.
    pub pings_sent: u64,
    pub pings_answered: u64,
}

impl Run {
    /// Fills the summaries and totals from `trials` and `agents`.
    pub fn summarise(mut self) -> Run {
        let pick = |f: fn(&Trial) -> f64| -> Vec<f64> { self.trials.iter().map(f).collect() };
        self.outage_ms = Summary::of(&pick(|t| t.outage_ms));
        self.vip_added_ms = Summary::of(&pick(|t| t.vip_added_ms));
        self.heal_gap_ms = Summary::of(&pick(|t| t.heal_gap_ms));
        self.total_rss_kib = self.agents.iter().map(|a| a.rss_kib).sum();
        self.total_cpu_seconds = self.agents.iter().map(|a| a.cpu_seconds).sum();
        self
    }
}

/// What RFC 5798 predicts for a cut of the master: the backup with the
/// highest priority takes over when its Master_Down_Timer fires.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedOutage {
    /// The backup that should take over.
    pub node: String,
    pub priority: u8,
    /// Skew_Time = (256 - priority) x advert / 256 (RFC 5798 §6.1).
    pub skew_ms: f64,
    /// The cut right before an advert was due: the backup's timer had run
    /// almost one interval already (2 x advert + skew).
    pub min_ms: f64,
    /// The cut right after an advert: Master_Down_Interval in full
    /// (3 x advert + skew).
    pub max_ms: f64,
}

impl Run {
    /// The takeover RFC 5798 §6.1 predicts from the roles after the
    /// election; `None` without a backup.
    pub fn expected_outage(&self, advert: std::time::Duration) -> Option<ExpectedOutage> {
        let backup = self
            .roles
            .iter()
            .filter(|r| r.node != self.initial_master)
            .max_by_key(|r| r.priority)?;
        let advert_ms = advert.as_secs_f64() * 1000.0;
        let skew_ms = f64::from(256 - u16::from(backup.priority)) * advert_ms / 256.0;
        Some(ExpectedOutage {
            node: backup.node.clone(),
            priority: backup.priority,
            skew_ms,
            min_ms: 2.0 * advert_ms + skew_ms,
            max_ms: 3.0 * advert_ms + skew_ms,
        })
    }

    /// What the unanswered pings stand for: time without the VIP, to
    /// compare with the outages and heal gaps summed.
    pub fn unanswered_text(&self, rate_hz: u32) -> String {
        let unanswered = self.pings_sent.saturating_sub(self.pings_answered);
        let seconds = if rate_hz == 0 {
            0.0
        } else {
            unanswered as f64 / f64::from(rate_hz)
        };
        let summed: f64 = self
            .trials
            .iter()
            .map(|t| t.outage_ms + t.heal_gap_ms)
            .sum::<f64>()
            / 1000.0;
        format!(
            "  {unanswered} pings unanswered = {seconds:.1} s without the VIP at {rate_hz} Hz (outages and heal gaps sum to {summed:.1} s)"
        )
    }
}

/// What the figures mean, printed before them.
fn legend(s: &Settings) -> String {
    format!(
        "\
Each trial cuts the master's link (ip link set down) at a random point of
its advert interval; a client pings the VIP {rate} times a second.
  outage     from the cut to the first echo reply to a request sent after
             it: how long clients of the VIP go unanswered
  VIP added  from the cut to the VIP on the new master's interface
  heal gap   after the link is restored and the old master takes the VIP
             back (preemption): the longest gap between two replies
Expected outage: a backup takes over once it has heard no advert for
Master_Down_Interval = 3 x advert + skew, where skew = (256 - priority)
x advert / 256 (RFC 5798 §6.1). The cut falls anywhere within an advert
interval ({advert} ms), so the outage lies between 2 x advert + skew and
3 x advert + skew. A heal gap under a few hundred ms is the switch back;
seconds would mean the client kept a stale ARP/neighbour entry.
pings answered R/S: R echo replies to S requests over the whole run; the
unanswered ones fell in the outages and heal gaps.
",
        rate = s.rate_hz,
        advert = s.advert_interval.as_millis()
    )
}

/// ours / theirs for the headline figures (below 1: we are faster/lighter).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ratio {
    pub ours: String,
    pub theirs: String,
    pub outage_median: Option<f64>,
    pub vip_added_median: Option<f64>,
    pub rss: Option<f64>,
    pub cpu: Option<f64>,
}

/// The whole lab report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub settings: Settings,
    /// The address family of the lab network, VIP and pings.
    pub family: crate::Family,
    pub runs: Vec<Run>,
    pub ratio: Option<Ratio>,
}

fn ratio(ours: f64, theirs: f64) -> Option<f64> {
    (theirs > 0.0 && ours.is_finite()).then(|| ours / theirs)
}

impl Report {
    /// With two runs, the first is "ours" and the second the baseline.
    pub fn new(settings: &Settings, runs: Vec<Run>) -> Report {
        let ratio = match runs.as_slice() {
            [ours, theirs] => Some(Ratio {
                ours: ours.implementation.clone(),
                theirs: theirs.implementation.clone(),
                outage_median: ours
                    .outage_ms
                    .zip(theirs.outage_ms)
                    .and_then(|(a, b)| ratio(a.median, b.median)),
                vip_added_median: ours
                    .vip_added_ms
                    .zip(theirs.vip_added_ms)
                    .and_then(|(a, b)| ratio(a.median, b.median)),
                rss: ratio(ours.total_rss_kib as f64, theirs.total_rss_kib as f64),
                cpu: ratio(ours.total_cpu_seconds, theirs.total_cpu_seconds),
            }),
            _ => None,
        };
        Report {
            settings: *settings,
            family: crate::Family::Ipv4,
            runs,
            ratio,
        }
    }

    /// The same report, measured over `family`.
    pub fn with_family(mut self, family: crate::Family) -> Report {
        self.family = family;
        self
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let family = match self.family {
            crate::Family::Ipv4 => "",
            crate::Family::Ipv6 => " (IPv6)",
        };
        let _ = writeln!(
            out,
            "lab{family}: {} nodes, advert_interval {} ms, {} trials, client ping {} Hz",
            s.nodes,
            s.advert_interval.as_millis(),
            s.trials,
            s.rate_hz
        );
        out.push_str(&legend(s));
        for run in &self.runs {
            let _ = writeln!(out, "\n== {} ==", run.implementation);
            let _ = writeln!(
                out,
                "election: {} master after {:.0} ms",
                run.initial_master, run.election_ms
            );
            for role in &run.roles {
                let _ = writeln!(
                    out,
                    "  {:<4} priority {:>3}  {}",
                    role.node, role.priority, role.role
                );
            }
            for t in &run.trials {
                let _ = writeln!(
                    out,
                    "trial {:>2}: cut {} -> {} outage {:>8.1} ms, VIP added {:>8.1} ms; heal gap {:>7.1} ms ({} master)",
                    t.number, t.master, t.new_master, t.outage_ms, t.vip_added_ms, t.heal_gap_ms, t.master_after_heal
                );
            }
            let line = |name: &str, s: &Option<Summary>| match s {
                Some(s) => format!(
                    "{name:<14} min {:>8.1}  median {:>8.1}  max {:>8.1} ms\n",
                    s.min, s.median, s.max
                ),
                None => format!("{name:<14} no data\n"),
            };
            if let Some(e) = run.expected_outage(s.advert_interval) {
                let _ = writeln!(
                    out,
                    "expected outage {:.0}..{:.0} ms: {} (priority {}) takes over after 2..3 x {} ms + skew {:.0} ms",
                    e.min_ms,
                    e.max_ms,
                    e.node,
                    e.priority,
                    s.advert_interval.as_millis(),
                    e.skew_ms
                );
            }
            out.push_str(&line("outage", &run.outage_ms));
            out.push_str(&line("VIP added", &run.vip_added_ms));
            out.push_str(&line("heal gap", &run.heal_gap_ms));
            for a in &run.agents {
                let _ = writeln!(
                    out,
                    "  {:<4} RSS {:>6} KiB (peak {:>6}, {} process{}), CPU {:.3} s",
                    a.node,
                    a.rss_kib,
                    a.peak_rss_kib,
                    a.processes,
                    if a.processes == 1 { "" } else { "es" },
                    a.cpu_seconds
                );
            }
            let _ = writeln!(
                out,
                "total RSS {} KiB, CPU {:.3} s; pings answered {}/{}",
                run.total_rss_kib, run.total_cpu_seconds, run.pings_answered, run.pings_sent
            );
            let _ = writeln!(out, "{}", run.unanswered_text(s.rate_hz));
        }
        if let Some(r) = &self.ratio {
            let show = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2}"));
            let _ = writeln!(
                out,
                "\nratio {}/{}: outage median {}, VIP added median {}, RSS {}, CPU {}",
                r.ours,
                r.theirs,
                show(r.outage_median),
                show(r.vip_added_median),
                show(r.rss),
                show(r.cpu)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_and_even_counts() {
        let odd = Summary::of(&[3.0, 1.0, 2.0]).expect("values");
        assert_eq!((odd.min, odd.median, odd.max), (1.0, 2.0, 3.0));
        let even = Summary::of(&[4.0, 1.0, 2.0, 3.0]).expect("values");
        assert_eq!(even.median, 2.5);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }

    fn sample_report() -> Report {
        let settings = Settings {
            nodes: 3,
            advert_interval: std::time::Duration::from_secs(1),
            trials: 2,
            rate_hz: 1000,
        };
        let role = |node: &str, priority, role: &str| NodeRole {
            node: node.into(),
            priority,
            role: role.into(),
        };
        let trial = |number, outage_ms| Trial {
            number,
            master: "n1".into(),
            new_master: "n2".into(),
            outage_ms,
            vip_added_ms: outage_ms - 0.5,
            cut_command_ms: 1.0,
            heal_gap_ms: 2.0,
            master_after_heal: "n1".into(),
        };
        let run = Run {
            implementation: "rcbsd-failover".into(),
            election_ms: 3600.0,
            initial_master: "n1".into(),
            roles: vec![
                role("n1", 150, "master"),
                role("n2", 100, "backup"),
                role("n3", 50, "backup"),
            ],
            trials: vec![trial(1, 3000.0), trial(2, 3500.0)],
            outage_ms: None,
            vip_added_ms: None,
            heal_gap_ms: None,
            agents: Vec::new(),
            total_rss_kib: 0,
            total_cpu_seconds: 0.0,
            pings_sent: 20_000,
            pings_answered: 13_000,
        }
        .summarise();
        Report::new(&settings, vec![run])
    }

    #[test]
    fn the_text_explains_its_figures_and_the_expected_outage() {
        let text = sample_report().to_text();
        for words in [
            "outage     from the cut to the first echo reply",
            "VIP added  from the cut to the VIP",
            "heal gap   after the link is restored",
            "Master_Down_Interval = 3 x advert + skew",
            "advert\ninterval (1000 ms)",
            "pings answered R/S: R echo replies to S requests",
            // n2 (priority 100) takes over: skew (256 - 100) / 256 s.
            "expected outage 2609..3609 ms: n2 (priority 100) takes over",
            "7000 pings unanswered = 7.0 s without the VIP at 1000 Hz (outages and heal gaps sum to 6.5 s)",
        ] {
            assert!(text.contains(words), "{words:?} missing:\n{text}");
        }
        // Each trial once (progress on stderr no longer repeats them).
        assert_eq!(text.matches("trial  1:").count(), 1, "{text}");
    }

    #[test]
    fn an_ipv6_report_says_so_in_text_and_json() {
        let v4 = sample_report();
        assert!(v4.to_text().starts_with("lab: 3 nodes"), "{}", v4.to_text());
        let v6 = v4.with_family(crate::Family::Ipv6);
        assert!(
            v6.to_text().starts_with("lab (IPv6): 3 nodes"),
            "{}",
            v6.to_text()
        );
        let json = serde_json::to_value(&v6).expect("json");
        assert_eq!(json["family"], "ipv6");
    }
}
