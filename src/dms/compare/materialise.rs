//! Both sides as one table state each: key → (row, occurrences), values in the source's
//! column order, normalised.
//!
//! * DMS-shaped files ([`dms_side`]): rows in file order ([`super::files::list`]), then row
//!   order; a load row or `I` inserts or replaces by key, `U` replaces (or inserts a key DMS
//!   never loaded), `D` deletes. DMS keeps no LSN, so file order is its only order.
//! * pgcdc's native files ([`native_side`]): the SPEC 5.1 rule of `pgcdc validate`
//!   ([`crate::validate::materialize`]), `_unchanged` TOAST values and key changes included.
//!
//! A table whose key is all its columns (no primary key, `REPLICA IDENTITY FULL`) is a
//! multiset: an insert adds one occurrence, a delete removes one, an update (DMS writes it
//! whole, pgcdc as delete + insert when anything changed) is not applied.

use std::collections::BTreeMap;

use serde::Serialize;

use super::files::DataFile;
use super::normalise::normalise;
use super::read::TableReader;
use crate::error::Result;
use crate::model::RowOp;
use crate::storage::Storage;
use crate::validate::compare::Row;
use crate::validate::materialize::{
    materialize_multiset, materialize_rows, read_stored_table_rows,
};

/// Changes written per operation, as each side's files hold them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub load: u64,
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
    /// pgcdc only: DMS does not capture TRUNCATE.
    pub truncate: u64,
}

impl Changes {
    fn count(&mut self, op: RowOp) {
        match op {
            RowOp::Load => self.load += 1,
            RowOp::Insert => self.insert += 1,
            RowOp::Update => self.update += 1,
            RowOp::Delete => self.delete += 1,
            RowOp::Truncate => self.truncate += 1,
        }
    }
}

/// A materialised side.
#[derive(Debug, Default)]
pub struct Side {
    /// key → (row, occurrences).
    pub rows: BTreeMap<Row, (Row, usize)>,
    pub changes: Changes,
    pub files: usize,
}

impl Side {
    /// Rows counted with their occurrences.
    pub fn row_count(&self) -> usize {
        self.rows.values().map(|(_, n)| n).sum()
    }
}

/// Whether a table of `columns` columns keyed by `key` is compared as a multiset.
fn multiset(key: &[usize], columns: usize) -> bool {
    key.is_empty() || key.len() == columns
}

/// Reads `files` of `storage` with `reader` and applies them in order (module documentation).
pub fn dms_side(
    storage: &dyn Storage,
    files: &[DataFile],
    reader: &mut TableReader<'_>,
) -> Result<Side> {
    let table = reader.table;
    let key: Vec<usize> = if table.key.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        table.key.clone()
    };
    let bag = multiset(&table.key, table.columns.len());
    let mut side = Side {
        files: files.len(),
        ..Side::default()
    };
    for file in files {
        for change in reader.read(storage, file)? {
            side.changes.count(change.op);
            let k: Row = key.iter().map(|&i| change.values[i].clone()).collect();
            match change.op {
                RowOp::Load | RowOp::Insert if bag => {
                    side.rows.entry(k).or_insert((change.values, 0)).1 += 1
                }
                RowOp::Update if bag => {}
                RowOp::Load | RowOp::Insert | RowOp::Update => {
                    side.rows.insert(k, (change.values, 1));
                }
                RowOp::Delete => {
                    if let Some(e) = side.rows.get_mut(&k) {
                        e.1 -= 1;
                        if e.1 == 0 || !bag {
                            side.rows.remove(&k);
                        }
                    }
                }
                RowOp::Truncate => side.rows.clear(),
            }
        }
    }
    Ok(side)
}

/// Reads and materialises pgcdc's native files of one table under `prefix` of `storage`
/// by the SPEC 5.1 rule, then projects them onto `reader`'s source columns (by name) and
/// normalises them as DMS's values are.
pub fn native_side(storage: &dyn Storage, prefix: &str, reader: &TableReader<'_>) -> Result<Side> {
    let table = reader.table;
    let (rows, files, file_key) = read_stored_table_rows(storage, prefix)?;
    let mut changes = Changes::default();
    for r in &rows {
        changes.count(r.op);
    }
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let norm = |values: Vec<Option<String>>| -> Row {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| normalise(reader.kinds[i], reader.millis[i], v))
            .collect()
    };
    let mut side = Side {
        changes,
        files,
        ..Side::default()
    };
    if multiset(&table.key, names.len()) {
        for (row, n) in materialize_multiset(rows, &names, i64::MAX) {
            let row = norm(row);
            side.rows.entry(row.clone()).or_insert((row, 0)).1 += n;
        }
    } else {
        let key = if file_key.is_empty() {
            table.key_names().into_iter().map(str::to_string).collect()
        } else {
            file_key
        };
        let (state, _) = materialize_rows(rows, &key, None);
        for values in state.into_values() {
            let row = norm(
                names
                    .iter()
                    .map(|c| values.get(c).cloned().flatten())
                    .collect(),
            );
            side.rows.insert(
                table.key.iter().map(|&i| row[i].clone()).collect(),
                (row, 1),
            );
        }
    }
    Ok(side)
}
