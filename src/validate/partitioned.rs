//! Comparing one table in bounded memory (step 4 of [`super::run`], for
//! [`super::table::validate_table`]).
//!
//! Both sides are hash-partitioned by key into spill files ([`super::spill`]), then each
//! partition is materialised and compared alone, and the parts added up ([`DiffParts`]):
//!
//! * **Source**: read through a cursor in the snapshot, 10 000 rows at a time
//!   ([`SourceRows::next_chunk`]), set aside as dead letters ([`super::dead_letters`]),
//!   converted through the output's type mapping, written to the partition of its key.
//! * **Target**: read file by file ([`TargetScan`]); each change row up to the validation
//!   LSN goes to the partition of its key, a `T` to every partition. The key is the
//!   table's key, or the columns it shares with every file's key when the key changed; when
//!   they share none, the table is one partition (held in memory whole, as before).
//! * **Partitions**: N = the estimated size of both sides × [`BYTES_IN_MEMORY`] / the memory
//!   budget (`PGCDC_VALIDATE_MEMORY`, default [`DEFAULT_BUDGET`]), at most
//!   [`MAX_FANOUT`]; a partition still larger than the budget is split again by another hash.
//! * **Carry-over across partitions**: the `I` of a key-changing update takes its
//!   `_unchanged` values from the row its `D` (`_seq` − 1) removed, which has another key,
//!   so usually lives in another partition. Such an `I` enters its partition with a
//!   placeholder for each carried column; the partition of the `D` records the removed
//!   row's values of those columns; rows still holding a placeholder after their partition
//!   is materialised are compared at the end, once every placeholder is resolved (to the
//!   recorded value, or the `I`'s own value when its `D` removed nothing, as the rule
//!   says). Those rows and carried values are held in memory.
//! * Duplicate `(_lsn, _seq)` pairs are found over all files ([`TargetScan::duplicates`]).
//!
//! The report equals the whole-table comparison's: keys never span partitions, and
//! [`DiffParts`] keeps the smallest keys of each kind of difference over all parts.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use super::canonical::canonical_list;
use super::compare::{count_rows, Row, Rows, TableDiff};
use super::dead_letters::set_aside;
use super::diff_parts::DiffParts;
use super::materialize::{materialize_multiset, materialize_rows_seeing_deletes, ChangeRow, TableState};
use super::source_rows::SourceRows;
use super::spill::{
    decode_change, decode_row, encode_change, encode_row, partition_of, read_records, Names, SpillDir, SpillWriter, MAX_FANOUT,
};
use super::target_scan::TargetScan;
use crate::error::{Error, Result};
use crate::model::{RowOp, TableSchema};
use crate::sink::dead_letter::DeadLetters;

/// The memory budget of one partition's comparison when `PGCDC_VALIDATE_MEMORY` is not set.
pub const DEFAULT_BUDGET: u64 = 256 << 20;
/// Bytes of memory one spilled byte takes when its partition is materialised and compared
/// (rows as maps of named values, the state, the projected rows; measured).
pub const BYTES_IN_MEMORY: u64 = 8;
/// Source rows fetched at a time.
const CHUNK: usize = 10_000;
/// Re-partitioning levels at most (a partition that does not get smaller is compared anyway).
const MAX_LEVEL: u32 = 4;
const CARRY: &str = "\0pgcdc-carry\0";

/// The memory budget: `PGCDC_VALIDATE_MEMORY` (a size such as `64MiB`), else
/// [`DEFAULT_BUDGET`].
pub fn memory_budget() -> Result<u64> {
    match std::env::var("PGCDC_VALIDATE_MEMORY") {
        Err(_) => Ok(DEFAULT_BUDGET),
        Ok(v) => crate::config::parse_size(&v)
            .map(|b| b.max(1 << 16))
            .map_err(|e| Error::config(format!("PGCDC_VALIDATE_MEMORY: {e}")).with_hint("unset it for the default of 256MiB")),
    }
}

/// The size of a source table's data (heap and TOAST; of every partition for a partitioned
/// table), an estimate of its rows' size for choosing the number of partitions; 0 when it
/// cannot be read (the comparison then splits partitions as they turn out large).
pub(super) async fn source_bytes(snap: &crate::source::catalog::Catalog, relid: u32, relkind: &str) -> u64 {
    let sql = if relkind == "p" {
        "SELECT coalesce(sum(pg_table_size(relid)), 0)::bigint FROM pg_partition_tree($1::oid::regclass)"
    } else {
        "SELECT coalesce(pg_table_size($1::oid::regclass), 0)::bigint"
    };
    match snap.client.query_one(sql, &[&relid]).await {
        Ok(row) => row.get::<_, i64>(0).max(0) as u64,
        Err(e) => {
            tracing::debug!("reading the table's size: {e}");
            0
        }
    }
}

