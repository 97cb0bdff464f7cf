//! Parsers of PostgreSQL text output, in the session settings pgcdc uses (DateStyle=ISO,
//! TimeZone=UTC, IntervalStyle=postgres, extra_float_digits=3, bytea_output=hex, UTF8).
//!
//! All parsers work on `&[u8]` and allocate nothing on success; the error is a reason
//! (without the value, which the caller adds). The reverse formatters used by
//! [`cell_to_string`](super::cell_to_string) live here too, so both directions share one
//! calendar.

use arrow_buffer::i256;

pub type ParseResult<T> = Result<T, String>;

/// Microseconds per day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Date32 value of PostgreSQL `infinity` (PostgreSQL's `DATEVAL_NOEND`, DuckDB's `infinity`).
pub const DATE_INFINITY: i32 = i32::MAX;
/// Date32 value of PostgreSQL `-infinity`: `-i32::MAX`, DuckDB's `-infinity`. (PostgreSQL's
/// own `DATEVAL_NOBEGIN` is `i32::MIN`, which DuckDB shows as the date 5877642-06-23 BC.)
pub const DATE_NEG_INFINITY: i32 = -i32::MAX;
/// Timestamp value of PostgreSQL `infinity` (PostgreSQL's `DT_NOEND`, DuckDB's `infinity`).
pub const TIMESTAMP_INFINITY: i64 = i64::MAX;
/// Timestamp value of PostgreSQL `-infinity`: `-i64::MAX`, DuckDB's `-infinity`. (PostgreSQL's
/// own `DT_NOBEGIN`, `i64::MIN`, makes DuckDB fail: "Date out of range in timestamp
/// conversion".)
pub const TIMESTAMP_NEG_INFINITY: i64 = -i64::MAX;

// ---------------------------------------------------------------------------------------
// bool, integers, floats

pub fn parse_bool(s: &[u8]) -> ParseResult<bool> {
    match s {
        b"t" | b"true" => Ok(true),
        b"f" | b"false" => Ok(false),
        _ => Err("not a boolean (expected t or f)".into()),
    }
}

/// Parses a decimal integer (optional sign, digits only).
#[inline]
pub fn parse_i64(s: &[u8]) -> ParseResult<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err("not an integer".into());
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut acc: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err("not an integer".into());
        }
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_sub(d as i64))
            .ok_or_else(|| "integer out of range".to_string())?;
    }
    if neg {
        Ok(acc)
    } else {
        acc.checked_neg().ok_or_else(|| "integer out of range".into())
    }
}

#[inline]
pub fn parse_i32(s: &[u8]) -> ParseResult<i32> {
    i32::try_from(parse_i64(s)?).map_err(|_| "integer out of range for int4".into())
}

#[inline]
pub fn parse_i16(s: &[u8]) -> ParseResult<i16> {
    i16::try_from(parse_i64(s)?).map_err(|_| "integer out of range for int2".into())
}

/// `1.5`, `1e+300`, `NaN`, `Infinity`, `-Infinity`.
#[inline]
pub fn parse_f64(s: &[u8]) -> ParseResult<f64> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .ok_or_else(|| "not a float8".into())
}

#[inline]
pub fn parse_f32(s: &[u8]) -> ParseResult<f32> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<f32>().ok())
        .ok_or_else(|| "not a float4".into())
}

// ---------------------------------------------------------------------------------------
// numeric

/// Most digits a Decimal256 holds.
const MAX_DECIMAL_DIGITS: usize = 76;

/// Splits a numeric's text into its sign and the digits of `value * 10^scale`, checking that
/// the value fits `numeric(precision, scale)` exactly.
fn decimal_digits(s: &[u8], precision: u8, scale: i8, out: &mut [u8; MAX_DECIMAL_DIGITS]) -> ParseResult<(bool, usize)> {
    let target = || format!("numeric({precision},{scale})");
    match s {
        b"NaN" | b"Infinity" | b"-Infinity" | b"+Infinity" => {
            return Err(format!(
                "{} is a valid PostgreSQL numeric but {} cannot hold it in Arrow (Decimal has no NaN or infinity); \
                 declare the column as unconstrained numeric to keep such values as text",
                String::from_utf8_lossy(s),
                target()
            ))
        }
        _ => {}
    }
    let (neg, rest) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match rest.iter().position(|&c| c == b'.') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return Err("not a numeric".into());
    }
    let scale = scale.max(0) as usize;
    // Digits beyond the scale must be zeros, otherwise the value would be rounded.
    if frac.len() > scale && frac[scale..].iter().any(|&c| c != b'0') {
        return Err(format!("has more fractional digits than {} holds", target()));
    }
    let int = &int[int.iter().position(|&c| c != b'0').unwrap_or(int.len())..];
    let n = int.len() + scale;
    if n > precision as usize || n > MAX_DECIMAL_DIGITS {
        return Err(format!("has more digits than {} holds", target()));
    }
    out[..int.len()].copy_from_slice(int);
    let f = frac.len().min(scale);
    out[int.len()..int.len() + f].copy_from_slice(&frac[..f]);
    out[int.len() + f..n].fill(b'0');
    Ok((neg, n))
}

