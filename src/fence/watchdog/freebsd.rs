//! FreeBSD watchdog(4) (`/dev/fido`): the ioctl numbers and the timeout
//! encoding of `sys/sys/watchdog.h`, and (on FreeBSD) the device itself.
//!
//! Two ABIs exist, and the device tells which one it speaks:
//!
//! - **up to FreeBSD 14**: `WDIOCPATPAT` (`_IOW('W', 42, u_int)`) takes
//!   `WD_ACTIVE | N`, where the low bits (`WD_INTERVAL`, `0xff`) are N for a
//!   timeout of 2^N nanoseconds; `0` (`WD_TO_NEVER`, no `WD_ACTIVE`)
//!   disables it (watchdog(4); `sys/dev/watchdog/watchdog.c`, `wd_ioctl_patpat`).
//! - **FreeBSD 15** (`sys/sys/watchdog.h` at freebsd-src 0dcfecbf, and
//!   `usr.sbin/watchdogd/watchdogd.c` at bc0f7b93): timeouts are
//!   `sbintime_t`; `WDIOC_SETTIMEOUT` (`_IOW('W', 53, sbintime_t)`) arms and
//!   pats, `WDIOC_CONTROL` (`_IOW('W', 51, int)`) with `WD_CTRL_DISABLE`
//!   disables, `WDIOC_GETTIMEOUT` (`_IOR('W', 54, sbintime_t)`) reads the
//!   last timeout. `WDIOCPATPAT` no longer exists in the header; the kernel
//!   keeps it only under `options COMPAT_FREEBSD14`.
//!
//! Opening probes with the read-only `WDIOC_GETTIMEOUT` of FreeBSD 15, then
//! of FreeBSD 10–14 (`_IOR('W', 44, int)`); a kernel that knows neither
//! answers `ENOTTY` and the device is not a watchdog(4) device. Nothing is
//! armed by opening.
//!
//! Both ABIs get the same timeout: the largest power of two of nanoseconds
//! not above the wanted one ([`freebsd_timeout_code`]). On FreeBSD 15 the
//! drivers that still take a power of two receive `flsl(sbttons(sbt))`,
//! which rounds *up* (a timeout of exactly 2^N ns becomes 2^(N+1)); so the
//! `sbintime_t` sent is that of 2^N − 1 ns ([`sbt_for_code`]), which those
//! drivers receive as 2^N and the others as 2^N ns less a nanosecond.

use std::time::Duration;

/// `sys/sys/ioccom.h`: 13 bits of parameter length.
const IOCPARM_MASK: u32 = (1 << 13) - 1;
/// `sys/sys/ioccom.h`: copy parameters out.
const IOC_OUT: u32 = 0x4000_0000;
/// `sys/sys/ioccom.h`: copy parameters in.
const IOC_IN: u32 = 0x8000_0000;

/// FreeBSD's `_IOC(inout, group, num, len)` (`sys/sys/ioccom.h`):
/// `inout | ((len & IOCPARM_MASK) << 16) | (group << 8) | num`.
pub const fn ioc(inout: u32, group: u8, num: u8, len: usize) -> u32 {
    inout | (((len as u32) & IOCPARM_MASK) << 16) | ((group as u32) << 8) | num as u32
}

/// `_IOW('W', 42, u_int)`: pat (FreeBSD ≤ 14; `COMPAT_FREEBSD14` after).
pub const WDIOCPATPAT: u32 = ioc(IOC_IN, b'W', 42, std::mem::size_of::<u32>());
/// `_IOR('W', 44, int)`: the last timeout code (FreeBSD 10–14).
pub const WDIOC_GETTIMEOUT_14: u32 = ioc(IOC_OUT, b'W', 44, std::mem::size_of::<i32>());
/// `_IOW('W', 51, int)`: enable, disable or reset (FreeBSD 15).
pub const WDIOC_CONTROL: u32 = ioc(IOC_IN, b'W', 51, std::mem::size_of::<i32>());
/// `_IOW('W', 53, sbintime_t)`: set the timeout and pat (FreeBSD 15).
pub const WDIOC_SETTIMEOUT: u32 = ioc(IOC_IN, b'W', 53, std::mem::size_of::<i64>());
/// `_IOR('W', 54, sbintime_t)`: the last timeout (FreeBSD 15).
pub const WDIOC_GETTIMEOUT: u32 = ioc(IOC_OUT, b'W', 54, std::mem::size_of::<i64>());

