//! [`TableBatchBuilder`]: output rows of one table into Arrow record batches.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use super::binary_values::{binary_conv, copy_value_text, parse_binary, BinaryConv};
use super::columns::{parse, Cell, ColumnBuilder, Scratch};
use super::huge::{self, HugeValue};
use super::types::Conv;
use crate::model::{OutputRow, TableSchema, TupleValue};

/// A value that cannot be converted to its column's Arrow type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ValueError {
    /// The column, when the problem is one value.
    pub column: Option<String>,
    /// The column's PostgreSQL type.
    pub pg_type: Option<String>,
    /// The offending value's text, truncated to about 80 characters.
    pub value: Option<String>,
    pub reason: String,
}

const MAX_VALUE_CHARS: usize = 80;

impl ValueError {
    /// An error about a whole row (wrong number of values).
    pub fn row(reason: impl Into<String>) -> ValueError {
        ValueError { column: None, pg_type: None, value: None, reason: reason.into() }
    }

    /// An error about one value.
    pub fn value(column: &str, pg_type: String, value: Option<&[u8]>, reason: impl Into<String>) -> ValueError {
        let value = value.map(|v| {
            let s = String::from_utf8_lossy(v);
            let mut chars = s.chars();
            let head: String = chars.by_ref().take(MAX_VALUE_CHARS).collect();
            if chars.next().is_some() {
                format!("{head}…")
            } else {
                head
            }
        });
        ValueError { column: Some(column.to_string()), pg_type: Some(pg_type), value, reason: reason.into() }
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.column {
            s.push_str(&format!("column {c:?}"));
            if let Some(t) = &self.pg_type {
                s.push_str(&format!(" ({t})"));
            }
            if let Some(v) = &self.value {
                s.push_str(&format!(", value {v:?}"));
            }
            s.push_str(": ");
        }
        s.push_str(&self.reason);
        s
    }
}

/// A batch is handed on once its [`buffered_bytes`](TableBatchBuilder::buffered_bytes)
/// reach this, whatever its row count ([`TableBatchBuilder::is_full`]): the memory of a batch
/// stays bounded with wide or huge values, and a row with a value this large ends its batch.
pub const BATCH_BYTES: usize = 16 << 20;

/// Fixed per-row estimate of the metadata columns' bytes.
const ROW_OVERHEAD_BYTES: usize = 40;
/// Per-value estimate besides the text (offsets, validity, fixed-width slots).
const VALUE_OVERHEAD_BYTES: usize = 8;

/// Builds the record batches of one table: data columns per [`TableSchema`], then the
/// metadata columns. Builders are reused across [`finish`](Self::finish) calls.
pub struct TableBatchBuilder {
    table: Arc<TableSchema>,
    schema: SchemaRef,
    convs: Vec<Conv>,
    /// Per column: how a `TupleValue::Binary` (a binary COPY value of the SELECT list made by
    /// [`copy_select_expr`](super::copy_select_expr)) is decoded.
    binary: Vec<BinaryConv>,
    columns: Vec<ColumnBuilder>,
    op: StringBuilder,
    lsn: Int64Builder,
    seq: Int64Builder,
    xid: Int64Builder,
    commit_ts: TimestampMicrosecondBuilder,
    unchanged: ListBuilder<StringBuilder>,
    cells: Vec<Cell>,
    scratch: Scratch,
    /// Values of the batch's first row held without a copy ([`super::huge`]).
    huge: Vec<HugeValue>,
    rows: usize,
    bytes: usize,
    /// See [`keep_capacity`](Self::keep_capacity).
    keep_capacity: bool,
}

impl TableBatchBuilder {
    pub fn new(table: Arc<TableSchema>) -> Self {
        let convs: Vec<Conv> = table.columns.iter().map(|c| Conv::of(&c.pg_type)).collect();
        let columns = convs.iter().map(ColumnBuilder::new).collect();
        TableBatchBuilder {
            schema: table.arrow_schema(),
            cells: Vec::with_capacity(convs.len()),
            binary: table.columns.iter().map(binary_conv).collect(),
            convs,
            columns,
            op: StringBuilder::new(),
            lsn: Int64Builder::new(),
            seq: Int64Builder::new(),
            xid: Int64Builder::new(),
            commit_ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            unchanged: ListBuilder::new(StringBuilder::new()),
            scratch: Scratch::default(),
            huge: Vec::new(),
            rows: 0,
            bytes: 0,
            keep_capacity: false,
            table,
        }
    }

    pub fn table(&self) -> &Arc<TableSchema> {
        &self.table
    }

