//! The quorum simulation: N real election cores and quorum states on
//! drifting clocks, a lossy network, a model of the runbook worker, and the
//! ledger that checks that no resource ever has two holders.

pub mod agent;
pub mod clock;
pub mod ledger;
pub mod network;
pub mod scenario;
pub mod worker;
pub mod world;
