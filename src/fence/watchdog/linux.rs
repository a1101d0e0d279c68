//! The Linux watchdog API (`include/uapi/linux/watchdog.h`,
//! `Documentation/watchdog/watchdog-api.rst`, `drivers/watchdog/watchdog_dev.c`):
//! the timeout rules, and (on Linux) the device itself.
//!
//! - Opening `/dev/watchdog` starts the countdown (`watchdog_open` calls
//!   `watchdog_start`), and only one process may have it open (`EBUSY`).
//! - Any write pings it; a write containing `V` allows the next close to
//!   stop it ("magic close"). A close without `V` leaves it running, so a
//!   crashed agent is fenced. A driver without `WDIOF_MAGICCLOSE` stops on
//!   *any* close, so it is refused: it would not fence a crash.
//! - `WDIOC_SETTIMEOUT` (`_IOWR('W', 6, int)`) takes whole seconds and may
//!   grant another value (hardware granularity); `WDIOC_GETTIMEOUT`
//!   (`_IOR('W', 7, int)`) reads what was granted. A driver without
//!   `WDIOF_SETTIMEOUT` answers `EOPNOTSUPP` and keeps its own timeout.
//! - With `nowayout` (a module parameter or `CONFIG_WATCHDOG_NOWAYOUT`) the
//!   kernel never stops it, magic close or not.

use std::time::Duration;

/// The wanted timeout in whole seconds, rounded down (never longer than
/// asked, see the module documentation of `watchdog`); `None` under 1 s,
/// which the API cannot express. Capped at `i32::MAX` (the ioctl's `int`).
pub fn linux_timeout_secs(wanted: Duration) -> Option<u32> {
    match wanted.as_secs() {
        0 => None,
        secs => Some(u32::try_from(secs).unwrap_or(u32::MAX).min(i32::MAX as u32)),
    }
}

/// What a driver granted for a request of `asked` seconds, judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// At most what was asked: usable, with this effective timeout.
    Usable(Duration),
    /// Longer than asked: a later reset than the caller assumes.
    Longer(Duration),
    /// Zero or negative: the driver does not know its timeout.
    Unknown,
}

/// Judges the `WDIOC_GETTIMEOUT` answer `granted` for a request of `asked`
/// seconds.
pub fn judge_grant(asked: u32, granted: i64) -> Grant {
    match u64::try_from(granted) {
        Ok(0) | Err(_) => Grant::Unknown,
        Ok(secs) if secs > u64::from(asked) => Grant::Longer(Duration::from_secs(secs)),
        Ok(secs) => Grant::Usable(Duration::from_secs(secs)),
    }
}

#[cfg(target_os = "linux")]
pub(super) use device::Device;

#[cfg(target_os = "linux")]
mod device {
    use super::*;
    use crate::fence::watchdog::{write_whole, WatchdogError, WatchdogKind};
    use std::fs::{File, OpenOptions};
    use std::io::{self, Write};
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// `struct watchdog_info`.
    #[repr(C)]
    #[derive(Debug, Default)]
    struct WatchdogInfo {
        options: u32,
        firmware_version: u32,
        identity: [u8; 32],
    }

    const WATCHDOG_IOCTL_BASE: u32 = b'W' as u32;
    const WDIOC_GETSUPPORT: libc::Ioctl = libc::_IOR::<WatchdogInfo>(WATCHDOG_IOCTL_BASE, 0);
    const WDIOC_SETTIMEOUT: libc::Ioctl = libc::_IOWR::<libc::c_int>(WATCHDOG_IOCTL_BASE, 6);
    const WDIOC_GETTIMEOUT: libc::Ioctl = libc::_IOR::<libc::c_int>(WATCHDOG_IOCTL_BASE, 7);
    const WDIOF_MAGICCLOSE: u32 = 0x0100;

    /// Pats are writes (every driver takes them; `WDIOC_KEEPALIVE` needs
    /// `WDIOF_KEEPALIVEPING`). Not `V`: a pat also withdraws a magic close.
    const PAT: &[u8] = b"\0";
    const MAGIC_CLOSE: &[u8] = b"V";

    #[derive(Debug)]
    pub(crate) struct Device {
        /// `None` after a magic close; the next pat reopens.
        file: Option<File>,
        seconds: u32,
    }

    impl Device {
        pub(crate) fn open(
            path: &Path,
            wanted: Duration,
        ) -> Result<(Device, Duration), WatchdogError> {
            let seconds =
                linux_timeout_secs(wanted).ok_or_else(|| WatchdogError::TimeoutTooShort {
                    path: path.to_owned(),
                    kind: WatchdogKind::Linux,
                    wanted,
                    shortest: Duration::from_secs(1),
                })?;
            let (file, effective) = arm(path, seconds)?;
            Ok((
                Device {
                    file: Some(file),
                    seconds,
                },
                effective,
            ))
        }

        pub(crate) fn pat(&mut self, path: &Path, timeout: Duration) -> Result<(), WatchdogError> {
            let file = match self.file.take() {
                Some(file) => file,
                None => {
                    let (file, effective) = arm(path, self.seconds)?;
                    if effective != timeout {
                        magic_close(file);
                        return Err(WatchdogError::TimeoutChanged {
                            path: path.to_owned(),
                            before: timeout,
                            now: effective,
                        });
                    }
                    file
                }
            };
            let result = write_whole(path, &file, PAT, "a keepalive", &[]);
            self.file = Some(file);
            result
        }

        pub(crate) fn disarm(&mut self, path: &Path) -> Result<(), WatchdogError> {
            let Some(file) = self.file.take() else {
                return Ok(());
            };
            if let Err(error) =
                write_whole(path, &file, MAGIC_CLOSE, "the magic close character", &[])
            {
                self.file = Some(file);
                return Err(error);
            }
            drop(file);
            Ok(())
        }
    }

