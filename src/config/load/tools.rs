//! Reading `[tools]`: every key a known tool, every path clean and
//! absolute.

use toml::de::DeTable;

use super::Reader;
use crate::config::tools::{Tools, TOOL_DEFAULTS};

impl Reader<'_> {
    /// `[tools]`; FreeBSD's paths when absent, `None` when invalid.
    pub(super) fn tools_section(&mut self, root: &DeTable<'_>) -> Option<Tools> {
        match root.get("tools") {
            Some(value) => self.table(value, "tools").and_then(|t| self.tools(t)),
            None => Some(Tools::default()),
        }
    }

    fn tools(&mut self, table: &DeTable<'_>) -> Option<Tools> {
        let keys: Vec<&str> = TOOL_DEFAULTS.iter().map(|(k, _)| *k).collect();
        self.unknown_keys(table, "tools", &keys);
        let mut tools = Tools::default();
        let mut valid = true;
        for (key, default) in TOOL_DEFAULTS {
            let dotted = format!("tools.{key}");
            match self.clean_path(table.get(*key), &dotted, default) {
                Some(path) => {
                    tools.set(key, path);
                }
                None => valid = false,
            }
        }
        valid.then_some(tools)
    }
}