/// Arm (active mode: userland pats).
pub const WD_ACTIVE: u32 = 0x0800_0000;
/// The timeout bits: N for 2^N nanoseconds.
pub const WD_INTERVAL: u32 = 0x0000_00ff;
/// Code 0: never time out, i.e. disable.
pub const WD_TO_NEVER: u32 = 0;
/// The header's shortest named timeout, 2^20 ns (about 1 ms); shorter ones
/// are refused here (code 0 would even mean "disable").
pub const WD_TO_1MS: u32 = 20;
/// `WDIOC_CONTROL`: disable.
pub const WD_CTRL_DISABLE: i32 = 0;
/// The longest code used, 2^60 ns (36 years): its `sbintime_t` still fits
/// in 63 bits.
pub const MAX_CODE: u32 = 60;

/// The timeout code for `wanted` and the timeout it stands for: the largest
/// power of two of nanoseconds that is not longer than `wanted` (at most
/// 2^[`MAX_CODE`]); `None` when `wanted` is under 2^[`WD_TO_1MS`] ns.
///
/// Rounding down is the safe direction: the reset must never come later
/// than the caller assumes, and an earlier one only costs a reset when the
/// caller pats too rarely for the effective timeout it is told about. So
/// 10 s becomes 2^33 ns (8.59 s) and 1 s becomes 2^29 ns (0.54 s).
pub fn freebsd_timeout_code(wanted: Duration) -> Option<(u32, Duration)> {
    let nanos = wanted.as_nanos();
    if nanos < 1u128 << WD_TO_1MS {
        return None;
    }
    // floor(log2(nanos)); nanos > 0 here.
    let code = (u128::BITS - 1 - nanos.leading_zeros()).min(MAX_CODE);
    Some((code, Duration::from_nanos(1u64 << code)))
}

/// The `sbintime_t` (32.32 fixed-point seconds, `sys/sys/time.h`) of
/// 2^`code` − 1 nanoseconds, rounded down: see the module documentation.
/// `code` is at most [`MAX_CODE`].
pub fn sbt_for_code(code: u32) -> i64 {
    let nanos = (1u128 << code.min(MAX_CODE)) - 1;
    i64::try_from((nanos << 32) / 1_000_000_000).unwrap_or(i64::MAX)
}

#[cfg(target_os = "freebsd")]
pub(super) use device::Device;

