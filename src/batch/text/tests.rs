//! Unit tests of the text parsers and formatters.

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
fn bytea_hex_in_place() {
    let decode = |s: &[u8]| {
        let mut v = s.to_vec();
        decode_bytea_hex_in_place(&mut v).map(|()| v)
    };
    assert_eq!(decode(b"\\x0a0bFFfF"), Ok(vec![0x0a, 0x0b, 0xff, 0xff]));
    assert_eq!(decode(b"\\x"), Ok(vec![]));
    // A long value is shrunk to its bytes.
    let mut long = b"\\x".to_vec();
    long.extend(std::iter::repeat_n(*b"c3", 100_000).flatten());
    decode_bytea_hex_in_place(&mut long).unwrap();
    assert!(long.len() == 100_000 && long.iter().all(|&b| b == 0xc3));
    assert!(long.capacity() < 200_000, "{}", long.capacity());
    // Errors name the problem and leave the text as it was.
    for (bad, why) in [
        (&b"\\x0a0g"[..], "non-hex digit at offset 5"),
        (b"\\x0", "odd number of digits"),
        (b"\\x 0", "non-hex digit at offset 2"),
        (b"ab\\001", "not in hex format"),
        (b"", "not in hex format"),
    ] {
        let mut v = bad.to_vec();
        let e = decode_bytea_hex_in_place(&mut v).unwrap_err();
        assert!(e.contains(why), "{e}");
        assert_eq!(v, bad);
    }
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
    // The canonical fast path refuses what the general path refuses.
    assert!(parse_uuid(b"g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").is_err());
    assert!(parse_uuid(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1 ").is_err());
    assert!(parse_uuid(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1\xff").is_err());
    assert_eq!(parse_uuid(b"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), Ok(u));
    assert_eq!(parse_uuid(b"00000000-0000-0000-0000-000000000000"), Ok([0; 16]));
    assert_eq!(parse_uuid(b"ffffffff-ffff-ffff-ffff-ffffffffffff"), Ok([0xff; 16]));
}