/// What comparing a table found (the parts of [`super::report::Outcome::Compared`]).
pub(super) struct Compared {
    pub files: usize,
    pub change_rows: usize,
    pub duplicates: Vec<(i64, i64)>,
    pub diff: TableDiff,
    pub dead_lettered: usize,
}

/// How rows are matched: by `key` (names, in the source's key order) or as whole rows.
struct Shape<'a> {
    table: &'a Arc<TableSchema>,
    cols: Vec<String>,
    key: Vec<String>,
    whole_row: bool,
    /// The columns rows are partitioned by: positions in `cols` and their names.
    by: Vec<(usize, String)>,
}

impl Shape<'_> {
    fn of_source(&self, row: &Row, level: u32, n: usize) -> usize {
        partition_of(self.by.iter().map(|(i, _)| &row[*i]), level, n)
    }

    fn of_target(&self, row: &ChangeRow, level: u32, n: usize) -> usize {
        const NULL: Option<String> = None;
        partition_of(self.by.iter().map(|(_, c)| row.values.get(c).unwrap_or(&NULL)), level, n)
    }
}

/// One partition's spill files.
struct Part {
    source: Option<PathBuf>,
    target: Option<PathBuf>,
    bytes: u64,
    level: u32,
}

/// Values carried over key changes across partitions (see the module docs).
#[derive(Default)]
struct Carry {
    /// `(_lsn, _seq)` of a `D` → the columns an `I` takes from the row it removes.
    wanted: HashMap<(i64, i64), Vec<String>>,
    /// The `I`'s own values of those columns (when not null), by the `D`'s pair.
    own: HashMap<((i64, i64), String), String>,
    /// What each wanted `D` removed.
    removed: HashMap<(i64, i64), BTreeMap<String, Option<String>>>,
    /// Rows compared at the end: key → (source row, target row).
    later_source: Rows,
    later_target: Rows,
}

impl Carry {
    /// Puts placeholders into an `I` that carries values over a key change.
    fn mark(&mut self, row: &mut ChangeRow) {
        let pair = (row.lsn, row.seq - 1);
        for c in &row.unchanged {
            if let Some(Some(v)) = row.values.get(c) {
                self.own.insert((pair, c.clone()), v.clone());
            }
            row.values.insert(c.clone(), Some(format!("{CARRY}{}\0{}\0{c}", pair.0, pair.1)));
            self.wanted.entry(pair).or_default().push(c.clone());
        }
    }

    fn resolve(&self, v: Option<String>, depth: usize) -> Option<String> {
        let Some(rest) = v.as_deref().and_then(|s| s.strip_prefix(CARRY)) else {
            return v;
        };
        let mut it = rest.splitn(3, '\0');
        let (Some(lsn), Some(seq), Some(col)) = (it.next(), it.next(), it.next()) else {
            return v;
        };
        let pair = (lsn.parse().unwrap_or(0), seq.parse().unwrap_or(0));
        match self.removed.get(&pair) {
            Some(row) if depth < 1000 => self.resolve(row.get(col).cloned().flatten(), depth + 1),
            _ => self.own.get(&(pair, col.to_string())).cloned(),
        }
    }
}

fn has_placeholder(row: &Row) -> bool {
    row.iter().any(|v| v.as_deref().is_some_and(|s| s.starts_with(CARRY)))
}

