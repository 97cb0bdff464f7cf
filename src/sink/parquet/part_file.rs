//! The file a Parquet sink stages for one table: a Parquet part ([`PartWriter`]) or, in the
//! DMS layout with `format = "csv"`, a CSV file ([`CsvPartWriter`]). Both are written in the
//! staging directory, sealed (fsynced) into a [`SealedPart`] and published by the sink's
//! flush or the full load's [`super::load::LoadWriter`] in the same way, so the file format
//! does not touch exactly-once or crash recovery.

use std::sync::Arc;

use arrow_array::RecordBatch;

use super::csv_writer::CsvPartWriter;
use super::writer::{LsnRange, PartWriter, SealedPart};
use crate::error::Result;
use crate::model::TableSchema;

/// A staged data file of one table, Parquet or CSV.
pub enum PartFile {
    Parquet(PartWriter),
    Csv(CsvPartWriter),
}

impl PartFile {
    /// Appends a batch of the file's columns.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            PartFile::Parquet(p) => p.write(batch),
            PartFile::Csv(c) => c.write(batch),
        }
    }

    /// About what the file would weigh if sealed now (for `max_file_size`).
    pub fn size(&self) -> u64 {
        match self {
            PartFile::Parquet(p) => p.size(),
            PartFile::Csv(c) => c.size(),
        }
    }

    /// The table (as the batch builder sees it) whose rows the file holds.
    pub fn schema(&self) -> &Arc<TableSchema> {
        match self {
            PartFile::Parquet(p) => &p.schema,
            PartFile::Csv(c) => &c.schema,
        }
    }

    /// Finishes and fsyncs the file; it is then ready to publish.
    pub fn seal(self, range: LsnRange) -> Result<SealedPart> {
        match self {
            PartFile::Parquet(p) => p.seal(range),
            PartFile::Csv(c) => c.seal(range),
        }
    }
}
