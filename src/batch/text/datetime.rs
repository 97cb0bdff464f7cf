//! Dates, times and timestamps in PostgreSQL's ISO text form (DateStyle=ISO, TimeZone=UTC),
//! both directions, over one calendar.
//!
//! The calendar is written here rather than taken from a date crate on purpose: PostgreSQL
//! dates run from 4713 BC to 5874897 AD with astronomical years, beyond `chrono`'s range
//! (about ±262 000 years), and both directions must agree on every one of them.

use super::{ParseResult, DATE_INFINITY, DATE_NEG_INFINITY, MICROS_PER_DAY, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY};

// ---------------------------------------------------------------------------------------
// calendar

/// Days since 1970-01-01 of a proleptic Gregorian date with an astronomical year.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date (astronomical year, month, day) of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    y.rem_euclid(4) == 0 && (y.rem_euclid(100) != 0 || y.rem_euclid(400) == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 31,
    }
}

/// A cursor over the bytes of a date/time value.
struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// One or more digits (at most `max`), as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start == max {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
            self.i += 1;
        }
        let n = self.i - start;
        (n >= min).then_some((v, n))
    }
    fn two(&mut self) -> Option<i64> {
        self.digits(2, 2).map(|(v, _)| v)
    }
    fn at_end(&self) -> bool {
        self.i == self.s.len()
    }
    fn rest(&self) -> &'a [u8] {
        &self.s[self.i..]
    }
}

/// `YYYY-MM-DD` (year of 4 or more digits) → (year as written, month, day).
fn date_part(c: &mut Cur<'_>) -> Option<(i64, u32, u32)> {
    let (y, _) = c.digits(1, 9)?;
    if !c.eat(b'-') {
        return None;
    }
    let m = c.two()?;
    if !c.eat(b'-') {
        return None;
    }
    let d = c.two()?;
    Some((y, m as u32, d as u32))
}

/// Days since 1970 of a written date; `bc` turns the year into an astronomical one.
fn date_days(y: i64, m: u32, d: u32, bc: bool) -> ParseResult<i64> {
    if y < 1 {
        return Err("year 0 does not exist in PostgreSQL's calendar".into());
    }
    let y = if bc { 1 - y } else { y };
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err("not a valid calendar date".into());
    }
    Ok(days_from_civil(y, m, d))
}

/// Consumes ` BC` at the end, if present.
fn bc_suffix(c: &mut Cur<'_>) -> bool {
    if c.rest() == b" BC" {
        c.i = c.s.len();
        true
    } else {
        false
    }
}

/// A date (`2024-01-31`, `0044-02-01 BC`, `300000-01-01`, `infinity`, `-infinity`) as
/// Date32 days since 1970-01-01. See [`PgType`](crate::model::PgType) for the infinity rule.
pub fn parse_date(s: &[u8]) -> ParseResult<i32> {
    match s {
        b"infinity" => return Ok(DATE_INFINITY),
        b"-infinity" => return Ok(DATE_NEG_INFINITY),
        _ => {}
    }
    let mut c = Cur { s, i: 0 };
    let (y, m, d) = date_part(&mut c).ok_or("not a date (expected YYYY-MM-DD)")?;
    let bc = bc_suffix(&mut c);
    if !c.at_end() {
        return Err("not a date (expected YYYY-MM-DD)".into());
    }
    let days = date_days(y, m, d, bc)?;
    if days <= DATE_NEG_INFINITY as i64 || days >= DATE_INFINITY as i64 {
        return Err("date beyond the range of Arrow Date32".into());
    }
    Ok(days as i32)
}

/// `HH:MM:SS[.ffffff]` → microseconds; `24:00:00` is allowed (86 400 000 000).
fn time_part(c: &mut Cur<'_>) -> ParseResult<i64> {
    let bad = || "not a time (expected HH:MM:SS[.ffffff])".to_string();
    let h = c.two().ok_or_else(bad)?;
    if !c.eat(b':') {
        return Err(bad());
    }
    let mi = c.two().ok_or_else(bad)?;
    if !c.eat(b':') {
        return Err(bad());
    }
    let sec = c.two().ok_or_else(bad)?;
    let mut frac = 0i64;
    if c.eat(b'.') {
        let (f, n) = c.digits(1, 6).ok_or_else(|| "more than 6 fractional digits".to_string())?;
        frac = f * 10i64.pow(6 - n as u32);
    }
    if mi > 59 || sec > 60 || h > 24 {
        return Err(bad());
    }
    let us = ((h * 60 + mi) * 60 + sec) * 1_000_000 + frac;
    if us > MICROS_PER_DAY {
        return Err("time of day beyond 24:00:00".into());
    }
    Ok(us)
}

/// A time (`12:34:56.789`, `24:00:00`) as Time64 microseconds.
pub fn parse_time(s: &[u8]) -> ParseResult<i64> {
    let mut c = Cur { s, i: 0 };
    let us = time_part(&mut c)?;
    if !c.at_end() {
        return Err("not a time (expected HH:MM:SS[.ffffff])".into());
    }
    Ok(us)
}

