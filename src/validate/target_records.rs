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
use arrow_schema::DataType;

use super::identity::{self, FilePlan, FileShape};
use super::materialize::Conversions;
use super::packed::{put_change_head, put_region, Columns};
use crate::batch::cell_to_string;
use crate::error::{Error, Result};
use crate::model::RowOp;

/// One change row being handed over: its values by column number ([`Cells`]), which the
/// receiver may change before [`TargetRow::encode`].
pub struct TargetRow<'s> {
    pub op: RowOp,
    pub lsn: i64,
    pub seq: i64,
    pub key_id: u32,
    pub unchanged: &'s [u32],
    pub values: &'s mut Cells,
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
        let Cells { text, at } = &*self.values;
        put_region(
            out,
            at.iter()
                .map(|r| r.map(|(s, e)| &text[s as usize..e as usize])),
        );
    }
}

/// One row's values by column number, in one buffer reused row after row (`None`: NULL,
/// or a column the row does not have).
#[derive(Default)]
pub struct Cells {
    text: Vec<u8>,
    at: Vec<Option<(u32, u32)>>,
}

impl Cells {
    fn clear(&mut self, width: usize) {
        self.text.clear();
        self.at.clear();
        self.at.resize(width, None);
    }

    /// Value `i` (its canonical text).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.at
            .get(i)
            .copied()
            .flatten()
            .map(|(s, e)| &self.text[s as usize..e as usize])
    }

    /// Sets value `i` (the row grows when `i` is past its columns).
    pub fn set(&mut self, i: usize, v: Option<&[u8]>) {
        if self.at.len() <= i {
            self.at.resize(i + 1, None);
        }
        self.at[i] = v.map(|b| {
            let start = self.text.len() as u32;
            self.text.extend_from_slice(b);
            (start, self.text.len() as u32)
        });
    }
}

/// The type `(oid, typmod)` a column's values are converted to, if any.
type Convert = Option<(u32, i32)>;

/// How one file's columns become column numbers (built from its shape and plan).
pub struct FileEncoder {
    /// Per data column of the file: its name in the batches, number, conversion.
    data: Vec<(String, u32, Convert)>,
    fills: Vec<(u32, Option<String>)>,
    /// `_unchanged` names as written → their numbers.
    unchanged: HashMap<String, u32>,
    key_id: u32,
    width: usize,
}

impl FileEncoder {
    pub fn new(shape: &FileShape, plan: &FilePlan, columns: &mut Columns) -> FileEncoder {
        let data: Vec<(String, u32, Convert)> = shape
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
        let col = |name: &str| super::materialize::meta_column(batch, name);
        let (op, lsn, seq, unch) = (col("_op")?, col("_lsn")?, col("_seq")?, col("_unchanged")?);
        let (op, lsn, seq, unch) = (
            op.as_string::<i32>(),
            lsn.as_primitive::<Int64Type>(),
            seq.as_primitive::<Int64Type>(),
            unch.as_list::<i32>(),
        );
        let arrays: Vec<(arrow_array::ArrayRef, u32, Convert)> = self
            .data
            .iter()
            .map(|(name, id, conv)| col(name).map(|a| (a, *id, *conv)))
            .collect::<Result<_>>()?;
        let mut values = Cells::default();
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
            values.clear(self.width);
            for (array, id, convert) in &arrays {
                let (array, id) = (array.as_ref(), *id as usize);
                match (convert, array.data_type()) {
                    // A Utf8 value is its own canonical text (`cell_to_string`), copied as is.
                    (None, DataType::Utf8) if !array.is_null(r) => {
                        values.set(id, Some(array.as_string::<i32>().value(r).as_bytes()))
                    }
                    (None, _) => {
                        values.set(id, cell_to_string(array, r).as_deref().map(str::as_bytes))
                    }
                    (Some(to), _) => {
                        let v = cell_to_string(array, r).and_then(|text| {
                            converted
                                .entry((*to, text.clone()))
                                .or_insert_with(|| {
                                    identity::to_canonical(to.0, to.1, &text).or(Some(text))
                                })
                                .clone()
                        });
                        values.set(id, v.as_deref().map(str::as_bytes));
                    }
                }
            }
            if op != RowOp::Truncate {
                for (id, fill) in &self.fills {
                    values.set(*id as usize, fill.as_deref().map(str::as_bytes));
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
