//! `[fence]`: what fences this node when its agent cannot act: a hardware
//! watchdog (watchdog(4) on FreeBSD, `/dev/watchdog` on Linux), patted
//! only while the node holds nothing or its leases cover the countdown
//! (`node::watchdog`).

use std::path::PathBuf;
use std::time::Duration;

/// Default `fence.watchdog_timeout`: what the agent asks of the device.
/// FreeBSD's watchdog(4) rounds it down to a power of two nanoseconds
/// (1.07 s), Linux to whole seconds (2 s); a FIFO keeps it (2 s).
pub const DEFAULT_WATCHDOG_TIMEOUT: Duration = Duration::from_secs(2);
/// `[cluster] lease` by default when a watchdog is configured: a failover
/// after a crash or an isolation takes about this plus the promote.
pub const WATCHDOG_LEASE: Duration = Duration::from_secs(4);
/// `[cluster] fence_margin` by default when a watchdog is configured.
pub const WATCHDOG_FENCE_MARGIN: Duration = Duration::from_secs(3);

/// `[fence]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fence {
    /// `None`: no watchdog; the leases then rely on the agent running.
    pub watchdog: Option<Watchdog>,
}

/// `fence.watchdog` and its timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watchdog {
    /// `/dev/fido` (FreeBSD), `/dev/watchdog` (Linux), or a FIFO read by a
    /// supervisor (tests).
    pub device: PathBuf,
    /// The countdown the agent asks for; the device may round it down.
    pub timeout: Duration,
}
