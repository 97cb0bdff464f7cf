//! Unit tests of the binary value decoders.

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
