//! One Arrow cell of pgcdc's native layout (SPEC 5.4) as the JSON value DMS's Kinesis target
//! writes for a PostgreSQL source, and the same cell as the text of a partition key.
//!
//! | PostgreSQL (Arrow) | JSON | evidence |
//! |---|---|---|
//! | int2/int4/int8 | number | real record (`"id": 46`) |
//! | text, varchar, bpchar, enum, … (Utf8) | string | real record |
//! | json, jsonb (Utf8, `arrow.json`) | string holding the JSON text, never a nested object | real record (`"attributes": "{\"baz\": \"qux\"}"`) |
//! | bool | `true` / `false` | the reference task maps booleans as booleans (`MapBooleanAsBoolean`) |
//! | float4/float8 | number (shortest round-trip form, `1.5e+300`); `NaN`, `Infinity`, `-Infinity` as strings | chosen: JSON has no NaN |
//! | numeric(p,s) (Decimal128/256) | string, PostgreSQL's text with the scale's digits (`"12.50"`) | chosen: exact, a JSON number would lose digits in most consumers |
//! | numeric without typmod (Utf8) | string, exact text (`NaN`, `Infinity` kept) | chosen |
//! | date | `"2024-01-31"` (PostgreSQL's text: `0044-03-15 BC`, `infinity`) | chosen |
//! | time | `"12:34:56.789"`, `"24:00:00"` (PostgreSQL's text) | chosen |
//! | timestamp, timestamptz | `"2024-01-31T12:34:56.123456Z"` (UTC; fraction only when not zero, then six digits); `infinity`, BC years and years past 9999 as PostgreSQL's text | ISO form of DMS's date-times (metadata timestamps and DMS data samples); six digits chosen |
//! | uuid | `"0e6f…-…"` canonical lowercase | chosen (PostgreSQL's text) |
//! | bytea | `"0x48656C6C6F"`: upper-case hex with DMS's `0x` prefix, no prefix with `NoHexPrefix` | DMS `NoHexPrefix` documentation |
//! | arrays (List) | string, PostgreSQL's array literal `{1,2,NULL}`, `{"a b",c}` | chosen: DMS maps arrays to strings |
//! | interval, inet, timetz, money text, anything else (Utf8) | string, PostgreSQL's text | chosen |
//! | NULL | `null` | real records (deletes) |

use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};

use crate::batch::cell_to_string;
use crate::batch::text::{
    civil_from_days, format_date, format_decimal, format_time, format_timestamp, MICROS_PER_DAY,
    TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY,
};

/// Appends `s` as a JSON string (quoted and escaped).
pub(super) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends the JSON value of `array[row]` (`null` for a null cell). An Arrow type pgcdc's
/// layout never produces is written as a string of [`cell_to_string`], never dropped.
pub(super) fn push_json_value(
    out: &mut Vec<u8>,
    array: &dyn Array,
    row: usize,
    no_hex_prefix: bool,
) {
    if array.is_null(row) {
        out.extend_from_slice(b"null");
        return;
    }
    match array.data_type() {
        DataType::Boolean => {
            out.extend_from_slice(if array.as_boolean().value(row) {
                b"true"
            } else {
                b"false"
            });
        }
        DataType::Int16 => {
            let _ = write!(out, "{}", array.as_primitive::<Int16Type>().value(row));
        }
        DataType::Int32 => {
            let _ = write!(out, "{}", array.as_primitive::<Int32Type>().value(row));
        }
        DataType::Int64 => {
            let _ = write!(out, "{}", array.as_primitive::<Int64Type>().value(row));
        }
        DataType::Float32 => {
            let v = array.as_primitive::<Float32Type>().value(row);
            if v.is_finite() {
                // serde_json's shortest round-trip form of the f32 itself: `0.1`, `1e-7`.
                let _ = serde_json::to_writer(&mut *out, &v);
            } else {
                push_json_str(out, non_finite(v as f64));
            }
        }
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            if v.is_finite() {
                let _ = serde_json::to_writer(&mut *out, &v);
            } else {
                push_json_str(out, non_finite(v));
            }
        }
        DataType::Utf8 => push_json_str(out, array.as_string::<i32>().value(row)),
        DataType::Binary => push_json_str(
            out,
            &hex_bytes(array.as_binary::<i32>().value(row), no_hex_prefix),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => push_json_str(
            out,
            &iso_timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row)),
        ),
        _ => push_json_str(out, &text_of(array, row).unwrap_or_default()),
    }
}

