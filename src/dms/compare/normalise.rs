//! One representation per value, whoever wrote it. DMS and pgcdc write the same source value
//! differently: DMS's Parquet has `money` as DECIMAL(38,4), uuid/json as strings, timestamps
//! in milliseconds (`ParquetTimestampInMillisecond`) and booleans as booleans, its CSV has
//! floats as `+5.0656000000000000e+05`, booleans as `t`/`true`/`1`, timestamps without an
//! offset; pgcdc's native files keep PostgreSQL's types. Both sides are first rendered as text
//! ([`crate::batch::cell_to_string`] for Parquet, the field for CSV), then [`normalise`]d by
//! the *source* column's type, so equal values compare equal as strings.
//!
//! [`likely_reason`] explains a remaining difference where DMS is known to lose information.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use crate::model::{ColumnSchema, PgType};

const MONEY_OID: u32 = 790;

/// How a column's values are compared, from the source column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Float4,
    Float8,
    /// numeric (any), money: exact decimal text.
    Decimal,
    Timestamp,
    Date,
    Time,
    Bytea,
    Json,
    Uuid,
    /// A one-dimensional array (its element delimiter): PostgreSQL's text form `{a,b}` (DMS)
    /// and a JSON list `["a","b"]` (pgcdc) both become a JSON list of element strings.
    Array(u8),
    /// Compared as written.
    Text,
}

impl Kind {
    pub fn of(column: &ColumnSchema) -> Kind {
        match &column.pg_type {
            PgType::Bool => Kind::Bool,
            PgType::Int2 | PgType::Int4 | PgType::Int8 => Kind::Int,
            PgType::Float4 => Kind::Float4,
            PgType::Float8 => Kind::Float8,
            PgType::Numeric { .. } | PgType::NumericText => Kind::Decimal,
            PgType::Other(_) if column.type_oid == MONEY_OID => Kind::Decimal,
            PgType::Timestamp | PgType::Timestamptz => Kind::Timestamp,
            PgType::Date => Kind::Date,
            PgType::Time => Kind::Time,
            PgType::Bytea => Kind::Bytea,
            PgType::Json => Kind::Json,
            PgType::Uuid => Kind::Uuid,
            PgType::Array { delimiter, .. } => Kind::Array(*delimiter),
            _ => Kind::Text,
        }
    }

    /// Whether a value of this kind can be cut by DMS's LOB limit.
    fn is_lob(self) -> bool {
        matches!(self, Kind::Text | Kind::Json | Kind::Bytea)
    }
}

/// The comparison form of `value` in a column of `kind`. `millis`: the column is compared at
/// millisecond precision (DMS wrote it in milliseconds). A value that does not parse as its
/// kind is kept as it is (and then differs, visibly).
pub fn normalise(kind: Kind, millis: bool, value: Option<String>) -> Option<String> {
    let v = value?;
    let t = v.trim();
    let out = match kind {
        Kind::Bool => match t.to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "y" | "yes" => Some("true".to_string()),
            "f" | "false" | "0" | "n" | "no" => Some("false".to_string()),
            _ => None,
        },
        Kind::Int => t
            .trim_start_matches('+')
            .parse::<i64>()
            .ok()
            .map(|i| i.to_string()),
        Kind::Float4 => parse_float(t).map(|f| (f as f32).to_string()),
        Kind::Float8 => parse_float(t).map(|f| f.to_string()),
        Kind::Decimal => decimal(t),
        Kind::Timestamp => {
            timestamp_us(t).map(|us| format_us(if millis { us - us.rem_euclid(1000) } else { us }))
        }
        Kind::Date => NaiveDate::parse_from_str(t.get(..10).unwrap_or(t), "%Y-%m-%d")
            .ok()
            .map(|d| d.to_string()),
        Kind::Time => NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
            .ok()
            .map(|x| x.format("%H:%M:%S%.6f").to_string()),
        Kind::Bytea => Some(t.strip_prefix("\\x").unwrap_or(t).to_ascii_lowercase()),
        Kind::Json => serde_json::from_str::<serde_json::Value>(t)
            .ok()
            .map(|j| j.to_string()),
        Kind::Uuid => Some(t.to_ascii_lowercase()),
        Kind::Array(delimiter) => array_elements(t, delimiter).map(|e| serde_json::Value::from(e).to_string()),
        Kind::Text => return Some(v),
    };
    Some(out.unwrap_or(v))
}

