//! The materialisation rule of SPEC 5.1, applied to a table's Parquet files.
//!
//! Sort rows by `(_lsn, _seq)`; `L`/`I` insert-or-replace by key; `U` replaces by key but
//! keeps the previous value of every column named in `_unchanged`; `D` deletes by key; `T`
//! empties the table. One addition documented in the README: an `I` that follows the `D` of
//! a key-changing update (same `_lsn`, `_seq` − 1) takes the values of its `_unchanged`
//! columns from the deleted row.
//!
//! Values are compared as canonical strings ([`crate::batch::cell_to_string`]), so a table
//! read from the source through the same type mapping compares equal cell by cell.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::identity::{self, FileColumn, FileShape};
use crate::batch::cell_to_string;
use crate::batch::schema::{META_ATTNUM, META_KEY, META_MISSING, META_PG_TYPES};
use crate::error::{Error, Result, ResultExt};
use crate::model::RowOp;
use crate::storage::{LocalStorage, Storage};

/// One row as read from the target.
#[derive(Clone, Debug)]
pub struct ChangeRow {
    pub op: RowOp,
    pub lsn: i64,
    pub seq: i64,
    pub unchanged: Vec<String>,
    /// Data columns by name (the names of the newest file, see [`super::identity`]).
    pub values: BTreeMap<String, Option<String>>,
    /// The key of the file the row comes from (its `pgcdc.key`, with the newest names);
    /// empty when the file names none.
    pub key: Arc<Vec<String>>,
}

/// One row's values: column name → canonical value.
pub type RowValues = BTreeMap<String, Option<String>>;

/// A table's state: key → row (column name → canonical value).
pub type TableState = BTreeMap<Vec<Option<String>>, BTreeMap<String, Option<String>>>;

pub struct Materialized {
    pub rows: TableState,
    /// `(_lsn, _seq)` pairs found more than once (must be empty: SPEC 2.2).
    pub duplicates: Vec<(i64, i64)>,
    pub files: usize,
    pub change_rows: usize,
    /// Key column names (from the newest file's `pgcdc.key` metadata).
    pub key: Vec<String>,
}

const META: [&str; 6] = ["_op", "_lsn", "_seq", "_xid", "_commit_ts", "_unchanged"];

/// Reads every Parquet file of a local table directory `{root}/{schema}/{table}/`: see
/// [`read_stored_table_rows`].
pub fn read_table_rows(dir: &Path) -> Result<(Vec<ChangeRow>, usize, Vec<String>)> {
    read_stored_table_rows(&LocalStorage::open(dir.to_path_buf())?, "")
}

/// Reads every Parquet file (load and cdc) under `prefix` of a target, through its
/// [`Storage`] (so any backend), one file in memory at a time. `prefix` is a table's
/// `schema/table` key prefix ([`crate::sink::parquet::naming::table_prefix`]), or empty for
/// a storage rooted at the table. Columns are named, filled and converted as
/// [`super::identity`] describes; the key returned is the newest file's.
pub fn read_stored_table_rows(storage: &dyn Storage, prefix: &str) -> Result<(Vec<ChangeRow>, usize, Vec<String>)> {
    let keys: Vec<String> = storage.list(prefix)?.into_iter().filter(|k| k.ends_with(".parquet")).collect();
    let mut files: Vec<(FileShape, Vec<ChangeRow>)> = Vec::new();
    for key in &keys {
        let name = || format!("{}/{key}", storage.describe());
        let data = storage.get(key)?.ok_or_else(|| Error::runtime(format!("{} vanished while validate read it", name())))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(data)).runtime_ctx(|| format!("reading {}", name()))?;
        let shape = file_shape(builder.schema());
        let mut rows = Vec::new();
        for batch in builder.build().runtime_ctx(|| format!("reading {}", name()))? {
            let batch = batch.runtime_ctx(|| format!("reading {}", name()))?;
            rows_of_batch(&batch, &mut rows).map_err(|e| e.context(name()))?;
        }
        if !rows.is_empty() {
            files.push((shape, rows));
        }
    }
    // Oldest first: by the first change of each file (a file holds one LSN range).
    files.sort_by_key(|(_, rows)| rows.iter().map(|r| (r.lsn, r.seq)).min());
    let shapes: Vec<FileShape> = files.iter().map(|(s, _)| s.clone()).collect();
    let plans = identity::plan(&shapes);
    let key = plans.last().map(|p| p.key.as_ref().clone()).unwrap_or_default();
    let mut out = Vec::with_capacity(files.iter().map(|(_, r)| r.len()).sum());
    let mut converted = Conversions::new();
    for ((shape, rows), plan) in files.into_iter().zip(&plans) {
        for row in rows {
            out.push(apply_plan(row, &shape, plan, &mut converted));
        }
    }
    Ok((out, keys.len(), key))
}

