//! A copy worker: one SQL session inside the load's snapshot, copying chunks one after the
//! other with `COPY (SELECT …) TO STDOUT (FORMAT binary)`, decoded straight into Arrow
//! batches and written to the chunk's Parquet file. The SELECT names only the published
//! columns and applies the publication's row filter (see [`crate::source::publication`]).

use std::sync::Arc;

use arrow_array::RecordBatch;
use futures_util::StreamExt;
use tokio_postgres::Client;

use super::outputs::{shapes, LoadOutput, Shape};
use super::progress::TableProgress;
use crate::state::load::Chunk;
use crate::batch::{TableBatchBuilder, copy_select_expr_from};
use crate::model::{OutputRow, TableSchema};
use crate::error::{Error, Result};
use crate::model::{Lsn, RowOp};
use crate::sink::kinesis::load::KinesisLoad;
use crate::sink::parquet::load::{remove_part, LoadWriter};
use crate::source::copy::BinaryCopyParser;
use crate::source::publication::PublishedTable;
use crate::model::TupleValue;
use crate::source::sql::{self, db_error_text};

/// A batch is written once it holds this many rows, or [`crate::batch::BATCH_BYTES`].
const BATCH_ROWS: usize = 16 * 1024;

/// What every chunk of one load shares.
pub struct LoadContext {
    /// Every Parquet sink: each chunk is written to all of them.
    pub outputs: Vec<LoadOutput>,
    /// Every Kinesis sink (full load only): each chunk's rows are sent to all of them as
    /// `load` records, and acknowledged before the chunk counts as done.
    pub records: Vec<Arc<KinesisLoad>>,
    pub snapshot_lsn: Lsn,
    pub snapshot_ts_us: i64,
    pub tid_ranges: bool,
    /// A reload ([`super::reload`]): part 0 starts with the reset row `T` at
    /// `(_lsn, _seq) = (snapshot_lsn, -1)`, and files of other snapshots are kept.
    pub reload: bool,
    /// A resumed load: an earlier attempt may have published files for these chunks, and
    /// they are removed before a chunk is copied again. A fresh load skips that (one LIST
    /// per chunk on S3).
    pub resumed: bool,
}

/// Imports the exported snapshot into a fresh session.
pub async fn enter_snapshot(client: &Client, snapshot: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
            snapshot.replace('\'', "''")
        ))
        .await
        .map_err(|e| Error::runtime(format!("importing the load snapshot: {}", db_error_text(&e))))
}

/// `_seq` of a loaded row: the chunk in the high half, the row within it in the low half,
/// so rows of parallel chunks never collide.
pub fn load_seq(part: u32, row: u64) -> i64 {
    ((part as i64) << 32) | (row as i64 & 0xFFFF_FFFF)
}

/// Copies one chunk, publishes its file in every Parquet output and has its records
/// acknowledged by every Kinesis output; returns the number of rows.
///
/// The chunk is read once per [`Shape`](super::outputs::Shape) the outputs need (see [`super::outputs`]), inside
/// the caller's snapshot, so every read sees the same rows. Files are published output by
/// output; the caller records the chunk as done only after this returns, so a crash in
/// between redoes the chunk in every output (removing what an earlier attempt published).
pub async fn copy_chunk(
    client: &Client,
    ctx: &LoadContext,
    table: &PublishedTable,
    chunk: &Chunk,
    progress: &TableProgress,
) -> Result<u64> {
    let mut copied: Option<u64> = None;
    for (i, shape) in shapes(&ctx.outputs, !ctx.records.is_empty()).into_iter().enumerate() {
        let outputs: Vec<&LoadOutput> = ctx.outputs.iter().filter(|o| o.shape() == shape).collect();
        let records: &[Arc<KinesisLoad>] = if shape == Shape::Native { &ctx.records } else { &[] };
        let rows = copy_into(client, ctx, table, chunk, (i == 0).then_some(progress), &outputs, records).await?;
        if copied.is_some_and(|n| n != rows) {
            return Err(Error::runtime(format!(
                "internal: two reads of {}.{} part {} in one snapshot returned {} and {rows} rows",
                table.schema.schema, table.schema.name, chunk.part, copied.unwrap_or(0)
            )));
        }
        copied = Some(rows);
    }
    Ok(copied.unwrap_or(0))
}

