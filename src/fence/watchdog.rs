//! The watchdog device layer: open a watchdog, pat it, disarm it. If the
//! agent freezes, crashes or hangs while it holds storage, the pats stop and
//! the machine resets. When to pat is the caller's policy; this module only
//! drives the device and reports the timeout the device really has.
//!
//! Three kinds of path ([`WatchdogKind`]):
//!
//! - a **FreeBSD** watchdog(4) character device (`/dev/fido`), driven with
//!   the ioctls of `sys/sys/watchdog.h` ([`freebsd`]). Opening it arms
//!   nothing; the first [`Watchdog::pat`] arms it.
//! - a **Linux** watchdog character device (`/dev/watchdog`,
//!   `/dev/watchdogN`), driven with `include/uapi/linux/watchdog.h`
//!   ([`linux`]). The kernel arms it as soon as it is opened, so
//!   [`Watchdog::open`] sets the timeout at once and leaves it armed.
//! - a **FIFO** read by an external supervisor or by the lab's
//!   `FakeWatchdog` (`lab/src/fake_watchdog.rs`), with the line protocol
//!   below.
//!
//! ## Timeouts are rounded down, never up
//!
//! The caller plans with [`Watchdog::timeout`]: the machine must reset no
//! later than that long after the last pat, or a frozen node could still
//! hold storage when the majority hands it to another. A device that can
//! only approximate the wanted timeout therefore gets the longest one it can
//! represent that is *not longer*: FreeBSD the largest power of two of
//! nanoseconds, Linux whole seconds, the FIFO whole milliseconds. Shorter
//! only costs a needless reset if the caller pats too rarely, and the caller
//! sees the effective value. A timeout a device cannot represent from below
//! (under 1 s on Linux) is an error, not a silent longer one. FreeBSD's
//! header warns that hardware varies by ±10–20 % around the nominal value:
//! the caller's margin must cover that.
//!
//! ## watchdogd(8) must not run
//!
//! FreeBSD has one kernel watchdog timeout, set by whoever patted last.
//! watchdogd(8) (`usr.sbin/watchdogd/watchdogd.c`, `watchdog_loop`) pats
//! `/dev/fido` every `-s` seconds with its own `-t` timeout (128 s by
//! default) and disables the watchdog when it exits (`watchdog_onoff(0)`). With both running, the reset could come far later
//! than this agent assumes, or be cancelled by watchdogd's exit. Set
//! `watchdogd_enable="NO"` in rc.conf(5) on every node that uses a watchdog
//! here. On Linux the device admits one opener: a second one gets `EBUSY`
//! ([`WatchdogError::Busy`]), so watchdog(8) or systemd's
//! `RuntimeWatchdogSec=` on the same device is refused, not shared.
//!
//! ## The FIFO protocol
//!
//! For tests and external supervisors. It mirrors the Linux device, where
//! any write is a keepalive:
//!
//! - [`Watchdog::open`] opens the FIFO `O_WRONLY | O_NONBLOCK`; when nothing
//!   has it open for reading this fails with `ENXIO` (fifo(7)), reported as
//!   [`WatchdogError::NoReader`]. Nothing is written on open.
//! - [`Watchdog::pat`] writes the line `pat <timeout_ms>\n`: the reader arms
//!   (if disarmed) and restarts a countdown of `timeout_ms` milliseconds.
//! - [`Watchdog::disarm`] writes the line `disarm\n`: the countdown stops
//!   until the next `pat` line.
//! - Each line is one `write(2)` shorter than `PIPE_BUF`, hence atomic. A
//!   failed write (`EPIPE`: the reader closed; `EAGAIN`: the FIFO is full
//!   because the reader stopped reading) or a short one is an error.
//! - End of file (the agent exited or crashed without `disarm`) leaves the
//!   reader armed, as a Linux watchdog closed without the magic character.
//!   A restarted agent opens the FIFO again and pats.
//!
//! Dropping a [`Watchdog`] without [`Watchdog::disarm`] leaves every kind
//! armed: that is what makes a crash fence the node.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod freebsd;
pub mod linux;

pub use freebsd::freebsd_timeout_code;
pub use linux::linux_timeout_secs;

