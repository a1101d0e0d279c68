//! Reading `[[track]]`: each a unique plain name, an argv with an absolute
//! program (as `notify.command`), the timing of `[health]` unless given,
//! and exactly one of `weight` and `on_fail`.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::health::CHECK_DURATIONS;
use super::{is_plain_name, Reader, Value};
use crate::config::health::{Health, Track, TrackAction};

const TRACK_KEYS: &[&str] = &[
    "name", "command", "interval", "timeout", "rise", "fall", "weight", "on_fail",
];

/// As environment names: short enough for `status` lines.
const MAX_TRACK_NAME_LEN: usize = 64;

/// `weight` may move the priority by at most this much either way (a
/// priority is 1..=254 outside the address owner).
const MAX_WEIGHT: i128 = 253;

impl Reader<'_> {
    /// Every `[[track]]`, in file order; `defaults` gives the timing of a
    /// track that sets none (the `[health]` values). `None` when invalid.
    pub(super) fn track_section(
        &mut self,
        root: &DeTable<'_>,
        defaults: &Health,
    ) -> Option<Vec<Track>> {
        let Some(value) = root.get("track") else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                value.span(),
                "track",
                "an array of tables (one [[track]] per check)",
                value.get_ref(),
            );
            return None;
        };
        let mut tracks = Vec::with_capacity(items.len());
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            let key = format!("track[{index}]");
            let Some((track, name_span)) = self.track(item, &key, defaults) else {
                valid = false;
                continue;
            };
            valid &= self.first_listing(
                &mut names,
                track.name.clone(),
                &format!("{:?}", track.name),
                &name_span,
                &format!("{key}.name"),
                "; give each [[track]] its own name",
            );
            tracks.push(track);
        }
        valid.then_some(tracks)
    }

    fn track(
        &mut self,
        item: &Value<'_>,
        key: &str,
        defaults: &Health,
    ) -> Option<(Track, Range<usize>)> {
        let DeValue::Table(table) = item.get_ref() else {
            self.wrong_type(item.span(), key, "a table", item.get_ref());
            return None;
        };
        self.unknown_keys(table, key, TRACK_KEYS);
        let name_key = format!("{key}.name");
        let name = match table.get("name") {
            Some(value) => self
                .string(value, &name_key)
                .and_then(|name| self.track_name(name, value.span(), &name_key))
                .map(|name| (name, value.span())),
            None => {
                self.error(
                    item.span(),
                    &name_key,
                    "missing; name the check (unique, shown by status and in events), e.g. name = \"db-ping\"",
                );
                None
            }
        };
        let command = self.track_command(table, key, item.span());
        let interval = self.duration_in(
            table.get("interval"),
            &format!("{key}.interval"),
            defaults.interval,
            CHECK_DURATIONS,
        );
        let timeout = self.duration_in(
            table.get("timeout"),
            &format!("{key}.timeout"),
            defaults.timeout,
            CHECK_DURATIONS,
        );
        let rise = self.count(table, "rise", &format!("{key}.rise"), defaults.rise);
        let fall = self.count(table, "fall", &format!("{key}.fall"), defaults.fall);
        let on_fail = self.track_action(table, key, item.span());
        let (name, name_span) = name?;
        Some((
            Track {
                name,
                command: command?,
                interval: interval?,
                timeout: timeout?,
                rise: rise?,
                fall: fall?,
                on_fail: on_fail?,
            },
            name_span,
        ))
    }

    fn track_name(&mut self, name: String, span: Range<usize>, key: &str) -> Option<String> {
        if is_plain_name(&name) && name.chars().count() <= MAX_TRACK_NAME_LEN {
            return Some(name);
        }
        self.error(
            span,
            key,
            format!("{name:?} is not a track name (1..={MAX_TRACK_NAME_LEN} characters from A-Z a-z 0-9 - _ ., not starting with '-')"),
        );
        None
    }

    fn track_command(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        item_span: Range<usize>,
    ) -> Option<Vec<String>> {
        let command_key = format!("{key}.command");
        let Some(command) = table.get("command") else {
            self.error(
                item_span,
                &command_key,
                "missing; the check to run, exit 0 meaning good, e.g. command = [\"/usr/local/libexec/check-db\", \"--quick\"]",
            );
            return None;
        };
        let items = self.string_array(command, &command_key)?;
        let argv: Vec<String> = items.into_iter().map(|(text, _, _)| text).collect();
        match argv.first() {
            None => {
                self.error(
                    command.span(),
                    &command_key,
                    "empty; give the program and its arguments, e.g. [\"/usr/local/libexec/check-db\", \"--quick\"]",
                );
                None
            }
            Some(program) if !program.starts_with('/') => {
                self.error(
                    command.span(),
                    &command_key,
                    format!("{program:?}: the program must be an absolute path (no $PATH lookup for a root daemon)"),
                );
                None
            }
            Some(_) => Some(argv),
        }
    }

    /// Exactly one of `weight` and `on_fail`.
    fn track_action(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        item_span: Range<usize>,
    ) -> Option<TrackAction> {
        match (table.get("weight"), table.get("on_fail")) {
            (None, None) => {
                self.error(
                    item_span,
                    key,
                    "neither weight nor on_fail is set; give weight = N (added to the priority while the check fails, e.g. -50) or on_fail = \"resign\"",
                );
                None
            }
            (Some(weight), Some(on_fail)) => {
                let span = if weight.span().start > on_fail.span().start {
                    weight.span()
                } else {
                    on_fail.span()
                };
                self.error(
                    span,
                    key,
                    "both weight and on_fail are set; keep one: weight = N (a priority change) or on_fail = \"resign\"",
                );
                None
            }
            (Some(weight), None) => self.weight(weight, &format!("{key}.weight")),
            (None, Some(on_fail)) => self.on_fail(on_fail, &format!("{key}.on_fail")),
        }
    }

    fn weight(&mut self, value: &Value<'_>, key: &str) -> Option<TrackAction> {
        let weight = self.integer(value, key, -MAX_WEIGHT..=MAX_WEIGHT, "-253..=-1 or 1..=253")?;
        if weight == 0 {
            self.error(
                value.span(),
                key,
                "0 changes nothing; give -253..=-1 to lower the priority while the check fails (1..=253 to raise it), or on_fail = \"resign\"",
            );
            return None;
        }
        i16::try_from(weight).ok().map(TrackAction::Weight)
    }

    fn on_fail(&mut self, value: &Value<'_>, key: &str) -> Option<TrackAction> {
        const ACCEPTED: &str = "\"resign\"; for a priority change, weight = N instead";
        match value.get_ref() {
            DeValue::String(text) if text.as_ref() == "resign" => Some(TrackAction::Resign),
            DeValue::String(text) => {
                self.error(
                    value.span(),
                    key,
                    format!("{text:?} is not a track action (accepted: {ACCEPTED})"),
                );
                None
            }
            other => {
                self.wrong_type(value.span(), key, "the string \"resign\"", other);
                None
            }
        }
    }
}