/// The text of a cell inside a partition key: PostgreSQL's text form, except where the JSON
/// value is itself a string or a number (then exactly that string or number, so a key reads
/// as in `data`). `None` for null.
pub(super) fn key_text(array: &dyn Array, row: usize, no_hex_prefix: bool) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Boolean => (if array.as_boolean().value(row) {
            "true"
        } else {
            "false"
        })
        .to_string(),
        DataType::Binary => hex_bytes(array.as_binary::<i32>().value(row), no_hex_prefix),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            iso_timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        _ => text_of(array, row)?,
    })
}

/// PostgreSQL's text form of a non-null cell that is not a boolean, integer, float, Utf8,
/// binary or timestamp (those have their own JSON form): decimals, dates, times, uuids and
/// arrays.
fn text_of(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        &DataType::Decimal128(_, scale) => format_decimal(
            &array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_string(),
            scale,
        ),
        &DataType::Decimal256(_, scale) => format_decimal(
            &array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_string(),
            scale,
        ),
        DataType::Date32 => format_date(array.as_primitive::<Date32Type>().value(row)),
        DataType::Time64(TimeUnit::Microsecond) => {
            format_time(array.as_primitive::<Time64MicrosecondType>().value(row))
        }
        DataType::List(_) => pg_array_literal(array.as_list::<i32>().value(row).as_ref()),
        // Utf8, uuid (FixedSizeBinary(16)), and anything unexpected: the canonical string.
        _ => cell_to_string(array, row)?,
    })
}

fn non_finite(v: f64) -> &'static str {
    crate::batch::display::non_finite_text(v).unwrap_or("NaN")
}

/// Bytes as DMS writes LOB data: `0x` then upper-case hex (`NoHexPrefix` drops the `0x`).
pub(super) fn hex_bytes(b: &[u8], no_hex_prefix: bool) -> String {
    let hex = hex::encode_upper(b);
    if no_hex_prefix {
        hex
    } else {
        format!("0x{hex}")
    }
}

/// A Timestamp(µs) value as DMS's ISO form in UTC: `2024-01-31T12:34:56Z`, with `.ffffff`
/// when the fraction is not zero. `infinity`, `-infinity`, BC years and years past 9999,
/// which ISO 8601's four-digit years cannot say, keep PostgreSQL's text (`format_timestamp`).
pub(super) fn iso_timestamp(us: i64) -> String {
    if us == TIMESTAMP_INFINITY || us == TIMESTAMP_NEG_INFINITY {
        return format_timestamp(us, true);
    }
    let days = us.div_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    if !(1..=9999).contains(&y) {
        return format_timestamp(us, true);
    }
    let t = us.rem_euclid(MICROS_PER_DAY);
    let secs = t / 1_000_000;
    let frac = t % 1_000_000;
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        s.push_str(&format!(".{frac:06}"));
    }
    s.push('Z');
    s
}

/// DMS's metadata time form: always six fraction digits, `2024-07-29T00:58:17.974340Z`
/// (the real records' `timestamp` and `commit-timestamp`).
pub(super) fn metadata_timestamp(us: i64) -> String {
    let days = us.div_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let t = us.rem_euclid(MICROS_PER_DAY);
    let secs = t / 1_000_000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        t % 1_000_000
    )
}

/// A one-dimensional list as PostgreSQL's array literal: elements in their text form,
/// `NULL` for null, quoted (with `"` and `\` escaped) when empty, equal to `NULL` in any
/// case, or containing a brace, comma, quote, backslash or white space.
fn pg_array_literal(values: &dyn Array) -> String {
    let mut s = String::from("{");
    for i in 0..values.len() {
        if i > 0 {
            s.push(',');
        }
        let text = match values.data_type() {
            DataType::Boolean if !values.is_null(i) => Some(
                (if values.as_boolean().value(i) {
                    "t"
                } else {
                    "f"
                })
                .into(),
            ),
            DataType::Timestamp(TimeUnit::Microsecond, tz) if !values.is_null(i) => {
                Some(format_timestamp(
                    values.as_primitive::<TimestampMicrosecondType>().value(i),
                    tz.is_some(),
                ))
            }
            _ => text_of(values, i),
        };
        match text {
            None => s.push_str("NULL"),
            Some(t) => push_array_element(&mut s, &t),
        }
    }
    s.push('}');
    s
}

fn push_array_element(s: &mut String, t: &str) {
    let quote = t.is_empty()
        || t.eq_ignore_ascii_case("NULL")
        || t.chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if !quote {
        s.push_str(t);
        return;
    }
    s.push('"');
    for c in t.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
}
