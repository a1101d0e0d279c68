//! Reading `[runbook]`: every timeout in range, and `retry_backoff` no
//! larger than `retry_backoff_max`.

use std::time::Duration;

use toml::de::DeTable;

use super::Reader;
use crate::config::runbook::RunbookSettings;

const RUNBOOK_KEYS: &[&str] = &[
    "command_timeout",
    "umount_timeout",
    "nfs_answer_timeout",
    "storage_timeout",
    "device_wait",
    "mount_timeout",
    "mount_attempts",
    "retry_backoff",
    "retry_backoff_max",
    "fault_hold_off",
];

impl Reader<'_> {
    /// `[runbook]`; its defaults when absent, `None` when invalid.
    pub(super) fn runbook_section(&mut self, root: &DeTable<'_>) -> Option<RunbookSettings> {
        match root.get("runbook") {
            Some(value) => self.table(value, "runbook").and_then(|t| self.runbook(t)),
            None => Some(RunbookSettings::default()),
        }
    }

    fn runbook(&mut self, table: &DeTable<'_>) -> Option<RunbookSettings> {
        self.unknown_keys(table, "runbook", RUNBOOK_KEYS);
        let d = RunbookSettings::default();
        let hour = Duration::from_secs(3600);
        let dur = |reader: &mut Self, key: &str, default: Duration, min: Duration| {
            reader.duration_in(
                table.get(key),
                &format!("runbook.{key}"),
                default,
                min..=hour,
            )
        };
        let second = Duration::from_secs(1);
        let command_timeout = dur(self, "command_timeout", d.command_timeout, second);
        let umount_timeout = dur(self, "umount_timeout", d.umount_timeout, second);
        let nfs_answer_timeout = self.duration_in(
            table.get("nfs_answer_timeout"),
            "runbook.nfs_answer_timeout",
            d.nfs_answer_timeout,
            second..=Duration::from_secs(60),
        );
        let storage_timeout = dur(self, "storage_timeout", d.storage_timeout, second);
        let device_wait = dur(self, "device_wait", d.device_wait, second);
        let mount_timeout = dur(self, "mount_timeout", d.mount_timeout, second);
        let retry_backoff = dur(self, "retry_backoff", d.retry_backoff, Duration::ZERO);
        let retry_backoff_max = dur(
            self,
            "retry_backoff_max",
            d.retry_backoff_max,
            Duration::ZERO,
        );
        let fault_hold_off = dur(self, "fault_hold_off", d.fault_hold_off, Duration::ZERO);
        let mount_attempts = self.optional(
            table,
            "mount_attempts",
            i128::from(d.mount_attempts),
            |r, v| r.integer(v, "runbook.mount_attempts", 1..=100, "1..=100"),
        );
        if let (Some(backoff), Some(max)) = (retry_backoff, retry_backoff_max) {
            if backoff > max {
                let span = table.get("retry_backoff").map_or(0..0, |v| v.span());
                self.error(
                    span,
                    "runbook.retry_backoff",
                    "is larger than runbook.retry_backoff_max",
                );
            }
        }
        Some(RunbookSettings {
            command_timeout: command_timeout?,
            umount_timeout: umount_timeout?,
            nfs_answer_timeout: nfs_answer_timeout?,
            storage_timeout: storage_timeout?,
            device_wait: device_wait?,
            mount_timeout: mount_timeout?,
            mount_attempts: u32::try_from(mount_attempts?).ok()?,
            retry_backoff: retry_backoff?,
            retry_backoff_max: retry_backoff_max?,
            fault_hold_off: fault_hold_off?,
        })
    }
}
