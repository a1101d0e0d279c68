//! The runbook's log events live with every other event in
//! [`crate::events`]; re-exported here for the executor.

pub use crate::events::{
    runbook_cancelled, runbook_failed, runbook_finished, runbook_started, runbook_step,
};
