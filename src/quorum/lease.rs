//! Lease arithmetic: how long a supporter's promise lasts on the holder's
//! clock, and how many supporters make a majority.
//!
//! A supporter promises "I will support nobody else for resource R until
//! `lease` has passed on *my* clock since I last heard your claim". The
//! holder cannot read that clock. It counts from the moment it *sent* the
//! claim the supporter acknowledged (which is before the supporter heard
//! it: message delay only makes the holder more careful), and shortens the
//! lease by the worst rate difference of the two clocks.
//!
//! With both clocks within `MAX_DRIFT` of real time, a supporter's `lease`
//! lasts at least `lease / (1 + ρ)` real seconds, and a holder's span `s`
//! measured on its own clock lasts at most `s / (1 - ρ)` real seconds. So
//! `s = lease * (1 - ρ) / (1 + ρ)` ends, in real time, no later than the
//! promise. The holder stops using the resource `fence_margin` before that.

use std::time::Duration;

/// The largest clock *rate* error assumed between any node and real time:
/// 1 % (10 000 ppm). Crystal oscillators are within 100 ppm; the margin
/// covers virtual machines and NTP slewing (at most 500 ppm). Documented in
/// docs/design.md as an assumption of the safety guarantee.
pub const MAX_DRIFT_PPM: u64 = 10_000;

const PPM: u64 = 1_000_000;

/// How long a lease acknowledged at `sent` lasts on the holder's clock:
/// `lease * (1 - ρ) / (1 + ρ)`, rounded down to the microsecond.
pub fn holder_span(lease: Duration) -> Duration {
    let micros = u64::try_from(lease.as_micros()).unwrap_or(u64::MAX);
    // (1 - ρ) / (1 + ρ) = (PPM - drift) / (PPM + drift); u128 so that no
    // product can overflow.
    let span =
        u128::from(micros) * u128::from(PPM - MAX_DRIFT_PPM) / u128::from(PPM + MAX_DRIFT_PPM);
    Duration::from_micros(u64::try_from(span).unwrap_or(u64::MAX))
}

/// A strict majority of `members` nodes.
pub fn majority(members: usize) -> usize {
    members / 2 + 1
}

/// The time until which at least `needed` of the `deadlines` are still in
/// the future: the `needed`-th latest deadline. `None` when fewer than
/// `needed` deadlines exist.
pub fn kth_latest<T: Ord + Copy>(mut deadlines: Vec<T>, needed: usize) -> Option<T> {
    if needed == 0 || deadlines.len() < needed {
        return None;
    }
    deadlines.sort_unstable_by(|a, b| b.cmp(a));
    deadlines.get(needed - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_is_strict() {
        assert_eq!(majority(1), 1);
        assert_eq!(majority(2), 2);
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(5), 3);
    }

    #[test]
    fn holder_span_is_shorter_by_the_drift_on_both_clocks() {
        // 3 s * 0.99 / 1.01 = 2.940594 s
        assert_eq!(
            holder_span(Duration::from_secs(3)),
            Duration::from_micros(2_940_594)
        );
        assert!(holder_span(Duration::from_secs(1)) < Duration::from_secs(1));
    }

    #[test]
    fn the_span_never_outlasts_the_promise_at_extreme_drift() {
        // Supporter clock fast by ρ: its promise of `lease` lasts
        // lease / (1 + ρ) real time. Holder clock slow by ρ: its span lasts
        // span / (1 - ρ) real time. The second must not exceed the first.
        for secs in [1u64, 3, 10, 60] {
            let lease = Duration::from_secs(secs).as_secs_f64();
            let rho = MAX_DRIFT_PPM as f64 / PPM as f64;
            let span = holder_span(Duration::from_secs(secs)).as_secs_f64();
            assert!(span / (1.0 - rho) <= lease / (1.0 + rho) + 1e-9);
        }
    }

    #[test]
    fn kth_latest_picks_the_deadline_a_majority_still_meets() {
        assert_eq!(kth_latest(vec![5, 9, 7], 2), Some(7));
        assert_eq!(kth_latest(vec![5, 9, 7], 3), Some(5));
        assert_eq!(kth_latest(vec![5], 2), None);
        assert_eq!(kth_latest(Vec::<u32>::new(), 0), None);
    }
}
