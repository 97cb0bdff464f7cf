//! `validate` with `[dead_letter]`: source rows the output's type mapping cannot hold are
//! not in the target by design, they are dead letters. They are left out of the comparison
//! on both sides (the target may hold an earlier version of such a row) and counted in the
//! table's report as `dead_lettered`, once `validate` found a dead letter with the row's key
//! for the table. A refused row without one is an error naming it, as without
//! `[dead_letter]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::compare::Row;
use crate::batch::{cell_to_string, TableBatchBuilder};
use crate::error::{Error, Result};
use crate::model::{Lsn, OutputRow, RowOp, TableSchema, TupleValue};
use crate::sink::dead_letter::{DeadLetters, REFUSED_HINT};

/// The source rows set aside: their keys as canonical strings (the target's key form).
#[derive(Debug, Default)]
pub struct SetAside {
    /// Source rows set aside.
    pub rows: usize,
    pub keys: Vec<Row>,
}

fn values_of(r: &Row) -> Vec<TupleValue> {
    r.iter()
        .map(|v| match v {
            None => TupleValue::Null,
            Some(s) => TupleValue::Text(Bytes::copy_from_slice(s.as_bytes())),
        })
        .collect()
}

fn row<'a>(values: &'a [TupleValue]) -> OutputRow<'a> {
    OutputRow {
        op: RowOp::Load,
        lsn: Lsn::ZERO,
        seq: 0,
        xid: None,
        commit_ts_us: 0,
        values,
    }
}

/// Removes from `text` (source rows as text, in column order) the rows whose values
/// `table`'s mapping refuses, when `letters` is given, and returns their keys; without
/// `letters` nothing is removed (the comparison then fails on them as before). Errors
/// when a refused row has no dead letter with its key.
pub fn set_aside(
    table: &Arc<TableSchema>,
    text: &mut Vec<Row>,
    letters: Option<&DeadLetters>,
) -> Result<SetAside> {
    let Some(letters) = letters else {
        return Ok(SetAside::default());
    };
    let mut builder = TableBatchBuilder::new(table.clone());
    let mut refused = Vec::new();
    text.retain(|r| {
        let values = values_of(r);
        match builder.append(&row(&values)) {
            Ok(()) => {
                if builder.len() >= 8192 {
                    builder.finish();
                }
                true
            }
            Err(e) => {
                refused.push((r.clone(), e));
                false
            }
        }
    });
    let mut out = SetAside {
        rows: refused.len(),
        keys: Vec::new(),
    };
    if refused.is_empty() {
        return Ok(out);
    }
    let known = letters.keys_of(&table.schema, &table.name)?;
    for (r, e) in refused {
        let key: BTreeMap<String, Option<String>> = table
            .key
            .iter()
            .map(|&i| (table.columns[i].name.clone(), r[i].clone()))
            .collect();
        if !known.contains(&key) {
            return Err(Error::runtime(format!(
                "{}: the source row with key {key:?} has a value the output cannot hold ({e}), and {} holds no dead letter for it",
                table.qualified_name(),
                letters.describe()
            ))
            .with_hint(REFUSED_HINT));
        }
        // The key's canonical form: the key columns alone through the mapping.
        let mut key_only = vec![None; r.len()];
        for &i in &table.key {
            key_only[i] = r[i].clone();
        }
        let values = values_of(&key_only);
        let mut b = TableBatchBuilder::new(table.clone());
        if b.append(&row(&values)).is_ok() {
            let batch = b.finish();
            out.keys.push(
                table
                    .key
                    .iter()
                    .map(|&i| cell_to_string(batch.column(i).as_ref(), 0))
                    .collect(),
            );
        }
    }
    Ok(out)
}
