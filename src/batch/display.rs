//! [`cell_to_string`]: one canonical string per Arrow cell, so that record batches of any
//! origin (our builders, Parquet files read back) can be compared value by value.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};

use super::text::{format_date, format_decimal, format_time, format_timestamp};

/// A canonical string for one cell; `None` for null.
///
/// Forms follow PostgreSQL's text output in pgcdc's session settings where there is one:
/// integers and decimals plain (`123.4500`, scale digits kept); floats shortest round-trip
/// with `NaN`, `Infinity`, `-Infinity`; booleans `t`/`f`; dates `2024-01-31`,
/// `0044-02-01 BC`, `infinity`; times `12:34:56.789`, `24:00:00`; timestamps
/// `2024-01-31 12:34:56.123456` (`+00` appended when the type has a time zone; the value is
/// a UTC instant); binary as `\x0a0b`; FixedSizeBinary(16) as a canonical lowercase uuid;
/// lists as `[1,2,null]`, where string and binary elements are JSON-quoted so that the string
/// `"null"` differs from a null element.
pub fn cell_to_string(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) || matches!(array.data_type(), DataType::Null) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Boolean => (if array.as_boolean().value(row) { "t" } else { "f" }).to_string(),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(row) as f64, |v| {
            (v as f32).to_string()
        }),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row), |v| v.to_string()),
        &DataType::Decimal128(_, scale) => {
            format_decimal(&array.as_primitive::<Decimal128Type>().value(row).to_string(), scale)
        }
        &DataType::Decimal256(_, scale) => {
            format_decimal(&array.as_primitive::<Decimal256Type>().value(row).to_string(), scale)
        }
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => array.as_string_view().value(row).to_string(),
        DataType::Binary => bytes(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => bytes(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => bytes(array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(16) => uuid(array.as_fixed_size_binary().value(row)),
        DataType::FixedSizeBinary(_) => bytes(array.as_fixed_size_binary().value(row)),
        DataType::Date32 => format_date(array.as_primitive::<Date32Type>().value(row)),
        DataType::Time32(TimeUnit::Second) => {
            format_time(array.as_primitive::<Time32SecondType>().value(row) as i64 * 1_000_000)
        }
        DataType::Time32(_) => format_time(array.as_primitive::<Time32MillisecondType>().value(row) as i64 * 1_000),
        DataType::Time64(TimeUnit::Microsecond) => format_time(array.as_primitive::<Time64MicrosecondType>().value(row)),
        DataType::Time64(_) => {
            let ns = array.as_primitive::<Time64NanosecondType>().value(row);
            with_nanos(format_time(ns / 1000), ns % 1000)
        }
        DataType::Timestamp(unit, tz) => {
            let tz = tz.is_some();
            match unit {
                TimeUnit::Second => {
                    let v = array.as_primitive::<TimestampSecondType>().value(row);
                    format_timestamp(v.saturating_mul(1_000_000), tz)
                }
                TimeUnit::Millisecond => {
                    let v = array.as_primitive::<TimestampMillisecondType>().value(row);
                    format_timestamp(v.saturating_mul(1_000), tz)
                }
                TimeUnit::Microsecond => format_timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row), tz),
                TimeUnit::Nanosecond => {
                    let v = array.as_primitive::<TimestampNanosecondType>().value(row);
                    with_nanos(format_timestamp(v.div_euclid(1000), tz), v.rem_euclid(1000))
                }
            }
        }
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref()),
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref()),
        DataType::FixedSizeList(..) => list(array.as_fixed_size_list().value(row).as_ref()),
        _ => format!("{:?}", array.slice(row, 1)),
    })
}

fn float(v: f64, plain: impl Fn(f64) -> String) -> String {
    non_finite_text(v).map_or_else(|| plain(v), str::to_string)
}

/// PostgreSQL's text for a float that is not finite (`NaN`, `Infinity`, `-Infinity`);
/// `None` for a finite one. Shared by every writer of float text.
pub fn non_finite_text(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("Infinity")
    } else if v == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

fn bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("\\x");
    push_hex(&mut s, b);
    s
}

/// Lower-case hex digits of `b` (as `hex::encode`), without an intermediate string.
fn push_hex(s: &mut String, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
}

fn uuid(b: &[u8]) -> String {
    if b.len() != 16 {
        return bytes(b);
    }
    let mut s = String::with_capacity(36);
    for (i, part) in [&b[0..4], &b[4..6], &b[6..8], &b[8..10], &b[10..16]].into_iter().enumerate() {
        if i > 0 {
            s.push('-');
        }
        push_hex(&mut s, part);
    }
    s
}

/// Sub-microsecond digits (not produced by pgcdc) appended so they are never lost.
fn with_nanos(s: String, ns: i64) -> String {
    if ns == 0 {
        s
    } else {
        format!("{s}+{ns}ns")
    }
}

fn list(values: &dyn Array) -> String {
    let quote = matches!(
        values.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Binary | DataType::LargeBinary
    );
    let mut s = String::from("[");
    for i in 0..values.len() {
        if i > 0 {
            s.push(',');
        }
        match cell_to_string(values, i) {
            None => s.push_str("null"),
            // JSON escapes only `"`, `\\` and control characters: others are quoted as they are.
            Some(v) if quote && !v.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) => {
                s.push('"');
                s.push_str(&v);
                s.push('"');
            }
            Some(v) if quote => s.push_str(&serde_json::Value::String(v).to_string()),
            Some(v) => s.push_str(&v),
        }
    }
    s.push(']');
    s
}
