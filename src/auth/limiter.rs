//! Rate limiting of the `auth_failed` alert: forged or mis-keyed messages
//! can arrive by the thousand per second, the log should say so once per
//! sender per period, with the count of what it did not say.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// An alert to log now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthAlert<K> {
    /// The sender; `None` when too many distinct senders failed at once and
    /// the failures were pooled (source addresses can be forged at will).
    pub sender: Option<K>,
    /// Failures from that sender not logged since its previous alert.
    pub suppressed: u64,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    logged_at: Instant,
    suppressed: u64,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            logged_at: now,
            suppressed: 0,
        }
    }

    /// Counts one failure; returns the suppressed count when an alert is
    /// due (at most one per `period`).
    fn record(&mut self, now: Instant, period: Duration) -> Option<u64> {
        if now.saturating_duration_since(self.logged_at) >= period {
            let suppressed = self.suppressed;
            *self = Window::new(now);
            Some(suppressed)
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        }
    }

    fn expired(&self, now: Instant, period: Duration) -> bool {
        now.saturating_duration_since(self.logged_at) >= period
    }
}

/// Decides, per sender, whether an authentication failure is alerted now:
/// the first failure of a sender is, then at most one per `period`.
///
/// Memory bound: at most `capacity` senders are tracked; when full,
/// senders whose period has passed are forgotten, and failures from yet
/// more senders share one pooled window (alerted with `sender: None`).
#[derive(Clone, Debug)]
pub struct AuthFailureLimiter<K> {
    senders: BTreeMap<K, Window>,
    pooled: Option<Window>,
    period: Duration,
    capacity: usize,
}

impl<K: Ord + Clone> AuthFailureLimiter<K> {
    /// The alert period of issue 5: one alert per sender per 10 s.
    pub const PERIOD: Duration = Duration::from_secs(10);
    /// Senders tracked individually before failures are pooled.
    pub const CAPACITY: usize = 256;

    /// A limiter that alerts at most once per `period` for each of up to
    /// `capacity` senders (usually [`Self::PERIOD`] and [`Self::CAPACITY`]).
    pub fn new(period: Duration, capacity: usize) -> Self {
        AuthFailureLimiter {
            senders: BTreeMap::new(),
            pooled: None,
            period,
            capacity,
        }
    }

    /// Records one failure from `sender` at `now`; returns the alert to log
    /// now, if one is due.
    pub fn record(&mut self, sender: &K, now: Instant) -> Option<AuthAlert<K>> {
        let period = self.period;
        if let Some(window) = self.senders.get_mut(sender) {
            return window.record(now, period).map(|suppressed| AuthAlert {
                sender: Some(sender.clone()),
                suppressed,
            });
        }
        if self.senders.len() >= self.capacity {
            self.senders
                .retain(|_, window| !window.expired(now, period));
        }
        if self.senders.len() < self.capacity {
            self.senders.insert(sender.clone(), Window::new(now));
            return Some(AuthAlert {
                sender: Some(sender.clone()),
                suppressed: 0,
            });
        }
        match &mut self.pooled {
            Some(window) => window.record(now, period).map(|suppressed| AuthAlert {
                sender: None,
                suppressed,
            }),
            None => {
                self.pooled = Some(Window::new(now));
                Some(AuthAlert {
                    sender: None,
                    suppressed: 0,
                })
            }
        }
    }
}

impl<K: Ord + Clone> Default for AuthFailureLimiter<K> {
    fn default() -> Self {
        Self::new(Self::PERIOD, Self::CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(10);

    #[test]
    fn the_first_failure_alerts_then_one_per_period_with_the_suppressed_count() {
        let start = Instant::now();
        let mut limiter = AuthFailureLimiter::new(PERIOD, 8);
        assert_eq!(
            limiter.record(&"a", start),
            Some(AuthAlert {
                sender: Some("a"),
                suppressed: 0
            })
        );
        for second in 1..10 {
            assert_eq!(
                limiter.record(&"a", start + Duration::from_secs(second)),
                None
            );
        }
        assert_eq!(
            limiter.record(&"a", start + PERIOD),
            Some(AuthAlert {
                sender: Some("a"),
                suppressed: 9
            })
        );
        assert_eq!(limiter.record(&"a", start + PERIOD), None);
    }

    #[test]
    fn senders_have_separate_windows() {
        let start = Instant::now();
        let mut limiter = AuthFailureLimiter::new(PERIOD, 8);
        assert!(limiter.record(&"a", start).is_some());
        assert!(limiter.record(&"b", start).is_some());
        assert!(limiter.record(&"a", start).is_none());
    }

    #[test]
    fn beyond_capacity_failures_are_pooled_and_expired_senders_forgotten() {
        let start = Instant::now();
        let mut limiter = AuthFailureLimiter::new(PERIOD, 2);
        assert!(limiter.record(&1, start).is_some());
        assert!(limiter.record(&2, start).is_some());
        assert_eq!(
            limiter.record(&3, start),
            Some(AuthAlert {
                sender: None,
                suppressed: 0
            })
        );
        assert_eq!(limiter.record(&4, start), None, "pooled, within the period");
        // A period later senders 1 and 2 are forgotten, 5 gets its own window.
        assert_eq!(
            limiter.record(&5, start + PERIOD),
            Some(AuthAlert {
                sender: Some(5),
                suppressed: 0
            })
        );
    }
}