/// The elements of an array value as strings (`None` for NULL), from PostgreSQL's text form
/// or a JSON list; `None` when it is neither.
fn array_elements(t: &str, delimiter: u8) -> Option<Vec<Option<String>>> {
    if t.starts_with('{') {
        return crate::batch::array::split_array(t, delimiter).ok();
    }
    let serde_json::Value::Array(items) = serde_json::from_str(t).ok()? else { return None };
    Some(
        items
            .into_iter()
            .map(|i| match i {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s),
                other => Some(other.to_string()),
            })
            .collect(),
    )
}

fn parse_float(t: &str) -> Option<f64> {
    t.trim_start_matches('+').parse::<f64>().ok()
}

/// Plain decimal text without `+`, currency sign, grouping, or trailing fraction zeros:
/// `+00012.3400` → `12.34`, `-$1,234.50` → `-1234.5`, `-0.00` → `0`. Exponents are expanded.
pub fn decimal(t: &str) -> Option<String> {
    let neg = t.starts_with('-') || (t.starts_with('(') && t.ends_with(')'));
    let body: String = t
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    let body = body.trim_start_matches(['-', '+']);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exp as i64;
    let (int, frac) = if point <= 0 {
        (
            String::new(),
            format!("{}{digits}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_string(),
            digits[point as usize..].to_string(),
        )
    };
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.is_empty();
    let mut s = String::new();
    if neg && !zero {
        s.push('-');
    }
    s.push_str(int);
    if !frac.is_empty() {
        s.push('.');
        s.push_str(frac);
    }
    Some(s)
}

/// Microseconds since the epoch (UTC) of `2024-01-31 12:34:56[.ffffff][+00[:00]|Z]`, with `T`
/// or a space; an offset is applied, a time without one is taken as UTC (DMS writes UTC).
fn timestamp_us(t: &str) -> Option<i64> {
    let t = t.trim_end_matches('Z').trim_end_matches(" UTC");
    // Split off an offset: `+hh`, `+hh:mm`, `-hh[:mm]` after the time part.
    let (dt, offset_s) = match t.rfind(['+', '-']) {
        Some(i) if i > 10 => {
            let off = &t[i + 1..];
            let (h, m) = off.split_once(':').unwrap_or((off, "0"));
            let secs = h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60;
            (&t[..i], if &t[i..=i] == "-" { -secs } else { secs })
        }
        _ => (t, 0),
    };
    let dt = dt.replacen('T', " ", 1);
    let naive = NaiveDateTime::parse_from_str(&dt, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| {
            NaiveDate::parse_from_str(&dt, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .ok()?;
    Some(naive.and_utc().timestamp_micros() - offset_s * 1_000_000)
}

fn format_us(us: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(d) => d.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        None => us.to_string(),
    }
}

/// Why DMS's value `dms` may differ from pgcdc's `ours` (both normalised), where DMS is known
/// to lose information; `None` when no known cause fits.
pub fn likely_reason(kind: Kind, dms: Option<&str>, ours: Option<&str>) -> Option<String> {
    let (d, o) = (dms?, ours?);
    if kind.is_lob() && o.len() > d.len() && o.starts_with(d) {
        return Some(format!(
            "TOAST/LOB value truncated by DMS: its value is the first {} bytes of {} (limited LOB mode cuts at LobMaxSize)",
            d.len(),
            o.len()
        ));
    }
    match kind {
        Kind::Float4 | Kind::Float8 => {
            let (a, b) = (d.parse::<f64>().ok()?, o.parse::<f64>().ok()?);
            let tolerance = if kind == Kind::Float4 { 1e-6 } else { 1e-12 };
            ((a - b).abs() <= tolerance * a.abs().max(b.abs()))
                .then(|| "DMS rounds floating-point values (text with fewer digits)".to_string())
        }
        Kind::Decimal => {
            let scale = d.split_once('.').map_or(0, |(_, f)| f.len());
            let ours_scale = o.split_once('.').map_or(0, |(_, f)| f.len());
            (ours_scale > scale && round_to(o, scale).as_deref() == Some(d)).then(|| {
                format!("DMS rounds this numeric to {scale} decimal places (unconstrained numeric becomes NUMERIC(28,6))")
            })
        }
        Kind::Timestamp => {
            let (a, b) = (timestamp_us(d)?, timestamp_us(o)?);
            (a == b - b.rem_euclid(1000))
                .then(|| "DMS keeps timestamps to the millisecond".to_string())
        }
        _ => None,
    }
}

/// `v` (plain decimal text) rounded half away from zero to `scale` places, normalised.
fn round_to(v: &str, scale: usize) -> Option<String> {
    let (neg, body) = v.strip_prefix('-').map_or((false, v), |b| (true, b));
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut digits: Vec<u8> = format!("{int}{}", &frac[..scale.min(frac.len())]).into_bytes();
    if frac.as_bytes().get(scale).is_some_and(|c| *c >= b'5') {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let s = String::from_utf8(digits).ok()?;
    let (i, f) = s.split_at(s.len() - scale.min(frac.len()));
    decimal(&format!("{}{i}.{f}", if neg { "-" } else { "" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(kind: Kind, v: &str) -> String {
        normalise(kind, false, Some(v.to_string())).unwrap()
    }

    #[test]
    fn arrays_meet_in_text_and_json_form() {
        let a = |v: &str| normalise(Kind::Array(b','), false, Some(v.to_string())).unwrap();
        assert_eq!(a("{a,b}"), a("[\"a\",\"b\"]"));
        assert_eq!(a("{1,NULL,3}"), a("[1,null,3]"));
        assert_eq!(a("{\"x,y\",\"\"}"), a("[\"x,y\",\"\"]"));
        assert_ne!(a("{a,b}"), a("[\"a\"]"));
    }

    #[test]
    fn representations_meet() {
        assert_eq!(
            n(Kind::Float8, "+5.0656000000000000e+05"),
            n(Kind::Float8, "506560")
        );
        assert_eq!(
            n(Kind::Float4, "0.42463749647140503"),
            n(Kind::Float4, "0.4246375")
        );
        assert_eq!(
            n(Kind::Decimal, "47632969758.5400"),
            n(Kind::Decimal, "$47,632,969,758.54")
        );
        assert_eq!(n(Kind::Decimal, "-$1.50"), "-1.5");
        assert_eq!(n(Kind::Decimal, "+1.2e3"), "1200");
        assert_eq!(n(Kind::Decimal, "-0.00"), "0");
        assert_eq!(n(Kind::Bool, "t"), n(Kind::Bool, "true"));
        assert_eq!(n(Kind::Bool, "0"), "false");
        assert_eq!(
            n(Kind::Timestamp, "2021-10-31 15:34:12.458+00"),
            n(Kind::Timestamp, "2021-10-31T15:34:12.458000")
        );
        assert_eq!(
            n(Kind::Timestamp, "2024-01-01 02:00:00+02:00"),
            n(Kind::Timestamp, "2024-01-01 00:00:00")
        );
        assert_eq!(
            normalise(
                Kind::Timestamp,
                true,
                Some("2024-01-01 00:00:00.123456".into())
            )
            .unwrap(),
            "2024-01-01 00:00:00.123000"
        );
        assert_eq!(n(Kind::Json, "{\"a\": 1}"), n(Kind::Json, "{\"a\":1}"));
        assert_eq!(n(Kind::Bytea, "\\xABcd"), "abcd");
        assert_eq!(n(Kind::Date, "1987-06-17 00:00:00"), "1987-06-17");
        assert_eq!(normalise(Kind::Int, false, None), None);
        assert_eq!(n(Kind::Int, "not a number"), "not a number");
    }

    #[test]
    fn known_causes_are_named() {
        let r = likely_reason(Kind::Text, Some("abc"), Some("abcdef")).unwrap();
        assert!(r.contains("truncated"), "{r}");
        assert!(
            likely_reason(Kind::Decimal, Some("1.123457"), Some("1.1234567"))
                .unwrap()
                .contains("6 decimal places")
        );
        assert!(likely_reason(Kind::Float8, Some("0.1"), Some("0.10000000000000002")).is_some());
        assert!(likely_reason(
            Kind::Timestamp,
            Some("2024-01-01 00:00:00.123000"),
            Some("2024-01-01 00:00:00.123456")
        )
        .is_some());
        assert!(likely_reason(Kind::Text, Some("x"), Some("y")).is_none());
        assert!(likely_reason(Kind::Text, None, Some("y")).is_none());
    }
}
