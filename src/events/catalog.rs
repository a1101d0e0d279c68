//! The catalog of log events: for each event its name, its fields, the
//! tracing level it is logged at and its syslog severity.
//!
//! Names, fields and severities are an alerting contract: operators match
//! on `event=NAME` in syslog.conf(5), log shippers and mail filters, and
//! route by severity (`daemon.crit` pages). So they are written down once,
//! here: the emitting functions of [`crate::events`] take name and level
//! from this table, the syslog layer takes the severity from it, and
//! `tests/docs.rs` holds `docs/events.md` and `docs/alerting.md` to it. A
//! renamed event or a changed severity is then a change of this file, seen
//! by those tests, never a string drifting out of step somewhere else.

use tracing::Level;

/// A syslog(3) severity, by the names syslog.conf(5) and `docs/alerting.md`
/// use. Only the syslog layer maps it to `libc::LOG_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// `LOG_CRIT`: pages an operator (a VIP that cannot be added, ...).
    Crit,
    /// `LOG_ERR`: an error the agent survives.
    Err,
    /// `LOG_WARNING`: worth a look, nothing is broken yet.
    Warning,
    /// `LOG_NOTICE`: a normal but significant change (a role transition).
    Notice,
    /// `LOG_INFO`: routine operation.
    Info,
    /// `LOG_DEBUG`: detail for troubleshooting.
    Debug,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: &'static [Severity] = &[
        Self::Crit,
        Self::Err,
        Self::Warning,
        Self::Notice,
        Self::Info,
        Self::Debug,
    ];

    /// The syslog.conf(5) name (`crit`, `err`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Crit => "crit",
            Self::Err => "err",
            Self::Warning => "warning",
            Self::Notice => "notice",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }

    /// The severity a record has by its level alone: what a line that is
    /// not an event (no `event` field, or an unknown name) is logged at.
    pub fn of_level(level: Level) -> Self {
        match level {
            Level::ERROR => Self::Err,
            Level::WARN => Self::Warning,
            Level::INFO => Self::Info,
            _ => Self::Debug,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How loud a record is: the tracing level it is logged at (stderr, JSON)
/// and its syslog severity (`--log-target syslog`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loudness {
    /// The `tracing` level: filters stderr and JSON output (`RUST_LOG`).
    pub level: Level,
    /// The syslog(3) severity the record is sent with.
    pub severity: Severity,
}

/// Declares the enum and [`Event::ALL`] from one list, so that no variant
/// can be missing from `ALL`.
macro_rules! events {
    ($($(#[$meta:meta])* $variant:ident),+ $(,)?) => {
        /// Every operator-facing log event. `docs/events.md` says what each
        /// means; [`Event::name`] is the `event` field of its records.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Event {
            $($(#[$meta])* $variant),+
        }

        impl Event {
            /// Every event, in declaration order.
            pub const ALL: &'static [Event] = &[$(Event::$variant),+];
        }
    };
}

events! {
    /// `agent_started`: the agent joined the election.
    AgentStarted,
    /// `agent_stopping`: SIGTERM or SIGINT received; the agent releases and exits.
    AgentStopping,
    /// `state_change`: a role transition (RFC 5798 §6.4 states plus fault).
    StateChange,
    /// `vip_added`: a virtual IP was added on becoming master.
    VipAdded,
    /// `vip_removed`: a virtual IP was removed on leaving master.
    VipRemoved,
    /// `vip_failed`: adding or removing a virtual IP failed (a failed add means fault).
    VipFailed,
    /// `garp_sent`: a gratuitous-ARP burst was sent.
    GarpSent,
    /// `garp_failed`: the link-layer send of a gratuitous ARP failed.
    GarpFailed,
    /// `na_sent`: a burst of unsolicited Neighbor Advertisements was sent
    /// (the IPv6 VIPs' gratuitous ARP).
    NaSent,
    /// `na_failed`: sending an unsolicited Neighbor Advertisement failed.
    NaFailed,
    /// `master_conflict`: as master, we heard a lower-priority master (a healed partition).
    MasterConflict,
    /// `packet_dropped`: periodic summary of received datagrams dropped, by reason.
    PacketDropped,
    /// `send_failed`: sending an advert failed.
    SendFailed,
    /// `fault`: the node entered fault and may not be master until it clears.
    Fault,
    /// `fault_cleared`: the fault cleared; the node may be elected again.
    FaultCleared,
    /// `override_changed`: `promote`, `demote` or `resume` changed the operator override.
    OverrideChanged,
    /// `stale_vip_removed`: at start, a VIP left by a crashed earlier run was removed.
    StaleVipRemoved,
    /// `config_reloaded`: SIGHUP applied a valid configuration.
    ConfigReloaded,
    /// `config_rejected`: SIGHUP found an invalid configuration; the old one stays.
    ConfigRejected,
    /// `control_error`: a control-socket request could not be served.
    ControlError,
    /// `runbook_started`: a promote, demote or follow runbook began.
    RunbookStarted,
    /// `runbook_step`: one attempt of one runbook step, with its outcome.
    RunbookStep,
    /// `runbook_finished`: a runbook completed.
    RunbookFinished,
    /// `runbook_failed`: a runbook step failed after its retries.
    RunbookFailed,
    /// `runbook_cancelled`: a newer election decision stopped a runbook between steps.
    RunbookCancelled,
    /// `step_killed`: a running step was killed with its process group by the fence.
    StepKilled,
    /// `nfs_server_gone`: the NFS server of a shared dir does not answer;
    /// the mount is force-dismounted.
    NfsServerGone,
    /// `command_abandoned`: a killed command still ran after SIGKILL (stuck
    /// in the kernel) and was abandoned.
    CommandAbandoned,
    /// `cbsd_lock_stale`: a CBSD jail lock names another node but is old enough to be ignored.
    CbsdLockStale,
    /// `cbsd_lock_taken_over`: the CBSD lock of a jail adopted from a dead node was removed.
    CbsdLockTakenOver,
    /// `environment_stop_failed`: the stop of an environment could not be verified.
    EnvironmentStopFailed,
    /// `release_failed`: a demote failed; the master resources stay held and it is retried.
    ReleaseFailed,
    /// `release_stuck`: demotes keep failing while this node holds the master resources.
    ReleaseStuck,
    /// `follow_ride_through`: the followed master changed; mounts and environments are kept.
    FollowRideThrough,
    /// `follow_fallback`: a ride-through gave up; the full follow runs.
    FollowFallback,
    /// `follow_remount`: a master is followed in full (stop, unmount, mount, start), and why.
    FollowRemount,
    /// `found_held`: at start, a master resource was found held.
    FoundHeld,
    /// `found_unknown`: at start, a probe could not answer; the resource counts as held.
    FoundUnknown,
    /// `watchdog_state`: the watchdog was armed, disarmed or withheld.
    WatchdogState,
    /// `watchdog_failed`: the watchdog device refused a pat or a disarm.
    WatchdogFailed,
    /// `agent_failed`: the agent could not start and exits non-zero.
    AgentFailed,
    /// `override_restored`: at start, an override stored in `state_dir` is in force.
    OverrideRestored,
    /// `receive_failed`: reading the raw VRRP socket failed.
    ReceiveFailed,
    /// `advert_encode_failed`: an advert could not be encoded (a bug).
    AdvertEncodeFailed,
    /// `link_down`: the VRRP interface lost its carrier; the node enters fault.
    LinkDown,
    /// `link_up`: the carrier is back; a fault it caused clears.
    LinkUp,
    /// `link_watch_unavailable`: the kernel's link and address messages
    /// cannot be read; the carrier is polled every 100 ms instead.
    LinkWatchUnavailable,
    /// `kernel_timer_unavailable`: the election loop's deadlines run on
    /// tokio's timer wheel (one more wake-up per deadline).
    KernelTimerUnavailable,
    /// `shutdown_timeout`: on SIGTERM the demote did not finish within the grace period.
    ShutdownTimeout,
    /// `notify_failed`: the `[notify]` command failed to start, failed or timed out.
    NotifyFailed,
    /// `metrics_failed`: writing the `[metrics]` textfile failed.
    MetricsFailed,
    /// `state_marker_failed`: the master marker in `state_dir` could not be written or removed.
    StateMarkerFailed,
    /// `promote_failed_superseded`: a promote failed after a newer decision
    /// superseded it; no fault.
    PromoteFailedSuperseded,
    /// `quorum_lost`: this node no longer hears, or is heard by, a strict majority.
    QuorumLost,
    /// `quorum_regained`: a majority hears this node again.
    QuorumRegained,
    /// `quorum_waiting`: at start, no majority heard yet; the node waits for quorum.
    QuorumWaiting,
    /// `cluster_config_mismatch`: a peer's cluster-wide configuration hashes differently.
    ClusterConfigMismatch,
    /// `cluster_config_match`: a peer that differed hashes like this node again.
    ClusterConfigMatch,
    /// `auth_failed`: an advert or heartbeat failed authentication (rate-limited).
    AuthFailed,
    /// `heartbeat_encode_failed`: this node's heartbeat could not be built.
    HeartbeatEncodeFailed,
    /// `placement_decided`: placement changed its mind about running an environment here.
    PlacementDecided,
    /// `lease_fencing`: a lease is about to run out; the resource it covers is released now.
    LeaseFencing,
    /// `handover_started`: this master began handing its role over on purpose.
    HandoverStarted,
    /// `handover_finished`: the hand-over's wait ended and the demote runs.
    HandoverFinished,
    /// `handover_cancelled`: elected master again while handing over; nothing is handed over.
    HandoverCancelled,
    /// `lease_overrun`: a resource was still held after its lease ran out.
    LeaseOverrun,
    /// `config_warning`: at start, the configuration is valid but short of what it should be.
    ConfigWarning,
    /// `control_denied`: a control-socket client lacked the permission its request needs.
    ControlDenied,
    /// `environment_move`: `rcbsd-failover move` was accepted for an environment.
    EnvironmentMove,
    /// `fence_margin_short`: a demote took longer than `[cluster] fence_margin`.
    FenceMarginShort,
    /// `health_check_failed`: a check between transitions failed `fall` times in a row.
    HealthCheckFailed,
    /// `health_check_recovered`: a failed check succeeded `rise` times in a row.
    HealthCheckRecovered,
    /// `repair_started`: the agent repairs what a failed check found (or restarts, remounts).
    RepairStarted,
    /// `repair_succeeded`: a repair's steps all succeeded.
    RepairSucceeded,
    /// `repair_failed`: a repair's steps failed.
    RepairFailed,
    /// `resigned_unhealthy`: repairs did not hold within the budget; the node resigns.
    ResignedUnhealthy,
    /// `environment_died`: an environment placed here stopped by itself and is not restarted.
    EnvironmentDied,
    /// `environment_held`: an environment is held: never started or restarted by the agent.
    EnvironmentHeld,
    /// `environment_released`: an operator released a held environment.
    EnvironmentReleased,
    /// `held_not_started`: a runbook or the health watch left a held environment stopped.
    HeldNotStarted,
}

/// One row of the catalog.
struct Spec {
    name: &'static str,
    usual: Loudness,
    raised: Option<Loudness>,
    fields: &'static [&'static str],
    extra_fields: &'static [&'static str],
}

/// A row whose records are all logged at `level` with `severity`.
const fn row(
    name: &'static str,
    level: Level,
    severity: Severity,
    fields: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        usual: Loudness { level, severity },
        raised: None,
        fields,
        extra_fields: &[],
    }
}

impl Spec {
    /// Some records (a failed step, ...) are logged louder.
    const fn raised(self, level: Level, severity: Severity) -> Self {
        Self {
            raised: Some(Loudness { level, severity }),
            ..self
        }
    }

    /// Fields only some records carry.
    const fn extra(self, extra_fields: &'static [&'static str]) -> Self {
        Self {
            extra_fields,
            ..self
        }
    }
}

