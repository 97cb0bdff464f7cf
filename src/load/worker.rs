//! A copy worker: one SQL session inside the load's snapshot, copying chunks one after the
//! other with `COPY (SELECT …) TO STDOUT (FORMAT binary)`, decoded straight into Arrow
//! batches and written to the chunk's Parquet file. The SELECT names only the published
//! columns and applies the publication's row filter (see [`crate::source::publication`]).

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio_postgres::Client;

use super::progress::TableProgress;
use crate::state::load::Chunk;
use crate::batch::{TableBatchBuilder, copy_select_expr};
use crate::model::{OutputRow, TableSchema};
use crate::config::Compression;
use crate::error::{Error, Result};
use crate::model::{Lsn, RowOp};
use crate::sink::parquet::dms_schema::DmsColumns;
use crate::sink::parquet::load::{remove_part, LoadWriter};
use crate::storage::Storage;
use crate::source::copy::BinaryCopyParser;
use crate::model::TupleValue;
use crate::source::sql::{self, db_error_text};

const BATCH_ROWS: usize = 16 * 1024;

/// What every chunk of one load shares.
pub struct LoadContext {
    pub storage: Arc<dyn Storage>,
    pub snapshot_lsn: Lsn,
    pub snapshot_ts_us: i64,
    pub compression: Compression,
    pub tid_ranges: bool,
    /// The publication's row filter of each table that has one, by `schema.table`.
    pub row_filters: HashMap<String, String>,
    /// A reload ([`super::reload`]): part 0 starts with the reset row `T` at
    /// `(_lsn, _seq) = (snapshot_lsn, -1)`, and files of other snapshots are kept.
    pub reload: bool,
    /// `layout = "dms"` (SPEC 5.2): the table is read as [`DmsColumns::source_table`] and
    /// files get DMS names and columns.
    pub dms: Option<Arc<DmsColumns>>,
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

/// Copies one chunk and publishes its file; returns the number of rows.
pub async fn copy_chunk(
    client: &Client,
    ctx: &LoadContext,
    table: &Arc<TableSchema>,
    chunk: &Chunk,
    progress: &TableProgress,
) -> Result<u64> {
    let storage = ctx.storage.as_ref();
    let table = &match &ctx.dms {
        Some(d) => d.source_table(table)?,
        None => table.clone(),
    };
    if !ctx.reload && ctx.dms.is_none() {
        tokio::task::block_in_place(|| remove_part(storage, &table.schema, &table.name, chunk.part))?;
    }
    let exprs: Vec<String> = table.columns.iter().map(copy_select_expr).collect();
    let sql = format!(
        "COPY (SELECT {} FROM ONLY {}{}) TO STDOUT (FORMAT binary)",
        if exprs.is_empty() { "".to_string() } else { exprs.join(", ") },
        crate::source::quote::qualified(&chunk.leaf_schema, &chunk.leaf_table),
        crate::source::publication::with_row_filter(
            &super::plan::chunk_filter(chunk, ctx.tid_ranges),
            ctx.row_filters.get(&format!("{}.{}", table.schema, table.name)).map(String::as_str)
        )
    );
    let what = || format!("copying {}.{} (part {})", table.schema, table.name, chunk.part);
    let stream = client.copy_out(&sql).await.map_err(|e| sql::query_error(what(), &e))?;
    futures_util::pin_mut!(stream);
    let mut parser = BinaryCopyParser::with_field_count(table.columns.len());
    let mut builder = TableBatchBuilder::new(table.clone());
    let mut writer: Option<LoadWriter> = None;
    let mut values: Vec<TupleValue> = Vec::with_capacity(table.columns.len());
    let mut rows = 0u64;
    if ctx.reload && chunk.part == 0 && ctx.dms.is_none() {
        let nulls = vec![TupleValue::Null; table.columns.len()];
        let reset = OutputRow { op: RowOp::Truncate, lsn: ctx.snapshot_lsn, seq: -1, xid: None, commit_ts_us: ctx.snapshot_ts_us, values: &nulls };
        builder.append(&reset).map_err(|e| Error::runtime(format!("{}: {e}", what())))?;
    }
    let open = |writer: &mut Option<LoadWriter>| -> Result<()> {
        if writer.is_none() {
            *writer = Some(LoadWriter::create(storage, table, ctx.snapshot_lsn, ctx.snapshot_ts_us, chunk.part, ctx.compression, ctx.dms.as_ref())?);
        }
        Ok(())
    };
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.map_err(|e| sql::query_error(what(), &e))?;
        progress.add(0, bytes.len() as u64);
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
            builder
                .append(&row)
                .map_err(|e| Error::runtime(format!("{}: {e}", what())))?;
            rows += 1;
            if builder.len() >= BATCH_ROWS {
                let batch = builder.finish();
                progress.add(batch.num_rows() as u64, 0);
                tokio::task::block_in_place(|| {
                    open(&mut writer)?;
                    writer.as_mut().expect("opened").write(&batch)
                })?;
            }
        }
    }
    parser.finish().map_err(|e| Error::runtime(format!("{}: {e}", what())))?;
    let batch = builder.finish();
    progress.add(batch.num_rows() as u64, 0);
    tokio::task::block_in_place(|| -> Result<()> {
        // Part 0 is always written, even empty, so every loaded table has a file with its schema.
        if batch.num_rows() > 0 || chunk.part == 0 {
            open(&mut writer)?;
            writer.as_mut().expect("opened").write(&batch)?;
        }
        if let Some(w) = writer.take() {
            w.finish(storage)?;
        }
        Ok(())
    })?;
    Ok(rows)
}