/// A `numeric(precision ≤ 38, scale)` text value as Decimal128's unscaled integer.
pub fn parse_decimal128(s: &[u8], precision: u8, scale: i8) -> ParseResult<i128> {
    let mut buf = [0u8; MAX_DECIMAL_DIGITS];
    let (neg, n) = decimal_digits(s, precision.min(38), scale, &mut buf)?;
    let mut v: i128 = 0;
    for &c in &buf[..n] {
        v = v * 10 + (c - b'0') as i128;
    }
    Ok(if neg { -v } else { v })
}

/// A `numeric(precision ≤ 76, scale)` text value as Decimal256's unscaled integer.
pub fn parse_decimal256(s: &[u8], precision: u8, scale: i8) -> ParseResult<i256> {
    let mut buf = [0u8; MAX_DECIMAL_DIGITS];
    let (neg, n) = decimal_digits(s, precision, scale, &mut buf)?;
    let mut v = i256::ZERO;
    for chunk in buf[..n].chunks(18) {
        let mut c: u64 = 0;
        for &d in chunk {
            c = c * 10 + (d - b'0') as u64;
        }
        let mul = i256::from_i128(10i128.pow(chunk.len() as u32));
        // At most 76 digits: cannot overflow i256 (max ≈ 5.7e76).
        v = v.wrapping_mul(mul).wrapping_add(i256::from_i128(c as i128));
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

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
/// Date32 days since 1970-01-01. See [`PgType`](super::PgType) for the infinity rule.
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
/// microseconds since 1970-01-01 (UTC for timestamptz). See [`PgType`](super::PgType) for
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
// bytea, uuid

#[inline]
fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes a bytea text value (`\x0a0b`, or the legacy escape format) appending to `out`.
pub fn decode_bytea(s: &[u8], out: &mut Vec<u8>) -> ParseResult<()> {
    if let Some(hex) = s.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return Err("bytea hex has an odd number of digits".into());
        }
        out.reserve(hex.len() / 2);
        for pair in hex.chunks_exact(2) {
            match (hex_val(pair[0]), hex_val(pair[1])) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err("bytea hex has a non-hex digit".into()),
            }
        }
        return Ok(());
    }
    // Escape format: `\\` is a backslash, `\ooo` an octal byte, anything else itself.
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
        } else if s.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = s.get(i + 1..i + 4).ok_or("bad bytea escape")?;
            if !oct.iter().all(|c| (b'0'..=b'7').contains(c)) || oct[0] > b'3' {
                return Err("bad bytea escape".into());
            }
            out.push((oct[0] - b'0') << 6 | (oct[1] - b'0') << 3 | (oct[2] - b'0'));
            i += 4;
        }
    }
    Ok(())
}

/// A uuid (`a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`, hyphens optional) as its 16 bytes.
pub fn parse_uuid(s: &[u8]) -> ParseResult<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'-' && matches!(i, 8 | 13 | 18 | 23) && s.len() == 36 {
            i += 1;
            continue;
        }
        if n == 16 || i + 1 >= s.len() {
            return Err("not a uuid".into());
        }
        match (hex_val(s[i]), hex_val(s[i + 1])) {
            (Some(h), Some(l)) => out[n] = h << 4 | l,
            _ => return Err("not a uuid".into()),
        }
        n += 1;
        i += 2;
    }
    if n != 16 {
        return Err("not a uuid".into());
    }
    Ok(out)
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
    use std::fmt::Write;
    let year = if y <= 0 { 1 - y } else { y };
    let _ = write!(s, "{year:04}-{m:02}-{d:02}");
}

