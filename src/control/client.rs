//! The CLI side of the control socket: one request, one reply, blocking.
//!
//! Also renders a [`Status`] for humans (`status` without `--json`).

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::ExitStatus;

use super::protocol::{ClusterStatus, HealthStatus, Request, Response, Status};

/// Longest reply accepted; a status is a few hundred bytes.
const MAX_REPLY: u64 = 1024 * 1024;

/// The timeout the CLI uses by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a request to the agent got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket path does not exist: no agent is running.
    #[error("no agent running (socket {} not found)", path.display())]
    NotFound {
        /// The control socket path.
        path: PathBuf,
    },
    /// The socket exists but refuses connections (`ECONNREFUSED`).
    #[error("no agent running (socket {} refuses connections; a stale file from a stopped agent?)", path.display())]
    Refused {
        /// The control socket path.
        path: PathBuf,
    },
    /// connect(2) failed with `EACCES`: the socket's mode does not let us in.
    #[error(
        "permission denied on {} (run as root, or as a member of [node] status_group for status)",
        path.display()
    )]
    PermissionDenied {
        /// The control socket path.
        path: PathBuf,
    },
    /// No reply within the timeout.
    #[error("the agent on {} did not answer within {}s", path.display(), timeout.as_secs_f64())]
    Timeout {
        /// The control socket path.
        path: PathBuf,
        /// How long the client waited.
        timeout: Duration,
    },
    /// Another I/O error on the socket.
    #[error("control socket {}: {source}", path.display())]
    Io {
        /// The control socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The request could not be encoded or the reply is not a valid
    /// [`Response`] line.
    #[error("malformed reply from the agent on {}: {detail}", path.display())]
    MalformedReply {
        /// The control socket path.
        path: PathBuf,
        /// What was wrong with it.
        detail: String,
    },
}

impl ClientError {
    /// The sysexits(3) code for this failure: EX_UNAVAILABLE (69) when no
    /// agent answers, EX_NOPERM (77), EX_TEMPFAIL (75) on timeout,
    /// EX_PROTOCOL (76) for a reply we cannot read, EX_IOERR (74) otherwise.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            ClientError::NotFound { .. } | ClientError::Refused { .. } => ExitStatus::Unavailable,
            ClientError::PermissionDenied { .. } => ExitStatus::NoPerm,
            ClientError::Timeout { .. } => ExitStatus::TempFail,
            ClientError::MalformedReply { .. } => ExitStatus::Protocol,
            ClientError::Io { .. } => ExitStatus::IoErr,
        }
    }
}

/// How often `move --wait` asks the agent where an environment runs.
const MOVE_POLL: Duration = Duration::from_millis(250);

/// `move --wait`: asks the agent on `socket` every 250 ms where
/// `environment` runs, until it runs on `node` alone (true) or `wait`
/// passes (false). `on_change` sees each new answer (the nodes that run
/// it; none while it is stopped between two nodes). A status request that
/// fails (the agent restarting) is retried until the deadline.
pub fn wait_for_move(
    socket: &Path,
    environment: &str,
    node: &str,
    wait: Duration,
    mut on_change: impl FnMut(&[String]),
) -> bool {
    let deadline = std::time::Instant::now() + wait;
    let mut last: Option<Vec<String>> = None;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(MOVE_POLL);
        let Ok(response) = request(socket, Request::Status, DEFAULT_TIMEOUT) else {
            continue;
        };
        let running_on = response
            .status
            .and_then(|s| s.cluster)
            .and_then(|c| c.environments.into_iter().find(|e| e.name == environment))
            .map(|e| e.running_on)
            .unwrap_or_default();
        if last.as_ref() != Some(&running_on) {
            on_change(&running_on);
            last = Some(running_on.clone());
        }
        if running_on == [node] {
            return true;
        }
    }
    false
}

