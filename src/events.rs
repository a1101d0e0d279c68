//! Every log event the agent emits, with its fields: the alerting interface.
//!
//! Each event is one `tracing` record whose `event` field carries a stable
//! name (`state_change`, `vip_added`, ...). Operators match on that name, so
//! names and field names never change meaning; `docs/events.md` lists them.
//! The names, fields, levels and syslog severities are written once, in
//! [`Event`] (the `catalog` submodule); the functions here are the only
//! emitters and take name and level from it (`emit!`). Nothing else in the
//! crate logs an operator-facing event directly: it calls a function here.

use std::net::IpAddr;

use crate::election::Reason;
use crate::wire::VrrpState;

mod catalog;
mod syslog;

pub use catalog::{Event, Loudness, Severity};

/// Logs one record of an event with `event = NAME` first, at the event's
/// usual level, or with `raised` at its raised level: both come from the
/// catalog, so a call site cannot log a name or a level of its own. The
/// level is a constant (`tracing` puts it in a static), which also makes
/// `raised` on an event without a raised level a compile error.
macro_rules! emit {
    (raised $event:expr, $($field:tt)*) => {
        tracing::event!(
            {
                const LEVEL: tracing::Level = match $event.raised() {
                    Some(raised) => raised.level,
                    None => panic!("this event has no raised level"),
                };
                LEVEL
            },
            event = $event.name(),
            $($field)*
        )
    };
    ($event:expr, $($field:tt)*) => {
        tracing::event!(
            {
                const LEVEL: tracing::Level = $event.level();
                LEVEL
            },
            event = $event.name(),
            $($field)*
        )
    };
}

/// Log output format, chosen with `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
}

/// Where logs go, chosen with `--log-target`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogTarget {
    /// Standard error (the default; daemon(8) -S also forwards it to syslog).
    #[default]
    Stderr,
    /// syslog(3) directly: facility daemon, ident rcbsd-failover, severity
    /// per event (`docs/events.md`), so syslogd can route alerts.
    Syslog,
}