/// Values already converted to another column type (see [`apply_plan`]).
pub(super) type Conversions = HashMap<((u32, i32), String), Option<String>>;

/// One row of a file as it enters the materialisation: its columns named, filled and
/// converted by its file's `plan` ([`identity::plan`]), `unchanged` renamed, and the file's
/// key attached. `converted` caches conversions (the caller may clear it any time).
pub(super) fn apply_plan(mut row: ChangeRow, shape: &FileShape, plan: &identity::FilePlan, converted: &mut Conversions) -> ChangeRow {
    let as_written = plan.fill.is_empty()
        && plan.convert.iter().all(Option::is_none)
        && shape.columns.iter().zip(&plan.names).all(|(c, n)| &c.name == n);
    if as_written {
        row.key = plan.key.clone();
        return row;
    }
    let mut values = BTreeMap::new();
    for ((col, name), convert) in shape.columns.iter().zip(&plan.names).zip(&plan.convert) {
        let mut v = row.values.remove(&col.name).flatten();
        if let (Some(to), Some(text)) = (convert, &v) {
            let c = converted
                .entry((*to, text.clone()))
                .or_insert_with(|| identity::to_canonical(to.0, to.1, text).or_else(|| Some(text.clone())));
            v = c.clone();
        }
        values.insert(name.clone(), v);
    }
    if row.op != RowOp::Truncate {
        for (name, fill) in &plan.fill {
            values.insert(name.clone(), fill.clone());
        }
    }
    row.unchanged = row
        .unchanged
        .iter()
        .map(|u| shape.columns.iter().position(|c| &c.name == u).map_or_else(|| u.clone(), |i| plan.names[i].clone()))
        .collect();
    row.values = values;
    row.key = plan.key.clone();
    row
}