/// How a watchdog path is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogKind {
    /// FreeBSD watchdog(4) ioctls on a character device.
    FreeBsd,
    /// The Linux watchdog API on a character device.
    Linux,
    /// The line protocol on a FIFO (tests, external supervisors).
    Fifo,
}

impl fmt::Display for WatchdogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WatchdogKind::FreeBsd => "freebsd",
            WatchdogKind::Linux => "linux",
            WatchdogKind::Fifo => "fifo",
        })
    }
}

/// Everything that can go wrong with a watchdog, each naming the path, what
/// failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// stat(2) of the configured path failed (missing, or no permission).
    #[error("watchdog {path:?} cannot be examined: {error}; check the watchdog path")]
    Stat {
        /// The configured watchdog path.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },

    /// open(2) of the watchdog device or FIFO failed.
    #[error(
        "cannot open watchdog {path:?}: {error}; check the path and its permissions \
         (watchdog devices are root-only)"
    )]
    Open {
        /// The configured watchdog path.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },

    /// The FIFO has no reader: open(2) with `O_NONBLOCK` failed with `ENXIO`.
    #[error(
        "nothing reads the watchdog FIFO {path:?} (ENXIO); start its reader (the \
         supervisor) before the agent"
    )]
    NoReader {
        /// The configured watchdog path.
        path: PathBuf,
    },

    /// A Linux watchdog device is held by another process (`EBUSY`).
    #[error(
        "watchdog {path:?} is already open in another process (EBUSY; a Linux watchdog \
         admits one opener): stop the other watchdog daemon (watchdog(8), systemd's \
         RuntimeWatchdogSec=, wdmd) or give this agent another device"
    )]
    Busy {
        /// The configured watchdog path.
        path: PathBuf,
    },

    /// The path is neither a watchdog character device nor a FIFO.
    #[error(
        "{path:?} is a {file_type}, not a watchdog; give a watchdog character device \
         (FreeBSD /dev/fido, Linux /dev/watchdog) or a FIFO read by a supervisor"
    )]
    NotAWatchdog {
        /// The configured watchdog path.
        path: PathBuf,
        /// What the path is instead, e.g. "regular file".
        file_type: &'static str,
    },

    /// A character device on a platform with no watchdog driver here.
    #[error(
        "{path:?} is a character device, but hardware watchdogs are only driven on \
         FreeBSD and Linux; use a FIFO read by an external supervisor"
    )]
    Unsupported {
        /// The configured watchdog path.
        path: PathBuf,
    },

    /// The wanted timeout is below the shortest the device can represent
    /// (1 s on Linux, 1 ms for a FIFO).
    #[error(
        "watchdog {path:?} ({kind}) cannot time out after {wanted:?} or sooner: its \
         shortest timeout is {shortest:?}; configure a longer one"
    )]
    TimeoutTooShort {
        /// The configured watchdog path.
        path: PathBuf,
        /// How the path is driven.
        kind: WatchdogKind,
        /// The timeout asked for.
        wanted: Duration,
        /// The shortest timeout that kind of device can have.
        shortest: Duration,
    },

    /// FreeBSD: the pat ioctl failed with `EOPNOTSUPP`: no driver accepts
    /// the timeout, and watchdog(4) then disables the watchdog.
    #[error(
        "no watchdog driver accepts a {timeout:?} timeout on {path:?} (EOPNOTSUPP), so \
         the kernel disabled the watchdog: load a driver (kldload ichwd, amdsbwd, ipmi, \
         wbwd or itwd; or a kernel with options SW_WATCHDOG), check dmesg, or choose \
         a timeout the hardware supports"
    )]
    NoDriver {
        /// The configured watchdog path.
        path: PathBuf,
        /// The timeout that was asked of the kernel.
        timeout: Duration,
    },

    /// Linux: the driver lacks `WDIOF_MAGICCLOSE`, so a close by a dying agent
    /// would stop the countdown instead of letting it reset the node.
    #[error(
        "watchdog {path:?} ({identity}) has no magic close: closing it, as the kernel \
         does when the agent dies, would stop the countdown, so it cannot fence; use a \
         driver that supports magic close (softdog, iTCO_wdt, sp5100_tco, ipmi_watchdog...)"
    )]
    NoMagicClose {
        /// The configured watchdog path.
        path: PathBuf,
        /// The driver's identity string from `WDIOC_GETSUPPORT`.
        identity: String,
    },

    /// Linux: `WDIOC_SETTIMEOUT` failed for the wanted timeout.
    #[error(
        "watchdog {path:?} refuses a timeout of {seconds} s ({error}); choose a timeout \
         in the driver's range"
    )]
    TimeoutRefused {
        /// The configured watchdog path.
        path: PathBuf,
        /// The timeout asked for, in whole seconds.
        seconds: u32,
        /// The OS error.
        error: io::Error,
    },

    /// Linux: `WDIOC_GETTIMEOUT` failed or answered nonsense, so the real
    /// timeout is unknown.
    #[error(
        "watchdog {path:?} does not report its timeout ({error}), so when it would reset \
         is unknown; use a driver that reports it (WDIOC_GETTIMEOUT)"
    )]
    TimeoutUnknown {
        /// The configured watchdog path.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },

    /// Linux: the driver granted a longer timeout than asked; the device was
    /// closed with the magic character.
    #[error(
        "watchdog {path:?} granted a timeout of {granted:?} when at most {wanted:?} was \
         asked: a reset later than the agent assumes is unsafe, so it was closed with the \
         magic character; choose a timeout the driver can honour exactly"
    )]
    TimeoutLonger {
        /// The configured watchdog path.
        path: PathBuf,
        /// The timeout asked for (whole seconds).
        wanted: Duration,
        /// The timeout the driver reported back.
        granted: Duration,
    },

    /// Linux: on reopen the device reported another timeout than the one the
    /// caller plans with; it was closed with the magic character.
    #[error(
        "watchdog {path:?} came back with a timeout of {now:?} instead of {before:?} when \
         re-armed, so it was closed again with the magic character; the agent must \
         reopen it and plan with the new timeout"
    )]
    TimeoutChanged {
        /// The configured watchdog path.
        path: PathBuf,
        /// The timeout the handle had until now.
        before: Duration,
        /// The timeout the device reports after reopening.
        now: Duration,
    },

    /// A watchdog ioctl failed for another reason.
    #[error(
        "watchdog {path:?}: {request} failed: {error}; check that the path is the \
         watchdog device and the kernel log (dmesg) for the driver's complaint"
    )]
    Ioctl {
        /// The configured watchdog path.
        path: PathBuf,
        /// Which ioctl failed, e.g. `WDIOC_GETSUPPORT` or `WDIOCPATPAT (pat)`.
        request: &'static str,
        /// The OS error.
        error: io::Error,
    },

    /// A write(2) to the device or FIFO failed.
    #[error("watchdog {path:?}: writing {what} failed: {error}{hint}")]
    Write {
        /// The configured watchdog path.
        path: PathBuf,
        /// What was being written, e.g. "a pat line".
        what: &'static str,
        /// The OS error.
        error: io::Error,
        /// What the errno means and what to do, or empty.
        hint: &'static str,
    },

    /// A write(2) to the FIFO or device wrote only part of the line.
    #[error(
        "watchdog {path:?}: writing {what} wrote {written} of {len} bytes; the reader \
         must take whole lines"
    )]
    ShortWrite {
        /// The configured watchdog path.
        path: PathBuf,
        /// What was being written.
        what: &'static str,
        /// Bytes the write(2) took.
        written: usize,
        /// Bytes of the whole line.
        len: usize,
    },
}

