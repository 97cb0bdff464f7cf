//! The encoder against real DMS records (`tests/fixtures/dms_kinesis/`), every operation and
//! many PostgreSQL types. Partition keys, stream positions, column changes and options:
//! `keys_tests.rs`.

use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::batch::TableBatchBuilder;
use crate::model::schema::fixtures::col;
use crate::model::{ColumnSchema, OutputRow, TupleValue};

const FIXTURE: &str =
    include_str!("../../../../tests/fixtures/dms_kinesis/postgres_source_lambda_event.json");

/// 2024-07-29T00:58:17.974340Z and 2024-07-29T00:58:17.983670Z, µs since 1970.
const COMMIT_TS: i64 = 1_722_214_697_974_340;
pub(super) const NOW: i64 = 1_722_214_697_983_670;

/// The real records of the fixture, base64-decoded and parsed.
fn real_records() -> Vec<Value> {
    let event: Value = serde_json::from_str(FIXTURE).unwrap();
    event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&base64(r["kinesis"]["data"].as_str().unwrap())).unwrap())
        .collect()
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bits: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    bits.chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &v)| n | (v as u32) << (18 - 6 * i));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(c.len() - 1)
        })
        .collect()
}

pub(super) fn key_col(mut c: ColumnSchema) -> ColumnSchema {
    c.replica_identity = true;
    c
}

pub(super) fn table(name: &str, columns: Vec<ColumnSchema>, key: Vec<usize>) -> TableSchema {
    TableSchema {
        relid: 16384,
        schema: "public".into(),
        name: name.into(),
        columns,
        key,
        replica_identity: b'd',
        relfilenode: None,
    }
}

/// `public.foo` of the real records: id int4 (key), name text, age int4, attributes jsonb.
pub(super) fn foo() -> TableSchema {
    table(
        "foo",
        vec![
            key_col(col("id", 23, -1)),
            col("name", 25, -1),
            col("age", 23, -1),
            col("attributes", 3802, -1),
        ],
        vec![0],
    )
}

pub(super) fn t(s: &str) -> TupleValue {
    TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

/// A row of the real insert's transaction: commit LSN 2/7C007178, xid 1139.
pub(super) fn row(op: RowOp, seq: i64, values: &[TupleValue]) -> OutputRow<'_> {
    OutputRow {
        op,
        lsn: Lsn(0x2_7C00_7178),
        seq,
        xid: Some(1139),
        commit_ts_us: COMMIT_TS,
        values,
    }
}

