use std::fs::File;
use std::sync::Arc;

use arrow_array::{BinaryArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{GzipLevel, ZstdLevel};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};

use super::*;

fn props(codec: Compression) -> WriterProperties {
    WriterProperties::builder().set_compression(codec).build()
}

fn codecs() -> [Compression; 3] {
    [
        Compression::UNCOMPRESSED,
        Compression::ZSTD(ZstdLevel::try_new(1).unwrap()),
        Compression::GZIP(GzipLevel::try_new(6).unwrap()),
    ]
}

/// Bytes that do not compress (a xorshift sequence).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `column` (as column `v`, after an id column written the ordinary way) in one row
/// group whose `v` chunk is a [`StreamedChunk`], and reads `v` back.
fn round_trip(column: ArrayRef, codec: Compression) -> (ArrayRef, ColumnChunkMetaData) {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", column.data_type().clone(), true),
    ]));
    let path = tempfile::NamedTempFile::new().unwrap();
    let w =
        ArrowWriter::try_new(path.reopen().unwrap(), schema.clone(), Some(props(codec))).unwrap();
    let (mut file, factory) = w.into_serialized_writer().unwrap();
    let rows = column.len() as i64;
    let descr = file.schema_descr().column(1);
    let (chunk, close) = StreamedChunk::encode(&column, &descr, &props(codec))
        .expect("a byte-array column")
        .unwrap();
    drop(column);
    let mut writers = factory.create_column_writers(0).unwrap();
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
    for leaf in parquet::arrow::arrow_writer::compute_leaves(schema.field(0), &ids).unwrap() {
        writers[0].write(&leaf).unwrap();
    }
    let mut rg = file.next_row_group().unwrap();
    writers
        .remove(0)
        .close()
        .unwrap()
        .append_to_row_group(&mut rg)
        .unwrap();
    rg.append_column(&chunk, close).unwrap();
    rg.close().unwrap();
    file.close().unwrap();

    let reader =
        ParquetRecordBatchReaderBuilder::try_new(File::open(path.path()).unwrap()).unwrap();
    let meta = reader.metadata().row_group(0).column(1).clone();
    let batches: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
    assert_eq!(batches.len(), 1, "one small row group reads as one batch");
    let batch = &batches[0];
    assert_eq!(
        batch
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>()
            .values()
            .to_vec(),
        (0..rows).collect::<Vec<_>>()
    );
    (batch.column(1).clone(), meta)
}

/// Text and binary values, with nulls in runs and alone, compressible or not, read back
/// unchanged by parquet-rs with every codec.
#[test]
fn streamed_chunks_read_back_unchanged() {
    let big = noise(300_000, 7);
    let binary: ArrayRef = Arc::new(BinaryArray::from(vec![
        None,
        Some(&big[..]),
        Some(&b""[..]),
        None,
        None,
        Some(&b"abc"[..]),
        Some(&big[..1000]),
        None,
    ]));
    let text: ArrayRef = Arc::new(StringArray::from(vec![
        Some("x".repeat(200_000)),
        Some("é".into()),
        None,
        Some(String::new()),
    ]));
    let all_set: ArrayRef = Arc::new(BinaryArray::from(vec![&big[..]]));
    for codec in codecs() {
        for column in [&binary, &text, &all_set] {
            let (back, meta) = round_trip(column.clone(), codec);
            assert_eq!(&back, column, "{codec:?}");
            assert_eq!(meta.compression(), codec);
            assert!(meta.statistics().is_none() && meta.dictionary_page_offset().is_none());
        }
    }
}

/// The page stays compressed only where that makes it smaller (parquet-rs's rule, ratio
/// threshold 1.0): noise is stored plain, a repeated letter compressed.
#[test]
fn incompressible_values_are_stored_plain() {
    let zstd = props(codecs()[1]);
    let descr = |t: DataType| {
        let schema = Schema::new(vec![Field::new("v", t, true)]);
        parquet::arrow::ArrowSchemaConverter::new()
            .convert(&schema)
            .unwrap()
            .column(0)
    };
    let noisy: ArrayRef = Arc::new(BinaryArray::from(vec![&noise(100_000, 3)[..]]));
    let (chunk, close) = StreamedChunk::encode(&noisy, &descr(DataType::Binary), &zstd)
        .unwrap()
        .unwrap();
    assert!(matches!(chunk.body, Body::Plain { .. }));
    assert_eq!(close.metadata.compressed_size(), chunk.len() as i64);
    assert_eq!(close.metadata.uncompressed_size(), chunk.len() as i64);
    let letters: ArrayRef = Arc::new(StringArray::from(vec!["a".repeat(100_000)]));
    let (chunk, close) = StreamedChunk::encode(&letters, &descr(DataType::Utf8), &zstd)
        .unwrap()
        .unwrap();
    assert!(matches!(chunk.body, Body::Stored(_)));
    assert!(chunk.len() < 1000, "{}", chunk.len());
    assert_eq!(close.rows_written, 1);
    let list =
        arrow_array::ListArray::from_iter_primitive::<arrow_array::types::Int32Type, _, _>(vec![
            Some(vec![Some(1)]),
        ]);
    let list: ArrayRef = Arc::new(list);
    assert!(StreamedChunk::encode(&list, &descr(DataType::Binary), &zstd).is_none());
}