/// An open watchdog. See the module documentation.
#[derive(Debug)]
pub struct Watchdog {
    path: PathBuf,
    timeout: Duration,
    armed: bool,
    device: Device,
}

#[derive(Debug)]
enum Device {
    Fifo {
        file: File,
        timeout_ms: u64,
    },
    #[cfg(target_os = "linux")]
    Linux(linux::Device),
    #[cfg(target_os = "freebsd")]
    FreeBsd(freebsd::Device),
}

impl Watchdog {
    /// Opens `path`. A character device is driven with the platform's ABI
    /// (FreeBSD watchdog(4); the Linux watchdog API), a FIFO with the line
    /// protocol; anything else is an error naming its file type. `timeout`
    /// is what the caller wants; [`Watchdog::timeout`] is what the device
    /// has (rounded down, see the module documentation).
    ///
    /// FreeBSD: nothing is armed until the first [`Watchdog::pat`]. Linux:
    /// the kernel arms the device when it is opened; it is left armed with
    /// the timeout set.
    pub fn open(path: &Path, timeout: Duration) -> Result<Watchdog, WatchdogError> {
        let metadata = std::fs::metadata(path).map_err(|error| WatchdogError::Stat {
            path: path.to_owned(),
            error,
        })?;
        let file_type = metadata.file_type();
        if file_type.is_fifo() {
            open_fifo(path, timeout)
        } else if file_type.is_char_device() {
            open_char_device(path, timeout)
        } else {
            Err(WatchdogError::NotAWatchdog {
                path: path.to_owned(),
                file_type: describe(file_type),
            })
        }
    }

