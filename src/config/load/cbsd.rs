//! Reading `[cbsd]`: the workdir is a clean absolute path, the shared dirs
//! are plain names directly under it, each listed once, and `dir_id_file`
//! lies inside one of them. Nothing here depends on another section; the
//! sections that need `[cbsd]` are checked in `cross_checks.rs`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::DeTable;

use super::{is_plain_name, Reader, Value};
use crate::config::cbsd::Cbsd;

const CBSD_KEYS: &[&str] = &["workdir", "shared_dirs", "dir_id_file", "dir_id"];

const DEFAULT_WORKDIR: &str = "/usr/jails";
const DEFAULT_SHARED_DIRS: &[&str] = &["jails-data", "jails-system", "jails-rcconf", "jails-fstab"];
const DEFAULT_DIR_ID_FILE: &str = "jails-data/dir.id";

impl Reader<'_> {
    /// `[cbsd]`: `Some(None)` when absent, `None` when invalid.
    pub(super) fn cbsd_section(&mut self, root: &DeTable<'_>) -> Option<Option<Cbsd>> {
        self.section(root, "cbsd", |r, t, span| r.cbsd(t, span))
    }

    fn cbsd(&mut self, table: &DeTable<'_>, _span: Range<usize>) -> Option<Cbsd> {
        self.unknown_keys(table, "cbsd", CBSD_KEYS);
        let workdir = self.clean_path(table.get("workdir"), "cbsd.workdir", DEFAULT_WORKDIR);
        let shared_dirs = match table.get("shared_dirs") {
            Some(value) => self.shared_dirs(value),
            None => Some(DEFAULT_SHARED_DIRS.iter().map(|d| d.to_string()).collect()),
        };
        let dir_id = match table.get("dir_id") {
            Some(value) => {
                let text = self.string(value, "cbsd.dir_id")?;
                if text.trim().is_empty() || text.contains('\n') {
                    self.error(
                        value.span(),
                        "cbsd.dir_id",
                        "must be the one-line content of CBSD's dir.id (see `cat /usr/jails/jails-data/dir.id` on the master)",
                    );
                    None
                } else {
                    Some(Some(text.trim().to_owned()))
                }
            }
            None => Some(None),
        };
        let dir_id_file = match (table.get("dir_id_file"), &shared_dirs) {
            (Some(value), Some(dirs)) => self.dir_id_file(value, dirs),
            (None, _) => Some(PathBuf::from(DEFAULT_DIR_ID_FILE)),
            (Some(_), None) => None,
        };
        if let (None, Some(dirs)) = (table.get("dir_id_file"), &shared_dirs) {
            let first = DEFAULT_DIR_ID_FILE.split('/').next().unwrap_or_default();
            if !dirs.iter().any(|d| d == first) {
                let span = table.get("shared_dirs").map_or(0..0, |v| v.span());
                self.error(
                    span,
                    "cbsd.dir_id_file",
                    format!("the default {DEFAULT_DIR_ID_FILE:?} is not in a shared dir; set cbsd.dir_id_file to CBSD's dir.id inside one of shared_dirs"),
                );
            }
        }
        Some(Cbsd {
            workdir: workdir?,
            shared_dirs: shared_dirs?,
            dir_id_file: dir_id_file?,
            dir_id: dir_id?,
        })
    }

    fn shared_dirs(&mut self, value: &Value<'_>) -> Option<Vec<String>> {
        const KEY: &str = "cbsd.shared_dirs";
        let items = self.string_array(value, KEY)?;
        if items.is_empty() {
            self.error(
                value.span(),
                KEY,
                "empty; list the CBSD dirs the master shares, e.g. [\"jails-data\", \"jails-system\", \"jails-rcconf\", \"jails-fstab\"]",
            );
            return None;
        }
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut dirs = Vec::with_capacity(items.len());
        let mut valid = true;
        for (text, span, item_key) in items {
            let problem = if text.starts_with('/') {
                Some("is absolute; shared dirs are names under cbsd.workdir (e.g. \"jails-data\")")
            } else if text.split('/').any(|part| part == "..") {
                Some("leaves the workdir (\"..\"); shared dirs are names under cbsd.workdir")
            } else if text.contains('/') {
                Some("must be one directory name directly under cbsd.workdir (no \"/\")")
            } else if text == "." || !is_plain_name(&text) {
                Some("must be a directory name of A-Z a-z 0-9 - _ . (it appears in exports(5) lines and mount arguments)")
            } else {
                None
            };
            if let Some(problem) = problem {
                self.error(span, &item_key, format!("{text:?} {problem}"));
                valid = false;
                continue;
            }
            if !self.first_listing(
                &mut seen,
                text.clone(),
                &format!("{text:?}"),
                &span,
                &item_key,
                "",
            ) {
                valid = false;
                continue;
            }
            dirs.push(text);
        }
        valid.then_some(dirs)
    }

    fn dir_id_file(&mut self, value: &Value<'_>, dirs: &[String]) -> Option<PathBuf> {
        const KEY: &str = "cbsd.dir_id_file";
        let text = self.string(value, KEY)?;
        let path = PathBuf::from(&text);
        let parts: Vec<&str> = text.split('/').collect();
        let clean = !text.starts_with('/')
            && parts.len() >= 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && *p != "." && *p != "..");
        let inside = parts
            .first()
            .is_some_and(|first| dirs.iter().any(|d| d == first));
        if !clean || !inside {
            self.error(
                value.span(),
                KEY,
                format!("{text:?} must be a path relative to cbsd.workdir inside one of the shared dirs, e.g. \"jails-data/dir.id\""),
            );
            return None;
        }
        Some(path)
    }
}
