//! Comparing one table in bounded memory (step 4 of [`super::run`], for
//! [`super::table::validate_table`]).
//!
//! Both sides are hash-partitioned by key into spill files ([`super::spill`]) as compact
//! column-numbered records ([`super::packed`]), then each partition is materialised
//! ([`super::packed_rule`]) and compared alone, and the parts added up ([`DiffParts`]):
//!
//! * **Source**: read through a cursor in the snapshot, 10 000 rows at a time
//!   ([`SourceRows::next_chunk`], the next chunk fetched while one is written), set aside as
//!   dead letters ([`super::dead_letters`]), converted through the output's type mapping,
//!   written to the partition of its key.
//! * **Target**: read file by file ([`TargetScan`]) on a thread of its own while the source
//!   is read; each change row up to the validation LSN goes to the partition of its key, a
//!   `T` to every partition. The key is the table's key, or the columns it shares with every
//!   file's key when the key changed; when they share none, the table is one partition
//!   (held in memory whole, as before).
//! * **Partitions**: compared by W threads at once (the cores, at most [`MAX_WORKERS`]),
//!   each partition within 1/W of the memory budget (`PGCDC_VALIDATE_MEMORY`, default
//!   [`DEFAULT_BUDGET`]): N = 1.5 × the estimated size of both sides × [`BYTES_IN_MEMORY`]
//!   / (budget / W), at most [`MAX_FANOUT`]; a partition whose spill files still take more
//!   than its share is split again by another hash.
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

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use super::canonical::canonical_regions;
use super::compare::{Row, Rows, TableDiff};
use super::dead_letters::set_aside;
use super::diff_parts::DiffParts;
use super::packed::{
    decode_values, encoded_value, key_of, parse_change, partition_of_encoded, projected, put_value, records,
    region_values, value_at, Bytes, Columns, FastMap,
};
use super::packed_rule::{count_whole_rows, materialize};
use super::source_rows::SourceRows;
use super::spill::{read_all, read_records, SpillDir, SpillWriter, MAX_FANOUT};
use super::target_records::TargetRow;
use super::target_scan::TargetScan;
use crate::error::{Error, Result};
use crate::model::{RowOp, TableSchema};
use crate::sink::dead_letter::DeadLetters;

/// The memory budget of one partition's comparison when `PGCDC_VALIDATE_MEMORY` is not set.
pub const DEFAULT_BUDGET: u64 = 256 << 20;
/// Bytes of memory one spilled byte takes when its partition is materialised and compared
/// (the partition's files read whole, plus per row the parsed change, the state's and the
/// source's hash entries; measured).
pub const BYTES_IN_MEMORY: u64 = 2;
/// Threads comparing partitions at once, at most (each holds one partition in memory).
const MAX_WORKERS: usize = 2;
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
    /// The key's column numbers ([`Columns`]: the positions in `cols`).
    key_ids: Vec<u32>,
    whole_row: bool,
    /// The column numbers rows are partitioned by.
    by: Vec<u32>,
}

impl Shape<'_> {
    /// The partition (of `n`, at `level`) of a row by its region (source and target alike).
    fn partition(&self, region: &[u8], level: u32, n: usize) -> Result<usize> {
        if n <= 1 {
            return Ok(0);
        }
        if self.whole_row {
            return Ok(partition_of_encoded(std::iter::once(&*projected(region, self.cols.len())?), level, n));
        }
        match self.by.as_slice() {
            [one] => Ok(partition_of_encoded(std::iter::once(encoded_value(region, *one)?), level, n)),
            by => {
                let parts = by.iter().map(|&id| encoded_value(region, id)).collect::<Result<Vec<_>>>()?;
                Ok(partition_of_encoded(parts.into_iter(), level, n))
            }
        }
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
    wanted: HashMap<(i64, i64), Vec<u32>>,
    /// The `I`'s own values of those columns (when not null), by the `D`'s pair.
    own: HashMap<((i64, i64), u32), String>,
    /// What the partitions found.
    found: Found,
}

/// What comparing partitions found for the carry-over (per comparing thread, then merged).
#[derive(Default)]
struct Found {
    /// What each wanted `D` removed.
    removed: HashMap<(i64, i64), HashMap<u32, Option<String>>>,
    /// Rows compared at the end: key → (source row, target row).
    later_source: Rows,
    later_target: Rows,
}

