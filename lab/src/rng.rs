//! The lab's one pseudo-random generator (xorshift64*, Marsaglia 2003 with
//! Vigna's multiplier): small and fast. The flooder needs variety, not
//! unpredictability; the trials need cut phases spread over an interval.

use std::time::Duration;

/// A seeded generator: the same seed gives the same sequence.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // xorshift is stuck at zero; any other seed is fine.
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `low..=high` (`low <= high`).
    pub fn between(&mut self, low: u8, high: u8) -> u8 {
        let span = u64::from(high.saturating_sub(low)) + 1;
        low.saturating_add(u8::try_from(self.next_u64() % span).unwrap_or(0))
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or(&[]));
        }
    }

    /// Seeded from the clock's nanoseconds: a different sequence each run.
    pub fn from_clock() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Rng::new(nanos as u64)
    }

    /// A duration spread over `[0, bound)` (zero for a zero bound).
    pub fn below(&mut self, bound: Duration) -> Duration {
        let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(if nanos == 0 {
            0
        } else {
            self.next_u64() % nanos
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_sequence_and_zero_is_not_stuck() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert_eq!(a.next_u64(), b.next_u64());
        let mut zero = Rng::new(0);
        assert_ne!(zero.next_u64(), zero.next_u64());
    }

    #[test]
    fn durations_stay_below_the_bound() {
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            assert!(rng.below(Duration::from_millis(3)) < Duration::from_millis(3));
        }
        assert_eq!(rng.below(Duration::ZERO), Duration::ZERO);
    }
}
