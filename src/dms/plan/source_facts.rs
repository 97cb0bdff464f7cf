//! What `dms plan` reads from the source: the tables the DMS task selects, their columns and
//! keys, and the largest value of every column DMS treats as a LOB. These facts size the
//! task's LOB settings and fill DIFFERENCES.md; they are read once, over one SQL session.

use crate::config::{Config, TableFilter};
use crate::error::{Error, Result};
use crate::source::catalog::Catalog;
use crate::source::quote::{qualified, quote_ident};

/// One column of a selected table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnFacts {
    pub name: String,
    /// `format_type()`: `character varying(20)`, `numeric`, `text[]`, ...
    pub type_text: String,
    /// The base type's `typname` (a domain's base type), `_`-prefixed for arrays.
    pub base_type: String,
    /// The largest value in bytes (`octet_length` of a bytea, of the text form otherwise), for the columns DMS
    /// treats as LOBs ([`is_lob`]); `None` otherwise or when the table is empty.
    pub largest: Option<i64>,
}

/// One table the task selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFacts {
    pub schema: String,
    pub name: String,
    pub has_primary_key: bool,
    /// `pg_class.relreplident`: `d`, `n`, `f` or `i`.
    pub replica_identity: char,
    pub columns: Vec<ColumnFacts>,
}

impl TableFacts {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Everything `plan` knows about the source.
#[derive(Debug, Clone, Default)]
pub struct SourceFacts {
    pub server_version_num: u32,
    /// The `pglogical` extension is installed in the database (DMS then decodes with it).
    pub has_pglogical: bool,
    /// The publication exists: tables are the publication's that match `source.tables`.
    pub publication_exists: bool,
    pub tables: Vec<TableFacts>,
    /// Tables matching `source.tables` that the publication does not publish: pgcdc never
    /// sees them, so the DMS task excludes them.
    pub unpublished: Vec<(String, String)>,
}

/// Whether DMS treats a column of this base type as a LOB when reading PostgreSQL: text,
/// bytea, json, jsonb, xml, arrays, and varchar/bpchar without a length.
pub fn is_lob(base_type: &str, type_text: &str) -> bool {
    base_type.starts_with('_')
        || matches!(
            base_type,
            "text" | "bytea" | "json" | "jsonb" | "xml" | "citext"
        )
        || type_text == "character varying"
}

/// Reads the facts of `config`'s tables. The tables are the publication's tables matching
/// `source.tables`; without the publication (before `pgcdc setup`), the database's ordinary
/// and partitioned tables matching `source.tables` (an error when it is empty: nothing
/// would say which tables). Reading the largest values scans each LOB column once.
pub async fn read(config: &Config, catalog: &Catalog) -> Result<SourceFacts> {
    let mut facts = SourceFacts {
        server_version_num: catalog.server_version_num().await?,
        ..Default::default()
    };
    let q = |what: &'static str| {
        move |e: tokio_postgres::Error| crate::source::sql::query_error(what, &e)
    };
    facts.has_pglogical = catalog
        .client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pglogical')",
            &[],
        )
        .await
        .map_err(q("reading pg_extension"))?
        .get(0);
    let publication = &config.source.publication;
    facts.publication_exists = catalog.publication_exists(publication).await?;
    let names: Vec<(String, String)> = if facts.publication_exists {
        facts.unpublished = catalog
            .unpublished_matching_tables(publication, &config.source.tables)
            .await?;
        crate::load::selected_tables(config, catalog).await?
    } else {
        if config.source.tables.is_empty() {
            return Err(Error::config(format!(
                "publication \"{publication}\" does not exist and source.tables is empty: nothing says which tables the DMS task selects"
            ))
            .with_hint("run `pgcdc setup -c FILE` first, or list the tables in source.tables"));
        }
        let filter = TableFilter::new(&config.source.tables);
        catalog
            .client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p'
                    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
                  ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(q("listing tables"))?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .filter(|(s, t)| filter.matches(s, t))
            .collect()
    };
    for (schema, name) in names {
        facts.tables.push(table(catalog, &schema, &name).await?);
    }
    Ok(facts)
}

async fn table(catalog: &Catalog, schema: &str, name: &str) -> Result<TableFacts> {
    let what = format!("reading the columns of {schema}.{name}");
    let err = |e: tokio_postgres::Error| crate::source::sql::query_error(&what, &e);
    let head = catalog
        .client
        .query_one(
            "SELECT c.relreplident::text, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &name],
        )
        .await
        .map_err(err)?;
    let rows = catalog
        .client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
                    COALESCE(bt.typname, t.typname)::text
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_type t ON t.oid = a.atttypid
               LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&schema, &name],
        )
        .await
        .map_err(err)?;
    let mut columns: Vec<ColumnFacts> = rows
        .iter()
        .map(|r| ColumnFacts {
            name: r.get(0),
            type_text: r.get(1),
            base_type: r.get(2),
            largest: None,
        })
        .collect();
    let lobs: Vec<usize> = (0..columns.len())
        .filter(|&i| is_lob(&columns[i].base_type, &columns[i].type_text))
        .collect();
    if !lobs.is_empty() {
        // bytea in bytes, everything else in bytes of its UTF-8 text form.
        let list: Vec<String> = lobs
            .iter()
            .map(|&i| {
                let c = &columns[i];
                let cast = if c.base_type == "bytea" { "" } else { "::text" };
                format!("max(octet_length({}{cast}))::int8", quote_ident(&c.name))
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {}",
            list.join(", "),
            qualified(schema, name)
        );
        let row = catalog.client.query_one(&sql, &[]).await.map_err(|e| {
            crate::source::sql::query_error(
                format!("reading the largest values of {schema}.{name}"),
                &e,
            )
        })?;
        for (k, &i) in lobs.iter().enumerate() {
            columns[i].largest = row.get::<_, Option<i64>>(k);
        }
    }
    let replident: String = head.get(0);
    Ok(TableFacts {
        schema: schema.into(),
        name: name.into(),
        has_primary_key: head.get(1),
        replica_identity: replident.chars().next().unwrap_or('d'),
        columns,
    })
}
