//! The Parquet encoder of one part file, and how it keeps a huge value within about twice
//! its size in memory.
//!
//! # Memory contract
//!
//! * **Ordinary batches** go through parquet-rs's [`ArrowWriter`]: dictionaries, page-level
//!   statistics, row groups flushed once their encoded size passes [`ROW_GROUP_BYTES`].
//!   That writer copies a byte-array value up to four times while it encodes it (the
//!   dictionary's copy, the page statistics' min and max, the plain page and its compressed
//!   form), which is nothing for small values and 5x for one 100 MiB value.
//! * **A batch holding a huge value** (a single string or binary value of at least
//!   [`HUGE_VALUE_BYTES`], see [`has_huge_value`]) becomes a row group of its own, written
//!   with properties that do not copy it: no dictionary, no min/max statistics for
//!   byte-array columns (the chunk then has no statistics and no column index for them;
//!   readers treat that as unknown), one data page per column. Its top-level string and
//!   binary columns are encoded by [`StreamedChunk`]: the values go from the Arrow array
//!   straight into the compressor, without a plain page, so the only copy is the
//!   compressed page (none when it is stored uncompressed). Peak inside the encoder: the
//!   array plus its compressed form. Other columns of that batch (lists holding a huge
//!   element) go through parquet-rs's column writers, which hold the plain page besides the
//!   array while encoding and the plain page plus its compressed form while closing; the
//!   batch is dropped between the two ([`Encoder::write`] takes it by value).
//! * The values written are the same either way; only the row group layout and its
//!   encodings differ. The first huge batch turns the file's writer into its lower-level
//!   parts ([`ArrowWriter::into_serialized_writer`]); from then on ordinary batches are
//!   gathered into row groups by [`Split`] with the same limits.
//!
//! Callers (the part writer's encoder thread, [`super::writer`]) hand over batches in file
//! order; nothing here is shared between threads.

use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::column::writer::ColumnCloseResult;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::errors::{ParquetError, Result as PqResult};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;

use super::streamed_chunk::StreamedChunk;

/// Flush a row group once this many bytes are buffered in memory.
pub const ROW_GROUP_BYTES: usize = 32 << 20;
/// Rows of a row group at most.
pub const MAX_ROW_GROUP_ROWS: usize = 256 * 1024;
/// A single string or binary value of at least this size is written in a row group of its
/// batch's own, encoded without copies (see the module docs). The batch builders end a
/// batch at the same size ([`crate::batch::BATCH_BYTES`]), so such a value ends its batch.
pub const HUGE_VALUE_BYTES: usize = crate::batch::BATCH_BYTES;

/// The encoder of one Parquet file.
pub struct Encoder {
    state: State,
}

enum State {
    /// Only ordinary batches so far.
    Arrow(Box<ArrowWriter<File>>),
    /// After the first huge batch.
    Split(Box<Split>),
    /// A conversion from `Arrow` to `Split` failed: the file is unusable.
    Broken,
}

impl Encoder {
    pub fn new(writer: ArrowWriter<File>) -> Encoder {
        Encoder {
            state: State::Arrow(Box::new(writer)),
        }
    }

    /// Encodes `batch` (consumed: a huge batch is released before its row group is
    /// compressed).
    pub fn write(&mut self, batch: RecordBatch) -> PqResult<()> {
        let huge = has_huge_value(&batch);
        if let State::Arrow(w) = &mut self.state {
            if !huge {
                w.write(&batch)?;
                if w.in_progress_size() >= ROW_GROUP_BYTES {
                    w.flush()?;
                }
                return Ok(());
            }
            let State::Arrow(w) = std::mem::replace(&mut self.state, State::Broken) else {
                unreachable!("matched above")
            };
            self.state = State::Split(Box::new(Split::from_writer(*w, batch.schema())?));
        }
        match &mut self.state {
            State::Split(s) if huge => s.write_huge(batch),
            State::Split(s) => s.write(batch),
            _ => Err(ParquetError::General(
                "the Parquet writer failed earlier".into(),
            )),
        }
    }

    /// Bytes written to the file plus the encoded size of the row group in progress.
    pub fn size(&self) -> usize {
        match &self.state {
            State::Arrow(w) => w.bytes_written() + w.in_progress_size(),
            State::Split(s) => s.file.bytes_written() + s.group.as_ref().map_or(0, Group::size),
            State::Broken => 0,
        }
    }

    /// Flushes what is buffered, writes the footer and returns the file.
    pub fn into_inner(self) -> PqResult<File> {
        match self.state {
            State::Arrow(w) => w.into_inner(),
            State::Split(mut s) => {
                s.flush()?;
                s.file.into_inner()
            }
            State::Broken => Err(ParquetError::General(
                "the Parquet writer failed earlier".into(),
            )),
        }
    }
}

