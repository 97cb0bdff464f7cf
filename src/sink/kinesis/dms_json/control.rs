//! Control records: `create-table` when a table enters the stream, `drop-column`,
//! `rename-column`, `add-column` and `change-columns` when its columns change, and
//! `truncate-table` on request.
//!
//! As DMS's real `create-table` record (daq-tools/lorrystream testdata):
//!
//! ```text
//! {"control":{"table-def":{"columns":{"id":{"type":"INT32","nullable":false},…},
//!   "primary-key":["id"]}},
//!  "metadata":{"timestamp":"…","record-type":"control","operation":"create-table",
//!   "partition-key-type":"task-id","partition-key-value":"<task_id>",
//!   "schema-name":"public","table-name":"foo"}}
//! ```
//!
//! `control` is there with `include_control_details` (DMS's `IncludeControlDetails`);
//! `partition-key-value` with `include_partition_value`. Column changes are written only
//! with `include_table_alter_operations`, one record per kind of change, each carrying the
//! new table definition (DMS's exact body for them is not documented; a consumer diffs the
//! definitions).
//!
//! Column types (`type`), per [`PgType`]: `BOOLEAN`, `INT16`, `INT32`, `INT64`, `REAL4`,
//! `REAL8`, `NUMERIC` with `precision` and `scale`, `DATE`, `TIME`, `TIMESTAMP`, `BYTES`,
//! and `STRING` for everything else (text, json, uuid, arrays, numeric without typmod, …),
//! with `length` for `varchar(n)`/`char(n)`. Confirmed by real DMS records: `INT32`,
//! `STRING` (also for a jsonb column), `TIMESTAMP`, `length`, `nullable`; the others are
//! chosen by analogy. `nullable` is `false` for key columns and `true` otherwise (pgcdc's
//! schema does not record other NOT NULL constraints). `primary-key` lists the key columns
//! unless the table has none (or its "key" is every column of a `REPLICA IDENTITY FULL`
//! table without primary key).

use super::values::{metadata_timestamp, push_json_str};
use super::{push_table_names, shorten_partition_key, DmsJsonEncoder, DmsRecord, DmsRecordKind};
use crate::model::{ColumnSchema, Lsn, PgType, TableSchema};

/// OID of `varchar` and `bpchar`, whose typmod is a length + 4.
const VARCHAR_OID: u32 = 1043;
const BPCHAR_OID: u32 = 1042;

impl DmsJsonEncoder {
    /// The `create-table` record of `table`, to send before its first data record. `lsn` is
    /// the record's [`DmsRecord::lsn`] (the LSN from which the definition holds).
    pub fn create_table(&self, table: &TableSchema, lsn: Lsn, now_us: i64) -> DmsRecord {
        self.control(table, "create-table", lsn, now_us)
    }

    /// The control records for a change of `old`'s columns into `new`'s (same table), in
    /// the order `drop-column`, `rename-column`, `add-column`, `change-columns` (a type
    /// change), one per kind present; empty when the columns did not change or
    /// `include_table_alter_operations` is off. Columns are matched by `attnum` when both
    /// sides know it, else by name (then a rename reads as a drop and an add).
    pub fn column_changes(
        &self,
        old: &TableSchema,
        new: &TableSchema,
        lsn: Lsn,
        now_us: i64,
    ) -> Vec<DmsRecord> {
        if !self.options.include_table_alter_operations {
            return Vec::new();
        }
        let find = |c: &ColumnSchema, among: &[ColumnSchema]| -> Option<usize> {
            among.iter().position(|o| match (c.attnum, o.attnum) {
                (Some(a), Some(b)) => a == b,
                _ => o.name == c.name,
            })
        };
        let dropped = old.columns.iter().any(|c| find(c, &new.columns).is_none());
        let mut renamed = false;
        let mut added = false;
        let mut changed = false;
        for c in &new.columns {
            match find(c, &old.columns).map(|i| &old.columns[i]) {
                None => added = true,
                Some(o) => {
                    renamed |= o.name != c.name;
                    changed |= o.type_oid != c.type_oid
                        || o.type_modifier != c.type_modifier
                        || o.pg_type != c.pg_type;
                }
            }
        }
        [
            (dropped, "drop-column"),
            (renamed, "rename-column"),
            (added, "add-column"),
            (changed, "change-columns"),
        ]
        .into_iter()
        .filter(|(present, _)| *present)
        .map(|(_, op)| self.control(new, op, lsn, now_us))
        .collect()
    }

