//! Fencing: what resets a node that can no longer prove it may hold the
//! cluster's storage.
//!
//! - [`watchdog`]: the watchdog device layer — FreeBSD watchdog(4), the
//!   Linux watchdog API, or a FIFO read by an external supervisor. It only
//!   opens, pats and disarms; when to pat is the agent's policy.

pub mod watchdog;

pub use watchdog::{Watchdog, WatchdogError, WatchdogKind};