#[cfg(target_os = "freebsd")]
mod device {
    use super::*;
    use crate::fence::watchdog::{WatchdogError, WatchdogKind};
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// Which watchdog(4) ABI the kernel speaks.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Abi {
        /// FreeBSD 15: `sbintime_t` timeouts.
        Sbintime,
        /// FreeBSD 10–14: `WDIOCPATPAT` with a power-of-two code.
        PowerOfTwo,
    }

    #[derive(Debug)]
    pub(crate) struct Device {
        file: File,
        abi: Abi,
        code: u32,
    }

    impl Device {
        pub(crate) fn open(
            path: &Path,
            wanted: Duration,
        ) -> Result<(Device, Duration), WatchdogError> {
            let (code, effective) =
                freebsd_timeout_code(wanted).ok_or_else(|| WatchdogError::TimeoutTooShort {
                    path: path.to_owned(),
                    kind: WatchdogKind::FreeBsd,
                    wanted,
                    shortest: Duration::from_nanos(1 << WD_TO_1MS),
                })?;
            // watchdogd(8) opens it O_RDWR too.
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|error| WatchdogError::Open {
                    path: path.to_owned(),
                    error,
                })?;
            let abi = probe(path, &file)?;
            Ok((Device { file, abi, code }, effective))
        }

        pub(crate) fn pat(&mut self, path: &Path, timeout: Duration) -> Result<(), WatchdogError> {
            let result = match self.abi {
                Abi::Sbintime => ioctl_in(&self.file, WDIOC_SETTIMEOUT, &sbt_for_code(self.code)),
                Abi::PowerOfTwo => ioctl_in(&self.file, WDIOCPATPAT, &(WD_ACTIVE | self.code)),
            };
            result.map_err(|error| match error.raw_os_error() {
                // watchdog.c: a non-zero timeout returns EOPNOTSUPP unless a
                // driver accepted it; watchdog(4): then all are disabled.
                Some(libc::EOPNOTSUPP) => WatchdogError::NoDriver {
                    path: path.to_owned(),
                    timeout,
                },
                _ => WatchdogError::Ioctl {
                    path: path.to_owned(),
                    request: self.abi.pat_name(),
                    error,
                },
            })
        }

        pub(crate) fn disarm(&mut self, path: &Path) -> Result<(), WatchdogError> {
            let result = match self.abi {
                Abi::Sbintime => ioctl_in(&self.file, WDIOC_CONTROL, &WD_CTRL_DISABLE),
                Abi::PowerOfTwo => ioctl_in(&self.file, WDIOCPATPAT, &WD_TO_NEVER),
            };
            result.map_err(|error| WatchdogError::Ioctl {
                path: path.to_owned(),
                request: self.abi.disarm_name(),
                error,
            })
        }
    }

    impl Abi {
        fn pat_name(self) -> &'static str {
            match self {
                Abi::Sbintime => "WDIOC_SETTIMEOUT (pat)",
                Abi::PowerOfTwo => "WDIOCPATPAT (pat)",
            }
        }

        fn disarm_name(self) -> &'static str {
            match self {
                Abi::Sbintime => "WDIOC_CONTROL WD_CTRL_DISABLE (disarm)",
                Abi::PowerOfTwo => "WDIOCPATPAT WD_TO_NEVER (disarm)",
            }
        }
    }

    /// Which ABI, by the read-only `WDIOC_GETTIMEOUT` each one has.
    fn probe(path: &Path, file: &File) -> Result<Abi, WatchdogError> {
        let failed = |request, error| WatchdogError::Ioctl {
            path: path.to_owned(),
            request,
            error,
        };
        match ioctl_out::<i64>(file, WDIOC_GETTIMEOUT) {
            Ok(_) => return Ok(Abi::Sbintime),
            Err(error) if error.raw_os_error() != Some(libc::ENOTTY) => {
                return Err(failed("WDIOC_GETTIMEOUT (FreeBSD 15)", error))
            }
            Err(_) => {}
        }
        match ioctl_out::<i32>(file, WDIOC_GETTIMEOUT_14) {
            Ok(_) => Ok(Abi::PowerOfTwo),
            Err(error) if error.raw_os_error() == Some(libc::ENOTTY) => {
                Err(WatchdogError::NotAWatchdog {
                    path: path.to_owned(),
                    file_type: "character device that answers no watchdog(4) ioctl",
                })
            }
            Err(error) => Err(failed("WDIOC_GETTIMEOUT (FreeBSD 10-14)", error)),
        }
    }

    /// An `_IOW` ioctl: the kernel copies `size_of::<T>()` bytes in.
    fn ioctl_in<T>(file: &File, request: u32, value: &T) -> io::Result<()> {
        // SAFETY: `request` encodes size_of::<T>() as its parameter length,
        // so the kernel reads exactly the `T` that `value` points to, which
        // lives across the call; the fd is owned by `file`.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::c_ulong::from(request),
                value as *const T,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// An `_IOR` ioctl: the kernel copies `size_of::<T>()` bytes out.
    fn ioctl_out<T: Default>(file: &File, request: u32) -> io::Result<T> {
        let mut value = T::default();
        // SAFETY: `request` encodes size_of::<T>() as its parameter length,
        // so the kernel writes exactly one `T` into `value`, a live local;
        // T is a plain integer here, valid for any bit pattern.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::c_ulong::from(request),
                &mut value as *mut T,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FreeBSD's `sbttons` (`sys/sys/time.h`), which rounds down.
    fn sbttons(sbt: i64) -> u64 {
        let sbt = sbt as u64;
        (sbt >> 32) * 1_000_000_000 + ((1_000_000_000 * (sbt & 0xffff_ffff)) >> 32)
    }

    /// `flsl`: the 1-based index of the highest set bit, 0 for 0.
    fn flsl(value: u64) -> u32 {
        u64::BITS - value.leading_zeros()
    }

    #[test]
    fn ioctl_numbers_follow_ioccom_h() {
        // _IOW('W', 42, u_int) = IOC_IN | 4 << 16 | 'W' << 8 | 42.
        assert_eq!(WDIOCPATPAT, 0x8004_572a);
        assert_eq!(WDIOC_GETTIMEOUT_14, 0x4004_572c);
        assert_eq!(WDIOC_CONTROL, 0x8004_5733);
        assert_eq!(WDIOC_SETTIMEOUT, 0x8008_5735);
        assert_eq!(WDIOC_GETTIMEOUT, 0x4008_5736);
    }

    #[test]
    fn timeout_code_is_the_largest_power_of_two_not_longer() {
        // The header's named codes, exactly.
        assert_eq!(
            freebsd_timeout_code(Duration::from_nanos(1 << 30)),
            Some((30, Duration::from_nanos(1 << 30)))
        );
        assert_eq!(
            freebsd_timeout_code(Duration::from_nanos(1 << 33)),
            Some((33, Duration::from_nanos(1 << 33)))
        );
        // One nanosecond less is one code less.
        assert_eq!(
            freebsd_timeout_code(Duration::from_nanos((1 << 33) - 1)),
            Some((32, Duration::from_nanos(1 << 32)))
        );
        // Round seconds: 1 s → 2^29 ns, 10 s → 2^33 ns, 16 s → 2^33 ns.
        assert_eq!(
            freebsd_timeout_code(Duration::from_secs(1)),
            Some((29, Duration::from_nanos(536_870_912)))
        );
        assert_eq!(
            freebsd_timeout_code(Duration::from_secs(10)),
            Some((33, Duration::from_nanos(8_589_934_592)))
        );
        assert_eq!(
            freebsd_timeout_code(Duration::from_secs(16)).map(|c| c.0),
            Some(33)
        );
        // Too short to encode (code 0 would disable); too long is capped.
        assert_eq!(freebsd_timeout_code(Duration::from_micros(1000)), None);
        assert_eq!(freebsd_timeout_code(Duration::ZERO), None);
        assert_eq!(
            freebsd_timeout_code(Duration::from_nanos(1 << WD_TO_1MS)).map(|c| c.0),
            Some(WD_TO_1MS)
        );
        assert_eq!(
            freebsd_timeout_code(Duration::MAX).map(|c| c.0),
            Some(MAX_CODE)
        );
    }

    #[test]
    fn effective_timeout_is_never_longer_and_more_than_half() {
        // From 2 ms: 1 ms is under 2^20 ns, the shortest code.
        for millis in (2..200_000u64).step_by(997) {
            let wanted = Duration::from_millis(millis);
            let (code, effective) = freebsd_timeout_code(wanted).expect("representable");
            assert!(code & !WD_INTERVAL == 0, "{code} fits WD_INTERVAL");
            assert!(effective <= wanted, "{effective:?} > {wanted:?}");
            assert!(
                effective * 2 > wanted,
                "{effective:?} wastes half of {wanted:?}"
            );
        }
    }

    #[test]
    fn sbt_reaches_power_of_two_drivers_as_the_same_code() {
        for code in WD_TO_1MS..=MAX_CODE {
            let sbt = sbt_for_code(code);
            let nanos = sbttons(sbt);
            assert!(sbt > 0, "code {code}");
            assert!(
                nanos < 1 << code,
                "code {code}: {nanos} ns is not below 2^{code}"
            );
            assert!(
                nanos >= (1 << code) - 3,
                "code {code}: {nanos} ns is far below"
            );
            assert_eq!(
                flsl(nanos),
                code,
                "code {code}: drivers would get another code"
            );
        }
        // 2^33 ns = 8.589934592 s → 8.589934591 s in 32.32 fixed point.
        assert_eq!(sbt_for_code(33), 36_893_488_143);
    }
}
