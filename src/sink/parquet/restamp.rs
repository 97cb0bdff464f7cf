//! Giving a staged part its transaction's commit LSN and time.
//!
//! A streamed transaction is encoded while it streams ([`super::staged`]), before its
//! commit is known: its part is written with placeholder `_lsn` and `_commit_ts` columns.
//! At the commit, [`restamp`] writes the part again with those two columns constant (the
//! commit LSN and time, as every row of one transaction has them), and every other column
//! chunk copied byte for byte, with its statistics and page index, through parquet-rs's
//! [`SerializedRowGroupWriter::append_column`](parquet::file::writer::SerializedRowGroupWriter::append_column).
//! Row groups stay as they were. The cost is one sequential copy of the file; nothing is
//! decoded or compressed again but the two constant columns.
//!
//! Runs on the pipeline thread, at the Stream Commit, on a sealed (complete) file.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, TimestampMicrosecondArray};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowWriterOptions};
use parquet::arrow::ArrowWriter;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;

use crate::batch::schema::{COL_COMMIT_TS, COL_LSN};
use crate::error::{Error, Result, ResultExt};
use crate::model::Lsn;

/// Writes `src` (a finished part of `schema`, the table's Arrow schema) to `dest`, with
/// `_lsn` = `lsn` and `_commit_ts` = `commit_ts_us` in every row. `dest` is fsynced; `src`
/// is left alone. An `Err` leaves `dest` incomplete (it is in staging: the caller or the
/// next recovery removes it).
pub fn restamp(src: &Path, dest: &Path, schema: &SchemaRef, props: &WriterProperties, lsn: Lsn, commit_ts_us: i64) -> Result<()> {
    let ctx = || format!("restamping {} as {}", src.display(), dest.display());
    let input = File::open(src).runtime_ctx(ctx)?;
    let meta = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(&input)
        .runtime_ctx(ctx)?;
    let stamped = [
        (field_index(schema, COL_LSN)?, lsn.0 as i64),
        (field_index(schema, COL_COMMIT_TS)?, commit_ts_us),
    ];
    let output = File::create(dest).runtime_ctx(ctx)?;
    let writer = ArrowWriter::try_new_with_options(output, schema.clone(), ArrowWriterOptions::new().with_properties(props.clone()))
        .runtime_ctx(ctx)?;
    let (mut file, factory) = writer.into_serialized_writer().runtime_ctx(ctx)?;
    let descr = file.schema_descr().clone();
    for (g, group) in meta.row_groups().iter().enumerate() {
        let rows = group.num_rows() as usize;
        let mut writers = factory.create_column_writers(g).runtime_ctx(ctx)?.into_iter();
        let page_index = meta.page_index_for_row_group(g);
        let mut out = file.next_row_group().runtime_ctx(ctx)?;
        for (leaf, chunk) in group.columns().iter().enumerate() {
            let mut writer = writers.next().ok_or_else(|| Error::runtime(format!("{}: more columns than its schema", ctx())))?;
            let root = descr.get_column_root_idx(leaf);
            if let Some(&(_, value)) = stamped.iter().find(|(i, _)| *i == root) {
                let field = schema.field(root);
                let array: ArrayRef = if field.name() == COL_LSN {
                    Arc::new(Int64Array::from_value(value, rows))
                } else {
                    Arc::new(TimestampMicrosecondArray::from_value(value, rows).with_timezone("UTC"))
                };
                for column in compute_leaves(field, &array).runtime_ctx(ctx)? {
                    writer.write(&column).runtime_ctx(ctx)?;
                }
                writer.close().and_then(|c| c.append_to_row_group(&mut out)).runtime_ctx(ctx)?;
            } else {
                let close = ColumnCloseResult {
                    bytes_written: chunk.compressed_size() as u64,
                    rows_written: rows as u64,
                    metadata: chunk.clone(),
                    bloom_filter: None,
                    column_index: page_index.column_index(leaf).cloned(),
                    offset_index: page_index.offset_index(leaf).cloned(),
                };
                out.append_column(&input, close).runtime_ctx(ctx)?;
            }
        }
        out.close().runtime_ctx(ctx)?;
    }
    let output = file.into_inner().runtime_ctx(ctx)?;
    output.sync_all().runtime_ctx(|| format!("fsync of {}", dest.display()))?;
    Ok(())
}

