//! DMS-JSON records (SPEC 5.3): the change rows of a record batch in pgcdc's native layout
//! (SPEC 5.1) as the JSON records AWS DMS's Kinesis target writes for a PostgreSQL source,
//! so consumers built for DMS keep working.
//!
//! [`DmsJsonEncoder::encode_batch`] turns one table's [`RecordBatch`] (built by
//! [`TableBatchBuilder`](crate::batch::TableBatchBuilder) from that table's [`TableSchema`])
//! into one [`DmsRecord`] per row; [`DmsJsonEncoder::create_table`] and
//! [`DmsJsonEncoder::column_changes`] make the control records. Options: [`DmsJsonOptions`].
//!
//! # A data record
//!
//! One line of JSON ending with `\n` (DMS's `JSON_UNFORMATTED`), keys in DMS's order:
//!
//! ```text
//! {"data":{"id":46,"name":"Jane",...},["before-image":{},]"metadata":{
//!   "timestamp":"2024-07-29T00:58:17.983670Z","record-type":"data","operation":"insert",
//!   "partition-key-type":"primary-key",["partition-key-value":"public.foo.46",]
//!   "schema-name":"public","table-name":"foo","transaction-id":1139,
//!   "transaction-record-id":1,["prev-transaction-id":1138,"prev-transaction-record-id":2,]
//!   "commit-timestamp":"2024-07-29T00:58:17.974340Z",
//!   "stream-position":"00000002/7C007178.0.00000002/7C007178"}}
//! ```
//!
//! * `data`: the table's columns in table order, values per [`values`] (integers as
//!   numbers, json/jsonb as strings, …).
//! * `operation`: `load` (`L`), `insert` (`I`), `update` (`U`), `delete` (`D`).
//! * `timestamp`: when the record was built (the caller's clock), always six fraction digits.
//! * `transaction-id`: `_xid`, on every CDC record (not on `load`, as in DMS's load records).
//! * With `include_transaction_details` (CDC records only; DMS writes none on `load`):
//!   `transaction-record-id` is `_seq + 1` (DMS counts from 1); `prev-transaction-id` and
//!   `prev-transaction-record-id` name the record this encoder wrote before (absent for the
//!   first record after a start, and they follow the order the batches are encoded in);
//!   `commit-timestamp` is `_commit_ts`.
//! * **`stream-position`** is `LLLLLLLL/LLLLLLLL.S.LLLLLLLL/LLLLLLLL`: DMS's shape (its real
//!   records read `00000002/7C007178.3.00000002/7C007178`) with the commit LSN (`_lsn`) as
//!   two 8-digit upper-case hex halves on both sides and `S` = `_seq` in decimal. A
//!   change's `(commit LSN, _seq)` is unique and grows in commit order, so a consumer drops
//!   a record whose position it has seen ([`parse_stream_position`] reads it back).
//!
//! # Rows DMS would write differently, and what pgcdc does
//!
//! * **Deletes** carry the replica-identity columns and `null` elsewhere (as DMS's real
//!   delete record: `{"age": null, "attributes": null, "id": 45, "name": null}`); with
//!   `include_null_and_empty = false` the nulls are left out.
//! * **Key-changing updates** are a `delete` of the old key and an `insert` of the new row
//!   (pgcdc's rows, SPEC 5.1), where DMS writes one `update` with the old key in the before
//!   image. Each record goes to its own key's partition, so per-key order holds; a
//!   consumer applying deletes and inserts by key reaches the same table.
//! * **Unchanged TOAST values** (`_unchanged`) are left out of `data`, never written as
//!   `null`: the column keeps the value the consumer has. (DMS looks such values up again
//!   in full-LOB mode; pgcdc does not query the source per row.)
//! * **TRUNCATE** (`T` rows) writes nothing: DMS does not send a PostgreSQL TRUNCATE to a
//!   Kinesis target (Qlik Replicate, the engine DMS is built on, lists "change processing of
//!   TRUNCATE operations is not supported" for PostgreSQL sources). DMS's Kinesis message
//!   format documents a `TruncateTable` control operation for other sources;
//!   [`DmsJsonEncoder::truncate_table`] builds that control record for a caller that wants
//!   to announce it.
//! * **Before image** (`before_image.enable_before_image`): `{}` on every `update`, see
//!   [`BeforeImageSettings`].
//!
//! # Partition keys
//!
//! `primary-key`: `schema.table.v1[.v2…]` (or `v1[.v2…]` without
//! `partition_include_schema_table`), key values in their `data` text (a null part is
//! empty); a table without key columns falls back to `schema.table` and says
//! `schema-table`. `schema-table`: `schema.table`. Control records: `task.schema.table`
//! (DMS's `TaskId.SchemaName.TableName`). A key longer than Kinesis's 256 characters is
//! shortened by [`shorten_partition_key`]; `partition-key-value` keeps the full key.

