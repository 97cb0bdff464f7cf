//! Reloading one table while CDC keeps running (README, "Reloads").
//!
//! A reload of table X takes a snapshot of its own: a temporary logical slot created with
//! an exported snapshot, whose consistent point S is the reload's LSN (exactly what a
//! resumed full load does for its second snapshot). In that snapshot it finds X by OID
//! (so it follows renames), plans X's chunks like the full load and copies them with the
//! load workers' code into `{table}/load/{S}-{part:05}.parquet`, labelled `_op = 'L'`,
//! `_lsn = S`. Part 0 starts with a reset row `_op = 'T'` at `(_lsn = S, _seq = -1)`; load
//! rows have `_seq ≥ 0`, and no commit LSN equals a consistent point, so `(_lsn, _seq)`
//! stays unique. By the materialisation rule everything written for X before S is
//! superseded and every CDC change committed after S applies on top, in whatever order
//! the files were written. The replication slot's position is not touched.
//!
//! Durability: the reload is pending in `_pgcdc/tables.json` before it starts; the attempt's
//! LSN is recorded before its first file is written; it stops being pending only after all
//! its files are published. A pending reload found at start is redone with a new snapshot,
//! after deleting whatever the interrupted attempt published.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::state::tables::{Attempt, FollowedTable};
use super::worker::{copy_chunk, enter_snapshot, LoadContext};
use crate::config::Compression;
use crate::error::{Error, Result};
use crate::config::TableFilter;
use super::requests::Reloads;
use crate::sink::parquet::dms_naming::{dms_table_prefix, is_load_key};
use crate::sink::parquet::dms_schema::DmsColumns;
use crate::sink::parquet::naming::table_prefix;
use crate::storage::Storage;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::replication::{ReplicationConn, SnapshotAction};
use crate::source::sql::{self, db_error_text};

/// Where and how reloads write.
pub struct ReloadTarget {
    pub storage: Arc<dyn Storage>,
    pub compression: Compression,
    /// PostgreSQL 14+: chunks are CTID ranges.
    pub tid_ranges: bool,
    /// `source.tables`: a table renamed out of the patterns is not reloaded.
    pub filter: TableFilter,
    /// `source.publication`: a reload copies what it publishes (column list, row filter).
    pub publication: String,
    /// `layout = "dms"`: a table with no `LOAD` file yet (one that joined the publication) is
    /// loaded with DMS names and columns; one that has them is not copied again (DMS
    /// captures neither TRUNCATE nor rewrites, and its layout has no reset row): it is only
    /// followed at its new relfilenode.
    pub dms: Option<Arc<DmsColumns>>,
}

/// Performs pending reloads one after the other until `closing` is set and none is left.
/// Returns an error (and leaves the reload pending) when one fails.
pub async fn reload_worker(
    info: ConnInfo,
    target: ReloadTarget,
    reloads: Arc<Reloads>,
    closing: Arc<AtomicBool>,
) -> Result<()> {
    loop {
        match reloads.next_pending() {
            Some(p) => {
                let name = format!("{}.{}", p.schema, p.table);
                reload_one(&info, &target, &reloads, p)
                    .await
                    .map_err(|e| e.context(format!("reloading {name}")))?;
            }
            None if closing.load(Ordering::SeqCst) => return Ok(()),
            None => reloads.wait().await,
        }
    }
}

