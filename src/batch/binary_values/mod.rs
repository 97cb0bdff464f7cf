//! Values in PostgreSQL's binary send format, as `COPY … (FORMAT binary)` delivers them.
//!
//! Types with a cheap, exact binary form are read natively (see [`BinaryConv`]); for every
//! other column the full load's SELECT list turns the value into its text form
//! ([`copy_select_expr`]), so its binary COPY bytes are exactly what the type's output
//! function prints (what CDC receives), parsed by the text path. The decision is made by one
//! function, [`binary_conv`], which both the SELECT list and the builder use, so they cannot
//! disagree.
//!
//! Natively read values give exactly what the text path gives for the same value: the same
//! sentinels for `±infinity` dates and timestamps, the same Decimal for `numeric(p,s)`, the
//! same text (`numeric_out`'s, scale digits kept, `NaN`, `±Infinity`) for unconstrained
//! numeric, the same errors for values Arrow cannot hold.

mod arrays;
mod time_text;

pub(crate) use arrays::ArrayElem;
use super::columns::{parse, Cell, Scratch};
use super::text::{DATE_INFINITY, DATE_NEG_INFINITY, MICROS_PER_DAY, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY};
use super::types::Conv;
use crate::model::{ColumnSchema, PgType};
use arrow_buffer::i256;

/// Days between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds between 1970-01-01 and 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Type OID of jsonb (binary form: version byte 1, then the text).
const JSONB_OID: u32 = 3802;

/// How a column's binary COPY value is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryConv {
    /// The SELECT list converts the value to its text form: the bytes are that text.
    Text,
    Bool,
    I16,
    I32,
    I64,
    /// `oid`: unsigned 4 bytes, into the Int64 column.
    Oid,
    F32,
    F64,
    Uuid,
    Bytea,
    Date,
    Time,
    /// timestamp and timestamptz (both µs since 2000-01-01 UTC).
    Timestamp,
    /// text, varchar, bpchar, name, json: the binary form is the text (UTF-8 checked).
    Utf8,
    /// jsonb: version byte 1, then the text.
    Jsonb,
    Dec128 {
        precision: u8,
        scale: i8,
    },
    Dec256 {
        precision: u8,
        scale: i8,
    },
    /// numeric without a usable typmod: formatted exactly as `numeric_out`.
    NumericText,
    /// interval: printed as `interval_out` prints it (see [`time_text`]).
    Interval,
    /// timetz: printed as `timetz_out` prints it (see [`time_text`]).
    TimeTz,
    /// A builtin array of elements of type `elem_oid`, decoded as `elem` (see [`arrays`]).
    Array { elem_oid: u32, elem: ArrayElem },
}

