//! What `pgcdc validate` reports (its `--format json` shape is a user-facing contract), and
//! the one place a [`TableReport`] and the [`ValidateReport`] are built.

use serde::Serialize;

pub use super::compare::{ColumnDiff, Example, ExampleKind};
use super::compare::{TableDiff, EXAMPLES_PER_KIND};
use crate::model::Lsn;

#[derive(Debug, Serialize)]
pub struct ValidateReport {
    /// The validation LSN: the snapshot's consistent point. Transactions that committed
    /// before it are compared, later ones are not.
    pub lsn: Lsn,
    /// The target compared (`file:///...`).
    pub target: String,
    /// The target's durable position when the comparison started.
    pub target_lsn: Option<Lsn>,
    /// Why the target was known to hold everything before `lsn`.
    pub target_ready: TargetReady,
    /// True when every validated table is identical (tables that cannot be validated do
    /// not count as differences) and no selected table is missing from the publication.
    pub clean: bool,
    pub tables: Vec<TableReport>,
}

impl ValidateReport {
    /// The report of the tables validated at `lsn`; works out `clean`.
    pub(super) fn new(
        lsn: Lsn,
        target: String,
        target_lsn: Option<Lsn>,
        target_ready: TargetReady,
        tables: Vec<TableReport>,
    ) -> ValidateReport {
        let clean = !tables
            .iter()
            .any(|r| r.has_differences() || r.status == TableStatus::NotPublished);
        ValidateReport {
            lsn,
            target,
            target_lsn,
            target_ready,
            clean,
            tables,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetReady {
    /// The checkpoint is at or past the validation LSN.
    Checkpoint,
    /// The checkpoint is behind, but nothing committed in between changed a validated table.
    NoChangesSinceCheckpoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    Identical,
    Different,
    NotValidated,
    /// Selected by `source.tables` but not in the publication: never replicated. Makes the
    /// report unclean (exit 3).
    NotPublished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareBy {
    /// Rows matched by key (primary key or replica identity index).
    Key,
    /// REPLICA IDENTITY FULL without a key: whole rows compared as multisets.
    WholeRow,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    pub schema: String,
    pub table: String,
    pub status: TableStatus,
    /// Why the table was not validated.
    pub reason: Option<String>,
    pub compared_by: Option<CompareBy>,
    /// Key columns (for `whole_row`: every column).
    pub key: Vec<String>,
    /// Generated columns: not sent by pgoutput, absent from the output, not compared.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_compared: Vec<String>,
    pub source_rows: usize,
    pub target_rows: usize,
    pub missing: usize,
    pub extra: usize,
    pub differing: usize,
    /// `(_lsn, _seq)` pairs found more than once in the target's files.
    pub duplicates: usize,
    /// Parquet files and change rows read for the table (all of them, also past the LSN).
    pub files: usize,
    pub change_rows: usize,
    /// Source rows with a value the output cannot hold, found as dead letters and left
    /// out of the comparison ([`super::dead_letters`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub dead_lettered: usize,
    /// A few examples of each kind of difference, in key order.
    pub examples: Vec<Example>,
}

/// How validating one table ended.
pub(super) enum Outcome {
    /// Selected by `source.tables`, left out by the publication (`reason` says how to add it).
    NotPublished { reason: String },
    /// Cannot be compared (no key and no full replica identity).
    NotValidated { reason: String },
    /// Compared.
    Compared {
        by: CompareBy,
        /// Parquet files and change rows read.
        files: usize,
        change_rows: usize,
        /// The `(_lsn, _seq)` pairs written more than once, sorted, each once.
        duplicates: Vec<(i64, i64)>,
        diff: TableDiff,
    },
}

impl TableReport {
    /// The report of `schema.table` with its `key` columns and the generated columns not
    /// compared. The status follows from the outcome: a compared table is `different` when
    /// the diff is not clean or the target has duplicate pairs (SPEC 2.2).
    pub(super) fn new(
        schema: String,
        table: String,
        key: Vec<String>,
        not_compared: Vec<String>,
        outcome: Outcome,
    ) -> TableReport {
        let (status, reason, compared_by, files, change_rows, duplicates, diff) = match outcome {
            Outcome::NotPublished { reason } => (
                TableStatus::NotPublished,
                Some(reason),
                None,
                0,
                0,
                Vec::new(),
                TableDiff::default(),
            ),
            Outcome::NotValidated { reason } => (
                TableStatus::NotValidated,
                Some(reason),
                None,
                0,
                0,
                Vec::new(),
                TableDiff::default(),
            ),
            Outcome::Compared {
                by,
                files,
                change_rows,
                duplicates,
                diff,
            } => {
                let status = if diff.is_clean() && duplicates.is_empty() {
                    TableStatus::Identical
                } else {
                    TableStatus::Different
                };
                (status, None, Some(by), files, change_rows, duplicates, diff)
            }
        };
        // Duplicates first, then the comparison's examples.
        let mut examples: Vec<Example> = duplicates
            .iter()
            .take(EXAMPLES_PER_KIND)
            .map(|&(lsn, seq)| Example::duplicate(Lsn(lsn as u64), seq))
            .collect();
        examples.extend(diff.examples);
        TableReport {
            schema,
            table,
            status,
            reason,
            compared_by,
            key,
            not_compared,
            source_rows: diff.source_rows,
            target_rows: diff.target_rows,
            missing: diff.missing,
            extra: diff.extra,
            differing: diff.differing,
            duplicates: duplicates.len(),
            files,
            change_rows,
            dead_lettered: 0,
            examples,
        }
    }

    pub fn name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn has_differences(&self) -> bool {
        self.missing + self.extra + self.differing + self.duplicates > 0
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_make_a_table_different_and_come_first() {
        let diff = TableDiff {
            source_rows: 1,
            target_rows: 1,
            ..TableDiff::default()
        };
        let outcome = Outcome::Compared {
            by: CompareBy::Key,
            files: 1,
            change_rows: 3,
            duplicates: vec![(16, 0)],
            diff,
        };
        let r = TableReport::new(
            "public".into(),
            "t".into(),
            vec!["id".into()],
            Vec::new(),
            outcome,
        );
        assert_eq!(
            (r.status, r.duplicates, r.examples[0].kind),
            (TableStatus::Different, 1, ExampleKind::Duplicate)
        );
        let report = ValidateReport::new(
            Lsn(32),
            "file:///x".into(),
            Some(Lsn(32)),
            TargetReady::Checkpoint,
            vec![r],
        );
        assert!(!report.clean);
    }

    #[test]
    fn a_table_not_published_makes_the_report_unclean() {
        let r = TableReport::new(
            "public".into(),
            "t".into(),
            Vec::new(),
            Vec::new(),
            Outcome::NotPublished { reason: "r".into() },
        );
        assert_eq!((r.status, r.compared_by), (TableStatus::NotPublished, None));
        let report = ValidateReport::new(
            Lsn(32),
            "file:///x".into(),
            None,
            TargetReady::Checkpoint,
            vec![r],
        );
        assert!(!report.clean);
    }
}