impl Found {
    fn merge(&mut self, other: Found) {
        self.removed.extend(other.removed);
        self.later_source.extend(other.later_source);
        self.later_target.extend(other.later_target);
    }
}

impl Carry {
    /// Puts placeholders into an `I` that carries values over a key change.
    fn mark(&mut self, row: &mut TargetRow) {
        let pair = (row.lsn, row.seq - 1);
        for &c in row.unchanged {
            if let Some(v) = row.values.get(c as usize) {
                self.own.insert((pair, c), lossy(v));
            }
            let placeholder = format!("{CARRY}{}\0{}\0{c}", pair.0, pair.1);
            row.values.set(c as usize, Some(placeholder.as_bytes()));
            self.wanted.entry(pair).or_default().push(c);
        }
    }

    fn resolve(&self, v: Option<String>, depth: usize) -> Option<String> {
        let Some(rest) = v.as_deref().and_then(|s| s.strip_prefix(CARRY)) else {
            return v;
        };
        let mut it = rest.splitn(3, '\0');
        let (Some(lsn), Some(seq), Some(Ok(col))) = (it.next(), it.next(), it.next().map(str::parse::<u32>)) else {
            return v;
        };
        let pair = (lsn.parse().unwrap_or(0), seq.parse().unwrap_or(0));
        match self.found.removed.get(&pair) {
            Some(row) if depth < 1000 => self.resolve(row.get(&col).cloned().flatten(), depth + 1),
            _ => self.own.get(&(pair, col)).cloned(),
        }
    }
}

