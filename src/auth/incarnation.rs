//! The incarnation: a number that grows at every start of the agent, so
//! that a peer can tell our new messages from recordings of old ones even
//! though our sequence numbers start again from 0.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Name of the file, inside the state directory, holding the last
/// incarnation handed out.
pub const INCARNATION_FILE: &str = "incarnation";

/// Returns this start's incarnation and records it in
/// `state_dir/incarnation`: the larger of the previous one plus 1 and the
/// wall clock in microseconds since 1970. The clock keeps incarnations
/// growing if the file is lost; the file keeps them growing if the clock
/// steps back. The record is written to a temporary file, synced and
/// renamed over the old one, so a crash leaves the old or the new value,
/// never a torn one.
pub fn next_incarnation(state_dir: &Path) -> io::Result<u64> {
    let path = state_dir.join(INCARNATION_FILE);
    let previous = read_previous(&path)?;
    let incarnation = previous
        .map_or(0, |previous| previous.saturating_add(1))
        .max(clock_micros());

    let temporary = state_dir.join(format!(".{INCARNATION_FILE}.tmp"));
    let mut file = File::create(&temporary).map_err(|e| with_path(e, &temporary))?;
    file.write_all(format!("{incarnation}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| with_path(e, &temporary))?;
    fs::rename(&temporary, &path).map_err(|e| with_path(e, &path))?;
    // The rename itself is durable only once the directory is synced; a
    // failure here loses at most the record, and the clock still grows.
    if let Ok(dir) = File::open(state_dir) {
        let _ = dir.sync_all();
    }
    Ok(incarnation)
}

fn read_previous(path: &Path) -> io::Result<Option<u64>> {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: not an incarnation number ({:?}); remove the file to start afresh",
                    path.display(),
                    text.trim()
                ),
            )
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(with_path(error, path)),
    }
}

fn clock_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successive_incarnations_grow_and_are_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = next_incarnation(dir.path()).expect("first");
        let second = next_incarnation(dir.path()).expect("second");
        assert!(second > first);
        let recorded = fs::read_to_string(dir.path().join(INCARNATION_FILE)).expect("file");
        assert_eq!(recorded.trim(), second.to_string());
    }

    #[test]
    fn a_record_ahead_of_the_clock_still_grows() {
        // As after the clock stepped back by years.
        let dir = tempfile::tempdir().expect("tempdir");
        let ahead = clock_micros() + 10_000_000_000_000;
        fs::write(dir.path().join(INCARNATION_FILE), format!("{ahead}\n")).expect("write");
        assert_eq!(next_incarnation(dir.path()).expect("next"), ahead + 1);
    }

    #[test]
    fn without_a_record_the_clock_is_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = clock_micros();
        assert!(next_incarnation(dir.path()).expect("next") >= before);
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(INCARNATION_FILE), "garbage").expect("write");
        let error = next_incarnation(dir.path()).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains(INCARNATION_FILE), "{error}");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("absent");
        let error = next_incarnation(&missing).expect_err("refused");
        assert!(error.to_string().contains("absent"), "{error}");
    }
}
