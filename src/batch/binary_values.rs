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
}

/// The one decision of how a column travels through binary COPY.
///
/// A type's binary form is fixed by its [`PgType`] where that type comes from a single
/// PostgreSQL type (bool, int2, int4, float4, float8, uuid, bytea, date, time, timestamp,
/// timestamptz, numeric), so domains over them are read natively too (a domain sends its
/// base type's binary form). Where several PostgreSQL types share a [`PgType`] (`Int8`: int8
/// and oid; `Json`: json and jsonb; `Text`: text, varchar, bpchar, name and `"char"`, whose
/// binary form is a raw byte), the column's own builtin type OID decides, and a domain over
/// one of them is read as text. Everything else (arrays, `Other`) is read as text.
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
        PgType::Array { .. } | PgType::Other(_) => B::Text,
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
    let ident = format!("\"{}\"", column.name.replace('"', "\"\""));
    if copy_native(column) {
        ident
    } else {
        format!("CASE WHEN num_nulls({ident}) = 0 THEN format('%s', {ident}) END")
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
        B::NumericText => {
            let n = Numeric::parse(b)?;
            let start = sc.bytes.len() as u32;
            n.write_text(&mut sc.bytes)?;
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
mod tests {
    use super::*;
    use crate::batch::text::{parse_decimal128, parse_decimal256};

    /// `numeric_send` of a decimal string, as PostgreSQL's `set_var_from_str` + `strip_var`
    /// build it (test oracle written independently of the decoder).
    fn send(s: &str, dscale: u16) -> Vec<u8> {
        let (sign, s) = match s {
            "NaN" => return header(0, 0, NUMERIC_NAN, 0, &[]),
            "Infinity" => return header(0, 0, NUMERIC_PINF, 0, &[]),
            "-Infinity" => return header(0, 0, NUMERIC_NINF, 0, &[]),
            s => match s.strip_prefix('-') {
                Some(r) => (NUMERIC_NEG, r),
                None => (NUMERIC_POS, s),
            },
        };
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        // Pad the integer part on the left and the fraction on the right to whole groups.
        let ipad = (4 - int.len() % 4) % 4;
        let fpad = (4 - frac.len() % 4) % 4;
        let all: String = "0".repeat(ipad) + int + frac + &"0".repeat(fpad);
        let mut groups: Vec<u16> =
            all.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap().parse().unwrap()).collect();
        let mut weight = ((int.len() + ipad) / 4) as i16 - 1;
        while groups.first() == Some(&0) {
            groups.remove(0);
            weight -= 1;
        }
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        header(groups.len() as i16, weight, sign, dscale, &groups)
    }

    fn header(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ndigits.to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    fn text(b: &[u8]) -> Result<String, String> {
        let mut out = Vec::new();
        Numeric::parse(b)?.write_text(&mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn dec128(b: &[u8], p: u8, s: i8) -> Result<i128, String> {
        match parse_binary(
            BinaryConv::Dec128 { precision: p, scale: s },
            &Conv::Dec128 { precision: p, scale: s },
            b,
            &mut Scratch::default(),
        )? {
            Cell::D128(v) => Ok(v),
            c => panic!("{c:?}"),
        }
    }

    fn dec256(b: &[u8], p: u8, s: i8) -> Result<i256, String> {
        match parse_binary(
            BinaryConv::Dec256 { precision: p, scale: s },
            &Conv::Dec256 { precision: p, scale: s },
            b,
            &mut Scratch::default(),
        )? {
            Cell::D256(v) => Ok(v),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn numeric_text_is_numeric_out() {
        for (s, dscale) in [
            ("0", 0),
            ("0.00", 2),
            ("1", 0),
            ("-1", 0),
            ("12345678.91", 2),
            ("10000", 0),
            ("100000000", 0),
            ("0.0001", 4),
            ("0.00001", 5),
            ("-0.5", 1),
            ("1.50", 2),
            ("123.4500", 4),
            ("1234567890123456789012345678901234567890.12345", 5),
            ("0.000000000000000000000000000001", 30),
            ("99999999999999999999.99999999999999999999", 20),
            ("1000000000000000000000000000000000000000000000000000000000000000000", 0),
            ("NaN", 0),
            ("Infinity", 0),
            ("-Infinity", 0),
        ] {
            assert_eq!(text(&send(s, dscale)).unwrap(), s, "{s}");
        }
        // A dscale beyond the stored digits prints zeros; one shorter truncates (never happens
        // for values PostgreSQL sends, but it is what numeric_out does).
        assert_eq!(text(&send("1.5", 3)).unwrap(), "1.500");
        assert_eq!(text(&header(1, -3, NUMERIC_POS, 14, &[1234])).unwrap(), "0.00000000123400");
        assert_eq!(text(&header(0, 0, NUMERIC_NEG, 0, &[])).unwrap(), "-0");
    }

    #[test]
    fn decimals_equal_the_text_path() {
        let cases: [(&str, u16, u8, i8); 14] = [
            ("0", 0, 10, 2),
            ("12345678.91", 2, 10, 2),
            ("-12345678.91", 2, 10, 2),
            ("0.01", 2, 10, 2),
            ("-0.10", 2, 10, 2),
            ("5", 0, 10, 2),
            ("10000", 0, 5, 0),
            ("99999999999999999999999999999999999.999", 3, 38, 3),
            ("-99999999999999999999999999999999999999", 0, 38, 0),
            ("1234567890123456789012345678901234567890.12345", 5, 50, 5),
            ("-1234567890123456789012345678901234567890.12345", 5, 50, 5),
            ("9999999999999999999999999999999999999999999999999999999999999999999999999999", 0, 76, 0),
            ("0.0000000000000000000000000000000000000000000000000000000000000000000000000001", 76, 76, 76),
            ("1.5000", 4, 12, 1),
        ];
        for (s, dscale, p, sc) in cases {
            let b = send(s, dscale);
            if p <= 38 {
                assert_eq!(dec128(&b, p, sc), parse_decimal128(s.as_bytes(), p, sc), "{s} as numeric({p},{sc})");
            }
            assert_eq!(dec256(&b, p, sc), parse_decimal256(s.as_bytes(), p, sc), "{s} as numeric({p},{sc})");
        }
    }

    #[test]
    fn decimal_errors_match_the_text_path() {
        for (s, dscale, p, sc) in [
            ("NaN", 0, 10, 2),
            ("Infinity", 0, 10, 2),
            ("-Infinity", 0, 60, 2),
            ("123456789.1", 1, 10, 2),
            ("0.125", 3, 10, 2),
            ("0.00001", 5, 10, 2),
            ("100000", 0, 5, 0),
        ] {
            let b = send(s, dscale);
            let want = parse_decimal128(s.as_bytes(), p.min(38), sc).unwrap_err();
            if p <= 38 {
                assert_eq!(dec128(&b, p, sc).unwrap_err(), want, "{s}");
            }
            assert_eq!(dec256(&b, p, sc).unwrap_err(), parse_decimal256(s.as_bytes(), p, sc).unwrap_err(), "{s}");
        }
    }

    #[test]
    fn malformed_numerics_are_errors() {
        assert!(text(&[0, 1]).is_err());
        assert!(text(&header(2, 0, 0, 0, &[1])).is_err());
        assert!(text(&header(1, 0, 0x1234, 0, &[1])).is_err());
        assert!(text(&header(1, 0, 0, 0, &[10_000])).is_err());
        assert!(dec128(&header(1, 0, 0, 0, &[10_000]), 10, 0).is_err());
    }

    #[test]
    fn scalars_and_sentinels() {
        let mut sc = Scratch::default();
        let p = |bc, b: &[u8], sc: &mut Scratch| parse_binary(bc, &Conv::I64, b, sc);
        assert!(matches!(p(BinaryConv::Date, &i32::MAX.to_be_bytes(), &mut sc), Ok(Cell::I32(DATE_INFINITY))));
        assert!(matches!(p(BinaryConv::Date, &i32::MIN.to_be_bytes(), &mut sc), Ok(Cell::I32(DATE_NEG_INFINITY))));
        assert!(matches!(p(BinaryConv::Date, &0i32.to_be_bytes(), &mut sc), Ok(Cell::I32(10_957))));
        assert!(matches!(
            p(BinaryConv::Timestamp, &i64::MAX.to_be_bytes(), &mut sc),
            Ok(Cell::I64(TIMESTAMP_INFINITY))
        ));
        assert!(matches!(
            p(BinaryConv::Timestamp, &i64::MIN.to_be_bytes(), &mut sc),
            Ok(Cell::I64(TIMESTAMP_NEG_INFINITY))
        ));
        assert!(matches!(p(BinaryConv::Timestamp, &0i64.to_be_bytes(), &mut sc), Ok(Cell::I64(PG_EPOCH_MICROS))));
        // 294247-01-01: PostgreSQL accepts it, i64 µs since 1970 cannot hold it.
        assert!(p(BinaryConv::Timestamp, &(i64::MAX - PG_EPOCH_MICROS / 2).to_be_bytes(), &mut sc).is_err());
        assert!(matches!(p(BinaryConv::Time, &MICROS_PER_DAY.to_be_bytes(), &mut sc), Ok(Cell::I64(MICROS_PER_DAY))));
        assert!(p(BinaryConv::Time, &(MICROS_PER_DAY + 1).to_be_bytes(), &mut sc).is_err());
        assert!(matches!(p(BinaryConv::Oid, &u32::MAX.to_be_bytes(), &mut sc), Ok(Cell::I64(4_294_967_295))));
        assert!(p(BinaryConv::I32, &[0, 0, 1], &mut sc).is_err());
        assert!(matches!(p(BinaryConv::Jsonb, b"\x01{}", &mut sc), Ok(Cell::RawFrom(1))));
        assert!(p(BinaryConv::Jsonb, b"\x02{}", &mut sc).is_err());
        assert!(p(BinaryConv::Jsonb, b"", &mut sc).is_err());
        assert!(p(BinaryConv::Utf8, b"\xff", &mut sc).is_err());
    }
}
