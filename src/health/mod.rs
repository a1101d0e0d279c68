//! Health between transitions, pure: what each check's results mean and
//! what is done about a failure (issue 12). The edges run the checks (an
//! argv or a probe under a timeout, off the agent's threads) and feed the
//! results here; this module answers with what to log, what to repair, and
//! the node's verdict (a priority delta, or a resignation) for the node
//! core.
//!
//! A check is good or failed, as keepalived's `vrrp_script`: `fall`
//! failures in a row make a good check failed, `rise` successes in a row
//! make a failed check good again; a new check starts good, so a node is
//! never punished for checks that have not run yet. What a failed check
//! does is its [`Response`]:
//!
//! - **repair** (the master's services, exports, storage mounts, VIP and
//!   nfsd listener): each failure asks for one repair at a time. Repairs
//!   are counted in a sliding window; a failure with `max_repairs` already
//!   in the window resigns instead (`resigned_unhealthy`): the node goes to
//!   fault for `hold_off`, so the next node promotes. Pacemaker calls this
//!   `migration-threshold`.
//! - **alert** (storage degraded): logged, nothing else; a degraded pool
//!   still serves, and a failover would not heal it.
//! - **remount** (a follower's hung NFS mount): once failed for
//!   `mount_hang_limit` in a row, ask for the full follow (force-dismount,
//!   mount again, restart what ran on it).
//! - **restart** (an environment that stopped by itself): per the restart
//!   policy, at most `max_restarts` within its window; then alert only.
//! - **weight** / **resign** (`[[track]]`, `track_interfaces`): while
//!   failed, a priority delta or a fault, cleared when the check rises.
//!
//! An environment the operator *holds* (`rcbsd-failover env hold NAME`:
//! stopped on purpose) is never fought: its check still runs and shows in
//! `status`, but a stop is neither alerted (`health_check_failed`,
//! `environment_died`) nor restarted; it is said once per failure
//! ([`Action::Held`]). Released, the check judges it as any other on its
//! next failed run.
//!
//! Each check also counts its runs, failed runs, repairs and restarts, and
//! remembers when its state last changed, for `status` and the metrics.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Which check: stable names, in `status` and in every event's `check`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckId {
    /// An NFS service of the master running (`service NAME onestatus`).
    Service(String),
    /// The agent's exports block intact in the exports file.
    Exports,
    /// The storage itself: HAST primary and complete, or the pool ONLINE.
    Storage,
    /// The storage mount and every nullfs bind of the shared dirs present.
    Mounts,
    /// Every virtual IP on the interface.
    Vip,
    /// nfsd listening on port 2049.
    NfsdListening,
    /// mountd exports every shared dir (`showmount -E`).
    MountdExports,
    /// A follower's NFS mount of this shared dir answers a bounded probe.
    NfsMount(String),
    /// An environment placed here is running.
    Environment(String),
    /// An operator's `[[track]]`.
    Track(String),
    /// A `health.track_interfaces` entry has its carrier.
    Interface(String),
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckId::Service(name) => write!(f, "service {name}"),
            CheckId::Exports => f.write_str("exports"),
            CheckId::Storage => f.write_str("storage"),
            CheckId::Mounts => f.write_str("storage mounts"),
            CheckId::Vip => f.write_str("vip"),
            CheckId::NfsdListening => f.write_str("nfsd listening"),
            CheckId::MountdExports => f.write_str("mountd exports"),
            CheckId::NfsMount(dir) => write!(f, "nfs mount {dir}"),
            CheckId::Environment(name) => write!(f, "environment {name}"),
            CheckId::Track(name) => write!(f, "track {name}"),
            CheckId::Interface(name) => write!(f, "interface {name}"),
        }
    }
}

/// What a failed check does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// Ask for a repair, within the repair budget; resign past it.
    Repair,
    /// Log only.
    Alert,
    /// Ask for a remount once failed for `mount_hang_limit`.
    Remount,
    /// Ask for a restart, per the restart policy.
    Restart,
    /// Add this to the priority while failed.
    Weight(i16),
    /// Be in fault while failed.
    Resign,
}