/// Send `req` to the agent listening on `path` and wait for its reply, at
/// most `timeout` for each of connect-write and read.
pub fn request(path: &Path, req: Request, timeout: Duration) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(path).map_err(|e| connect_error(path, e))?;
    let io_error = |source: io::Error| classify_io(path, timeout, source);
    stream.set_read_timeout(Some(timeout)).map_err(io_error)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_error)?;

    let mut line = serde_json::to_vec(&req).map_err(|e| ClientError::MalformedReply {
        path: path.to_path_buf(),
        detail: format!("cannot encode the request: {e}"),
    })?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(io_error)?;

    let mut reply = Vec::new();
    BufReader::new((&stream).take(MAX_REPLY + 1))
        .read_until(b'\n', &mut reply)
        .map_err(io_error)?;
    parse_reply(path, &reply)
}

fn parse_reply(path: &Path, reply: &[u8]) -> Result<Response, ClientError> {
    let malformed = |detail: String| ClientError::MalformedReply {
        path: path.to_path_buf(),
        detail,
    };
    if reply.is_empty() {
        return Err(malformed("the connection closed without a reply".into()));
    }
    if reply.len() as u64 > MAX_REPLY {
        return Err(malformed(format!("longer than {MAX_REPLY} bytes")));
    }
    serde_json::from_slice(reply).map_err(|e| malformed(e.to_string()))
}

fn connect_error(path: &Path, error: io::Error) -> ClientError {
    let path = path.to_path_buf();
    match error.kind() {
        io::ErrorKind::NotFound => ClientError::NotFound { path },
        io::ErrorKind::ConnectionRefused => ClientError::Refused { path },
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path },
        _ => ClientError::Io {
            path,
            source: error,
        },
    }
}

fn classify_io(path: &Path, timeout: Duration, error: io::Error) -> ClientError {
    match error.kind() {
        // A socket read timeout shows up as EAGAIN (WouldBlock) on Unix.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            path: path.to_path_buf(),
            timeout,
        },
        _ => ClientError::Io {
            path: path.to_path_buf(),
            source: error,
        },
    }
}

