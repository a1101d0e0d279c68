//! Resource use of the agents under test, from /proc: resident memory
//! (VmRSS, and the peak VmHWM) and CPU time (utime + stime). keepalived runs
//! as two processes (parent and VRRP child), so a process is measured
//! together with its children.

use std::path::Path;

use serde::Serialize;

/// Memory and CPU of one agent (its process plus direct children).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Resident set size now, in KiB.
    pub rss_kib: u64,
    /// Peak resident set size, in KiB.
    pub peak_rss_kib: u64,
    /// User + system CPU time consumed so far, in seconds.
    pub cpu_seconds: f64,
    /// How many processes were summed.
    pub processes: usize,
}

/// Usage of `pid` and its direct children; `None` when `pid` is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let mut total = process_usage(pid)?;
    for child in children(pid) {
        if let Some(u) = process_usage(child) {
            total.rss_kib += u.rss_kib;
            total.peak_rss_kib += u.peak_rss_kib;
            total.cpu_seconds += u.cpu_seconds;
            total.processes += 1;
        }
    }
    Some(total)
}

fn process_usage(pid: u32) -> Option<Usage> {
    let dir = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    Some(Usage {
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
        peak_rss_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
        cpu_seconds: cpu_ticks(&stat)? as f64 / clock_ticks_per_second(),
        processes: 1,
    })
}

/// A `Key:   1234 kB` line of /proc/PID/status.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Fields after the command name of /proc/PID/stat (the name is in
/// parentheses and may itself contain spaces and parentheses).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// utime + stime in clock ticks: fields 14 and 15 of proc(5), i.e. the 12th
/// and 13th after the name.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let fields = stat_fields(stat);
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Parent pid: field 4 of proc(5), the 2nd after the name.
fn parent_of(stat: &str) -> Option<u32> {
    stat_fields(stat).get(1)?.parse().ok()
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| {
            std::fs::read_to_string(Path::new("/proc").join(candidate.to_string()).join("stat"))
                .ok()
                .and_then(|stat| parent_of(&stat))
                == Some(pid)
        })
        .collect()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a process-wide constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0 // the value on every Linux port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_parent_after_a_name_with_spaces() {
        let stat = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parent_of(stat), Some(7));
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_status_kib() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn measures_this_process() {
        let own = usage(std::process::id()).expect("our own /proc entry");
        assert!(own.rss_kib > 0);
    }
}
