//! Reading `[metrics]`: `textfile` (required) an absolute file path,
//! the interval in range.

use std::time::Duration;

use toml::de::DeTable;

use super::Reader;
use crate::config::metrics::{Metrics, DEFAULT_METRICS_INTERVAL};

const METRICS_KEYS: &[&str] = &["textfile", "interval"];

impl Reader<'_> {
    /// `Some(None)` when the table is absent, `None` when it is invalid.
    pub(super) fn metrics_section(&mut self, root: &DeTable<'_>) -> Option<Option<Metrics>> {
        let Some(value) = root.get("metrics") else {
            return Some(None);
        };
        let table = self.table(value, "metrics")?;
        self.unknown_keys(table, "metrics", METRICS_KEYS);
        let textfile = match table.get("textfile") {
            Some(_) => self.path_value(table.get("textfile"), "metrics.textfile", "", Some(1024)),
            None => {
                self.error(
                    value.span(),
                    "metrics.textfile",
                    "missing; e.g. textfile = \"/var/tmp/node_exporter/rcbsd_failover.prom\"",
                );
                None
            }
        };
        let interval = self.duration_in(
            table.get("interval"),
            "metrics.interval",
            DEFAULT_METRICS_INTERVAL,
            Duration::from_secs(1)..=Duration::from_secs(3600),
        );
        Some(Some(Metrics {
            textfile: textfile?,
            interval: interval?,
        }))
    }
}