/// `status` for humans: aligned `key: value` lines, drops one per reason.
pub fn render_status(status: &Status) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |key: &str, value: String| rows.push((key.to_string(), value));
    row("node", status.node.clone());
    row("state", status.state.to_string());
    row(
        "virtual router",
        format!(
            "vrid {} on {} ({})",
            status.vrid,
            status.interface,
            if status.family == "ipv6" {
                "IPv6"
            } else {
                "IPv4"
            }
        ),
    );
    row(
        "priority",
        format!(
            "{} configured, {} effective",
            status.configured_priority, status.effective_priority
        ),
    );
    row(
        "master",
        status
            .master
            .map_or_else(|| "unknown".to_string(), |address| address.to_string()),
    );
    row(
        "vips held",
        if status.vips_held.is_empty() {
            "none".to_string()
        } else {
            status.vips_held.join(" ")
        },
    );
    if let Some(v6) = &status.vrrp6 {
        row(
            "vrrp6",
            format!(
                "vrid {} on {} (IPv6, synchronised to [vrrp]): {}, master {}, priority {}, interval {} ms; vips held {}",
                v6.vrid,
                v6.interface,
                v6.state,
                v6.master
                    .map_or_else(|| "unknown".to_string(), |m| m.to_string()),
                v6.priority,
                v6.advert_interval_ms,
                if v6.vips_held.is_empty() {
                    "none".to_string()
                } else {
                    v6.vips_held.join(" ")
                }
            ),
        );
    }
    row("override", status.override_.as_str().to_string());
    if status.follower_only {
        row(
            "role",
            "follower-only (no [storage]): never becomes master".to_string(),
        );
    }
    row(
        "fault",
        status.fault.clone().unwrap_or_else(|| "none".to_string()),
    );
    if status.handing_over {
        row(
            "handing over",
            "serving NFS until the followers have unmounted (cluster.handover_timeout), then demoting, VIP first".to_string(),
        );
    }
    if let Some(ride) = &status.riding {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let to = ride
            .to
            .map_or_else(|| "(no master yet)".to_string(), |to| to.to_string());
        row(
            "riding through",
            format!(
                "master {} → {to} for {} (since {} Unix time), deadline in {} ({} Unix time): mounts and environments kept until the new master serves and they answer, else the full follow",
                ride.from,
                format_uptime(now.saturating_sub(ride.since)),
                ride.since,
                format_uptime(ride.deadline.saturating_sub(now)),
                ride.deadline
            ),
        );
    }
    if !status.health.is_empty() {
        let failed: Vec<String> = status
            .health
            .iter()
            .filter(|h| !h.good && !h.held)
            .map(|h| {
                let repairing = if h.repairing { ", repairing" } else { "" };
                format!("{} ({}{repairing})", h.check, h.detail)
            })
            .collect();
        let summary = if failed.is_empty() {
            format!("{} checks good", status.health.len())
        } else {
            format!(
                "{} of {} checks FAILED: {}",
                failed.len(),
                status.health.len(),
                failed.join("; ")
            )
        };
        row("health", summary);
        for check in &status.health {
            row(&format!("  {}", check.check), health_line(check));
        }
    }
    if !status.held.is_empty() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let held: Vec<String> = status
            .held
            .iter()
            .map(|h| {
                format!(
                    "{} (for {})",
                    h.name,
                    format_uptime(now.saturating_sub(h.since))
                )
            })
            .collect();
        row(
            "held",
            format!(
                "{}: never started or restarted by the agent (env release NAME)",
                held.join(", ")
            ),
        );
    }
    if status.retained {
        row(
            "retained",
            "demotes kept failing with the storage held: master again; fix the cause, then `rcbsd-failover resume`".to_string(),
        );
    }
    if let Some(w) = &status.watchdog {
        let last = w.last_pat_ms.map_or_else(
            || "never patted".to_string(),
            |ms| format!("last pat {ms} ms ago"),
        );
        let why = w
            .why
            .as_deref()
            .map_or(String::new(), |why| format!(": {why}"));
        row(
            "watchdog",
            format!(
                "{} ({}, {} ms) {}, {}{why}; {last}, {} pats, {} failures",
                w.device,
                w.kind,
                w.timeout_ms,
                if w.armed { "armed" } else { "disarmed" },
                w.verdict,
                w.pats,
                w.failures
            ),
        );
    }
    row(
        "runbook",
        match &status.runbook {
            Some(p) => format!(
                "{} step {}/{} \"{}\" ({} ms, {} ms in this step)",
                p.runbook.as_str(),
                p.step_number,
                p.steps,
                p.step,
                p.elapsed_ms,
                p.step_elapsed_ms
            ),
            None => "none".to_string(),
        },
    );
    row(
        "advert interval",
        format!(
            "{} ms (master's {} ms)",
            status.advert_interval_ms, status.master_advert_interval_ms
        ),
    );
    row("uptime", format_uptime(status.uptime_s));
    row(
        "version",
        format!("{} (pid {})", status.version, status.pid),
    );
    let counters = &status.counters;
    row("adverts sent", counters.adverts_sent.to_string());
    row("adverts received", counters.adverts_received.to_string());
    row("transitions", counters.transitions.to_string());
    let total_drops: u64 = counters.drops.values().sum();
    row("drops", total_drops.to_string());
    for (reason, count) in &counters.drops {
        row(&format!("  {reason}"), count.to_string());
    }
    if !counters.checksum_forms.is_empty() {
        row("checksum forms", String::new());
        for (form, count) in &counters.checksum_forms {
            row(&format!("  {form}"), count.to_string());
        }
    }
    if let Some(cluster) = &status.cluster {
        cluster_rows(cluster, &mut row);
    }

    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    let mut text = String::new();
    for (key, value) in rows {
        let line = format!("{:<width$} {value}", format!("{key}:"));
        let _ = writeln!(text, "{}", line.trim_end());
    }
    text
}

