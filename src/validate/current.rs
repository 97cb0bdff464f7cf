//! A table compared as it is now, without a snapshot: for `pgcdc demo` and the integration
//! tests, which first make sure the target caught up with a source that no longer changes.
//! `pgcdc validate` compares at a snapshot instead ([`super::table`]); both end in the one
//! comparer ([`super::compare`]).

use std::path::Path;
use std::sync::Arc;

use super::canonical::{canonical_rows, read_source_rows};
use super::compare::{compare_keyed, TableDiff};
use super::materialize::{materialize_table, project};
use crate::model::TableSchema;
use crate::error::{Error, Result};

/// What [`compare_current`] found.
#[derive(Debug)]
pub struct CurrentComparison {
    /// Source against the materialised target, by `table.key`.
    pub diff: TableDiff,
    /// `(_lsn, _seq)` pairs written more than once (SPEC 2.2: must be empty), one entry per
    /// repeated occurrence, as [`super::materialize::materialize_rows`] reports them.
    pub duplicates: Vec<(i64, i64)>,
    /// Parquet files and change rows read.
    pub files: usize,
    pub change_rows: usize,
}

/// Reads `table`'s columns (`table.columns`, keyed by `table.key`) from the source through
/// `client` — with `WHERE row_filter` when given, partitions and inheritance children
/// included — and compares them with the target table directory `dir` (see
/// [`crate::sink::parquet::naming::table_dir`]) materialised in full.
///
/// Errors are reading errors (the query, a value the type mapping rejects, a Parquet file),
/// never differences: those are in [`CurrentComparison::diff`] and `duplicates`.
pub async fn compare_current(
    client: &tokio_postgres::Client,
    table: &Arc<TableSchema>,
    dir: &Path,
    row_filter: Option<&str>,
) -> Result<CurrentComparison> {
    let cols: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let key: Vec<String> = table.key.iter().map(|&i| cols[i].clone()).collect();
    let text = read_source_rows(client, table, false, row_filter).await?.all().await?;
    let source = canonical_rows(table, &text)?;
    drop(text);
    let dir = dir.to_path_buf();
    let m = tokio::task::spawn_blocking(move || materialize_table(&dir, None))
        .await
        .map_err(|e| {
            Error::runtime(format!(
                "materialising {}.{}: {e}",
                table.schema, table.name
            ))
        })??;
    let target = project(&m.rows, &cols);
    Ok(CurrentComparison {
        diff: compare_keyed(&cols, &key, &source, &target),
        duplicates: m.duplicates,
        files: m.files,
        change_rows: m.change_rows,
    })
}