/// The columns (with attnum, missing value and PostgreSQL type) and key of one file.
pub(super) fn file_shape(schema: &arrow_schema::SchemaRef) -> FileShape {
    let meta = schema.metadata();
    let key = meta.get(META_KEY).map(|k| k.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default();
    let pg_types: HashMap<String, (u32, i32)> = meta
        .get(META_PG_TYPES)
        .and_then(|j| serde_json::from_str::<Vec<serde_json::Value>>(j).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| Some((t["column"].as_str()?.to_string(), (t["oid"].as_u64()? as u32, t["typmod"].as_i64()? as i32))))
        .collect();
    let columns = schema
        .fields()
        .iter()
        .filter(|f| !META.contains(&f.name().as_str()))
        .map(|f| FileColumn {
            name: f.name().clone(),
            attnum: f.metadata().get(META_ATTNUM).and_then(|a| a.parse().ok()),
            missing: f.metadata().get(META_MISSING).cloned(),
            pg_type: pg_types.get(f.name()).copied(),
        })
        .collect();
    FileShape { columns, key }
}

/// The column `name` of a target file's batch; an error names it when the file lacks it.
pub(super) fn meta_column(batch: &RecordBatch, name: &str) -> Result<arrow_array::ArrayRef> {
    batch
        .schema()
        .index_of(name)
        .map(|i| batch.column(i).clone())
        .map_err(|_| Error::runtime(format!("missing column {name}")))
}

pub(super) fn rows_of_batch(batch: &RecordBatch, out: &mut Vec<ChangeRow>) -> Result<()> {
    let schema = batch.schema();
    let col = |name: &str| meta_column(batch, name);
    let op = col("_op")?;
    let op = op.as_string::<i32>();
    let lsn = col("_lsn")?;
    let lsn = lsn.as_primitive::<arrow_array::types::Int64Type>();
    let seq = col("_seq")?;
    let seq = seq.as_primitive::<arrow_array::types::Int64Type>();
    let unchanged = col("_unchanged")?;
    let unchanged = unchanged.as_list::<i32>();
    let data: Vec<(String, usize)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !META.contains(&f.name().as_str()))
        .map(|(i, f)| (f.name().clone(), i))
        .collect();
    for r in 0..batch.num_rows() {
        let code = op.value(r);
        let op = RowOp::from_code(code).ok_or_else(|| Error::runtime(format!("unknown _op `{code}`")))?;
        let unchanged = if unchanged.is_null(r) {
            Vec::new()
        } else {
            let l = unchanged.value(r);
            let s = l.as_string::<i32>();
            (0..s.len()).map(|i| s.value(i).to_string()).collect()
        };
        let values = data
            .iter()
            .map(|(name, i)| (name.clone(), cell_to_string(batch.column(*i).as_ref(), r)))
            .collect();
        out.push(ChangeRow { op, lsn: lsn.value(r), seq: seq.value(r), unchanged, values, key: Arc::default() });
    }
    Ok(())
}

/// Applies the rule to `rows` (any order). Each row is applied with its own key
/// ([`ChangeRow::key`], the key of its file), or `key` when it has none; when the key
/// changes from one row to the next, the state is re-keyed (its rows are whole rows, so
/// the new key's columns are there). The state returned is keyed by `key` (when not empty).
/// With `up_to`, rows with `_lsn > up_to` are ignored.
pub fn materialize_rows(rows: Vec<ChangeRow>, key: &[String], up_to: Option<i64>) -> (TableState, Vec<(i64, i64)>) {
    materialize_rows_seeing_deletes(rows, key, up_to, &mut |_, _, _| {})
}

/// [`materialize_rows`], calling `deleted(lsn, seq, row)` with each row a `D` removes from
/// the state (before any later row is applied).
pub fn materialize_rows_seeing_deletes(
    mut rows: Vec<ChangeRow>,
    key: &[String],
    up_to: Option<i64>,
    deleted: &mut dyn FnMut(i64, i64, &RowValues),
) -> (TableState, Vec<(i64, i64)>) {
    rows.sort_by_key(|r| (r.lsn, r.seq));
    let mut duplicates = Vec::new();
    for w in rows.windows(2) {
        if (w[0].lsn, w[0].seq) == (w[1].lsn, w[1].seq) {
            duplicates.push((w[1].lsn, w[1].seq));
        }
    }
    let mut state: TableState = BTreeMap::new();
    let mut state_key: Vec<String> = key.to_vec();
    let key_of = |key: &[String], values: &BTreeMap<String, Option<String>>| -> Vec<Option<String>> {
        key.iter().map(|k| values.get(k).cloned().flatten()).collect()
    };
    let mut last_deleted: Option<(i64, i64, BTreeMap<String, Option<String>>)> = None;
    for row in rows.into_iter().filter(|r| up_to.is_none_or(|u| r.lsn <= u)) {
        let row_key: &[String] = if row.key.is_empty() { key } else { &row.key };
        if row_key != state_key.as_slice() && row.op != RowOp::Truncate {
            state = rekey(state, row_key);
            state_key = row_key.to_vec();
        }
        match row.op {
            RowOp::Load | RowOp::Insert => {
                let mut values = row.values;
                if let Some((lsn, seq, deleted)) = &last_deleted {
                    if *lsn == row.lsn && *seq == row.seq - 1 {
                        for c in &row.unchanged {
                            values.insert(c.clone(), deleted.get(c).cloned().flatten());
                        }
                    }
                }
                state.insert(key_of(&state_key, &values), values);
            }
            RowOp::Update => {
                let k = key_of(&state_key, &row.values);
                let mut values = row.values;
                if let Some(prev) = state.get(&k) {
                    for c in &row.unchanged {
                        values.insert(c.clone(), prev.get(c).cloned().flatten());
                    }
                }
                state.insert(k, values);
            }
            RowOp::Delete => {
                let k = key_of(&state_key, &row.values);
                let removed = state.remove(&k);
                if let Some(r) = &removed {
                    deleted(row.lsn, row.seq, r);
                }
                last_deleted = removed.map(|v| (row.lsn, row.seq, v));
                continue;
            }
            RowOp::Truncate => state.clear(),
        }
        last_deleted = None;
    }
    if !key.is_empty() && state_key != key {
        state = rekey(state, key);
    }
    (state, duplicates)
}

