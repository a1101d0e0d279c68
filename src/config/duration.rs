//! Durations written as strings: `"1s"`, `"1.5s"`, `"100ms"`, `"0s"`.
//!
//! Only `ms` and `s` are accepted: every interval in this file is between
//! milliseconds and an hour, and one spelling per unit keeps configs
//! greppable. Parsing is exact decimal arithmetic (no floats), so `"0.01s"`
//! is exactly 10 ms and the advertisement interval's 10 ms steps can be
//! checked without rounding surprises.

use std::time::Duration;

/// Why a string is not a duration; the message says what is accepted
/// (it is the configuration's diagnostic text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// A bare number such as `"5"`: the unit is required.
    #[error("{text:?} has no unit (write e.g. \"{number}s\" or \"{number}ms\")")]
    NoUnit {
        /// The string as written.
        text: String,
        /// Its numeric part, used to suggest `"<number>s"`.
        number: String,
    },
    /// A unit other than `ms` or `s`, e.g. `"2m"`.
    #[error("unknown unit {unit:?} in {text:?} (accepted units: \"ms\", \"s\"; e.g. \"100ms\", \"1.5s\", \"120s\")")]
    UnknownUnit {
        /// The string as written.
        text: String,
        /// Everything after the number, e.g. `"m"`.
        unit: String,
    },
    /// Not a plain decimal, finer than a nanosecond, or overflowing.
    #[error("{text:?} is not a duration (write e.g. \"100ms\" or \"1.5s\")")]
    NotANumber {
        /// The string as written.
        text: String,
    },
    /// More whole seconds than a `Duration` holds (`u64`).
    #[error("{text:?} is too long")]
    TooLong {
        /// The string as written.
        text: String,
    },
}

/// For the callers that report errors as text (the lab's arguments).
impl From<DurationError> for String {
    fn from(error: DurationError) -> String {
        error.to_string()
    }
}

/// Parse a duration string; the error says what is accepted.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let nanos_per_unit: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "" => {
            return Err(DurationError::NoUnit {
                text: text.to_owned(),
                number: number.to_owned(),
            })
        }
        other => {
            return Err(DurationError::UnknownUnit {
                text: text.to_owned(),
                unit: other.to_owned(),
            })
        }
    };
    let nanos = decimal_times(number, nanos_per_unit).ok_or_else(|| DurationError::NotANumber {
        text: text.to_owned(),
    })?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| DurationError::TooLong {
        text: text.to_owned(),
    })?;
    // The remainder is below 10^9, so it always fits in u32.
    let sub_nanos = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub_nanos))
}

/// `number * scale` for a plain decimal like `1.5`; `None` if it is not one,
/// if it has a fraction finer than a nanosecond, or if it overflows.
fn decimal_times(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let mut value = whole.parse::<u128>().ok()?.checked_mul(scale)?;
    let mut place = scale;
    for digit in fraction.bytes() {
        if place % 10 != 0 {
            // Finer than a nanosecond.
            return None;
        }
        place /= 10;
        value = value.checked_add(u128::from(digit - b'0') * place)?;
    }
    Some(value)
}

/// The shortest string [`parse`] reads back as `duration` (`"1.5s"`, `"10ms"`).
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return format!("{}ms", duration.as_secs_f64() * 1000.0);
    }
    if millis == 0 {
        "0s".to_string()
    } else if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else if millis < 1000 {
        format!("{millis}ms")
    } else {
        let text = format!("{}.{:03}", millis / 1000, millis % 1000);
        format!("{}s", text.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_with_fractions() {
        assert_eq!(parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("0.01s"), Ok(Duration::from_millis(10)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("40.95s"), Ok(Duration::from_millis(40_950)));
    }

    #[test]
    fn other_units_and_garbage_are_refused_with_the_accepted_forms() {
        let minutes = parse("2m").unwrap_err().to_string();
        assert!(minutes.contains("\"ms\", \"s\""), "{minutes}");
        assert_eq!(
            parse("5").unwrap_err().to_string(),
            "\"5\" has no unit (write e.g. \"5s\" or \"5ms\")"
        );
        for bad in [
            "",
            "s",
            ".5s",
            "1.s",
            "1..2s",
            "-1s",
            "1e3ms",
            "0.0000000001s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn huge_numbers_are_errors_not_overflows() {
        assert!(parse("99999999999999999999999999999999999999999s").is_err());
        assert!(parse("18446744073709551616s").is_err());
    }

    #[test]
    fn format_reads_back() {
        for text in ["0s", "10ms", "1s", "1.5s", "40.95s", "3600s"] {
            let duration = parse(text).unwrap();
            assert_eq!(format(duration), text);
        }
    }
}