/// A UTC offset `+HH`, `-HH:MM`, `+HH:MM:SS` → seconds east of UTC.
fn offset_part(c: &mut Cur<'_>) -> Option<i64> {
    let sign = match c.peek()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    c.i += 1;
    let h = c.two()?;
    let mut m = 0;
    let mut s = 0;
    if c.eat(b':') {
        m = c.two()?;
        if c.eat(b':') {
            s = c.two()?;
        }
    }
    if m > 59 || s > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s))
}

/// A timestamp (`2024-01-31 12:34:56.123456`, `... BC`, `infinity`) or, with `tz`, a
/// timestamptz (`2024-01-31 12:34:56.123456+00`, offsets `+05:30`, `-08`, `+05:30:15`) as
/// microseconds since 1970-01-01 (UTC for timestamptz). See [`PgType`](crate::model::PgType) for
/// the infinity rule.
pub fn parse_timestamp(s: &[u8], tz: bool) -> ParseResult<i64> {
    match s {
        b"infinity" => return Ok(TIMESTAMP_INFINITY),
        b"-infinity" => return Ok(TIMESTAMP_NEG_INFINITY),
        _ => {}
    }
    let expected = if tz {
        "not a timestamptz (expected YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM[:SS]][ BC])"
    } else {
        "not a timestamp (expected YYYY-MM-DD HH:MM:SS[.ffffff][ BC])"
    };
    let mut c = Cur { s, i: 0 };
    let (y, m, d) = date_part(&mut c).ok_or(expected)?;
    if !c.eat(b' ') {
        return Err(expected.into());
    }
    let time = time_part(&mut c)?;
    let offset = if tz { offset_part(&mut c).ok_or(expected)? } else { 0 };
    let bc = bc_suffix(&mut c);
    if !c.at_end() {
        return Err(expected.into());
    }
    let days = date_days(y, m, d, bc)?;
    let us = days
        .checked_mul(MICROS_PER_DAY)
        .and_then(|v| v.checked_add(time))
        .and_then(|v| v.checked_sub(offset * 1_000_000))
        .filter(|&v| v > TIMESTAMP_NEG_INFINITY && v < TIMESTAMP_INFINITY)
        .ok_or("timestamp beyond the range of Arrow timestamp(µs) (about 290 000 years around 1970)")?;
    Ok(us)
}

// ---------------------------------------------------------------------------------------
// formatting (the reverse direction, PostgreSQL's ISO output)

/// A Date32 value as PostgreSQL prints it: `2024-01-31`, `0044-02-01 BC`, `infinity`.
pub fn format_date(days: i32) -> String {
    match days {
        DATE_INFINITY => "infinity".into(),
        DATE_NEG_INFINITY => "-infinity".into(),
        _ => {
            let (y, m, d) = civil_from_days(days as i64);
            let mut s = String::with_capacity(16);
            push_date(&mut s, y, m, d);
            if y <= 0 {
                s.push_str(" BC");
            }
            s
        }
    }
}

fn push_date(s: &mut String, y: i64, m: u32, d: u32) {
    let year = if y <= 0 { 1 - y } else { y };
    push_padded(s, year, 4);
    s.push('-');
    push_padded(s, i64::from(m), 2);
    s.push('-');
    push_padded(s, i64::from(d), 2);
}

/// `v` in decimal, zero-padded to `width` digits (as `format!("{v:0width$}")`), without
/// the formatting machinery (dates and times are the bulk of `validate`'s values).
fn push_padded(s: &mut String, v: i64, width: usize) {
    if v < 0 {
        use std::fmt::Write;
        let _ = write!(s, "{v:0width$}");
        return;
    }
    let (mut digits, mut at, mut v) = ([b'0'; 20], 20, v as u64);
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in (20 - at)..width {
        s.push('0');
    }
    s.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// `HH:MM:SS` plus the fraction without trailing zeros, from microseconds.
fn push_time(s: &mut String, us: i64) {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    push_padded(s, secs / 3600, 2);
    s.push(':');
    push_padded(s, secs / 60 % 60, 2);
    s.push(':');
    push_padded(s, secs % 60, 2);
    if frac != 0 {
        if frac < 0 {
            let f = format!("{frac:06}");
            s.push('.');
            s.push_str(f.trim_end_matches('0'));
            return;
        }
        let start = s.len() + 1;
        s.push('.');
        push_padded(s, frac, 6);
        let end = s.trim_end_matches('0').len().max(start);
        s.truncate(end);
    }
}

/// A Time64(µs) value as PostgreSQL prints it: `12:34:56.789`, `24:00:00`.
pub fn format_time(us: i64) -> String {
    let mut s = String::with_capacity(16);
    push_time(&mut s, us);
    s
}

/// A Timestamp(µs) value as PostgreSQL prints it with DateStyle=ISO and TimeZone=UTC:
/// `2024-01-31 12:34:56.123456` (`+00` appended if `tz`), ` BC` last, `infinity`.
pub fn format_timestamp(us: i64, tz: bool) -> String {
    match us {
        TIMESTAMP_INFINITY => return "infinity".into(),
        TIMESTAMP_NEG_INFINITY => return "-infinity".into(),
        _ => {}
    }
    let days = us.div_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(32);
    push_date(&mut s, y, m, d);
    s.push(' ');
    push_time(&mut s, us.rem_euclid(MICROS_PER_DAY));
    if tz {
        s.push_str("+00");
    }
    if y <= 0 {
        s.push_str(" BC");
    }
    s
}
