//! Parsers of PostgreSQL text output, in the session settings pgcdc uses (DateStyle=ISO,
//! TimeZone=UTC, IntervalStyle=postgres, extra_float_digits=3, bytea_output=hex, UTF8).
//!
//! All parsers work on `&[u8]` and allocate nothing on success; the error is a reason
//! (without the value, which the caller adds). The reverse formatters used by
//! [`cell_to_string`](super::cell_to_string) live here too, so both directions share one
//! calendar.

use arrow_buffer::i256;

mod datetime;
#[cfg(test)]
mod tests;

pub use datetime::{civil_from_days, days_from_civil, format_date, format_time, format_timestamp, parse_date, parse_time, parse_timestamp};

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
// bytea, uuid

/// The value of each hex digit (either case); 0xff for every other byte. A table rather
/// than a match: random digits make the branches unpredictable (10x slower on 100 MiB).
const HEX_DIGITS: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 16 {
        let d = b"0123456789abcdef"[i];
        t[d as usize] = i as u8;
        t[d.to_ascii_uppercase() as usize] = i as u8;
        i += 1;
    }
    t
};

#[inline]
fn hex_val(c: u8) -> Option<u8> {
    let v = HEX_DIGITS[c as usize];
    (v != 0xff).then_some(v)
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

/// Decodes a bytea in hex text form (`\\x`, then two hex digits of either case per byte)
/// in place: `buf` becomes the bytes and its allocation is shrunk to them (for a large
/// buffer glibc's realloc hands the tail back to the system without copying), so the text
/// and the bytes are never in memory together. On error `buf` is unchanged (every digit is
/// checked before the first byte is written). Called by the CDC pipeline for huge values
/// (`crate::pipeline::huge_bytea`); [`decode_bytea`] is the general decoder.
pub fn decode_bytea_hex_in_place(buf: &mut Vec<u8>) -> ParseResult<()> {
    let hex = buf.strip_prefix(b"\\x").ok_or("bytea is not in hex format (\\x...)")?;
    if hex.len() % 2 != 0 {
        return Err("bytea hex has an odd number of digits".into());
    }
    // All digits at once (no branch per byte), the position only for the error.
    if hex.iter().fold(0, |acc, &c| acc | HEX_DIGITS[c as usize]) == 0xff {
        let at = hex.iter().position(|&c| hex_val(c).is_none()).unwrap_or(0);
        return Err(format!("bytea hex has a non-hex digit at offset {}", at + 2));
    }
    let n = hex.len() / 2;
    // Byte i is read from 2 + 2i and 3 + 2i, both past i: nothing is overwritten unread.
    for i in 0..n {
        buf[i] = HEX_DIGITS[buf[2 + 2 * i] as usize] << 4 | HEX_DIGITS[buf[3 + 2 * i] as usize];
    }
    buf.truncate(n);
    buf.shrink_to_fit();
    Ok(())
}

/// A uuid (`a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`, hyphens optional) as its 16 bytes.
pub fn parse_uuid(s: &[u8]) -> ParseResult<[u8; 16]> {
    if let Some(u) = canonical_uuid(s) {
        return Ok(u);
    }
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

/// The canonical form PostgreSQL prints (`8-4-4-4-12` hex digits), branch-free; `None` for
/// anything else, which [`parse_uuid`] then reads (or refuses) the general way.
fn canonical_uuid(s: &[u8]) -> Option<[u8; 16]> {
    /// Where each byte's two digits start.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    if s.len() != 36 || s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
        return None;
    }
    let (mut out, mut bad) = ([0u8; 16], 0u8);
    for (o, &p) in out.iter_mut().zip(AT.iter()) {
        let (h, l) = (HEX_DIGITS[s[p] as usize], HEX_DIGITS[s[p + 1] as usize]);
        bad |= h | l;
        *o = h << 4 | l;
    }
    (bad & 0xF0 == 0).then_some(out)
}

// ---------------------------------------------------------------------------------------
// decimal formatting (the reverse direction)

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
