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
use super::outputs::LoadOutput;
use super::worker::{copy_chunk, enter_snapshot, LoadContext};
use crate::error::{Error, Result};
use crate::config::TableFilter;
use crate::rules::TableRules;
use super::requests::Reloads;
use crate::sink::parquet::dms_naming::{dms_table_prefix, is_load_key};
use crate::sink::parquet::naming::table_prefix;
use crate::storage::Storage;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::replication::{ReplicationConn, SnapshotAction};
use crate::source::sql::{self, db_error_text};

/// Where and how reloads write.
pub struct ReloadTarget {
    /// Every Parquet sink, as for the full load ([`super::outputs`]). A DMS-layout sink
    /// where the table already has `LOAD` files is left out of its reload: DMS captures
    /// neither TRUNCATE nor rewrites, and its layout has no reset row, so the table is only
    /// followed there at its new relfilenode.
    pub outputs: Vec<LoadOutput>,
    /// PostgreSQL 14+: chunks are CTID ranges.
    pub tid_ranges: bool,
    /// `source.tables`: a table renamed out of the patterns is not reloaded.
    pub filter: TableFilter,
    /// `source.publication`: a reload copies what it publishes (column list, row filter).
    pub publication: String,
    /// The `[[rule]]`s: a reload writes the table shaped by them, under its target name.
    pub rules: Vec<crate::config::RuleConfig>,
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
    if let Some(a) = &p.attempt {
        tracing::info!(table = %format!("{}.{}", a.schema, a.table), lsn = %a.lsn, "removing the files of an interrupted reload");
        let rules = TableRules::resolve(&target.rules, &a.schema, &a.table);
        tokio::task::block_in_place(|| remove_attempt(&target.outputs, a, (&rules.target_schema, &rules.target_table)))?;
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
    let rules = TableRules::resolve(&target.rules, &schema, &table);
    let (outputs, indexes) = tokio::task::block_in_place(|| copying_outputs(&target.outputs, &rules.target_schema, &rules.target_table))?;
    if outputs.is_empty() {
        let leaves = leaf_oids(&catalog, p.relid).await?;
        let relfilenode = catalog.relation_facts(p.relid).await?.relfilenode;
        let _ = catalog.client.batch_execute("COMMIT").await;
        let followed = FollowedTable { schema, table, leaves, seen_at: s, relfilenode };
        return reloads.finish(p.relid, p.requests, Some(followed));
    }
    let attempt = Attempt { lsn: s, schema: schema.clone(), table: table.clone(), outputs: Some(indexes) };
    reloads.start_attempt(p.relid, attempt)?;
    let published = catalog.published_table_schema(&target.publication, &target.rules, &schema, &table).await?;
    let leaves = leaf_oids(&catalog, p.relid).await?;
    let pair = [(schema.clone(), table.clone())];
    let plan = super::plan::plan(&catalog, &pair, 1, None, target.tid_ranges).await?;
    let key = format!("{schema}.{table}");
    let chunks = plan.get(&key).map(|t| t.chunks.clone()).unwrap_or_default();
    let progress =
        super::progress::LoadProgress::new(&[(key.clone(), plan.get(&key).map_or(0, |t| t.bytes))]);
    let tp = progress.table(&key);
    let ctx = LoadContext {
        outputs,
        records: Vec::new(),
        snapshot_lsn: s,
        snapshot_ts_us: crate::time_fmt::now_unix_micros(),
        tid_ranges: target.tid_ranges,
        reload: true,
        resumed: false,
    };
    let mut rows = 0;
    for chunk in &chunks {
        rows += copy_chunk(&catalog.client, &ctx, &published, chunk, &tp).await?;
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

/// The outputs a reload of `schema.table` writes into, and their indexes: every native
/// sink, and each DMS-layout sink where the table has no `LOAD` file yet (one that joined
/// the publication).
fn copying_outputs(all: &[LoadOutput], schema: &str, table: &str) -> Result<(Vec<LoadOutput>, Vec<usize>)> {
    let mut chosen = (Vec::new(), Vec::new());
    for (i, o) in all.iter().enumerate() {
        if o.dms.is_some() && has_dms_load_files(o.storage.as_ref(), schema, table)? {
            tracing::warn!(table = %format!("{schema}.{table}"), sink = %o.storage.describe(), "layout = \"dms\" does not reload a loaded table: rows a rewriting ALTER TABLE changed are not in the output (as with DMS)");
            continue;
        }
        chosen.0.push(o.clone());
        chosen.1.push(i);
    }
    Ok(chosen)
}

/// Deletes what an interrupted attempt published in the sinks it wrote into: in the native
/// layout `{table}/load/{lsn}-*.parquet`; in the DMS layout the table's `LOAD` files (it
/// wrote there only because the table had none). `(schema, table)` is the table's target
/// name (the attempt records its source name).
fn remove_attempt(outputs: &[LoadOutput], a: &Attempt, (schema, table): (&str, &str)) -> Result<()> {
    for (_, o) in outputs.iter().enumerate().filter(|(i, _)| a.writes_to(*i)) {
        let storage = o.storage.as_ref();
        if o.dms.is_some() {
            remove_dms_load_files(storage, schema, table)?;
            continue;
        }
        let prefix = format!("{}/load/{}-", table_prefix(schema, table), a.lsn.file_hex());
        for key in storage.list(&format!("{}/load", table_prefix(schema, table)))? {
            if key.starts_with(&prefix) {
                storage.delete(&key)?;
            }
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
    use crate::config::Compression;
    use crate::model::Lsn;
    use crate::sink::parquet::dms_naming;
    use crate::sink::parquet::dms_schema::DmsColumns;
    use crate::storage::LocalStorage;
    use crate::storage::PutMode;

    /// A local output with its writer lock (held by the caller: writes need it).
    fn output(dir: &std::path::Path, name: &str, dms: bool) -> (LoadOutput, crate::storage::TargetLock) {
        let dms = dms.then(|| {
            Arc::new(DmsColumns {
                timestamp_column: None,
                include_op_for_full_load: false,
                cdc_inserts_only: false,
                timestamp_unit: arrow_schema::TimeUnit::Microsecond,
                csv: None,
            })
        });
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::open(dir.join(name)).unwrap());
        let lock = storage.lock().unwrap();
        (LoadOutput { storage, compression: Compression::Zstd, dms, dead_letters: None }, lock)
    }

    fn outputs(dir: &std::path::Path, names: [(&str, bool); 3]) -> (Vec<LoadOutput>, Vec<crate::storage::TargetLock>) {
        names.into_iter().map(|(n, dms)| output(dir, n, dms)).unzip()
    }

    fn put(o: &LoadOutput, key: &str) {
        o.storage.put(key, b"x", PutMode::Overwrite).unwrap();
    }

    fn keys(o: &LoadOutput) -> Vec<String> {
        o.storage.list("public/t").unwrap()
    }

    #[test]
    fn an_interrupted_attempt_loses_only_its_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let (outputs, _locks) = outputs(dir.path(), [("native", false), ("dms_skipped", true), ("dms_new", true)]);
        let older = format!("{}/load/{}-00000.parquet", table_prefix("public", "t"), Lsn(0x10).file_hex());
        let attempt_file = format!("{}/load/{}-00000.parquet", table_prefix("public", "t"), Lsn(0x1A).file_hex());
        put(&outputs[0], &older);
        put(&outputs[0], &attempt_file);
        // The DMS sink left out of the attempt holds the table's original load.
        put(&outputs[1], &dms_naming::load_key("public", "t", 0, "parquet"));
        put(&outputs[2], &dms_naming::load_key("public", "t", 0, "parquet"));
        let a = Attempt { lsn: Lsn(0x1A), schema: "public".into(), table: "t".into(), outputs: Some(vec![0, 2]) };
        remove_attempt(&outputs, &a, ("public", "t")).unwrap();
        assert_eq!(outputs[0].storage.list("public/t/load").unwrap(), vec![older.clone()]);
        assert_eq!(keys(&outputs[1]).len(), 1, "a sink the attempt did not write into keeps its files");
        assert!(keys(&outputs[2]).iter().all(|k| !dms_naming::is_load_key(k)));

        // A registry written before attempts named their sinks: all of them.
        let legacy = Attempt { outputs: None, ..a };
        remove_attempt(&outputs, &legacy, ("public", "t")).unwrap();
        assert!(keys(&outputs[1]).iter().all(|k| !dms_naming::is_load_key(k)));
    }

    #[test]
    fn a_reload_skips_dms_sinks_that_hold_the_table_load() {
        let dir = tempfile::tempdir().unwrap();
        let (outputs, _locks) = outputs(dir.path(), [("native", false), ("dms_loaded", true), ("dms_new", true)]);
        put(&outputs[1], &dms_naming::load_key("public", "t", 0, "parquet"));
        let (chosen, indexes) = copying_outputs(&outputs, "public", "t").unwrap();
        assert_eq!(indexes, vec![0, 2]);
        assert_eq!(chosen.len(), 2);
    }
}
