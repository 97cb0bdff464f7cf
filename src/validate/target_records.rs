//! A target file's change rows as the partitioned comparison takes them: read column by
//! column from its Arrow batches straight into column-numbered values ([`super::packed`]),
//! named, filled and converted by the file's [`FilePlan`] exactly as
//! [`super::materialize::apply_plan`] does for the rows of the whole-table path (a column
//! takes the number of its materialised name; a column of the newest file the file lacks
//! takes its fill, except in a `T`; `_unchanged` names are renamed alike).

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};

use super::identity::{self, FilePlan, FileShape};
use super::materialize::Conversions;
use super::packed::{put_change_head, put_region, Columns};
use crate::batch::cell_to_string;
use crate::error::{Error, Result};
use crate::model::RowOp;

/// One change row being handed over: its values by column number (`None`: NULL, or a
/// column the row does not have), which the receiver may change before [`TargetRow::encode`].
pub struct TargetRow<'s> {
    pub op: RowOp,
    pub lsn: i64,
    pub seq: i64,
    pub key_id: u32,
    pub unchanged: &'s [u32],
    /// May grow (a column past the file's own: NULL until set).
    pub values: &'s mut Vec<Option<String>>,
}

impl TargetRow<'_> {
    /// The change record ([`super::packed`]) into `out` (cleared first).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_change_head(
            out,
            self.op,
            self.lsn,
            self.seq,
            self.key_id,
            self.unchanged,
        );
        put_region(
            out,
            self.values.iter().map(|v| v.as_deref().map(str::as_bytes)),
        );
    }
}

/// How one file's columns become column numbers (built from its shape and plan).
pub struct FileEncoder {
    /// Per data column of the file: its name in the batches, number, conversion.
    data: Vec<(String, u32, Option<(u32, i32)>)>,
    fills: Vec<(u32, Option<String>)>,
    /// `_unchanged` names as written → their numbers.
    unchanged: HashMap<String, u32>,
    key_id: u32,
    width: usize,
}

impl FileEncoder {
    pub fn new(shape: &FileShape, plan: &FilePlan, columns: &mut Columns) -> FileEncoder {
        let data: Vec<(String, u32, Option<(u32, i32)>)> = shape
            .columns
            .iter()
            .zip(&plan.names)
            .zip(&plan.convert)
            .map(|((c, name), convert)| (c.name.clone(), columns.id(name), *convert))
            .collect();
        let fills: Vec<(u32, Option<String>)> = plan
            .fill
            .iter()
            .map(|(n, v)| (columns.id(n), v.clone()))
            .collect();
        let unchanged = data
            .iter()
            .map(|(written, id, _)| (written.clone(), *id))
            .collect();
        let width = data
            .iter()
            .map(|d| d.1)
            .chain(fills.iter().map(|f| f.0))
            .max()
            .map_or(0, |m| m as usize + 1);
        FileEncoder {
            data,
            fills,
            unchanged,
            key_id: columns.key_id(&plan.key),
            width,
        }
    }

    /// Every row of `batch`, in order, into `f`. `columns` numbers `_unchanged` names that
    /// are no column of the file; `converted` caches conversions.
    pub fn rows(
        &self,
        batch: &RecordBatch,
        columns: &mut Columns,
        converted: &mut Conversions,
        f: &mut dyn FnMut(&mut TargetRow) -> Result<()>,
    ) -> Result<()> {
        let schema = batch.schema();
        let col = |name: &str| {
            schema
                .index_of(name)
                .map(|i| batch.column(i).clone())
                .map_err(|_| Error::runtime(format!("missing column {name}")))
        };
        let (op, lsn, seq, unch) = (col("_op")?, col("_lsn")?, col("_seq")?, col("_unchanged")?);
        let (op, lsn, seq, unch) = (
            op.as_string::<i32>(),
            lsn.as_primitive::<Int64Type>(),
            seq.as_primitive::<Int64Type>(),
            unch.as_list::<i32>(),
        );
        let arrays: Vec<(arrow_array::ArrayRef, u32, Option<(u32, i32)>)> = self
            .data
            .iter()
            .map(|(name, id, conv)| col(name).map(|a| (a, *id, *conv)))
            .collect::<Result<_>>()?;
        let mut values: Vec<Option<String>> = vec![None; self.width];
        let mut unchanged: Vec<u32> = Vec::new();
        for r in 0..batch.num_rows() {
            let code = op.value(r);
            let op = RowOp::from_code(code)
                .ok_or_else(|| Error::runtime(format!("unknown _op `{code}`")))?;
            unchanged.clear();
            if !unch.is_null(r) {
                let l = unch.value(r);
                let names = l.as_string::<i32>();
                for i in 0..names.len() {
                    let u = names.value(i);
                    unchanged.push(
                        self.unchanged
                            .get(u)
                            .copied()
                            .unwrap_or_else(|| columns.id(u)),
                    );
                }
            }
            values.iter_mut().for_each(|v| *v = None);
            for (array, id, convert) in &arrays {
                let mut v = cell_to_string(array.as_ref(), r);
                if let (Some(to), Some(text)) = (convert, &v) {
                    let c = converted.entry((*to, text.clone())).or_insert_with(|| {
                        identity::to_canonical(to.0, to.1, text).or_else(|| Some(text.clone()))
                    });
                    v = c.clone();
                }
                values[*id as usize] = v;
            }
            if op != RowOp::Truncate {
                for (id, fill) in &self.fills {
                    values[*id as usize] = fill.clone();
                }
            }
            f(&mut TargetRow {
                op,
                lsn: lsn.value(r),
                seq: seq.value(r),
                key_id: self.key_id,
                unchanged: &unchanged,
                values: &mut values,
            })?;
        }
        Ok(())
    }
}