/// Compares `table` (`source`: its rows in the snapshot, `source_bytes` their estimated
/// size) with its target materialised up to `up_to` (`_lsn <= up_to`), partition by
/// partition (see the module docs). `whole_row`: as multisets of whole rows, else by the
/// table's key. Errors are reading errors (the source, Parquet, the spill files).
pub(super) async fn compare_table(
    mut source: SourceRows<'_>,
    source_bytes: u64,
    target: &dyn crate::storage::Storage,
    table: &Arc<TableSchema>,
    whole_row: bool,
    up_to: i64,
    letters: Option<&DeadLetters>,
) -> Result<Compared> {
    let budget = memory_budget()?;
    let spill = SpillDir::create()?;
    let prefix = crate::sink::parquet::naming::table_prefix(&table.schema, &table.name);
    let mut scan = tokio::task::block_in_place(|| TargetScan::scan(target, &prefix, &spill))?;
    let duplicates = tokio::task::block_in_place(|| scan.duplicates(budget, &spill))?;

    let cols: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let key: Vec<String> = table.key.iter().map(|&i| cols[i].clone()).collect();
    // Partition by the key's columns that every file's key names too (all of them, unless
    // the key changed); whole rows by every column.
    let by: Vec<(usize, String)> = if whole_row {
        cols.iter().cloned().enumerate().collect()
    } else {
        table
            .key
            .iter()
            .map(|&i| (i, cols[i].clone()))
            .filter(|(_, c)| scan.file_keys().all(|k| k.is_empty() || k.contains(c)))
            .collect()
    };
    let shape = Shape {
        table,
        cols,
        key,
        whole_row,
        by,
    };
    let estimate = (scan.bytes + source_bytes) * BYTES_IN_MEMORY;
    let n = if shape.by.is_empty() {
        1
    } else {
        estimate.div_ceil(budget).clamp(1, MAX_FANOUT as u64) as usize
    };
    tracing::debug!(table = %table.qualified_name(), partitions = n, estimate, budget, "partitioning the comparison");

    // The source, into its partitions.
    let mut writers: Vec<SpillWriter> = (0..n).map(|_| SpillWriter::new(spill.file("source"))).collect();
    let (mut dead_lettered, mut aside_keys) = (0, Vec::new());
    let mut buf = Vec::new();
    while let Some(mut chunk) = source.next_chunk(CHUNK).await? {
        tokio::task::block_in_place(|| -> Result<()> {
            let aside = set_aside(table, &mut chunk, letters)?;
            dead_lettered += aside.rows;
            aside_keys.extend(aside.keys);
            for row in canonical_list(table, &chunk)? {
                encode_row(&row, &mut buf);
                writers[shape.of_source(&row, 0, n)].write(&buf)?;
            }
            Ok(())
        })?;
    }
    let sources: Vec<(Option<PathBuf>, u64)> = writers
        .into_iter()
        .map(|w| Ok((w.bytes, w.finish()?)))
        .map(|r: Result<_>| r.map(|(b, p)| (p, b)))
        .collect::<Result<_>>()?;

    // The target, into its partitions.
    let mut names = Names::default();
    let mut carry = Carry::default();
    let targets = tokio::task::block_in_place(|| -> Result<Vec<(Option<PathBuf>, u64)>> {
        let mut writers: Vec<SpillWriter> = (0..n).map(|_| SpillWriter::new(spill.file("target"))).collect();
        scan.for_each_row(target, |mut row| {
            if row.lsn > up_to {
                return Ok(());
            }
            if !whole_row && matches!(row.op, RowOp::Insert | RowOp::Load) && !row.unchanged.is_empty() {
                carry.mark(&mut row);
            }
            encode_change(&row, &mut names, &mut buf);
            if row.op == RowOp::Truncate {
                return writers.iter_mut().try_for_each(|w| w.write(&buf));
            }
            writers[shape.of_target(&row, 0, n)].write(&buf)
        })?;
        writers
            .into_iter()
            .map(|w| Ok((w.bytes, w.finish()?)))
            .map(|r: Result<_>| r.map(|(b, p)| (p, b)))
            .collect()
    })?;

    let mut stack: Vec<Part> = sources
        .into_iter()
        .zip(targets)
        .map(|((source, sb), (target, tb))| Part {
            source,
            target,
            bytes: sb + tb,
            level: 0,
        })
        .rev()
        .collect();
    let mut parts = DiffParts::default();
    let (mut compared, mut largest) = (0usize, 0u64);
    tokio::task::block_in_place(|| -> Result<()> {
        while let Some(part) = stack.pop() {
            if part.bytes * BYTES_IN_MEMORY > budget && part.level < MAX_LEVEL && !shape.by.is_empty() {
                stack.extend(split(part, &shape, &mut names, &spill, budget)?);
                continue;
            }
            (compared, largest) = (compared + 1, largest.max(part.bytes));
            compare_part(part, &shape, &names, up_to, &aside_keys, &mut carry, &mut parts)?;
        }
        Ok(())
    })?;
    tracing::info!(
        table = %table.qualified_name(),
        partitions = compared,
        largest_partition_bytes = largest,
        carried_later = carry.later_target.len(),
        "compared partition by partition"
    );
    if !carry.later_target.is_empty() || !carry.later_source.is_empty() {
        let later_target: Rows = std::mem::take(&mut carry.later_target)
            .into_iter()
            .map(|(k, row)| (k, row.into_iter().map(|v| carry.resolve(v, 0)).collect()))
            .collect();
        parts.add_keyed(&carry.later_source, &later_target);
    }
    let report_key = if whole_row { &shape.cols } else { &shape.key };
    Ok(Compared {
        files: scan.files,
        change_rows: scan.change_rows,
        duplicates,
        diff: parts.finish(&shape.cols, report_key),
        dead_lettered,
    })
}

