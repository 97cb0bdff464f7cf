//! One Parquet part file being written in the staging directory.
//!
//! A part belongs to one table and one schema. Batches are appended as they fill. Encoding
//! (Parquet pages, dictionaries, zstd) runs on the part's own encoder thread, fed through a
//! channel of [`QUEUED_BATCHES`] batches, so that it overlaps the decoding and conversion of
//! the next rows; the channel's bound is the back-pressure that keeps memory flat. The
//! encoder ([`super::encoder`]) flushes its buffered row group to disk once it passes
//! [`ROW_GROUP_BYTES`], and writes a batch holding a huge value as a row group of its own
//! that copies the value once (see there for the memory contract).
//! Nothing here is visible to readers: the sink publishes finished parts.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::model::TableSchema;
use crate::config::Compression as CompressionConfig;
use crate::error::{Error, Result, ResultExt};
use crate::model::Lsn;

pub use super::encoder::ROW_GROUP_BYTES;
use super::encoder::{Encoder, MAX_ROW_GROUP_ROWS};
/// Batches waiting for the encoder thread at most.
pub const QUEUED_BATCHES: usize = 2;
/// A column chunk's dictionary grows to this size at most before the column falls back to
/// plain pages. Measured on the 15-column wide table of `make bench` (1M rows re-encoded,
/// zstd 1): parquet-rs's default of 1 MiB spends 1.3–1.4 CPU-s and writes 56.5 MiB, because
/// unique 8-byte columns (ids, timestamps, floats) are hashed for half of each row group
/// before falling back; 128 KiB keeps dictionaries for low-cardinality columns (flags,
/// days, small sets of tags) and spends 0.6–0.95 CPU-s for 48.5 MiB (no dictionary at all:
/// 48.1 MiB, about the same time).
const DICTIONARY_PAGE_BYTES: usize = 128 << 10;

pub struct PartWriter {
    pub path: PathBuf,
    pub schema: Arc<TableSchema>,
    sender: Option<SyncSender<RecordBatch>>,
    encoder: Option<JoinHandle<Result<File>>>,
    /// Bytes written plus bytes buffered by the encoder, as of its last batch.
    encoded_size: Arc<AtomicU64>,
    /// In-memory size of the batches queued but not encoded yet (an over-estimate of what
    /// they add to the file).
    queued_bytes: Arc<AtomicU64>,
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
        // Parquet's own GZIP codec (pages compressed inside a `.parquet` file), as DMS's
        // `CompressionType = GZIP` with Parquet output.
        CompressionConfig::Gzip => Compression::GZIP(GzipLevel::default()),
    };
    WriterProperties::builder()
        .set_compression(codec)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_created_by(format!("pgcdc {}", env!("CARGO_PKG_VERSION")))
        .build()
}

impl PartWriter {
    pub fn create(path: PathBuf, schema: Arc<TableSchema>, props: WriterProperties) -> Result<PartWriter> {
        let arrow_schema = schema.arrow_schema();
        Self::create_with(path, schema, arrow_schema, ArrowWriterOptions::new().with_properties(props))
    }

