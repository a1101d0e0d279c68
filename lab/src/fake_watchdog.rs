//! A software watchdog for tests and the lab: it makes a FIFO and reads the
//! line protocol of [`rcbsd_failover::fence::watchdog`] from it (`pat <timeout_ms>`,
//! `disarm`), keeping the state a real watchdog would have — armed or not,
//! when it would reset — instead of resetting anything.
//!
//! It records the first expiry ([`FakeWatchdogState::expired_at`]) and
//! keeps it: a real machine would have reset then, whatever came after.
//! End of file (the agent exited or crashed) keeps it armed; the read side
//! is then reopened so that a restarted agent can open the FIFO and pat.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the reader thread looks at its stop flag when no line comes.
const POLL_INTERVAL_MS: libc::c_int = 20;

/// What the fake watchdog has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeWatchdogState {
    /// A countdown runs: a `pat` came after the last `disarm`.
    pub armed: bool,
    /// `pat` lines read.
    pub pats: u64,
    /// `disarm` lines read.
    pub disarms: u64,
    /// Times a writer closed the FIFO (end of file).
    pub writers_closed: u64,
    /// Lines that were neither `pat <ms>` nor `disarm`.
    pub bad_lines: u64,
    /// When the last `pat` line was read.
    pub last_pat: Option<Instant>,
    /// When the running countdown ends (armed only).
    pub deadline: Option<Instant>,
    /// When the countdown first ran out: a real watchdog would have reset
    /// the machine then. Cleared only by [`FakeWatchdog::reboot`].
    pub expired_at: Option<Instant>,
    /// Why the reader thread stopped early, if it did.
    pub reader_error: Option<String>,
}

impl FakeWatchdogState {
    /// Latches an expiry that `now` has reached.
    fn settle(&mut self, now: Instant) {
        if self.expired_at.is_some() || !self.armed {
            return;
        }
        if let Some(deadline) = self.deadline.filter(|deadline| *deadline <= now) {
            self.expired_at = Some(deadline);
        }
    }

    /// Applies one line read at `now`.
    fn apply(&mut self, line: &[u8], now: Instant) {
        // A line read late still counts from its own arrival: anything that
        // ran out before it ran out for good.
        self.settle(now);
        let text = std::str::from_utf8(line).unwrap_or("");
        if text == "disarm" {
            self.disarms += 1;
            self.armed = false;
            self.deadline = None;
        } else if let Some(ms) = text
            .strip_prefix("pat ")
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            self.pats += 1;
            self.armed = true;
            self.last_pat = Some(now);
            // A timeout too long for Instant never ends.
            self.deadline = now.checked_add(Duration::from_millis(ms));
        } else {
            self.bad_lines += 1;
        }
    }
}