/// The one decision of how a column travels through binary COPY.
///
/// A type's binary form is fixed by its [`PgType`] where that type comes from a single
/// PostgreSQL type (bool, int2, int4, float4, float8, uuid, bytea, date, time, timestamp,
/// timestamptz, numeric), so domains over them are read natively too (a domain sends its
/// base type's binary form). Where several PostgreSQL types share a [`PgType`] (`Int8`: int8
/// and oid; `Json`: json and jsonb; `Text`: text, varchar, bpchar, name and `"char"`, whose
/// binary form is a raw byte), the column's own builtin type OID decides, and a domain over
/// one of them is read as text. Builtin arrays of the element types [`arrays::array_elem`]
/// lists are read natively, and so are `interval` and `timetz` (printed by [`time_text`]);
/// everything else (other arrays, the rest of `Other`) is read as text.
pub(crate) fn binary_conv(column: &ColumnSchema) -> BinaryConv {
    use BinaryConv as B;
    match &column.pg_type {
        PgType::Bool => B::Bool,
        PgType::Int2 => B::I16,
        PgType::Int4 => B::I32,
        PgType::Int8 => match column.type_oid {
            20 => B::I64,
            26 => B::Oid,
            _ => B::Text,
        },
        PgType::Float4 => B::F32,
        PgType::Float8 => B::F64,
        PgType::Numeric { .. } | PgType::NumericText => match Conv::of(&column.pg_type) {
            Conv::Dec128 { precision, scale } => B::Dec128 { precision, scale },
            Conv::Dec256 { precision, scale } => B::Dec256 { precision, scale },
            _ => B::NumericText,
        },
        PgType::Text => match column.type_oid {
            25 | 1042 | 1043 | 19 => B::Utf8,
            _ => B::Text,
        },
        PgType::Json => match column.type_oid {
            114 => B::Utf8,
            JSONB_OID => B::Jsonb,
            _ => B::Text,
        },
        PgType::Uuid => B::Uuid,
        PgType::Bytea => B::Bytea,
        PgType::Date => B::Date,
        PgType::Time => B::Time,
        PgType::Timestamp | PgType::Timestamptz => B::Timestamp,
        PgType::Array { element, .. } => match arrays::array_elem(column.type_oid, element) {
            Some((elem_oid, elem)) => B::Array { elem_oid, elem },
            None => B::Text,
        },
        // interval and timetz (not domains over them: their OID differs) have no Arrow type
        // here; their binary form is printed as their output function prints it.
        PgType::Other(_) => match column.type_oid {
            1186 => B::Interval,
            1266 => B::TimeTz,
            _ => B::Text,
        },
    }
}

/// True when the column's binary COPY value is decoded natively (not sent as text).
pub fn copy_native(column: &ColumnSchema) -> bool {
    binary_conv(column) != BinaryConv::Text
}

/// The column as it appears in the full load's `COPY (SELECT …)`: `"name"` when it is read
/// natively, else `CASE WHEN num_nulls("name") = 0 THEN format('%s', "name") END`.
///
/// Not `"name"::text`: a cast to text runs the type's cast function where one exists, and
/// several differ from the output function that CDC's text values come from (`inet` shows
/// `/128`, `char(n)` and domains over it lose trailing blanks, `bool` says `true`).
/// `format('%s', …)` always prints with the output function; `num_nulls` keeps SQL NULL
/// apart from a composite whose fields are all NULL (for which `IS NULL` is true).
pub fn copy_select_expr(column: &ColumnSchema) -> String {
    copy_select_expr_from(column, &column.name, false)
}

/// [`copy_select_expr`] for an output column read from source column `source_name` (a
/// renamed column); `as_text` reads the source's text form whatever its type (a `text`
/// override of the rules, whose output column is `text` but whose source is not).
pub fn copy_select_expr_from(column: &ColumnSchema, source_name: &str, as_text: bool) -> String {
    let ident = format!("\"{}\"", source_name.replace('"', "\"\""));
    if copy_native(column) && !as_text {
        ident
    } else {
        format!("CASE WHEN num_nulls({ident}) = 0 THEN format('%s', {ident}) END")
    }
}

/// The PostgreSQL text form (what the type's output function prints) of a binary COPY value
/// of `column`, where it is known without the server: a value selected as text is its own
/// text, a natively read array is printed as `array_out` prints it. `None` for other natively
/// read values (and malformed arrays). Error reports and dead letters show this text.
pub fn copy_value_text(column: &ColumnSchema, b: &[u8]) -> Option<String> {
    match binary_conv(column) {
        BinaryConv::Text => Some(String::from_utf8_lossy(b).into_owned()),
        BinaryConv::Array { elem, .. } => arrays::array_text(elem, b).ok(),
        _ => None,
    }
}

fn exact<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into().map_err(|_| format!("binary value has {} bytes, expected {N}", b.len()))
}

