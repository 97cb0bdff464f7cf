//! Validating one table (step 4 of [`super::run`]): its source rows read in the snapshot,
//! its target materialised up to the validation LSN, compared partition by partition
//! (`partitioned.rs`).

use super::canonical::read_published_rows;
use super::materialize::{read_stored_table_rows, ChangeRow};
use super::partitioned::compare_table;
use super::report::{CompareBy, Outcome, TableReport};
use crate::error::{Error, Result};
use crate::model::Lsn;
use crate::sink::parquet::naming;
use crate::source::catalog::Catalog;
use crate::source::publication::PublishedTable;
use crate::source::sql;

/// Compares `published` (its published columns shaped by the rules, and the rows its row
/// filter keeps) as the snapshot `snap` sees it with the `target` materialised up to `v`
/// (`_lsn < v`). The source is read under its source names, the target under the output's
/// (`published.schema`). Errors are reading errors (catalog, Parquet), not differences:
/// those are in the report.
pub(super) async fn validate_table(
    snap: &Catalog,
    target: &dyn crate::storage::Storage,
    published: &PublishedTable,
    v: Lsn,
    letters: Option<&crate::sink::dead_letter::DeadLetters>,
) -> Result<TableReport> {
    let table = &published.schema;
    let cols: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let key: Vec<String> = table.key.iter().map(|&i| cols[i].clone()).collect();
    let whole_row = table.replica_identity == b'f'
        && table.key.len() == cols.len()
        && !has_key_index(snap, table.relid).await?;
    let not_compared = snap.generated_columns(table.relid).await?;
    let report = |key, outcome| {
        TableReport::new(
            table.schema.clone(),
            table.name.clone(),
            key,
            not_compared,
            outcome,
        )
    };
    if key.is_empty() {
        return Ok(report(
            key,
            Outcome::NotValidated {
                reason: "no primary key or replica identity".to_string(),
            },
        ));
    }

    // The source, in the snapshot.
    let relkind = snap
        .client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE oid = $1",
            &[&table.relid],
        )
        .await
        .map_err(|e| Error::runtime(format!("reading pg_class: {}", sql::db_error_text(&e))))?;
    let relkind: String = relkind.get(0);
    // A partitioned table (published via its root) holds its partitions' rows; any other
    // table only its own (inheritance children are published and written separately).
    let source = read_published_rows(&snap.client, published, relkind != "p").await?;
    let source_bytes = super::partitioned::source_bytes(snap, table.relid, &relkind).await;

    // The target, up to V: `_lsn < V` (V is a commit LSN of no transaction in the snapshot).
    let up_to = v.0 as i64 - 1;
    let compared = compare_table(source, source_bytes, target, table, whole_row, up_to, letters).await?;
    let by = if whole_row { CompareBy::WholeRow } else { CompareBy::Key };
    let mut report = report(
        key,
        Outcome::Compared {
            by,
            files: compared.files,
            change_rows: compared.change_rows,
            duplicates: compared.duplicates,
            diff: compared.diff,
        },
    );
    report.dead_lettered = compared.dead_lettered;
    Ok(report)
}

/// True when the table has a primary key or a replica identity index (then the key is that,
/// even if it happens to cover every column).
async fn has_key_index(snap: &Catalog, relid: u32) -> Result<bool> {
    let row = snap
        .client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = $1 AND (indisprimary OR indisreplident))", &[&relid])
        .await
        .map_err(|e| Error::runtime(format!("reading pg_index: {}", sql::db_error_text(&e))))?;
    Ok(row.get(0))
}

/// `(_lsn, _seq)` pairs that occur more than once, sorted, each once (the in-memory form
/// of [`super::target_scan::TargetScan::duplicates`]).
#[cfg(test)]
fn duplicates(rows: &[ChangeRow]) -> Vec<(i64, i64)> {
    repeated_pairs(rows.iter().map(|r| (r.lsn, r.seq)).collect())
}

/// The pairs of `pairs` that occur more than once, sorted, each once.
pub(super) fn repeated_pairs(mut pairs: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    pairs.sort_unstable();
    let mut out: Vec<(i64, i64)> = pairs
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    out.dedup();
    out
}

/// Every change row of one table in the target, the number of files read and the key
/// named in the newest file, read through the target's [`crate::storage::Storage`].
pub fn read_target_table(
    target: &dyn crate::storage::Storage,
    schema: &str,
    table: &str,
) -> Result<(Vec<ChangeRow>, usize, Vec<String>)> {
    read_stored_table_rows(target, &naming::table_prefix(schema, table))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::RowOp;

    #[test]
    fn duplicate_pairs_are_found_once() {
        let change = |lsn, seq| ChangeRow {
            op: RowOp::Insert,
            lsn,
            seq,
            unchanged: Vec::new(),
            values: BTreeMap::new(),
            key: Default::default(),
        };
        let rows = vec![change(1, 0), change(1, 0), change(1, 0), change(1, 1)];
        assert_eq!(duplicates(&rows), vec![(1, 0)]);
    }
}
