//! Builder tests and the Parquet round trip of every Arrow type the mapping produces.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, Int64Type, Time64MicrosecondType, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use bytes::Bytes;

use super::*;
use crate::model::schema::fixtures::col;
use crate::model::{ColumnSchema, Lsn, OutputRow, RowOp, TableSchema, TupleValue};

fn numeric_typmod(p: i32, s: i32) -> i32 {
    ((p << 16) | (s & 0x7ff)) + 4
}


fn table(columns: Vec<ColumnSchema>) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        relid: 16384,
        schema: "public".into(),
        name: "t".into(),
        columns,
        key: vec![0],
        replica_identity: b'd',
        relfilenode: None,
    })
}

fn t(s: &str) -> TupleValue {
    TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn row<'a>(op: RowOp, lsn: u64, seq: i64, values: &'a [TupleValue]) -> OutputRow<'a> {
    OutputRow { op, lsn: Lsn(lsn), seq, xid: Some(742), commit_ts_us: 1_706_704_496_123_456, values }
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let a = batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
    (0..a.len()).map(|r| cell_to_string(a.as_ref(), r)).collect()
}

fn some(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some(s.to_string())).collect()
}

#[test]
fn metadata_columns_are_filled() {
    let mut b = TableBatchBuilder::new(table(vec![col("id", 23, -1), col("v", 25, -1)]));
    assert!(b.is_empty());
    b.append(&row(RowOp::Insert, 0x16_B374_D848, 0, &[t("1"), t("a")])).unwrap();
    b.append(&OutputRow { xid: None, ..row(RowOp::Load, 5, 1, &[t("2"), TupleValue::Null]) }).unwrap();
    b.append(&row(RowOp::Delete, 7, 2, &[t("1"), TupleValue::Null])).unwrap();
    b.append(&row(RowOp::Truncate, 8, 3, &[TupleValue::Null, TupleValue::Null])).unwrap();
    assert_eq!(b.len(), 4);
    let batch = b.finish();
    assert_eq!(b.len(), 0);
    assert_eq!(b.buffered_bytes(), 0);
    assert_eq!(batch.num_rows(), 4);
    assert_eq!(batch.schema(), TableSchema::arrow_schema(b.table()));
    assert_eq!(strings(&batch, "id"), vec![Some("1".into()), Some("2".into()), Some("1".into()), None]);
    assert_eq!(strings(&batch, "v"), vec![Some("a".into()), None, None, None]);
    assert_eq!(strings(&batch, "_op"), some(&["I", "L", "D", "T"]));
    let lsn = batch.column_by_name("_lsn").unwrap().as_primitive::<Int64Type>();
    assert_eq!(lsn.values().to_vec(), vec![0x16_B374_D848, 5, 7, 8]);
    assert_eq!(strings(&batch, "_seq"), some(&["0", "1", "2", "3"]));
    assert_eq!(strings(&batch, "_xid"), vec![Some("742".into()), None, Some("742".into()), Some("742".into())]);
    let ts = batch.column_by_name("_commit_ts").unwrap();
    assert_eq!(ts.as_primitive::<TimestampMicrosecondType>().value(0), 1_706_704_496_123_456);
    assert_eq!(cell_to_string(ts.as_ref(), 0).unwrap(), "2024-01-31 12:34:56.123456+00");
    assert_eq!(batch.column_by_name("_unchanged").unwrap().null_count(), 4);
}

