//! Full-load files: `{schema}/{table}/load/{snapshot_lsn}-{part:05}.parquet`, one per chunk.
//!
//! A chunk's file is assembled in staging and published in one step when the chunk is
//! complete, so a reader never sees half a chunk. Redoing a chunk after a crash first
//! removes any file an earlier attempt published for the same part (under an older
//! snapshot), so rows are never loaded twice.
//!
//! In the DMS layout (SPEC 5.2) a chunk's file is `{schema}/{table}/LOAD{part+1:08X}.parquet`
//! (`.csv` / `.csv.gz` with `format = "csv"`) with DMS's columns ([`super::dms_naming`],
//! [`super::dms_schema`]): the name does not depend on the snapshot, so a redone chunk
//! simply replaces it.

use std::sync::Arc;

use arrow_array::RecordBatch;

use super::dms_schema::{DmsColumns, DmsFile};
use super::naming::table_prefix;
use super::part_file::PartFile;
use super::writer::{writer_properties, LsnRange, PartWriter};
use crate::model::TableSchema;
use crate::config::Compression;
use crate::error::Result;
use crate::model::Lsn;
use crate::storage::Storage;

pub fn load_key(schema: &str, table: &str, snapshot_lsn: Lsn, part: u32) -> String {
    format!("{}/load/{}-{part:05}.parquet", table_prefix(schema, table), snapshot_lsn.file_hex())
}

/// Deletes files of `part` published by earlier attempts of the table's load.
pub fn remove_part(storage: &dyn Storage, schema: &str, table: &str, part: u32) -> Result<()> {
    let suffix = format!("-{part:05}.parquet");
    for key in storage.list(&format!("{}/load", table_prefix(schema, table)))? {
        if key.ends_with(&suffix) {
            storage.delete(&key)?;
        }
    }
    Ok(())
}

/// Writes one chunk's file. Owned by one copy worker.
pub struct LoadWriter {
    part: PartFile,
    key: String,
    lsn: Lsn,
    ts_us: i64,
    /// The DMS layout: batches are converted to its columns, the file is named `LOAD…`.
    dms: Option<Arc<DmsColumns>>,
}

impl LoadWriter {
    pub fn create(
        storage: &dyn Storage,
        table: &Arc<TableSchema>,
        snapshot_lsn: Lsn,
        snapshot_ts_us: i64,
        part: u32,
        compression: Compression,
        dms: Option<&Arc<DmsColumns>>,
    ) -> Result<LoadWriter> {
        let key = match dms {
            None => load_key(&table.schema, &table.name, snapshot_lsn, part),
            Some(d) => super::dms_naming::load_key(&table.schema, &table.name, part, d.extension()),
        };
        // Unique per process and file: names derived from the key could collide
        // (`a/b_c` and `a_b/c` flattened alike).
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = storage.staging_dir().join(format!("load-{}-{n}.parquet.part", std::process::id()));
        let part = match dms {
            None => PartFile::Parquet(PartWriter::create(path, table.clone(), writer_properties(compression))?),
            Some(d) => d.create_part(path, table.clone(), DmsFile::Load, writer_properties(compression))?,
        };
        Ok(LoadWriter { part, key, lsn: snapshot_lsn, ts_us: snapshot_ts_us, dms: dms.cloned() })
    }

    /// Writes a batch of the table's builder (in the DMS layout: of
    /// [`DmsColumns::source_table`], converted here).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &self.dms {
            None => self.part.write(batch),
            Some(d) => {
                let converted = d.convert(self.part.schema(), batch, DmsFile::Load)?;
                self.part.write(&converted)
            }
        }
    }

    /// Seals, fsyncs and publishes the file; returns its key.
    pub fn finish(self, storage: &dyn Storage) -> Result<String> {
        let sealed = self.part.seal(LsnRange { first_lsn: self.lsn, last_lsn: self.lsn, first_ts_us: self.ts_us })?;
        storage.publish_file(&sealed.path, &self.key)?;
        Ok(self.key)
    }
}
