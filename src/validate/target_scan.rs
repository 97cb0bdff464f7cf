//! Reading a table's target for the partitioned comparison ([`super::partitioned`]) one file
//! at a time, never all of its rows at once.
//!
//! [`TargetScan::scan`] (first pass) reads of each Parquet file only its schema, size and the
//! `_lsn`/`_seq` columns: the files' order (oldest first, by their first change), the
//! identity plans of [`super::identity`], the number of change rows, and every `(_lsn, _seq)`
//! pair into a spill file for [`TargetScan::duplicates`]. [`TargetScan::for_each_row`]
//! (second pass) then gives every change row, named, filled and converted as
//! [`super::materialize::read_stored_table_rows`] does, file by file, batch by batch, with
//! its columns numbered ([`super::target_records`]).
//! Each file is fetched whole through [`Storage::get`] (one file in memory at a time), once
//! per pass.

use std::path::PathBuf;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::identity::{self, FilePlan, FileShape};
use super::materialize::{file_shape, Conversions};
use super::packed::Columns;
use super::target_records::{FileEncoder, TargetRow};
use super::spill::{partition_of_bytes, read_records, SpillDir, SpillWriter};
use crate::error::{Error, Result, ResultExt};
use crate::storage::Storage;

/// Conversions cached at most (values of a retyped column), then the cache starts over.
const CONVERSIONS_KEPT: usize = 100_000;
/// Pairs per spill record.
const PAIRS_PER_RECORD: usize = 4096;

/// What the first pass learnt about a table's files.
pub struct TargetScan {
    /// Parquet files listed (also empty ones).
    pub files: usize,
    /// Change rows in all files (also past the validation LSN).
    pub change_rows: usize,
    /// The files with rows, oldest first, with their plans.
    ordered: Vec<(String, FileShape, FilePlan)>,
    /// Uncompressed size of all row groups (an estimate of the rows' size).
    pub bytes: u64,
    pairs: Option<PathBuf>,
}

fn reader(storage: &dyn Storage, key: &str) -> Result<ParquetRecordBatchReaderBuilder<bytes::Bytes>> {
    let name = || format!("{}/{key}", storage.describe());
    let data = storage
        .get(key)?
        .ok_or_else(|| Error::runtime(format!("{} vanished while validate read it", name())))?;
    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(data)).runtime_ctx(|| format!("reading {}", name()))
}

impl TargetScan {
    /// The first pass over the Parquet files under `prefix` (a table's `schema/table`).
    pub fn scan(storage: &dyn Storage, prefix: &str, spill: &SpillDir) -> Result<TargetScan> {
        let keys: Vec<String> = storage.list(prefix)?.into_iter().filter(|k| k.ends_with(".parquet")).collect();
        let mut pairs = SpillWriter::new(spill.file("pairs"));
        let mut record = Vec::with_capacity(PAIRS_PER_RECORD * 16);
        let (mut change_rows, mut bytes) = (0usize, 0u64);
        let mut found: Vec<((i64, i64), String, FileShape)> = Vec::new();
        for key in &keys {
            let name = || format!("{}/{key}", storage.describe());
            let builder = reader(storage, key)?;
            let shape = file_shape(builder.schema());
            bytes += builder
                .metadata()
                .row_groups()
                .iter()
                .map(|rg| rg.total_byte_size().max(0) as u64)
                .sum::<u64>();
            let index = |col: &str| {
                builder
                    .schema()
                    .index_of(col)
                    .map_err(|_| Error::runtime(format!("{}: missing column {col}", name())))
            };
            let (l, s) = (index("_lsn")?, index("_seq")?);
            let mask = ProjectionMask::roots(builder.parquet_schema(), [l, s]);
            let mut min: Option<(i64, i64)> = None;
            for batch in builder
                .with_projection(mask)
                .build()
                .runtime_ctx(|| format!("reading {}", name()))?
            {
                let batch = batch.runtime_ctx(|| format!("reading {}", name()))?;
                let int64 = |i: usize| {
                    batch
                        .column(i)
                        .as_any()
                        .downcast_ref::<arrow_array::Int64Array>()
                        .cloned()
                        .ok_or_else(|| Error::runtime(format!("{}: _lsn and _seq must be int64", name())))
                };
                let (lsn, seq) = (int64(0)?, int64(1)?);
                for r in 0..batch.num_rows() {
                    let pair = (lsn.value(r), seq.value(r));
                    min = Some(min.map_or(pair, |m| m.min(pair)));
                    record.extend_from_slice(&pair.0.to_le_bytes());
                    record.extend_from_slice(&pair.1.to_le_bytes());
                    if record.len() == PAIRS_PER_RECORD * 16 {
                        pairs.write(&record)?;
                        record.clear();
                    }
                }
                change_rows += batch.num_rows();
            }
            if let Some(min) = min {
                found.push((min, key.clone(), shape));
            }
        }
        if !record.is_empty() {
            pairs.write(&record)?;
        }
        // Oldest first: by the first change of each file (a file holds one LSN range).
        found.sort_by_key(|(min, _, _)| *min);
        let shapes: Vec<FileShape> = found.iter().map(|(_, _, s)| s.clone()).collect();
        let plans = identity::plan(&shapes);
        let ordered = found
            .into_iter()
            .zip(plans)
            .map(|((_, key, shape), plan)| (key, shape, plan))
            .collect();
        Ok(TargetScan {
            files: keys.len(),
            change_rows,
            ordered,
            bytes,
            pairs: pairs.finish()?,
        })
    }

