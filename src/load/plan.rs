//! Planning the full load: which relations to copy and how to split them into CTID block
//! ranges for parallel workers.
//!
//! A published table is copied through its leaf relations (itself, or its partitions). Each
//! leaf is cut into ranges of `chunk_pages` blocks from its current size; the last range is
//! open-ended. TID range scans make such ranges cheap on PostgreSQL 14+; older servers get
//! one chunk per leaf.

use std::collections::BTreeMap;

use crate::state::load::{Chunk, TableLoad};
use crate::error::{Error, Result};
use crate::source::catalog::Catalog;
use crate::source::sql::db_error_text;

/// Blocks per chunk when not configured: about 8·workers chunks for the biggest table,
/// between 8 MiB and 1 GiB of heap each.
pub fn default_chunk_pages(largest_table_pages: u64, workers: usize) -> u32 {
    let target = largest_table_pages / (workers as u64 * 8).max(1);
    target.clamp(1024, 131_072) as u32
}

pub struct Leaf {
    pub schema: String,
    pub table: String,
    pub pages: u64,
    pub bytes: u64,
}

/// The leaf relations of a table with their sizes.
pub async fn leaves(catalog: &Catalog, schema: &str, table: &str) -> Result<Vec<Leaf>> {
    // pg_partition_tree() lists nothing for a plain table: then the table is its own leaf.
    let rows = catalog
        .client
        .query(
            "WITH rel AS (SELECT format('%I.%I', $1::text, $2::text)::regclass AS oid),
                  leaves AS (
                    SELECT t.relid FROM rel, pg_partition_tree(rel.oid) t WHERE t.isleaf
                    UNION ALL
                    SELECT rel.oid FROM rel JOIN pg_class c ON c.oid = rel.oid WHERE c.relkind NOT IN ('p', 'I'))
             SELECT DISTINCT n.nspname::text, c.relname::text,
                    pg_relation_size(c.oid) / current_setting('block_size')::bigint,
                    pg_relation_size(c.oid)
               FROM leaves l
               JOIN pg_class c ON c.oid = l.relid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              ORDER BY 1, 2",
            &[&schema, &table],
        )
        .await
        .map_err(|e| Error::runtime(format!("planning the load of {schema}.{table}: {}", db_error_text(&e))))?;
    Ok(rows
        .iter()
        .map(|r| Leaf { schema: r.get(0), table: r.get(1), pages: r.get::<_, i64>(2) as u64, bytes: r.get::<_, i64>(3) as u64 })
        .collect())
}

/// Plans chunks for `tables` (schema, table) → `schema.table` → plan.
pub async fn plan(
    catalog: &Catalog,
    tables: &[(String, String)],
    workers: usize,
    chunk_pages: Option<u32>,
    tid_ranges: bool,
) -> Result<BTreeMap<String, TableLoad>> {
    let mut all = Vec::new();
    for (schema, table) in tables {
        all.push((schema.clone(), table.clone(), leaves(catalog, schema, table).await?));
    }
    let largest = all.iter().flat_map(|(_, _, l)| l.iter().map(|l| l.pages)).max().unwrap_or(0);
    let chunk_pages = chunk_pages.unwrap_or_else(|| default_chunk_pages(largest, workers)).max(1);
    let mut out = BTreeMap::new();
    for (schema, table, leaves) in all {
        let mut chunks = Vec::new();
        for leaf in &leaves {
            let mut start = 0u64;
            loop {
                let end = start + chunk_pages as u64;
                let last = !tid_ranges || end >= leaf.pages;
                chunks.push(Chunk {
                    part: chunks.len() as u32,
                    leaf_schema: leaf.schema.clone(),
                    leaf_table: leaf.table.clone(),
                    start_page: start as u32,
                    end_page: if last { None } else { Some(end as u32) },
                    done_at: None,
                    rows: 0,
                });
                if last {
                    break;
                }
                start = end;
            }
        }
        let bytes = leaves.iter().map(|l| l.bytes).sum();
        out.insert(format!("{schema}.{table}"), TableLoad { schema, table, bytes, chunks });
    }
    Ok(out)
}

/// The WHERE clause of a chunk's scan.
pub fn chunk_filter(chunk: &Chunk, tid_ranges: bool) -> String {
    if !tid_ranges {
        return String::new();
    }
    match chunk.end_page {
        Some(end) => format!(" WHERE ctid >= '({},0)'::tid AND ctid < '({end},0)'::tid", chunk.start_page),
        None if chunk.start_page == 0 => String::new(),
        None => format!(" WHERE ctid >= '({},0)'::tid", chunk.start_page),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_and_filters() {
        assert_eq!(default_chunk_pages(0, 2), 1024);
        assert_eq!(default_chunk_pages(10_000_000, 2), 131_072);
        assert_eq!(default_chunk_pages(160_000, 2), 10_000);
        let c = Chunk { part: 1, leaf_schema: "s".into(), leaf_table: "t".into(), start_page: 10, end_page: Some(20), done_at: None, rows: 0 };
        assert_eq!(chunk_filter(&c, true), " WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid");
        assert_eq!(chunk_filter(&Chunk { end_page: None, ..c.clone() }, true), " WHERE ctid >= '(10,0)'::tid");
        assert_eq!(chunk_filter(&c, false), "");
    }
}
