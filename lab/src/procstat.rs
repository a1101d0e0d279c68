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

/// What an idle agent costs, to the nanosecond: CPU time from each
/// thread's `schedstat` (the scheduler's own account; `stat`'s ticks are
/// 10 ms, coarser than an idle minute of keepalived), and how often its
/// threads were switched in (each wake-up from a poll or timer is one
/// voluntary switch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Precise {
    /// CPU time of the live threads of the process and its children, plus
    /// what reaped children used (`cutime` + `cstime`), in nanoseconds.
    pub cpu_ns: u64,
    /// Voluntary and involuntary context switches of those threads.
    pub switches: u64,
}

/// [`Precise`] of `pid` and its direct children; `None` when `pid` is gone.
pub fn precise(pid: u32) -> Option<Precise> {
    let mut total = process_precise(pid)?;
    for child in children(pid) {
        if let Some(p) = process_precise(child) {
            total.cpu_ns += p.cpu_ns;
            total.switches += p.switches;
        }
    }
    Some(total)
}

fn process_precise(pid: u32) -> Option<Precise> {
    let dir = Path::new("/proc").join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let reaped_ticks = reaped_children_ticks(&stat).unwrap_or(0);
    let mut total = Precise {
        cpu_ns: (reaped_ticks as f64 / clock_ticks_per_second() * 1e9) as u64,
        switches: 0,
    };
    for task in std::fs::read_dir(dir.join("task")).ok()?.flatten() {
        let path = task.path();
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            total.cpu_ns += ns;
        }
        if let Ok(status) = std::fs::read_to_string(path.join("status")) {
            total.switches += status_count(&status, "voluntary_ctxt_switches:").unwrap_or(0)
                + status_count(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0);
        }
    }
    Some(total)
}

/// A `Key:\t1234` line of /proc/PID/task/TID/status.
fn status_count(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().parse().ok())
}

/// cutime + cstime in clock ticks: fields 16 and 17 of proc(5), the CPU
/// of children already waited for.
fn reaped_children_ticks(stat: &str) -> Option<u64> {
    let fields = stat_fields(stat);
    let cutime: u64 = fields.get(13)?.parse().ok()?;
    let cstime: u64 = fields.get(14)?.parse().ok()?;
    Some(cutime + cstime)
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
        assert_eq!(reaped_children_ticks(stat), Some(0));
        let with_children = "42 (x) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 3 4 20 0 1 0";
        assert_eq!(reaped_children_ticks(with_children), Some(7));
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
        // Spend some CPU, then the scheduler's account has grown.
        let before = precise(std::process::id()).expect("our own /proc entry");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = precise(std::process::id()).expect("our own /proc entry");
        assert!(after.cpu_ns > before.cpu_ns, "{before:?} {after:?}");
        assert!(after.switches >= before.switches);
    }

    #[test]
    fn reads_context_switch_counts() {
        let status = "voluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(status_count(status, "voluntary_ctxt_switches:"), Some(150));
        assert_eq!(status_count(status, "nonvoluntary_ctxt_switches:"), Some(7));
    }
}
