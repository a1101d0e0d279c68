//! The runbook's log events (to be merged into `crate::events`): one
//! `runbook_started`, one `runbook_step` per attempt of each step, and one
//! of `runbook_finished` / `runbook_failed` / `runbook_cancelled`.
//! `docs/runbooks.md` lists their fields.

use tracing::{error, info, warn};

/// A runbook began; `steps` counts the steps known at start (environment
/// starts are added once the mounts are verified).
pub fn runbook_started(runbook: &str, node: &str, steps: usize) {
    info!(event = "runbook_started", runbook, node, steps);
}

/// One attempt of one step. `argv` is every command the attempt ran, in
/// order, separated by ` ; ` (empty for builtins); `outcome` is `ok`,
/// `already` (the probe found the work done), `failed`, `timeout`,
/// `skipped`, `undone` or `undo_failed`.
pub fn runbook_step(
    runbook: &str,
    step: &str,
    argv: &str,
    duration_ms: u64,
    outcome: &str,
    attempt: u32,
    error: &str,
) {
    match outcome {
        "failed" | "timeout" | "undo_failed" => warn!(
            event = "runbook_step",
            runbook, step, argv, duration_ms, outcome, attempt, error
        ),
        _ => info!(
            event = "runbook_step",
            runbook, step, argv, duration_ms, outcome, attempt
        ),
    }
}

/// The runbook completed; `skipped` lists environments left stopped.
pub fn runbook_finished(runbook: &str, duration_ms: u64, skipped: &str) {
    if skipped.is_empty() {
        info!(event = "runbook_finished", runbook, duration_ms, skipped);
    } else {
        warn!(event = "runbook_finished", runbook, duration_ms, skipped);
    }
}

/// The runbook failed at `step` (a promote has undone its done steps).
pub fn runbook_failed(runbook: &str, step: &str, error: &str, duration_ms: u64, undone: usize) {
    error!(
        event = "runbook_failed",
        runbook, step, error, duration_ms, undone
    );
}

/// A newer transition stopped the runbook before `at_step`.
pub fn runbook_cancelled(runbook: &str, at_step: &str, duration_ms: u64) {
    warn!(event = "runbook_cancelled", runbook, at_step, duration_ms);
}
