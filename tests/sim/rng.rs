//! A tiny seeded PRNG (SplitMix64): the same seed gives the same scenario on
//! every machine, with no crate to pin.

use std::time::Duration;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// SplitMix64 (Steele, Lea, Flood 2014): one add, three xor-shift-multiplies.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (the tiny modulo bias does not matter here).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with the given probability in percent.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `items`, which must not be empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let i = self.range(0, items.len() as u64 - 1) as usize;
        items[i]
    }

    /// Uniform in `0..=max`, at microsecond resolution.
    pub fn duration_up_to(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.range(0, max.as_micros() as u64))
    }
}