/// The `[cluster]` part of `status`: quorum, leases, environments.
fn cluster_rows(cluster: &ClusterStatus, row: &mut impl FnMut(&str, String)) {
    let none_if_empty = |items: &[String]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(" ")
        }
    };
    row(
        "quorum",
        if cluster.quorum {
            format!(
                "yes ({} of {} needed heard)",
                cluster.heard.len(),
                cluster.majority
            )
        } else {
            format!(
                "LOST: hears {} of the {} needed; no master role, no environments here",
                cluster.heard.len(),
                cluster.majority
            )
        },
    );
    row("heard", none_if_empty(&cluster.heard));
    row("not heard", none_if_empty(&cluster.not_heard));
    row("claims", none_if_empty(&cluster.claims));
    row(
        "master lease",
        cluster
            .master_lease_ms
            .map_or_else(|| "not held".to_string(), |ms| format!("{ms} ms left")),
    );
    if !cluster.config_mismatch.is_empty() {
        row(
            "CONFIG MISMATCH",
            format!(
                "{}: [cluster]/[[environment]] differ from ours",
                cluster.config_mismatch.join(" ")
            ),
        );
    }
    let dropped: u64 = cluster.heartbeats_dropped.values().sum();
    row(
        "heartbeats",
        format!(
            "{} sent, {} received, {} dropped",
            cluster.heartbeats_sent, cluster.heartbeats_received, dropped
        ),
    );
    for (reason, count) in &cluster.heartbeats_dropped {
        row(&format!("  {reason}"), count.to_string());
    }
    for env in &cluster.environments {
        let place = if env.running_on.is_empty() {
            "not running".to_string()
        } else {
            format!("runs on {}", env.running_on.join(" "))
        };
        let here = match (env.claimed_here, env.lease_ms) {
            (true, Some(ms)) => format!("claimed here, lease {ms} ms"),
            (true, None) => "claimed here, waiting for its lease".to_string(),
            (false, _) => "not here".to_string(),
        };
        row(
            &format!("environment {}", env.name),
            format!("{place}; {here} ({})", env.reason),
        );
    }
}