    /// Checks `path` and learns its effective timeout without arming it: a
    /// FIFO and a FreeBSD device are opened and closed (neither arms on
    /// open); a Linux device, which the kernel arms on open, is only
    /// examined and its timeout computed. The agent calls this at start so
    /// a wrong path fails there, and opens the device when it first needs
    /// it.
    pub fn examine(
        path: &Path,
        timeout: Duration,
    ) -> Result<(WatchdogKind, Duration), WatchdogError> {
        let metadata = std::fs::metadata(path).map_err(|error| WatchdogError::Stat {
            path: path.to_owned(),
            error,
        })?;
        let file_type = metadata.file_type();
        if file_type.is_char_device() && cfg!(target_os = "linux") {
            let secs =
                linux_timeout_secs(timeout).ok_or_else(|| WatchdogError::TimeoutTooShort {
                    path: path.to_owned(),
                    kind: WatchdogKind::Linux,
                    wanted: timeout,
                    shortest: Duration::from_secs(1),
                })?;
            return Ok((WatchdogKind::Linux, Duration::from_secs(u64::from(secs))));
        }
        let watchdog = Watchdog::open(path, timeout)?;
        Ok((watchdog.kind(), watchdog.timeout()))
    }

    /// Arms the watchdog if needed and restarts its countdown of
    /// [`Watchdog::timeout`]. After an error the countdown may or may not be
    /// running; [`Watchdog::is_armed`] keeps its last known value.
    pub fn pat(&mut self) -> Result<(), WatchdogError> {
        match &mut self.device {
            Device::Fifo { file, timeout_ms } => {
                let line = format!("pat {timeout_ms}\n");
                write_whole(&self.path, file, line.as_bytes(), "a pat line", FIFO_HINTS)?;
            }
            #[cfg(target_os = "linux")]
            Device::Linux(device) => device.pat(&self.path, self.timeout)?,
            #[cfg(target_os = "freebsd")]
            Device::FreeBsd(device) => device.pat(&self.path, self.timeout)?,
        }
        self.armed = true;
        Ok(())
    }

    /// Stops the countdown. FreeBSD: disables the kernel watchdog. Linux:
    /// writes the magic character `V` and closes the device (the next
    /// [`Watchdog::pat`] reopens and re-arms it); a driver loaded with
    /// `nowayout` keeps counting, which no user process can change. FIFO:
    /// writes a `disarm` line.
    pub fn disarm(&mut self) -> Result<(), WatchdogError> {
        match &mut self.device {
            Device::Fifo { file, .. } => {
                write_whole(&self.path, file, b"disarm\n", "the disarm line", FIFO_HINTS)?;
            }
            #[cfg(target_os = "linux")]
            Device::Linux(device) => device.disarm(&self.path)?,
            #[cfg(target_os = "freebsd")]
            Device::FreeBsd(device) => device.disarm(&self.path)?,
        }
        self.armed = false;
        Ok(())
    }

    /// The effective timeout: how long after a pat the device resets at the
    /// latest (nominally; see the module documentation on variance).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether a countdown that this handle started is running.
    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// How the path is driven.
    pub fn kind(&self) -> WatchdogKind {
        match self.device {
            Device::Fifo { .. } => WatchdogKind::Fifo,
            #[cfg(target_os = "linux")]
            Device::Linux(_) => WatchdogKind::Linux,
            #[cfg(target_os = "freebsd")]
            Device::FreeBsd(_) => WatchdogKind::FreeBsd,
        }
    }

