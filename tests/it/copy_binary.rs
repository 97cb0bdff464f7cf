//! The full load's binary COPY path against a real server: a table's rows decoded from
//! `COPY (SELECT <copy_select_expr…>) TO STDOUT (FORMAT binary)` by the incremental parser
//! and the builder's binary path must equal, value by value, the same rows read as text
//! (what CDC receives) through the builder's text path.
//!
//! * `every_type_decodes_like_the_text_path`: every type of SPEC 5.4 and CDC_CASES.md
//!   section 6 with its edge values (NULL array elements, ±infinity, BC dates, `24:00:00`,
//!   NaN/±Infinity in unconstrained numeric, numeric(10,2) and (50,5), json/jsonb, uuid,
//!   bytea, `\N` text, enum, domains).
//! * `values_arrow_cannot_hold_fail_on_both_paths`: refused values are refused by both.
//! * `many_rows_in_many_chunks`: 200k rows, as the server chunks them and re-cut into odd
//!   chunk sizes.
//! * `binary_vs_text_throughput` (ignored): rows/s of both paths on 1M rows,
//!   `cargo test --release --test copy_binary -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use bytes::Bytes;
use futures_util::StreamExt;
use pgcdc::batch::text::{DATE_INFINITY, DATE_NEG_INFINITY, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY};
use pgcdc::batch::{TableBatchBuilder, ValueError, cell_to_string, copy_native, copy_select_expr};
use pgcdc::model::{OutputRow, TableSchema};
use pgcdc::model::{Lsn, RowOp};
use pgcdc::source::catalog::Catalog;
use pgcdc::source::conninfo::SESSION_SETTINGS;
use pgcdc::source::copy::BinaryCopyParser;
use pgcdc::model::TupleValue;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::support::TestDb;

/// Rows per record batch, as the load writes them.
const BATCH_ROWS: usize = 16 * 1024;

/// A client with pgcdc's session settings (both paths read in the same settings).
async fn session(db: &TestDb) -> Client {
    let c = db.client().await;
    let set: String = SESSION_SETTINGS.iter().map(|(k, v)| format!("SET {k} = '{v}';")).collect();
    c.batch_execute(&set).await.expect("session settings");
    c
}

async fn table_schema(db: &TestDb, table: &str) -> Arc<TableSchema> {
    Catalog::new(db.client().await).table_schema("public", table).await.expect("table schema")
}

fn out_row(seq: i64, values: &[TupleValue]) -> OutputRow<'_> {
    OutputRow { op: RowOp::Load, lsn: Lsn(0x1234), seq, xid: None, commit_ts_us: 1_700_000_000_000_000, values }
}

fn copy_sql(table: &TableSchema, order_by: &str) -> String {
    let exprs: Vec<String> = table.columns.iter().map(copy_select_expr).collect();
    format!("COPY (SELECT {} FROM \"{}\" ORDER BY {order_by}) TO STDOUT (FORMAT binary)", exprs.join(", "), table.name)
}

/// The raw CopyData chunks of the binary COPY of `table`.
async fn copy_chunks(client: &Client, table: &TableSchema, order_by: &str) -> Vec<Bytes> {
    let stream = client.copy_out(&copy_sql(table, order_by)).await.expect("COPY");
    futures_util::pin_mut!(stream);
    let mut chunks = Vec::new();
    while let Some(c) = stream.next().await {
        chunks.push(c.expect("COPY data"));
    }
    chunks
}

/// Decodes binary COPY chunks into batches of `BATCH_ROWS` rows.
fn decode_binary(
    table: &Arc<TableSchema>,
    chunks: impl IntoIterator<Item = Bytes>,
) -> Result<Vec<RecordBatch>, ValueError> {
    let mut parser = BinaryCopyParser::with_field_count(table.columns.len());
    let mut builder = TableBatchBuilder::new(table.clone());
    let mut row = Vec::with_capacity(table.columns.len());
    let mut batches = Vec::new();
    let mut seq = 0;
    for chunk in chunks {
        parser.push(chunk);
        while parser.next_row(&mut row).expect("valid COPY stream").is_some() {
            builder.append(&out_row(seq, &row))?;
            seq += 1;
            if builder.len() >= BATCH_ROWS {
                batches.push(builder.finish());
            }
        }
    }
    parser.finish().expect("complete COPY stream");
    batches.push(builder.finish());
    Ok(batches)
}