struct Shared {
    state: Mutex<FakeWatchdogState>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeWatchdogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reading end of a watchdog FIFO, with a thread that reads it. Drop
/// stops the thread and removes the FIFO.
pub struct FakeWatchdog {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FakeWatchdog {
    /// Makes the FIFO at `path` (mode 0600) and opens its read end, so that
    /// [`rcbsd_failover::fence::Watchdog::open`] finds a reader.
    pub fn create(path: &Path) -> Result<FakeWatchdog, io::Error> {
        use nix::sys::stat::Mode;
        nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).map_err(io::Error::from)?;
        let file = match open_reader(path) {
            Ok(file) => file,
            Err(error) => {
                let _ = std::fs::remove_file(path);
                return Err(error);
            }
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeWatchdogState::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let (path, shared) = (path.to_owned(), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("fake-watchdog".into())
                .spawn(move || read_lines(&path, file, &shared))
        };
        let thread = match thread {
            Ok(thread) => thread,
            Err(error) => {
                let _ = std::fs::remove_file(path);
                return Err(error);
            }
        };
        Ok(FakeWatchdog {
            path: path.to_owned(),
            shared,
            thread: Some(thread),
        })
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the countdown has run out, now or earlier: a real watchdog
    /// would have reset the machine.
    /// The machine rebooted: the countdown is gone (a watchdog is disarmed
    /// at boot) and the expiry is forgotten; the counters stay.
    pub fn reboot(&self) {
        let mut state = self.shared.lock();
        state.armed = false;
        state.deadline = None;
        state.expired_at = None;
        self.shared.changed.notify_all();
    }

    pub fn expired(&self) -> bool {
        self.state().expired_at.is_some()
    }

    /// A snapshot, with any expiry up to now recorded.
    pub fn state(&self) -> FakeWatchdogState {
        let mut state = self.shared.lock();
        state.settle(Instant::now());
        state.clone()
    }

    /// Waits up to `limit` for the countdown to run out; returns when it
    /// did, or `None` if it has not by then.
    pub fn wait_expired(&self, limit: Duration) -> Option<Instant> {
        self.wait_for(limit, |state| state.expired_at.is_some())
            .and_then(|state| state.expired_at)
    }

    /// Waits up to `limit` until `done` holds for the state (re-checked on
    /// every line read and when a countdown ends); returns that state.
    pub fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&FakeWatchdogState) -> bool,
    ) -> Option<FakeWatchdogState> {
        let start = Instant::now();
        let end = start.checked_add(limit).unwrap_or(start);
        let mut state = self.shared.lock();
        loop {
            let now = Instant::now();
            state.settle(now);
            if done(&state) {
                return Some(state.clone());
            }
            if now >= end {
                return None;
            }
            // Wake at the deadline too: expiry is time passing, not a line.
            let wake = match state.deadline {
                Some(deadline) if state.armed && deadline > now => deadline.min(end),
                _ => end,
            };
            let wait = wake
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            state = match self.shared.changed.wait_timeout(state, wait) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

impl Drop for FakeWatchdog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl std::fmt::Debug for FakeWatchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeWatchdog")
            .field("path", &self.path)
            .field("state", &self.state())
            .finish()
    }
}

fn open_reader(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// The reader thread: waits for input with poll(2), applies whole lines.
fn read_lines(path: &Path, mut file: File, shared: &Shared) {
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    while !shared.stop.load(Ordering::Relaxed) {
        match wait_readable(&file) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => return stop_with(shared, format!("poll: {error}")),
        }
        // Read what is there. poll(2) said readable or hung up; a fresh
        // reader with no writer yet reads 0 too, so 0 only counts as end
        // of file after poll said so.
        loop {
            match file.read(&mut buffer) {
                Ok(0) => {
                    // The writer closed. Open the new read end before the
                    // old one closes, so a restarting agent always finds a
                    // reader; a fresh one reports no hang-up until a new
                    // writer has come and gone (Linux fs/pipe.c, fifo_open:
                    // "suppress EPOLLHUP until we have seen a writer").
                    match open_reader(path) {
                        Ok(fresh) => file = fresh,
                        Err(error) => return stop_with(shared, format!("reopen: {error}")),
                    }
                    // A dead writer's partial line is not a line.
                    pending.clear();
                    shared.lock().writers_closed += 1;
                    shared.changed.notify_all();
                    break;
                }
                Ok(n) => {
                    pending.extend_from_slice(&buffer[..n]);
                    let now = Instant::now();
                    let mut state = shared.lock();
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        state.apply(&pending[..end], now);
                        pending.drain(..=end);
                    }
                    drop(state);
                    shared.changed.notify_all();
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return stop_with(shared, format!("read: {error}")),
            }
        }
    }
}

/// Whether `file` has input or a hang-up, within [`POLL_INTERVAL_MS`].
fn wait_readable(file: &File) -> io::Result<bool> {
    let mut poll_fd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, living across the call; the count is 1.
    let rc = unsafe { libc::poll(&mut poll_fd, 1, POLL_INTERVAL_MS) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        return match error.kind() {
            io::ErrorKind::Interrupted => Ok(false),
            _ => Err(error),
        };
    }
    Ok(rc > 0 && poll_fd.revents != 0)
}

fn stop_with(shared: &Shared, error: String) {
    shared.lock().reader_error = Some(error);
    shared.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcbsd_failover::fence::{Watchdog, WatchdogKind};

    const WAIT: Duration = Duration::from_secs(10);

    fn fake_in(dir: &tempfile::TempDir) -> FakeWatchdog {
        FakeWatchdog::create(&dir.path().join("watchdog.fifo")).expect("create the fake")
    }

    #[test]
    fn expires_one_timeout_after_the_last_pat() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = fake_in(&dir);
        let mut watchdog = Watchdog::open(fake.path(), Duration::from_millis(200)).expect("open");
        assert_eq!(watchdog.kind(), WatchdogKind::Fifo);
        let before_pat = Instant::now();
        watchdog.pat().expect("pat");

        let expired_at = fake.wait_expired(WAIT).expect("expires without pats");
        let state = fake.state();
        assert_eq!(state.pats, 1);
        assert!(state.armed);
        let last_pat = state.last_pat.expect("a pat was read");
        assert!(last_pat >= before_pat);
        assert_eq!(expired_at, last_pat + Duration::from_millis(200));
        assert!(Instant::now() >= before_pat + Duration::from_millis(200));
        assert!(fake.expired());
    }

