//! What the publication publishes beyond its list of tables: PostgreSQL 15 column lists and
//! row filters, and the tables `source.tables` asks for that the publication leaves out.
//!
//! pgoutput applies a table's column list and row filter to every change it streams: the
//! Relation message names only the published columns, and a row outside the filter is never
//! sent (an UPDATE that moves a row out of the filter arrives as a DELETE, one that moves it
//! in as an INSERT). The full load and `validate` read tables with SQL instead, so they must
//! apply the same two restrictions themselves ([`Catalog::published_table_schema`]), or a
//! column the DBA kept out of the publication reaches the target and rows outside the filter
//! are loaded and never removed.

use std::collections::HashMap;
use std::sync::Arc;

use super::catalog::Catalog;
use super::quote::{qualified, quote_ident};
use crate::model::TableSchema;
use crate::error::{Error, Result};
use crate::config::TableFilter;
use crate::model::choose_key;
use crate::config::RuleConfig;
use crate::rules::{SourceColumn, TableRules};

/// A table as one publication publishes it, shaped by the `[[rule]]`s.
#[derive(Debug, Clone)]
pub struct PublishedTable {
    /// The output schema: the published columns shaped by the rules (target names, dropped
    /// columns gone, text overrides), with the key chosen among them as the pipeline
    /// chooses it for the Relation message: the schema of both the load files and the CDC
    /// files of this table.
    pub schema: Arc<TableSchema>,
    /// The table's published columns under their source names (before the rules).
    pub source: Arc<TableSchema>,
    /// Per output column, the source column it is read from.
    pub columns: Vec<SourceColumn>,
    /// The rows to read, over source columns: the publication's row filter
    /// (`pg_publication_tables.rowfilter`) and the rules' `where`, ANDed; `None` when
    /// every row is published and kept.
    pub row_filter: Option<String>,
}

/// The publication's column list and row filter of one table, as read from the catalog.
#[derive(Debug, Clone, Default)]
pub struct PublicationEntry {
    /// `None`: every column (no column list, or a server before PostgreSQL 15).
    pub attnames: Option<Vec<String>>,
    pub row_filter: Option<String>,
}

fn q(e: tokio_postgres::Error, what: &str) -> Error {
    super::sql::query_error(what, &e)
}

impl Catalog {
    /// The column list and row filter `publication` applies to `schema.table`; `Ok(None)`
    /// when the table is not in the publication. Before PostgreSQL 15 there are neither
    /// (the view has no such columns), so every column and row is published.
    pub async fn publication_entry(
        &self,
        publication: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<PublicationEntry>> {
        let sql = if self.server_version_num().await? >= 150000 {
            "SELECT attnames::text[], rowfilter FROM pg_publication_tables
              WHERE pubname = $1 AND schemaname = $2 AND tablename = $3"
        } else {
            "SELECT NULL::text[], NULL::text FROM pg_publication_tables
              WHERE pubname = $1 AND schemaname = $2 AND tablename = $3"
        };
        let row = self
            .client
            .query_opt(sql, &[&publication, &schema, &table])
            .await
            .map_err(|e| q(e, "reading pg_publication_tables"))?;
        Ok(row.map(|r| PublicationEntry {
            attnames: r.get(0),
            row_filter: r.get(1),
        }))
    }

    /// `schema.table` as `publication` publishes it and `rules` shape it (see
    /// [`PublishedTable`]): the table's current schema ([`Catalog::table_schema`]) without
    /// the columns outside the publication's column list, the publication's row filter, then
    /// the rules. The full load selects exactly these columns with `WHERE <row_filter>`,
    /// and `validate` reads the source the same way, so both agree with what pgoutput
    /// streams and the pipeline shapes. A table that is not (or no longer) in the
    /// publication is returned whole, unfiltered by the publication.
    pub async fn published_table_schema(
        &self,
        publication: &str,
        rules: &[RuleConfig],
        schema: &str,
        table: &str,
    ) -> Result<PublishedTable> {
        let full = self.table_schema(schema, table).await?;
        let (attnames, pub_filter) =
            match self.publication_entry(publication, schema, table).await? {
                Some(e) => (e.attnames, e.row_filter.filter(|f| !f.trim().is_empty())),
                None => (None, None),
            };
        let source = match attnames {
            Some(names) if full.columns.iter().any(|c| !names.contains(&c.name)) => {
                let columns: Vec<_> = full
                    .columns
                    .iter()
                    .filter(|c| names.contains(&c.name))
                    .cloned()
                    .collect();
                let key = choose_key(&columns, &self.primary_key(full.relid).await?, full.replica_identity);
                Arc::new(TableSchema {
                    columns,
                    key,
                    ..(*full).clone()
                })
            }
            _ => full,
        };
        let rules = TableRules::resolve(rules, schema, table);
        let shaped = rules.shape(&source)?;
        let row_filter = match (pub_filter, rules.row_filter()) {
            (Some(p), Some(r)) => Some(format!("({p}) AND ({r})")),
            (p, r) => p.or(r),
        };
        Ok(PublishedTable { schema: shaped.output, source, columns: shaped.columns, row_filter })
    }

    /// The tables `publication` publishes that the `source.tables` `patterns` select (all of
    /// them without patterns), as (schema, table) sorted: what pgcdc replicates.
    pub async fn selected_published_tables(&self, publication: &str, patterns: &[String]) -> Result<Vec<(String, String)>> {
        let filter = TableFilter::new(patterns);
        Ok(self
            .publication_tables(publication)
            .await?
            .into_iter()
            .filter(|(s, t, _, _)| filter.matches(s, t))
            .map(|(s, t, _, _)| (s, t))
            .collect())
    }

    /// Tables of the database that the `source.tables` `patterns` select but `publication`
    /// does not publish, as (schema, table), sorted. pgoutput never streams them, so the
    /// user asked for data they will not get: `check` fails on them, `run` warns, `validate`
    /// reports them as not published. Empty when `patterns` is empty (the default means
    /// "everything in the publication") or the publication does not exist.
    ///
    /// Considered are ordinary and partitioned tables outside the system schemas, neither
    /// temporary nor unlogged (those cannot be published). A partition counts as published
    /// when its partitioned ancestor is (published via the root, `publish_via_partition_root`)
    /// and a partitioned table when one of its partitions is (published per partition); of
    /// an unpublished partition tree only the topmost matching table is named, since adding
    /// it adds its partitions.
    ///
    /// Called by `check`, at the start of `run` ([`warn_unpublished`]) and by `validate`
    /// (in its snapshot); meant to be called periodically during `run` as well.
    pub async fn unpublished_matching_tables(
        &self,
        publication: &str,
        patterns: &[String],
    ) -> Result<Vec<(String, String)>> {
        if patterns.is_empty() || !self.publication_exists(publication).await? {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "WITH RECURSIVE published AS (
                     SELECT c.oid AS relid FROM pg_publication_tables p
                       JOIN pg_namespace n ON n.nspname = p.schemaname
                       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
                      WHERE p.pubname = $1),
                   up AS (SELECT relid FROM published
                          UNION SELECT i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.relid
                                 JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition),
                   down AS (SELECT relid FROM published
                            UNION SELECT i.inhrelid FROM down JOIN pg_inherits i ON i.inhparent = down.relid
                                   JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition)
                 SELECT c.oid, n.nspname::text, c.relname::text,
                        (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
                    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
                    AND c.oid NOT IN (SELECT relid FROM up UNION SELECT relid FROM down)
                  ORDER BY 2, 3",
                &[&publication],
            )
            .await
            .map_err(|e| q(e, "listing tables missing from the publication"))?;
        let filter = TableFilter::new(patterns);
        let candidates: HashMap<u32, (String, String, Option<u32>)> = rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, u32>(0),
                    (
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                        r.get::<_, Option<u32>>(3),
                    ),
                )
            })
            .filter(|(_, (s, t, _))| filter.matches(s, t))
            .collect();
        let mut out: Vec<(String, String)> = candidates
            .values()
            .filter(|(_, _, parent)| !parent.is_some_and(|p| candidates.contains_key(&p)))
            .map(|(s, t, _)| (s.clone(), t.clone()))
            .collect();
        out.sort();
        Ok(out)
    }
}

