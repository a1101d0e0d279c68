//! The many-node simulation harness for the election core: a seeded PRNG
//! (`rng`), a fake clock and multicast segment (`world`), and random
//! scenarios with their invariants (`scenario`).

pub mod rng;
pub mod scenario;
pub mod world;