mod control;
#[cfg(test)]
mod keys_tests;
mod options;
#[cfg(test)]
mod tests;
pub mod values;

use std::borrow::Cow;
use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use crate::batch::schema::{
    metadata_fields, COL_COMMIT_TS, COL_LSN, COL_OP, COL_SEQ, COL_UNCHANGED, COL_XID,
};
use crate::error::Error;
use crate::model::{Lsn, RowOp, TableSchema};
pub use options::{BeforeImageSettings, ColumnFilter, DmsJsonOptions, PartitionKeyType};
use values::{key_text, metadata_timestamp, push_json_str, push_json_value};

/// Kinesis's limit on a partition key, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// What a [`DmsRecord`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmsRecordKind {
    /// A row change; `row` is its index in the encoded batch.
    Data { op: RowOp, row: usize },
    /// A control record (`create-table`, a column change, `truncate-table`).
    Control,
}

/// One Kinesis record: what PutRecords sends (`partition_key`, `data`) and where the change
/// sits in the stream (`lsn`, `seq`) for ordering, acknowledgement and dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmsRecord {
    /// At most [`MAX_PARTITION_KEY_CHARS`] characters, never empty.
    pub partition_key: String,
    /// The JSON text, one line ending with `\n`.
    pub data: Vec<u8>,
    /// `_lsn` of the row (commit LSN; the snapshot LSN for `load`); for a control record the
    /// LSN the caller gave.
    pub lsn: Lsn,
    /// `_seq` of the row; `-1` for a control record, so that it sorts before the rows of
    /// the same LSN.
    pub seq: i64,
    pub kind: DmsRecordKind,
}

/// Builds DMS-JSON records. Holds the options and the last CDC record written (for
/// `prev-transaction-id`), so one encoder serves one stream and is called in commit order.
#[derive(Debug, Clone)]
pub struct DmsJsonEncoder {
    options: DmsJsonOptions,
    /// `(transaction-id, transaction-record-id)` of the last CDC record encoded.
    prev: Option<(i64, i64)>,
}

/// The metadata columns of one batch, checked once.
struct Meta<'a> {
    op: &'a arrow_array::StringArray,
    lsn: &'a arrow_array::Int64Array,
    seq: &'a arrow_array::Int64Array,
    xid: &'a arrow_array::Int64Array,
    commit_ts: &'a arrow_array::TimestampMicrosecondArray,
    unchanged: &'a arrow_array::ListArray,
}

impl DmsJsonEncoder {
    /// An encoder with checked options ([`DmsJsonOptions::validate`]).
    pub fn new(options: DmsJsonOptions) -> Result<Self, Error> {
        options.validate()?;
        Ok(DmsJsonEncoder {
            options,
            prev: None,
        })
    }

    pub fn options(&self) -> &DmsJsonOptions {
        &self.options
    }