    /// Opens (which starts the countdown) and sets the timeout. Every
    /// failure after the open closes the device with the magic character,
    /// so a refused watchdog is not left counting down with nobody patting.
    fn arm(path: &Path, seconds: u32) -> Result<(File, Duration), WatchdogError> {
        let file = OpenOptions::new().write(true).open(path).map_err(|error| {
            match error.raw_os_error() {
                Some(libc::EBUSY) => WatchdogError::Busy {
                    path: path.to_owned(),
                },
                _ => WatchdogError::Open {
                    path: path.to_owned(),
                    error,
                },
            }
        })?;
        match configure(path, &file, seconds) {
            Ok(effective) => Ok((file, effective)),
            // Not a watchdog: never write a `V` into some other device.
            Err(error @ WatchdogError::NotAWatchdog { .. }) => Err(error),
            Err(error) => {
                magic_close(file);
                Err(error)
            }
        }
    }

    fn configure(path: &Path, file: &File, seconds: u32) -> Result<Duration, WatchdogError> {
        let mut info = WatchdogInfo::default();
        if let Err(error) = ioctl(file, WDIOC_GETSUPPORT, &mut info) {
            return Err(match error.raw_os_error() {
                Some(libc::ENOTTY) | Some(libc::EINVAL) => WatchdogError::NotAWatchdog {
                    path: path.to_owned(),
                    file_type: "character device that answers no watchdog ioctl",
                },
                _ => WatchdogError::Ioctl {
                    path: path.to_owned(),
                    request: "WDIOC_GETSUPPORT",
                    error,
                },
            });
        }
        if info.options & WDIOF_MAGICCLOSE == 0 {
            return Err(WatchdogError::NoMagicClose {
                path: path.to_owned(),
                identity: identity(&info),
            });
        }
        let mut value = libc::c_int::try_from(seconds).unwrap_or(libc::c_int::MAX);
        match ioctl(file, WDIOC_SETTIMEOUT, &mut value) {
            Ok(()) => {}
            // A fixed timeout: what it is decides below.
            Err(error) if error.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
            Err(error) => {
                return Err(WatchdogError::TimeoutRefused {
                    path: path.to_owned(),
                    seconds,
                    error,
                })
            }
        }
        let mut granted: libc::c_int = 0;
        ioctl(file, WDIOC_GETTIMEOUT, &mut granted).map_err(|error| {
            WatchdogError::TimeoutUnknown {
                path: path.to_owned(),
                error,
            }
        })?;
        match judge_grant(seconds, i64::from(granted)) {
            Grant::Usable(effective) => Ok(effective),
            Grant::Longer(granted) => Err(WatchdogError::TimeoutLonger {
                path: path.to_owned(),
                wanted: Duration::from_secs(u64::from(seconds)),
                granted,
            }),
            Grant::Unknown => Err(WatchdogError::TimeoutUnknown {
                path: path.to_owned(),
                error: io::Error::other(format!("WDIOC_GETTIMEOUT answered {granted}")),
            }),
        }
    }

    /// Best effort on a path that is already failing: the caller reports
    /// the first error.
    fn magic_close(mut file: File) {
        let _ = file.write(MAGIC_CLOSE);
    }

    fn identity(info: &WatchdogInfo) -> String {
        let end = info
            .identity
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(info.identity.len());
        String::from_utf8_lossy(&info.identity[..end]).into_owned()
    }

    /// A watchdog ioctl whose argument is one `T`, read and/or written.
    fn ioctl<T>(file: &File, request: libc::Ioctl, value: &mut T) -> io::Result<()> {
        // SAFETY: each request encodes size_of::<T>() for the `T` passed
        // (the constants above pair them), so the kernel reads or writes
        // exactly `*value`, a live exclusive borrow; T is plain old data.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, value as *mut T) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_is_rounded_down_to_whole_seconds() {
        assert_eq!(linux_timeout_secs(Duration::from_millis(8_900)), Some(8));
        assert_eq!(linux_timeout_secs(Duration::from_secs(10)), Some(10));
        assert_eq!(linux_timeout_secs(Duration::from_millis(1_000)), Some(1));
        assert_eq!(linux_timeout_secs(Duration::from_millis(1_999)), Some(1));
        // Under a second cannot be asked without asking for longer.
        assert_eq!(linux_timeout_secs(Duration::from_millis(999)), None);
        assert_eq!(linux_timeout_secs(Duration::ZERO), None);
        assert_eq!(linux_timeout_secs(Duration::MAX), Some(i32::MAX as u32));
    }

    #[test]
    fn a_grant_longer_than_asked_is_refused() {
        assert_eq!(judge_grant(10, 10), Grant::Usable(Duration::from_secs(10)));
        assert_eq!(judge_grant(10, 8), Grant::Usable(Duration::from_secs(8)));
        assert_eq!(judge_grant(45, 60), Grant::Longer(Duration::from_secs(60)));
        assert_eq!(judge_grant(10, 11), Grant::Longer(Duration::from_secs(11)));
        assert_eq!(judge_grant(10, 0), Grant::Unknown);
        assert_eq!(judge_grant(10, -1), Grant::Unknown);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_character_device_that_is_no_watchdog_is_refused() {
        use crate::fence::watchdog::{Watchdog, WatchdogError};
        // /dev/null answers ENOTTY to WDIOC_GETSUPPORT; nothing is written.
        let error = Watchdog::open(std::path::Path::new("/dev/null"), Duration::from_secs(5))
            .expect_err("not a watchdog");
        assert!(
            matches!(error, WatchdogError::NotAWatchdog { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("answers no watchdog ioctl"),
            "{error}"
        );
    }
}