impl Response {
    /// The `response` field of `health_check_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Response::Repair => "repair",
            Response::Alert => "alert",
            Response::Remount => "remount",
            Response::Restart => "restart",
            Response::Weight(_) => "weight",
            Response::Resign => "resign",
        }
    }
}

/// How a check is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// Successes in a row that make a failed check good.
    pub rise: u32,
    /// Failures in a row that make a good check failed.
    pub fall: u32,
    /// What a failed check does.
    pub response: Response,
}

/// The limits of what is done about failures (`[health]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `health.max_repairs`: repairs allowed within `repair_window`.
    pub max_repairs: u32,
    /// `health.repair_window`.
    pub repair_window: Duration,
    /// How long a resignation for failed repairs lasts
    /// (`runbook.fault_hold_off`).
    pub hold_off: Duration,
    /// `health.mount_hang_limit`.
    pub mount_hang_limit: Duration,
    /// Restarts allowed within `restart_window`; `None`: the restart
    /// policy is `never`.
    pub max_restarts: Option<u32>,
    /// `health.restart_window`.
    pub restart_window: Duration,
}

/// What the edges must do, or log, after a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The check went from good to failed (`health_check_failed`).
    Failed {
        /// Which check.
        check: CheckId,
        /// What the last run said.
        detail: String,
    },
    /// The check went from failed to good (`health_check_recovered`).
    Recovered {
        /// Which check.
        check: CheckId,
    },
    /// Run the check's repair and report with [`Monitor::repair_finished`]
    /// (`repair_started`).
    Repair {
        /// Which check.
        check: CheckId,
    },
    /// Force-dismount, mount again and restart what ran on it: the full
    /// follow.
    Remount {
        /// The check that asked (an NFS mount).
        check: CheckId,
    },
    /// Start the environment again.
    Restart {
        /// The environment's name.
        environment: String,
    },
    /// The environment stopped and the policy does not restart it (now):
    /// `environment_died`.
    EnvironmentDied {
        /// The environment's name.
        environment: String,
        /// Why it is not restarted (`restart_policy never`, or the budget).
        why: String,
    },
    /// The environment stopped, and the operator holds it: not restarted,
    /// not alerted; said once per failure (`held_not_started`).
    Held {
        /// The environment's name.
        environment: String,
    },
    /// Repairs failed too often: resign (`resigned_unhealthy`).
    Resign {
        /// The check whose failure passed the budget.
        check: CheckId,
        /// Repairs tried within the window.
        repairs: u32,
    },
}

/// The node's verdict from its checks, for the node core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Added to the configured priority: failed weighted tracks and
    /// `track_file`.
    pub priority_delta: i32,
    /// Why the node must be in fault, if it must.
    pub resign: Option<String>,
}

/// One check's state, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckState {
    /// How it is judged.
    pub judgement: Judgement,
    /// False once failed (`fall` in a row), true again after `rise`.
    pub good: bool,
    /// Results of the current kind in a row (successes while failed count
    /// towards `rise`, failures while good towards `fall`).
    pub in_row: u32,
    /// What the last run said ("" when it succeeded).
    pub detail: String,
    /// When it last ran.
    pub last_run: Option<Instant>,
    /// Since when it is failed (or has been failing, before `fall`).
    pub failing_since: Option<Instant>,
    /// A repair or restart asked for and not reported yet.
    pub repairing: bool,
    /// This failure was reported as `environment_died`, or as held (once
    /// per failure, until the check is good again or the hold is released).
    pub died_reported: bool,
    /// The change to failed was announced ([`Action::Failed`]): only then
    /// is the way back announced ([`Action::Recovered`]). A held
    /// environment's stop is not.
    pub failure_announced: bool,
    /// When the state was last known to change: the first run, then each
    /// change between good and failed.
    pub last_change: Option<Instant>,
    /// Runs since the check applies.
    pub runs: u64,
    /// Failed runs since the check applies.
    pub failures: u64,
    /// Repairs and remounts asked for since the check applies.
    pub repairs: u64,
    /// Restarts asked for since the check applies (environments).
    pub restarts: u64,
}

/// Every check's state and the budgets.
#[derive(Clone, Debug)]
pub struct Monitor {
    limits: Limits,
    checks: BTreeMap<CheckId, CheckState>,
    repairs: VecDeque<Instant>,
    restarts: BTreeMap<String, VecDeque<Instant>>,
    resigned: Option<(CheckId, Instant)>,
    track_file: i32,
    held: BTreeSet<String>,
}