/// Parses one binary COPY value of a column decoded as `bc` (from [`binary_conv`]) whose
/// builder is `conv`. `Cell::Raw`/`Cell::RawFrom` refer to `b` itself.
#[inline]
pub(crate) fn parse_binary(bc: BinaryConv, conv: &Conv, b: &[u8], sc: &mut Scratch) -> Result<Cell, String> {
    use BinaryConv as B;
    Ok(match bc {
        B::Text => return parse(conv, b, sc),
        B::Bool => Cell::Bool(exact::<1>(b)?[0] != 0),
        B::I16 => Cell::I16(i16::from_be_bytes(exact(b)?)),
        B::I32 => Cell::I32(i32::from_be_bytes(exact(b)?)),
        B::I64 => Cell::I64(i64::from_be_bytes(exact(b)?)),
        B::Oid => Cell::I64(u32::from_be_bytes(exact(b)?) as i64),
        B::F32 => Cell::F32(f32::from_be_bytes(exact(b)?)),
        B::F64 => Cell::F64(f64::from_be_bytes(exact(b)?)),
        B::Uuid => Cell::Uuid(exact(b)?),
        B::Bytea => Cell::Raw,
        B::Date => Cell::I32(match i32::from_be_bytes(exact(b)?) {
            // PostgreSQL's DATEVAL_NOEND / DATEVAL_NOBEGIN: the text path's sentinels.
            i32::MAX => DATE_INFINITY,
            i32::MIN => DATE_NEG_INFINITY,
            d => d
                .checked_add(PG_EPOCH_DAYS)
                .filter(|&v| v > DATE_NEG_INFINITY && v < DATE_INFINITY)
                .ok_or("date beyond the range of Arrow Date32")?,
        }),
        B::Time => {
            let us = i64::from_be_bytes(exact(b)?);
            if !(0..=MICROS_PER_DAY).contains(&us) {
                return Err("time of day outside 00:00:00..24:00:00".into());
            }
            Cell::I64(us)
        }
        B::Timestamp => Cell::I64(match i64::from_be_bytes(exact(b)?) {
            // PostgreSQL's DT_NOEND / DT_NOBEGIN: the text path's sentinels.
            i64::MAX => TIMESTAMP_INFINITY,
            i64::MIN => TIMESTAMP_NEG_INFINITY,
            t => t
                .checked_add(PG_EPOCH_MICROS)
                .filter(|&v| v > TIMESTAMP_NEG_INFINITY && v < TIMESTAMP_INFINITY)
                .ok_or("timestamp beyond the range of Arrow timestamp(µs) (about 290 000 years around 1970)")?,
        }),
        B::Utf8 => {
            std::str::from_utf8(b).map_err(|_| "not valid UTF-8".to_string())?;
            Cell::Raw
        }
        B::Jsonb => match b.split_first() {
            Some((1, text)) => {
                std::str::from_utf8(text).map_err(|_| "not valid UTF-8".to_string())?;
                Cell::RawFrom(1)
            }
            Some((v, _)) => return Err(format!("unsupported jsonb binary format version {v}")),
            None => return Err("empty jsonb binary value".into()),
        },
        B::Dec128 { precision, scale } => {
            let n = Numeric::parse(b)?;
            let mut acc: u128 = 0;
            n.unscaled(precision, scale, |k, add| acc = acc.wrapping_mul(POW10[k as usize]).wrapping_add(add as u128))?;
            let v = acc as i128;
            Cell::D128(if n.sign == NUMERIC_NEG { v.wrapping_neg() } else { v })
        }
        B::Dec256 { precision, scale } => {
            let n = Numeric::parse(b)?;
            let mut acc = Acc256::default();
            n.unscaled(precision, scale, |k, add| acc.push(k, add))?;
            let v = acc.value();
            Cell::D256(if n.sign == NUMERIC_NEG { v.wrapping_neg() } else { v })
        }
        B::Array { elem_oid, elem } => return arrays::parse_array(elem_oid, elem, conv, b, sc),
        B::NumericText => {
            let n = Numeric::parse(b)?;
            let start = sc.bytes.len() as u32;
            n.write_text(&mut sc.bytes)?;
            Cell::Bytes { start, end: sc.bytes.len() as u32 }
        }
        B::Interval | B::TimeTz => {
            let start = sc.bytes.len() as u32;
            if bc == B::Interval {
                time_text::write_interval(b, &mut sc.bytes)?;
            } else {
                time_text::write_timetz(b, &mut sc.bytes)?;
            }
            Cell::Bytes { start, end: sc.bytes.len() as u32 }
        }
    })
}