    /// A `truncate-table` control record (DMS's `TruncateTable` control operation). DMS
    /// sends none for a PostgreSQL source and [`encode_batch`](Self::encode_batch) writes
    /// nothing for `T` rows; this is for a caller that chooses to announce truncates.
    pub fn truncate_table(&self, table: &TableSchema, lsn: Lsn, now_us: i64) -> DmsRecord {
        self.control(table, "truncate-table", lsn, now_us)
    }

    fn control(&self, table: &TableSchema, operation: &str, lsn: Lsn, now_us: i64) -> DmsRecord {
        let mut data = Vec::with_capacity(256);
        data.push(b'{');
        if self.options.include_control_details {
            data.extend_from_slice(b"\"control\":{\"table-def\":");
            push_table_def(&mut data, table);
            data.extend_from_slice(b"},");
        }
        data.extend_from_slice(b"\"metadata\":{\"timestamp\":");
        push_json_str(&mut data, &metadata_timestamp(now_us));
        data.extend_from_slice(b",\"record-type\":\"control\",\"operation\":");
        push_json_str(&mut data, operation);
        data.extend_from_slice(b",\"partition-key-type\":\"task-id\"");
        if self.options.include_partition_value {
            data.extend_from_slice(b",\"partition-key-value\":");
            push_json_str(&mut data, &self.options.task_id);
        }
        push_table_names(&mut data, table);
        data.extend_from_slice(b"}}\n");
        let key = format!("{}.{}.{}", self.options.task_id, table.schema, table.name);
        DmsRecord {
            partition_key: shorten_partition_key(&key).into_owned(),
            data,
            lsn,
            seq: -1,
            kind: DmsRecordKind::Control,
        }
    }
}

/// `{"columns":{…},"primary-key":[…]}`
fn push_table_def(out: &mut Vec<u8>, table: &TableSchema) {
    out.extend_from_slice(b"{\"columns\":{");
    for (i, c) in table.columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(out, &c.name);
        out.extend_from_slice(b":{\"type\":");
        let (ty, extra) = dms_type(c);
        push_json_str(out, ty);
        out.extend_from_slice(extra.as_bytes());
        let nullable = !table.key.contains(&i);
        out.extend_from_slice(if nullable {
            b",\"nullable\":true}"
        } else {
            b",\"nullable\":false}"
        });
    }
    out.push(b'}');
    let keyless_full = table.replica_identity == b'f' && table.key.len() == table.columns.len();
    if !table.key.is_empty() && !keyless_full {
        out.extend_from_slice(b",\"primary-key\":[");
        for (i, name) in table.key_names().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_str(out, name);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// The table-def type of a column and its extra attributes (`,"length":n` or
/// `,"precision":p,"scale":s`).
fn dms_type(c: &ColumnSchema) -> (&'static str, String) {
    match &c.pg_type {
        PgType::Bool => ("BOOLEAN", String::new()),
        PgType::Int2 => ("INT16", String::new()),
        PgType::Int4 => ("INT32", String::new()),
        PgType::Int8 => ("INT64", String::new()),
        PgType::Float4 => ("REAL4", String::new()),
        PgType::Float8 => ("REAL8", String::new()),
        PgType::Numeric { precision, scale } => (
            "NUMERIC",
            format!(",\"precision\":{precision},\"scale\":{scale}"),
        ),
        PgType::Date => ("DATE", String::new()),
        PgType::Time => ("TIME", String::new()),
        PgType::Timestamp | PgType::Timestamptz => ("TIMESTAMP", String::new()),
        PgType::Bytea => ("BYTES", String::new()),
        PgType::Text if matches!(c.type_oid, VARCHAR_OID | BPCHAR_OID) && c.type_modifier > 4 => {
            ("STRING", format!(",\"length\":{}", c.type_modifier - 4))
        }
        _ => ("STRING", String::new()),
    }
}