    /// One record per `L`/`I`/`U`/`D` row of `batch`, in row order; `T` rows write nothing.
    /// `batch` is one table's batch in pgcdc's native layout, built from `table` (its data
    /// columns are found by name, so extra columns are ignored); `now_us` (µs since 1970) is
    /// the records' `timestamp`.
    ///
    /// Errors (runtime, with a hint) when the batch lacks a column of `table` or a metadata
    /// column has another Arrow type: a caller bug, not a data problem. Values never fail:
    /// every value the layout holds has a JSON form.
    pub fn encode_batch(
        &mut self,
        table: &TableSchema,
        batch: &RecordBatch,
        now_us: i64,
    ) -> Result<Vec<DmsRecord>, Error> {
        let meta = Meta::of(table, batch)?;
        let columns: Vec<&ArrayRef> = table
            .columns
            .iter()
            .map(|c| {
                batch
                    .column_by_name(&c.name)
                    .ok_or_else(|| layout_error(table, &format!("no column {:?}", c.name)))
            })
            .collect::<Result<_, _>>()?;
        let key: Vec<&ArrayRef> = table
            .key
            .iter()
            .filter_map(|&i| columns.get(i).copied())
            .collect();
        let timestamp = metadata_timestamp(now_us);
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let op = match RowOp::from_code(meta.op.value(row)) {
                Some(RowOp::Truncate) => continue,
                Some(op) => op,
                None => {
                    return Err(layout_error(
                        table,
                        &format!("_op {:?} in row {row}", meta.op.value(row)),
                    ))
                }
            };
            let (key_type, full_key) = self.data_partition_key(table, &key, row);
            let mut data = Vec::with_capacity(256);
            data.extend_from_slice(b"{\"data\":{");
            self.push_data(&mut data, table, &columns, &meta, row);
            data.push(b'}');
            if op == RowOp::Update && self.options.before_image.enable_before_image {
                data.push(b',');
                push_json_str(&mut data, &self.options.before_image.field_name);
                data.extend_from_slice(b":{}");
            }
            data.extend_from_slice(b",\"metadata\":{\"timestamp\":");
            push_json_str(&mut data, &timestamp);
            data.extend_from_slice(b",\"record-type\":\"data\",\"operation\":\"");
            data.extend_from_slice(operation_name(op).as_bytes());
            data.extend_from_slice(b"\",\"partition-key-type\":\"");
            data.extend_from_slice(key_type.as_str().as_bytes());
            data.push(b'"');
            if self.options.include_partition_value && key_type == PartitionKeyType::PrimaryKey {
                data.extend_from_slice(b",\"partition-key-value\":");
                push_json_str(&mut data, &full_key);
            }
            push_table_names(&mut data, table);
            let lsn = meta.lsn.value(row);
            let seq = meta.seq.value(row);
            if op != RowOp::Load {
                self.push_transaction(&mut data, &meta, row, lsn, seq);
            }
            data.extend_from_slice(b"}}\n");
            out.push(DmsRecord {
                partition_key: shorten_partition_key(&full_key).into_owned(),
                data,
                lsn: Lsn(lsn as u64),
                seq,
                kind: DmsRecordKind::Data { op, row },
            });
        }
        Ok(out)
    }

    /// `"col":value,…` of one row: unchanged TOAST columns left out, nulls and empty strings
    /// left out unless `include_null_and_empty`.
    fn push_data(
        &self,
        out: &mut Vec<u8>,
        table: &TableSchema,
        columns: &[&ArrayRef],
        meta: &Meta<'_>,
        row: usize,
    ) {
        let unchanged = (!meta.unchanged.is_null(row)).then(|| meta.unchanged.value(row));
        let unchanged = unchanged.as_ref().map(|a| a.as_string::<i32>());
        let mut first = true;
        for (c, array) in table.columns.iter().zip(columns) {
            if unchanged.is_some_and(|u| u.iter().any(|n| n == Some(c.name.as_str()))) {
                continue;
            }
            if !self.options.include_null_and_empty && is_null_or_empty(array.as_ref(), row) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            push_json_str(out, &c.name);
            out.push(b':');
            push_json_value(out, array.as_ref(), row, self.options.no_hex_prefix);
        }
    }

    /// `transaction-id` and, with transaction details, the rest; remembers this record as
    /// the next one's `prev-…`.
    fn push_transaction(
        &mut self,
        out: &mut Vec<u8>,
        meta: &Meta<'_>,
        row: usize,
        lsn: i64,
        seq: i64,
    ) {
        let xid = (!meta.xid.is_null(row)).then(|| meta.xid.value(row));
        if let Some(x) = xid {
            let _ = write!(out, ",\"transaction-id\":{x}");
        }
        if !self.options.include_transaction_details {
            return;
        }
        let record_id = seq + 1;
        let _ = write!(out, ",\"transaction-record-id\":{record_id}");
        if let (Some((px, pr)), Some(_)) = (self.prev, xid) {
            let _ = write!(
                out,
                ",\"prev-transaction-id\":{px},\"prev-transaction-record-id\":{pr}"
            );
        }
        out.extend_from_slice(b",\"commit-timestamp\":");
        push_json_str(out, &metadata_timestamp(meta.commit_ts.value(row)));
        out.extend_from_slice(b",\"stream-position\":");
        push_json_str(out, &stream_position(Lsn(lsn as u64), seq));
        if let Some(x) = xid {
            self.prev = Some((x, record_id));
        }
    }

    /// The partition key type actually used and the full (unshortened) key of a data row.
    fn data_partition_key(
        &self,
        table: &TableSchema,
        key: &[&ArrayRef],
        row: usize,
    ) -> (PartitionKeyType, String) {
        let schema_table = format!("{}.{}", table.schema, table.name);
        if self.options.partition_key_type == PartitionKeyType::SchemaTable || key.is_empty() {
            return (PartitionKeyType::SchemaTable, schema_table);
        }
        let parts: Vec<String> = key
            .iter()
            .map(|a| key_text(a.as_ref(), row, self.options.no_hex_prefix).unwrap_or_default())
            .collect();
        let values = parts.join(".");
        let full = if self.options.partition_include_schema_table {
            format!("{schema_table}.{values}")
        } else {
            values
        };
        // Kinesis rejects an empty key (a single empty text key without the prefix).
        (
            PartitionKeyType::PrimaryKey,
            if full.is_empty() { schema_table } else { full },
        )
    }
}

