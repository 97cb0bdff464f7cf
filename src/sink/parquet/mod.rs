//! The Parquet sink, native layout (SPEC 5.1); with `layout = "dms"` the same machinery
//! writes DMS's names ([`dms_naming`]) and columns ([`dms_schema`]) (SPEC 5.2), as Parquet
//! or, with `format = "csv"`, as CSV files ([`csv_writer`], staged alike: [`part_file`]).
//!
//! Per table it keeps an Arrow batch builder and an open part file in staging. Rows go to
//! the builder; full batches go to the part; parts are sealed when a table's schema changes
//! or a part passes `max_file_size`. A flush (every `flush_interval`, or when a part is too
//! big at a transaction boundary) seals every open part and publishes all of them together
//! with the checkpoint through the [`manifest`], so the target only ever shows whole
//! transactions and each exactly once.

pub mod csv_writer;
pub mod dms_naming;
pub mod dms_schema;
mod encoder;
pub mod glue;
mod history;
pub mod load;
pub mod manifest;
pub mod naming;
pub mod part_file;
mod restamp;
mod staged;
mod streamed_chunk;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parquet::file::properties::WriterProperties;

use self::dms_schema::DmsFile;
use self::history::SchemaHistory;
use self::manifest::{Manifest, ManifestPart};
use self::naming::table_prefix;
use self::part_file::PartFile;
use self::writer::{LsnRange, PartWriter, SealedPart};
use crate::batch::TableBatchBuilder;
use crate::model::{OutputRow, TableSchema};
use crate::config::ParquetSinkConfig;
use crate::error::{Error, Result};
use crate::model::TxnMeta;
use crate::storage::Storage;
use crate::sink::dead_letter::{DeadLetterRoute, DeadLetters};
use crate::sink::{Checkpoint, Sink};

/// Hand a batch to the part writer once it holds this many rows or
/// [`crate::batch::BATCH_BYTES`], when the next row of its table comes (or at a seal).
const BATCH_ROWS: usize = 16 * 1024;

struct TableState {
    schema: Arc<TableSchema>,
    builder: TableBatchBuilder,
    part: Option<PartFile>,
    /// Transactions with rows in `builder` + `part`; `None` while both are empty.
    range: Option<LsnRange>,
    touched_in_txn: bool,
    /// Rows since the last flush by operation (L, I, U, D, T): counted here, named at flush.
    unflushed: [u64; 5],
}

fn op_index(op: crate::model::RowOp) -> usize {
    use crate::model::RowOp::*;
    match op {
        Load => 0,
        Insert => 1,
        Update => 2,
        Delete => 3,
        Truncate => 4,
    }
}

const OPS: [crate::model::RowOp; 5] = [
    crate::model::RowOp::Load,
    crate::model::RowOp::Insert,
    crate::model::RowOp::Update,
    crate::model::RowOp::Delete,
    crate::model::RowOp::Truncate,
];

pub struct ParquetSink {
    storage: Arc<dyn Storage>,
    flush_interval: Duration,
    max_file_size: u64,
    props: WriterProperties,
    tables: HashMap<u32, TableState>,
    sealed: Vec<SealedPart>,
    history: SchemaHistory,
    txn: Option<TxnMeta>,
    /// When the first row not yet flushed was committed (flush_interval counts from here).
    pending_since: Option<Instant>,
    oversized: bool,
    part_counter: u64,
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// The checkpoint this writer last read or wrote, with its version: the next checkpoint
    /// write must find it unchanged (fencing, see [`manifest`]).
    held: crate::state::checkpoint::Held,
    /// `layout = "dms"`: its columns and CDC names (SPEC 5.2); `None` in the native layout.
    dms: Option<(Arc<dms_schema::DmsColumns>, dms_naming::CdcNamer)>,
    /// Raised to a flush's position when its checkpoint is written (flushes are synchronous).
    watermark: Arc<crate::sink::Watermark>,
    /// `[dead_letter]`: where rows with a value this layout cannot hold go.
    dead_letters: Option<DeadLetterRoute>,
    /// The streamed transaction being staged ([`staged`]).
    staged: Option<staged::StagedTxn>,
}

impl ParquetSink {
    /// A sink writing into `storage`, the target of `cfg` (opened by the caller).
    pub fn open(cfg: &ParquetSinkConfig, storage: Arc<dyn Storage>) -> Result<ParquetSink> {
        Ok(ParquetSink {
            storage,
            flush_interval: cfg.flush_interval,
            max_file_size: cfg.max_file_size,
            props: writer::writer_properties(cfg.compression),
            tables: HashMap::new(),
            sealed: Vec::new(),
            history: SchemaHistory::default(),
            txn: None,
            pending_since: None,
            oversized: false,
            part_counter: 0,
            counts: BTreeMap::new(),
            held: None,
            dms: dms_schema::DmsColumns::of(cfg).map(|c| {
                let namer = dms_naming::CdcNamer::new(cfg.date_partitioning, c.extension());
                (c, namer)
            }),
            watermark: Arc::default(),
            dead_letters: None,
            staged: None,
        })
    }