    /// The path given to [`Watchdog::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The FIFO's timeout: whole milliseconds, rounded down; `None` under 1 ms.
pub fn fifo_timeout_ms(wanted: Duration) -> Option<u64> {
    match wanted.as_millis() {
        0 => None,
        ms => Some(u64::try_from(ms).unwrap_or(u64::MAX)),
    }
}

fn open_fifo(path: &Path, wanted: Duration) -> Result<Watchdog, WatchdogError> {
    let timeout_ms = fifo_timeout_ms(wanted).ok_or_else(|| WatchdogError::TimeoutTooShort {
        path: path.to_owned(),
        kind: WatchdogKind::Fifo,
        wanted,
        shortest: Duration::from_millis(1),
    })?;
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ENXIO) => WatchdogError::NoReader {
                path: path.to_owned(),
            },
            _ => WatchdogError::Open {
                path: path.to_owned(),
                error,
            },
        })?;
    Ok(Watchdog {
        path: path.to_owned(),
        timeout: Duration::from_millis(timeout_ms),
        armed: false,
        device: Device::Fifo { file, timeout_ms },
    })
}

#[cfg(target_os = "linux")]
fn open_char_device(path: &Path, wanted: Duration) -> Result<Watchdog, WatchdogError> {
    let (device, timeout) = linux::Device::open(path, wanted)?;
    Ok(Watchdog {
        path: path.to_owned(),
        timeout,
        // The kernel started the countdown when the device was opened.
        armed: true,
        device: Device::Linux(device),
    })
}