    /// The key each file's rows apply with (empty: the table's key), oldest file first.
    pub fn file_keys(&self) -> impl Iterator<Item = &[String]> {
        self.ordered.iter().map(|(_, _, plan)| plan.key.as_slice())
    }

    /// The `(_lsn, _seq)` pairs found more than once, sorted, each once; at most `budget`
    /// bytes of pairs are sorted in memory at a time (more are partitioned on disk first).
    pub fn duplicates(&mut self, budget: u64, spill: &SpillDir) -> Result<Vec<(i64, i64)>> {
        let Some(path) = self.pairs.take() else { return Ok(Vec::new()) };
        let parts = (self.change_rows as u64 * 16 * 2)
            .div_ceil(budget.max(1))
            .clamp(1, super::spill::MAX_FANOUT as u64) as usize;
        let mut files = vec![Some(path)];
        if parts > 1 {
            let mut writers: Vec<SpillWriter> = (0..parts).map(|_| SpillWriter::new(spill.file("pairs"))).collect();
            read_records(files[0].as_deref(), |r| {
                for pair in r.chunks_exact(16) {
                    writers[partition_of_bytes(pair, parts)].write(pair)?;
                }
                Ok(())
            })?;
            files = writers.into_iter().map(SpillWriter::finish).collect::<Result<_>>()?;
        }
        let mut out = Vec::new();
        for file in files {
            let mut pairs: Vec<(i64, i64)> = Vec::new();
            read_records(file.as_deref(), |r| {
                pairs.extend(r.chunks_exact(16).map(|p| {
                    (
                        i64::from_le_bytes(p[..8].try_into().expect("8 bytes")),
                        i64::from_le_bytes(p[8..].try_into().expect("8 bytes")),
                    )
                }));
                Ok(())
            })?;
            out.extend(super::table::repeated_pairs(pairs));
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The second pass: every change row, oldest file first, each file's rows in order, as
    /// the materialisation takes them (see the module docs), its columns numbered in
    /// `columns` ([`super::target_records`]).
    pub fn for_each_row(
        &self,
        storage: &dyn Storage,
        columns: &mut Columns,
        mut f: impl FnMut(&mut TargetRow) -> Result<()>,
    ) -> Result<()> {
        let mut converted = Conversions::new();
        for (key, shape, plan) in &self.ordered {
            let name = || format!("{}/{key}", storage.describe());
            let encoder = FileEncoder::new(shape, plan, columns);
            for batch in reader(storage, key)?.build().runtime_ctx(|| format!("reading {}", name()))? {
                let batch = batch.runtime_ctx(|| format!("reading {}", name()))?;
                encoder.rows(&batch, columns, &mut converted, &mut f).map_err(|e| e.context(name()))?;
                if converted.len() > CONVERSIONS_KEPT {
                    converted.clear();
                }
            }
        }
        Ok(())
    }
}