    /// Sends rows with a value this sink cannot hold to `letters` (named after `cfg.url`)
    /// instead of stopping the run; `None` keeps the error.
    pub fn with_dead_letters(mut self, letters: Option<Arc<DeadLetters>>) -> ParquetSink {
        let label = crate::sink::dead_letter::parquet_sink_label(&self.storage.describe());
        self.dead_letters = letters.map(|l| DeadLetterRoute::new(l, label));
        self
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// Moves the table's buffered rows into its part file, opening one if needed.
    fn drain_builder(&mut self, relid: u32) -> Result<()> {
        let state = self.tables.get_mut(&relid).expect("known table");
        if state.builder.is_empty() {
            return Ok(());
        }
        if state.part.is_none() {
            self.part_counter += 1;
            let path = self
                .storage
                .staging_dir()
                .join(format!("{}-{}.parquet.part", std::process::id(), self.part_counter));
            state.part = Some(match &self.dms {
                None => PartFile::Parquet(PartWriter::create(path, state.schema.clone(), self.props.clone())?),
                Some((d, _)) => d.create_part(path, state.builder.table().clone(), DmsFile::Cdc, self.props.clone())?,
            });
        }
        let mut batch = state.builder.finish();
        if let Some((d, _)) = &self.dms {
            batch = d.convert(state.builder.table(), &batch, DmsFile::Cdc)?;
        }
        state.part.as_mut().expect("opened above").write(&batch)
    }

    /// Closes the table's current part (if it has rows) and queues it for the next flush.
    fn seal_part(&mut self, relid: u32) -> Result<()> {
        if !self.tables.contains_key(&relid) {
            return Ok(());
        }
        self.drain_builder(relid)?;
        let state = self.tables.get_mut(&relid).expect("checked");
        if let (Some(part), Some(range)) = (state.part.take(), state.range.take()) {
            self.sealed.push(part.seal(range)?);
        }
        // A transaction still open on this table continues in the next part: its next row
        // starts a new range.
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn describe(&self) -> String {
        format!("parquet {}", self.storage.describe())
    }

    fn delivery(&self) -> crate::sink::Delivery {
        crate::sink::Delivery::ExactlyOnceFiles
    }

    fn watermark(&self) -> Arc<crate::sink::Watermark> {
        self.watermark.clone()
    }

    fn recover(&mut self) -> Result<Option<Checkpoint>> {
        self.held = manifest::recover(self.storage.as_ref())?;
        if let Some((cp, _)) = &self.held {
            self.counts = cp.counts.clone();
            self.watermark.raise(cp.end_lsn);
        }
        Ok(self.held.as_ref().map(|(cp, _)| cp.clone()))
    }

    fn begin(&mut self, txn: &TxnMeta) -> Result<()> {
        self.txn = Some(txn.clone());
        Ok(())
    }

    fn relation(&mut self, table: &Arc<TableSchema>, txn: &TxnMeta) -> Result<()> {
        // A new key or relfilenode seals the part too: each file names its own key.
        let changed = match self.tables.get(&table.relid) {
            Some(s) => !s.schema.same_history(table) || s.schema.schema != table.schema || s.schema.name != table.name,
            None => true,
        };
        if !changed {
            // Same shape and key: keep the open part.
            if let Some(s) = self.tables.get_mut(&table.relid) {
                s.schema = table.clone();
            }
            return Ok(());
        }
        if self.tables.contains_key(&table.relid) {
            self.seal_part(table.relid)?;
        }
        self.history.record(self.storage.as_ref(), table, txn.commit_lsn)?;
        let unflushed = self.tables.get(&table.relid).map_or([0; 5], |s| s.unflushed);
        self.tables.insert(
            table.relid,
            TableState {
                schema: table.clone(),
                builder: TableBatchBuilder::new(match &self.dms {
                    None => table.clone(),
                    Some((d, _)) => d.source_table(table)?,
                }),
                part: None,
                range: None,
                touched_in_txn: false,
                unflushed,
            },
        );
        Ok(())
    }

    fn row(&mut self, table: &Arc<TableSchema>, row: &OutputRow<'_>) -> Result<()> {
        let relid = table.relid;
        let state = self
            .tables
            .get_mut(&relid)
            .ok_or_else(|| Error::runtime(format!("internal: row for {}.{} before its schema", table.schema, table.name)))?;
        if self.dms.as_ref().is_some_and(|(d, _)| !d.keeps(row.op)) {
            return Ok(());
        }
        // A full batch goes to its part before the next row is appended, not right after its
        // last row: by then the source message of that row (which may hold a huge value) has
        // been released, so the encoder does not work while it is still in memory.
        if state.builder.is_full(BATCH_ROWS) {
            self.drain_builder(relid)?;
            let size = self.tables[&relid].part.as_ref().map_or(0, |p| p.size());
            if size >= self.max_file_size {
                // Mid-transaction is fine: parts are only published together at a flush.
                self.seal_part(relid)?;
            }
        }
        let state = self.tables.get_mut(&relid).expect("checked above");
        if let Err(e) = state.builder.append(row) {
            // The builder holds nothing of a refused row.
            return match &self.dead_letters {
                Some(d) => d.refuse_row(table, row, &e),
                None => Err(Error::runtime(format!("cannot convert a value of {}.{} at LSN {}: {e}", table.schema, table.name, row.lsn))
                    .with_hint(crate::sink::dead_letter::REFUSED_HINT)),
            };
        }
        state.touched_in_txn = true;
        let range = state.range.get_or_insert(LsnRange { first_lsn: row.lsn, last_lsn: row.lsn, first_ts_us: row.commit_ts_us });
        range.last_lsn = row.lsn;
        state.unflushed[op_index(row.op)] += 1;
        Ok(())
    }

    fn commit(&mut self, txn: &TxnMeta) -> Result<()> {
        let mut any = false;
        for state in self.tables.values_mut() {
            if state.touched_in_txn {
                state.touched_in_txn = false;
                any = true;
                if let Some(r) = state.range.as_mut() {
                    r.last_lsn = txn.commit_lsn;
                }
            }
        }
        if any {
            if self.pending_since.is_none() {
                self.pending_since = Some(Instant::now());
            }
            let max = self.max_file_size;
            self.oversized = self.tables.values().any(|s| s.part.as_ref().is_some_and(|p| p.size() >= max));
        }
        self.txn = None;
        Ok(())
    }

    fn wants_flush(&self, now: Instant) -> bool {
        self.oversized || self.pending_since.is_some_and(|t| now.duration_since(t) >= self.flush_interval)
    }

    fn has_pending(&self) -> bool {
        self.pending_since.is_some() || !self.sealed.is_empty()
    }

    fn flush(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        if self.txn.is_some() {
            return Err(Error::runtime("internal: flush inside a transaction"));
        }
        for relid in self.tables.keys().copied().collect::<Vec<_>>() {
            self.seal_part(relid)?;
        }
        let parts: Vec<(String, _, _, i64)> = self
            .sealed
            .iter()
            .map(|p| (table_prefix(&p.schema.schema, &p.schema.name), p.first_lsn, p.last_lsn, p.first_ts_us))
            .collect();
        let keys = match &mut self.dms {
            None => naming::cdc_keys(&parts),
            Some((_, namer)) => {
                let parts: Vec<_> = self
                    .sealed
                    .iter()
                    .map(|p| (p.path.clone(), dms_naming::dms_table_prefix(&p.schema.schema, &p.schema.name), p.first_ts_us))
                    .collect();
                namer.assign(self.storage.as_ref(), &parts)?
            }
        };
        for state in self.tables.values_mut() {
            for (i, n) in std::mem::take(&mut state.unflushed).into_iter().enumerate().filter(|(_, n)| *n > 0) {
                let key = state.schema.qualified_name();
                *self.counts.entry(key).or_default().entry(OPS[i].code().to_string()).or_default() += n;
            }
        }
        let mut cp = checkpoint.clone();
        cp.counts = self.counts.clone();
        cp.written_at = crate::time_fmt::now_rfc3339();
        let manifest = Manifest {
            checkpoint: cp,
            parts: self
                .sealed
                .iter()
                .zip(keys)
                .map(|(p, key)| ManifestPart { staging: p.path.to_string_lossy().into_owned(), key })
                .collect(),
        };
        manifest::commit(self.storage.as_ref(), &manifest, &mut self.held)?;
        if let Some((_, namer)) = &mut self.dms {
            namer.published();
        }
        self.sealed.clear();
        self.pending_since = None;
        self.oversized = false;
        self.watermark.raise(checkpoint.end_lsn);
        Ok(())
    }

    /// The native layout stages streamed transactions; the DMS layout (its own columns,
    /// CSV) replays them.
    fn staging(&mut self) -> Option<&mut dyn crate::sink::Staging> {
        if self.dms.is_some() {
            return None;
        }
        Some(self)
    }
}