// ---------------------------------------------------------------------------------------
// numeric

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// Base of numeric digits.
const NBASE: u16 = 10_000;

/// Powers of ten that fit u128 (10^0..=10^38).
const POW10: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `numeric_send`'s layout: ndigits, weight, sign, dscale (16 bits each), then `ndigits`
/// base-10000 digits, most significant first; the value is Σ digit[i] · 10000^(weight − i).
struct Numeric<'a> {
    weight: i16,
    sign: u16,
    dscale: u16,
    /// 2 bytes per digit, big-endian.
    digits: &'a [u8],
}

impl<'a> Numeric<'a> {
    fn parse(b: &'a [u8]) -> Result<Numeric<'a>, String> {
        if b.len() < 8 {
            return Err(format!("binary numeric of {} bytes is shorter than its 8-byte header", b.len()));
        }
        let ndigits = i16::from_be_bytes([b[0], b[1]]);
        let digits = &b[8..];
        if ndigits < 0 || digits.len() != 2 * ndigits as usize {
            return Err(format!("binary numeric with {ndigits} digits has {} bytes", b.len()));
        }
        let sign = u16::from_be_bytes([b[4], b[5]]);
        if !matches!(sign, NUMERIC_POS | NUMERIC_NEG | NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF) {
            return Err(format!("binary numeric has an invalid sign {sign:#06x}"));
        }
        Ok(Numeric { weight: i16::from_be_bytes([b[2], b[3]]), sign, dscale: u16::from_be_bytes([b[6], b[7]]), digits })
    }

    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }

    #[inline]
    fn digit(&self, i: usize) -> Result<u16, String> {
        let d = u16::from_be_bytes([self.digits[2 * i], self.digits[2 * i + 1]]);
        if d >= NBASE {
            return Err(format!("binary numeric has an invalid digit {d}"));
        }
        Ok(d)
    }

