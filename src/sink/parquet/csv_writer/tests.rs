use std::io::Read;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::*;
use crate::model::schema::fixtures::orders;
use crate::model::Lsn;

fn field(v: Option<&str>, null: &str) -> String {
    let mut s = String::new();
    push_field(&mut s, v, null);
    s
}

#[test]
fn null_is_an_empty_field_and_the_empty_string_is_quoted() {
    assert_eq!(field(None, ""), "");
    assert_eq!(field(Some(""), ""), "\"\"");
    assert_eq!(field(None, "NULL"), "NULL");
    assert_eq!(field(Some(""), "NULL"), "\"\"");
    // A value that reads like the NULL marker is quoted; without a marker it is plain.
    assert_eq!(field(Some("NULL"), "NULL"), "\"NULL\"");
    assert_eq!(field(Some("NULL"), ""), "NULL");
}

#[test]
fn values_are_quoted_only_when_they_must_be() {
    assert_eq!(field(Some("plain text"), ""), "plain text");
    assert_eq!(field(Some(" padded "), ""), " padded ");
    assert_eq!(field(Some("a,b"), ""), "\"a,b\"");
    assert_eq!(field(Some("say \"hi\""), ""), "\"say \"\"hi\"\"\"");
    assert_eq!(field(Some("\""), ""), "\"\"\"\"");
    assert_eq!(field(Some("line1\nline2"), ""), "\"line1\nline2\"");
    assert_eq!(field(Some("cr\r"), ""), "\"cr\r\"");
    assert_eq!(field(Some("it's; fine|\t"), ""), "it's; fine|\t");
    let mut rec = String::new();
    push_record(
        &mut rec,
        [Some("I"), None, Some(""), Some("x,y")].into_iter(),
        "",
    );
    assert_eq!(rec, "I,,\"\",\"x,y\"\n");
}

#[test]
fn floats_as_postgresql_prints_them() {
    for (v, text) in [
        (1.5, "1.5"),
        (100.0, "100"),
        (0.0, "0"),
        (-0.0, "-0"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123456789012345.0, "123456789012345"),
        (1e15, "1e+15"),
        (-1.2345e20, "-1.2345e+20"),
        (1e100, "1e+100"),
        (0.1 + 0.2, "0.30000000000000004"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
    ] {
        assert_eq!(pg_float8(v), text, "{v:e}");
    }
    for (v, text) in [
        (1.5f32, "1.5"),
        (0.1, "0.1"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (2.2, "2.2"),
        (f32::NEG_INFINITY, "-Infinity"),
    ] {
        assert_eq!(pg_float4(v), text, "{v:e}");
    }
}

/// A batch with one column of each kind a DMS batch has, two rows (the second all NULL
/// but `Op`).
fn batch() -> RecordBatch {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("Op", DataType::Utf8, false),
        Field::new("id", DataType::Int64, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(12, 3), true),
        Field::new("ts", ts, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("raw", DataType::Binary, true),
        Field::new("day", DataType::Date32, true),
        Field::new("f", DataType::Float64, true),
    ]));
    let mut op = StringBuilder::new();
    op.append_value("I");
    op.append_value("D");
    let mut id = Int64Builder::new();
    id.append_value(7);
    id.append_null();
    let mut note = StringBuilder::new();
    note.append_value("a, \"b\"\nc");
    note.append_null();
    let mut amount = Decimal128Builder::new();
    amount.append_value(-1_234_500);
    amount.append_null();
    let mut t = TimestampMicrosecondBuilder::new();
    // 2024-01-31 12:34:56.5 UTC
    t.append_value(1_706_704_496_500_000);
    t.append_null();
    let mut ok = BooleanBuilder::new();
    ok.append_value(true);
    ok.append_null();
    let mut raw = BinaryBuilder::new();
    raw.append_value([0x00, 0xab]);
    raw.append_null();
    let mut day = Date32Builder::new();
    day.append_value(19_753); // 2024-01-31
    day.append_null();
    let mut f = Float64Builder::new();
    f.append_value(1e20);
    f.append_null();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(op.finish()),
        Arc::new(id.finish()),
        Arc::new(note.finish()),
        Arc::new(amount.finish().with_precision_and_scale(12, 3).unwrap()),
        Arc::new(t.finish().with_timezone("UTC")),
        Arc::new(ok.finish()),
        Arc::new(raw.finish()),
        Arc::new(day.finish()),
        Arc::new(f.finish()),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

const ROWS: &str =
    "I,7,\"a, \"\"b\"\"\nc\",-1234.500,2024-01-31 12:34:56.5,t,\\x00ab,2024-01-31,1e+20\n\
                    D,,,,,,,,\n";

fn write(format: &CsvFormat) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.part");
    let b = batch();
    let mut w =
        CsvPartWriter::create(path.clone(), Arc::new(orders()), b.schema(), format).unwrap();
    w.write(&b).unwrap();
    assert!(w.size() > 0);
    let range = LsnRange {
        first_lsn: Lsn(1),
        last_lsn: Lsn(2),
        first_ts_us: 0,
    };
    let sealed = w.seal(range).unwrap();
    assert_eq!(sealed.path, path);
    std::fs::read(&path).unwrap()
}