/// The same rows keyed by `key`.
fn rekey(state: TableState, key: &[String]) -> TableState {
    state.into_values().map(|v| (key.iter().map(|k| v.get(k).cloned().flatten()).collect(), v)).collect()
}

/// Reads and materialises one table directory.
pub fn materialize_table(dir: &Path, up_to: Option<i64>) -> Result<Materialized> {
    let (rows, files, key) = read_table_rows(dir)?;
    let change_rows = rows.len();
    let (rows, duplicates) = materialize_rows(rows, &key, up_to);
    Ok(Materialized { rows, duplicates, files, change_rows, key })
}

/// The SPEC 5.1 rule for a table without a key (REPLICA IDENTITY FULL): rows are whole
/// rows, counted. `L`/`I` add one; `D` (carrying the whole old row) removes one; an update
/// that changes anything is written as `D` + `I`, so a `U` repeats its row and changes
/// nothing; `T` empties the table. Rows with `_lsn > up_to` are ignored; rows are projected
/// onto `cols`.
pub fn materialize_multiset(mut rows: Vec<ChangeRow>, cols: &[String], up_to: i64) -> HashMap<Vec<Option<String>>, usize> {
    rows.sort_by_key(|r| (r.lsn, r.seq));
    let mut counts: HashMap<Vec<Option<String>>, usize> = HashMap::new();
    for row in rows.into_iter().filter(|r| r.lsn <= up_to) {
        let values: Vec<Option<String>> = cols.iter().map(|c| row.values.get(c).cloned().flatten()).collect();
        match row.op {
            RowOp::Load | RowOp::Insert => *counts.entry(values).or_insert(0) += 1,
            RowOp::Delete => {
                if let Some(n) = counts.get_mut(&values) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(&values);
                    }
                }
            }
            RowOp::Update => {}
            RowOp::Truncate => counts.clear(),
        }
    }
    counts
}

