//! `--log-target syslog`: every event straight to syslog(3), facility
//! daemon, ident `rcbsd-failover`, with a severity chosen per event so that
//! syslog.conf(5) can route alerts (`daemon.crit` for a failed runbook).

use std::ffi::CString;
use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// The syslog(3) severity of an event: the alerting contract of
/// `docs/events.md` (its "syslog" column).
pub fn severity(event: Option<&str>, level: Level) -> libc::c_int {
    match event {
        Some(
            "runbook_failed"
            | "fault"
            | "agent_failed"
            | "vip_failed"
            | "quorum_lost"
            | "fence_margin_short"
            | "lease_overrun"
            | "environment_stop_failed"
            | "release_stuck"
            | "watchdog_failed",
        ) => libc::LOG_CRIT,
        Some("config_rejected" | "shutdown_timeout" | "command_abandoned" | "release_failed") => {
            libc::LOG_ERR
        }
        Some(
            "state_change"
            | "override_changed"
            | "override_restored"
            | "link_down"
            | "link_up"
            | "master_conflict"
            | "fault_cleared"
            | "config_reloaded"
            | "stale_vip_removed"
            | "quorum_regained"
            | "quorum_waiting"
            | "placement_decided"
            | "cluster_config_match",
        ) => libc::LOG_NOTICE,
        _ => match level {
            Level::ERROR => libc::LOG_ERR,
            Level::WARN => libc::LOG_WARNING,
            Level::INFO => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        },
    }
}

/// Opens the log once (ident must outlive every syslog call: it is leaked
/// on purpose, once per process).
pub fn open() {
    static IDENT: &std::ffi::CStr = c"rcbsd-failover";
    // SAFETY: IDENT is a static NUL-terminated string; openlog only stores
    // the pointer.
    unsafe {
        libc::openlog(
            IDENT.as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_DAEMON,
        )
    };
}

/// A tracing layer that writes `event=NAME key=value ...` lines to syslog.
pub struct SyslogLayer;

impl<S: Subscriber> Layer<S> for SyslogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        let severity = severity(line.event.as_deref(), *event.metadata().level());
        let mut text = String::new();
        if let Some(name) = &line.event {
            let _ = write!(text, "event={name}");
        }
        if !line.fields.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&line.fields);
        }
        // A NUL inside a field would end the C string early: drop it.
        let Ok(message) = CString::new(text.replace('\0', "")) else {
            return;
        };
        // SAFETY: a constant "%s" format with one NUL-terminated argument.
        unsafe {
            libc::syslog(
                libc::LOG_DAEMON | severity,
                c"%s".as_ptr(),
                message.as_ptr(),
            )
        };
    }
}

#[derive(Default)]
struct Line {
    event: Option<String>,
    fields: String,
}

impl Line {
    fn push(&mut self, name: &str, value: &str) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        if value.is_empty() || value.contains([' ', '"', '=']) {
            let _ = write!(self.fields, "{name}={value:?}");
        } else {
            let _ = write!(self.fields, "{name}={value}");
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "event" {
            self.event = Some(value.to_owned());
        } else {
            self.push(field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "event" {
            self.event = Some(text.trim_matches('"').to_owned());
        } else {
            self.push(field.name(), &text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_map_to_crit_and_transitions_to_notice() {
        assert_eq!(
            severity(Some("runbook_failed"), Level::ERROR),
            libc::LOG_CRIT
        );
        assert_eq!(severity(Some("fault"), Level::ERROR), libc::LOG_CRIT);
        assert_eq!(
            severity(Some("state_change"), Level::WARN),
            libc::LOG_NOTICE
        );
        assert_eq!(
            severity(Some("config_rejected"), Level::ERROR),
            libc::LOG_ERR
        );
        assert_eq!(severity(Some("vip_added"), Level::INFO), libc::LOG_INFO);
        assert_eq!(severity(None, Level::WARN), libc::LOG_WARNING);
    }

    #[test]
    fn fields_with_spaces_are_quoted() {
        let mut line = Line::default();
        line.push("reason", "eth0 has no carrier");
        line.push("to", "fault");
        assert_eq!(line.fields, "reason=\"eth0 has no carrier\" to=fault");
    }
}