impl<'a> Meta<'a> {
    /// The metadata columns of `batch`, each with the Arrow type of
    /// [`metadata_fields`] (SPEC 5.1).
    fn of(table: &TableSchema, batch: &'a RecordBatch) -> Result<Meta<'a>, Error> {
        let fields = metadata_fields();
        let col = |name: &str| -> Result<&'a ArrayRef, Error> {
            let a = batch
                .column_by_name(name)
                .ok_or_else(|| layout_error(table, &format!("no column {name}")))?;
            let want = fields
                .iter()
                .find(|f| f.name() == name)
                .map(|f| f.data_type());
            if want != Some(a.data_type()) {
                return Err(layout_error(
                    table,
                    &format!("column {name} of type {}", a.data_type()),
                ));
            }
            Ok(a)
        };
        Ok(Meta {
            op: col(COL_OP)?.as_string::<i32>(),
            lsn: col(COL_LSN)?.as_primitive::<Int64Type>(),
            seq: col(COL_SEQ)?.as_primitive::<Int64Type>(),
            xid: col(COL_XID)?.as_primitive::<Int64Type>(),
            commit_ts: col(COL_COMMIT_TS)?.as_primitive::<TimestampMicrosecondType>(),
            unchanged: col(COL_UNCHANGED)?.as_list::<i32>(),
        })
    }
}

fn layout_error(table: &TableSchema, what: &str) -> Error {
    Error::runtime(format!(
        "cannot write DMS-JSON records of {}: its record batch has {what}",
        table.qualified_name()
    ))
    .with_hint("this is a bug in pgcdc: the batch must be built by TableBatchBuilder from the same TableSchema")
}

fn is_null_or_empty(array: &dyn Array, row: usize) -> bool {
    array.is_null(row)
        || (array.data_type() == &DataType::Utf8 && array.as_string::<i32>().value(row).is_empty())
}

/// DMS's `operation` of a data record.
fn operation_name(op: RowOp) -> &'static str {
    match op {
        RowOp::Load => "load",
        RowOp::Insert => "insert",
        RowOp::Update => "update",
        RowOp::Delete => "delete",
        RowOp::Truncate => "truncate-table",
    }
}

/// `,"schema-name":…,"table-name":…`
fn push_table_names(out: &mut Vec<u8>, table: &TableSchema) {
    out.extend_from_slice(b",\"schema-name\":");
    push_json_str(out, &table.schema);
    out.extend_from_slice(b",\"table-name\":");
    push_json_str(out, &table.name);
}

/// `stream-position` of a change: `LLLLLLLL/LLLLLLLL.{seq}.LLLLLLLL/LLLLLLLL` with the commit
/// LSN on both sides (see the module documentation).
pub fn stream_position(lsn: Lsn, seq: i64) -> String {
    let l = format!("{:08X}/{:08X}", lsn.0 >> 32, lsn.0 & 0xFFFF_FFFF);
    format!("{l}.{seq}.{l}")
}

/// The `(commit LSN, _seq)` of a `stream-position` written by [`stream_position`]; `None`
/// for any other text.
pub fn parse_stream_position(s: &str) -> Option<(Lsn, i64)> {
    let mut parts = s.splitn(3, '.');
    let (first, seq, last) = (parts.next()?, parts.next()?, parts.next()?);
    let lsn = |p: &str| -> Option<u64> {
        let (hi, lo) = p.split_once('/')?;
        if hi.len() != 8 || lo.len() != 8 {
            return None;
        }
        Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
    };
    let l = lsn(first)?;
    (lsn(last)? == l).then_some(())?;
    Some((Lsn(l), seq.parse().ok()?))
}

/// A partition key Kinesis accepts: `key` itself when it has at most
/// [`MAX_PARTITION_KEY_CHARS`] characters, else its first 239 characters, `#` and 16
/// hex digits of a 64-bit FNV-1a hash of the whole key (256 characters). Deterministic
/// across runs and versions, so one key always lands on one shard; two long keys that
/// share the hash only share a shard, which keeps each key's order.
pub fn shorten_partition_key(key: &str) -> Cow<'_, str> {
    if key.chars().count() <= MAX_PARTITION_KEY_CHARS {
        return Cow::Borrowed(key);
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let prefix: String = key.chars().take(MAX_PARTITION_KEY_CHARS - 17).collect();
    Cow::Owned(format!("{prefix}#{hash:016x}"))
}