fn field_index(schema: &SchemaRef, name: &str) -> Result<usize> {
    // The metadata columns are the last six fields; a data column may share a name with
    // one only if the rules allowed it, so search from the end.
    schema
        .fields()
        .iter()
        .rposition(|f| f.name() == name)
        .ok_or_else(|| Error::runtime(format!("internal: a part without a {name} column")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_array::RecordBatch;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::statistics::Statistics;

    use super::*;
    use crate::batch::TableBatchBuilder;
    use crate::model::{OutputRow, RowOp, TupleValue};
    use crate::sink::parquet::writer::{writer_properties, PartWriter};

    fn read(path: &Path) -> (RecordBatch, parquet::file::metadata::ParquetMetaData) {
        let file = File::open(path).unwrap();
        let meta = ParquetMetaDataReader::new().with_page_index_policy(PageIndexPolicy::Required).parse_and_finish(&file).unwrap();
        let mut batches = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().with_batch_size(1 << 20).build().unwrap();
        (batches.next().unwrap().unwrap(), meta)
    }

    /// Row groups of placeholders in, the commit's LSN and time out; every other column
    /// (values, statistics, page index) as it was.
    #[test]
    fn restamp_sets_lsn_and_commit_time_and_copies_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(crate::model::schema::fixtures::orders());
        let mut builder = TableBatchBuilder::new(table.clone());
        // Row groups of 700 rows: three of them, at offsets that move in the copy.
        let props = writer_properties(crate::config::Compression::Zstd).into_builder().set_max_row_group_row_count(Some(700)).build();
        let src = dir.path().join("staged.part");
        let mut part = PartWriter::create(src.clone(), table, props.clone()).unwrap();
        for chunk in 0..2 {
            for i in 0..1000i64 {
                let id = chunk * 1000 + i;
                let values = [
                    TupleValue::Text(Bytes::from(id.to_string())),
                    TupleValue::Text(Bytes::from(format!("r{}", id % 7))),
                    if id % 5 == 0 { TupleValue::Null } else { TupleValue::Text(Bytes::from(format!("{id}.25"))) },
                    TupleValue::Text(Bytes::from(format!("{{a{id},NULL}}"))),
                    TupleValue::Text(Bytes::from("n")),
                ];
                let row = OutputRow { op: RowOp::Insert, lsn: Lsn::ZERO, seq: id, xid: Some(9), commit_ts_us: 0, values: &values };
                builder.append(&row).unwrap();
            }
            part.write(&builder.finish()).unwrap();
        }
        let src = part.finish().unwrap();
        let dest = dir.path().join("final.part");
        let schema = builder.schema().clone();
        restamp(&src, &dest, &schema, &props, Lsn(0x1_2345_6789), 1_700_000_000_123_456).unwrap();

        let ((before, meta_before), (after, meta_after)) = (read(&src), read(&dest));
        assert_eq!(after.num_rows(), 2000);
        assert_eq!((meta_before.num_row_groups(), meta_after.num_row_groups()), (3, 3));
        for (i, field) in schema.fields().iter().enumerate() {
            match field.name().as_str() {
                COL_LSN => assert!(after.column(i).as_primitive::<Int64Type>().values().iter().all(|v| *v == 0x1_2345_6789)),
                COL_COMMIT_TS => assert!(after.column(i).as_primitive::<TimestampMicrosecondType>().values().iter().all(|v| *v == 1_700_000_000_123_456)),
                _ => assert_eq!(after.column(i), before.column(i), "{}", field.name()),
            }
        }
        assert_eq!(after.schema(), before.schema(), "the same Arrow schema and metadata");
        let lsn_leaf = meta_after.file_metadata().schema_descr().columns().iter().position(|c| c.name() == COL_LSN).unwrap();
        for g in 0..meta_after.num_row_groups() {
            let (b, a) = (meta_before.row_group(g), meta_after.row_group(g));
            match a.column(lsn_leaf).statistics() {
                Some(Statistics::Int64(s)) => assert_eq!((s.min_opt(), s.max_opt()), (Some(&0x1_2345_6789), Some(&0x1_2345_6789))),
                other => panic!("_lsn statistics: {other:?}"),
            }
            for c in (0..a.num_columns()).filter(|c| *c != lsn_leaf && a.column(*c).column_path().string() != COL_COMMIT_TS) {
                assert_eq!(a.column(c).statistics(), b.column(c).statistics());
                assert_eq!(a.column(c).compressed_size(), b.column(c).compressed_size());
                let pages = |m: &parquet::file::metadata::ParquetMetaData| m.page_index_for_row_group(g).offset_index(c).map(|o| o.page_locations.len());
                assert_eq!(pages(&meta_after), pages(&meta_before));
                assert!(pages(&meta_after).is_some(), "column {c} keeps its offset index");
            }
        }
    }
}