/// The file's writer in parts: row groups assembled here, from column writers of either
/// the file's properties or the huge-value properties.
pub struct Split {
    file: SerializedFileWriter<File>,
    normal: ArrowRowGroupWriterFactory,
    huge: ArrowRowGroupWriterFactory,
    /// The properties of `huge`'s writers (what [`StreamedChunk`]s are encoded with).
    huge_props: WriterProperties,
    schema: SchemaRef,
    group: Option<Group>,
}

/// A column chunk of a huge row group: from a column writer, or streamed.
enum HugeLeaf {
    Writer(Box<ArrowColumnWriter>),
    Streamed(StreamedChunk, Box<ColumnCloseResult>),
}

struct Group {
    writers: Vec<ArrowColumnWriter>,
    rows: usize,
}

impl Group {
    fn size(&self) -> usize {
        self.writers
            .iter()
            .map(|w| w.get_estimated_total_bytes())
            .sum()
    }
}

impl Split {
    fn from_writer(w: ArrowWriter<File>, schema: SchemaRef) -> PqResult<Split> {
        let (file, normal) = w.into_serialized_writer()?;
        let props = huge_value_properties(file.properties(), file.schema_descr());
        // A writer into nothing, only for its column writer factory with `props`: its
        // column chunks are appended to `file`, whose schema is the same.
        let sink = SerializedFileWriter::new(
            std::io::sink(),
            file.schema_descr().root_schema_ptr(),
            Arc::new(props.clone()),
        )?;
        let huge = ArrowRowGroupWriterFactory::new(&sink, schema.clone());
        Ok(Split {
            file,
            normal,
            huge,
            huge_props: props,
            schema,
            group: None,
        })
    }

    /// An ordinary batch: into the current ordinary row group, split at [`MAX_ROW_GROUP_ROWS`], flushed past [`ROW_GROUP_BYTES`].
    fn write(&mut self, mut batch: RecordBatch) -> PqResult<()> {
        while batch.num_rows() > 0 {
            if self.group.is_none() {
                let writers = self
                    .normal
                    .create_column_writers(self.file.flushed_row_groups().len())?;
                self.group = Some(Group {
                    writers,
                    rows: 0,
                });
            }
            let group = self.group.as_mut().expect("created above");
            let take = batch.num_rows().min(MAX_ROW_GROUP_ROWS - group.rows);
            write_leaves(&mut group.writers, &self.schema, &batch.slice(0, take))?;
            group.rows += take;
            batch = batch.slice(take, batch.num_rows() - take);
            if group.rows >= MAX_ROW_GROUP_ROWS || group.size() >= ROW_GROUP_BYTES {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// A batch with a huge value: a row group of its own. Its top-level string and binary
    /// columns are encoded by [`StreamedChunk`] (compressed while `batch` is alive, without
    /// a plain page); the other columns by column writers, closed after `batch` is dropped.
    fn write_huge(&mut self, batch: RecordBatch) -> PqResult<()> {
        self.flush()?;
        let mut writers = self
            .huge
            .create_column_writers(self.file.flushed_row_groups().len())?
            .into_iter();
        let descrs = self.file.schema_descr().columns().to_vec();
        let mut leaves = Vec::with_capacity(descrs.len());
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, column)? {
                let mut writer = writers.next().expect("one writer per leaf");
                let descr = &descrs[leaves.len()];
                match StreamedChunk::encode(column, descr, &self.huge_props) {
                    Some(chunk) => {
                        let (chunk, close) = chunk?;
                        leaves.push(HugeLeaf::Streamed(chunk, Box::new(close)));
                    }
                    None => {
                        writer.write(&leaf)?;
                        leaves.push(HugeLeaf::Writer(Box::new(writer)));
                    }
                }
            }
        }
        drop(batch);
        let mut row_group = self.file.next_row_group()?;
        for leaf in leaves {
            match leaf {
                HugeLeaf::Writer(w) => w.close()?.append_to_row_group(&mut row_group)?,
                HugeLeaf::Streamed(chunk, close) => row_group.append_column(&chunk, *close)?,
            }
        }
        row_group.close()?;
        Ok(())
    }

    /// Closes the row group in progress (compressing its last pages) and appends it.
    fn flush(&mut self) -> PqResult<()> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        let mut row_group = self.file.next_row_group()?;
        for writer in group.writers {
            writer.close()?.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }
}

fn write_leaves(
    writers: &mut [ArrowColumnWriter],
    schema: &SchemaRef,
    batch: &RecordBatch,
) -> PqResult<()> {
    let mut writers = writers.iter_mut();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        for leaf in compute_leaves(field, column)? {
            writers.next().expect("one writer per leaf").write(&leaf)?;
        }
    }
    Ok(())
}