    fn special(&self) -> Option<&'static str> {
        match self.sign {
            NUMERIC_NAN => Some("NaN"),
            NUMERIC_PINF => Some("Infinity"),
            NUMERIC_NINF => Some("-Infinity"),
            _ => None,
        }
    }

    /// Appends the value exactly as PostgreSQL's `numeric_out` prints it.
    fn write_text(&self, out: &mut Vec<u8>) -> Result<(), String> {
        if let Some(s) = self.special() {
            out.extend_from_slice(s.as_bytes());
            return Ok(());
        }
        if self.sign == NUMERIC_NEG {
            out.push(b'-');
        }
        let n = self.ndigits() as i64;
        let weight = self.weight as i64;
        let mut d: i64;
        if weight < 0 {
            d = weight + 1;
            out.push(b'0');
        } else {
            for i in 0..=weight {
                let dig = if i < n { self.digit(i as usize)? } else { 0 };
                let group = four_digits(dig);
                if i == 0 {
                    // The first group without its leading zeros (but at least one digit).
                    let lead = group[..3].iter().take_while(|&&c| c == b'0').count();
                    out.extend_from_slice(&group[lead..]);
                } else {
                    out.extend_from_slice(&group);
                }
            }
            d = weight + 1;
        }
        let mut left = self.dscale as usize;
        if left > 0 {
            out.push(b'.');
            while left > 0 {
                let dig = if d >= 0 && d < n { self.digit(d as usize)? } else { 0 };
                let take = left.min(4);
                out.extend_from_slice(&four_digits(dig)[..take]);
                left -= take;
                d += 1;
            }
        }
        Ok(())
    }

    /// Feeds the digits of |value| · 10^scale to `push(k, v)` (meaning `acc = acc·10^k + v`,
    /// `v < 10^k`), checking, like the text path and in its order, that the value is finite,
    /// has no non-zero digit beyond `scale` and at most `precision − scale` integer digits.
    /// On `Ok` the accumulated value has at most `precision` digits (on `Err` it is garbage).
    fn unscaled(&self, precision: u8, scale: i8, mut push: impl FnMut(u32, u32)) -> Result<(), String> {
        let target = || format!("numeric({precision},{scale})");
        if let Some(s) = self.special() {
            return Err(format!(
                "{s} is a valid PostgreSQL numeric but {} cannot hold it in Arrow (Decimal has no NaN or infinity); \
                 declare the column as unconstrained numeric to keep such values as text",
                target()
            ));
        }
        let n = self.ndigits();
        let Some(first) = (0..n).find(|&i| self.digits[2 * i] != 0 || self.digits[2 * i + 1] != 0) else {
            return Ok(()); // zero
        };
        let scale = scale.max(0) as i64;
        // Decimal exponent of the least significant digit kept.
        let cut = -scale;
        let mut last: Option<i64> = None;
        for i in first..n {
            let g = self.digit(i)? as u32;
            let low = 4 * (self.weight as i64 - i as i64);
            if low >= cut {
                push(4, g);
                last = Some(low);
            } else if low + 3 >= cut {
                let k = (cut - low) as u32;
                let p = 10u32.pow(k);
                if !g.is_multiple_of(p) {
                    return Err(format!("has more fractional digits than {} holds", target()));
                }
                push(4 - k, g / p);
                last = Some(cut);
            } else if g != 0 {
                return Err(format!("has more fractional digits than {} holds", target()));
            }
        }
        // Integer digits, leading zeros excluded (checked after the fraction, as the text
        // path does, so that both give the same error).
        let w = self.weight as i64 - first as i64;
        let int_digits = if w >= 0 { 4 * w + decimal_len(self.digit(first)?) as i64 } else { 0 };
        if int_digits + scale > precision as i64 {
            return Err(format!("has more digits than {} holds", target()));
        }
        if let Some(last) = last {
            // Zeros down to the scale (at most `precision` digits in all, checked above).
            let k = (last - cut) as u32;
            if k > 0 {
                push(k, 0);
            }
        }
        Ok(())
    }
}

/// Number of decimal digits of `d` (1 for 0).
fn decimal_len(d: u16) -> u32 {
    match d {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 4,
    }
}

#[inline]
fn four_digits(d: u16) -> [u8; 4] {
    [b'0' + (d / 1000) as u8, b'0' + (d / 100 % 10) as u8, b'0' + (d / 10 % 10) as u8, b'0' + (d % 10) as u8]
}

/// Accumulates up to 76 decimal digits: groups go into a u64 and only every ~18 digits into
/// the i256 (whose multiplications are the slow part).
#[derive(Default)]
struct Acc256 {
    hi: i256,
    lo: u64,
    lo_digits: u32,
}

fn pow10_i256(k: u32) -> i256 {
    if k <= 38 {
        i256::from_i128(POW10[k as usize] as i128)
    } else {
        i256::from_i128(POW10[38] as i128).wrapping_mul(i256::from_i128(POW10[(k - 38) as usize] as i128))
    }
}

impl Acc256 {
    #[inline]
    fn push(&mut self, k: u32, v: u32) {
        if self.lo_digits + k > 18 {
            self.flush();
            if k > 18 {
                self.hi = self.hi.wrapping_mul(pow10_i256(k)).wrapping_add(i256::from_i128(v as i128));
                return;
            }
        }
        self.lo = self.lo * POW10[k as usize] as u64 + v as u64;
        self.lo_digits += k;
    }

    fn flush(&mut self) {
        if self.lo_digits > 0 {
            self.hi = self.hi.wrapping_mul(pow10_i256(self.lo_digits)).wrapping_add(i256::from_i128(self.lo as i128));
            self.lo = 0;
            self.lo_digits = 0;
        }
    }

    fn value(mut self) -> i256 {
        self.flush();
        self.hi
    }
}

#[cfg(test)]
mod tests;