/// The page header is byte for byte what parquet-rs's page writer writes for the same page.
#[test]
fn page_header_matches_parquet_rs() {
    let schema = Schema::new(vec![Field::new("v", DataType::Binary, true)]);
    let descr = parquet::arrow::ArrowSchemaConverter::new()
        .convert(&schema)
        .unwrap()
        .column(0);
    let values: ArrayRef = Arc::new(BinaryArray::from(vec![
        Some(&b"one"[..]),
        None,
        Some(&b"three"[..]),
    ]));
    let letters: ArrayRef = Arc::new(BinaryArray::from(vec![&vec![b'q'; 70_000][..]]));
    for codec in codecs() {
        for column in [&values, &letters] {
            let (chunk, close) = StreamedChunk::encode(column, &descr, &props(codec))
                .unwrap()
                .unwrap();
            let (levels_len, is_compressed, body) = match &chunk.body {
                Body::Stored(b) => {
                    let levels = def_levels(column.nulls(), column.len()).len();
                    (levels, true, b.clone())
                }
                Body::Plain { levels, .. } => {
                    let all = chunk.to_vec();
                    (
                        levels.len(),
                        false,
                        Bytes::from(all[chunk.header.len()..].to_vec()),
                    )
                }
            };
            let uncompressed = levels_len + ByteValues::of(column).unwrap().plain_len();
            let page = Page::DataPageV2 {
                buf: body,
                num_values: column.len() as u32,
                encoding: Encoding::PLAIN,
                num_nulls: column.null_count() as u32,
                num_rows: column.len() as u32,
                def_levels_byte_len: levels_len as u32,
                rep_levels_byte_len: 0,
                is_compressed,
                statistics: None,
            };
            let mut sink = TrackedWrite::new(Vec::new());
            let mut w = SerializedPageWriter::new(&mut sink);
            w.write_page(CompressedPage::new(page, uncompressed))
                .unwrap();
            w.close().unwrap();
            let expected = sink.into_inner().unwrap();
            assert_eq!(chunk.to_vec(), expected, "{codec:?}");
            assert_eq!(close.metadata.compressed_size(), expected.len() as i64);
        }
    }
}

#[test]
fn definition_levels_are_rle_runs() {
    assert_eq!(def_levels(None, 1), vec![2, 1]);
    assert_eq!(def_levels(None, 0), Vec::<u8>::new());
    let nulls = NullBuffer::from(vec![false, false, true]);
    assert_eq!(def_levels(Some(&nulls), 3), vec![4, 0, 2, 1]);
    // A run of 100 is a two-byte varint header: 200 = 0xc8 0x01.
    assert_eq!(def_levels(None, 100), vec![0xc8, 0x01, 1]);
}

#[test]
fn the_reader_starts_anywhere() {
    let column: ArrayRef = Arc::new(StringArray::from(vec![Some("ab"), None, Some("cde")]));
    let (chunk, _) = StreamedChunk::encode(
        &column,
        &{
            let schema = Schema::new(vec![Field::new("v", DataType::Utf8, true)]);
            parquet::arrow::ArrowSchemaConverter::new()
                .convert(&schema)
                .unwrap()
                .column(0)
        },
        &props(Compression::UNCOMPRESSED),
    )
    .unwrap()
    .unwrap();
    let all = chunk.to_vec();
    assert_eq!(all.len() as u64, chunk.len());
    assert!(all.ends_with(b"\x02\x00\x00\x00ab\x03\x00\x00\x00cde"));
    for start in [0, 1, all.len() - 3, all.len()] {
        assert_eq!(
            chunk.get_bytes(start as u64, all.len() - start).unwrap(),
            all[start..]
        );
    }
    assert!(chunk.get_bytes(1, all.len()).is_err());
}
