//! A byte-array column chunk of a huge batch, encoded straight from its Arrow array.
//!
//! # Memory contract
//!
//! parquet-rs encodes a page by first materialising its PLAIN form (each value behind its
//! 4-byte length) and then compressing that buffer: with one 100 MiB value that is the
//! array, its plain page and the compressed page, 3x the value. [`StreamedChunk::encode`]
//! never builds the plain page: the length prefixes and the array's bytes are fed to the
//! compressor piece by piece, so the chunk costs the compressed page only (and nothing
//! when the column is uncompressed, or the compressed form is not smaller: the page is then
//! read from the array itself when the chunk is appended to the file).
//!
//! # What is written
//!
//! The same page and metadata parquet-rs writes for such a column with the huge-value
//! properties of [`super::encoder`] (no dictionary, no statistics): one data page v2, PLAIN,
//! its definition levels RLE-encoded in front (uncompressed, as v2 wants), the values
//! compressed with the column's codec unless that does not reach the column's
//! `data_page_v2_compression_ratio_threshold` (then stored plain, `is_compressed = false`);
//! the page header in Thrift's compact protocol, as [`parquet::file::writer::SerializedPageWriter`]
//! serialises it (a unit test compares the bytes); an offset index of one page. Only
//! top-level `Utf8` and `Binary` columns (definition level at most 1, no repetition) and
//! the codecs pgcdc configures (none, zstd, gzip) are handled; [`StreamedChunk::encode`]
//! returns `None` for anything else, which the caller writes the ordinary way.
//!
//! The caller ([`super::encoder`]) appends the chunk with
//! [`SerializedRowGroupWriter::append_column`](parquet::file::writer::SerializedRowGroupWriter::append_column).

use std::io::{Read, Write};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result as PqResult};
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::ColumnDescPtr;

/// One encoded column chunk, readable by `append_column` from offset 0.
pub struct StreamedChunk {
    header: Bytes,
    body: Body,
}

enum Body {
    /// Definition levels followed by the compressed values.
    Stored(Bytes),
    /// Definition levels followed by the PLAIN values, read from `values` when appended.
    Plain { levels: Bytes, values: ByteValues },
}

impl StreamedChunk {
    /// Encodes `array` (all its rows) as the chunk of column `descr`, with the codec and
    /// compression threshold `props` give that column, and the metadata `append_column`
    /// needs. `None` when the column or codec is not one this module handles.
    pub fn encode(
        array: &ArrayRef,
        descr: &ColumnDescPtr,
        props: &WriterProperties,
    ) -> Option<PqResult<(StreamedChunk, ColumnCloseResult)>> {
        let values = ByteValues::of(array)?;
        if descr.max_rep_level() != 0 || descr.max_def_level() > 1 {
            return None;
        }
        let codec = props.compression(descr.path());
        if !matches!(
            codec,
            Compression::UNCOMPRESSED | Compression::ZSTD(_) | Compression::GZIP(_)
        ) {
            return None;
        }
        let threshold = props.column_data_page_v2_compression_ratio_threshold(descr.path());
        Some(Self::encode_values(
            values,
            descr,
            codec,
            threshold,
            !props.offset_index_disabled(),
        ))
    }

    fn encode_values(
        values: ByteValues,
        descr: &ColumnDescPtr,
        codec: Compression,
        threshold: f64,
        offset_index: bool,
    ) -> PqResult<(StreamedChunk, ColumnCloseResult)> {
        let rows = values.array.len();
        let nulls = values.array.null_count();
        let levels = if descr.max_def_level() == 1 {
            def_levels(values.array.nulls(), rows)
        } else if nulls > 0 {
            return Err(ParquetError::General(format!(
                "column {} is required but its batch has {nulls} nulls",
                descr.path()
            )));
        } else {
            Vec::new()
        };
        let plain_len = values.plain_len();
        let uncompressed = levels.len() + plain_len;
        let compressed = compress(&values, &levels, codec, plain_len)?
            .filter(|buf| ((buf.len() - levels.len()) as f64) < uncompressed as f64 * threshold);
        let is_compressed = compressed.is_some();
        let levels_len = levels.len();
        let body = match compressed {
            Some(buf) => Body::Stored(Bytes::from(buf)),
            None => Body::Plain {
                levels: Bytes::from(levels),
                values,
            },
        };
        let header = Bytes::from(page_header(&PageHeader {
            uncompressed: uncompressed as u64,
            compressed: body.len() as u64,
            values: rows as u64,
            nulls: nulls as u64,
            rows: rows as u64,
            def_levels: levels_len as u64,
            is_compressed,
        })?);
        let total = (header.len() + body.len()) as i64;
        let metadata = ColumnChunkMetaData::builder(descr.clone())
            .set_compression(codec)
            .set_encodings_mask(EncodingMask::new_from_encodings(
                [Encoding::PLAIN, Encoding::RLE].iter(),
            ))
            .set_page_encoding_stats(vec![PageEncodingStats {
                page_type: PageType::DATA_PAGE_V2,
                encoding: Encoding::PLAIN,
                count: 1,
            }])
            .set_total_compressed_size(total)
            .set_total_uncompressed_size((header.len() + uncompressed) as i64)
            .set_num_values(rows as i64)
            .set_data_page_offset(0)
            .build()?;
        let offset_index = offset_index.then(|| {
            let mut b = OffsetIndexBuilder::new();
            b.append_offset_and_size(0, total as i32);
            b.append_row_count(rows as i64);
            b.build()
        });
        let close = ColumnCloseResult {
            bytes_written: total as u64,
            rows_written: rows as u64,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index,
        };
        Ok((StreamedChunk { header, body }, close))
    }
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Stored(b) => b.len(),
            Body::Plain { levels, values } => levels.len() + values.plain_len(),
        }
    }
}

