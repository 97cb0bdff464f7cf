//! Partition keys, stream positions, column-change control records and options of the
//! DMS-JSON encoder (helpers in `tests.rs`).

use serde_json::json;

use super::tests::*;
use super::*;
use crate::model::schema::fixtures::col;
use crate::model::{ColumnSchema, TupleValue};
use arrow_array::RecordBatch;

#[test]
fn partition_key_forms() {
    let orders = table(
        "orders",
        vec![
            key_col(col("id", 20, -1)),
            key_col(col("region", 25, -1)),
            col("v", 25, -1),
        ],
        vec![1, 0],
    );
    let v = vec![t("7"), t("eu"), t("x")];
    let one = |o: DmsJsonOptions, tbl: &TableSchema| {
        let r = encode(o, tbl, &[row(RowOp::Insert, 0, &v)]).remove(0);
        let m = parsed(&r)["metadata"].clone();
        (
            r.partition_key,
            m["partition-key-type"].clone(),
            m.get("partition-key-value").cloned(),
        )
    };
    // Key columns in key order, joined by dots.
    assert_eq!(
        one(DmsJsonOptions::default(), &orders),
        (
            "public.orders.eu.7".into(),
            json!("primary-key"),
            Some(json!("public.orders.eu.7"))
        )
    );
    let plain = DmsJsonOptions {
        partition_include_schema_table: false,
        ..Default::default()
    };
    assert_eq!(one(plain, &orders).0, "eu.7");
    let st = DmsJsonOptions {
        partition_key_type: PartitionKeyType::SchemaTable,
        ..Default::default()
    };
    // IncludePartitionValue does not apply to schema-table.
    assert_eq!(
        one(st, &orders),
        ("public.orders".into(), json!("schema-table"), None)
    );
    // No key columns: schema.table, said as schema-table.
    let mut keyless = orders.clone();
    keyless.key.clear();
    assert_eq!(
        one(DmsJsonOptions::default(), &keyless).1,
        json!("schema-table")
    );
    let no_value = DmsJsonOptions {
        include_partition_value: false,
        ..Default::default()
    };
    assert_eq!(one(no_value, &orders).2, None);
}

#[test]
fn long_partition_keys_are_hashed_to_256_characters() {
    let short = "public.t.".to_string() + &"é".repeat(247);
    assert_eq!(short.chars().count(), 256);
    assert_eq!(shorten_partition_key(&short), short.as_str());
    let long_a = short.clone() + "a";
    let long_b = short.clone() + "b";
    let (a, b) = (
        shorten_partition_key(&long_a),
        shorten_partition_key(&long_b),
    );
    assert_eq!(a.chars().count(), 256);
    assert_eq!(b.chars().count(), 256);
    assert_ne!(a, b);
    assert_eq!(a, shorten_partition_key(&long_a), "deterministic");
    assert!(a.starts_with("public.t.é") && a.as_bytes()[a.len() - 17] == b'#');

    // Through the encoder: the record's key is shortened, partition-key-value stays whole.
    let tbl = table("t", vec![key_col(col("k", 25, -1))], vec![0]);
    let long = "x".repeat(300);
    let v = vec![t(&long)];
    let r = encode(
        DmsJsonOptions::default(),
        &tbl,
        &[row(RowOp::Insert, 0, &v)],
    )
    .remove(0);
    assert_eq!(r.partition_key.chars().count(), 256);
    assert_eq!(
        parsed(&r)["metadata"]["partition-key-value"],
        format!("public.t.{long}")
    );
}

#[test]
fn stream_positions_round_trip_and_sort() {
    let p = stream_position(Lsn(0x2_7C00_7178), 12);
    assert_eq!(p, "00000002/7C007178.12.00000002/7C007178");
    assert_eq!(parse_stream_position(&p), Some((Lsn(0x2_7C00_7178), 12)));
    assert_eq!(
        parse_stream_position("00000002/7C007178.1.00000002/7C007179"),
        None
    );
    assert_eq!(parse_stream_position("2/7C007178.1.2/7C007178"), None);
    assert!(stream_position(Lsn(0x1_FFFF_FFFF), 0) < stream_position(Lsn(0x2_0000_0000), 0));
}