/// Installs the global subscriber. `RUST_LOG` may raise or lower verbosity;
/// the default is `info`.
pub fn init(format: LogFormat, target: LogTarget) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if target == LogTarget::Syslog {
        syslog::open();
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(syslog::SyslogLayer)
            .try_init();
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // A second init (tests calling run twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

fn opt_addr(addr: Option<IpAddr>) -> String {
    addr.map_or_else(|| "none".to_owned(), |a| a.to_string())
}

/// The agent started and is about to join the election.
pub fn agent_started(node: &str, interface: &str, vrid: u8, priority: u8, version: &str) {
    emit!(
        Event::AgentStarted,
        node,
        interface,
        vrid,
        priority,
        version
    );
}

/// The agent is stopping (signal received).
pub fn agent_stopping(signal: &str, state: VrrpState) {
    emit!(Event::AgentStopping, signal, state = %state);
}

/// One role transition of the election core.
pub fn state_change(
    from: VrrpState,
    to: VrrpState,
    reason: Reason,
    priority: u8,
    master: Option<IpAddr>,
) {
    let (reason, master) = (reason.as_str(), opt_addr(master));
    if to == VrrpState::Fault {
        emit!(raised Event::StateChange, from = %from, to = %to, reason, priority, master);
    } else {
        emit!(Event::StateChange, from = %from, to = %to, reason, priority, master);
    }
}

/// A virtual IP was added to the interface.
pub fn vip_added(interface: &str, vip: &str) {
    emit!(Event::VipAdded, interface, vip);
}

/// A virtual IP was removed from the interface.
pub fn vip_removed(interface: &str, vip: &str, reason: &str) {
    emit!(Event::VipRemoved, interface, vip, reason);
}

/// Adding or removing a virtual IP failed.
pub fn vip_failed(interface: &str, vip: &str, operation: &str, error: &str) {
    emit!(Event::VipFailed, interface, vip, operation, error);
}

/// A burst of gratuitous ARPs was sent.
pub fn garp_sent(interface: &str, vips: usize, count: u32, why: &str) {
    emit!(Event::GarpSent, interface, vips, count, why);
}

/// Sending a gratuitous ARP failed.
pub fn garp_failed(interface: &str, error: &str) {
    emit!(Event::GarpFailed, interface, error);
}

/// A burst of unsolicited Neighbor Advertisements for the IPv6 VIPs was sent.
pub fn na_sent(interface: &str, vips: usize, count: u32, why: &str) {
    emit!(Event::NaSent, interface, vips, count, why);
}

/// Sending an unsolicited Neighbor Advertisement failed.
pub fn na_failed(interface: &str, error: &str) {
    emit!(Event::NaFailed, interface, error);
}

/// We are master and heard another master of lower priority (a healed
/// partition): we keep the role and re-announce the VIPs at once.
pub fn master_conflict(other_master: IpAddr, our_priority: u8) {
    emit!(Event::MasterConflict, other_master = %other_master, our_priority);
}

/// Summary of received packets dropped since the last summary (rate-limited:
/// at most one line per summary period, never one line per packet).
pub fn packet_dropped(period_s: u64, total: u64, by_reason: &str) {
    emit!(Event::PacketDropped, period_s, total, by_reason);
}

/// Sending an advertisement failed (rate-limited like drops).
pub fn send_failed(destination: IpAddr, error: &str, count: u64) {
    emit!(Event::SendFailed, destination = %destination, error, count);
}

/// The node entered fault (it resigns and will not become master).
pub fn fault(reason: &str) {
    emit!(Event::Fault, reason);
}

/// A fault was cleared (by `resume` or after the hold-off).
pub fn fault_cleared(how: &str) {
    emit!(Event::FaultCleared, how);
}

/// The operator override changed (`promote`, `demote`, `resume`).
pub fn override_changed(from: &str, to: &str, effective_priority: u8) {
    emit!(Event::OverrideChanged, from, to, effective_priority);
}

/// A virtual IP found on the interface at start (left by a crashed run) was
/// removed before joining the election.
pub fn stale_vip_removed(interface: &str, vip: &str) {
    emit!(Event::StaleVipRemoved, interface, vip);
}

/// SIGHUP: the new configuration was applied.
pub fn config_reloaded(path: &str, changes: &str) {
    emit!(Event::ConfigReloaded, path, changes);
}

/// SIGHUP: the new configuration was refused; the old one stays in force.
pub fn config_rejected(path: &str, error: &str) {
    emit!(Event::ConfigRejected, path, error);
}

/// A control request could not be served.
pub fn control_error(error: &str) {
    emit!(Event::ControlError, error);
}

// ----- Runbooks (promote / demote / follow) -----------------------------

/// A runbook began; `steps` counts the steps known at start (environment
/// starts are added once the mounts are verified).
pub fn runbook_started(runbook: &str, node: &str, steps: usize) {
    emit!(Event::RunbookStarted, runbook, node, steps);
}

/// One attempt of one step. `argv` is every command the attempt ran, in
/// order, separated by ` ; ` (empty for builtins); `outcome` is `ok`,
/// `already` (the probe found the work done), `failed`, `timeout`,
/// `skipped`, `undone` or `undo_failed`.
pub fn runbook_step(
    runbook: &str,
    step: &str,
    argv: &str,
    duration_ms: u64,
    outcome: &str,
    attempt: u32,
    error: &str,
) {
    match outcome {
        "failed" | "timeout" | "undo_failed" => emit!(raised Event::RunbookStep,
            runbook, step, argv, duration_ms, outcome, attempt, error
        ),
        _ => emit!(
            Event::RunbookStep,
            runbook,
            step,
            argv,
            duration_ms,
            outcome,
            attempt
        ),
    }
}

/// The runbook completed; `skipped` lists environments left stopped.
pub fn runbook_finished(runbook: &str, duration_ms: u64, skipped: &str) {
    if skipped.is_empty() {
        emit!(Event::RunbookFinished, runbook, duration_ms, skipped);
    } else {
        emit!(raised Event::RunbookFinished, runbook, duration_ms, skipped);
    }
}

/// The runbook failed at `step` (a promote has undone its done steps).
pub fn runbook_failed(runbook: &str, step: &str, error: &str, duration_ms: u64, undone: usize) {
    emit!(
        Event::RunbookFailed,
        runbook,
        step,
        error,
        duration_ms,
        undone
    );
}

/// A newer transition stopped the runbook before `at_step`.
pub fn runbook_cancelled(runbook: &str, at_step: &str, duration_ms: u64) {
    emit!(Event::RunbookCancelled, runbook, at_step, duration_ms);
}

/// A running step acquiring a resource the fence took away (its lease is
/// ending) was killed with its process group.
pub fn step_killed(runbook: &str, step: &str, why: &str) {
    emit!(Event::StepKilled, runbook, step, why);
}

/// The NFS server of `mountpoint` did not answer `df` (statfs(2)) within
/// `waited_ms`: the mount is force-dismounted (`umount -N`) before anything
/// else touches it, since every process touching it would hang.
pub fn nfs_server_gone(mountpoint: &str, waited_ms: u64) {
    emit!(Event::NfsServerGone, mountpoint, waited_ms);
}

/// A command killed (timeout or fence) was still running `waited_ms` after
/// SIGKILL: it is stuck in the kernel (typically I/O on a dead hard NFS
/// mount) and is abandoned, not awaited. It holds whatever it holds until
/// it exits; the force-dismount (`umount -N`) of its mount frees it.
pub fn command_abandoned(command: &str, pid: u32, waited_ms: u64) {
    emit!(Event::CommandAbandoned, command, pid, waited_ms);
}

/// CBSD's lock of `environment` names another node but is older than 30
/// minutes: CBSD's jstart removes such a lock and starts (sudoexec/jstart),
/// and the agent's lock check lets the start go on likewise.
pub fn cbsd_lock_stale(environment: &str, path: &str, holder: &str, minutes: u64) {
    emit!(Event::CbsdLockStale, environment, path, holder, minutes);
}

/// Adopting `environment` from `holder`, a node that is not live (its lease
/// ran out, so it has fenced): its CBSD lock was removed so that jstart,
/// which refuses a fresh foreign lock, starts it here.
pub fn cbsd_lock_taken_over(environment: &str, path: &str, holder: &str) {
    emit!(Event::CbsdLockTakenOver, environment, path, holder);
}

/// An environment's stop could not be verified (jstop failed, hung or was
/// killed): it may still run here, so it stays claimed and is stopped again
/// with backoff. Were the lease to run out meanwhile, the watchdog fences.
pub fn environment_stop_failed(environment: &str, failures: u32) {
    emit!(Event::EnvironmentStopFailed, environment, failures);
}

/// A check between transitions failed `fall` times in a row; `response`:
/// what is done about it (`repair`, `alert`, `remount`, `restart`,
/// `weight`, `resign`).
pub fn health_check_failed(check: &str, detail: &str, response: &str) {
    emit!(Event::HealthCheckFailed, check, detail, response);
}

/// A failed check succeeded `rise` times in a row.
pub fn health_check_recovered(check: &str) {
    emit!(Event::HealthCheckRecovered, check);
}

/// The agent repairs what `check` found: `repair` names what it does.
pub fn repair_started(check: &str, repair: &str) {
    emit!(Event::RepairStarted, check, repair);
}

/// A repair's steps all succeeded (its check says whether it held).
pub fn repair_succeeded(check: &str, duration_ms: u64) {
    emit!(Event::RepairSucceeded, check, duration_ms);
}

/// A repair's steps failed.
pub fn repair_failed(check: &str, error: &str) {
    emit!(Event::RepairFailed, check, error);
}

/// Repairs did not hold: `repairs` were tried within `health.repair_window`
/// and `check` failed again; the node resigns (fault) so another promotes.
pub fn resigned_unhealthy(check: &str, repairs: u32) {
    emit!(Event::ResignedUnhealthy, check, repairs);
}

/// An environment placed here stopped by itself and is not restarted
/// (`why`: the policy, or the restart budget spent).
pub fn environment_died(environment: &str, why: &str) {
    emit!(Event::EnvironmentDied, environment, why);
}

/// `env hold` marked an environment (`restored`: the mark was read from
/// `node.state_dir` at start): the agent never starts or restarts it.
pub fn environment_held(environment: &str, restored: bool) {
    emit!(Event::EnvironmentHeld, environment, restored);
}

/// `env release` cleared an environment's hold.
pub fn environment_released(environment: &str) {
    emit!(Event::EnvironmentReleased, environment);
}

/// A held environment was left stopped: by a runbook (`by` its name) that
/// would have started it, or found stopped by the health watch (`by` =
/// `health`, once per stop).
pub fn held_not_started(environment: &str, by: &str) {
    emit!(Event::HeldNotStarted, environment, by);
}

/// A demote failed: the master resources stay held (and claimed); it is
/// retried with backoff. `failures` counts the failures in a row.
pub fn release_failed(failures: u32, error: &str) {
    emit!(Event::ReleaseFailed, failures, error);
}

/// The followed master changed (`to`: the new one, or `none` while not
/// known yet) and ride-through keeps the mounts of `from` and the
/// environments on them.
pub fn follow_ride_through(from: &str, to: &str, reason: &str) {
    emit!(Event::FollowRideThrough, from, to, reason);
}

/// A ride-through gave up (`cause`: `stale_handle`, `hung`,
/// `identity_changed`, `not_serving`, `state_not_moved`, `probe_failed`):
/// the full follow runs.
pub fn follow_fallback(from: &str, to: &str, cause: &str, detail: &str) {
    emit!(Event::FollowFallback, from, to, cause, detail);
}

/// A master is followed in full (stop, unmount, mount, start): `reason`
/// says why it is not a ride-through.
pub fn follow_remount(from: &str, to: &str, reason: &str) {
    emit!(Event::FollowRemount, from, to, reason);
}

/// Demotes keep failing while this node holds the master resources.
/// `action`: `watchdog` (the watchdog is no longer patted: the machine
/// resets, which releases everything), `retake` (the node takes the master
/// role back, as nobody else can have it; `resume` once the cause is
/// fixed), or `alert_only` (neither is possible).
pub fn release_stuck(failures: u32, action: &str) {
    emit!(Event::ReleaseStuck, failures, action);
}

/// At start, the real world shows this master resource held (the start-up
/// probe): the node keeps claiming the master role until a demote (or a
/// promote) has dealt with it.
pub fn found_held(what: &str) {
    emit!(Event::FoundHeld, what);
}

/// At start, a probe of a master resource could not answer; it counts as
/// held.
pub fn found_unknown(what: &str) {
    emit!(Event::FoundUnknown, what);
}

/// The watchdog changed state: `armed` (patted while something is held),
/// `disarmed` (nothing held) or `withheld` (something is held without the
/// leases to cover the countdown: unless they come back, the machine
/// resets within `timeout_ms`).
pub fn watchdog_state(state: &str, timeout_ms: u64, why: &str) {
    match state {
        "withheld" => emit!(raised Event::WatchdogState, state, timeout_ms, why),
        _ => emit!(Event::WatchdogState, state, timeout_ms, why),
    }
}

/// The watchdog device refused a pat or a disarm.
pub fn watchdog_failed(device: &str, error: &str) {
    emit!(Event::WatchdogFailed, device, error);
}

// ----- Agent internals worth an alert --------------------------------------

/// The agent could not start; the process exits non-zero.
pub fn agent_failed(error: &str) {
    emit!(Event::AgentFailed, error);
}

/// An override stored in `state_dir` is in force at start.
pub fn override_restored(override_: &str) {
    emit!(Event::OverrideRestored, r#override = override_);
}

/// Reading the raw socket failed.
pub fn receive_failed(error: &str) {
    emit!(Event::ReceiveFailed, error);
}

/// An advert could not be encoded (a bug: the config is validated).
pub fn advert_encode_failed(error: &str) {
    emit!(Event::AdvertEncodeFailed, error);
}

/// The interface lost its carrier.
pub fn link_down(interface: &str) {
    emit!(Event::LinkDown, interface);
}

/// The link and address messages cannot be read (the socket failed to
/// open or to read): the agent polls the carrier instead.
pub fn link_watch_unavailable(interface: &str, error: &str) {
    emit!(Event::LinkWatchUnavailable, interface, error);
}

/// No timerfd/kqueue timer for the election loop: it sleeps on tokio's
/// timer wheel instead.
pub fn kernel_timer_unavailable(error: &str) {
    emit!(Event::KernelTimerUnavailable, error);
}

/// The interface's carrier is back.
pub fn link_up(interface: &str) {
    emit!(Event::LinkUp, interface);
}

/// SIGTERM: the demote did not finish within the grace period.
pub fn shutdown_timeout(grace_s: u64) {
    emit!(Event::ShutdownTimeout, grace_s);
}

/// The notify command failed, timed out or could not start.
pub fn notify_failed(command: &str, error: &str) {
    emit!(Event::NotifyFailed, command, error);
}

/// Writing the metrics textfile failed.
pub fn metrics_failed(path: &str, error: &str) {
    emit!(Event::MetricsFailed, path, error);
}

/// The master marker in `state_dir` could not be written or removed.
pub fn state_marker_failed(path: &str, error: &str) {
    emit!(Event::StateMarkerFailed, path, error);
}

/// A promote failed after a newer decision had already superseded it: the
/// node is not put in fault (it is no longer meant to be master).
pub fn promote_failed_superseded(reason: &str) {
    emit!(Event::PromoteFailedSuperseded, reason);
}

// --- Quorum, leases, placement, authentication -----------------------------

/// This node no longer hears a strict majority of `[cluster] nodes` (or is
/// no longer heard by one): it advertises priority 0, and fences whatever
/// it holds before its leases run out. `heard` lists the live nodes.
pub fn quorum_lost(heard: &str, majority: usize) {
    emit!(Event::QuorumLost, heard, majority);
}

/// A majority hears this node again (also logged once at start when quorum
/// is first reached).
pub fn quorum_regained(heard: &str, majority: usize) {
    emit!(Event::QuorumRegained, heard, majority);
}

/// No majority has been heard yet since the start (a cold start): the node
/// waits for quorum before it may become master or run environments.
pub fn quorum_waiting(heard: &str, majority: usize) {
    emit!(Event::QuorumWaiting, heard, majority);
}

/// A peer's cluster-wide sections (`[cluster]`, `[[environment]]`, VRID and
/// VIPs) hash differently from ours: the nodes disagree on who is in the
/// cluster or where environments run. Logged once per peer and hash.
pub fn cluster_config_mismatch(peer: &str, theirs: u64, ours: u64) {
    emit!(Event::ClusterConfigMismatch,
        peer,
        theirs = %format!("{theirs:016x}"),
        ours = %format!("{ours:016x}")
    );
}

/// A peer that differed now hashes like us again.
pub fn cluster_config_match(peer: &str) {
    emit!(Event::ClusterConfigMatch, peer);
}

/// A message failed authentication (wrong key, forged, altered, or without
/// a tag while `[auth]` is on). Rate-limited: at most one line per sender
/// per 10 s; `suppressed` counts the failures not logged since.
pub fn auth_failed(message: &str, source: &str, error: &str, suppressed: u64) {
    emit!(Event::AuthFailed, message, source, error, suppressed);
}

/// Our own heartbeat could not be encoded (over the size bound: too many
/// environments for one datagram).
pub fn heartbeat_encode_failed(error: &str) {
    emit!(Event::HeartbeatEncodeFailed, error);
}

/// Placement changed its mind about claiming an environment here.
pub fn placement_decided(environment: &str, claim: bool, reason: &str) {
    emit!(Event::PlacementDecided, environment, claim, reason);
}

/// A lease this node used is about to run out (less than `fence_margin`
/// left, or gone): it stops using the resource now. `resource` is `master`
/// or `env:NAME`.
pub fn lease_fencing(resource: &str, left_ms: u64) {
    emit!(Event::LeaseFencing, resource, left_ms);
}

/// A planned hand-over began: this master gives up its role on purpose
/// (`demote`, SIGTERM, preemption) and keeps serving NFS until the nodes in
/// `waiting_for` have stopped their environments and unmounted, for
/// `timeout_ms` at most. Then the demote runs, VIP first.
pub fn handover_started(waiting_for: &str, timeout_ms: u64) {
    emit!(Event::HandoverStarted, waiting_for, timeout_ms);
}

/// The hand-over's wait ended after `waited_ms`: `quiesced` (every live
/// peer), `timed_out` (`laggards` had not quiesced: they will find a dead
/// server and force-dismount), or forced by `quorum_lost`, `lease_ending`
/// or `fault` (the VIP goes at once).
pub fn handover_finished(outcome: &str, waited_ms: u64, laggards: &str) {
    match outcome {
        "quiesced" => emit!(Event::HandoverFinished, outcome, waited_ms, laggards),
        _ => emit!(raised Event::HandoverFinished, outcome, waited_ms, laggards),
    }
}

/// This node was elected master again while it waited to hand over: it
/// stays master (the followers mount it again).
pub fn handover_cancelled(waited_ms: u64) {
    emit!(Event::HandoverCancelled, waited_ms);
}

/// A resource was still held when its lease ran out: the fence did not
/// finish in `fence_margin` (raise it, or shorten the demote runbook).
pub fn lease_overrun(resource: &str, overrun_ms: u64) {
    emit!(Event::LeaseOverrun, resource, overrun_ms);
}

/// The configuration is valid but short of what it should be (the same
/// warnings as `check-config`), logged once at start.
pub fn config_warning(warning: &str) {
    emit!(Event::ConfigWarning, warning);
}

/// A control-socket client was refused: not root, and either not in
/// `[node] status_group` or asking for more than `status`. `request` is
/// `connect` when the client may send nothing at all; `needed` says what
/// it takes (`root`, or `root or membership of group NAME`).
pub fn control_denied(uid: u32, gid: u32, request: &str, needed: &str) {
    emit!(Event::ControlDenied, uid, gid, request, needed);
}

/// `rcbsd-failover move`: this node stops `environment`, then `to` starts
/// it (the handoff is announced in the heartbeats until `to` runs it, or
/// for at most two minutes).
pub fn environment_move(environment: &str, to: &str) {
    emit!(Event::EnvironmentMove, environment, to);
}

/// A demote took longer than `[cluster] fence_margin`: were this node cut
/// off, another node could take the storage before this one released it.
/// Raise `fence_margin` (and `lease`) above `demote_ms`.
pub fn fence_margin_short(demote_ms: u64, fence_margin_ms: u64) {
    emit!(Event::FenceMarginShort, demote_ms, fence_margin_ms);
}

#[cfg(test)]
mod tests;