/// Copies one chunk into `outputs`, which share one [`Shape`], and into `records` (native
/// shape only). `progress` counts the rows and bytes read (given to one read of the chunk
/// only).
async fn copy_into(
    client: &Client,
    ctx: &LoadContext,
    published: &PublishedTable,
    chunk: &Chunk,
    progress: Option<&TableProgress>,
    outputs: &[&LoadOutput],
    records: &[Arc<KinesisLoad>],
) -> Result<u64> {
    let dms = outputs.iter().find_map(|o| o.dms.as_ref());
    let table = &published.schema;
    let table = &match dms {
        Some(_) => {
            // Each DMS sink checks the table against its own added columns.
            let mut read = None;
            for d in outputs.iter().filter_map(|o| o.dms.as_ref()) {
                read = Some(d.source_table(table)?);
            }
            read.expect("a DMS output")
        }
        None => table.clone(),
    };
    if ctx.resumed && !ctx.reload && dms.is_none() {
        tokio::task::block_in_place(|| {
            outputs.iter().try_for_each(|o| remove_part(o.storage.as_ref(), &table.schema, &table.name, chunk.part))
        })?;
    }
    let exprs = select_list(published, table)?;
    let sql = format!(
        "COPY (SELECT {} FROM ONLY {}{}) TO STDOUT (FORMAT binary)",
        exprs.join(", "),
        crate::source::quote::qualified(&chunk.leaf_schema, &chunk.leaf_table),
        crate::source::publication::with_row_filter(&super::plan::chunk_filter(chunk, ctx.tid_ranges), published.row_filter.as_deref())
    );
    let what = || format!("copying {}.{} (part {})", table.schema, table.name, chunk.part);
    let stream = client.copy_out(&sql).await.map_err(|e| sql::query_error(what(), &e))?;
    futures_util::pin_mut!(stream);
    let mut parser = BinaryCopyParser::with_field_count(table.columns.len());
    let mut builder = TableBatchBuilder::new(table.clone());
    builder.keep_capacity();
    let mut writers: Vec<LoadWriter> = Vec::new();
    let mut values: Vec<TupleValue> = Vec::with_capacity(table.columns.len());
    let mut rows = 0u64;
    // Per record output, the mark of the last batch handed to it.
    let mut marks = vec![None; records.len()];
    if ctx.reload && chunk.part == 0 && dms.is_none() {
        let nulls = vec![TupleValue::Null; table.columns.len()];
        let reset = OutputRow { op: RowOp::Truncate, lsn: ctx.snapshot_lsn, seq: -1, xid: None, commit_ts_us: ctx.snapshot_ts_us, values: &nulls };
        builder.append(&reset).map_err(|e| Error::runtime(format!("{}: {e}", what())))?;
    }
    // Files are created at the first full batch, then every batch goes to each of them.
    let write = |writers: &mut Vec<LoadWriter>, batch: &RecordBatch| -> Result<()> {
        if writers.is_empty() {
            for o in outputs {
                let w = LoadWriter::create(o.storage.as_ref(), table, ctx.snapshot_lsn, ctx.snapshot_ts_us, chunk.part, o.compression, o.dms.as_ref())?;
                writers.push(w);
            }
        }
        writers.iter_mut().try_for_each(|w| w.write(batch))
    };
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.map_err(|e| sql::query_error(what(), &e))?;
        if let Some(p) = progress {
            p.add(0, bytes.len() as u64);
        }
        parser.push(bytes);
        while parser
            .next_row(&mut values)
            .map_err(|e| Error::runtime(format!("{}: {e}", what())))?
            .is_some()
        {
            let row = OutputRow {
                op: RowOp::Load,
                lsn: ctx.snapshot_lsn,
                seq: load_seq(chunk.part, rows),
                xid: None,
                commit_ts_us: ctx.snapshot_ts_us,
                values: &values,
            };
            if let Err(e) = builder.append(&row) {
                let letters = outputs.first().and_then(|o| o.dead_letters.as_ref()).or_else(|| records.first().and_then(|r| r.dead_letters()));
                tokio::task::block_in_place(|| crate::sink::dead_letter::refuse_loaded_row(letters, dms.is_some(), table, &row, &e, &what))?;
            }
            rows += 1;
            // The row's values are slices of the COPY stream's buffer: release it before the
            // batch goes to the encoders, so a huge value is not held twice meanwhile.
            values.clear();
            if builder.is_full(BATCH_ROWS) {
                let batch = builder.finish();
                if let Some(p) = progress {
                    p.add(batch.num_rows() as u64, 0);
                }
                tokio::task::block_in_place(|| write(&mut writers, &batch))?;
                send_records(records, table, &batch, &mut marks).await?;
            }
        }
    }
    parser.finish().map_err(|e| Error::runtime(format!("{}: {e}", what())))?;
    let batch = builder.finish();
    if let Some(p) = progress {
        p.add(batch.num_rows() as u64, 0);
    }
    tokio::task::block_in_place(|| -> Result<()> {
        // Part 0 is always written, even empty, so every loaded table has a file with its schema.
        if batch.num_rows() > 0 || chunk.part == 0 {
            write(&mut writers, &batch)?;
        }
        for (w, o) in writers.into_iter().zip(outputs) {
            w.finish(o.storage.as_ref())?;
        }
        Ok(())
    })?;
    send_records(records, table, &batch, &mut marks).await?;
    for (r, mark) in records.iter().zip(marks) {
        if let Some(mark) = mark {
            r.wait(mark).await.map_err(|e| e.context(format!("{}: {}", what(), r.describe())))?;
        }
    }
    Ok(rows)
}

/// The COPY's SELECT list for `table`, an output schema of `published` (itself, or the
/// columns a DMS-layout sink writes): each output column read from its source column
/// under the source's name, as text when a rule says so. Errors name a column of `table`
/// that `published` does not have (internal).
fn select_list(published: &PublishedTable, table: &TableSchema) -> Result<Vec<String>> {
    table
        .columns
        .iter()
        .map(|c| {
            let at = published.schema.columns.iter().position(|o| o.name == c.name).ok_or_else(|| {
                Error::runtime(format!("internal: column {} of {}.{} has no source column", c.name, table.schema, table.name))
            })?;
            let source = &published.columns[at];
            Ok(copy_select_expr_from(c, &source.name, source.as_text))
        })
        .collect()
}

/// Encodes `batch` as `load` records for each of `records` and hands them over, noting the
/// mark to wait for in `marks`.
async fn send_records(records: &[Arc<KinesisLoad>], table: &TableSchema, batch: &RecordBatch, marks: &mut [Option<crate::model::Lsn>]) -> Result<()> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    for (r, mark) in records.iter().zip(marks) {
        let entries = tokio::task::block_in_place(|| r.encode(table, batch))?;
        *mark = Some(r.send(entries).await?);
    }
    Ok(())
}
