//! What changes: a committed transaction ([`TxnMeta`]), the operation of one output row
//! ([`RowOp`]), the values of a row ([`TupleValue`]) and one row with its metadata
//! ([`OutputRow`]).

use bytes::Bytes;

use super::Lsn;

/// What identifies one committed transaction in the output.
///
/// `commit_lsn` is the LSN of the commit record (pgoutput's Begin `final_lsn`); it is what
/// `_lsn` holds. `end_lsn` is the end of the commit record: the position confirmed to the slot
/// once the transaction is durable, so that a restart resumes after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMeta {
    pub xid: Option<u32>,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    /// Commit time in microseconds since the Unix epoch.
    pub commit_ts_us: i64,
}

/// The operation of one output row (`_op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowOp {
    /// A row of the full load (`L`).
    Load,
    Insert,
    Update,
    Delete,
    /// A TRUNCATE marker: the table is empty after this row (`T`).
    Truncate,
}

impl RowOp {
    pub fn code(self) -> &'static str {
        match self {
            RowOp::Load => "L",
            RowOp::Insert => "I",
            RowOp::Update => "U",
            RowOp::Delete => "D",
            RowOp::Truncate => "T",
        }
    }
    pub fn from_code(s: &str) -> Option<RowOp> {
        Some(match s {
            "L" => RowOp::Load,
            "I" => RowOp::Insert,
            "U" => RowOp::Update,
            "D" => RowOp::Delete,
            "T" => RowOp::Truncate,
            _ => return None,
        })
    }
}

/// One column value inside a tuple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TupleValue {
    /// `n`: SQL NULL.
    Null,
    /// `u`: an unchanged TOASTed value; the server did not send it.
    Unchanged,
    /// `t`: the value in the type's text output format.
    Text(Bytes),
    /// `b`: the value in the type's binary send format (`binary` option, PG14+).
    Binary(Bytes),
}

/// One output row: a change (or load row) with its metadata columns.
#[derive(Debug, Clone, Copy)]
pub struct OutputRow<'a> {
    pub op: RowOp,
    pub lsn: Lsn,
    pub seq: i64,
    pub xid: Option<u32>,
    pub commit_ts_us: i64,
    /// One per table column; `Unchanged` → null in the data column and the column's name
    /// listed in `_unchanged` (a null list when there are none).
    pub values: &'a [TupleValue],
}
