//! The publication watch of `run`: at start and every few seconds, the publication's
//! tables that match `source.tables` (with their OIDs and leaf partitions) are compared
//! with what the target holds ([`Reloads::observe`]). This catches what the stream alone
//! cannot show: a filled table added to the publication that never changes, a table
//! renamed or recreated while pgcdc was stopped, and `ATTACH`/`DETACH PARTITION` under a
//! root published with `publish_via_partition_root` (rows appear or disappear without WAL).

use std::sync::Arc;
use std::time::Duration;

use crate::config::TableFilter;
use crate::error::{Error, Result};
use crate::state::tables::{FollowedTable, TableRegistry};
use crate::load::requests::Reloads;
use crate::state::load::LoadState;
use crate::storage::Storage;
use crate::source::catalog::Catalog;
use crate::source::sql::db_error_text;

/// How often `run` looks at the publication.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// A published table: OID, schema, name, leaf OIDs (sorted).
pub type PublishedTable = (u32, String, String, Vec<u32>);

/// The publication's tables that match `filter`, now.
pub async fn published_tables(
    catalog: &Catalog,
    publication: &str,
    filter: &TableFilter,
) -> Result<Vec<PublishedTable>> {
    let leaves = crate::source::partitions::leaves_sql(catalog, "c.oid").await?;
    let rows = catalog
        .client
        .query(
            &format!(
                "SELECT c.oid, p.schemaname::text, p.tablename::text, {leaves}
                   FROM pg_publication_tables p
                   JOIN pg_namespace n ON n.nspname = p.schemaname
                   JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
                  WHERE p.pubname = $1
                  ORDER BY 2, 3"
            ),
            &[&publication],
        )
        .await
        .map_err(|e| {
            Error::runtime(format!(
                "reading pg_publication_tables: {}",
                db_error_text(&e)
            ))
        })?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, u32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, Vec<u32>>(3),
            )
        })
        .filter(|(_, s, t, _)| filter.matches(s, t))
        .collect())
}

/// The target's registry, created when missing: from the full load's plan (the tables it
/// loaded, with the leaves it copied), or else — mode `cdc`, or CDC progress without a
/// load — from the publication as it is now (those tables are taken as followed).
pub async fn open_registry(
    storage: &dyn Storage,
    catalog: &Catalog,
    publication: &str,
    filter: &TableFilter,
) -> Result<TableRegistry> {
    if let Some(r) = TableRegistry::read(storage)? {
        return Ok(r);
    }
    let mut reg = TableRegistry::default();
    match LoadState::read(storage)? {
        Some(load) => {
            for t in load.tables.values() {
                let Some(relid) =
                    crate::load::reload::relid_of(catalog, &t.schema, &t.table).await?
                else {
                    continue;
                };
                let mut leaves = Vec::new();
                let names: std::collections::BTreeSet<(&str, &str)> = t
                    .chunks
                    .iter()
                    .map(|c| (c.leaf_schema.as_str(), c.leaf_table.as_str()))
                    .collect();
                for (schema, table) in names {
                    if let Some(l) = crate::load::reload::relid_of(catalog, schema, table).await? {
                        leaves.push(l);
                    }
                }
                leaves.sort_unstable();
                leaves.dedup();
                reg.tables.insert(
                    relid,
                    FollowedTable {
                        schema: t.schema.clone(),
                        table: t.table.clone(),
                        leaves,
                        seen_at: load.slot_lsn,
                        relfilenode: catalog.relation_facts(relid).await?.relfilenode,
                    },
                );
            }
        }
        None => {
            let at = catalog.current_wal_lsn().await?;
            for (relid, schema, table, leaves) in
                published_tables(catalog, publication, filter).await?
            {
                reg.tables.insert(
                    relid,
                    FollowedTable {
                        schema,
                        table,
                        leaves,
                        seen_at: at,
                        relfilenode: catalog.relation_facts(relid).await?.relfilenode,
                    },
                );
            }
        }
    }
    reg.write(storage)?;
    Ok(reg)
}

/// One look at the publication (module docs).
pub async fn check_once(
    catalog: &Catalog,
    publication: &str,
    filter: &TableFilter,
    reloads: &Reloads,
) -> Result<()> {
    // Read before the catalog: everything committed before `at` is in what follows.
    let at = catalog.current_wal_lsn().await?;
    let tables = published_tables(catalog, publication, filter).await?;
    for (relid, schema, table, leaves) in &tables {
        tokio::task::block_in_place(|| reloads.observe(*relid, schema, table, Some(leaves), at))?;
    }
    let published: Vec<u32> = tables.iter().map(|t| t.0).collect();
    tokio::task::block_in_place(|| reloads.forget_unpublished(&published, at))
}

/// Looks at the publication every [`WATCH_INTERVAL`] until an error (returned).
pub async fn watch(
    catalog: Arc<Catalog>,
    publication: String,
    filter: TableFilter,
    reloads: Arc<Reloads>,
) -> Result<()> {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        check_once(&catalog, &publication, &filter, &reloads).await?;
    }
}

/// For `validate`, before it takes its snapshot: waits (polling every `poll`, at most
/// `timeout`) until the target holds every table published now completely — no reload
/// pending, none unknown or known under another name. A reload finished after the
/// validation snapshot would be cut off by it, hence before. Returns what is still
/// incomplete when the time is up (empty when complete or when the target has no registry).
pub async fn wait_until_followed(
    catalog: &Catalog,
    storage: &dyn Storage,
    publication: &str,
    filter: &TableFilter,
    timeout: Duration,
    poll: Duration,
) -> Result<Vec<String>> {
    let started = std::time::Instant::now();
    let mut logged = false;
    loop {
        let tables: Vec<(u32, String, String)> = published_tables(catalog, publication, filter)
            .await?
            .into_iter()
            .map(|(r, s, t, _)| (r, s, t))
            .collect();
        let incomplete = crate::state::tables::incomplete_tables(storage, &tables)?;
        if incomplete.is_empty() || started.elapsed() >= timeout {
            return Ok(incomplete);
        }
        if !logged {
            tracing::info!(tables = %incomplete.join(", "), "waiting for `pgcdc run` to load or reload tables");
            logged = true;
        }
        tokio::time::sleep(poll).await;
    }
}
