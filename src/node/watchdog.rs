//! When the watchdog may be patted: the fence that works when the agent
//! cannot act (a hung step, a frozen or crashed agent).
//!
//! A pat at instant `t` means "reset this machine unless patted again
//! within the device's timeout `T`". So the agent may pat only while a
//! reset at `t + T` would still come before any other node can take what
//! this node holds:
//!
//! - holding nothing: no countdown is needed at all ([`Verdict::Disarm`]);
//! - with `[cluster]`: every resource it may hold (the master role, each
//!   environment; what the worker reported plus what a decision it has not
//!   yet reported on allowed it to acquire) must have a lease that lasts
//!   at least `T·(1+τ)·(1+ρ) + slack` more on our clock
//!   ([`WatchdogRule::reach`]). The lease already ends, in real time,
//!   before any supporter's promise does (`quorum::lease`); the device
//!   fires up to τ = 20 % late (FreeBSD's sys/sys/watchdog.h warns of
//!   ±10–20 % between hardware timers), and our clock turns a real
//!   duration into at most `(1+ρ)` times as much of ours. Once no pat is
//!   allowed, the machine resets within the reach of the last one, before
//!   the majority may hand the resource to another node;
//! - without `[cluster]` there are no leases: the agent pats while its loop
//!   runs, so a frozen or dead agent that holds the storage resets the
//!   machine instead of keeping it.
//!
//! Before the worker has looked (right after a start) what is held is
//! unknown: the verdict is [`Verdict::Keep`], leaving a countdown armed by
//! an earlier run of the agent as it is.

use std::time::Duration;

use crate::quorum::lease::MAX_DRIFT_PPM;
use crate::quorum::{Holding, NodeQuorum};
use crate::wire::heartbeat::Resource;

/// How late a watchdog device may fire, in percent of its nominal timeout
/// (FreeBSD's sys/sys/watchdog.h: hardware varies by ±10–20 %).
pub const DEVICE_TOLERANCE_PERCENT: u128 = 20;

/// The default [`WatchdogRule::slack`]: between deciding and patting, and
/// between two evaluations of a healthy loop.
pub const WATCHDOG_SLACK: Duration = Duration::from_millis(100);

/// What to do with the watchdog now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is held: stop the countdown.
    Disarm,
    /// Arm if needed and restart the countdown.
    Pat,
    /// Do not pat: the machine resets when the countdown runs out, unless
    /// the leases come back first.
    Withhold {
        /// What is held without a lease long enough, for the log and `status`.
        why: String,
    },
    /// Leave the device as it is (what is held is not known yet).
    Keep,
}

impl Verdict {
    /// The verdict's name in `status` (`disarm`, `pat`, `withhold`, `keep`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Disarm => "disarm",
            Verdict::Pat => "pat",
            Verdict::Withhold { .. } => "withhold",
            Verdict::Keep => "keep",
        }
    }
}

/// The watchdog's timing, from the device's effective timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchdogRule {
    /// The device's countdown (after the device rounded it).
    pub timeout: Duration,
    /// Margin for the time between deciding and patting (scheduling, the
    /// ioctl) and between two evaluations.
    pub slack: Duration,
}

impl WatchdogRule {
    /// How long a lease must still last for a pat to be allowed.
    pub fn reach(&self) -> Duration {
        let ppm = 1_000_000u128;
        let rate = ppm + u128::from(MAX_DRIFT_PPM);
        let nanos = self.timeout.as_nanos() * (100 + DEVICE_TOLERANCE_PERCENT) * rate / (100 * ppm);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)) + self.slack
    }

    /// The verdict for what the worker reports holding (`known`: it has
    /// reported at least once since the start).
    pub fn verdict(
        &self,
        holding: &Holding,
        known: bool,
        cluster: Option<&NodeQuorum>,
        now: std::time::Instant,
    ) -> Verdict {
        if !known {
            return Verdict::Keep;
        }
        if !holding.master && holding.environments.is_empty() {
            return Verdict::Disarm;
        }
        let Some(cluster) = cluster else {
            return Verdict::Pat;
        };
        let mut held: Vec<Resource> = holding
            .environments
            .iter()
            .map(|name| Resource::Environment(name.clone()))
            .collect();
        if holding.master {
            held.insert(0, Resource::Master);
        }
        let reach = self.reach();
        for resource in held {
            match cluster.membership().lease_until(&resource, now) {
                None => {
                    return Verdict::Withhold {
                        why: format!("{resource} is held without a lease"),
                    }
                }
                Some(until) if until < now + reach => {
                    return Verdict::Withhold {
                        why: format!(
                            "the lease on {resource} ends in {} ms, less than the watchdog's reach of {} ms",
                            until.saturating_duration_since(now).as_millis(),
                            reach.as_millis()
                        ),
                    }
                }
                Some(_) => {}
            }
        }
        Verdict::Pat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reach_covers_the_timeout_on_fast_and_slow_clocks() {
        let rule = WatchdogRule {
            timeout: Duration::from_secs(2),
            slack: Duration::from_millis(100),
        };
        // 2 s * 1.2 (late device) * 1.01 (our clock) = 2.424 s, plus the slack.
        assert_eq!(rule.reach(), Duration::from_millis(2_524));
    }

    #[test]
    fn nothing_held_disarms_and_unknown_keeps() {
        let rule = WatchdogRule {
            timeout: Duration::from_secs(2),
            slack: Duration::ZERO,
        };
        let now = std::time::Instant::now();
        let nothing = Holding::default();
        assert_eq!(rule.verdict(&nothing, true, None, now), Verdict::Disarm);
        assert_eq!(rule.verdict(&nothing, false, None, now), Verdict::Keep);
        let master = Holding {
            master: true,
            ..Holding::default()
        };
        assert_eq!(rule.verdict(&master, true, None, now), Verdict::Pat);
    }
}
