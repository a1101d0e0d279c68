//! `[notify]`: a command run on every state change (read and checked in
//! `load/notify.rs`).

use std::time::Duration;

/// `[notify]`: a command run on every state change, like keepalived's
/// `notify`. Argv only: nothing from the network reaches a shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Program and arguments; the event comes in the environment
    /// (`RCBSD_EVENT`, `RCBSD_FROM`, `RCBSD_TO`, ...).
    pub command: Vec<String>,
    /// The command is killed after this long.
    pub timeout: Duration,
}

pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