impl Monitor {
    /// A monitor with no checks yet.
    pub fn new(limits: Limits) -> Self {
        Monitor {
            limits,
            checks: BTreeMap::new(),
            repairs: VecDeque::new(),
            restarts: BTreeMap::new(),
            resigned: None,
            track_file: 0,
            held: BTreeSet::new(),
        }
    }

    /// The environments the operator holds (`env hold`): their stops are
    /// neither restarted nor alerted. A released one's failure is judged
    /// afresh on its next failed run (reported or restarted once more).
    pub fn set_held(&mut self, held: BTreeSet<String>) {
        for (id, state) in &mut self.checks {
            if let CheckId::Environment(name) = id {
                if self.held.contains(name) && !held.contains(name) {
                    state.died_reported = false;
                }
            }
        }
        self.held = held;
    }

    /// Whether the check is an environment the operator holds.
    pub fn is_held(&self, id: &CheckId) -> bool {
        matches!(id, CheckId::Environment(name) if self.held.contains(name))
    }

    /// New limits (a reload); the counts so far stay.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The checks that apply now (they change with the role and what the
    /// worker holds): new ones start good, ones no longer listed are
    /// forgotten (a master check says nothing about a follower).
    pub fn set_checks(&mut self, checks: impl IntoIterator<Item = (CheckId, Judgement)>) {
        let mut next = BTreeMap::new();
        for (id, judgement) in checks {
            let state = match self.checks.remove(&id) {
                Some(mut state) => {
                    state.judgement = judgement;
                    state
                }
                None => CheckState {
                    judgement,
                    good: true,
                    in_row: 0,
                    detail: String::new(),
                    last_run: None,
                    failing_since: None,
                    repairing: false,
                    died_reported: false,
                    failure_announced: false,
                    last_change: None,
                    runs: 0,
                    failures: 0,
                    repairs: 0,
                    restarts: 0,
                },
            };
            next.insert(id, state);
        }
        self.checks = next;
    }

    /// Every check and its state, in a stable order.
    pub fn checks(&self) -> impl Iterator<Item = (&CheckId, &CheckState)> {
        self.checks.iter()
    }

    /// The value read from `health.track_file` (0 when absent).
    pub fn set_track_file(&mut self, value: i32) {
        self.track_file = value;
    }

    /// One run's result: `Ok(())`, or what went wrong.
    pub fn observe(
        &mut self,
        id: &CheckId,
        result: Result<(), String>,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let held = self.is_held(id);
        let Some(state) = self.checks.get_mut(id) else {
            // Stopped applying while it ran.
            return out;
        };
        if state.last_run.is_none() {
            state.last_change = Some(now);
        }
        state.last_run = Some(now);
        state.runs += 1;
        let judgement = state.judgement;
        match result {
            Ok(()) => {
                state.detail.clear();
                if state.good {
                    state.in_row = 0;
                    state.failing_since = None;
                } else {
                    state.in_row += 1;
                    if state.in_row >= judgement.rise {
                        state.good = true;
                        state.in_row = 0;
                        state.failing_since = None;
                        state.died_reported = false;
                        state.last_change = Some(now);
                        if std::mem::take(&mut state.failure_announced) {
                            out.push(Action::Recovered { check: id.clone() });
                        }
                    }
                }
            }
            Err(detail) => {
                state.failures += 1;
                state.detail = detail.clone();
                state.failing_since.get_or_insert(now);
                if state.good {
                    state.in_row += 1;
                    if state.in_row >= judgement.fall {
                        state.good = false;
                        state.in_row = 0;
                        state.last_change = Some(now);
                        // The operator stopped it on purpose: no alert.
                        if !held {
                            state.failure_announced = true;
                            out.push(Action::Failed {
                                check: id.clone(),
                                detail,
                            });
                        }
                    }
                } else {
                    state.in_row = 0;
                }
                if !state.good {
                    self.respond(id, now, &mut out);
                }
            }
        }
        out
    }