#[cfg(target_os = "freebsd")]
fn open_char_device(path: &Path, wanted: Duration) -> Result<Watchdog, WatchdogError> {
    let (device, timeout) = freebsd::Device::open(path, wanted)?;
    Ok(Watchdog {
        path: path.to_owned(),
        timeout,
        armed: false,
        device: Device::FreeBsd(device),
    })
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn open_char_device(path: &Path, _wanted: Duration) -> Result<Watchdog, WatchdogError> {
    Err(WatchdogError::Unsupported {
        path: path.to_owned(),
    })
}

fn describe(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_file() {
        "regular file"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "file of unknown type"
    }
}

/// What a failed FIFO write means, by errno.
const FIFO_HINTS: &[(i32, &str)] = &[
    (
        libc::EPIPE,
        "; the reader closed the FIFO: restart the supervisor",
    ),
    (
        libc::EAGAIN,
        "; the FIFO is full because its reader stopped reading: check the supervisor",
    ),
];

/// One `write(2)` of all of `bytes` (retried only when interrupted): a
/// watchdog line or character is never split across writes.
fn write_whole(
    path: &Path,
    mut file: &File,
    bytes: &[u8],
    what: &'static str,
    hints: &[(i32, &'static str)],
) -> Result<(), WatchdogError> {
    loop {
        match file.write(bytes) {
            Ok(written) if written == bytes.len() => return Ok(()),
            Ok(written) => {
                return Err(WatchdogError::ShortWrite {
                    path: path.to_owned(),
                    what,
                    written,
                    len: bytes.len(),
                })
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                let hint = hints
                    .iter()
                    .find(|(errno, _)| error.raw_os_error() == Some(*errno))
                    .map_or("", |(_, hint)| *hint);
                return Err(WatchdogError::Write {
                    path: path.to_owned(),
                    what,
                    error,
                    hint,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::Mode;
    use std::io::Read;

    fn fifo_in(dir: &tempfile::TempDir) -> PathBuf {
        let path = dir.path().join("watchdog.fifo");
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).expect("mkfifo");
        path
    }

    fn reader(path: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .expect("open the FIFO's read end")
    }

    fn read_available(mut file: &File) -> String {
        let mut text = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => panic!("reading the FIFO: {error}"),
            }
        }
        String::from_utf8(text).expect("ASCII lines")
    }

    #[test]
    fn fifo_without_reader_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fifo_in(&dir);
        let error = Watchdog::open(&path, Duration::from_secs(5)).expect_err("no reader");
        assert!(matches!(error, WatchdogError::NoReader { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("nothing reads the watchdog FIFO"),
            "{message}"
        );
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
    }

    #[test]
    fn fifo_pat_and_disarm_lines_arrive_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fifo_in(&dir);
        let read_end = reader(&path);
        let mut watchdog = Watchdog::open(&path, Duration::from_millis(1500)).expect("open");
        assert_eq!(watchdog.kind(), WatchdogKind::Fifo);
        assert_eq!(watchdog.timeout(), Duration::from_millis(1500));
        assert_eq!(watchdog.path(), path);
        assert!(!watchdog.is_armed(), "opening a FIFO arms nothing");
        assert_eq!(read_available(&read_end), "", "nothing is written on open");

        watchdog.pat().expect("pat");
        assert!(watchdog.is_armed());
        watchdog.pat().expect("pat");
        watchdog.disarm().expect("disarm");
        assert!(!watchdog.is_armed());
        watchdog.pat().expect("pat after disarm");
        assert!(watchdog.is_armed());

        assert_eq!(
            read_available(&read_end),
            "pat 1500\npat 1500\ndisarm\npat 1500\n"
        );
    }

    #[test]
    fn fifo_timeout_is_rounded_down_to_whole_milliseconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fifo_in(&dir);
        let read_end = reader(&path);
        let mut watchdog = Watchdog::open(&path, Duration::from_micros(2_999_999)).expect("open");
        assert_eq!(watchdog.timeout(), Duration::from_millis(2999));
        watchdog.pat().expect("pat");
        assert_eq!(read_available(&read_end), "pat 2999\n");

        assert_eq!(fifo_timeout_ms(Duration::from_micros(999)), None);
        assert_eq!(fifo_timeout_ms(Duration::from_millis(1)), Some(1));
        assert_eq!(fifo_timeout_ms(Duration::MAX), Some(u64::MAX));
        let error = Watchdog::open(&path, Duration::from_micros(500)).expect_err("too short");
        assert!(
            matches!(error, WatchdogError::TimeoutTooShort { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn fifo_pat_after_the_reader_left_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fifo_in(&dir);
        let read_end = reader(&path);
        let mut watchdog = Watchdog::open(&path, Duration::from_secs(2)).expect("open");
        drop(read_end);
        let error = watchdog.pat().expect_err("EPIPE");
        assert!(
            matches!(&error, WatchdogError::Write { error, .. } if error.raw_os_error() == Some(libc::EPIPE)),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("reader closed the FIFO"),
            "{error}"
        );
        assert!(!watchdog.is_armed(), "a failed pat does not count as armed");
    }

    #[test]
    fn fifo_pat_into_a_full_fifo_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fifo_in(&dir);
        let _read_end = reader(&path); // open, never read
        let mut watchdog = Watchdog::open(&path, Duration::from_secs(2)).expect("open");
        // A pipe holds 64 KiB by default on Linux (pipe(7)); a line is 9 bytes.
        let error = (0..1_000_000)
            .find_map(|_| watchdog.pat().err())
            .expect("the FIFO fills up");
        assert!(
            matches!(&error, WatchdogError::Write { error, .. } if error.kind() == io::ErrorKind::WouldBlock),
            "{error:?}"
        );
        assert!(error.to_string().contains("stopped reading"), "{error}");
    }

    #[test]
    fn other_file_types_are_refused_with_their_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("plain");
        std::fs::write(&file, b"").expect("write");
        let error = Watchdog::open(&file, Duration::from_secs(5)).expect_err("regular file");
        assert!(
            matches!(
                error,
                WatchdogError::NotAWatchdog {
                    file_type: "regular file",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("is a regular file"), "{error}");

        let error = Watchdog::open(dir.path(), Duration::from_secs(5)).expect_err("directory");
        assert!(error.to_string().contains("is a directory"), "{error}");

        let missing = dir.path().join("missing");
        let error = Watchdog::open(&missing, Duration::from_secs(5)).expect_err("missing");
        assert!(matches!(error, WatchdogError::Stat { .. }), "{error:?}");
        assert!(error.to_string().contains("missing"), "{error}");
    }

    #[test]
    fn kinds_display_their_status_names() {
        assert_eq!(WatchdogKind::FreeBsd.to_string(), "freebsd");
        assert_eq!(WatchdogKind::Linux.to_string(), "linux");
        assert_eq!(WatchdogKind::Fifo.to_string(), "fifo");
    }
}
