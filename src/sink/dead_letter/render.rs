//! Building a [`DeadLetter`] from a refused change: from the row as the pipeline or the full
//! load hands it to a sink ([`from_row`]), or from a row already in an Arrow batch
//! ([`from_batch_row`], the Kinesis sink's encoded rows).

use std::collections::BTreeMap;

use arrow_array::{Array, RecordBatch};

use super::DeadLetter;
use crate::batch::{cell_to_string, copy_native, copy_value_text, TableBatchBuilder, ValueError};
use crate::model::{Lsn, OutputRow, RowOp, TableSchema, TupleValue};

fn commit_timestamp(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| format!("{us} µs since 1970"))
}

/// The stream position of a change: `_op`, `_lsn`, `_seq`, `_xid`, commit time (µs).
type Position = (RowOp, Lsn, i64, Option<u32>, i64);

fn letter(
    table: &TableSchema,
    (op, lsn, seq, xid, ts_us): Position,
    sink: &str,
    reason: String,
) -> DeadLetter {
    DeadLetter {
        reason,
        sink: sink.to_string(),
        table: table.qualified_name(),
        op: op.code().to_string(),
        lsn: lsn.to_string(),
        seq,
        xid,
        commit_timestamp: commit_timestamp(ts_us),
        key: BTreeMap::new(),
        column: None,
        values: BTreeMap::new(),
        unchanged: Vec::new(),
        omitted: BTreeMap::new(),
        written_at: crate::time_fmt::now_rfc3339(),
    }
}

fn fill_key(table: &TableSchema, d: &mut DeadLetter) {
    for &i in &table.key {
        if let Some(c) = table.columns.get(i) {
            d.key
                .insert(c.name.clone(), d.values.get(&c.name).cloned().flatten());
        }
    }
}

/// The dead letter of `row` of `table`, which `sink` refused with `error` (a conversion
/// error of [`TableBatchBuilder::append`]), and its key ([`DeadLetter::key`]).
///
/// Values come as PostgreSQL sent them: text as is (a natively read array as `array_out`
/// prints it, see [`copy_value_text`]); another value the full load read in binary
/// form as the canonical text of its converted Arrow value (the form `validate` compares),
/// or, when it cannot be converted either, in `omitted` with its bytes in hex.
pub fn from_row(
    table: &TableSchema,
    row: &OutputRow<'_>,
    error: &ValueError,
    sink: &str,
) -> (String, DeadLetter) {
    // A binary value's bytes are no text: they go to `omitted` in hex, not into the reason.
    let mut shown = error.clone();
    if let Some(i) = error
        .column
        .as_ref()
        .and_then(|n| table.columns.iter().position(|c| &c.name == n))
    {
        if matches!(row.values.get(i), Some(TupleValue::Binary(b)) if copy_value_text(&table.columns[i], b).is_none())
        {
            shown.value = None;
        }
    }
    let mut d = letter(
        table,
        (row.op, row.lsn, row.seq, row.xid, row.commit_ts_us),
        sink,
        shown.to_string(),
    );
    d.column = error.column.clone();
    // Natively read binary values: converted through a one-row batch, with every value
    // that does not convert left out (each attempt finds one).
    let binary = row
        .values
        .iter()
        .zip(&table.columns)
        .any(|(v, c)| matches!(v, TupleValue::Binary(_)) && copy_native(c));
    let mut refused: Vec<usize> = Vec::new();
    let mut batch = None;
    if binary {
        let mut values = row.values.to_vec();
        for _ in 0..=values.len() {
            let mut builder = TableBatchBuilder::new(std::sync::Arc::new(table.clone()));
            match builder.append(&OutputRow {
                values: &values,
                ..*row
            }) {
                Ok(()) => {
                    batch = Some(builder.finish());
                    break;
                }
                Err(e) => match e
                    .column
                    .as_ref()
                    .and_then(|n| table.columns.iter().position(|c| &c.name == n))
                {
                    Some(i) if !refused.contains(&i) => {
                        refused.push(i);
                        values[i] = TupleValue::Null;
                    }
                    _ => break,
                },
            }
        }
    }
    for (i, (c, v)) in table.columns.iter().zip(row.values).enumerate() {
        let text = match v {
            TupleValue::Null => None,
            TupleValue::Unchanged => {
                d.unchanged.push(c.name.clone());
                None
            }
            TupleValue::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            TupleValue::Binary(b) => match (copy_value_text(c, b), &batch, refused.contains(&i)) {
                // Selected as text, or a natively read array: its PostgreSQL text.
                (Some(text), _, _) => Some(text),
                (None, Some(batch), false) => cell_to_string(batch.column(i).as_ref(), 0),
                _ => {
                    d.omitted.insert(
                        c.name.clone(),
                        format!(
                            "read in PostgreSQL's binary form, not convertible: {}",
                            hex::encode(b)
                        ),
                    );
                    None
                }
            },
        };
        d.values.insert(c.name.clone(), text);
    }
    fill_key(table, &mut d);
    let key = DeadLetter::key(&table.schema, &table.name, row.lsn, row.seq, sink);
    (key, d)
}

