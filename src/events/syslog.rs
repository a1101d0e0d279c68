//! `--log-target syslog`: every event straight to syslog(3), facility
//! daemon, ident `rcbsd-failover`, with a severity chosen per event so that
//! syslog.conf(5) can route alerts (`daemon.crit` for a failed runbook).

use std::ffi::CString;
use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use super::catalog::{self, Severity};

/// The syslog(3) severity of a record: the severity of its event in the
/// catalog (the alerting contract of `docs/alerting.md`), or, for a line
/// that is not a known event, the severity of its level.
pub fn severity(event: Option<&str>, level: Level) -> libc::c_int {
    let severity = event
        .and_then(catalog::Event::from_name)
        .map_or_else(|| Severity::of_level(level), |e| e.severity_at(level));
    priority(severity)
}

/// The only place our severities meet syslog(3)'s numbers.
fn priority(severity: Severity) -> libc::c_int {
    match severity {
        Severity::Crit => libc::LOG_CRIT,
        Severity::Err => libc::LOG_ERR,
        Severity::Warning => libc::LOG_WARNING,
        Severity::Notice => libc::LOG_NOTICE,
        Severity::Info => libc::LOG_INFO,
        Severity::Debug => libc::LOG_DEBUG,
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
        assert_eq!(
            severity(Some("quorum_waiting"), Level::INFO),
            libc::LOG_NOTICE
        );
        // A raised record of an event with a raised severity.
        assert_eq!(
            severity(Some("watchdog_state"), Level::ERROR),
            libc::LOG_ERR
        );
        assert_eq!(
            severity(Some("state_change"), Level::ERROR),
            libc::LOG_NOTICE
        );
        // Not an event of ours: by level, as a line without a name.
        assert_eq!(severity(Some("no_such_event"), Level::ERROR), libc::LOG_ERR);
    }

    #[test]
    fn every_severity_has_its_own_priority() {
        let priorities: std::collections::BTreeSet<libc::c_int> =
            Severity::ALL.iter().map(|s| priority(*s)).collect();
        assert_eq!(priorities.len(), Severity::ALL.len());
        assert_eq!(priority(Severity::Crit), libc::LOG_CRIT);
        assert_eq!(priority(Severity::Debug), libc::LOG_DEBUG);
    }

    #[test]
    fn fields_with_spaces_are_quoted() {
        let mut line = Line::default();
        line.push("reason", "eth0 has no carrier");
        line.push("to", "fault");
        assert_eq!(line.fields, "reason=\"eth0 has no carrier\" to=fault");
    }
}