/// Keeps only the named columns of every row (e.g. the source's current columns).
pub fn project(state: &TableState, columns: &[String]) -> HashMap<Vec<Option<String>>, Vec<Option<String>>> {
    state
        .iter()
        .map(|(k, v)| (k.clone(), columns.iter().map(|c| v.get(c).cloned().flatten()).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(op: RowOp, lsn: i64, seq: i64, id: &str, v: Option<&str>, unchanged: &[&str]) -> ChangeRow {
        let mut values = BTreeMap::new();
        values.insert("id".to_string(), Some(id.to_string()));
        values.insert("v".to_string(), v.map(str::to_string));
        ChangeRow { op, lsn, seq, unchanged: unchanged.iter().map(|s| s.to_string()).collect(), values, key: Arc::default() }
    }

    #[test]
    fn rule_applies_in_lsn_seq_order() {
        let key = vec!["id".to_string()];
        let rows = vec![
            row(RowOp::Update, 20, 0, "1", None, &["v"]),
            row(RowOp::Insert, 10, 0, "1", Some("big"), &[]),
            row(RowOp::Insert, 10, 1, "2", Some("b"), &[]),
            row(RowOp::Delete, 30, 0, "2", None, &[]),
            row(RowOp::Delete, 40, 0, "1", None, &[]),
            row(RowOp::Insert, 40, 1, "3", None, &["v"]),
        ];
        let (state, dups) = materialize_rows(rows, &key, None);
        assert!(dups.is_empty());
        assert_eq!(state.len(), 1);
        let r = &state[&vec![Some("3".to_string())]];
        assert_eq!(r["v"].as_deref(), Some("big"), "key change carries the unchanged TOAST value");
        let (state, _) = materialize_rows(
            vec![row(RowOp::Insert, 1, 0, "1", Some("x"), &[]), row(RowOp::Truncate, 2, 0, "", None, &[]), row(RowOp::Insert, 2, 1, "5", Some("y"), &[])],
            &key,
            None,
        );
        assert_eq!(state.keys().cloned().collect::<Vec<_>>(), vec![vec![Some("5".to_string())]]);
    }

    #[test]
    fn rows_apply_by_their_file_key_and_the_state_is_rekeyed() {
        let with = |mut r: ChangeRow, code: &str, key: &str| {
            r.values.insert("code".to_string(), Some(code.to_string()));
            r.key = Arc::new(vec![key.to_string()]);
            r
        };
        let rows = vec![
            with(row(RowOp::Insert, 10, 0, "1", Some("a"), &[]), "c1", "id"),
            with(row(RowOp::Insert, 10, 1, "2", Some("b"), &[]), "c2", "id"),
            // After a key change to `code`: the delete carries only the new key.
            ChangeRow { values: BTreeMap::from([("code".to_string(), Some("c1".to_string()))]), ..with(row(RowOp::Delete, 20, 0, "", None, &[]), "c1", "code") },
            with(row(RowOp::Update, 30, 0, "2", None, &["v"]), "c2", "code"),
        ];
        let (state, _) = materialize_rows(rows, &["id".to_string()], None);
        assert_eq!(state.len(), 1, "the delete by the new key found its row");
        let r = &state[&vec![Some("2".to_string())]];
        assert_eq!(r["v"].as_deref(), Some("b"), "the unchanged value is carried under the new key");
    }

    #[test]
    fn duplicates_are_reported_and_up_to_cuts() {
        let key = vec!["id".to_string()];
        let rows = vec![row(RowOp::Insert, 10, 0, "1", Some("a"), &[]), row(RowOp::Insert, 10, 0, "1", Some("a"), &[]), row(RowOp::Insert, 11, 0, "2", None, &[])];
        let (state, dups) = materialize_rows(rows, &key, Some(10));
        assert_eq!(dups, vec![(10, 0)]);
        assert_eq!(state.len(), 1);
    }

    #[test]
    fn whole_rows_are_counted_and_cut_at_the_lsn() {
        let cols = vec!["id".to_string(), "v".to_string()];
        let rows = vec![
            row(RowOp::Insert, 10, 0, "1", Some("a"), &[]),
            row(RowOp::Insert, 10, 1, "1", Some("a"), &[]),
            row(RowOp::Insert, 10, 2, "2", Some("b"), &[]),
            row(RowOp::Delete, 20, 0, "1", Some("a"), &[]),
            row(RowOp::Delete, 30, 0, "2", Some("b"), &[]),
        ];
        let m = materialize_multiset(rows, &cols, 29);
        let whole = |id: &str, v: &str| vec![Some(id.to_string()), Some(v.to_string())];
        assert_eq!(m.get(&whole("1", "a")), Some(&1));
        assert_eq!(m.get(&whole("2", "b")), Some(&1), "the delete at 30 is past the cut");
    }
}