/// Splits a partition that is too large into smaller ones by the next level's hash.
fn split(part: Part, shape: &Shape, names: &mut Names, spill: &SpillDir, budget: u64) -> Result<Vec<Part>> {
    let (level, n) = (
        part.level + 1,
        (part.bytes * BYTES_IN_MEMORY).div_ceil(budget).clamp(2, MAX_FANOUT as u64) as usize,
    );
    let mut sources: Vec<SpillWriter> = (0..n).map(|_| SpillWriter::new(spill.file("source"))).collect();
    read_records(part.source.as_deref(), |r| {
        sources[shape.of_source(&decode_row(r)?, level, n)].write(r)
    })?;
    let mut targets: Vec<SpillWriter> = (0..n).map(|_| SpillWriter::new(spill.file("target"))).collect();
    read_records(part.target.as_deref(), |r| {
        let row = decode_change(r, names)?;
        if row.op == RowOp::Truncate {
            return targets.iter_mut().try_for_each(|w| w.write(r));
        }
        targets[shape.of_target(&row, level, n)].write(r)
    })?;
    sources
        .into_iter()
        .zip(targets)
        .map(|(s, t)| {
            let bytes = s.bytes + t.bytes;
            Ok(Part {
                source: s.finish()?,
                target: t.finish()?,
                bytes,
                level,
            })
        })
        .collect()
}

/// Materialises and compares one partition, adding it to `parts`.
fn compare_part(
    part: Part,
    shape: &Shape,
    names: &Names,
    up_to: i64,
    aside: &[Row],
    carry: &mut Carry,
    parts: &mut DiffParts,
) -> Result<()> {
    let mut changes = Vec::new();
    read_records(part.target.as_deref(), |r| {
        changes.push(decode_change(r, names)?);
        Ok(())
    })?;
    let mut source_rows = Vec::new();
    read_records(part.source.as_deref(), |r| {
        source_rows.push(decode_row(r)?);
        Ok(())
    })?;
    if shape.whole_row {
        let source = count_rows(source_rows);
        let target = materialize_multiset(changes, &shape.cols, up_to);
        parts.add_multisets(&source, &target);
        return Ok(());
    }
    let mut source: Rows = source_rows
        .into_iter()
        .map(|vals| (shape.table.key.iter().map(|&k| vals[k].clone()).collect(), vals))
        .collect();
    let wanted = &carry.wanted;
    let removed = &mut carry.removed;
    let (state, _) = materialize_rows_seeing_deletes(changes, &shape.key, Some(up_to), &mut |lsn, seq, row| {
        if let Some(cols) = wanted.get(&(lsn, seq)) {
            removed.insert(
                (lsn, seq),
                cols.iter().map(|c| (c.clone(), row.get(c).cloned().flatten())).collect(),
            );
        }
    });
    let mut target = project_owned(state, &shape.cols);
    for k in aside {
        target.remove(k);
    }
    if !carry.wanted.is_empty() {
        let later: Vec<Row> = target
            .iter()
            .filter(|(_, row)| has_placeholder(row))
            .map(|(k, _)| k.clone())
            .collect();
        for k in later {
            if let Some(row) = target.remove(&k) {
                carry.later_target.insert(k.clone(), row);
            }
            if let Some(row) = source.remove(&k) {
                carry.later_source.insert(k, row);
            }
        }
    }
    parts.add_keyed(&source, &target);
    Ok(())
}

/// [`super::materialize::project`], consuming the state (no second copy of its values).
fn project_owned(state: TableState, columns: &[String]) -> Rows {
    state
        .into_iter()
        .map(|(k, mut v)| (k, columns.iter().map(|c| v.remove(c).flatten()).collect()))
        .collect()
}