impl Length for StreamedChunk {
    fn len(&self) -> u64 {
        (self.header.len() + self.body.len()) as u64
    }
}

impl ChunkReader for StreamedChunk {
    type T = Box<dyn Read + Send>;

    /// The chunk from `start`: the page header, then its body.
    fn get_read(&self, start: u64) -> PqResult<Self::T> {
        let header = std::io::Cursor::new(self.header.clone());
        let mut read: Box<dyn Read + Send> = match &self.body {
            Body::Stored(b) => Box::new(header.chain(std::io::Cursor::new(b.clone()))),
            Body::Plain { levels, values } => Box::new(
                header
                    .chain(std::io::Cursor::new(levels.clone()))
                    .chain(PlainReader::new(values.clone())),
            ),
        };
        std::io::copy(&mut (&mut read).take(start), &mut std::io::sink())?;
        Ok(read)
    }

    fn get_bytes(&self, start: u64, length: usize) -> PqResult<Bytes> {
        let mut out = Vec::with_capacity(length);
        self.get_read(start)?
            .take(length as u64)
            .read_to_end(&mut out)?;
        if out.len() != length {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at {start} past the end of a {}-byte chunk",
                self.len()
            )));
        }
        Ok(out.into())
    }
}

/// The values of a `Utf8` or `Binary` array (i32 offsets), shared with the array.
#[derive(Clone)]
struct ByteValues {
    array: ArrayRef,
}

impl ByteValues {
    fn of(array: &ArrayRef) -> Option<ByteValues> {
        matches!(array.data_type(), DataType::Utf8 | DataType::Binary).then(|| ByteValues {
            array: array.clone(),
        })
    }

    fn parts(&self) -> (&[i32], &[u8]) {
        match self.array.data_type() {
            DataType::Utf8 => {
                let a = self.array.as_string::<i32>();
                (a.value_offsets(), a.value_data())
            }
            _ => {
                let a = self.array.as_binary::<i32>();
                (a.value_offsets(), a.value_data())
            }
        }
    }

    /// The non-null values, in order.
    fn each(&self) -> impl Iterator<Item = &[u8]> {
        let (offsets, data) = self.parts();
        let nulls = self.array.nulls();
        (0..self.array.len())
            .filter(move |&i| nulls.is_none_or(|n| n.is_valid(i)))
            .map(move |i| &data[offsets[i] as usize..offsets[i + 1] as usize])
    }

    /// Size of the PLAIN encoding: each non-null value behind its 4-byte length.
    fn plain_len(&self) -> usize {
        self.each().map(|v| 4 + v.len()).sum()
    }

    /// Feeds the PLAIN encoding to `out` without building it.
    fn write_plain(&self, out: &mut impl Write) -> std::io::Result<()> {
        for v in self.each() {
            out.write_all(&(v.len() as u32).to_le_bytes())?;
            out.write_all(v)?;
        }
        Ok(())
    }
}

/// `levels` followed by the compressed PLAIN values; `None` when `codec` is none.
fn compress(
    values: &ByteValues,
    levels: &[u8],
    codec: Compression,
    plain_len: usize,
) -> PqResult<Option<Vec<u8>>> {
    let mut out = Vec::new();
    match codec {
        Compression::UNCOMPRESSED => return Ok(None),
        Compression::ZSTD(level) => {
            // Room for the worst case up front: untouched capacity costs no memory.
            out.reserve_exact(levels.len() + zstd::zstd_safe::compress_bound(plain_len));
            out.extend_from_slice(levels);
            let mut z = zstd::stream::write::Encoder::new(out, level.compression_level())?;
            z.set_pledged_src_size(Some(plain_len as u64))?;
            values.write_plain(&mut z)?;
            out = z.finish()?;
        }
        Compression::GZIP(level) => {
            out.reserve_exact(levels.len() + plain_len + plain_len / 1000 + 64);
            out.extend_from_slice(levels);
            let mut g = flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(level.compression_level()),
            );
            values.write_plain(&mut g)?;
            out = g.finish()?;
        }
        other => unreachable!("encode accepts no codec {other:?}"),
    }
    out.shrink_to_fit();
    Ok(Some(out))
}

