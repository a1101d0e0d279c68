//! Cooperative cancellation: Ctrl-C (SIGINT) and SIGTERM set a flag that
//! every wait loop of the lab checks, so the loop stops and the topology's
//! `Drop` tears everything down. A second Ctrl-C exits at once (the escape
//! hatch if teardown itself hangs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared "stop now" flag.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag nothing sets except [`Cancel::cancel`] (tests).
    pub fn never() -> Self {
        Cancel::default()
    }

    /// A flag set by SIGINT or SIGTERM; a second signal terminates the
    /// process with exit status 1.
    pub fn on_signals() -> std::io::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Order matters: the conditional shutdown must see the flag as it
            // was *before* this signal set it.
            signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&flag))?;
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
        }
        Ok(Cancel(flag))
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration`, looking at the flag every 20 ms;
    /// `Err(Interrupted)` as soon as it is set.
    pub fn sleep(&self, duration: std::time::Duration) -> Result<(), crate::LabError> {
        let deadline = std::time::Instant::now() + duration;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            if left.is_zero() {
                break;
            }
            if self.is_cancelled() {
                return Err(crate::LabError::Interrupted);
            }
            std::thread::sleep(left.min(std::time::Duration::from_millis(20)));
        }
        Ok(())
    }
}