/// Every row of `SELECT * FROM table ORDER BY …` as text values (simple query protocol).
async fn text_rows(client: &Client, table: &TableSchema, order_by: &str) -> Vec<Vec<TupleValue>> {
    let msgs =
        client.simple_query(&format!("SELECT * FROM \"{}\" ORDER BY {order_by}", table.name)).await.expect("SELECT");
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| match r.get(i) {
                        None => TupleValue::Null,
                        Some(s) => TupleValue::Text(Bytes::copy_from_slice(s.as_bytes())),
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Appends already-received rows (text values, or binary values parsed beforehand).
fn build_rows(table: &Arc<TableSchema>, rows: &[Vec<TupleValue>]) -> Result<Vec<RecordBatch>, ValueError> {
    let mut builder = TableBatchBuilder::new(table.clone());
    let mut batches = Vec::new();
    for (seq, row) in rows.iter().enumerate() {
        builder.append(&out_row(seq as i64, row))?;
        if builder.len() >= BATCH_ROWS {
            batches.push(builder.finish());
        }
    }
    batches.push(builder.finish());
    Ok(batches)
}

/// Asserts equal batches, naming the first differing cell.
fn assert_batches_equal(binary: &[RecordBatch], text: &[RecordBatch]) {
    assert_eq!(binary.len(), text.len(), "batch counts");
    for (n, (b, t)) in binary.iter().zip(text).enumerate() {
        assert_eq!(b.schema(), t.schema(), "schemas of batch {n}");
        assert_eq!(b.num_rows(), t.num_rows(), "rows of batch {n}");
        for (c, field) in b.schema().fields().iter().enumerate() {
            let (bc, tc) = (b.column(c), t.column(c));
            for r in 0..b.num_rows() {
                assert_eq!(
                    cell_to_string(bc.as_ref(), r),
                    cell_to_string(tc.as_ref(), r),
                    "batch {n}, row {r}, column {} ({}): binary vs text",
                    field.name(),
                    field.data_type()
                );
            }
            // And the exact Arrow values (float bits, sentinels, offsets, validity).
            assert!(bc.to_data() == tc.to_data(), "column {} differs as Arrow data", field.name());
        }
    }
}

const SETUP: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN label AS text;
CREATE DOMAIN amount AS numeric(12,2);
CREATE DOMAIN doc AS jsonb;
CREATE DOMAIN day AS date;
CREATE DOMAIN big AS int8;
CREATE TABLE alltypes (
  id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8,
  n10 numeric(10,2), n38 numeric(38,4), n50 numeric(50,5), n0 numeric(5,0), nu numeric, m money,
  c1 "char", cn char(5), vc varchar(10), nm name, t text, by bytea,
  d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
  u uuid, j json, jb jsonb, ip inet, cid cidr, mac macaddr, mac8 macaddr8, x xml,
  r int4range, nmr nummultirange, tsv tsvector, pt point, bx box,
  e mood, pi posint, lb label, am amount, dc doc, dy day, bg big,
  ab bool[], ai2 int2[], ai int[], ai8 int8[], af4 float4[], af8 float8[], an numeric[], an10 numeric(10,2)[],
  at text[], avc varchar[], aby bytea[], ad date[], atm time[], attz timetz[], ats timestamp[], atstz timestamptz[],
  aiv interval[], au uuid[], aj json[], ajb jsonb[], aip inet[], ae mood[], abx box[], ac1 "char"[]);
INSERT INTO alltypes VALUES
 (1, true, -32768, -2147483648, -9223372036854775808, 0, '-Infinity', 'NaN',
  -99999999.99, 1234567890123456789012345678901234.5678, 1234567890123456789012345678901234567890.12345, 99999, 'NaN', -92233720368547758.08,
  'a', 'ab', 'varchar', 'name', E'tab\there \\N "q", ü, 日本', '\x00ff10',
  '0044-03-15 BC', '24:00:00', '24:00:00+05:30', 'infinity', '-infinity', '1 year 2 mons -3 days 04:05:06.5',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2], "k": "\u00fc"}', '{"b": null, "a": 1, "s": "x\ny"}',
  '10.0.0.1/8', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', '<a>x</a>',
  '[1,5)', '{[1.5,2), [3,4]}', 'a fat cat', '(1,2)', '(1,2),(3,4)',
  'happy', 7, 'lbl', 1234567890.12, '{"x": {"y": [true, null]}}', 'infinity', 42,
  '{t,f,NULL}', '{1,NULL,-32768}', '{1,NULL,3}', '{9223372036854775807,NULL}', '{1.5,NaN,-Infinity,NULL}', '{-0,1e300,Infinity}',
  '{1.5,NaN,Infinity,-Infinity,NULL}', '{1.25,NULL,-3}',
  '{"a b","NULL",NULL,"","\\N","x,y","q\"uote"}', '{v,NULL}', '{"\\\\x00ff",NULL}', '{infinity,-infinity,2024-01-01,0044-03-15 BC,NULL}',
  '{24:00:00,NULL,00:00:00.000001}', '{24:00:00+05,NULL}', '{infinity,-infinity,"0044-03-15 10:00:00 BC",NULL}',
  '{"2024-01-01 00:00:00+00",NULL,infinity}', '{"1 day",NULL}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}',
  ARRAY['{"a":1}'::json, NULL], ARRAY['{"b":[1,2]}'::jsonb, NULL], '{10.0.0.1,NULL}', '{sad,NULL,happy}',
  '{(1,2),(3,4);(5,6),(7,8)}', '{a,NULL}'),
 (2, false, 32767, 2147483647, 9223372036854775807, 4294967295, 'Infinity', '-0',
  99999999.99, -99999999999999999999999999999999.9999, -0.00001, -99999, 'Infinity', 92233720368547758.07,
  ' ', 'abcde', '', 'n', '', '\x',
  '4714-11-24 BC', '00:00:00', '00:00:00-15:59', '-infinity', 'infinity', '-178000000 years',
  '00000000-0000-0000-0000-000000000000', '"just a string"', '[]',
  '::1', '::/0', 'ff:ff:ff:ff:ff:ff', 'ff:ff:ff:ff:ff:ff:ff:ff', '',
  'empty', '{}', '', '(-1.5,0)', '(0,0),(0,0)',
  'sad', 2147483647, '', -0.01, 'null', '-infinity', -1,
  '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}'),
 (3, NULL, 0, 0, 0, 1, 1.5, 0.1,
  0.01, 0, 0, 0, '-Infinity', 0,
  NULL, NULL, NULL, NULL, '\N', '\x5c4e',
  '5874897-12-31', '12:34:56.789', '12:34:56.789012-08', '294000-01-01 00:00:00', '2000-01-01 00:00:00+00', NULL,
  NULL, NULL, '{"deep": {"a": [1, 2.50, -3e5, "ü\\u0000x"]}}',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, true, 1, 1, 1, 1, 3.4028235e38, 1.7976931348623157e308,
  1, 1.5, 1.5, 1, 0.000000000000000000000000000001, 1,
  'z', 'x', 'x', 'x', 'x', '\x00',
  '2000-01-01', '23:59:59.999999', '23:59:59.999999+15:59', '1999-12-31 23:59:59.999999', '1970-01-01 00:00:00+00', '0',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '1', '1',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  'ok', 1, 'x', 0, '0', '1970-01-01', 0,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
-- numerics of every shape: weights, scales and trailing zeros around the base-10000 groups
INSERT INTO alltypes (id, iv, ttz, n10, n38, n50, nu, am, an, an10, at)
  SELECT 100 + g,
         make_interval(years => (g % 7 - 3) * (g % 5), months => g % 13 - 6, days => g % 61 - 30,
                       hours => CASE WHEN g % 3 = 0 THEN -(g % 100) ELSE g % 1000 END, mins => g % 59,
                       secs => (CASE WHEN g % 4 = 0 THEN -1 ELSE 1 END) * (g % 60 + (g % 7) / 8.0 + g * 0.000001)),
         make_time(g % 24, g % 60, (g % 60) + (g % 9) * 0.1 + (g % 11) * 0.000001)::timetz
           AT TIME ZONE (CASE g % 4 WHEN 0 THEN '+05:30' WHEN 1 THEN '-08' WHEN 2 THEN '+00:00:17' ELSE '+13:45' END),
         round((g * 1234.5678 - 5e7)::numeric, 2),
         (g::numeric ^ 7 / 997)::numeric(38,4),
         (CASE WHEN g % 2 = 0 THEN 1 ELSE -1 END * g::numeric ^ 11 / 7)::numeric(50,5),
         (CASE g % 5 WHEN 0 THEN g::numeric / 7 WHEN 1 THEN (g * 10000)::numeric WHEN 2 THEN 1 / g::numeric
                     WHEN 3 THEN round(g::numeric / 3, g % 20) ELSE -g::numeric ^ 3 * 1e-8 END),
         g / 100.0,
         ARRAY[(g::numeric ^ 9 / 13), NULL, round(g::numeric / 7, g % 30), -g::numeric * 1e-12],
         ARRAY[round((g * 1234.5678 - 5e7)::numeric, 2), NULL],
         ARRAY[repeat(' ', g % 3) || 'v' || g, CASE WHEN g % 4 = 0 THEN 'NULL' END, repeat('"', g % 2) || '{}\']
    FROM generate_series(1, 2000) g;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_decodes_like_the_text_path() {
    let db = crate::support::fresh_db("copy_binary_types").await;
    db.exec(SETUP).await;
    let table = table_schema(&db, "alltypes").await;
    let client = session(&db).await;

    // The one decision: natively read types are selected as they are, the rest as text.
    let expr = |name: &str| copy_select_expr(table.columns.iter().find(|c| c.name == name).unwrap());
    for native in [
        "b", "i2", "i4", "i8", "o", "f4", "f8", "n10", "n38", "n50", "nu", "cn", "vc", "nm", "t", "by", "d", "tm",
        "ts", "tstz", "u", "j", "jb", "pi", "am", "dy", "ai", "ajb", "ab", "ai2", "ai8", "an", "an10", "at", "avc",
        "au", "aj", "ttz", "iv",
    ] {
        assert_eq!(expr(native), format!("\"{native}\""), "{native} is read natively");
    }
    for cast in ["m", "c1", "ip", "x", "r", "e", "lb", "dc", "bg", "ats", "af8", "aby", "ae", "ac1"] {
        assert_eq!(
            expr(cast),
            format!("CASE WHEN num_nulls(\"{cast}\") = 0 THEN format('%s', \"{cast}\") END"),
            "{cast} is sent as text"
        );
    }
    let natives = table.columns.iter().filter(|c| copy_native(c)).count();
    assert!(natives >= 25, "{natives} native columns");

    let chunks = copy_chunks(&client, &table, "id").await;
    assert!(chunks.len() > 1000, "the server sends a chunk per row ({} chunks)", chunks.len());
    let binary = decode_binary(&table, chunks.clone()).expect("binary path");
    let rows = text_rows(&client, &table, "id").await;
    let text = build_rows(&table, &rows).expect("text path");
    assert_eq!(binary[0].num_rows(), 2005);
    assert_batches_equal(&binary, &text);

    // The same stream as one chunk and cut at odd places decodes the same.
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    for size in [all.len(), 7, 4093] {
        let pieces: Vec<Bytes> = all.chunks(size).map(Bytes::copy_from_slice).collect();
        assert_batches_equal(&decode_binary(&table, pieces).expect("binary path"), &text);
    }

    // A few values checked against their documented Arrow form, so that both paths cannot
    // be wrong the same way.
    let b = &binary[0];
    let cell = |col: &str, row: usize| cell_to_string(b.column_by_name(col).unwrap().as_ref(), row);
    assert_eq!(cell("d", 0).as_deref(), Some("0044-03-15 BC"));
    assert_eq!(cell("tm", 0).as_deref(), Some("24:00:00"));
    assert_eq!(cell("nu", 0).as_deref(), Some("NaN"));
    assert_eq!(cell("nu", 1).as_deref(), Some("Infinity"));
    assert_eq!(cell("nu", 2).as_deref(), Some("-Infinity"));
    assert_eq!(cell("nu", 3).as_deref(), Some("0.000000000000000000000000000001"));
    assert_eq!(cell("n10", 0).as_deref(), Some("-99999999.99"));
    assert_eq!(cell("n50", 0).as_deref(), Some("1234567890123456789012345678901234567890.12345"));
    assert_eq!(cell("n50", 1).as_deref(), Some("-0.00001"));
    assert_eq!(cell("t", 2).as_deref(), Some("\\N"));
    assert_eq!(cell("by", 0).as_deref(), Some("\\x00ff10"));
    assert_eq!(cell("jb", 0).as_deref(), Some(r#"{"a": 1, "b": null, "s": "x\ny"}"#));
    assert_eq!(cell("u", 0).as_deref(), Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(cell("e", 0).as_deref(), Some("happy"));
    assert_eq!(cell("ai", 0).as_deref(), Some("[1,null,3]"));
    assert_eq!(cell("iv", 0).as_deref(), Some("1 year 2 mons -3 days +04:05:06.5"));
    assert_eq!(cell("iv", 1).as_deref(), Some("-178000000 years"));
    assert_eq!(cell("ttz", 0).as_deref(), Some("24:00:00+05:30"));
    assert_eq!(cell("ttz", 1).as_deref(), Some("00:00:00-15:59"));
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, TimestampMicrosecondType};
    let d = b.column_by_name("dy").unwrap().as_primitive::<Date32Type>();
    assert_eq!((d.value(0), d.value(1)), (DATE_INFINITY, DATE_NEG_INFINITY));
    let ts = b.column_by_name("ts").unwrap().as_primitive::<TimestampMicrosecondType>();
    assert_eq!((ts.value(0), ts.value(1)), (TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY));
    assert_eq!(b.column_by_name("n50").unwrap().data_type(), &DataType::Decimal256(50, 5));
    assert_eq!(b.column_by_name("n38").unwrap().data_type(), &DataType::Decimal128(38, 4));
    assert_eq!(b.column_by_name("am").unwrap().data_type(), &DataType::Decimal128(12, 2));

    // Types whose cast to text differs from their output function, and composites whose
    // fields are all NULL (`IS NULL` is true for them, yet the value is not NULL).
    db.exec(
        r#"CREATE DOMAIN padded AS char(4);
           CREATE TYPE pair AS (a int, b text);
           CREATE TABLE extras (id int, p padded, cp pair, ip inet, c1 "char", bl bool[], dbl bool);
           INSERT INTO extras VALUES (1, 'ab', ROW(NULL, NULL), '::1', '\351', '{t,f}', true),
                                     (2, NULL, NULL, '10.0.0.1/8', NULL, NULL, NULL),
                                     (3, '', ROW(1, 'x y'), '192.168.0.1', 'a', '{NULL}', false);"#,
    )
    .await;
    let table = table_schema(&db, "extras").await;
    let binary = decode_binary(&table, copy_chunks(&client, &table, "id").await).expect("binary path");
    let text = build_rows(&table, &text_rows(&client, &table, "id").await).expect("text path");
    assert_batches_equal(&binary, &text);
    let b = &binary[0];
    let cell = |col: &str, row: usize| cell_to_string(b.column_by_name(col).unwrap().as_ref(), row);
    assert_eq!((cell("p", 0).as_deref(), cell("p", 1), cell("p", 2).as_deref()), (Some("ab  "), None, Some("    ")));
    assert_eq!((cell("cp", 0).as_deref(), cell("cp", 1)), (Some("(,)"), None));
    assert_eq!(cell("ip", 0).as_deref(), Some("::1"));
    assert_eq!(cell("bl", 0).as_deref(), Some("[t,f]"));
}

/// Values the mapping refuses are refused by the binary path too, with the same reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_arrow_cannot_hold_fail_on_both_paths() {
    let db = crate::support::fresh_db("copy_binary_refused").await;
    let client = session(&db).await;
    let numeric_nan = db.cluster.version_num() >= 140000;
    let mut cases = vec![
        ("ts_far", "timestamp", "'294270-01-01 00:00:00'"),
        ("tstz_far", "timestamptz", "'294270-01-01 00:00:00+00'"),
        ("arr2d", "int[]", "'{{1,2},{3,4}}'"),
        ("arr_bounds", "int[]", "'[0:2]={1,NULL,3}'"),
        ("arr2d_bounds", "text[]", "'[2:3][1:2]={{\"a b\",c},{NULL,\"\"}}'"),
        ("arr3d_text", "varchar[]", "'{{{x,\"NULL\"}}}'"),
        ("arr_dec_nan", "numeric(10,2)[]", "'{1.5,NaN}'"),
    ];
    if numeric_nan {
        cases.push(("n_nan", "numeric(10,2)", "'NaN'"));
    }
    for (name, ty, value) in cases {
        db.exec(&format!("CREATE TABLE {name} (v {ty}); INSERT INTO {name} VALUES ({value})")).await;
        let table = table_schema(&db, name).await;
        let text = build_rows(&table, &text_rows(&client, &table, "1").await).unwrap_err();
        let binary = decode_binary(&table, copy_chunks(&client, &table, "1").await).unwrap_err();
        assert_eq!(binary.reason, text.reason, "{name}: binary {binary} vs text {text}");
        if ty.ends_with("[]") {
            // Natively read arrays are shown as array_out prints them, as the text path shows them.
            assert_eq!(binary.value, text.value, "{name}");
        }
        assert_eq!(binary.column.as_deref(), Some("v"));
    }
}

async fn fill_many(db: &TestDb, table: &str, rows: u64) {
    db.exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, t text, n numeric(12,2), ts timestamptz, jb jsonb,
                               d date, u uuid, nu numeric, ai int[], f8 float8, by bytea);
         INSERT INTO {table}
           SELECT g, 'row ' || g || repeat('x', (g % 50)::int), (g * 1.37)::numeric(12,2),
                  timestamptz '2024-01-01 00:00:00+00' + g * interval '1.000001 second',
                  jsonb_build_object('id', g, 'tags', jsonb_build_array('a', g % 7)),
                  date '2000-01-01' + (g % 20000)::int, md5(g::text)::uuid,
                  CASE WHEN g % 1000 = 0 THEN 'NaN'::numeric ELSE g::numeric / 3 END,
                  ARRAY[g::int, NULL, -g::int], g / 7.0, decode(md5(g::text), 'hex')
             FROM generate_series(1, {rows}) g;
         ANALYZE {table};"
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rows_in_many_chunks() {
    let db = crate::support::fresh_db("copy_binary_many").await;
    fill_many(&db, "many", 200_000).await;
    let table = table_schema(&db, "many").await;
    let client = session(&db).await;
    let chunks = copy_chunks(&client, &table, "id").await;
    let text = build_rows(&table, &text_rows(&client, &table, "id").await).expect("text path");
    assert_eq!(text.iter().map(RecordBatch::num_rows).sum::<usize>(), 200_000);
    assert!(text.len() > 10, "several batches");
    let binary = decode_binary(&table, chunks.iter().cloned()).expect("binary path");
    assert_batches_equal(&binary, &text);
    // Re-cut into chunks that straddle rows everywhere.
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    for size in [65_536, 1021] {
        let pieces: Vec<Bytes> = all.chunks(size).map(Bytes::copy_from_slice).collect();
        assert_batches_equal(&decode_binary(&table, pieces).expect("binary path"), &text);
    }
}

/// Throughput of both paths on 1M rows of (bigint, text, numeric(12,2), timestamptz, jsonb):
/// end to end (server, transfer, decoding into batches) and decoding alone (from chunks or
/// rows already received). Prints rows/s; asserts only that both agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn binary_vs_text_throughput() {
    const ROWS: u64 = 1_000_000;
    let db = crate::support::fresh_db("copy_binary_speed").await;
    db.exec(&format!(
        "CREATE TABLE speed (id bigint PRIMARY KEY, t text, n numeric(12,2), ts timestamptz, jb jsonb);
         INSERT INTO speed
           SELECT g, 'row number ' || g, (g * 1.37)::numeric(12,2),
                  timestamptz '2024-01-01 00:00:00+00' + g * interval '1.000001 second',
                  jsonb_build_object('id', g, 'name', 'item ' || g, 'tags', jsonb_build_array('a', g % 7))
             FROM generate_series(1, {ROWS}) g"
    ))
    .await;
    db.exec("VACUUM ANALYZE speed").await;
    let table = table_schema(&db, "speed").await;
    let client = session(&db).await;
    let rate = |secs: f64| format!("{:>10.0} rows/s ({secs:.2} s)", ROWS as f64 / secs);
    let rows_of = |b: &[RecordBatch]| b.iter().map(RecordBatch::num_rows).sum::<usize>() as u64;

    for round in 1..=2 {
        // End to end: COPY binary streamed into the builder, as the load does.
        let t = Instant::now();
        let stream = client.copy_out(&copy_sql(&table, "id")).await.expect("COPY");
        futures_util::pin_mut!(stream);
        let mut parser = BinaryCopyParser::with_field_count(table.columns.len());
        let mut builder = TableBatchBuilder::new(table.clone());
        let mut row = Vec::new();
        let (mut n, mut bytes) = (0u64, 0usize);
        while let Some(c) = stream.next().await {
            let c = c.unwrap();
            bytes += c.len();
            parser.push(c);
            while parser.next_row(&mut row).unwrap().is_some() {
                builder.append(&out_row(n as i64, &row)).unwrap();
                n += 1;
                if builder.len() >= BATCH_ROWS {
                    std::hint::black_box(builder.finish());
                }
            }
        }
        parser.finish().unwrap();
        std::hint::black_box(builder.finish());
        let binary_e2e = t.elapsed().as_secs_f64();
        assert_eq!(n, ROWS);

        // End to end, text: the rows as CDC sees them (simple query), then the builder.
        let t = Instant::now();
        let rows = text_rows(&client, &table, "id").await;
        let text_fetch = t.elapsed().as_secs_f64();
        let text = build_rows(&table, &rows).unwrap();
        let text_e2e = t.elapsed().as_secs_f64();
        assert_eq!(rows_of(&text), ROWS);

        // Decoding alone (data already received), best of 3 each.
        let chunks = copy_chunks(&client, &table, "id").await;
        let best = |f: &mut dyn FnMut()| {
            (0..3)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::MAX, f64::min)
        };
        let binary_decode =
            best(&mut || drop(std::hint::black_box(decode_binary(&table, chunks.iter().cloned()).unwrap())));
        let text_decode = best(&mut || drop(std::hint::black_box(build_rows(&table, &rows).unwrap())));
        // The two halves of the binary decode: COPY parsing alone, the builder alone.
        let binary_parse = best(&mut || {
            let mut parser = BinaryCopyParser::with_field_count(table.columns.len());
            let mut row = Vec::new();
            let mut n = 0u64;
            for c in chunks.iter().cloned() {
                parser.push(c);
                while parser.next_row(&mut row).unwrap().is_some() {
                    n += row.len() as u64;
                }
            }
            assert_eq!(std::hint::black_box(n), ROWS * 5);
        });
        let mut parser = BinaryCopyParser::with_field_count(table.columns.len());
        let mut parsed = Vec::with_capacity(ROWS as usize);
        for c in chunks.iter().cloned() {
            parser.push(c);
            while parser.next_row(&mut row).unwrap().is_some() {
                parsed.push(row.clone());
            }
        }
        let binary_build = best(&mut || drop(std::hint::black_box(build_rows(&table, &parsed).unwrap())));
        if round == 1 {
            assert_batches_equal(&decode_binary(&table, chunks.iter().cloned()).unwrap(), &text);
        }

        println!(
            "round {round}: {ROWS} rows of (bigint, text, numeric(12,2), timestamptz, jsonb), {:.1} MB of binary COPY",
            bytes as f64 / 1e6
        );
        println!("  end to end (server, transfer, decode into batches):");
        println!("    binary COPY              {}", rate(binary_e2e));
        println!("    text SELECT              {}  (of which fetching {text_fetch:.2} s)", rate(text_e2e));
        println!("  decoding alone, best of 3:");
        println!("    binary (parse + build)   {}", rate(binary_decode));
        println!("    text (build)             {}", rate(text_decode));
        println!("    binary COPY parse only   {}", rate(binary_parse));
        println!("    binary build only        {}", rate(binary_build));
    }
}