/// The dead letter of row `index` of `batch` (built by [`TableBatchBuilder`] for `table`),
/// which `sink` refused for `reason`, and its key. Values are the canonical text of the
/// Arrow values; unchanged TOASTed columns are listed in `unchanged`.
pub fn from_batch_row(
    table: &TableSchema,
    batch: &RecordBatch,
    index: usize,
    sink: &str,
    reason: String,
) -> (String, DeadLetter) {
    let meta = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| cell_to_string(c.as_ref(), index))
    };
    let op = meta("_op")
        .and_then(|s| RowOp::from_code(&s))
        .unwrap_or(RowOp::Insert);
    let num = |name: &str| {
        batch.column_by_name(name).and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .filter(|a| a.is_valid(index))
                .map(|a| a.value(index))
        })
    };
    let lsn = Lsn(num("_lsn").unwrap_or(0) as u64);
    let seq = num("_seq").unwrap_or(0);
    let xid = num("_xid").and_then(|x| u32::try_from(x).ok());
    let ts = batch
        .column_by_name("_commit_ts")
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
                .map(|a| a.value(index))
        })
        .unwrap_or(0);
    let mut d = letter(table, (op, lsn, seq, xid, ts), sink, reason);
    for c in &table.columns {
        let v = batch
            .column_by_name(&c.name)
            .and_then(|a| cell_to_string(a.as_ref(), index));
        d.values.insert(c.name.clone(), v);
    }
    if let Some(list) = batch
        .column_by_name("_unchanged")
        .and_then(|c| c.as_any().downcast_ref::<arrow_array::ListArray>())
    {
        if list.is_valid(index) {
            let names = list.value(index);
            if let Some(names) = names.as_any().downcast_ref::<arrow_array::StringArray>() {
                d.unchanged = names.iter().flatten().map(str::to_string).collect();
            }
        }
    }
    fill_key(table, &mut d);
    let key = DeadLetter::key(&table.schema, &table.name, lsn, seq, sink);
    (key, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn table() -> TableSchema {
        use crate::model::schema::fixtures::col;
        let numeric_10_2 = ((10 << 16) | 2) + 4;
        TableSchema {
            relid: 1,
            schema: "public".into(),
            name: "refused".into(),
            columns: vec![
                col("id", 23, -1),
                col("amount", 1700, numeric_10_2),
                col("note", 25, -1),
            ],
            key: vec![0],
            replica_identity: b'd',
            relfilenode: None,
        }
    }

    #[test]
    fn a_refused_row_keeps_its_text_values_key_and_position() {
        let t = table();
        let values = vec![
            TupleValue::Text(Bytes::from_static(b"7")),
            TupleValue::Text(Bytes::from_static(b"NaN")),
            TupleValue::Unchanged,
        ];
        let row = OutputRow {
            op: RowOp::Update,
            lsn: Lsn(0x16B3748),
            seq: 3,
            xid: Some(42),
            commit_ts_us: 1_700_000_000_000_000,
            values: &values,
        };
        let mut b = TableBatchBuilder::new(std::sync::Arc::new(t.clone()));
        let err = b.append(&row).unwrap_err();
        assert!(b.is_empty(), "a refused row leaves nothing in the builder");
        let (key, d) = from_row(&t, &row, &err, "parquet-00000000");
        assert_eq!(
            key,
            "public/refused/00000000016B3748-0000000000000003-parquet%2D00000000.json"
        );
        assert_eq!(d.column.as_deref(), Some("amount"));
        assert!(d.reason.contains("NaN"), "{}", d.reason);
        assert_eq!(
            (d.op.as_str(), d.lsn.as_str(), d.seq, d.xid),
            ("U", "0/16B3748", 3, Some(42))
        );
        assert_eq!(d.commit_timestamp, "2023-11-14T22:13:20.000000Z");
        assert_eq!(
            d.key,
            BTreeMap::from([("id".to_string(), Some("7".to_string()))])
        );
        assert_eq!(d.values["amount"].as_deref(), Some("NaN"));
        assert_eq!(d.unchanged, vec!["note".to_string()]);
        assert!(d.omitted.is_empty());
    }
}