fn lossy(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
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
    let by: Vec<u32> = if whole_row {
        (0..cols.len() as u32).collect()
    } else {
        table
            .key
            .iter()
            .filter(|&&i| scan.file_keys().all(|k| k.is_empty() || k.contains(&cols[i])))
            .map(|&i| i as u32)
            .collect()
    };
    let shape = Shape {
        table,
        key_ids: table.key.iter().map(|&i| i as u32).collect(),
        cols,
        key,
        whole_row,
        by,
    };
    let mut columns = Columns::new(&shape.cols);
    // Partitions are compared by `workers` threads at once, each within its share of the
    // budget; a margin on the estimate keeps partitions from needing a second split.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_WORKERS);
    let part_budget = (budget / workers as u64).max(1);
    let estimate = (scan.bytes + source_bytes) * BYTES_IN_MEMORY;
    let n = if shape.by.is_empty() {
        1
    } else {
        (estimate + estimate / 2).div_ceil(part_budget).clamp(1, MAX_FANOUT as u64) as usize
    };
    tracing::debug!(table = %table.qualified_name(), partitions = n, estimate, budget, workers, "partitioning the comparison");

    // Both sides into their partitions at once: the target on a thread of its own while
    // this one reads the source (and the server formats the next rows meanwhile).
    let mut carry = Carry::default();
    let handle = tokio::runtime::Handle::current();
    let (source_side, targets) = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let target_side = s.spawn(|| target_into_parts(&scan, target, &shape, &mut columns, &mut carry, &spill, up_to, n));
            let source_side = source_into_parts(&mut source, &handle, &shape, letters, &spill, n);
            let targets = target_side
                .join()
                .unwrap_or_else(|_| Err(Error::runtime("validate's target reader stopped unexpectedly")));
            (source_side, targets)
        })
    });
    let (sources, dead_lettered, aside_keys) = source_side?;
    let targets = targets?;
    let spilled_bytes: u64 = sources.iter().chain(&targets).map(|(_, b)| b).sum();
    tracing::debug!(table = %table.qualified_name(), spilled_bytes, "both sides partitioned");
    // Dead-lettered keys, encoded as the state's keys are.
    let aside: Vec<Vec<u8>> = aside_keys
        .iter()
        .map(|k: &Row| {
            let mut b = Vec::new();
            k.iter().for_each(|v| put_value(&mut b, v.as_deref().map(str::as_bytes)));
            b
        })
        .collect();

    let stack: Vec<Part> = sources
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
    let stack = Mutex::new(stack);
    let pop = || stack.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let wanted = &carry.wanted;
    let done = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| -> Result<(DiffParts, Found, usize, u64)> {
                        let (mut parts, mut found, mut compared, mut largest) = (DiffParts::default(), Found::default(), 0, 0);
                        while let Some(part) = pop() {
                            if part.bytes * BYTES_IN_MEMORY > part_budget && part.level < MAX_LEVEL && !shape.by.is_empty() {
                                let more = split(part, &shape, &spill, part_budget)?;
                                stack.lock().unwrap_or_else(PoisonError::into_inner).extend(more);
                                continue;
                            }
                            (compared, largest) = (compared + 1, largest.max(part.bytes));
                            compare_part(part, &shape, &columns, up_to, &aside, wanted, &mut found, &mut parts)?;
                        }
                        Ok((parts, found, compared, largest))
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Err(Error::runtime("validate's comparing thread stopped unexpectedly"))))
                .collect::<Result<Vec<_>>>()
        })
    })?;
    let (mut parts, mut compared, mut largest) = (DiffParts::default(), 0, 0);
    for (p, found, c, l) in done {
        parts.merge(p);
        carry.found.merge(found);
        (compared, largest) = (compared + c, largest.max(l));
    }
    tracing::info!(
        table = %table.qualified_name(),
        partitions = compared,
        largest_partition_bytes = largest,
        spilled_bytes,
        carried_later = carry.found.later_target.len(),
        "compared partition by partition"
    );
    if !carry.found.later_target.is_empty() || !carry.found.later_source.is_empty() {
        let later_target: Rows = std::mem::take(&mut carry.found.later_target)
            .into_iter()
            .map(|(k, row)| (k, row.into_iter().map(|v| carry.resolve(v, 0)).collect()))
            .collect();
        parts.add_keyed(&carry.found.later_source, &later_target);
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

type Files = Vec<(Option<PathBuf>, u64)>;

fn finish_all(writers: Vec<SpillWriter>) -> Result<Files> {
    writers
        .into_iter()
        .map(|w| {
            let bytes = w.bytes;
            Ok((w.finish()?, bytes))
        })
        .collect()
}

/// The source's rows into `n` partitions: fetched [`CHUNK`] rows at a time (the next chunk
/// is fetched while this one is written), dead letters set aside. Gives the files, the
/// rows set aside and their keys.
fn source_into_parts(
    source: &mut SourceRows<'_>,
    handle: &tokio::runtime::Handle,
    shape: &Shape,
    letters: Option<&DeadLetters>,
    spill: &SpillDir,
    n: usize,
) -> Result<(Files, usize, Vec<Row>)> {
    let mut writers: Vec<SpillWriter> = (0..n).map(|_| SpillWriter::new(spill.file("source"))).collect();
    let (mut dead_lettered, mut aside_keys) = (0, Vec::new());
    let mut write = |mut chunk: Vec<Row>| -> Result<()> {
        let aside = set_aside(shape.table, &mut chunk, letters)?;
        dead_lettered += aside.rows;
        aside_keys.extend(aside.keys);
        canonical_regions(shape.table, chunk, |region| writers[shape.partition(region, 0, n)?].write(region))
    };
    let mut next = handle.block_on(source.next_chunk(CHUNK))?;
    while let Some(chunk) = next {
        let (fetched, written) = handle.block_on(async { tokio::join!(source.next_chunk(CHUNK), async { write(chunk) }) });
        written?;
        next = fetched?;
    }
    Ok((finish_all(writers)?, dead_lettered, aside_keys))
}

/// The target's change rows up to `up_to` into `n` partitions (a `T` into every one),
/// their columns numbered in `columns`, values carried over key changes marked in `carry`.
#[allow(clippy::too_many_arguments)]
fn target_into_parts(
    scan: &TargetScan,
    target: &dyn crate::storage::Storage,
    shape: &Shape,
    columns: &mut Columns,
    carry: &mut Carry,
    spill: &SpillDir,
    up_to: i64,
    n: usize,
) -> Result<Files> {
    let mut writers: Vec<SpillWriter> = (0..n).map(|_| SpillWriter::new(spill.file("target"))).collect();
    let mut buf = Vec::new();
    scan.for_each_row(target, columns, |row| {
        if row.lsn > up_to {
            return Ok(());
        }
        if !shape.whole_row && matches!(row.op, RowOp::Insert | RowOp::Load) && !row.unchanged.is_empty() {
            carry.mark(row);
        }
        row.encode(&mut buf);
        if row.op == RowOp::Truncate {
            return writers.iter_mut().try_for_each(|w| w.write(&buf));
        }
        writers[shape.partition(parse_change(&buf)?.region, 0, n)?].write(&buf)
    })?;
    finish_all(writers)
}

/// Splits a partition that is too large into smaller ones by the next level's hash.
fn split(part: Part, shape: &Shape, spill: &SpillDir, budget: u64) -> Result<Vec<Part>> {
    let (level, n) = (
        part.level + 1,
        (part.bytes * BYTES_IN_MEMORY).div_ceil(budget).clamp(2, MAX_FANOUT as u64) as usize,
    );
    let mut sources: Vec<SpillWriter> = (0..n).map(|_| SpillWriter::new(spill.file("source"))).collect();
    read_records(part.source.as_deref(), |r| sources[shape.partition(r, level, n)?].write(r))?;
    let mut targets: Vec<SpillWriter> = (0..n).map(|_| SpillWriter::new(spill.file("target"))).collect();
    read_records(part.target.as_deref(), |r| {
        let change = parse_change(r)?;
        if change.op == RowOp::Truncate {
            return targets.iter_mut().try_for_each(|w| w.write(r));
        }
        targets[shape.partition(change.region, level, n)?].write(r)
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

/// Materialises and compares one partition, adding it to `parts` (and what it found for the
/// carry-over to `found`).
#[allow(clippy::too_many_arguments)]
fn compare_part(
    part: Part,
    shape: &Shape,
    columns: &Columns,
    up_to: i64,
    aside: &[Vec<u8>],
    wanted: &HashMap<(i64, i64), Vec<u32>>,
    found: &mut Found,
    parts: &mut DiffParts,
) -> Result<()> {
    let n = shape.cols.len();
    let target_file = read_all(part.target.as_deref())?;
    let source_file = read_all(part.source.as_deref())?;
    let changes = records(&target_file).map(|r| parse_change(r?)).collect::<Result<Vec<_>>>()?;
    let row_of = |region: &[u8]| decode_values(&projected(region, n)?);
    if shape.whole_row {
        let mut source: FastMap<Bytes, usize> = FastMap::default();
        for r in records(&source_file) {
            *source.entry(projected(r?, n)?).or_insert(0) += 1;
        }
        let target = count_whole_rows(changes, n, up_to)?;
        return parts.add_multisets_with(&source, &target, |k| decode_values(k));
    }
    let mut source: FastMap<Bytes, &[u8]> = FastMap::default();
    source.reserve(records(&source_file).count());
    for r in records(&source_file) {
        let r = r?;
        source.insert(key_of(&Cow::Borrowed(r), &shape.key_ids)?, r);
    }
    let removed = &mut found.removed;
    let mut target = materialize(changes, columns, &shape.key_ids, up_to, &mut |lsn, seq, region| {
        if let Some(cols) = wanted.get(&(lsn, seq)) {
            let values = cols.iter().map(|&c| Ok((c, value_at(region, c)?.map(lossy)))).collect::<Result<_>>()?;
            removed.insert((lsn, seq), values);
        }
        Ok(())
    })?;
    for k in aside {
        target.remove(k.as_slice());
    }
    if !wanted.is_empty() {
        let mut later = Vec::new();
        for (k, region) in &target {
            let values = region_values(region)?;
            if values.iter().take(n).any(|v| v.is_some_and(|s| s.starts_with(CARRY.as_bytes()))) {
                later.push(k.clone());
            }
        }
        for k in later {
            let row_key = decode_values(&k)?;
            if let Some(region) = target.remove(&k) {
                found.later_target.insert(row_key.clone(), row_of(&region)?);
            }
            if let Some(region) = source.remove(&k) {
                found.later_source.insert(row_key, row_of(region)?);
            }
        }
    }
    let same = |s: &&[u8], t: &Bytes| Ok(projected(s, n)? == projected(t, n)?);
    parts.add_keyed_with(&source, &target, same, |k| decode_values(k), |s| row_of(s), |t| row_of(t))
}