pub(super) fn batch(table: &TableSchema, rows: &[OutputRow<'_>]) -> RecordBatch {
    let mut b = TableBatchBuilder::new(Arc::new(table.clone()));
    for r in rows {
        b.append(r).unwrap();
    }
    b.finish()
}

pub(super) fn encode(
    options: DmsJsonOptions,
    table: &TableSchema,
    rows: &[OutputRow<'_>],
) -> Vec<DmsRecord> {
    DmsJsonEncoder::new(options)
        .unwrap()
        .encode_batch(table, &batch(table, rows), NOW)
        .unwrap()
}

pub(super) fn parsed(r: &DmsRecord) -> Value {
    assert_eq!(
        r.data.last(),
        Some(&b'\n'),
        "one line ending with a newline"
    );
    assert!(!r.data[..r.data.len() - 1].contains(&b'\n'));
    serde_json::from_slice(&r.data).unwrap()
}

pub(super) fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

pub(super) fn jane() -> Vec<TupleValue> {
    vec![t("46"), t("Jane"), t("31"), t(r#"{"baz": "qux"}"#)]
}

#[test]
fn insert_matches_the_real_dms_record_field_by_field() {
    let real = &real_records()[1];
    let options = DmsJsonOptions {
        partition_key_type: PartitionKeyType::SchemaTable,
        ..Default::default()
    };
    let values = jane();
    let records = encode(options, &foo(), &[row(RowOp::Insert, 0, &values)]);
    assert_eq!(records.len(), 1);
    let ours = parsed(&records[0]);
    assert_eq!(keys(&ours), keys(real));
    // Same data: integers as numbers, jsonb as a JSON string, text as a string.
    assert_eq!(ours["data"], real["data"]);
    assert_eq!(keys(&ours["metadata"]), keys(&real["metadata"]));
    for k in keys(&real["metadata"]) {
        if k != "stream-position" {
            assert_eq!(ours["metadata"][k], real["metadata"][k], "metadata.{k}");
        }
    }
    // DMS's stream-position shape, with the same commit LSN; the middle number is our _seq.
    let pos = |v: &Value| {
        parse_stream_position(v["metadata"]["stream-position"].as_str().unwrap()).unwrap()
    };
    assert_eq!(pos(real), (Lsn(0x2_7C00_7178), 3));
    assert_eq!(pos(&ours), (Lsn(0x2_7C00_7178), 0));
    assert_eq!(records[0].partition_key, "public.foo");
    assert_eq!((records[0].lsn, records[0].seq), (Lsn(0x2_7C00_7178), 0));
    assert_eq!(
        records[0].kind,
        DmsRecordKind::Data {
            op: RowOp::Insert,
            row: 0
        }
    );
}

#[test]
fn keys_are_written_in_dms_order() {
    let values = jane();
    let r = &encode(
        DmsJsonOptions::default(),
        &foo(),
        &[row(RowOp::Insert, 0, &values)],
    )[0];
    let text = std::str::from_utf8(&r.data).unwrap();
    let expected = concat!(
        r#"{"data":{"id":46,"name":"Jane","age":31,"attributes":"{\"baz\": \"qux\"}"},"metadata":{"#,
        r#""timestamp":"2024-07-29T00:58:17.983670Z","record-type":"data","operation":"insert","#,
        r#""partition-key-type":"primary-key","partition-key-value":"public.foo.46","#,
        r#""schema-name":"public","table-name":"foo","transaction-id":1139,"transaction-record-id":1,"#,
        r#""commit-timestamp":"2024-07-29T00:58:17.974340Z","#,
        r#""stream-position":"00000002/7C007178.0.00000002/7C007178"}}"#,
        "\n"
    );
    assert_eq!(text, expected);
    assert_eq!(r.partition_key, "public.foo.46");
}

#[test]
fn create_table_matches_the_real_control_record() {
    let real = &real_records()[0];
    let options = DmsJsonOptions {
        task_id: "serv-res-id-1722195358878-yhru".into(),
        ..Default::default()
    };
    let encoder = DmsJsonEncoder::new(options).unwrap();
    // The real record's time: 2024-07-29T00:30:47.266581Z.
    let r = encoder.create_table(&foo(), Lsn(0x2_7C00_0000), 1_722_213_047_266_581);
    let ours = parsed(&r);
    assert_eq!(ours, *real, "every key and value, nested");
    assert_eq!(r.partition_key, "serv-res-id-1722195358878-yhru.public.foo");
    assert_eq!(
        (r.lsn, r.seq, r.kind),
        (Lsn(0x2_7C00_0000), -1, DmsRecordKind::Control)
    );
}

#[test]
fn load_update_delete_have_dms_keys() {
    let (v42, v46) = (
        vec![t("42"), t("John"), t("30"), t(r#"{"foo": "bar"}"#)],
        vec![
            t("46"),
            TupleValue::Null,
            TupleValue::Null,
            TupleValue::Null,
        ],
    );
    let load = OutputRow {
        op: RowOp::Load,
        lsn: Lsn(0x2_0000_0000),
        seq: 0,
        xid: None,
        commit_ts_us: COMMIT_TS,
        values: &v42,
    };
    let opts = DmsJsonOptions {
        before_image: BeforeImageSettings {
            enable_before_image: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut enc = DmsJsonEncoder::new(opts).unwrap();
    let records = enc
        .encode_batch(&foo(), &batch(&foo(), &[load]), NOW)
        .unwrap();
    let l = parsed(&records[0]);
    // As DMS's load record (daq-tools/commons-codec MSG_DATA_LOAD): no transaction fields.
    assert_eq!(
        keys(&l["metadata"]),
        [
            "operation",
            "partition-key-type",
            "partition-key-value",
            "record-type",
            "schema-name",
            "table-name",
            "timestamp"
        ]
    );
    assert_eq!(l["metadata"]["operation"], "load");
    assert_eq!(l["metadata"]["partition-key-value"], "public.foo.42");
    assert_eq!(
        l["data"],
        json!({"age": 30, "attributes": "{\"foo\": \"bar\"}", "id": 42, "name": "John"})
    );

    let rows = [row(RowOp::Update, 0, &v42), row(RowOp::Delete, 1, &v46)];
    let records = enc
        .encode_batch(&foo(), &batch(&foo(), &rows), NOW)
        .unwrap();
    let (u, d) = (parsed(&records[0]), parsed(&records[1]));
    // As DMS's MSG_DATA_UPDATE_VALUE: an empty before image, the previous record named.
    assert_eq!(keys(&u), ["before-image", "data", "metadata"]);
    assert_eq!(u["before-image"], json!({}));
    let cdc_keys = [
        "commit-timestamp",
        "operation",
        "partition-key-type",
        "partition-key-value",
        "prev-transaction-id",
        "prev-transaction-record-id",
        "record-type",
        "schema-name",
        "stream-position",
        "table-name",
        "timestamp",
        "transaction-id",
        "transaction-record-id",
    ];
    // The first CDC record has no previous one (a load record is not one).
    assert_eq!(
        keys(&u["metadata"]),
        cdc_keys
            .iter()
            .filter(|k| !k.starts_with("prev"))
            .copied()
            .collect::<Vec<_>>()
    );
    assert_eq!(keys(&d["metadata"]), cdc_keys);
    assert_eq!(u["metadata"]["operation"], "update");
    // As DMS's MSG_DATA_DELETE: the key, nulls elsewhere, no before image.
    assert_eq!(keys(&d), ["data", "metadata"]);
    assert_eq!(
        d["data"],
        json!({"age": null, "attributes": null, "id": 46, "name": null})
    );
    assert_eq!(d["metadata"]["operation"], "delete");
    assert_eq!(d["metadata"]["transaction-record-id"], 2);
    assert_eq!(d["metadata"]["prev-transaction-id"], 1139);
    assert_eq!(d["metadata"]["prev-transaction-record-id"], 1);
    assert_eq!(records[1].partition_key, "public.foo.46");
}

#[test]
fn values_of_many_postgresql_types() {
    let numeric = |p: i32, s: i32| ((p << 16) | s) + 4;
    let cols = vec![
        key_col(col("id", 20, -1)),
        col("b", 16, -1),
        col("i2", 21, -1),
        col("f4", 700, -1),
        col("f8", 701, -1),
        col("nan", 701, -1),
        col("amount", 1700, numeric(10, 2)),
        col("big", 1700, -1),
        col("vc", 1043, 24),
        col("j", 114, -1),
        col("u", 2950, -1),
        col("raw", 17, -1),
        col("d", 1082, -1),
        col("tm", 1083, -1),
        col("ts", 1114, -1),
        col("tstz", 1184, -1),
        col("inf", 1184, -1),
        col("ints", 1007, -1),
        col("texts", 1009, -1),
        col("iv", 1186, -1),
        col("addr", 869, -1),
        col("empty", 25, -1),
        col("n", 25, -1),
    ];
    let tbl = table("wide", cols, vec![0]);
    let values = vec![
        t("9007199254740993"),
        t("t"),
        t("-7"),
        t("0.1"),
        t("1.5e+300"),
        t("NaN"),
        t("12.50"),
        t("123456789012345678901234567890.123456789"),
        t("héllo \"q\""),
        t(r#"{"a": [1, 2]}"#),
        t("0e6f4b8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
        t("\\x48656c6c6f"),
        t("2024-02-29"),
        t("12:34:56.789"),
        t("2024-01-31 12:34:56.5"),
        t("2024-01-31 12:34:56+00"),
        t("infinity"),
        t("{1,NULL,3}"),
        t(r#"{"a b",c,"",NULL,"x\"y"}"#),
        t("1 day 02:03:04"),
        t("10.0.0.1/32"),
        t(""),
        TupleValue::Null,
    ];
    let r = parsed(
        &encode(
            DmsJsonOptions::default(),
            &tbl,
            &[row(RowOp::Insert, 0, &values)],
        )[0],
    );
    assert_eq!(
        r["data"],
        json!({
            "id": 9007199254740993i64,
            "b": true,
            "i2": -7,
            "f4": 0.1,
            "f8": 1.5e300,
            "nan": "NaN",
            "amount": "12.50",
            "big": "123456789012345678901234567890.123456789",
            "vc": "héllo \"q\"",
            "j": "{\"a\": [1, 2]}",
            "u": "0e6f4b8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            "raw": "0x48656C6C6F",
            "d": "2024-02-29",
            "tm": "12:34:56.789",
            "ts": "2024-01-31T12:34:56.500000Z",
            "tstz": "2024-01-31T12:34:56Z",
            "inf": "infinity",
            "ints": "{1,NULL,3}",
            "texts": r#"{"a b",c,"",NULL,"x\"y"}"#,
            "iv": "1 day 02:03:04",
            "addr": "10.0.0.1/32",
            "empty": "",
            "n": null,
        })
    );
    // The exact text of numbers: a float4 is not widened to 0.10000000149011612.
    let text = String::from_utf8(
        encode(
            DmsJsonOptions::default(),
            &tbl,
            &[row(RowOp::Insert, 0, &values)],
        )[0]
        .data
        .clone(),
    )
    .unwrap();
    assert!(
        text.contains(r#""f4":0.1,"#) && text.contains(r#""id":9007199254740993,"#),
        "{text}"
    );
    assert!(text.contains(r#""f8":1.5e+300,"#), "{text}");

    // NoHexPrefix, and IncludeNullAndEmpty off: null and empty columns left out.
    let opts = DmsJsonOptions {
        no_hex_prefix: true,
        include_null_and_empty: false,
        ..Default::default()
    };
    let r = parsed(&encode(opts, &tbl, &[row(RowOp::Insert, 0, &values)])[0]);
    assert_eq!(r["data"]["raw"], "48656C6C6F");
    assert!(r["data"].get("empty").is_none() && r["data"].get("n").is_none());
    assert_eq!(r["data"]["texts"], r#"{"a b",c,"",NULL,"x\"y"}"#);
}

#[test]
fn unchanged_toast_columns_are_left_out() {
    let values = vec![t("46"), t("Jane"), t("32"), TupleValue::Unchanged];
    let r = parsed(
        &encode(
            DmsJsonOptions::default(),
            &foo(),
            &[row(RowOp::Update, 0, &values)],
        )[0],
    );
    assert_eq!(r["data"], json!({"id": 46, "name": "Jane", "age": 32}));
    // Off by default: no before image.
    assert!(r.get("before-image").is_none());
}

#[test]
fn truncate_rows_write_nothing() {
    let (v, nulls) = (jane(), vec![TupleValue::Null; 4]);
    let records = encode(
        DmsJsonOptions::default(),
        &foo(),
        &[row(RowOp::Truncate, 0, &nulls), row(RowOp::Insert, 1, &v)],
    );
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].kind,
        DmsRecordKind::Data {
            op: RowOp::Insert,
            row: 1
        }
    );
    let enc = DmsJsonEncoder::new(DmsJsonOptions::default()).unwrap();
    let tr = parsed(&enc.truncate_table(&foo(), Lsn(1), NOW));
    assert_eq!(tr["metadata"]["operation"], "truncate-table");
    assert_eq!(tr["metadata"]["record-type"], "control");
}