/// `ALTER PUBLICATION "p" ADD TABLE "s"."t", …;`: the statement that publishes `tables`.
pub fn add_tables_sql(publication: &str, tables: &[(String, String)]) -> String {
    let list: Vec<String> = tables.iter().map(|(s, t)| qualified(s, t)).collect();
    format!(
        "ALTER PUBLICATION {} ADD TABLE {};",
        quote_ident(publication),
        list.join(", ")
    )
}

/// `schema.table, …` for messages.
pub fn table_names(tables: &[(String, String)]) -> String {
    tables
        .iter()
        .map(|(s, t)| format!("{s}.{t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Logs a warning naming the tables `source.tables` selects that the publication leaves out
/// ([`Catalog::unpublished_matching_tables`]). `run` calls it at start and keeps going: the
/// other tables replicate fine. A failure to find out is logged, never fatal.
pub async fn warn_unpublished(catalog: &Catalog, publication: &str, patterns: &[String]) {
    match catalog.unpublished_matching_tables(publication, patterns).await {
        Ok(tables) if !tables.is_empty() => tracing::warn!(
            "{} match source.tables but are not in publication `{publication}`: they are not replicated (hint: {})",
            table_names(&tables),
            add_tables_sql(publication, &tables)
        ),
        Ok(_) => {}
        Err(e) => tracing::debug!("looking for tables missing from the publication: {e}"),
    }
}

/// Appends the row filter to a scan's WHERE clause: `where_clause` is empty or starts with
/// ` WHERE ` (as [`crate::load::plan::chunk_filter`] returns it); the result likewise.
pub fn with_row_filter(where_clause: &str, row_filter: Option<&str>) -> String {
    match row_filter {
        None => where_clause.to_string(),
        Some(f) if where_clause.is_empty() => format!(" WHERE ({f})"),
        Some(f) => format!("{where_clause} AND ({f})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_filter_joins_the_chunk_filter() {
        assert_eq!(with_row_filter("", None), "");
        assert_eq!(
            with_row_filter("", Some("(c = 'NG'::text)")),
            " WHERE ((c = 'NG'::text))"
        );
        assert_eq!(
            with_row_filter(" WHERE ctid >= '(1,0)'::tid", Some("a OR b")),
            " WHERE ctid >= '(1,0)'::tid AND (a OR b)"
        );
        assert_eq!(with_row_filter(" WHERE x", None), " WHERE x");
    }

    #[test]
    fn statements_quote_names() {
        let t = vec![
            ("public".to_string(), "c".to_string()),
            ("s".to_string(), "We\"ird".to_string()),
        ];
        assert_eq!(
            add_tables_sql("p", &t),
            "ALTER PUBLICATION \"p\" ADD TABLE \"public\".\"c\", \"s\".\"We\"\"ird\";"
        );
        assert_eq!(table_names(&t), "public.c, s.We\"ird");
    }
}
