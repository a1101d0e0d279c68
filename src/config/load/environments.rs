//! Reading `[environments]`: the jails and VMs this node runs (names or
//! globs, each listed once, as a jail or as a VM) and the start and stop
//! timeouts. That `[cluster]` replaces the lists by `[[environment]]` is
//! checked in `cross_checks.rs`.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use toml::de::DeTable;

use super::{is_plain_name, Reader, Value};
use crate::config::environments::{EnvKind, EnvPattern, Environments};

const ENVIRONMENTS_KEYS: &[&str] = &["jails", "bhyve", "stop_timeout", "start_timeout"];

impl Reader<'_> {
    /// `[environments]`; its defaults when absent, `None` when invalid.
    pub(super) fn environments_section(&mut self, root: &DeTable<'_>) -> Option<Environments> {
        match root.get("environments") {
            Some(value) => self
                .table(value, "environments")
                .and_then(|t| self.environments(t)),
            None => Some(Environments::default()),
        }
    }

    fn environments(&mut self, table: &DeTable<'_>) -> Option<Environments> {
        self.unknown_keys(table, "environments", ENVIRONMENTS_KEYS);
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let jails = match table.get("jails") {
            Some(value) => self.env_patterns(value, "environments.jails", EnvKind::Jail, &mut seen),
            None => Some(Vec::new()),
        };
        let bhyve = match table.get("bhyve") {
            Some(value) => {
                self.env_patterns(value, "environments.bhyve", EnvKind::Bhyve, &mut seen)
            }
            None => Some(Vec::new()),
        };
        let defaults = Environments::default();
        let range = Duration::from_secs(1)..=Duration::from_secs(3600);
        let stop_timeout = self.duration_in(
            table.get("stop_timeout"),
            "environments.stop_timeout",
            defaults.stop_timeout,
            range.clone(),
        );
        let start_timeout = self.duration_in(
            table.get("start_timeout"),
            "environments.start_timeout",
            defaults.start_timeout,
            range,
        );
        let mut patterns = jails?;
        patterns.extend(bhyve?);
        Some(Environments {
            patterns,
            stop_timeout: stop_timeout?,
            start_timeout: start_timeout?,
        })
    }

    fn env_patterns(
        &mut self,
        value: &Value<'_>,
        key: &str,
        kind: EnvKind,
        seen: &mut HashMap<String, Range<usize>>,
    ) -> Option<Vec<EnvPattern>> {
        let items = self.string_array(value, key)?;
        let mut patterns = Vec::with_capacity(items.len());
        let mut valid = true;
        for (text, span, item_key) in items {
            let plain = text.replace(['*', '?'], "x");
            if !is_plain_name(&plain) {
                self.error(
                    span,
                    &item_key,
                    format!("{text:?} is not an environment name or glob (A-Z a-z 0-9 - _ . and the wildcards * ?)"),
                );
                valid = false;
                continue;
            }
            let note = "; an environment is either a jail or a bhyve VM";
            if !self.first_listing(
                seen,
                text.clone(),
                &format!("{text:?}"),
                &span,
                &item_key,
                note,
            ) {
                valid = false;
                continue;
            }
            patterns.push(EnvPattern {
                pattern: text,
                kind,
            });
        }
        valid.then_some(patterns)
    }
}
