//! Reading a source table through the same type mapping as the output, so the two compare
//! cell by cell, and the per-table comparison report.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{TableBatchBuilder, cell_to_string};
use crate::model::{OutputRow, TableSchema};
use crate::error::{Error, Result};
use crate::model::{Lsn, RowOp};
use crate::model::TupleValue;

/// Key → data values (in `table.columns` order), as canonical strings.
pub type Rows = HashMap<Vec<Option<String>>, Vec<Option<String>>>;

/// Converts text rows (as `simple_query` returns them, in column order) through the Arrow
/// type mapping of `table`, keyed by `table.key`.
pub fn canonical_rows(table: &Arc<TableSchema>, text_rows: &[Vec<Option<String>>]) -> Result<Rows> {
    Ok(canonical_list(table, text_rows)?
        .into_iter()
        .map(|vals| (table.key.iter().map(|&k| vals[k].clone()).collect(), vals))
        .collect())
}

/// Text rows through the Arrow type mapping of `table`, in order, as canonical strings.
pub fn canonical_list(table: &Arc<TableSchema>, text_rows: &[Vec<Option<String>>]) -> Result<Vec<Vec<Option<String>>>> {
    let mut builder = TableBatchBuilder::new(table.clone());
    let mut out = Vec::with_capacity(text_rows.len());
    let mut values: Vec<TupleValue> = Vec::with_capacity(table.columns.len());
    for chunk in text_rows.chunks(8192) {
        for r in chunk {
            values.clear();
            values.extend(r.iter().map(|v| match v {
                None => TupleValue::Null,
                Some(s) => TupleValue::Text(Bytes::copy_from_slice(s.as_bytes())),
            }));
            builder
                .append(&OutputRow { op: RowOp::Load, lsn: Lsn::ZERO, seq: 0, xid: None, commit_ts_us: 0, values: &values })
                .map_err(|e| Error::runtime(format!("{}.{}: {e}", table.schema, table.name)))?;
        }
        let batch = builder.finish();
        for r in 0..batch.num_rows() {
            out.push((0..table.columns.len()).map(|c| cell_to_string(batch.column(c).as_ref(), r)).collect());
        }
    }
    Ok(out)
}

/// The differences between source and target rows of one table.
#[derive(Debug, Default, serde::Serialize)]
pub struct TableDiff {
    pub source_rows: usize,
    pub target_rows: usize,
    pub missing: usize,
    pub extra: usize,
    pub differing: usize,
    /// Up to 10 examples: key and the first differing column.
    pub examples: Vec<String>,
}

impl TableDiff {
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.differing == 0
    }
}

pub fn diff(columns: &[String], source: &Rows, target: &Rows) -> TableDiff {
    let mut d = TableDiff { source_rows: source.len(), target_rows: target.len(), ..Default::default() };
    let example = |d: &mut TableDiff, s: String| {
        if d.examples.len() < 10 {
            d.examples.push(s);
        }
    };
    for (k, sv) in source {
        match target.get(k) {
            None => {
                d.missing += 1;
                example(&mut d, format!("missing key {k:?}"));
            }
            Some(tv) if tv != sv => {
                d.differing += 1;
                let col = sv.iter().zip(tv).position(|(a, b)| a != b).unwrap_or(0);
                example(
                    &mut d,
                    format!(
                        "key {k:?}: column {} is {:?} in the source, {:?} in the target",
                        columns.get(col).cloned().unwrap_or_default(),
                        sv.get(col),
                        tv.get(col)
                    ),
                );
            }
            _ => {}
        }
    }
    for k in target.keys() {
        if !source.contains_key(k) {
            d.extra += 1;
            example(&mut d, format!("extra key {k:?}"));
        }
    }
    d
}
