//! `pgcdc dms compare -c FILE --dms URL [--ours URL]` (SPEC 7, issue 9 steps 4-5): DMS's S3
//! output beside pgcdc's, table by table and row by row, and why they differ.
//!
//! 1. [`files`] finds DMS's data files under `--dms` (a local directory or `s3://…`, read
//!    through [`crate::storage`] with the configuration's `[aws]`) and the table of each.
//! 2. The source catalog (the configuration's `[source]`) gives every table's columns, types
//!    and key: a header-less CSV file is read by them, and a table the source does not know is
//!    an error.
//! 3. [`read`] reads each file into rows of the source's columns, [`normalise`] puts every
//!    value in one representation, and [`materialise`] applies both sides: DMS in file then
//!    row order, pgcdc's native layout by the SPEC 5.1 rule (its `layout = "dms"` output like
//!    DMS's).
//! 4. [`diff`] compares them; [`text`], JSON (serde), [`markdown`] and [`html`] report.
//!
//! Memory: one table at a time, both sides materialised (every live row of the table, twice,
//! as strings), plus one file's rows while it is read (the native side: all of a table's
//! change rows, as `pgcdc validate`).

pub mod csv;
pub mod diff;
pub mod files;
pub mod html;
pub mod markdown;
pub mod materialise;
pub mod normalise;
pub mod read;
pub mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::aws::S3Options;
use crate::config::{Config, Layout, Location, ParquetSinkConfig, SinkConfig};
use crate::error::{Error, Result};
use crate::model::TableSchema;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use diff::TableReport;
use read::TableReader;

/// Where the two sides are.
pub struct Options {
    /// DMS's output folder (its `BucketFolder`).
    pub dms: String,
    /// pgcdc's output; default: the mirrored Parquet sink's target.
    pub ours: Option<String>,
}

/// The whole comparison (its JSON form is documented in the README).
#[derive(Debug, Serialize)]
pub struct Report {
    pub dms: String,
    pub pgcdc: String,
    /// `native` or `dms`: how pgcdc's output was read.
    pub pgcdc_layout: String,
    /// True when every table holds the same rows on both sides.
    pub equal: bool,
    /// Sorted by table.
    pub tables: Vec<TableReport>,
}

/// Compares DMS's output with pgcdc's (module documentation). Configuration errors (exit
/// 2): a URL that holds no DMS data file, a table the source does not know, no Parquet sink
/// and no `--ours`; runtime errors (exit 1): an unreadable file, an unreachable source.
pub async fn compare(config: &Config, opts: &Options) -> Result<Report> {
    let aws = S3Options {
        aws: config.aws.clone(),
        ..Default::default()
    };
    let dms_store = crate::storage::open(
        &Location::parse(&opts.dms).map_err(|e| e.context("--dms"))?,
        &aws,
    )?;
    let sink = mirrored_parquet_sink(config);
    let (ours_url, ours_store, native) = match (&opts.ours, sink) {
        (Some(url), _) => {
            let store = crate::storage::open(
                &Location::parse(url).map_err(|e| e.context("--ours"))?,
                &aws,
            )?;
            let native = tokio::task::block_in_place(|| files::is_native_layout(store.as_ref()))?;
            (url.clone(), store, native)
        }
        (None, Some(p)) => (
            p.url.clone(),
            crate::storage::open_sink_target(config, p)?,
            p.layout != Layout::Dms,
        ),
        (None, None) => {
            return Err(Error::config(
                "the configuration has no Parquet sink: nothing says where pgcdc's output is",
            )
            .with_hint("give --ours URL (a directory or s3://bucket/prefix/)"))
        }
    };
    let (null_value, ts_column) = sink.map_or((String::new(), None), |p| {
        (
            p.csv_null_value.clone().unwrap_or_default(),
            p.timestamp_column.clone(),
        )
    });

    let dms_files = tokio::task::block_in_place(|| files::list(dms_store.as_ref()))?;
    if dms_files.is_empty() {
        return Err(Error::config(format!("{} holds no DMS data file (.parquet, .csv, .csv.gz)", dms_store.describe())).with_hint(
            "give --dms the folder DMS writes into (the S3 target's BucketFolder), whose {schema}/{table}/ folders hold LOAD… and CDC files",
        ));
    }
    let (ours_native, ours_dms) = tokio::task::block_in_place(|| -> Result<_> {
        Ok(if native {
            (files::native_tables(ours_store.as_ref())?, BTreeMap::new())
        } else {
            (BTreeMap::new(), files::list(ours_store.as_ref())?)
        })
    })?;

    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let catalog = Catalog::new(crate::source::sql::connect(&info).await?);
    let names: BTreeSet<(String, String)> = dms_files
        .keys()
        .chain(ours_native.keys())
        .chain(ours_dms.keys())
        .cloned()
        .collect();
    let mut tables: BTreeMap<String, TableReport> = BTreeMap::new();
    for (schema, table) in names {
        let source = source_table(&catalog, &schema, &table).await?;
        let mut reader = TableReader::new(&source, null_value.clone(), ts_column.clone());
        let report = tokio::task::block_in_place(|| -> Result<TableReport> {
            let dms_side = materialise::dms_side(
                dms_store.as_ref(),
                dms_files
                    .get(&(schema.clone(), table.clone()))
                    .map_or(&[][..], |v| v),
                &mut reader,
            )?;
            let ours_side = if native {
                match ours_native.get(&(schema.clone(), table.clone())) {
                    Some(prefix) => materialise::native_side(ours_store.as_ref(), prefix, &reader)?,
                    None => materialise::Side::default(),
                }
            } else {
                let f = ours_dms
                    .get(&(schema.clone(), table.clone()))
                    .map_or(&[][..], |v| v);
                materialise::dms_side(ours_store.as_ref(), f, &mut reader)?
            };
            let (dms_side, ours_side) = (
                renormalise(dms_side, &reader),
                renormalise(ours_side, &reader),
            );
            Ok(diff::diff(&source, &reader.kinds, &dms_side, &ours_side))
        })?;
        // Two folders naming one source table (case) are one table.
        tables.entry(report.table.clone()).or_insert(report);
    }
    let tables: Vec<TableReport> = tables.into_values().collect();
    Ok(Report {
        dms: dms_store.describe(),
        pgcdc: ours_url,
        pgcdc_layout: if native { "native" } else { "dms" }.into(),
        equal: tables.iter().all(TableReport::is_equal),
        tables,
    })
}