    /// [`create`](Self::create) for batches of `arrow_schema` written with `options` (the
    /// DMS layout's columns, see [`super::dms_schema`]).
    pub fn create_with(
        path: PathBuf,
        schema: Arc<TableSchema>,
        arrow_schema: arrow_schema::SchemaRef,
        options: ArrowWriterOptions,
    ) -> Result<PartWriter> {
        let file = File::create(&path).runtime_ctx(|| format!("creating {}", path.display()))?;
        let writer = ArrowWriter::try_new_with_options(file, arrow_schema, options)
            .runtime_ctx(|| format!("starting Parquet file {}", path.display()))?;
        let mut writer = Encoder::new(writer);
        let (sender, receiver) = sync_channel::<RecordBatch>(QUEUED_BATCHES);
        let encoded_size = Arc::new(AtomicU64::new(0));
        let queued_bytes = Arc::new(AtomicU64::new(0));
        let (size, queued) = (encoded_size.clone(), queued_bytes.clone());
        let p = path.clone();
        let encoder = std::thread::Builder::new()
            .name("pgcdc-parquet".into())
            .spawn(move || -> Result<File> {
                for batch in receiver {
                    queued.fetch_sub(batch.get_array_memory_size() as u64, Ordering::Relaxed);
                    // By value: a huge batch is released before its row group is compressed.
                    writer.write(batch).runtime_ctx(|| format!("writing {}", p.display()))?;
                    size.store(writer.size() as u64, Ordering::Relaxed);
                }
                writer.into_inner().runtime_ctx(|| format!("finishing {}", p.display()))
            })
            .map_err(|e| Error::runtime(format!("starting a Parquet encoder thread: {e}")))?;
        Ok(PartWriter { path, schema, sender: Some(sender), encoder: Some(encoder), encoded_size, queued_bytes, rows: 0 })
    }

    /// Queues a batch for encoding (waits while [`QUEUED_BATCHES`] are queued).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.queued_bytes.fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
        let sent = self.sender.as_ref().map(|s| s.send(batch.clone()).is_ok()).unwrap_or(false);
        if !sent {
            // The encoder stopped: its result says why.
            return Err(self.join().err().unwrap_or_else(|| Error::runtime("internal: Parquet encoder stopped")));
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// About what the file would weigh if closed now: encoded bytes plus the queued batches.
    pub fn size(&self) -> u64 {
        self.encoded_size.load(Ordering::Relaxed) + self.queued_bytes.load(Ordering::Relaxed)
    }

    fn join(&mut self) -> Result<File> {
        self.sender = None;
        match self.encoder.take() {
            Some(h) => h.join().map_err(|_| Error::runtime("a Parquet encoder thread panicked"))?,
            None => Err(Error::runtime("internal: Parquet encoder already finished")),
        }
    }

    /// Writes the footer and returns the file's path, without fsync: for a part that is read
    /// back at once ([`super::staged`]), not published.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.join()?;
        Ok(self.path.clone())
    }

    /// Stops the encoder and removes the file (a staged part no longer wanted).
    pub fn abandon(mut self) {
        self.join().ok();
        std::fs::remove_file(&self.path).ok();
    }

    /// Writes the footer and fsyncs.
    pub fn seal(mut self, range: LsnRange) -> Result<SealedPart> {
        let file = self.join()?;
        file.sync_all().runtime_ctx(|| format!("fsync of {}", self.path.display()))?;
        tracing::debug!(path = %self.path.display(), rows = self.rows, "sealed a part");
        Ok(SealedPart {
            path: self.path.clone(),
            schema: self.schema.clone(),
            first_lsn: range.first_lsn,
            last_lsn: range.last_lsn,
            first_ts_us: range.first_ts_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `compression = "gzip"` on Parquet files is Parquet's GZIP page codec (the build has it).
    #[test]
    fn gzip_is_parquets_own_gzip_codec() {
        use arrow_array::{ArrayRef, Int64Array};
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet.part");
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "id",
            arrow_schema::DataType::Int64,
            false,
        )]));
        let options = ArrowWriterOptions::new().with_properties(writer_properties(CompressionConfig::Gzip));
        let table = Arc::new(crate::model::schema::fixtures::orders());
        let mut w = PartWriter::create_with(path.clone(), table, schema.clone(), options).unwrap();
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1000));
        w.write(&RecordBatch::try_new(schema, vec![ids]).unwrap()).unwrap();
        w.seal(LsnRange { first_lsn: Lsn(1), last_lsn: Lsn(1), first_ts_us: 0 }).unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let column = reader.metadata().row_group(0).column(0).clone();
        assert!(matches!(column.compression(), Compression::GZIP(_)), "{:?}", column.compression());
        assert_eq!(reader.metadata().file_metadata().num_rows(), 1000);
    }
}