/// RLE-encoded definition levels of a column of max definition level 1 (v2 pages: no
/// length prefix): one RLE run per stretch of nulls or values (bit width 1).
fn def_levels(nulls: Option<&NullBuffer>, rows: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut run = |level: u8, len: usize| {
        let mut header = (len as u64) << 1;
        while header >= 0x80 {
            out.push(header as u8 | 0x80);
            header >>= 7;
        }
        out.push(header as u8);
        out.push(level);
    };
    let Some(nulls) = nulls else {
        if rows > 0 {
            run(1, rows);
        }
        return out;
    };
    let mut start = 0;
    while start < rows {
        let level = nulls.is_valid(start);
        let end = (start..rows)
            .find(|&i| nulls.is_valid(i) != level)
            .unwrap_or(rows);
        run(level as u8, end - start);
        start = end;
    }
    out
}

/// The PLAIN values of a chunk, read from the array.
struct PlainReader {
    values: ByteValues,
    /// Index of the value being read, among all rows.
    row: usize,
    /// Bytes of that value's length-and-bytes already read.
    at: usize,
}

impl PlainReader {
    fn new(values: ByteValues) -> PlainReader {
        PlainReader {
            values,
            row: 0,
            at: 0,
        }
    }
}

impl Read for PlainReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (offsets, data) = self.values.parts();
        let array = &self.values.array;
        let mut n = 0;
        while n < buf.len() && self.row < array.len() {
            if array.is_null(self.row) {
                self.row += 1;
                continue;
            }
            let v = &data[offsets[self.row] as usize..offsets[self.row + 1] as usize];
            let len = (v.len() as u32).to_le_bytes();
            let piece = if self.at < 4 {
                &len[self.at..]
            } else {
                &v[self.at - 4..]
            };
            let take = piece.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&piece[..take]);
            n += take;
            self.at += take;
            if self.at == 4 + v.len() {
                self.row += 1;
                self.at = 0;
            }
        }
        Ok(n)
    }
}

/// The fields of a data page v2 header this module writes.
struct PageHeader {
    uncompressed: u64,
    compressed: u64,
    values: u64,
    nulls: u64,
    rows: u64,
    def_levels: u64,
    is_compressed: bool,
}

/// Thrift compact protocol of a parquet `PageHeader` holding a `DataPageHeaderV2`, field
/// by field as parquet-rs writes it (no CRC, no statistics, no repetition levels).
fn page_header(h: &PageHeader) -> PqResult<Vec<u8>> {
    const I32: u8 = 5;
    const STRUCT: u8 = 12;
    const TRUE: u8 = 1;
    const FALSE: u8 = 2;
    const DATA_PAGE_V2: i32 = 3;
    const PLAIN: i32 = 0;
    let int = |v: u64, what: &str| {
        i32::try_from(v).map_err(|_| {
            ParquetError::General(format!(
                "a page's {what} of {v} does not fit a Parquet page"
            ))
        })
    };
    let mut out = Vec::with_capacity(48);
    let field = |out: &mut Vec<u8>, delta: u8, kind: u8| out.push(delta << 4 | kind);
    let varint = |out: &mut Vec<u8>, v: i32| {
        let mut z = ((v << 1) ^ (v >> 31)) as u32;
        while z >= 0x80 {
            out.push(z as u8 | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    };
    field(&mut out, 1, I32);
    varint(&mut out, DATA_PAGE_V2);
    field(&mut out, 1, I32);
    varint(&mut out, int(h.uncompressed, "uncompressed size")?);
    field(&mut out, 1, I32);
    varint(&mut out, int(h.compressed, "compressed size")?);
    // Field 8, data_page_header_v2 (5 after field 3).
    field(&mut out, 5, STRUCT);
    for v in [
        int(h.values, "value count")?,
        int(h.nulls, "null count")?,
        int(h.rows, "row count")?,
        PLAIN,
        int(h.def_levels, "definition levels' size")?,
        0,
    ] {
        field(&mut out, 1, I32);
        varint(&mut out, v);
    }
    field(&mut out, 1, if h.is_compressed { TRUE } else { FALSE });
    out.push(0); // end of DataPageHeaderV2
    out.push(0); // end of PageHeader
    Ok(out)
}

#[cfg(test)]
#[path = "streamed_chunk_tests.rs"]
mod tests;

/// For the tests: the header and body of a chunk as one buffer.
#[cfg(test)]
impl StreamedChunk {
    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.get_read(0).unwrap().read_to_end(&mut out).unwrap();
        out
    }
}
