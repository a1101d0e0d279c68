//! Reading `[notify]`: the command is an absolute program with its
//! arguments, the timeout in range.

use std::time::Duration;

use toml::de::DeTable;

use super::Reader;
use crate::config::notify::{Notify, DEFAULT_NOTIFY_TIMEOUT};

const NOTIFY_KEYS: &[&str] = &["command", "timeout"];

impl Reader<'_> {
    /// `Some(None)` when the table is absent, `None` when it is invalid.
    pub(super) fn notify_section(&mut self, root: &DeTable<'_>) -> Option<Option<Notify>> {
        let Some(value) = root.get("notify") else {
            return Some(None);
        };
        let table = self.table(value, "notify")?;
        self.unknown_keys(table, "notify", NOTIFY_KEYS);
        let command = match table.get("command") {
            Some(command) => {
                let items = self.string_array(command, "notify.command")?;
                let argv: Vec<String> = items.into_iter().map(|(text, _, _)| text).collect();
                match argv.first() {
                    None => {
                        self.error(
                            command.span(),
                            "notify.command",
                            "empty; give the program and its arguments, e.g. [\"/usr/local/libexec/rcbsd-notify\"]",
                        );
                        None
                    }
                    Some(program) if !program.starts_with('/') => {
                        self.error(
                            command.span(),
                            "notify.command",
                            format!("{program:?}: the program must be an absolute path (no $PATH lookup for a root daemon)"),
                        );
                        None
                    }
                    Some(_) => Some(argv),
                }
            }
            None => {
                self.error(
                    value.span(),
                    "notify.command",
                    "missing; [notify] needs command = [\"/path/to/program\", \"arg\", ...]",
                );
                None
            }
        };
        let timeout = self.duration_in(
            table.get("timeout"),
            "notify.timeout",
            DEFAULT_NOTIFY_TIMEOUT,
            Duration::from_secs(1)..=Duration::from_secs(3600),
        );
        Some(Some(Notify {
            command: command?,
            timeout: timeout?,
        }))
    }
}