#[test]
fn column_changes_make_control_records() {
    let enc = DmsJsonEncoder::new(DmsJsonOptions::default()).unwrap();
    let with_attnums = |mut t: TableSchema| {
        for (i, c) in t.columns.iter_mut().enumerate() {
            c.attnum = Some(i as i16 + 1);
        }
        t
    };
    let old = with_attnums(foo());
    let ops = |new: &TableSchema| -> Vec<String> {
        enc.column_changes(&old, new, Lsn(9), NOW)
            .iter()
            .map(|r| {
                parsed(r)["metadata"]["operation"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert!(ops(&old).is_empty());
    let mut added = old.clone();
    let mut email = col("email", 1043, 64 + 4);
    email.attnum = Some(5);
    added.columns.push(email);
    assert_eq!(ops(&added), ["add-column"]);
    let r = parsed(&enc.column_changes(&old, &added, Lsn(9), NOW)[0]);
    assert_eq!(
        r["control"]["table-def"]["columns"]["email"],
        json!({"type": "STRING", "length": 64, "nullable": true})
    );
    assert_eq!(r["metadata"]["record-type"], "control");
    let mut dropped = old.clone();
    dropped.columns.remove(1);
    assert_eq!(ops(&dropped), ["drop-column"]);
    let mut renamed = old.clone();
    renamed.columns[1].name = "full_name".into();
    assert_eq!(ops(&renamed), ["rename-column"]);
    let mut retyped = old.clone();
    retyped.columns[2] = ColumnSchema {
        attnum: Some(3),
        ..col("age", 20, -1)
    };
    assert_eq!(ops(&retyped), ["change-columns"]);
    let r = parsed(&enc.column_changes(&old, &retyped, Lsn(9), NOW)[0]);
    assert_eq!(r["control"]["table-def"]["columns"]["age"]["type"], "INT64");
    // IncludeTableAlterOperations off: nothing.
    let quiet = DmsJsonEncoder::new(DmsJsonOptions {
        include_table_alter_operations: false,
        ..Default::default()
    })
    .unwrap();
    assert!(quiet.column_changes(&old, &added, Lsn(9), NOW).is_empty());
    // IncludeControlDetails off: metadata only, as DMS's records without details.
    let bare = DmsJsonEncoder::new(DmsJsonOptions {
        include_control_details: false,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        keys(&parsed(&bare.create_table(&foo(), Lsn(9), NOW))),
        ["metadata"]
    );
}

#[test]
fn options_read_from_toml_and_are_checked() {
    let o: DmsJsonOptions = toml::from_str(
        r#"
        include_transaction_details = false
        partition_key_type = "schema-table"
        [before_image]
        enable_before_image = true
        column_filter = "non-lob"
        "#,
    )
    .unwrap();
    assert!(!o.include_transaction_details && o.include_null_and_empty);
    assert_eq!(o.partition_key_type, PartitionKeyType::SchemaTable);
    assert_eq!(o.before_image.field_name, "before-image");
    assert_eq!(o.before_image.column_filter, ColumnFilter::NonLob);
    assert!(toml::from_str::<DmsJsonOptions>("include_nulls = true").is_err());
    let bad = DmsJsonOptions {
        before_image: BeforeImageSettings {
            enable_before_image: true,
            field_name: "data".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = DmsJsonEncoder::new(bad).unwrap_err();
    assert!(e.message.contains("field_name"), "{}", e.message);
    assert!(DmsJsonEncoder::new(DmsJsonOptions {
        task_id: String::new(),
        ..Default::default()
    })
    .is_err());

    // Without transaction details a CDC record keeps transaction-id only.
    let values = jane();
    let plain = DmsJsonOptions {
        include_transaction_details: false,
        ..Default::default()
    };
    let m =
        parsed(&encode(plain, &foo(), &[row(RowOp::Insert, 0, &values)])[0])["metadata"].clone();
    assert_eq!(m["transaction-id"], 1139);
    assert!(m.get("stream-position").is_none() && m.get("commit-timestamp").is_none());
}

#[test]
fn a_batch_of_another_table_is_a_clear_error() {
    let values = jane();
    let b = batch(&foo(), &[row(RowOp::Insert, 0, &values)]);
    let mut other = foo();
    other.columns.push(col("missing", 25, -1));
    let e = DmsJsonEncoder::new(DmsJsonOptions::default())
        .unwrap()
        .encode_batch(&other, &b, NOW)
        .unwrap_err();
    assert!(
        e.message.contains("public.foo") && e.message.contains("\"missing\""),
        "{}",
        e.message
    );
    assert!(e.hint.is_some());
}

#[test]
fn a_key_change_is_a_delete_and_an_insert_on_their_own_keys() {
    // pgcdc's rows of `UPDATE foo SET id = 45 WHERE id = 46` (SPEC 5.1): D of the old key,
    // then I of the new row, same LSN, consecutive _seq.
    let old_key = vec![
        t("46"),
        TupleValue::Null,
        TupleValue::Null,
        TupleValue::Null,
    ];
    let new_row = vec![t("45"), t("Jane"), t("31"), TupleValue::Unchanged];
    let records = encode(
        DmsJsonOptions::default(),
        &foo(),
        &[
            row(RowOp::Delete, 4, &old_key),
            row(RowOp::Insert, 5, &new_row),
        ],
    );
    let keys: Vec<&str> = records.iter().map(|r| r.partition_key.as_str()).collect();
    assert_eq!(keys, ["public.foo.46", "public.foo.45"]);
    let (d, i) = (parsed(&records[0]), parsed(&records[1]));
    assert_eq!(d["metadata"]["operation"], "delete");
    assert_eq!(i["metadata"]["operation"], "insert");
    // The unchanged TOAST value is left out, never sent as null.
    assert_eq!(i["data"], json!({"id": 45, "name": "Jane", "age": 31}));
    let pos = |v: &serde_json::Value| {
        parse_stream_position(v["metadata"]["stream-position"].as_str().unwrap()).unwrap()
    };
    assert!(pos(&d) < pos(&i));
    assert_eq!(
        i["metadata"]["prev-transaction-record-id"],
        d["metadata"]["transaction-record-id"]
    );
}

#[test]
fn a_metadata_column_of_another_type_is_a_clear_error() {
    use arrow_array::{ArrayRef, Int32Array};
    use std::sync::Arc;
    let values = jane();
    let b = batch(&foo(), &[row(RowOp::Insert, 0, &values)]);
    let seq = b.schema().index_of("_seq").unwrap();
    let mut columns: Vec<ArrayRef> = b.columns().to_vec();
    columns[seq] = Arc::new(Int32Array::from(vec![0]));
    let mut fields: Vec<arrow_schema::Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[seq] = arrow_schema::Field::new("_seq", arrow_schema::DataType::Int32, false);
    let b = RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns).unwrap();
    let e = DmsJsonEncoder::new(DmsJsonOptions::default())
        .unwrap()
        .encode_batch(&foo(), &b, NOW)
        .unwrap_err();
    assert!(e.message.contains("_seq of type Int32"), "{}", e.message);
}