impl Event {
    /// The catalog. A severity other than the level's own
    /// ([`Severity::of_level`]) is deliberate: `crit` for what pages,
    /// `notice` for transitions worth a line in `/var/log/messages`.
    const fn spec(self) -> Spec {
        use Severity::{Crit, Debug, Err, Info, Notice, Warning};
        const ERROR: Level = Level::ERROR;
        const WARN: Level = Level::WARN;
        const INFO: Level = Level::INFO;
        const DEBUG: Level = Level::DEBUG;
        match self {
            Self::AgentStarted => row(
                "agent_started",
                INFO,
                Info,
                &["node", "interface", "vrid", "priority", "version"],
            ),
            Self::AgentStopping => row("agent_stopping", INFO, Info, &["signal", "state"]),
            // A fault is logged at ERROR, yet stays a notice: `fault` pages.
            Self::StateChange => row(
                "state_change",
                WARN,
                Notice,
                &["from", "to", "reason", "priority", "master"],
            )
            .raised(ERROR, Notice),
            Self::VipAdded => row("vip_added", INFO, Info, &["interface", "vip"]),
            Self::VipRemoved => row("vip_removed", INFO, Info, &["interface", "vip", "reason"]),
            Self::VipFailed => row(
                "vip_failed",
                ERROR,
                Crit,
                &["interface", "vip", "operation", "error"],
            ),
            Self::GarpSent => row(
                "garp_sent",
                DEBUG,
                Debug,
                &["interface", "vips", "count", "why"],
            ),
            Self::GarpFailed => row("garp_failed", WARN, Warning, &["interface", "error"]),
            Self::NaSent => row(
                "na_sent",
                DEBUG,
                Debug,
                &["interface", "vips", "count", "why"],
            ),
            Self::NaFailed => row("na_failed", WARN, Warning, &["interface", "error"]),
            Self::MasterConflict => row(
                "master_conflict",
                WARN,
                Notice,
                &["other_master", "our_priority"],
            ),
            Self::PacketDropped => row(
                "packet_dropped",
                WARN,
                Warning,
                &["period_s", "total", "by_reason"],
            ),
            Self::SendFailed => row(
                "send_failed",
                WARN,
                Warning,
                &["destination", "error", "count"],
            ),
            Self::Fault => row("fault", ERROR, Crit, &["reason"]),
            Self::FaultCleared => row("fault_cleared", INFO, Notice, &["how"]),
            Self::OverrideChanged => row(
                "override_changed",
                WARN,
                Notice,
                &["from", "to", "effective_priority"],
            ),
            Self::StaleVipRemoved => row("stale_vip_removed", WARN, Notice, &["interface", "vip"]),
            Self::ConfigReloaded => row("config_reloaded", INFO, Notice, &["path", "changes"]),
            Self::ConfigRejected => row("config_rejected", ERROR, Err, &["path", "error"]),
            Self::ControlError => row("control_error", WARN, Warning, &["error"]),
            Self::RunbookStarted => {
                row("runbook_started", INFO, Info, &["runbook", "node", "steps"])
            }
            // Raised when the attempt failed, and only then with `error`.
            Self::RunbookStep => row(
                "runbook_step",
                INFO,
                Info,
                &[
                    "runbook",
                    "step",
                    "argv",
                    "duration_ms",
                    "outcome",
                    "attempt",
                ],
            )
            .raised(WARN, Warning)
            .extra(&["error"]),
            // Raised when environments were skipped.
            Self::RunbookFinished => row(
                "runbook_finished",
                INFO,
                Info,
                &["runbook", "duration_ms", "skipped"],
            )
            .raised(WARN, Warning),
            Self::RunbookFailed => row(
                "runbook_failed",
                ERROR,
                Crit,
                &["runbook", "step", "error", "duration_ms", "undone"],
            ),
            Self::RunbookCancelled => row(
                "runbook_cancelled",
                WARN,
                Warning,
                &["runbook", "at_step", "duration_ms"],
            ),
            Self::StepKilled => row("step_killed", WARN, Warning, &["runbook", "step", "why"]),
            Self::NfsServerGone => row(
                "nfs_server_gone",
                WARN,
                Warning,
                &["mountpoint", "waited_ms"],
            ),
            Self::CommandAbandoned => row(
                "command_abandoned",
                ERROR,
                Err,
                &["command", "pid", "waited_ms"],
            ),
            Self::CbsdLockStale => row(
                "cbsd_lock_stale",
                WARN,
                Warning,
                &["environment", "path", "holder", "minutes"],
            ),
            Self::CbsdLockTakenOver => row(
                "cbsd_lock_taken_over",
                WARN,
                Warning,
                &["environment", "path", "holder"],
            ),
            Self::EnvironmentStopFailed => row(
                "environment_stop_failed",
                ERROR,
                Crit,
                &["environment", "failures"],
            ),
            Self::ReleaseFailed => row("release_failed", ERROR, Err, &["failures", "error"]),
            Self::ReleaseStuck => row("release_stuck", ERROR, Crit, &["failures", "action"]),
            Self::FollowRideThrough => {
                row("follow_ride_through", INFO, Info, &["from", "to", "reason"])
            }
            Self::FollowFallback => row(
                "follow_fallback",
                WARN,
                Warning,
                &["from", "to", "cause", "detail"],
            ),
            Self::FollowRemount => row("follow_remount", INFO, Info, &["from", "to", "reason"]),
            Self::FoundHeld => row("found_held", WARN, Warning, &["what"]),
            Self::FoundUnknown => row("found_unknown", WARN, Warning, &["what"]),
            // Raised when `withheld`: the machine is about to reset.
            Self::WatchdogState => row(
                "watchdog_state",
                INFO,
                Info,
                &["state", "timeout_ms", "why"],
            )
            .raised(ERROR, Err),
            Self::WatchdogFailed => row("watchdog_failed", ERROR, Crit, &["device", "error"]),
            Self::AgentFailed => row("agent_failed", ERROR, Crit, &["error"]),
            Self::OverrideRestored => row("override_restored", WARN, Notice, &["override"]),
            Self::ReceiveFailed => row("receive_failed", WARN, Warning, &["error"]),
            Self::AdvertEncodeFailed => row("advert_encode_failed", ERROR, Err, &["error"]),
            // A lost carrier is logged at ERROR but pages only if it lasts:
            // the `fault` it causes is the crit line.
            Self::LinkDown => row("link_down", ERROR, Notice, &["interface"]),
            Self::LinkUp => row("link_up", WARN, Notice, &["interface"]),
            Self::KernelTimerUnavailable => {
                row("kernel_timer_unavailable", WARN, Warning, &["error"])
            }
            Self::LinkWatchUnavailable => row(
                "link_watch_unavailable",
                WARN,
                Warning,
                &["interface", "error"],
            ),
            Self::ShutdownTimeout => row("shutdown_timeout", ERROR, Err, &["grace_s"]),
            Self::NotifyFailed => row("notify_failed", WARN, Warning, &["command", "error"]),
            Self::MetricsFailed => row("metrics_failed", WARN, Warning, &["path", "error"]),
            Self::StateMarkerFailed => {
                row("state_marker_failed", WARN, Warning, &["path", "error"])
            }
            Self::PromoteFailedSuperseded => {
                row("promote_failed_superseded", WARN, Warning, &["reason"])
            }
            Self::QuorumLost => row("quorum_lost", ERROR, Crit, &["heard", "majority"]),
            Self::QuorumRegained => row("quorum_regained", INFO, Notice, &["heard", "majority"]),
            Self::QuorumWaiting => row("quorum_waiting", INFO, Notice, &["heard", "majority"]),
            Self::ClusterConfigMismatch => row(
                "cluster_config_mismatch",
                ERROR,
                Err,
                &["peer", "theirs", "ours"],
            ),
            Self::ClusterConfigMatch => row("cluster_config_match", INFO, Notice, &["peer"]),
            Self::AuthFailed => row(
                "auth_failed",
                ERROR,
                Err,
                &["message", "source", "error", "suppressed"],
            ),
            Self::HeartbeatEncodeFailed => row("heartbeat_encode_failed", ERROR, Err, &["error"]),
            Self::PlacementDecided => row(
                "placement_decided",
                INFO,
                Notice,
                &["environment", "claim", "reason"],
            ),
            Self::LeaseFencing => row("lease_fencing", ERROR, Err, &["resource", "left_ms"]),
            Self::HealthCheckFailed => row(
                "health_check_failed",
                WARN,
                Err,
                &["check", "detail", "response"],
            ),
            Self::HealthCheckRecovered => row("health_check_recovered", INFO, Notice, &["check"]),
            Self::RepairStarted => row("repair_started", INFO, Notice, &["check", "repair"]),
            Self::RepairSucceeded => {
                row("repair_succeeded", INFO, Notice, &["check", "duration_ms"])
            }
            Self::RepairFailed => row("repair_failed", ERROR, Err, &["check", "error"]),
            Self::ResignedUnhealthy => {
                row("resigned_unhealthy", ERROR, Crit, &["check", "repairs"])
            }
            Self::EnvironmentDied => row("environment_died", ERROR, Err, &["environment", "why"]),
            Self::EnvironmentHeld => row(
                "environment_held",
                WARN,
                Warning,
                &["environment", "restored"],
            ),
            Self::EnvironmentReleased => {
                row("environment_released", WARN, Warning, &["environment"])
            }
            Self::HeldNotStarted => row("held_not_started", INFO, Info, &["environment", "by"]),
            Self::HandoverStarted => row(
                "handover_started",
                INFO,
                Info,
                &["waiting_for", "timeout_ms"],
            ),
            // Raised unless every peer quiesced.
            Self::HandoverFinished => row(
                "handover_finished",
                INFO,
                Info,
                &["outcome", "waited_ms", "laggards"],
            )
            .raised(WARN, Warning),
            Self::HandoverCancelled => row("handover_cancelled", INFO, Info, &["waited_ms"]),
            Self::LeaseOverrun => row("lease_overrun", ERROR, Crit, &["resource", "overrun_ms"]),
            Self::ConfigWarning => row("config_warning", WARN, Warning, &["warning"]),
            Self::ControlDenied => row(
                "control_denied",
                WARN,
                Warning,
                &["uid", "gid", "request", "needed"],
            ),
            Self::EnvironmentMove => row("environment_move", WARN, Warning, &["environment", "to"]),
            Self::FenceMarginShort => row(
                "fence_margin_short",
                ERROR,
                Crit,
                &["demote_ms", "fence_margin_ms"],
            ),
        }
    }

