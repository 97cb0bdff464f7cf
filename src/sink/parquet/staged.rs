//! The Parquet sink's [`Staging`] of a streamed transaction (native layout).
//!
//! While the transaction streams, its rows are converted and encoded exactly as committed
//! rows are, but into parts of their own (`<pid>-<n>.staged.part` in the staging
//! directory), one table at a time, with placeholder `_lsn` and `_commit_ts`: the encoder
//! threads work while the walsender is still sending. At the commit each staged part is
//! [`restamp`]ed into an ordinary part with the commit's LSN and time and queued for the
//! next flush like any sealed part, after the table's part in progress (sealed first, so
//! the files keep commit order). What a flush publishes is the same rows a replay would
//! have written; only where the files split differs.
//!
//! Memory: per staged table, one batch builder and one part writer, as for a table of the
//! ordinary path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::restamp::restamp;
use super::writer::{PartWriter, SealedPart};
use super::{op_index, ParquetSink, BATCH_ROWS};
use crate::batch::TableBatchBuilder;
use crate::error::{Error, Result};
use crate::model::{OutputRow, TableSchema, TxnMeta};
use crate::sink::Staging;

/// What is staged of one transaction.
#[derive(Default)]
pub(super) struct StagedTxn {
    tables: HashMap<u32, StagedTable>,
}

struct StagedTable {
    builder: TableBatchBuilder,
    part: Option<PartWriter>,
    /// Finished parts (placeholders still in them).
    done: Vec<PathBuf>,
    /// Rows by operation, as [`super::TableState::unflushed`] counts them.
    counts: [u64; 5],
}

impl StagedTable {
    /// Ends the part in progress and returns every finished part.
    fn finish(mut self, sink: &mut ParquetSink) -> Result<Vec<PathBuf>> {
        if !self.builder.is_empty() {
            let batch = self.builder.finish();
            sink.staged_part(&mut self.part, &self.builder)?.write(&batch)?;
        }
        if let Some(part) = self.part.take() {
            self.done.push(part.finish()?);
        }
        Ok(self.done)
    }

    fn discard(self) {
        if let Some(part) = self.part {
            part.abandon();
        }
        for path in self.done {
            std::fs::remove_file(path).ok();
        }
    }
}

impl ParquetSink {
    /// The table's staged part in progress, created on first use.
    fn staged_part<'p>(&mut self, part: &'p mut Option<PartWriter>, builder: &TableBatchBuilder) -> Result<&'p mut PartWriter> {
        if part.is_none() {
            self.part_counter += 1;
            let path = self.storage.staging_dir().join(format!("{}-{}.staged.part", std::process::id(), self.part_counter));
            *part = Some(PartWriter::create(path, builder.table().clone(), self.props.clone())?);
        }
        Ok(part.as_mut().expect("created above"))
    }
}

impl Staging for ParquetSink {
    fn open(&mut self) -> Result<()> {
        self.discard();
        self.staged = Some(StagedTxn::default());
        Ok(())
    }

    fn row(&mut self, table: &Arc<TableSchema>, row: &OutputRow<'_>) -> Result<()> {
        let mut staged = self.staged.take().ok_or_else(|| Error::runtime("internal: a staged row before Staging::open"))?;
        let result = self.stage_row(&mut staged, table, row);
        self.staged = Some(staged);
        result
    }

    fn discard(&mut self) {
        if let Some(staged) = self.staged.take() {
            staged.tables.into_values().for_each(StagedTable::discard);
        }
    }

    fn commit(&mut self, txn: &TxnMeta) -> Result<()> {
        let staged = self.staged.take().ok_or_else(|| Error::runtime("internal: Staging::commit without a staged transaction"))?;
        let mut tables: Vec<_> = staged.tables.into_iter().collect();
        tables.sort_by_key(|(relid, _)| *relid);
        let any = !tables.is_empty();
        for (relid, table) in tables {
            let announced = self.tables.get(&relid).map(|s| s.schema.clone());
            if announced.as_deref() != Some(table.builder.table().as_ref()) {
                return Err(Error::runtime(format!(
                    "internal: {} was staged under another schema than the one announced at its commit",
                    table.builder.table().qualified_name()
                )));
            }
            let schema = announced.expect("compared above");
            let arrow_schema = table.builder.schema().clone();
            let counts = table.counts;
            let parts = table.finish(self)?;
            // The rows of earlier transactions come first, in a part of their own.
            self.seal_part(relid)?;
            for src in parts {
                self.part_counter += 1;
                let path = self.storage.staging_dir().join(format!("{}-{}.parquet.part", std::process::id(), self.part_counter));
                restamp(&src, &path, &arrow_schema, &self.props, txn.commit_lsn, txn.commit_ts_us)?;
                std::fs::remove_file(&src).ok();
                crate::failpoint::hit("staged-commit");
                self.sealed.push(SealedPart {
                    path,
                    schema: schema.clone(),
                    first_lsn: txn.commit_lsn,
                    last_lsn: txn.commit_lsn,
                    first_ts_us: txn.commit_ts_us,
                });
            }
            let state = self.tables.get_mut(&relid).expect("announced");
            state.unflushed.iter_mut().zip(counts).for_each(|(n, c)| *n += c);
        }
        if any {
            self.pending_since.get_or_insert_with(Instant::now);
        }
        Ok(())
    }
}

impl ParquetSink {
    fn stage_row(&mut self, staged: &mut StagedTxn, table: &Arc<TableSchema>, row: &OutputRow<'_>) -> Result<()> {
        let entry = staged.tables.entry(table.relid).or_insert_with(|| StagedTable {
            builder: TableBatchBuilder::new(table.clone()),
            part: None,
            done: Vec::new(),
            counts: [0; 5],
        });
        if !Arc::ptr_eq(entry.builder.table(), table) {
            return Err(Error::runtime(format!("{} is staged under another schema", table.qualified_name())));
        }
        if entry.builder.is_full(BATCH_ROWS) {
            let batch = entry.builder.finish();
            let part = self.staged_part(&mut entry.part, &entry.builder)?;
            part.write(&batch)?;
            if part.size() >= self.max_file_size {
                let part = entry.part.take().expect("written above");
                entry.done.push(part.finish()?);
            }
        }
        entry
            .builder
            .append(row)
            .map_err(|e| Error::runtime(format!("cannot convert a value of {}: {e}", table.qualified_name())))?;
        entry.counts[op_index(row.op)] += 1;
        Ok(())
    }
}