    /// The Arrow schema of the batches ([`TableSchema::arrow_schema`]).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends a row. All values are parsed before anything is appended: on error nothing of
    /// the row is in the builder.
    pub fn append(&mut self, row: &OutputRow<'_>) -> Result<(), ValueError> {
        let n = self.columns.len();
        if row.values.len() != n {
            return Err(ValueError::row(format!(
                "a row of {} has {} values but the table has {} columns",
                self.table.qualified_name(),
                row.values.len(),
                n
            )));
        }
        self.cells.clear();
        self.scratch.clear();
        let mut bytes = ROW_OVERHEAD_BYTES + n * VALUE_OVERHEAD_BYTES;
        let mut any_unchanged = false;
        for (i, v) in row.values.iter().enumerate() {
            let cell = match v {
                TupleValue::Null => Cell::Null,
                TupleValue::Unchanged => {
                    any_unchanged = true;
                    Cell::Null
                }
                TupleValue::Text(t) => {
                    bytes += t.len();
                    match parse(&self.convs[i], t, &mut self.scratch) {
                        Ok(c) => c,
                        Err(reason) => return Err(self.value_error(i, Some(t), reason)),
                    }
                }
                TupleValue::Binary(b) => {
                    bytes += b.len();
                    // Columns not read natively were selected as text: their bytes are the text form.
                    match parse_binary(self.binary[i], &self.convs[i], b, &mut self.scratch) {
                        Ok(c) => c,
                        Err(reason) => {
                            // Shown as text where it is known (natively read arrays are printed).
                            let text = copy_value_text(&self.table.columns[i], b);
                            return Err(self.value_error(i, Some(text.as_ref().map_or(&b[..], |t| t.as_bytes())), reason));
                        }
                    }
                }
            };
            self.cells.push(cell);
        }

        // A huge value of the first row is kept as it is; one of an earlier row is copied
        // into its builder now that the batch has a second row.
        for h in self.huge.drain(..) {
            let column = h.column;
            h.append_to(&mut self.columns[column]);
        }
        let mut held = Vec::new();
        for (i, col) in self.columns.iter_mut().enumerate() {
            if self.rows == 0 && huge::is_huge(col, &self.cells[i], &row.values[i]) {
                held.push(i);
                continue;
            }
            let raw: &[u8] = match &row.values[i] {
                TupleValue::Text(t) | TupleValue::Binary(t) => t,
                _ => &[],
            };
            col.append(&self.cells[i], raw, &self.scratch);
        }
        // After the other columns: the last held value may move the scratch out.
        let last = held.len().saturating_sub(1);
        for (n, i) in held.into_iter().enumerate() {
            self.huge.push(huge::hold(i, &self.cells[i], &row.values[i], &mut self.scratch, n == last));
        }
        self.op.append_value(row.op.code());
        self.lsn.append_value(row.lsn.0 as i64);
        self.seq.append_value(row.seq);
        self.xid.append_option(row.xid.map(i64::from));
        self.commit_ts.append_value(row.commit_ts_us);
        if any_unchanged {
            for (c, v) in self.table.columns.iter().zip(row.values) {
                if matches!(v, TupleValue::Unchanged) {
                    self.unchanged.values().append_value(&c.name);
                    bytes += c.name.len();
                }
            }
            self.unchanged.append(true);
        } else {
            self.unchanged.append(false);
        }
        self.rows += 1;
        self.bytes += bytes;
        Ok(())
    }

    fn value_error(&self, i: usize, value: Option<&[u8]>, reason: impl Into<String>) -> ValueError {
        let c = &self.table.columns[i];
        ValueError::value(&c.name, c.pg_type_name(), value, reason)
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Approximate bytes buffered (for flush decisions).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// True once the batch holds `max_rows` rows or [`BATCH_BYTES`]: time to
    /// [`finish`](Self::finish) it.
    pub fn is_full(&self, max_rows: usize) -> bool {
        self.rows >= max_rows || self.bytes >= BATCH_BYTES
    }

    /// After each [`finish`](Self::finish), the data columns' builders get room for a batch
    /// like the last one (the full load's batches all have one size; CDC's vary, and idle
    /// tables should not hold buffers, so this is off by default), at most [`BATCH_BYTES`]
    /// of values per column: a batch with a huge value does not make the next one reserve it.
    pub fn keep_capacity(&mut self) {
        self.keep_capacity = true;
    }

    /// The rows appended so far as one record batch; resets the builder.
    pub fn finish(&mut self) -> RecordBatch {
        let keep = self.keep_capacity;
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| {
                let a = c.finish();
                if keep {
                    c.reserve_like(&a);
                }
                a
            })
            .collect();
        for h in self.huge.drain(..) {
            let column = h.column;
            arrays[column] = h.into_array(&self.columns[column]);
        }
        arrays.push(Arc::new(self.op.finish()));
        arrays.push(Arc::new(self.lsn.finish()));
        arrays.push(Arc::new(self.seq.finish()));
        arrays.push(Arc::new(self.xid.finish()));
        arrays.push(Arc::new(self.commit_ts.finish()));
        arrays.push(Arc::new(self.unchanged.finish()));
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).expect("builder arrays match the table's Arrow schema")
    }
}
