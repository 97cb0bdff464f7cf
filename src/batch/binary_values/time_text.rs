//! `interval` and `timetz` from their binary form, printed exactly as PostgreSQL's output
//! functions print them in pgcdc's sessions (IntervalStyle=postgres, DateStyle=ISO; see
//! [`crate::source::conninfo`]), which is the text CDC receives for the same value. Both
//! types have no Arrow column of their own here (their column is Utf8 of the text form), so
//! the full load reads them natively only to save the server the `format('%s', …)`.
//!
//! The printing follows `EncodeInterval` (INTSTYLE_POSTGRES), `EncodeTimeOnly`,
//! `EncodeTimezone` and `AppendSeconds` of PostgreSQL's `datetime.c`.

use std::io::Write;

const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;

fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].try_into().expect("length checked")
}

/// Appends `interval_out`'s text of an `interval_send` value (µs of time, days, months).
/// PostgreSQL 17's infinite intervals print as `infinity` / `-infinity`.
pub(super) fn write_interval(b: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if b.len() != 16 {
        return Err(format!("binary interval has {} bytes, expected 16", b.len()));
    }
    let time = i64::from_be_bytes(field(b, 0));
    let days = i32::from_be_bytes(field(b, 8));
    let months = i32::from_be_bytes(field(b, 12));
    if (time, days, months) == (i64::MAX, i32::MAX, i32::MAX) {
        out.extend_from_slice(b"infinity");
        return Ok(());
    }
    if (time, days, months) == (i64::MIN, i32::MIN, i32::MIN) {
        out.extend_from_slice(b"-infinity");
        return Ok(());
    }
    // interval2itm: C division truncates toward zero, as Rust's does.
    let (year, mon) = (months / 12, months % 12);
    let usec = time % USECS_PER_SEC;
    let secs = time / USECS_PER_SEC;
    let (sec, mins) = (secs % 60, secs / 60);
    let (min, hour) = (mins % 60, mins / 60);

    let mut is_zero = true;
    let mut is_before = false;
    for (value, unit) in [(year as i64, "year"), (mon as i64, "mon"), (days as i64, "day")] {
        // AddPostgresIntPart: each nonzero part sets is_before for the next one only.
        if value == 0 {
            continue;
        }
        let sep = if is_zero { "" } else { " " };
        let plus = if is_before && value > 0 { "+" } else { "" };
        let plural = if value != 1 { "s" } else { "" };
        write!(out, "{sep}{plus}{value} {unit}{plural}").expect("writing to a Vec");
        is_before = value < 0;
        is_zero = false;
    }
    if is_zero || hour != 0 || min != 0 || sec != 0 || usec != 0 {
        let minus = hour < 0 || min < 0 || sec < 0 || usec < 0;
        let sep = if is_zero { "" } else { " " };
        let sign = if minus { "-" } else if is_before { "+" } else { "" };
        write!(out, "{sep}{sign}{:02}:{:02}:", hour.unsigned_abs(), min.unsigned_abs()).expect("writing to a Vec");
        append_seconds(out, sec.unsigned_abs(), usec.unsigned_abs());
    }
    Ok(())
}

/// Appends `timetz_out`'s text of a `timetz_send` value (µs since midnight, then the zone
/// as seconds west of UTC): `HH:MM:SS[.ffffff]` and the offset `+HH[:MM[:SS]]`.
pub(super) fn write_timetz(b: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if b.len() != 12 {
        return Err(format!("binary timetz has {} bytes, expected 12", b.len()));
    }
    let time = i64::from_be_bytes(field(b, 0));
    let zone = i32::from_be_bytes(field(b, 8));
    if !(0..=USECS_PER_DAY).contains(&time) {
        return Err("time of day outside 00:00:00..24:00:00".into());
    }
    let (hour, rest) = (time / USECS_PER_HOUR, time % USECS_PER_HOUR);
    let (min, rest) = (rest / USECS_PER_MINUTE, rest % USECS_PER_MINUTE);
    write!(out, "{hour:02}:{min:02}:").expect("writing to a Vec");
    append_seconds(out, (rest / USECS_PER_SEC) as u64, (rest % USECS_PER_SEC) as u64);
    // EncodeTimezone: the zone is negated to display; minutes and seconds only when nonzero.
    let abs = zone.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    out.push(if zone <= 0 { b'+' } else { b'-' });
    if s != 0 {
        write!(out, "{h:02}:{m:02}:{s:02}")
    } else if m != 0 {
        write!(out, "{h:02}:{m:02}")
    } else {
        write!(out, "{h:02}")
    }
    .expect("writing to a Vec");
    Ok(())
}

