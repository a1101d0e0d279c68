//! The quorum simulation: N real node cores (`node::NodeCore`: election,
//! quorum, faults, overrides, the fence) on drifting clocks, a lossy
//! network, the real worker decisions (`node::converge::Converger`) over
//! simulated runbook steps that fail, hang and are slow, watchdogs, and the
//! ledger that checks that no resource is ever physically held twice.

pub mod clock;
pub mod ledger;
pub mod network;
pub mod scenario;
pub mod worker;
pub mod world;