/// The Parquet sink whose output is compared by default: `[dms] sink`, else the first.
fn mirrored_parquet_sink(config: &Config) -> Option<&ParquetSinkConfig> {
    fn parquet(s: &SinkConfig) -> Option<&ParquetSinkConfig> {
        match s {
            SinkConfig::Parquet(p) => Some(p),
            SinkConfig::Kinesis(_) => None,
        }
    }
    let chosen = config
        .dms
        .as_ref()
        .and_then(|d| d.sink)
        .and_then(|n| config.sinks.get(n.wrapping_sub(1)))
        .and_then(parquet);
    chosen.or_else(|| config.sinks.iter().find_map(parquet))
}

/// The source's table behind a DMS folder `schema/table`: by its exact name, else ignoring
/// case (DMS keeps an Oracle source's upper-case names). An unknown table is an error.
async fn source_table(catalog: &Catalog, schema: &str, table: &str) -> Result<Arc<TableSchema>> {
    let found = catalog
        .client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND lower(n.nspname) = lower($1) AND lower(c.relname) = lower($2)
              ORDER BY (n.nspname = $1 AND c.relname = $2) DESC, 1, 2",
            &[&schema, &table],
        )
        .await
        .map_err(|e| crate::source::sql::query_error("looking up a table", &e))?;
    let Some(row) = found.first() else {
        return Err(Error::config(format!("the output holds a folder {schema}/{table}, but the source has no table {schema}.{table}"))
            .with_hint("compare takes each table's columns and types from the source: point [source] url at the database DMS and pgcdc read, or move that folder aside"));
    };
    catalog
        .table_schema(&row.get::<_, String>(0), &row.get::<_, String>(1))
        .await
}

/// The side with its millisecond columns normalised again: a Parquet file read later may
/// have shown that DMS writes a column in milliseconds ([`TableReader::millis`]).
fn renormalise(side: materialise::Side, reader: &TableReader<'_>) -> materialise::Side {
    if !reader.millis.iter().any(|m| *m) {
        return side;
    }
    let key: Vec<usize> = if reader.table.key.is_empty() {
        (0..reader.kinds.len()).collect()
    } else {
        reader.table.key.clone()
    };
    let mut rows = BTreeMap::new();
    for (_, (row, n)) in side.rows {
        let row: Vec<Option<String>> = row
            .into_iter()
            .enumerate()
            .map(|(i, v)| normalise::normalise(reader.kinds[i], reader.millis[i], v))
            .collect();
        let k = key.iter().map(|&i| row[i].clone()).collect();
        rows.entry(k).or_insert((row, 0)).1 += n;
    }
    materialise::Side { rows, ..side }
}
