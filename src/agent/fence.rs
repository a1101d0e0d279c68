//! The agent's side of the watchdog: the device (`crate::fence`), and what
//! the node core's verdict means for it at each tick.
//!
//! The device is opened on first use, not at start: on Linux, opening
//! `/dev/watchdog` arms it, and what this node holds is not known until
//! the worker's start-up probe. An earlier run may have left the countdown
//! armed; it keeps running until the first verdict (a pat, or a disarm
//! once nothing is held), so a crash while holding the storage is fenced
//! by a reset unless the restarted agent proves its leases in time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::fence::Watchdog as WatchdogConfig;
use crate::control::protocol::WatchdogStatus;
use crate::events;
use crate::fence::watchdog::{Watchdog, WatchdogError};
use crate::node::watchdog::WATCHDOG_SLACK;
use crate::node::{NodeCore, Verdict, WatchdogRule};

pub struct Fence {
    device: PathBuf,
    wanted: Duration,
    /// The device's countdown (after its rounding).
    timeout: Duration,
    kind: String,
    watchdog: Option<Watchdog>,
    /// `None` until the first pat or disarm of this run.
    armed: Option<bool>,
    /// The last state announced (`watchdog_state`).
    announced: Option<&'static str>,
    last_pat: Option<Instant>,
    pats: u64,
    failures: u64,
}

impl Fence {
    /// Checks the device (it exists, is a character device or a FIFO) and
    /// learns its effective timeout, without arming it.
    pub fn open(config: &WatchdogConfig) -> Result<Fence, WatchdogError> {
        let (kind, timeout) = Watchdog::examine(&config.device, config.timeout)?;
        Ok(Fence {
            device: config.device.clone(),
            wanted: config.timeout,
            timeout,
            kind: kind.to_string(),
            watchdog: None,
            armed: None,
            announced: None,
            last_pat: None,
            pats: 0,
            failures: 0,
        })
    }

    /// The core's rule for this device.
    pub fn rule(&self) -> WatchdogRule {
        WatchdogRule {
            timeout: self.timeout,
            slack: WATCHDOG_SLACK,
        }
    }

    /// How often the loop asks: a few times per countdown.
    pub fn pat_interval(&self) -> Duration {
        (self.timeout / 4).max(Duration::from_millis(50))
    }

    fn device(&mut self) -> Result<&mut Watchdog, WatchdogError> {
        match &mut self.watchdog {
            Some(watchdog) => Ok(watchdog),
            slot => Ok(slot.insert(Watchdog::open(&self.device, self.wanted)?)),
        }
    }

    /// Acts on the core's verdict.
    pub fn tend(&mut self, verdict: Verdict) {
        let result = match &verdict {
            Verdict::Pat => self.device().and_then(Watchdog::pat).map(|()| {
                self.armed = Some(true);
                self.pats += 1;
                self.last_pat = Some(Instant::now());
            }),
            Verdict::Disarm if self.armed != Some(false) => {
                self.device().and_then(Watchdog::disarm).map(|()| {
                    self.armed = Some(false);
                })
            }
            Verdict::Disarm | Verdict::Withhold { .. } | Verdict::Keep => Ok(()),
        };
        if let Err(e) = result {
            self.failures += 1;
            // The device may be gone or refuse: drop it and try afresh.
            self.watchdog = None;
            events::watchdog_failed(&self.device.display().to_string(), &e.to_string());
            return;
        }
        let state = match &verdict {
            Verdict::Pat => "armed",
            Verdict::Disarm => "disarmed",
            Verdict::Withhold { .. } => "withheld",
            Verdict::Keep => return,
        };
        if self.announced != Some(state) {
            self.announced = Some(state);
            let why = match &verdict {
                Verdict::Withhold { why } => why.as_str(),
                Verdict::Pat => "held, with leases covering the countdown",
                _ => "nothing held",
            };
            events::watchdog_state(
                state,
                u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                why,
            );
        }
    }

    /// At exit: disarm only when everything was released; otherwise the
    /// countdown stays armed and fences the node.
    pub fn stop(&mut self, released: bool) {
        if released {
            self.tend(Verdict::Disarm);
        }
    }

    pub fn status(&self, core: &NodeCore, now: Instant) -> WatchdogStatus {
        let verdict = core.watchdog(now);
        WatchdogStatus {
            device: self.device.display().to_string(),
            kind: self.kind.clone(),
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            armed: self.armed == Some(true),
            verdict: verdict.as_str().to_owned(),
            why: match verdict {
                Verdict::Withhold { why } => Some(why),
                _ => None,
            },
            last_pat_ms: self
                .last_pat
                .map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)),
            pats: self.pats,
            failures: self.failures,
        }
    }
}