    /// The stable name, the `event` field of every record of this event.
    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// The event named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|event| event.name() == name)
    }

    /// The fields every record carries, in the order they are logged.
    pub const fn fields(self) -> &'static [&'static str] {
        self.spec().fields
    }

    /// Fields only the raised records carry (`runbook_step`'s `error`).
    pub const fn extra_fields(self) -> &'static [&'static str] {
        self.spec().extra_fields
    }

    /// How its records are usually logged.
    pub const fn usual(self) -> Loudness {
        self.spec().usual
    }

    /// How the records in the cases its documentation names (a failed
    /// step, a fault, ...) are logged, for the few events that have them.
    pub const fn raised(self) -> Option<Loudness> {
        self.spec().raised
    }

    /// The tracing level of its usual records.
    pub const fn level(self) -> Level {
        self.usual().level
    }

    /// The syslog severity of its usual records.
    pub const fn severity(self) -> Severity {
        self.usual().severity
    }

    /// The syslog severity of one of its records logged at `level`.
    pub fn severity_at(self, level: Level) -> Severity {
        match self.raised() {
            Some(raised) if raised.level == level => raised.severity,
            _ => self.severity(),
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut seen = BTreeSet::new();
        for &event in Event::ALL {
            let name = event.name();
            assert!(seen.insert(name), "{name} is used twice");
            assert!(
                name.starts_with(|c: char| c.is_ascii_lowercase())
                    && !name.ends_with('_')
                    && !name.contains("__")
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name} is not snake_case"
            );
            assert_eq!(Event::from_name(name), Some(event), "{name}");
            assert_eq!(event.to_string(), name);
        }
        assert_eq!(Event::from_name("no_such_event"), None);
        assert_eq!(Event::from_name(""), None);
    }

    #[test]
    fn fields_are_unique_snake_case_and_never_event() {
        for &event in Event::ALL {
            let all: Vec<&str> = event
                .fields()
                .iter()
                .chain(event.extra_fields())
                .copied()
                .collect();
            let unique: BTreeSet<&str> = all.iter().copied().collect();
            assert_eq!(unique.len(), all.len(), "{event}: {all:?}");
            for field in all {
                assert_ne!(field, "event", "{event}");
                assert!(
                    field.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{event}: {field}"
                );
            }
            // Extra fields come with raised records only.
            assert!(
                event.extra_fields().is_empty() || event.raised().is_some(),
                "{event}"
            );
        }
    }

    #[test]
    fn severity_spot_checks_of_the_alerting_contract() {
        for (name, severity) in [
            ("runbook_failed", Severity::Crit),
            ("fault", Severity::Crit),
            ("quorum_lost", Severity::Crit),
            ("fence_margin_short", Severity::Crit),
            ("watchdog_failed", Severity::Crit),
            ("shutdown_timeout", Severity::Err),
            ("config_rejected", Severity::Err),
            ("lease_fencing", Severity::Err),
            ("quorum_waiting", Severity::Notice),
            ("state_change", Severity::Notice),
            ("link_down", Severity::Notice),
            ("cbsd_lock_stale", Severity::Warning),
            ("vip_added", Severity::Info),
            ("garp_sent", Severity::Debug),
        ] {
            let event = Event::from_name(name);
            assert_eq!(event.map(Event::severity), Some(severity), "{name}");
        }
    }

    #[test]
    fn raised_records_take_their_own_severity() {
        let at = |event: Event, level| event.severity_at(level);
        assert_eq!(at(Event::StateChange, Level::WARN), Severity::Notice);
        assert_eq!(at(Event::StateChange, Level::ERROR), Severity::Notice);
        assert_eq!(at(Event::WatchdogState, Level::INFO), Severity::Info);
        assert_eq!(at(Event::WatchdogState, Level::ERROR), Severity::Err);
        assert_eq!(at(Event::RunbookStep, Level::WARN), Severity::Warning);
        assert_eq!(at(Event::HandoverFinished, Level::WARN), Severity::Warning);
        assert_eq!(at(Event::RunbookFailed, Level::ERROR), Severity::Crit);
    }

    #[test]
    fn raised_records_are_louder_and_no_severity_is_quieter_than_its_level() {
        for &event in Event::ALL {
            let usual = event.usual();
            // A severity may be louder than its level's own (crit for
            // what pages, notice for transitions), not quieter: except
            // these transitions, logged at WARN or ERROR on stderr but
            // notices by contract (the alert comes with another event).
            let notices_by_contract = [
                Event::StateChange,
                Event::MasterConflict,
                Event::OverrideChanged,
                Event::OverrideRestored,
                Event::StaleVipRemoved,
                Event::LinkDown,
                Event::LinkUp,
            ];
            if !notices_by_contract.contains(&event) {
                assert!(
                    usual.severity <= Severity::of_level(usual.level),
                    "{event}: {} at {}",
                    usual.severity,
                    usual.level
                );
            }
            if let Some(raised) = event.raised() {
                assert!(raised.level < usual.level, "{event}");
                assert!(raised.severity <= usual.severity, "{event}");
            }
        }
    }

    #[test]
    fn the_fallback_follows_the_level() {
        assert_eq!(Severity::of_level(Level::ERROR), Severity::Err);
        assert_eq!(Severity::of_level(Level::WARN), Severity::Warning);
        assert_eq!(Severity::of_level(Level::INFO), Severity::Info);
        assert_eq!(Severity::of_level(Level::DEBUG), Severity::Debug);
        assert_eq!(Severity::of_level(Level::TRACE), Severity::Debug);
    }
}
