//! Huge values into Arrow arrays without copying them.
//!
//! # Memory contract
//!
//! A string or binary value of at least [`BATCH_BYTES`] that is the first row of a
//! [`TableBatchBuilder`](super::TableBatchBuilder) batch is not copied into the column's
//! Arrow builder: the batch's array for that column is made at
//! [`finish`](super::TableBatchBuilder::finish) over the value's own bytes — a slice of the
//! buffer it arrived in (the COPY message of the full load, the pgoutput message of CDC),
//! or the row's decoded bytes (a bytea or an array element's text) moved out of the scratch
//! space. That buffer then lives as long as the batch. Such a row makes the batch full
//! (its byte count passes [`BATCH_BYTES`]), so callers finish the batch before the next row;
//! if they append one anyway, the value is copied into its builder first, and the batch is
//! built as usual.

use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, StringArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};

use super::builder::BATCH_BYTES;
use super::columns::{Cell, ColumnBuilder, Scratch};
use crate::model::TupleValue;

/// A huge value held for one column of the batch's single row.
pub(crate) struct HugeValue {
    pub column: usize,
    data: Buffer,
}

/// Whether `cell` of `col` is a value this module holds without a copy: a top-level string
/// or binary value of at least [`BATCH_BYTES`].
pub(crate) fn is_huge(col: &ColumnBuilder, cell: &Cell, raw: &TupleValue) -> bool {
    let len = match (*cell, raw) {
        (Cell::Raw, TupleValue::Text(b) | TupleValue::Binary(b)) => b.len(),
        (Cell::RawFrom(start), TupleValue::Text(b) | TupleValue::Binary(b)) => {
            b.len().saturating_sub(start as usize)
        }
        (Cell::Bytes { start, end }, _) => (end - start) as usize,
        _ => return false,
    };
    len >= BATCH_BYTES && matches!(col, ColumnBuilder::Utf8(_) | ColumnBuilder::Binary(_))
}

/// Takes the bytes of a value [`is_huge`] accepted. A scratch value moves the scratch
/// buffer out when `take_scratch` (the row's last held value: nothing reads the scratch
/// after it), else it is copied.
pub(crate) fn hold(
    column: usize,
    cell: &Cell,
    raw: &TupleValue,
    sc: &mut Scratch,
    take_scratch: bool,
) -> HugeValue {
    let data = match (*cell, raw) {
        (Cell::Raw, TupleValue::Text(b) | TupleValue::Binary(b)) => Buffer::from(b.clone()),
        (Cell::RawFrom(start), TupleValue::Text(b) | TupleValue::Binary(b)) => {
            Buffer::from(b.slice(start as usize..))
        }
        (Cell::Bytes { start, end }, _) if take_scratch => {
            Buffer::from_vec(std::mem::take(&mut sc.bytes))
                .slice_with_length(start as usize, (end - start) as usize)
        }
        (Cell::Bytes { start, end }, _) => Buffer::from(&sc.bytes[start as usize..end as usize]),
        (c, _) => unreachable!("is_huge accepted cell {c:?}"),
    };
    HugeValue { column, data }
}

impl HugeValue {
    /// The one-row array of the value, of `col`'s type.
    pub fn into_array(self, col: &ColumnBuilder) -> ArrayRef {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(vec![0i32, self.len()]));
        match col {
            ColumnBuilder::Utf8(_) => {
                // SAFETY: the bytes were checked to be UTF-8 when the value was parsed.
                Arc::new(unsafe { StringArray::new_unchecked(offsets, self.data, None) })
            }
            ColumnBuilder::Binary(_) => Arc::new(BinaryArray::new(offsets, self.data, None)),
            _ => unreachable!("is_huge accepts string and binary columns only"),
        }
    }

    /// Appends the value to `col` (a copy), when the batch gets a second row.
    pub fn append_to(self, col: &mut ColumnBuilder) {
        match col {
            // SAFETY: as in `into_array`.
            ColumnBuilder::Utf8(b) => {
                b.append_value(unsafe { std::str::from_utf8_unchecked(self.data.as_slice()) })
            }
            ColumnBuilder::Binary(b) => b.append_value(self.data.as_slice()),
            _ => unreachable!("is_huge accepts string and binary columns only"),
        }
    }

    fn len(&self) -> i32 {
        i32::try_from(self.data.len()).expect("a PostgreSQL value is under 1 GiB")
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use bytes::Bytes;

    use super::*;
    use crate::batch::TableBatchBuilder;
    use crate::model::schema::fixtures::col;
    use crate::model::{Lsn, OutputRow, RowOp, TableSchema};

    fn builder() -> TableBatchBuilder {
        let columns = vec![col("id", 20, -1), col("t", 25, -1), col("b", 17, -1)];
        let table = TableSchema {
            relid: 1,
            schema: "public".into(),
            name: "h".into(),
            columns,
            key: vec![0],
            replica_identity: b'd',
            relfilenode: None,
        };
        TableBatchBuilder::new(Arc::new(table))
    }

    fn append(b: &mut TableBatchBuilder, values: &[TupleValue]) {
        b.append(&OutputRow {
            op: RowOp::Insert,
            lsn: Lsn(1),
            seq: 0,
            xid: None,
            commit_ts_us: 0,
            values,
        })
        .unwrap();
    }

    fn text(s: &str) -> TupleValue {
        TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A huge text value and a huge text-form bytea of the first row become arrays over
    /// their own bytes (the text's buffer is the message's), and the batch is full.
    #[test]
    fn first_row_values_are_held_without_a_copy() {
        let mut b = builder();
        let big = "é".repeat(BATCH_BYTES / 2 + 1);
        let message = Bytes::from(big.clone().into_bytes());
        let hex = format!("\\x{}", "ab".repeat(BATCH_BYTES));
        append(
            &mut b,
            &[
                text("1"),
                TupleValue::Text(message.clone()),
                TupleValue::Text(Bytes::from(hex)),
            ],
        );
        assert!(b.is_full(usize::MAX));
        let batch = b.finish();
        let t = batch.column(1).as_string::<i32>();
        assert_eq!(t.value(0), big);
        assert_eq!(
            t.value_data().as_ptr(),
            message.as_ptr(),
            "the array shares the message's bytes"
        );
        let bin = batch.column(2).as_binary::<i32>();
        assert_eq!(bin.value(0).len(), BATCH_BYTES);
        assert!(bin.value(0).iter().all(|&x| x == 0xab));
        assert_eq!(batch.num_rows(), 1);
    }

    /// A second row in the same batch (callers normally finish first) copies the held
    /// value into its builder: both rows come out as appended.
    #[test]
    fn a_second_row_copies_the_held_value() {
        let mut b = builder();
        let big = "x".repeat(BATCH_BYTES);
        append(&mut b, &[text("1"), text(&big), TupleValue::Null]);
        append(&mut b, &[text("2"), text("small"), text("\\x01")]);
        let batch = b.finish();
        let t = batch.column(1).as_string::<i32>();
        assert_eq!((t.value(0) == big, t.value(1)), (true, "small"));
        assert!(batch.column(2).is_null(0));
        assert_eq!(batch.column(2).as_binary::<i32>().value(1), &[1u8]);
        // The builder is reusable: the next batch starts empty.
        append(&mut b, &[text("3"), text("s"), TupleValue::Null]);
        assert_eq!(b.finish().column(1).as_string::<i32>().value(0), "s");
    }
}
