//! Wall-clock time and UTC dates as pgcdc writes them, through one date crate (`chrono`, which
//! arrow already builds).
//!
//! Every place that prints a time or a date for people or for object names uses this module:
//! checkpoint `written_at`, the lock holder's `since`, the `date=` partition of CDC file names.
//!
//! Not here: PostgreSQL *values* of type `date`/`timestamp` (`crate::batch::text`). Their range
//! (4713 BC to 5874897 AD) is wider than any date crate's, so that module keeps its own
//! proleptic-Gregorian arithmetic.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

/// Now as RFC 3339 in UTC, whole seconds: `2024-01-31T12:34:56Z`.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Now as microseconds since 1970-01-01 UTC (0 if the clock is before 1970).
pub fn now_unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64
}

/// The UTC calendar date of a timestamp in microseconds since 1970-01-01, as `YYYY-MM-DD`
/// (proleptic Gregorian, astronomical year with at least four digits: `1969-12-31`,
/// `-001-01-01` for 2 BC).
///
/// Total: a timestamp beyond the crate's range (about ±262,000 years, far outside any commit
/// time a server's clock can produce) is clamped to the first or last representable date.
pub fn utc_date_of_micros(ts_us: i64) -> String {
    let t = DateTime::from_timestamp_micros(ts_us).unwrap_or(if ts_us < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_US: i64 = 86_400_000_000;

    #[test]
    fn dates_of_timestamps() {
        assert_eq!(utc_date_of_micros(0), "1970-01-01");
        assert_eq!(utc_date_of_micros(-1), "1969-12-31");
        assert_eq!(utc_date_of_micros(19_723 * DAY_US), "2024-01-01");
        assert_eq!(utc_date_of_micros(19_723 * DAY_US - 1), "2023-12-31");
        assert_eq!(utc_date_of_micros(11_016 * DAY_US), "2000-02-29");
        // Far from 1970 in both directions, the same text the earlier hand-written code gave.
        assert_eq!(utc_date_of_micros(-719_528 * DAY_US), "0000-01-01");
        assert_eq!(utc_date_of_micros(-719_529 * DAY_US), "-001-12-31");
        assert_eq!(utc_date_of_micros(2_932_897 * DAY_US), "10000-01-01");
        // Out of the crate's range: clamped, never a panic.
        assert!(utc_date_of_micros(i64::MAX).starts_with("262"));
        assert!(utc_date_of_micros(i64::MIN).starts_with("-262"));
    }

    #[test]
    fn now_is_rfc3339_utc_in_seconds() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
        assert!(
            now_unix_micros() > 19_723 * DAY_US,
            "the clock is past 2024"
        );
    }
}
