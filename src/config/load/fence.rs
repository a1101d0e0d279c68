//! Reading `[fence]`.

use std::time::Duration;

use toml::de::DeTable;

use super::Reader;
use crate::config::fence::{Fence, Watchdog, DEFAULT_WATCHDOG_TIMEOUT};

const FENCE_KEYS: &[&str] = &["watchdog", "watchdog_timeout"];

impl Reader<'_> {
    /// `[fence]`; an absent table is no watchdog. `None` when invalid.
    pub(super) fn fence_section(&mut self, root: &DeTable<'_>) -> Option<Fence> {
        let Some(value) = root.get("fence") else {
            return Some(Fence::default());
        };
        let table = self.table(value, "fence")?;
        self.unknown_keys(table, "fence", FENCE_KEYS);
        let timeout = self.duration_in(
            table.get("watchdog_timeout"),
            "fence.watchdog_timeout",
            DEFAULT_WATCHDOG_TIMEOUT,
            Duration::from_secs(1)..=Duration::from_secs(60),
        );
        let Some(device) = table.get("watchdog") else {
            if let Some(t) = table.get("watchdog_timeout") {
                self.error(
                    t.span(),
                    "fence.watchdog_timeout",
                    "set without fence.watchdog; name the device, e.g. watchdog = \"/dev/fido\"",
                );
                return None;
            }
            return Some(Fence::default());
        };
        let device = self.path_value(Some(device), "fence.watchdog", "", None)?;
        Some(Fence {
            watchdog: Some(Watchdog {
                device,
                timeout: timeout?,
            }),
        })
    }
}
