//! One kernel timer for the election loop's next deadline.
//!
//! tokio's timer wheel files a deadline more than 64 ms away in a coarser
//! level and moves it down when that level's slot begins: the runtime
//! wakes once for the move and once for the deadline. An idle agent whose
//! only work is one advert a second then wakes twice a second for it.
//! keepalived computes its `epoll_wait` timeout from its own timer list
//! and wakes once; this does the same with a timer the kernel keeps:
//!
//! - Linux: a `timerfd` (timerfd_create(2)) on `CLOCK_MONOTONIC`, the clock
//!   of [`Instant`];
//! - FreeBSD: a kqueue with one `EVFILT_TIMER` (kqueue(2)); the kqueue
//!   descriptor is itself readable while an event is pending, so tokio
//!   watches it like any socket.
//!
//! The loop arms it for the earliest deadline it has at each turn (no
//! system call when that did not change). Should the kernel refuse the
//! timer, tokio's own sleep does the job, with its extra wake-up.

use std::io;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The loop's alarm clock.
pub struct Alarm {
    timer: Option<AsyncFd<kernel::Timer>>,
    /// The deadline it is set for.
    armed: Option<Instant>,
}

impl Alarm {
    /// A disarmed alarm; `Err` says why the kernel timer could not be
    /// made (the alarm then runs on tokio's timer).
    pub fn new() -> (Alarm, Option<io::Error>) {
        let timer = kernel::Timer::new().and_then(|timer| {
            // SAFETY: `register_with_interest` needs the fd to stay open and
            // the same for the AsyncFd's whole life. `Timer` owns its fd and
            // closes it only on drop, and the AsyncFd is never unwrapped
            // (no `into_inner`, no `get_mut`), so the fd lives exactly as
            // long as the registration.
            unsafe { AsyncFd::register_with_interest(timer, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)
        });
        match timer {
            Ok(timer) => (
                Alarm {
                    timer: Some(timer),
                    armed: None,
                },
                None,
            ),
            Err(e) => (
                Alarm {
                    timer: None,
                    armed: None,
                },
                Some(e),
            ),
        }
    }

    /// Sets the alarm for `at` (`None`: disarmed). A deadline already past
    /// fires at the next [`Alarm::fired`].
    pub fn set(&mut self, at: Option<Instant>) {
        if at == self.armed {
            return;
        }
        self.armed = at;
        if let Some(timer) = &self.timer {
            let after = at.map(|at| at.saturating_duration_since(Instant::now()));
            // A kernel that refuses to set a timer it made refuses nothing
            // else worth handling here: `fired` checks the clock as well.
            let _ = timer.get_ref().set(after);
        }
    }

    /// Waits until the deadline set passes; never while disarmed. Cancel
    /// safe: the deadline stays set.
    pub async fn fired(&self) {
        let Some(at) = self.armed else {
            return std::future::pending().await;
        };
        let Some(timer) = &self.timer else {
            return tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        };
        while Instant::now() < at {
            let drained = timer
                .async_io(Interest::READABLE, |timer| timer.drain())
                .await;
            if drained.is_err() {
                // Not expected of either kernel; fall back to the clock.
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod kernel {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::time::Duration;

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

    /// A non-blocking `timerfd` on `CLOCK_MONOTONIC`.
    pub struct Timer(TimerFd);

    impl Timer {
        pub fn new() -> io::Result<Timer> {
            let fd = TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            Ok(Timer(fd))
        }

        /// One shot `after` from now; `None` disarms.
        pub fn set(&self, after: Option<Duration>) -> io::Result<()> {
            match after {
                // A zero it_value disarms a timerfd (timerfd_settime(2)):
                // a deadline due now is set 1 ns ahead instead.
                Some(after) => self.0.set(
                    Expiration::OneShot(TimeSpec::from_duration(
                        after.max(Duration::from_nanos(1)),
                    )),
                    TimerSetTimeFlags::empty(),
                )?,
                None => self.0.unset()?,
            }
            Ok(())
        }

        /// Reads the expiration count: `WouldBlock` until it expired.
        pub fn drain(&self) -> io::Result<()> {
            let mut count = [0u8; 8];
            nix::unistd::read(self.0.as_fd(), &mut count)?;
            Ok(())
        }
    }

    impl AsRawFd for Timer {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }
}

#[cfg(target_os = "freebsd")]
mod kernel {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::time::Duration;

    use nix::sys::event::{EvFlags, EventFilter, FilterFlag, KEvent, Kqueue};

    /// The ident of our one timer in its kqueue.
    const IDENT: usize = 1;

    /// A kqueue holding one one-shot `EVFILT_TIMER`.
    pub struct Timer(Kqueue);

    impl Timer {
        pub fn new() -> io::Result<Timer> {
            Ok(Timer(Kqueue::new()?))
        }

        /// One shot `after` from now (in microseconds, `NOTE_USECONDS`);
        /// `None` deletes it. Adding an existing timer re-arms it (kqueue(2)).
        pub fn set(&self, after: Option<Duration>) -> io::Result<()> {
            let change = match after {
                Some(after) => KEvent::new(
                    IDENT,
                    EventFilter::EVFILT_TIMER,
                    EvFlags::EV_ADD | EvFlags::EV_ONESHOT,
                    FilterFlag::NOTE_USECONDS,
                    isize::try_from(after.as_micros().max(1)).unwrap_or(isize::MAX),
                    0,
                ),
                None => KEvent::new(
                    IDENT,
                    EventFilter::EVFILT_TIMER,
                    EvFlags::EV_DELETE,
                    FilterFlag::empty(),
                    0,
                    0,
                ),
            };
            let mut none: [KEvent; 0] = [];
            match self.0.kevent(&[change], &mut none, Some(zero())) {
                // Deleting a timer that already fired (one-shot) or was
                // never set.
                Err(nix::errno::Errno::ENOENT) if after.is_none() => Ok(()),
                Err(e) => Err(e.into()),
                Ok(_) => Ok(()),
            }
        }

        /// Takes a pending expiry: `WouldBlock` when there is none.
        pub fn drain(&self) -> io::Result<()> {
            let mut events = [KEvent::new(
                0,
                EventFilter::EVFILT_TIMER,
                EvFlags::empty(),
                FilterFlag::empty(),
                0,
                0,
            )];
            match self.0.kevent(&[], &mut events, Some(zero()))? {
                0 => Err(io::ErrorKind::WouldBlock.into()),
                _ => Ok(()),
            }
        }
    }

    fn zero() -> libc::timespec {
        libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }
    }

    impl AsRawFd for Timer {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }
}

/// How late a chore (a health check, the link's safety poll, the metrics
/// file) may run so that it shares a wake-up with other work: a fifth of
/// its period, at most a second. With adverts every second the loop is
/// awake at least that often anyway.
pub fn slack(period: Duration) -> Duration {
    (period / 5).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn fires_at_the_deadline_not_before() {
        runtime().block_on(async {
            let (mut alarm, error) = Alarm::new();
            assert!(error.is_none(), "{error:?}");
            let at = Instant::now() + Duration::from_millis(30);
            alarm.set(Some(at));
            alarm.fired().await;
            assert!(Instant::now() >= at);
        });
    }

    #[test]
    fn a_past_deadline_fires_at_once_and_a_moved_one_counts() {
        runtime().block_on(async {
            let (mut alarm, _) = Alarm::new();
            alarm.set(Some(Instant::now() + Duration::from_secs(3600)));
            // Moved to the past: fires although the kernel timer was set
            // an hour ahead a moment ago.
            alarm.set(Some(Instant::now()));
            tokio::time::timeout(Duration::from_secs(5), alarm.fired())
                .await
                .unwrap();
        });
    }

    #[test]
    fn disarmed_never_fires() {
        runtime().block_on(async {
            let (mut alarm, _) = Alarm::new();
            alarm.set(Some(Instant::now() + Duration::from_millis(5)));
            alarm.set(None);
            let waited = tokio::time::timeout(Duration::from_millis(50), alarm.fired()).await;
            assert!(waited.is_err(), "a disarmed alarm fired");
        });
    }

    #[test]
    fn slack_is_a_fifth_of_the_period_at_most_a_second() {
        assert_eq!(slack(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(slack(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(
            slack(Duration::from_millis(500)),
            Duration::from_millis(100)
        );
        assert_eq!(slack(Duration::ZERO), Duration::ZERO);
    }
}