async fn reload_one(
    info: &ConnInfo,
    target: &ReloadTarget,
    reloads: &Reloads,
    p: crate::state::tables::PendingReload,
) -> Result<()> {
    let started = std::time::Instant::now();
    let storage = target.storage.as_ref();
    if let Some(a) = &p.attempt {
        tracing::info!(table = %format!("{}.{}", a.schema, a.table), lsn = %a.lsn, "removing the files of an interrupted reload");
        tokio::task::block_in_place(|| match target.dms {
            None => remove_attempt(storage, a),
            // A DMS-layout reload copies only into a table without LOAD files: the attempt's.
            Some(_) => remove_dms_load_files(storage, &a.schema, &a.table),
        })?;
    }
    let mut repl = ReplicationConn::connect(info).await?;
    let slot = format!("pgcdc_reload_{}_{}", std::process::id(), p.relid);
    let created = repl
        .create_slot(&slot, true, SnapshotAction::Export)
        .await?;
    let s = created.consistent_point;
    let snapshot = created
        .snapshot_name
        .ok_or_else(|| Error::runtime("the server did not export a snapshot"))?;
    let client = sql::connect(info).await?;
    enter_snapshot(&client, &snapshot).await?;
    let catalog = Catalog::new(client);
    let Some((schema, table)) = name_of(&catalog, p.relid).await? else {
        tracing::info!(table = %format!("{}.{}", p.schema, p.table), "the table no longer exists: nothing to reload");
        return reloads.finish(p.relid, p.requests, None);
    };
    if !target.filter.matches(&schema, &table) {
        tracing::info!(table = %format!("{schema}.{table}"), "the table no longer matches source.tables: not reloaded");
        return reloads.finish(p.relid, p.requests, None);
    }
    if target.dms.is_some() && tokio::task::block_in_place(|| has_dms_load_files(storage, &schema, &table))? {
        tracing::warn!(table = %format!("{schema}.{table}"), "layout = \"dms\" does not reload a loaded table: rows a rewriting ALTER TABLE changed are not in the output (as with DMS)");
        let leaves = leaf_oids(&catalog, p.relid).await?;
        let relfilenode = catalog.relation_facts(p.relid).await?.relfilenode;
        let _ = catalog.client.batch_execute("COMMIT").await;
        let followed = FollowedTable { schema, table, leaves, seen_at: s, relfilenode };
        return reloads.finish(p.relid, p.requests, Some(followed));
    }
    reloads.start_attempt(p.relid, Attempt { lsn: s, schema: schema.clone(), table: table.clone() })?;
    let published = catalog.published_table_schema(&target.publication, &schema, &table).await?;
    let ts = published.schema.clone();
    let leaves = leaf_oids(&catalog, p.relid).await?;
    let pair = [(schema.clone(), table.clone())];
    let plan = super::plan::plan(&catalog, &pair, 1, None, target.tid_ranges).await?;
    let key = format!("{schema}.{table}");
    let chunks = plan.get(&key).map(|t| t.chunks.clone()).unwrap_or_default();
    let progress =
        super::progress::LoadProgress::new(&[(key.clone(), plan.get(&key).map_or(0, |t| t.bytes))]);
    let tp = progress.table(&key);
    let ctx = LoadContext {
        storage: target.storage.clone(),
        snapshot_lsn: s,
        snapshot_ts_us: crate::time_fmt::now_unix_micros(),
        compression: target.compression,
        tid_ranges: target.tid_ranges,
        row_filters: published.row_filter.iter().map(|f| (key.clone(), f.clone())).collect(),
        reload: true,
        dms: target.dms.clone(),
    };
    let mut rows = 0;
    for chunk in &chunks {
        rows += copy_chunk(&catalog.client, &ctx, &ts, chunk, &tp).await?;
    }
    tp.finish();
    drop(progress);
    crate::failpoint::hit("reload-copied");
    // As of the snapshot: a rewrite after it is noticed by the next Relation message.
    let relfilenode = catalog.relation_facts(p.relid).await?.relfilenode;
    let _ = catalog.client.batch_execute("COMMIT").await;
    drop(repl);
    reloads.finish(
        p.relid,
        p.requests,
        Some(FollowedTable {
            schema: schema.clone(),
            table: table.clone(),
            leaves,
            seen_at: s,
            relfilenode,
        }),
    )?;
    tracing::info!(table = %key, rows, lsn = %s, seconds = format!("{:.1}", started.elapsed().as_secs_f64()), "table reloaded");
    Ok(())
}

/// Deletes the load files an attempt published: `{table}/load/{lsn}-*.parquet`.
fn remove_attempt(storage: &dyn Storage, a: &Attempt) -> Result<()> {
    let prefix = format!(
        "{}/load/{}-",
        table_prefix(&a.schema, &a.table),
        a.lsn.file_hex()
    );
    for key in storage.list(&format!("{}/load", table_prefix(&a.schema, &a.table)))? {
        if key.starts_with(&prefix) {
            storage.delete(&key)?;
        }
    }
    Ok(())
}

/// Whether the DMS-layout table has a full-load file.
fn has_dms_load_files(storage: &dyn Storage, schema: &str, table: &str) -> Result<bool> {
    Ok(storage.list(&dms_table_prefix(schema, table))?.iter().any(|k| is_load_key(k)))
}

/// Deletes the DMS-layout table's full-load files.
fn remove_dms_load_files(storage: &dyn Storage, schema: &str, table: &str) -> Result<()> {
    for key in storage.list(&dms_table_prefix(schema, table))? {
        if is_load_key(&key) {
            storage.delete(&key)?;
        }
    }
    Ok(())
}

/// A table's current (schema, name) by OID, or `None` when it does not exist.
pub async fn name_of(catalog: &Catalog, relid: u32) -> Result<Option<(String, String)>> {
    let row = catalog
        .client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&relid],
        )
        .await
        .map_err(|e| Error::runtime(format!("reading pg_class: {}", db_error_text(&e))))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// The OIDs of a table's leaf relations, sorted: its partitions', or its own.
pub async fn leaf_oids(catalog: &Catalog, relid: u32) -> Result<Vec<u32>> {
    let leaves = crate::source::partitions::leaves_sql(catalog, "$1::oid").await?;
    let row = catalog
        .client
        .query_one(&format!("SELECT {leaves}"), &[&relid])
        .await
        .map_err(|e| Error::runtime(format!("reading pg_partition_tree: {}", db_error_text(&e))))?;
    Ok(row.get(0))
}

/// The OID of `schema.table`, or `None` when there is no such table.
pub async fn relid_of(catalog: &Catalog, schema: &str, table: &str) -> Result<Option<u32>> {
    let row = catalog
        .client
        .query_opt(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &table],
        )
        .await
        .map_err(|e| Error::runtime(format!("reading pg_class: {}", db_error_text(&e))))?;
    Ok(row.map(|r| r.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Lsn;

    #[test]
    fn attempt_prefix_names_only_that_snapshot() {
        let a = Attempt {
            lsn: Lsn(0x1A),
            schema: "public".into(),
            table: "t".into(),
        };
        let p = format!(
            "{}/load/{}-",
            table_prefix(&a.schema, &a.table),
            a.lsn.file_hex()
        );
        assert_eq!(p, "public/t/load/000000000000001A-");
    }
}