/// `AppendSeconds` with precision 6 and zero fill: two digits of seconds, then the
/// fraction without trailing zeros (nothing when it is zero).
fn append_seconds(out: &mut Vec<u8>, sec: u64, usec: u64) {
    write!(out, "{sec:02}").expect("writing to a Vec");
    if usec != 0 {
        let digits = format!(".{usec:06}");
        out.extend_from_slice(digits.trim_end_matches('0').as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(time: i64, days: i32, months: i32) -> String {
        let mut b = time.to_be_bytes().to_vec();
        b.extend_from_slice(&days.to_be_bytes());
        b.extend_from_slice(&months.to_be_bytes());
        let mut out = Vec::new();
        write_interval(&b, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn timetz(time: i64, zone: i32) -> String {
        let mut b = time.to_be_bytes().to_vec();
        b.extend_from_slice(&zone.to_be_bytes());
        let mut out = Vec::new();
        write_timetz(&b, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Expected texts are what PostgreSQL 15 prints for the same values (`SELECT
    /// '…'::interval` with IntervalStyle=postgres).
    #[test]
    fn intervals_print_as_interval_out() {
        let h = USECS_PER_HOUR;
        assert_eq!(interval(0, 0, 0), "00:00:00");
        assert_eq!(interval(0, 1, 0), "1 day");
        assert_eq!(interval(0, -1, 0), "-1 days");
        assert_eq!(interval(0, 0, 14), "1 year 2 mons");
        assert_eq!(interval(4 * h + 5 * 60_000_000 + 6_789_000, -3, 14), "1 year 2 mons -3 days +04:05:06.789");
        assert_eq!(interval(4 * h + 5 * 60_000_000 + 6_500_000, -3, 14), "1 year 2 mons -3 days +04:05:06.5");
        assert_eq!(interval(0, 0, -178_000_000 * 12), "-178000000 years");
        assert_eq!(interval(-(2 * h + 3 * 60_000_000), -1, 0), "-1 days -02:03:00");
        assert_eq!(interval(2 * h, -1, 0), "-1 days +02:00:00");
        assert_eq!(interval(1, 0, 0), "00:00:00.000001");
        assert_eq!(interval(-1, 0, 0), "-00:00:00.000001");
        assert_eq!(interval(123 * h, 0, 0), "123:00:00");
        assert_eq!(interval(0, 0, 1), "1 mon");
        assert_eq!(interval(0, 0, -13), "-1 years -1 mons");
        assert_eq!(interval(0, 2, -1), "-1 mons +2 days");
        assert_eq!(interval(i64::MAX, i32::MAX, i32::MAX), "infinity");
        assert_eq!(interval(i64::MIN, i32::MIN, i32::MIN), "-infinity");
        assert!(write_interval(&[0; 15], &mut Vec::new()).is_err());
    }

    #[test]
    fn timetz_prints_as_timetz_out() {
        assert_eq!(timetz(USECS_PER_DAY, -(5 * 3600 + 30 * 60)), "24:00:00+05:30");
        assert_eq!(timetz(0, 15 * 3600 + 59 * 60), "00:00:00-15:59");
        assert_eq!(timetz(12 * USECS_PER_HOUR + 34 * USECS_PER_MINUTE + 56_789_012, 8 * 3600), "12:34:56.789012-08");
        assert_eq!(timetz(0, 0), "00:00:00+00");
        assert_eq!(timetz(1_500_000, -(3600 + 61)), "00:00:01.5+01:01:01");
        assert!(write_timetz(&[0; 12].iter().chain(&[0; 1]).copied().collect::<Vec<u8>>(), &mut Vec::new()).is_err());
        let mut late = (USECS_PER_DAY + 1).to_be_bytes().to_vec();
        late.extend_from_slice(&0i32.to_be_bytes());
        assert!(write_timetz(&late, &mut Vec::new()).is_err());
    }
}
