//! One node's clock: real (simulated) time scaled by a rate within ±1 % of
//! real time, from an arbitrary origin. The pure core only ever sees its own
//! node's clock, so a lease arithmetic that forgot the drift shows up here.

use std::time::{Duration, Instant};

const PPM: u128 = 1_000_000;

#[derive(Clone, Copy, Debug)]
pub struct NodeClock {
    origin: Instant,
    /// Rate error in parts per million: +10 000 runs 1 % fast.
    pub drift_ppm: i32,
}

impl NodeClock {
    pub fn new(origin: Instant, drift_ppm: i32) -> Self {
        NodeClock { origin, drift_ppm }
    }

    fn rate(&self) -> u128 {
        (PPM as i128 + i128::from(self.drift_ppm)) as u128
    }

    /// What this node's clock reads at real time `real`.
    pub fn at(&self, real: Duration) -> Instant {
        let local = real.as_nanos() * self.rate() / PPM;
        self.origin + Duration::from_nanos(local as u64)
    }

    /// The first real time at which this node's clock reads `local` or
    /// later (rounded up, so a timer never fires early on its own clock).
    pub fn real_when(&self, local: Instant) -> Duration {
        let elapsed = local.saturating_duration_since(self.origin).as_nanos();
        let real = (elapsed * PPM).div_ceil(self.rate());
        Duration::from_nanos(real as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_converted_to_real_time_never_fires_early() {
        let origin = Instant::now();
        for drift in [-10_000, -1, 0, 7, 10_000] {
            let clock = NodeClock::new(origin, drift);
            for ms in [0u64, 1, 999, 123_457] {
                let local = origin + Duration::from_nanos(ms * 1_000_003);
                let real = clock.real_when(local);
                assert!(clock.at(real) >= local);
                assert!(real.is_zero() || clock.at(real - Duration::from_nanos(1)) < local);
            }
        }
    }
}