/// `HH:MM:SS` plus the fraction without trailing zeros, from microseconds.
fn push_time(s: &mut String, us: i64) {
    use std::fmt::Write;
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let _ = write!(s, "{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
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

/// An unscaled decimal integer (as text, sign included) with `scale`: `123.4500`.
pub fn format_decimal(unscaled: &str, scale: i8) -> String {
    let (neg, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    let mut out = String::with_capacity(digits.len() + 3);
    if neg {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(digits);
        if digits != "0" {
            out.extend(std::iter::repeat_n('0', (-scale) as usize));
        }
        return out;
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        out.push('0');
        out.push('.');
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(digits);
    } else {
        let (i, f) = digits.split_at(digits.len() - scale);
        out.push_str(i);
        out.push('.');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_i64(b"0"), Ok(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Ok(i64::MAX));
        assert!(parse_i64(b"9223372036854775808").is_err());
        assert!(parse_i64(b"").is_err());
        assert!(parse_i64(b"-").is_err());
        assert!(parse_i64(b"12a").is_err());
        assert!(parse_i64(b" 1").is_err());
        assert_eq!(parse_i32(b"-2147483648"), Ok(i32::MIN));
        assert!(parse_i32(b"2147483648").is_err());
        assert_eq!(parse_i16(b"-32768"), Ok(i16::MIN));
        assert!(parse_i16(b"32768").is_err());
        assert_eq!(parse_i64(b"4294967295"), Ok(4_294_967_295)); // oid max
    }

    #[test]
    fn floats_keep_nan_and_infinity() {
        assert_eq!(parse_f64(b"1.5"), Ok(1.5));
        assert_eq!(parse_f64(b"1e+300"), Ok(1e300));
        assert_eq!(parse_f64(b"-1.2345678901234567e-300"), Ok(-1.2345678901234567e-300));
        assert!(parse_f64(b"NaN").unwrap().is_nan());
        assert_eq!(parse_f64(b"Infinity"), Ok(f64::INFINITY));
        assert_eq!(parse_f64(b"-Infinity"), Ok(f64::NEG_INFINITY));
        assert_eq!(parse_f32(b"2.20000005"), Ok(2.2f32));
        assert_eq!(parse_f32(b"3.4028235e+38"), Ok(f32::MAX));
        assert_eq!(parse_f32(b"-Infinity"), Ok(f32::NEG_INFINITY));
        assert!(parse_f64(b"abc").is_err());
    }

    #[test]
    fn bools() {
        assert_eq!(parse_bool(b"t"), Ok(true));
        assert_eq!(parse_bool(b"f"), Ok(false));
        assert!(parse_bool(b"x").is_err());
    }

    #[test]
    fn decimal128() {
        assert_eq!(parse_decimal128(b"123.4500", 10, 4), Ok(1_234_500));
        assert_eq!(parse_decimal128(b"-0.0100", 10, 4), Ok(-100));
        assert_eq!(parse_decimal128(b"7", 10, 2), Ok(700));
        assert_eq!(parse_decimal128(b"0.5", 10, 2), Ok(50));
        assert_eq!(parse_decimal128(b"12.3400", 10, 2), Ok(1234));
        assert_eq!(parse_decimal128(b"99999999.99", 10, 2), Ok(9_999_999_999));
        assert!(parse_decimal128(b"100000000.00", 10, 2).is_err());
        assert!(parse_decimal128(b"1.234", 10, 2).is_err());
        assert_eq!(
            parse_decimal128(b"99999999999999999999999999999999999999", 38, 0),
            Ok(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert!(parse_decimal128(b"1.2.3", 10, 2).is_err());
        assert!(parse_decimal128(b"", 10, 2).is_err());
        assert!(parse_decimal128(b"1e5", 10, 2).is_err());
    }

    #[test]
    fn decimal_rejects_nan_and_infinity_with_a_reason() {
        for v in ["NaN", "Infinity", "-Infinity"] {
            let e = parse_decimal128(v.as_bytes(), 10, 2).unwrap_err();
            assert!(e.contains(v), "{e}");
            assert!(e.contains("numeric(10,2) cannot hold it in Arrow"), "{e}");
            let e = parse_decimal256(v.as_bytes(), 50, 2).unwrap_err();
            assert!(e.contains("numeric(50,2)"), "{e}");
        }
    }

    #[test]
    fn decimal256_with_50_digits() {
        let text = "12345678901234567890123456789012345678901234567.890";
        let v = parse_decimal256(text.as_bytes(), 50, 3).unwrap();
        assert_eq!(v.to_string(), "12345678901234567890123456789012345678901234567890");
        let v = parse_decimal256(format!("-{text}").as_bytes(), 50, 3).unwrap();
        assert_eq!(v.to_string(), "-12345678901234567890123456789012345678901234567890");
        assert_eq!(format_decimal(&v.to_string(), 3), format!("-{text}"));
        let max76 = "9".repeat(76);
        assert_eq!(parse_decimal256(max76.as_bytes(), 76, 0).unwrap().to_string(), max76);
        assert!(parse_decimal256(format!("1{}", "0".repeat(50)).as_bytes(), 50, 0).is_err());
    }

    #[test]
    fn decimal_formatting() {
        assert_eq!(format_decimal("1234500", 4), "123.4500");
        assert_eq!(format_decimal("-100", 4), "-0.0100");
        assert_eq!(format_decimal("0", 2), "0.00");
        assert_eq!(format_decimal("42", 0), "42");
    }

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [-2_440_588i64, -719_468, -1, 0, 1, 11_017, 2_145_042_905] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date(b"1970-01-01"), Ok(0));
        assert_eq!(parse_date(b"2024-01-31"), Ok(19_753));
        assert_eq!(parse_date(b"2024-02-29"), Ok(19_782));
        assert!(parse_date(b"2023-02-29").is_err());
        assert!(parse_date(b"2024-13-01").is_err());
        assert!(parse_date(b"2024-1-01").is_err());
        assert!(parse_date(b"2024-01-01 ").is_err());
        // 1 BC is astronomical year 0, a leap year.
        assert_eq!(parse_date(b"0001-12-31 BC"), Ok(days_from_civil(0, 12, 31) as i32));
        assert_eq!(parse_date(b"0001-02-29 BC"), Ok(days_from_civil(0, 2, 29) as i32));
        assert_eq!(parse_date(b"0001-01-01"), Ok(days_from_civil(0, 12, 31) as i32 + 1));
        // 44 BC is year -43.
        assert_eq!(parse_date(b"0044-02-01 BC"), Ok(days_from_civil(-43, 2, 1) as i32));
        assert_eq!(parse_date(b"0044-02-01 BC"), Ok(-735_202));
        // PostgreSQL's first date, Julian day 0.
        assert_eq!(parse_date(b"4714-11-24 BC"), Ok(-2_440_588));
        // Beyond chrono's range, and PostgreSQL's last date.
        assert_eq!(parse_date(b"300000-01-01"), Ok(108_853_222));
        assert_eq!(parse_date(b"5874897-12-31"), Ok(2_145_042_905));
        assert_eq!(parse_date(b"infinity"), Ok(i32::MAX));
        assert_eq!(parse_date(b"-infinity"), Ok(-i32::MAX));
        assert!(parse_date(b"Infinity").is_err());
        assert!(parse_date(b"0000-01-01").is_err());
        for s in ["2024-01-31", "0044-02-01 BC", "300000-01-01", "infinity", "-infinity", "0001-01-01", "4714-11-24 BC"] {
            assert_eq!(format_date(parse_date(s.as_bytes()).unwrap()), s);
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time(b"00:00:00"), Ok(0));
        assert_eq!(parse_time(b"12:34:56.789"), Ok(45_296_789_000));
        assert_eq!(parse_time(b"12:34:56.000001"), Ok(45_296_000_001));
        assert_eq!(parse_time(b"23:59:59.999999"), Ok(86_399_999_999));
        assert_eq!(parse_time(b"24:00:00"), Ok(86_400_000_000));
        assert!(parse_time(b"24:00:00.000001").is_err());
        assert!(parse_time(b"12:60:00").is_err());
        assert!(parse_time(b"12:34:56.1234567").is_err());
        assert!(parse_time(b"12:34").is_err());
        assert!(parse_time(b"12:34:56+02").is_err());
        for s in ["12:34:56.789", "24:00:00", "00:00:00", "23:59:59.999999"] {
            assert_eq!(format_time(parse_time(s.as_bytes()).unwrap()), s);
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp(b"1970-01-01 00:00:00", false), Ok(0));
        assert_eq!(parse_timestamp(b"2024-01-31 12:34:56.123456", false), Ok(1_706_704_496_123_456));
        assert_eq!(parse_timestamp(b"1969-12-31 23:59:59.5", false), Ok(-500_000));
        assert_eq!(
            parse_timestamp(b"0044-03-15 12:00:00 BC", false),
            Ok(days_from_civil(-43, 3, 15) * MICROS_PER_DAY + 43_200_000_000)
        );
        assert_eq!(
            parse_timestamp(b"294000-01-01 00:00:00", false),
            Ok(106_661_767 * MICROS_PER_DAY)
        );
        assert_eq!(parse_timestamp(b"infinity", false), Ok(i64::MAX));
        assert_eq!(parse_timestamp(b"-infinity", true), Ok(-i64::MAX));
        // PostgreSQL's first timestamp.
        assert_eq!(parse_timestamp(b"4714-11-24 00:00:00 BC", false), Ok(-2_440_588 * MICROS_PER_DAY));
        // The last ~30 years PostgreSQL allows overflow i64 µs since 1970: an error, not a clamp.
        assert!(parse_timestamp(b"294276-12-31 23:59:59.999999", false).is_err());
        assert!(parse_timestamp(b"294246-12-31 23:59:59.999999", false).is_ok());
        // without tz, an offset is malformed
        assert!(parse_timestamp(b"2024-01-31 12:34:56+00", false).is_err());
        assert!(parse_timestamp(b"2024-01-31T12:34:56", false).is_err());
        for s in ["2024-01-31 12:34:56.123456", "0044-03-15 12:00:00 BC", "294000-01-01 00:00:00", "infinity", "-infinity"] {
            assert_eq!(format_timestamp(parse_timestamp(s.as_bytes(), false).unwrap(), false), s);
        }
    }

    #[test]
    fn timestamptz_offsets() {
        let utc = parse_timestamp(b"2024-01-31 12:34:56.123456+00", true).unwrap();
        assert_eq!(utc, 1_706_704_496_123_456);
        assert_eq!(parse_timestamp(b"2024-01-31 18:04:56.123456+05:30", true), Ok(utc));
        assert_eq!(parse_timestamp(b"2024-01-31 04:34:56.123456-08", true), Ok(utc));
        assert_eq!(parse_timestamp(b"2024-01-31 18:05:11.123456+05:30:15", true), Ok(utc));
        assert_eq!(
            parse_timestamp(b"0044-03-15 12:00:00+00 BC", true),
            parse_timestamp(b"0044-03-15 12:00:00 BC", false)
        );
        // LMT offsets of old dates have seconds.
        assert_eq!(
            parse_timestamp(b"1800-01-01 00:53:28+00:53:28", true),
            parse_timestamp(b"1800-01-01 00:00:00", false)
        );
        assert!(parse_timestamp(b"2024-01-31 12:34:56", true).is_err());
        assert!(parse_timestamp(b"2024-01-31 12:34:56+5", true).is_err());
        assert_eq!(format_timestamp(utc, true), "2024-01-31 12:34:56.123456+00");
    }

    #[test]
    fn bytea() {
        let mut out = Vec::new();
        decode_bytea(b"\\x0a0bFF", &mut out).unwrap();
        assert_eq!(out, [0x0a, 0x0b, 0xff]);
        out.clear();
        decode_bytea(b"\\x", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(decode_bytea(b"\\x0", &mut out).is_err());
        assert!(decode_bytea(b"\\x0g", &mut out).is_err());
        out.clear();
        decode_bytea(b"ab\\\\c\\001\\377", &mut out).unwrap();
        assert_eq!(out, b"ab\\c\x01\xff");
        assert!(decode_bytea(b"\\9", &mut out).is_err());
    }

    #[test]
    fn uuids() {
        let u = parse_uuid(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        assert_eq!(u, [0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11]);
        assert_eq!(parse_uuid(b"A0EEBC999C0B4EF8BB6D6BB9BD380A11"), Ok(u));
        assert!(parse_uuid(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1").is_err());
        assert!(parse_uuid(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111").is_err());
        assert!(parse_uuid(b"a0eebc99x9c0b-4ef8-bb6d-6bb9bd380a11").is_err());
        assert!(parse_uuid(b"").is_err());
    }
}