    /// A repair, remount or restart asked for by an [`Action`] is over
    /// (`succeeded` or not). Its check decides the rest on its next runs.
    pub fn repair_finished(&mut self, id: &CheckId) {
        if let Some(state) = self.checks.get_mut(id) {
            state.repairing = false;
        }
    }

    /// The node's verdict now.
    pub fn verdict(&self, now: Instant) -> Verdict {
        let mut verdict = Verdict {
            priority_delta: self.track_file,
            resign: None,
        };
        if let Some((check, at)) = &self.resigned {
            if now < *at + self.limits.hold_off {
                verdict.resign = Some(format!("{check} failed and its repairs did not hold"));
            }
        }
        for (id, state) in &self.checks {
            if state.good {
                continue;
            }
            match state.judgement.response {
                Response::Weight(weight) => verdict.priority_delta += i32::from(weight),
                Response::Resign if verdict.resign.is_none() => {
                    verdict.resign = Some(format!("{id} failed"));
                }
                _ => {}
            }
        }
        verdict
    }

    /// `resume`: the operator says the cause of a resignation is fixed.
    pub fn clear_resignation(&mut self) {
        self.resigned = None;
    }

    /// When the verdict may change without a new result: the end of a
    /// resignation's hold-off.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.resigned
            .as_ref()
            .map(|(_, at)| *at + self.limits.hold_off)
    }

    fn respond(&mut self, id: &CheckId, now: Instant, out: &mut Vec<Action>) {
        let held = self.is_held(id);
        let Some(state) = self.checks.get_mut(id) else {
            return;
        };
        if state.repairing {
            return;
        }
        match state.judgement.response {
            Response::Alert | Response::Weight(_) | Response::Resign => {}
            Response::Repair => {
                let window = self.limits.repair_window;
                while self
                    .repairs
                    .front()
                    .is_some_and(|at| now.saturating_duration_since(*at) >= window)
                {
                    self.repairs.pop_front();
                }
                let tried = u32::try_from(self.repairs.len()).unwrap_or(u32::MAX);
                if tried >= self.limits.max_repairs {
                    let fresh = self
                        .resigned
                        .as_ref()
                        .is_none_or(|(_, at)| now >= *at + self.limits.hold_off);
                    if fresh {
                        self.resigned = Some((id.clone(), now));
                        out.push(Action::Resign {
                            check: id.clone(),
                            repairs: tried,
                        });
                    }
                    return;
                }
                self.repairs.push_back(now);
                state.repairing = true;
                state.repairs += 1;
                out.push(Action::Repair { check: id.clone() });
            }
            Response::Remount => {
                let hung_for = state
                    .failing_since
                    .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
                if hung_for >= self.limits.mount_hang_limit {
                    state.repairing = true;
                    state.failing_since = None;
                    state.repairs += 1;
                    out.push(Action::Remount { check: id.clone() });
                }
            }
            Response::Restart => {
                let CheckId::Environment(name) = id else {
                    return;
                };
                if held {
                    // Stopped on purpose: said once, never fought.
                    if !state.died_reported {
                        state.died_reported = true;
                        out.push(Action::Held {
                            environment: name.clone(),
                        });
                    }
                    return;
                }
                let Some(max) = self.limits.max_restarts else {
                    // Once per failure: `respond` runs on each failed run.
                    if state.died_reported {
                        return;
                    }
                    state.died_reported = true;
                    out.push(Action::EnvironmentDied {
                        environment: name.clone(),
                        why: "health.restart_policy is \"never\"".to_owned(),
                    });
                    return;
                };
                let window = self.limits.restart_window;
                let history = self.restarts.entry(name.clone()).or_default();
                while history
                    .front()
                    .is_some_and(|at| now.saturating_duration_since(*at) >= window)
                {
                    history.pop_front();
                }
                if u32::try_from(history.len()).unwrap_or(u32::MAX) >= max {
                    if !state.died_reported {
                        state.died_reported = true;
                        out.push(Action::EnvironmentDied {
                            environment: name.clone(),
                            why: format!(
                                "restarted {max} times within {} s already",
                                window.as_secs()
                            ),
                        });
                    }
                    return;
                }
                history.push_back(now);
                state.repairing = true;
                state.restarts += 1;
                out.push(Action::Restart {
                    environment: name.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
