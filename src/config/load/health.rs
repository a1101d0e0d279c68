//! Reading `[health]`: the timing and limits of the built-in checks, the
//! follower's restart policy, the tracked interfaces and the track file.
//! `[[track]]` is read by `track.rs`, with these values as its defaults.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::{is_clean_absolute, Reader, Value, MAX_INTERFACE_LEN};
use crate::config::health::{
    Health, RestartPolicy, DEFAULT_FALL, DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_MAX_REPAIRS, DEFAULT_MAX_RESTARTS, DEFAULT_MOUNT_HANG_LIMIT, DEFAULT_REPAIR_WINDOW,
    DEFAULT_RESTART_WINDOW, DEFAULT_RISE,
};

const HEALTH_KEYS: &[&str] = &[
    "enabled",
    "interval",
    "timeout",
    "rise",
    "fall",
    "max_repairs",
    "repair_window",
    "mount_hang_limit",
    "restart_policy",
    "max_restarts",
    "restart_window",
    "track_interfaces",
    "track_file",
];

/// The range of every check interval and timeout (`[health]`, `[[track]]`).
pub(super) const CHECK_DURATIONS: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);
/// The range of every `rise` and `fall`.
const RISE_FALL: std::ops::RangeInclusive<i128> = 1..=100;

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Reader<'_> {
    /// `[health]`, its defaults when absent; `None` when invalid. `tracks`
    /// is left empty (`track_section` reads them). `vrrp_interface` is the
    /// valid `vrrp.interface`, if any: it is tracked anyway, so it may not
    /// be listed in `track_interfaces`.
    pub(super) fn health_section(
        &mut self,
        root: &DeTable<'_>,
        vrrp_interface: Option<&str>,
    ) -> Option<Health> {
        let Some(value) = root.get("health") else {
            return Some(Health::default());
        };
        let table = self.table(value, "health")?;
        self.unknown_keys(table, "health", HEALTH_KEYS);
        let enabled = self.optional(table, "enabled", true, |r, v| {
            r.boolean(v, "health.enabled")
        });
        let interval = self.duration_in(
            table.get("interval"),
            "health.interval",
            DEFAULT_HEALTH_INTERVAL,
            CHECK_DURATIONS,
        );
        let timeout = self.duration_in(
            table.get("timeout"),
            "health.timeout",
            DEFAULT_HEALTH_TIMEOUT,
            CHECK_DURATIONS,
        );
        let rise = self.count(table, "rise", "health.rise", DEFAULT_RISE);
        let fall = self.count(table, "fall", "health.fall", DEFAULT_FALL);
        let max_repairs = self.optional(table, "max_repairs", DEFAULT_MAX_REPAIRS, |r, v| {
            r.integer(
                v,
                "health.max_repairs",
                0..=100,
                "0..=100; 0 resigns at the first failed repair",
            )
            .and_then(|n| u32::try_from(n).ok())
        });
        let repair_window = self.duration_in(
            table.get("repair_window"),
            "health.repair_window",
            DEFAULT_REPAIR_WINDOW,
            Duration::from_secs(1)..=DAY,
        );
        let mount_hang_limit = self.duration_in(
            table.get("mount_hang_limit"),
            "health.mount_hang_limit",
            DEFAULT_MOUNT_HANG_LIMIT,
            Duration::from_secs(1)..=Duration::from_secs(3600),
        );
        let restart_policy = self.restart_policy(table);
        let track_interfaces = match table.get("track_interfaces") {
            Some(value) => self.track_interfaces(value, vrrp_interface),
            None => Some(Vec::new()),
        };
        let track_file = match table.get("track_file") {
            Some(value) => self.track_file(value).map(Some),
            None => Some(None),
        };
        Some(Health {
            enabled: enabled?,
            interval: interval?,
            timeout: timeout?,
            rise: rise?,
            fall: fall?,
            max_repairs: max_repairs?,
            repair_window: repair_window?,
            mount_hang_limit: mount_hang_limit?,
            restart_policy: restart_policy?,
            track_interfaces: track_interfaces?,
            track_file: track_file?,
            tracks: Vec::new(),
        })
    }

    /// A `rise` or `fall` (`name` in `table`, shown as `key`), 1..=100.
    pub(super) fn count(
        &mut self,
        table: &DeTable<'_>,
        name: &str,
        key: &str,
        default: u32,
    ) -> Option<u32> {
        self.optional(table, name, default, |r, v| {
            r.integer(v, key, RISE_FALL, "1..=100")
                .and_then(|n| u32::try_from(n).ok())
        })
    }

    /// `restart_policy`, with `max_restarts` and `restart_window`, which
    /// only `"on-failure"` takes.
    fn restart_policy(&mut self, table: &DeTable<'_>) -> Option<RestartPolicy> {
        const KEY: &str = "health.restart_policy";
        const ACCEPTED: &str = "\"never\" or \"on-failure\"";
        let on_failure = match table.get("restart_policy") {
            None => Some(false),
            Some(value) => match value.get_ref() {
                DeValue::String(text) if text.as_ref() == "never" => Some(false),
                DeValue::String(text) if text.as_ref() == "on-failure" => Some(true),
                DeValue::String(text) => {
                    self.error(
                        value.span(),
                        KEY,
                        format!("{text:?} is not a restart policy (accepted: {ACCEPTED})"),
                    );
                    None
                }
                other => {
                    self.wrong_type(value.span(), KEY, ACCEPTED, other);
                    None
                }
            },
        };
        if on_failure == Some(false) {
            // A limit on restarts that never happen is a mistake either way:
            // the policy or the limit is not what the operator meant.
            let mut valid = true;
            for name in ["max_restarts", "restart_window"] {
                if let Some(value) = table.get(name) {
                    self.error(
                        value.span(),
                        &format!("health.{name}"),
                        "only with restart_policy = \"on-failure\" (with \"never\", the default, nothing is restarted); set that or remove this key",
                    );
                    valid = false;
                }
            }
            return valid.then_some(RestartPolicy::Never);
        }
        let max_restarts = self.optional(table, "max_restarts", DEFAULT_MAX_RESTARTS, |r, v| {
            r.integer(v, "health.max_restarts", 1..=100, "1..=100")
                .and_then(|n| u32::try_from(n).ok())
        });
        let window = self.duration_in(
            table.get("restart_window"),
            "health.restart_window",
            DEFAULT_RESTART_WINDOW,
            Duration::from_secs(1)..=DAY,
        );
        on_failure?;
        Some(RestartPolicy::OnFailure {
            max_restarts: max_restarts?,
            window: window?,
        })
    }

    fn track_interfaces(
        &mut self,
        value: &Value<'_>,
        vrrp_interface: Option<&str>,
    ) -> Option<Vec<String>> {
        let items = self.string_array(value, "health.track_interfaces")?;
        let mut names = Vec::with_capacity(items.len());
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (name, span, item_key) in items {
            let usable = !name.is_empty()
                && name.len() <= MAX_INTERFACE_LEN
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !usable {
                self.error(
                    span,
                    &item_key,
                    format!("{name:?} is not an interface name (1..={MAX_INTERFACE_LEN} characters from A-Z a-z 0-9 _ . -, e.g. \"igb1\")"),
                );
                valid = false;
                continue;
            }
            if vrrp_interface == Some(name.as_str()) {
                self.error(
                    span,
                    &item_key,
                    format!("{name:?} is vrrp.interface, which is always tracked; list only other interfaces (e.g. the storage network's)"),
                );
                valid = false;
                continue;
            }
            if !self.first_listing(
                &mut seen,
                name.clone(),
                &format!("{name:?}"),
                &span,
                &item_key,
                "",
            ) {
                valid = false;
                continue;
            }
            names.push(name);
        }
        valid.then_some(names)
    }

    fn track_file(&mut self, value: &Value<'_>) -> Option<PathBuf> {
        const KEY: &str = "health.track_file";
        let text = self.string(value, KEY)?;
        let path = PathBuf::from(&text);
        let usable = is_clean_absolute(&path)
            && path.as_os_str() != "/"
            && !text.ends_with('/')
            && !text.contains("//")
            && !text.contains('\0');
        if usable {
            Some(path)
        } else {
            self.error(
                value.span(),
                KEY,
                format!("{text:?} is not a file path (an absolute path without \".\", \"..\", \"//\" or a trailing '/', e.g. \"/var/run/rcbsd-failover.weight\")"),
            );
            None
        }
    }
}