#[test]
fn a_file_is_the_rows_without_header_by_default() {
    let bytes = write(&CsvFormat::default());
    assert_eq!(String::from_utf8(bytes).unwrap(), ROWS);
}

#[test]
fn header_null_marker_and_gzip() {
    let format = CsvFormat {
        header: true,
        null_value: "NULL".into(),
        gzip: true,
    };
    let bytes = write(&format);
    assert_eq!(&bytes[..2], [0x1f, 0x8b], "a gzip stream");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    let expected = format!(
        "Op,id,note,amount,ts,ok,raw,day,f\n{}",
        ROWS.replace("D,,,,,,,,", "D,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL")
    );
    assert_eq!(text, expected);
    assert_eq!(format.extension(), "csv.gz");
}

/// The real DMS CSV file (`tests/fixtures/dms/`): the same rows written by this writer, with
/// the header on (as that file was written), are the same bytes.
#[test]
fn rows_of_a_real_dms_csv_file_come_out_byte_for_byte() {
    let real = include_str!("../../../../tests/fixtures/dms/20190118-184518184.csv");
    let mut lines = real.lines();
    let names: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let types = [
        DataType::Utf8,
        DataType::Int64,
        DataType::Utf8,
        DataType::Utf8,
        DataType::Utf8,
        DataType::Utf8,
        ts,
        DataType::Utf8,
        DataType::Decimal128(8, 2),
        DataType::Decimal128(2, 2),
        DataType::Int64,
        DataType::Int64,
    ];
    assert_eq!(names.len(), types.len());
    let column = |i: usize| -> ArrayRef {
        let values = rows.iter().map(|r| Some(r[i]).filter(|v| !v.is_empty()));
        match &types[i] {
            DataType::Utf8 => Arc::new(values.collect::<arrow_array::StringArray>()),
            DataType::Int64 => Arc::new(
                values
                    .map(|v| v.map(|v| v.parse::<i64>().unwrap()))
                    .collect::<arrow_array::Int64Array>(),
            ),
            DataType::Decimal128(p, s) => Arc::new(
                values
                    .map(|v| v.map(|v| v.replace('.', "").parse::<i128>().unwrap()))
                    .collect::<arrow_array::Decimal128Array>()
                    .with_precision_and_scale(*p, *s)
                    .unwrap(),
            ),
            _ => Arc::new(
                values
                    .map(|v| {
                        v.map(|v| {
                            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
                                .unwrap()
                                .and_utc()
                                .timestamp_micros()
                        })
                    })
                    .collect::<arrow_array::TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        }
    };
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .zip(&types)
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch =
        RecordBatch::try_new(schema.clone(), (0..types.len()).map(column).collect()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.part");
    let format = CsvFormat {
        header: true,
        ..CsvFormat::default()
    };
    let mut w = CsvPartWriter::create(path.clone(), Arc::new(orders()), schema, &format).unwrap();
    w.write(&batch).unwrap();
    w.seal(LsnRange {
        first_lsn: Lsn(1),
        last_lsn: Lsn(1),
        first_ts_us: 0,
    })
    .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), real);
}