#[test]
fn unchanged_values_are_null_and_listed() {
    let cols = vec![col("id", 23, -1), col("a", 25, -1), col("b", 3802, -1), col("c", 1007, -1)];
    let mut b = TableBatchBuilder::new(table(cols));
    b.append(&row(RowOp::Update, 1, 0, &[t("1"), TupleValue::Unchanged, t("{}"), TupleValue::Unchanged])).unwrap();
    b.append(&row(RowOp::Update, 1, 1, &[t("2"), t("x"), t("{\"k\": 1}"), t("{1}")])).unwrap();
    let batch = b.finish();
    assert_eq!(strings(&batch, "a"), vec![None, Some("x".into())]);
    assert_eq!(strings(&batch, "c"), vec![None, Some("[1]".into())]);
    assert_eq!(strings(&batch, "_unchanged"), vec![Some(r#"["a","c"]"#.into()), None]);
    let u = batch.column_by_name("_unchanged").unwrap().as_list::<i32>();
    assert!(u.is_valid(0) && u.is_null(1));
    assert_eq!(u.value(0).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("a"), Some("c")]);
}

#[test]
fn a_failing_row_leaves_the_builder_unchanged() {
    let cols = vec![
        col("id", 23, -1),
        col("tags", 1009, -1),
        col("bin", 17, -1),
        col("amount", 1700, numeric_typmod(10, 2)),
        col("grid", 1007, -1),
    ];
    let mut b = TableBatchBuilder::new(table(cols));
    let good = [t("1"), t("{a,b}"), t("\\x01"), t("1.50"), t("{1,2}")];
    b.append(&row(RowOp::Insert, 1, 0, &good)).unwrap();
    let bytes_before = b.buffered_bytes();
    assert!(bytes_before > 0);

    // The bad value is the last one, after list elements and bytes went to scratch space.
    let bad = [t("2"), t("{c,d,e}"), t("\\x0203"), t("NaN"), t("{1,2}")];
    let e = b.append(&row(RowOp::Insert, 2, 1, &bad)).unwrap_err();
    assert_eq!(e.column.as_deref(), Some("amount"));
    assert_eq!(e.pg_type.as_deref(), Some("numeric(10,2)"));
    assert_eq!(e.value.as_deref(), Some("NaN"));
    let msg = e.to_string();
    assert!(msg.contains("numeric(10,2) cannot hold it in Arrow"), "{msg}");
    assert!(msg.starts_with("column \"amount\" (numeric(10,2)), value \"NaN\": "), "{msg}");

    let multi = [t("3"), t("{x}"), t("\\x"), t("2.00"), t("{{1,2},{3,4}}")];
    let e = b.append(&row(RowOp::Insert, 3, 2, &multi)).unwrap_err();
    assert!(e.to_string().contains("multi-dimensional array is not supported"), "{e}");
    let bounds = [t("3"), t("{x}"), t("\\x"), t("2.00"), t("[0:1]={1,2}")];
    let e = b.append(&row(RowOp::Insert, 3, 2, &bounds)).unwrap_err();
    assert!(e.to_string().contains("explicit bounds"), "{e}");

    assert_eq!(b.len(), 1);
    assert_eq!(b.buffered_bytes(), bytes_before);
    let also_good = [t("4"), TupleValue::Null, t("\\xff"), t("-3.25"), t("{NULL}")];
    b.append(&row(RowOp::Insert, 4, 3, &also_good)).unwrap();
    let batch = b.finish();
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(strings(&batch, "id"), some(&["1", "4"]));
    assert_eq!(strings(&batch, "tags"), vec![Some(r#"["a","b"]"#.into()), None]);
    assert_eq!(strings(&batch, "bin"), some(&["\\x01", "\\xff"]));
    assert_eq!(strings(&batch, "amount"), some(&["1.50", "-3.25"]));
    assert_eq!(strings(&batch, "grid"), some(&["[1,2]", "[null]"]));
    assert_eq!(strings(&batch, "_op"), some(&["I", "I"]));
    assert_eq!(strings(&batch, "_seq"), some(&["0", "3"]));
    // every array has the batch's length (nothing half-appended)
    for c in batch.columns() {
        assert_eq!(c.len(), 2);
    }
}

#[test]
fn row_level_errors() {
    let mut b = TableBatchBuilder::new(table(vec![col("id", 23, -1), col("v", 25, -1)]));
    let e = b.append(&row(RowOp::Insert, 1, 0, &[t("1")])).unwrap_err();
    assert!(e.column.is_none());
    assert!(e.to_string().contains("has 1 values but the table has 2 columns"), "{e}");
    // A binary value must have its type's width (int4: 4 bytes).
    let e = b.append(&row(RowOp::Insert, 1, 0, &[TupleValue::Binary(Bytes::from_static(b"xyz")), t("v")])).unwrap_err();
    assert_eq!(e.column.as_deref(), Some("id"));
    assert!(e.to_string().contains("binary value has 3 bytes, expected 4"), "{e}");
    let e = b.append(&row(RowOp::Insert, 1, 0, &[t("12x"), t("v")])).unwrap_err();
    assert_eq!(e.column.as_deref(), Some("id"));
    assert_eq!(e.pg_type.as_deref(), Some("int4"));
    assert!(b.is_empty());
}

#[test]
fn long_values_are_truncated_in_errors() {
    let mut b = TableBatchBuilder::new(table(vec![col("d", 1082, -1)]));
    let long = "9".repeat(500);
    let e = b.append(&row(RowOp::Insert, 1, 0, &[t(&long)])).unwrap_err();
    let v = e.value.unwrap();
    assert_eq!(v.chars().count(), 81);
    assert!(v.ends_with('…'));
}

#[test]
fn numeric_nan_is_kept_in_unconstrained_columns() {
    let cols = vec![col("n", 1700, -1), col("neg_scale", 1700, numeric_typmod(5, -2)), col("big", 1700, numeric_typmod(50, 10))];
    let mut b = TableBatchBuilder::new(table(cols));
    for v in ["NaN", "Infinity", "-Infinity", "0.611111104488373", "123456789012345678901234567890.123456789"] {
        b.append(&row(RowOp::Insert, 1, 0, &[t(v), t(v), TupleValue::Null])).unwrap();
    }
    b.append(&row(RowOp::Insert, 1, 0, &[t("1"), t("12300"), t("1234567890123456789012345678901234567890.0123456789")]))
        .unwrap();
    let batch = b.finish();
    assert_eq!(batch.schema().field(0).data_type(), &DataType::Utf8);
    assert_eq!(batch.schema().field(1).data_type(), &DataType::Utf8);
    assert_eq!(batch.schema().field(2).data_type(), &DataType::Decimal256(50, 10));
    assert_eq!(
        strings(&batch, "n"),
        some(&["NaN", "Infinity", "-Infinity", "0.611111104488373", "123456789012345678901234567890.123456789", "1"])
    );
    assert_eq!(strings(&batch, "neg_scale")[5].as_deref(), Some("12300"));
    assert_eq!(strings(&batch, "big")[5].as_deref(), Some("1234567890123456789012345678901234567890.0123456789"));
    let e = b.append(&row(RowOp::Insert, 1, 0, &[t("1"), t("1"), t("-Infinity")])).unwrap_err();
    assert!(e.to_string().contains("-Infinity"), "{e}");
    assert!(e.to_string().contains("numeric(50,10) cannot hold it in Arrow"), "{e}");
}

#[test]
fn text_is_kept_byte_for_byte() {
    let mut b = TableBatchBuilder::new(table(vec![col("t", 25, -1), col("c", 1042, 14)]));
    let values = ["\\N", "", "a,b \"c\"\nd ", "ünïcødé ✓", "NULL"];
    for v in values {
        b.append(&row(RowOp::Insert, 1, 0, &[t(v), t("padded    ")])).unwrap();
    }
    let batch = b.finish();
    assert_eq!(strings(&batch, "t"), some(&values));
    assert_eq!(strings(&batch, "c")[0].as_deref(), Some("padded    "));
}

#[test]
fn arrays_of_text_like_types() {
    let cols = vec![col("a", 1009, -1), col("boxes", 1020, -1), col("j", 3807, -1), col("u", 2951, -1)];
    let mut b = TableBatchBuilder::new(table(cols));
    b.append(&row(
        RowOp::Insert,
        1,
        0,
        &[
            t(r#"{"a b","c\"d",NULL,"NULL","","\\N"}"#),
            t("{(1,1),(0,0);(2,2),(1,1)}"),
            t(r#"{"{\"k\": [1, 2]}",null}"#),
            t("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}"),
        ],
    ))
    .unwrap();
    let batch = b.finish();
    let a = batch.column(0).as_list::<i32>().value(0);
    let a: Vec<Option<&str>> = a.as_string::<i32>().iter().collect();
    assert_eq!(a, vec![Some("a b"), Some("c\"d"), None, Some("NULL"), Some(""), Some("\\N")]);
    assert_eq!(strings(&batch, "boxes")[0].as_deref(), Some(r#"["(1,1),(0,0)","(2,2),(1,1)"]"#));
    assert_eq!(strings(&batch, "j")[0].as_deref(), Some(r#"["{\"k\": [1, 2]}",null]"#));
    assert_eq!(strings(&batch, "u")[0].as_deref(), Some("[a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,null]"));
    match batch.schema().field(2).data_type() {
        DataType::List(item) => assert_eq!(item.metadata()["ARROW:extension:name"], "arrow.json"),
        other => panic!("{other:?}"),
    }
}

/// Expected canonical strings per column.
type Expected = Vec<(&'static str, Vec<Option<&'static str>>)>;

/// One column per mapped type, with the edge values of CDC_CASES §6.
fn every_type() -> (Arc<TableSchema>, Vec<Vec<TupleValue>>, Expected) {
    // (column, oid, typmod, values as text (None = NULL), expected canonical strings)
    #[allow(clippy::type_complexity)]
    let spec: Vec<(&str, u32, i32, [Option<&str>; 3], [Option<&str>; 3])> = vec![
        ("b", 16, -1, [Some("t"), Some("f"), None], [Some("t"), Some("f"), None]),
        ("i2", 21, -1, [Some("-32768"), Some("32767"), None], [Some("-32768"), Some("32767"), None]),
        ("i4", 23, -1, [Some("-2147483648"), Some("0"), None], [Some("-2147483648"), Some("0"), None]),
        (
            "i8",
            20,
            -1,
            [Some("-9223372036854775808"), Some("9223372036854775807"), None],
            [Some("-9223372036854775808"), Some("9223372036854775807"), None],
        ),
        ("o", 26, -1, [Some("4294967295"), Some("0"), None], [Some("4294967295"), Some("0"), None]),
        ("f4", 700, -1, [Some("2.20000005"), Some("-Infinity"), Some("NaN")], [Some("2.2"), Some("-Infinity"), Some("NaN")]),
        ("f8", 701, -1, [Some("1.5"), Some("Infinity"), Some("NaN")], [Some("1.5"), Some("Infinity"), Some("NaN")]),
        (
            "d128",
            1700,
            numeric_typmod(10, 2),
            [Some("12345678.90"), Some("-0.01"), None],
            [Some("12345678.90"), Some("-0.01"), None],
        ),
        (
            "d38",
            1700,
            numeric_typmod(38, 0),
            [Some("99999999999999999999999999999999999999"), Some("-1"), None],
            [Some("99999999999999999999999999999999999999"), Some("-1"), None],
        ),
        (
            "d256",
            1700,
            numeric_typmod(50, 10),
            [Some("1234567890123456789012345678901234567890.0123456789"), Some("-0.0000000001"), None],
            [Some("1234567890123456789012345678901234567890.0123456789"), Some("-0.0000000001"), None],
        ),
        ("n", 1700, -1, [Some("NaN"), Some("-Infinity"), Some("3.14159")], [Some("NaN"), Some("-Infinity"), Some("3.14159")]),
        ("txt", 25, -1, [Some("\\N"), Some(""), None], [Some("\\N"), Some(""), None]),
        ("vc", 1043, 14, [Some("héllo"), Some("x"), None], [Some("héllo"), Some("x"), None]),
        ("ch", 18, -1, [Some("a"), Some(" "), None], [Some("a"), Some(" "), None]),
        ("js", 114, -1, [Some("{\"a\": [1, 2]}"), Some("null"), None], [Some("{\"a\": [1, 2]}"), Some("null"), None]),
        ("jb", 3802, -1, [Some("{\"a\": 1}"), Some("[]"), None], [Some("{\"a\": 1}"), Some("[]"), None]),
        (
            "u",
            2950,
            -1,
            [Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), Some("00000000-0000-0000-0000-000000000000"), None],
            [Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), Some("00000000-0000-0000-0000-000000000000"), None],
        ),
        ("by", 17, -1, [Some("\\x0a0bff"), Some("\\x"), None], [Some("\\x0a0bff"), Some("\\x"), None]),
        (
            "dt",
            1082,
            -1,
            [Some("0044-02-01 BC"), Some("300000-01-01"), Some("infinity")],
            [Some("0044-02-01 BC"), Some("300000-01-01"), Some("infinity")],
        ),
        ("dt2", 1082, -1, [Some("-infinity"), Some("2024-02-29"), None], [Some("-infinity"), Some("2024-02-29"), None]),
        ("tm", 1083, -1, [Some("24:00:00"), Some("12:34:56.789"), None], [Some("24:00:00"), Some("12:34:56.789"), None]),
        (
            "ts",
            1114,
            -1,
            [Some("2024-01-31 12:34:56.123456"), Some("0044-03-15 12:00:00 BC"), Some("-infinity")],
            [Some("2024-01-31 12:34:56.123456"), Some("0044-03-15 12:00:00 BC"), Some("-infinity")],
        ),
        (
            "tstz",
            1184,
            -1,
            [Some("2024-01-31 18:04:56.123456+05:30"), Some("294000-01-01 00:00:00+00"), Some("infinity")],
            [Some("2024-01-31 12:34:56.123456+00"), Some("294000-01-01 00:00:00+00"), Some("infinity")],
        ),
        ("iv", 1186, -1, [Some("-1 days -01:42:30"), Some("1 year 2 mons"), None], [Some("-1 days -01:42:30"), Some("1 year 2 mons"), None]),
        ("money", 790, -1, [Some("$1,234.56"), Some("-$0.01"), None], [Some("$1,234.56"), Some("-$0.01"), None]),
        ("ttz", 1266, -1, [Some("24:00:00+02"), Some("12:34:56-08"), None], [Some("24:00:00+02"), Some("12:34:56-08"), None]),
        ("ip", 869, -1, [Some("192.168.0.1/24"), Some("::1"), None], [Some("192.168.0.1/24"), Some("::1"), None]),
        ("rng", 3904, -1, [Some("[1,10)"), Some("empty"), None], [Some("[1,10)"), Some("empty"), None]),
        (
            "a_i4",
            1007,
            -1,
            [Some("{1,2,NULL}"), Some("{}"), None],
            [Some("[1,2,null]"), Some("[]"), None],
        ),
        (
            "a_txt",
            1009,
            -1,
            [Some(r#"{"a b","c\"d",NULL,"NULL",""}"#), Some("{x}"), None],
            [Some(r#"["a b","c\"d",null,"NULL",""]"#), Some(r#"["x"]"#), None],
        ),
        (
            "a_dt",
            1182,
            -1,
            [Some("{infinity,\"0044-02-01 BC\",NULL}"), Some("{300000-01-01}"), None],
            [Some("[infinity,0044-02-01 BC,null]"), Some("[300000-01-01]"), None],
        ),
        (
            "a_tstz",
            1185,
            -1,
            [Some("{\"2024-01-31 12:34:56+00\",-infinity}"), Some("{\"294000-01-01 00:00:00+00\"}"), None],
            [Some("[2024-01-31 12:34:56+00,-infinity]"), Some("[294000-01-01 00:00:00+00]"), None],
        ),
        ("a_tm", 1183, -1, [Some("{24:00:00,NULL}"), Some("{}"), None], [Some("[24:00:00,null]"), Some("[]"), None]),
        (
            "a_num",
            1231,
            numeric_typmod(10, 2),
            [Some("{1.50,-2.00,NULL}"), Some("{}"), None],
            [Some("[1.50,-2.00,null]"), Some("[]"), None],
        ),
        ("a_numtxt", 1231, -1, [Some("{NaN,1.5}"), Some("{}"), None], [Some(r#"["NaN","1.5"]"#), Some("[]"), None]),
        (
            "a_uuid",
            2951,
            -1,
            [Some("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}"), Some("{}"), None],
            [Some("[a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,null]"), Some("[]"), None],
        ),
        ("a_by", 1001, -1, [Some(r#"{"\\x0102",NULL}"#), Some("{}"), None], [Some(r#"["\\x0102",null]"#), Some("[]"), None]),
        ("a_b", 1000, -1, [Some("{t,f,NULL}"), Some("{}"), None], [Some("[t,f,null]"), Some("[]"), None]),
        ("a_f8", 1022, -1, [Some("{NaN,-Infinity,1e+300}"), Some("{}"), None], [Some(&*F8_ARRAY), Some("[]"), None]),
        ("a_i8", 1016, -1, [Some("{-9223372036854775808}"), Some("{}"), None], [Some("[-9223372036854775808]"), Some("[]"), None]),
        ("a_jb", 3807, -1, [Some(r#"{"{\"a\": 1}"}"#), Some("{}"), None], [Some(r#"["{\"a\": 1}"]"#), Some("[]"), None]),
        ("a_iv", 1187, -1, [Some(r#"{"1 day",NULL}"#), Some("{}"), None], [Some(r#"["1 day",null]"#), Some("[]"), None]),
    ];
    let columns = spec.iter().map(|(name, oid, typmod, _, _)| col(name, *oid, *typmod)).collect();
    let rows = (0..3)
        .map(|r| spec.iter().map(|(_, _, _, vals, _)| vals[r].map_or(TupleValue::Null, t)).collect())
        .collect();
    let expected = spec.iter().map(|(name, _, _, _, exp)| (*name, exp.to_vec())).collect();
    (table(columns), rows, expected)
}

static F8_ARRAY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("[NaN,-Infinity,{}]", 1e300f64));

fn check_every_type(batch: &RecordBatch, expected: &[(&str, Vec<Option<&str>>)]) {
    assert_eq!(batch.num_rows(), 3);
    for (name, exp) in expected {
        let got = strings(batch, name);
        let exp: Vec<Option<String>> = exp.iter().map(|e| e.map(str::to_string)).collect();
        assert_eq!(got, exp, "column {name}");
    }
}

#[test]
fn every_type_builds_with_exact_values() {
    let (table, rows, expected) = every_type();
    let mut b = TableBatchBuilder::new(table.clone());
    for (i, values) in rows.iter().enumerate() {
        b.append(&row(RowOp::Insert, 100, i as i64, values)).unwrap();
    }
    let batch = b.finish();
    check_every_type(&batch, &expected);

    // The raw Arrow values behind the infinity rule and the calendar.
    let dt = batch.column_by_name("dt").unwrap().as_primitive::<Date32Type>();
    assert_eq!((dt.value(0), dt.value(1), dt.value(2)), (-735_202, 108_853_222, i32::MAX));
    let dt2 = batch.column_by_name("dt2").unwrap().as_primitive::<Date32Type>();
    assert_eq!(dt2.value(0), -i32::MAX);
    let tm = batch.column_by_name("tm").unwrap().as_primitive::<Time64MicrosecondType>();
    assert_eq!(tm.value(0), 86_400_000_000);
    let ts = batch.column_by_name("ts").unwrap().as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(0), 1_706_704_496_123_456);
    assert_eq!(ts.value(2), -i64::MAX);
    let tstz = batch.column_by_name("tstz").unwrap().as_primitive::<TimestampMicrosecondType>();
    assert_eq!(tstz.value(0), 1_706_704_496_123_456);
    assert_eq!(tstz.value(2), i64::MAX);
    assert_eq!(tstz.timezone(), Some("UTC"));
    let d = batch.column_by_name("d128").unwrap().as_primitive::<Decimal128Type>();
    assert_eq!((d.value(0), d.precision(), d.scale()), (1_234_567_890, 10, 2));
    let u = batch.column_by_name("u").unwrap().as_fixed_size_binary();
    assert_eq!(u.value(0)[..4], [0xa0, 0xee, 0xbc, 0x99]);
    let by = batch.column_by_name("by").unwrap().as_binary::<i32>();
    assert_eq!(by.value(0), [0x0a, 0x0b, 0xff]);
    let f4 = batch.column_by_name("f4").unwrap().as_primitive::<arrow_array::types::Float32Type>();
    assert_eq!(f4.value(0), 2.2f32);

    let schema = batch.schema();
    let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("d256"), DataType::Decimal256(50, 10));
    assert_eq!(ty("n"), DataType::Utf8);
    assert_eq!(ty("iv"), DataType::Utf8);
    assert_eq!(ty("money"), DataType::Utf8);
    assert_eq!(ty("o"), DataType::Int64);
    assert_eq!(ty("u"), DataType::FixedSizeBinary(16));
    assert_eq!(schema.field_with_name("u").unwrap().metadata()["ARROW:extension:name"], "arrow.uuid");
    assert_eq!(schema.field_with_name("jb").unwrap().metadata()["ARROW:extension:name"], "arrow.json");
}

#[test]
fn every_type_round_trips_through_parquet() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    let (table, rows, expected) = every_type();
    let mut b = TableBatchBuilder::new(table.clone());
    for (i, values) in rows.iter().enumerate() {
        b.append(&row(RowOp::Insert, 100, i as i64, values)).unwrap();
    }
    let batch = b.finish();

    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, table.arrow_schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(buf)).unwrap();
    // The file's Arrow schema is the table's, schema metadata included.
    let file_schema = builder.schema().clone();
    assert_eq!(file_schema.fields(), batch.schema().fields());
    assert_eq!(file_schema.metadata().get("pgcdc.table").map(String::as_str), Some("public.t"));
    assert_eq!(file_schema.metadata().get("pgcdc.key").map(String::as_str), Some("b"));
    assert_eq!(file_schema.metadata().get("pgcdc.pg_types"), table.arrow_schema().metadata().get("pgcdc.pg_types"));
    let back: Vec<RecordBatch> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(back.len(), 1);
    let back = &back[0];
    // Same Arrow types, field metadata (extensions) included.
    assert_eq!(back.schema().fields(), batch.schema().fields());
    check_every_type(back, &expected);
    for (i, c) in batch.columns().iter().enumerate() {
        for r in 0..batch.num_rows() {
            assert_eq!(
                cell_to_string(back.column(i).as_ref(), r),
                cell_to_string(c.as_ref(), r),
                "column {} row {r}",
                batch.schema().field(i).name()
            );
        }
    }
}

#[test]
fn cell_to_string_forms() {
    use arrow_array::{BooleanArray, Float64Array, Int32Array, ListArray, StringArray};
    let ints = Int32Array::from(vec![Some(1), None]);
    assert_eq!(cell_to_string(&ints, 0).as_deref(), Some("1"));
    assert_eq!(cell_to_string(&ints, 1), None);
    let f = Float64Array::from(vec![0.1, -0.0, f64::NAN, 1e300]);
    assert_eq!(cell_to_string(&f, 0).as_deref(), Some("0.1"));
    assert_eq!(cell_to_string(&f, 2).as_deref(), Some("NaN"));
    assert_eq!(cell_to_string(&f, 3), Some(1e300f64.to_string()));
    assert_eq!(cell_to_string(&BooleanArray::from(vec![true]), 0).as_deref(), Some("t"));
    assert_eq!(cell_to_string(&StringArray::from(vec!["null"]), 0).as_deref(), Some("null"));
    let l = ListArray::from_iter_primitive::<arrow_array::types::Int32Type, _, _>(vec![Some(vec![Some(1), None])]);
    assert_eq!(cell_to_string(&l, 0).as_deref(), Some("[1,null]"));
}

#[test]
fn buffered_bytes_grow_with_values() {
    let mut b = TableBatchBuilder::new(table(vec![col("t", 25, -1)]));
    b.append(&row(RowOp::Insert, 1, 0, &[t("x")])).unwrap();
    let one = b.buffered_bytes();
    b.append(&row(RowOp::Insert, 1, 1, &[t(&"y".repeat(10_000))])).unwrap();
    assert!(b.buffered_bytes() >= one + 10_000);
    b.finish();
    assert_eq!(b.buffered_bytes(), 0);
}

/// Throughput of the hot path; run with `cargo test --release --lib batch::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let cols = vec![
        col("id", 20, -1),
        col("name", 25, -1),
        col("amount", 1700, numeric_typmod(12, 2)),
        col("at", 1184, -1),
        col("ok", 16, -1),
        col("day", 1082, -1),
        col("score", 701, -1),
        col("qty", 23, -1),
    ];
    let mut b = TableBatchBuilder::new(table(cols));
    let rows: Vec<Vec<TupleValue>> = (0..1000)
        .map(|i| {
            vec![
                t(&format!("{}", 1_000_000 + i)),
                t(&format!("customer name number {i}")),
                t(&format!("{}.{:02}", i * 37, i % 100)),
                t("2024-01-31 12:34:56.123456+00"),
                t(if i % 2 == 0 { "t" } else { "f" }),
                t("2024-01-31"),
                t("3.14159"),
                t(&format!("{i}")),
            ]
        })
        .collect();
    let n = 2_000_000;
    let start = std::time::Instant::now();
    for i in 0..n {
        b.append(&row(RowOp::Insert, 1, i as i64, &rows[i % rows.len()])).unwrap();
        if b.len() == 65_536 {
            std::hint::black_box(b.finish());
        }
    }
    std::hint::black_box(b.finish());
    let secs = start.elapsed().as_secs_f64();
    println!("{:.0} rows/s ({} rows of 8 columns in {secs:.2}s)", n as f64 / secs, n);
}

#[test]
fn binary_uuid_and_quoted_list_text_match_their_reference_forms() {
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{BinaryArray, FixedSizeBinaryArray};
    let bin = BinaryArray::from(vec![&[0u8, 0xab, 0xff][..], &[][..]]);
    assert_eq!(cell_to_string(&bin, 0).as_deref(), Some("\\x00abff"));
    assert_eq!(cell_to_string(&bin, 1).as_deref(), Some("\\x"));
    let id: Vec<u8> = (0u8..16).map(|i| i * 17).collect();
    let uuids = FixedSizeBinaryArray::try_from_iter(vec![id.clone()].into_iter()).unwrap();
    let h = hex::encode(&id);
    let reference = format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]);
    assert_eq!(cell_to_string(&uuids, 0), Some(reference));
    let mut lists = ListBuilder::new(StringBuilder::new());
    lists.values().append_value("a b");
    lists.values().append_value("q\"\\\n");
    lists.values().append_null();
    lists.append(true);
    let lists = lists.finish();
    assert_eq!(cell_to_string(&lists, 0).as_deref(), Some(r#"["a b","q\"\\\n",null]"#));
}