/// `base` for a row group holding a huge value: every leaf without a dictionary and without
/// a data page size limit, and byte-array leaves without statistics (see the module docs).
fn huge_value_properties(
    base: &WriterProperties,
    schema: &parquet::schema::types::SchemaDescriptor,
) -> WriterProperties {
    // Data pages v2 compress the values straight from the plain page (v1 pages copy it
    // behind the levels first); PLAIN, because v2's default for byte arrays (delta) keeps
    // a copy of the previous value.
    let mut b = base
        .clone()
        .into_builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_dictionary_enabled(false)
        .set_encoding(Encoding::PLAIN)
        .set_data_page_size_limit(usize::MAX);
    for leaf in schema.columns() {
        let path = leaf.path().clone();
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path.clone(), Encoding::PLAIN)
            .set_column_data_page_size_limit(path.clone(), usize::MAX);
        if leaf.physical_type() == PhysicalType::BYTE_ARRAY {
            b = b.set_column_statistics_enabled(path, EnabledStatistics::None);
        }
    }
    b.build()
}

/// True if a column of `batch` (or the values of a list column) holds a single string or
/// binary value of at least [`HUGE_VALUE_BYTES`].
pub fn has_huge_value(batch: &RecordBatch) -> bool {
    batch.columns().iter().any(array_has_huge_value)
}

fn array_has_huge_value(a: &ArrayRef) -> bool {
    fn widest(offsets: &[i32]) -> usize {
        offsets
            .windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .max()
            .unwrap_or(0)
    }
    match a.data_type() {
        // Fewer value bytes than the threshold cannot hold a huge value: no scan.
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            s.value_data().len() >= HUGE_VALUE_BYTES
                && widest(s.value_offsets()) >= HUGE_VALUE_BYTES
        }
        DataType::Binary => {
            let b = a.as_binary::<i32>();
            b.value_data().len() >= HUGE_VALUE_BYTES
                && widest(b.value_offsets()) >= HUGE_VALUE_BYTES
        }
        DataType::List(_) => array_has_huge_value(a.as_list::<i32>().values()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn batch(
        schema: &SchemaRef,
        ids: std::ops::Range<i64>,
        text: impl Fn(i64) -> String,
    ) -> RecordBatch {
        let texts: Vec<String> = ids.clone().map(&text).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(ids)),
                Arc::new(StringArray::from(texts)),
            ],
        )
        .unwrap()
    }

    /// Ordinary and huge batches mixed in one file read back as written, the huge value in
    /// a row group of its own without a dictionary or statistics for the text column.
    #[test]
    fn huge_batches_get_their_own_row_group_and_read_back_unchanged() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        let path = tempfile::NamedTempFile::new().unwrap();
        let props = super::super::writer::writer_properties(crate::config::Compression::Zstd);
        let w = ArrowWriter::try_new(path.reopen().unwrap(), schema.clone(), Some(props)).unwrap();
        let mut e = Encoder::new(w);
        let big = "x".repeat(HUGE_VALUE_BYTES);
        e.write(batch(&schema, 0..10, |i| format!("small {i}")))
            .unwrap();
        e.write(batch(&schema, 10..11, |_| big.clone())).unwrap();
        e.write(batch(&schema, 11..20, |i| format!("small {i}")))
            .unwrap();
        e.write(batch(&schema, 20..21, |_| big.clone())).unwrap();
        assert!(matches!(e.state, State::Split(_)));
        e.into_inner().unwrap();

        let reader =
            ParquetRecordBatchReaderBuilder::try_new(File::open(path.path()).unwrap()).unwrap();
        let groups: Vec<_> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, vec![10, 1, 9, 1]);
        let huge_chunk = reader.metadata().row_group(1).column(1).clone();
        assert!(huge_chunk.statistics().is_none() && huge_chunk.dictionary_page_offset().is_none());
        assert!(
            reader
                .metadata()
                .row_group(1)
                .column(0)
                .statistics()
                .is_some(),
            "int64 keeps statistics"
        );
        let mut rows = Vec::new();
        for b in reader.build().unwrap() {
            let b = b.unwrap();
            let ids = b.column(0).as_primitive::<arrow_array::types::Int64Type>();
            let vs = b.column(1).as_string::<i32>();
            rows.extend((0..b.num_rows()).map(|i| (ids.value(i), vs.value(i).to_string())));
        }
        assert_eq!(rows.len(), 21);
        for (id, v) in rows {
            let expected = if id == 10 || id == 20 {
                big.clone()
            } else {
                format!("small {id}")
            };
            assert!(v == expected, "row {id}");
        }
    }

    #[test]
    fn huge_values_are_found_in_strings_binaries_and_lists() {
        let small: ArrayRef = Arc::new(StringArray::from(vec!["a"; 3]));
        assert!(!array_has_huge_value(&small));
        let big: ArrayRef = Arc::new(arrow_array::BinaryArray::from(vec![
            &vec![0u8; HUGE_VALUE_BYTES][..],
        ]));
        assert!(array_has_huge_value(&big));
        // Many small values adding up to more than the threshold are not huge.
        let many: ArrayRef = Arc::new(StringArray::from(vec!["y".repeat(1 << 20); 9]));
        assert!(!array_has_huge_value(&many));
    }
}
