//! One Parquet part file being written in the staging directory.
//!
//! A part belongs to one table and one schema. Batches are appended as they fill; the Arrow
//! writer's buffered row group is flushed to disk once it passes [`ROW_GROUP_BYTES`], so memory
//! stays bounded however large the transaction. Nothing here is visible to readers: the sink
//! publishes finished parts.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::batch::TableSchema;
use crate::config::Compression as CompressionConfig;
use crate::error::{Result, ResultExt};
use crate::model::Lsn;

/// Flush a row group once this many bytes are buffered in memory.
pub const ROW_GROUP_BYTES: usize = 32 << 20;
const MAX_ROW_GROUP_ROWS: usize = 256 * 1024;

pub struct PartWriter {
    pub path: PathBuf,
    pub schema: Arc<TableSchema>,
    writer: ArrowWriter<File>,
    pub rows: u64,
}

/// The transactions whose rows a part holds: commit LSN of the first and last, and the
/// first one's commit time (µs since the Unix epoch), which names the date partition.
#[derive(Clone, Copy, Debug)]
pub struct LsnRange {
    pub first_lsn: Lsn,
    pub last_lsn: Lsn,
    pub first_ts_us: i64,
}

/// A finished, fsynced part waiting to be published.
pub struct SealedPart {
    pub path: PathBuf,
    pub schema: Arc<TableSchema>,
    pub first_lsn: Lsn,
    pub last_lsn: Lsn,
    pub first_ts_us: i64,
}

pub fn writer_properties(compression: CompressionConfig) -> WriterProperties {
    let codec = match compression {
        CompressionConfig::Zstd => Compression::ZSTD(ZstdLevel::try_new(1).expect("valid level")),
        CompressionConfig::None => Compression::UNCOMPRESSED,
    };
    WriterProperties::builder()
        .set_compression(codec)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_created_by(format!("pgcdc {}", env!("CARGO_PKG_VERSION")))
        .build()
}

impl PartWriter {
    pub fn create(path: PathBuf, schema: Arc<TableSchema>, props: WriterProperties) -> Result<PartWriter> {
        let file = File::create(&path).runtime_ctx(|| format!("creating {}", path.display()))?;
        let writer = ArrowWriter::try_new(file, schema.arrow_schema(), Some(props))
            .runtime_ctx(|| format!("starting Parquet file {}", path.display()))?;
        Ok(PartWriter { path, schema, writer, rows: 0 })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.writer.write(batch).runtime_ctx(|| format!("writing {}", self.path.display()))?;
        self.rows += batch.num_rows() as u64;
        if self.writer.in_progress_size() >= ROW_GROUP_BYTES {
            self.writer.flush().runtime_ctx(|| format!("writing {}", self.path.display()))?;
        }
        Ok(())
    }

    /// Bytes on disk plus bytes buffered: what the file would weigh if closed now.
    pub fn size(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    /// Writes the footer and fsyncs.
    pub fn seal(self, range: LsnRange) -> Result<SealedPart> {
        let PartWriter { path, schema, writer, rows } = self;
        let file = writer.into_inner().runtime_ctx(|| format!("finishing {}", path.display()))?;
        file.sync_all().runtime_ctx(|| format!("fsync of {}", path.display()))?;
        tracing::debug!(path = %path.display(), rows, "sealed a part");
        Ok(SealedPart {
            path,
            schema,
            first_lsn: range.first_lsn,
            last_lsn: range.last_lsn,
            first_ts_us: range.first_ts_us,
        })
    }
}