/// `env list` for humans: one line per held environment, with since when
/// and what its health check says, or "no environment is held".
pub fn render_holds(status: &Status) -> String {
    if status.held.is_empty() {
        return "no environment is held\n".to_string();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let width = status.held.iter().map(|h| h.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for held in &status.held {
        let check = status
            .health
            .iter()
            .find(|h| h.check == format!("environment {}", held.name));
        let state = match check {
            Some(h) if h.good => "running",
            Some(_) => "stopped",
            None => "not checked here",
        };
        let _ = writeln!(
            text,
            "{:<width$}  held for {} (since {} Unix time); {state}",
            held.name,
            format_uptime(now.saturating_sub(held.since)),
            held.since
        );
    }
    text
}

/// One health check for humans: its state and since when, its last
/// result, and its counts.
pub fn health_line(check: &HealthStatus) -> String {
    let state = match (check.good, check.held) {
        (true, _) => "good".to_string(),
        (false, true) => format!("stopped, HELD ({})", check.detail),
        (false, false) if check.detail.is_empty() => "FAILING".to_string(),
        (false, false) => format!("FAILING ({})", check.detail),
    };
    let since = check
        .last_change_s_ago
        .map_or(String::new(), |s| format!(" for {}", format_uptime(s)));
    let repairing = if check.repairing { ", repairing" } else { "" };
    let held = if check.held && check.good {
        ", held"
    } else {
        ""
    };
    let last = check.last_run_s_ago.map_or_else(
        || "not run yet".to_string(),
        |s| format!("last run {s} s ago"),
    );
    let plural = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let mut counts = vec![plural(check.runs, "run"), plural(check.failures, "failure")];
    if check.check.starts_with("environment ") {
        counts.push(plural(check.restarts, "restart"));
    } else {
        counts.push(plural(check.repairs, "repair"));
    }
    format!(
        "{state}{since}{repairing}{held}; {last}; {}",
        counts.join(", ")
    )
}

fn format_uptime(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (hours, rest) = (rest / 3600, rest % 3600);
    let (minutes, seconds) = (rest / 60, rest % 60);
    if days > 0 {
        format!("{days}d {hours}h {minutes}m {seconds}s")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::Counters;
    use crate::election::priority::Override;
    use crate::wire::VrrpState;

    fn status() -> Status {
        let mut counters = Counters {
            adverts_sent: 12,
            adverts_received: 34,
            transitions: 2,
            ..Counters::default()
        };
        counters.drops.insert("bad_ttl".into(), 3);
        counters.drops.insert("bad_checksum".into(), 1);
        counters.checksum_forms.insert("pseudo-header".into(), 34);
        Status {
            node: "node1".into(),
            version: "0.1.0".into(),
            pid: 42,
            state: VrrpState::Master,
            interface: "em0".into(),
            vrid: 51,
            family: "ipv4".into(),
            configured_priority: 100,
            effective_priority: 254,
            follower_only: false,
            master: Some("192.168.10.201".parse().unwrap()),
            vips_held: vec!["192.168.10.200/24".into()],
            override_: Override::Promote,
            fault: None,
            runbook: None,
            advert_interval_ms: 1000,
            master_advert_interval_ms: 1000,
            uptime_s: 3725,
            counters,
            cluster: None,
            watchdog: None,
            retained: false,
            vrrp6: None,
            handing_over: false,
            health: Vec::new(),
            held: Vec::new(),
            riding: None,
        }
    }

    #[test]
    fn human_status_aligns_values_and_lists_drops_by_reason() {
        let text = render_status(&status());
        // The longest key, "adverts received:", sets the value column (19).
        assert!(text.contains("\nstate:            master\n"), "{text}");
        assert!(text.contains("\n  bad_ttl:        3\n"), "{text}");
        assert!(text.contains("\ndrops:            4\n"), "{text}");
        assert!(text.contains("\nuptime:           1h 2m 5s\n"), "{text}");
        assert!(
            text.contains("\nchecksum forms:\n  pseudo-header:"),
            "{text}"
        );
        let value_columns: Vec<usize> = text
            .lines()
            .filter(|line| !line.ends_with(':'))
            .map(|line| line.len() - line.split_once(": ").unwrap().1.trim_start().len())
            .collect();
        assert!(value_columns.windows(2).all(|w| w[0] == w[1]), "{text}");
    }

    #[test]
    fn human_status_shows_every_check_with_its_counts_and_the_holds() {
        use crate::control::protocol::{HealthStatus, HeldStatus};
        let mut s = status();
        let check = |name: &str, good: bool, detail: &str| HealthStatus {
            check: name.into(),
            good,
            detail: detail.into(),
            repairing: false,
            last_run_s_ago: Some(3),
            last_change_s_ago: Some(125),
            runs: 40,
            failures: 4,
            repairs: 1,
            restarts: 0,
            held: false,
        };
        let mut web = check("environment web1", false, "web1 is not running");
        web.held = true;
        let mut db = check("environment db1", false, "db1 is not running");
        db.restarts = 2;
        db.repairing = true;
        s.health = vec![
            check("service nfsd", true, ""),
            check("vip", false, "192.168.10.200 is not on em0"),
            web,
            db,
        ];
        s.held = vec![HeldStatus {
            name: "web1".into(),
            since: 0,
        }];
        let text = render_status(&s);
        assert!(
            text.contains("2 of 4 checks FAILED: vip (192.168.10.200 is not on em0); environment db1 (db1 is not running, repairing)"),
            "a held environment is no failure: {text}"
        );
        for line in [
            "  service nfsd:     good for 2m 5s; last run 3 s ago; 40 runs, 4 failures, 1 repair",
            "  vip:              FAILING (192.168.10.200 is not on em0) for 2m 5s; last run 3 s ago; 40 runs, 4 failures, 1 repair",
            "  environment web1: stopped, HELD (web1 is not running) for 2m 5s; last run 3 s ago; 40 runs, 4 failures, 0 restarts",
            "  environment db1:  FAILING (db1 is not running) for 2m 5s, repairing; last run 3 s ago; 40 runs, 4 failures, 2 restarts",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("held:") && l.contains("web1 (for ")),
            "{text}"
        );
    }

    #[test]
    fn human_status_and_json_show_a_ride_in_progress() {
        use crate::control::protocol::RideStatus;
        let mut s = status();
        assert!(!render_status(&s).contains("riding through"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        s.riding = Some(RideStatus {
            from: "198.18.0.1".parse().expect("address"),
            to: Some("198.18.0.2".parse().expect("address")),
            since: now - 12,
            deadline: now + 168,
        });
        let text = render_status(&s);
        assert!(
            text.contains(&format!(
                "riding through:   master 198.18.0.1 → 198.18.0.2 for 12s (since {} Unix time), deadline in 2m 48s ({} Unix time)",
                now - 12,
                now + 168
            )),
            "{text}"
        );
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["riding"]["from"], "198.18.0.1");
        assert_eq!(json["riding"]["to"], "198.18.0.2");
        assert_eq!(json["riding"]["deadline"], now + 168);
        // An older agent's status (no field) reads as not riding.
        let mut old = json.clone();
        old.as_object_mut().expect("object").remove("riding");
        let back: Status = serde_json::from_value(old).expect("decodes");
        assert_eq!(back.riding, None);
    }

    #[test]
    fn human_status_shows_the_watchdog_and_a_retained_role() {
        use crate::control::protocol::WatchdogStatus;
        let mut s = status();
        s.retained = true;
        s.watchdog = Some(WatchdogStatus {
            device: "/dev/fido".into(),
            kind: "freebsd".into(),
            timeout_ms: 1073,
            armed: true,
            verdict: "withhold".into(),
            why: Some("the lease on master ends in 900 ms".into()),
            last_pat_ms: Some(1500),
            pats: 7,
            failures: 0,
        });
        let text = render_status(&s);
        assert!(
            text.contains("watchdog:         /dev/fido (freebsd, 1073 ms) armed, withhold: the lease on master ends in 900 ms; last pat 1500 ms ago"),
            "{text}"
        );
        assert!(
            text.contains("retained:         demotes kept failing"),
            "{text}"
        );
    }

    #[test]
    fn human_status_shows_quorum_leases_and_where_environments_run() {
        use crate::control::protocol::{ClusterStatus, EnvironmentStatus};
        let mut lost = status();
        lost.cluster = Some(ClusterStatus {
            quorum: false,
            majority: 2,
            heard: vec!["node1".into()],
            not_heard: vec!["node2".into(), "node3".into()],
            config_mismatch: vec!["node3".into()],
            heartbeats_dropped: [("auth".to_owned(), 7)].into_iter().collect(),
            environments: vec![EnvironmentStatus {
                name: "web1".into(),
                running_on: vec!["node2".into()],
                claimed_here: false,
                reason: "runs on node2".into(),
                lease_ms: None,
            }],
            ..ClusterStatus::default()
        });
        let text = render_status(&lost);
        for line in [
            "LOST: hears 1 of the 2 needed",
            "not heard:",
            "node2 node3",
            "CONFIG MISMATCH:",
            "  auth:",
            "environment web1:",
            "runs on node2; not here (runs on node2)",
            "master lease:",
            "not held",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert!(
            !render_status(&status()).contains("quorum"),
            "plain VRRP shows no cluster rows"
        );
    }

    #[test]
    fn missing_socket_means_no_agent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sock");
        let error = request(&path, Request::Status, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(error, ClientError::NotFound { .. }));
        assert_eq!(error.exit_status(), ExitStatus::Unavailable);
        assert!(error.to_string().starts_with("no agent running"), "{error}");
    }

    #[test]
    fn an_agent_that_never_answers_is_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mute.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let error = request(&path, Request::Status, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
    }

    #[test]
    fn garbage_replies_are_malformed_not_panics() {
        let path = Path::new("/x.sock");
        for reply in [&b""[..], b"not json\n", b"{\"ok\":1}\n", b"\xff\xfe\n"] {
            assert!(matches!(
                parse_reply(path, reply),
                Err(ClientError::MalformedReply { .. })
            ));
        }
        assert!(parse_reply(path, b"{\"ok\":true}\n").unwrap().ok);
    }
}