    #[test]
    fn does_not_expire_while_patted_or_disarmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = fake_in(&dir);
        let mut watchdog = Watchdog::open(fake.path(), Duration::from_millis(1000)).expect("open");
        assert!(!fake.state().armed, "opening arms nothing");

        // 1.5 s of pats every 100 ms: longer than the timeout, never near it.
        for _ in 0..15 {
            watchdog.pat().expect("pat");
            std::thread::sleep(Duration::from_millis(100));
            assert!(!fake.expired(), "expired while patted: {:?}", fake.state());
        }
        let state = fake
            .wait_for(WAIT, |s| s.pats == 15)
            .expect("all pats read");
        assert!(state.armed);
        assert_eq!(state.expired_at, None);

        watchdog.disarm().expect("disarm");
        let state = fake
            .wait_for(WAIT, |s| s.disarms == 1)
            .expect("disarm read");
        assert!(!state.armed);
        assert_eq!(state.deadline, None);
        assert_eq!(fake.wait_expired(Duration::from_millis(1500)), None);
        assert_eq!(fake.state().expired_at, None);
    }

    #[test]
    fn writer_eof_keeps_it_armed_and_a_restarted_agent_pats_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = fake_in(&dir);
        let mut agent = Watchdog::open(fake.path(), Duration::from_secs(30)).expect("open");
        agent.pat().expect("pat");
        fake.wait_for(WAIT, |s| s.pats == 1).expect("pat read");

        drop(agent); // the agent dies without disarm
        let state = fake
            .wait_for(WAIT, |s| s.writers_closed == 1)
            .expect("EOF seen");
        assert!(state.armed, "EOF must not disarm: {state:?}");
        assert!(state.deadline.is_some());
        assert_eq!(state.disarms, 0);

        // The restarted agent finds a reader and its pats count.
        let mut restarted =
            Watchdog::open(fake.path(), Duration::from_millis(300)).expect("reopen after EOF");
        restarted.pat().expect("pat");
        let state = fake
            .wait_for(WAIT, |s| s.pats == 2)
            .expect("second pat read");
        assert!(state.armed);
        assert!(fake.wait_expired(WAIT).is_some(), "the new timeout applies");
        assert_eq!(fake.state().reader_error, None);
    }

    #[test]
    fn bad_lines_are_counted_and_change_nothing() {
        let mut state = FakeWatchdogState::default();
        let now = Instant::now();
        state.apply(b"pat", now);
        state.apply(b"pat -5", now);
        state.apply(b"reset", now);
        assert_eq!(state.bad_lines, 3);
        assert!(!state.armed);
        state.apply(b"pat 10", now);
        assert_eq!(state.deadline, Some(now + Duration::from_millis(10)));
        state.settle(now + Duration::from_millis(10));
        assert_eq!(state.expired_at, Some(now + Duration::from_millis(10)));
        // A later pat does not undo the reset that already happened.
        state.apply(b"pat 10", now + Duration::from_millis(20));
        assert_eq!(state.expired_at, Some(now + Duration::from_millis(10)));
    }

    #[test]
    fn drop_removes_the_fifo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = fake_in(&dir);
        let path = fake.path().to_owned();
        assert!(path.exists());
        drop(fake);
        assert!(!path.exists());
        let error = Watchdog::open(&path, Duration::from_secs(1)).expect_err("gone");
        assert!(error.to_string().contains("cannot be examined"), "{error}");
    }
}
