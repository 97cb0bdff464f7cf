//! The one comparison of a table's source rows with its materialised target, used by
//! `pgcdc validate` (SPEC 6), `pgcdc demo` and the integration tests.
//!
//! Both sides are canonical strings: the source read through the output's type mapping
//! ([`super::canonical`]), the target materialised with the SPEC 5.1 rule
//! ([`super::materialize`]) and projected onto the source's columns. A table with a key is
//! compared by key ([`compare_keyed`]); a table without one (REPLICA IDENTITY FULL) as a
//! multiset of whole rows ([`compare_multisets`]). Either gives a [`TableDiff`]: counts, and a
//! few examples of each kind of difference in key order, so the same input always gives the
//! same report.

use std::collections::HashMap;

use serde::Serialize;

use super::diff_parts::DiffParts;
use crate::model::Lsn;

/// Examples kept per kind (missing, extra, differing, duplicate) and table.
pub const EXAMPLES_PER_KIND: usize = 5;
/// Differing columns shown per differing row.
pub const COLUMNS_PER_EXAMPLE: usize = 3;
/// Values in examples longer than this (in characters) are shortened.
const VALUE_CHARS: usize = 120;

/// One row's values (or a key's), as canonical strings; `None` is SQL NULL.
pub type Row = Vec<Option<String>>;
/// Key → the row's values in column order (the key's values are among them).
pub type Rows = HashMap<Row, Row>;
/// Whole row → how often it occurs (tables without a key).
pub type RowCounts = HashMap<Row, usize>;

/// What a comparison found. Counts are rows (for whole-row comparison: occurrences).
#[derive(Debug, Default, Serialize)]
pub struct TableDiff {
    /// Rows in the source.
    pub source_rows: usize,
    /// Rows in the materialised target.
    pub target_rows: usize,
    /// In the source, not in the target.
    pub missing: usize,
    /// In the target, not in the source.
    pub extra: usize,
    /// Same key, different values (keyed comparison only).
    pub differing: usize,
    /// Up to [`EXAMPLES_PER_KIND`] examples of each kind, kinds in the order missing,
    /// extra, differing, each in key order.
    pub examples: Vec<Example>,
}

impl TableDiff {
    /// True when source and target hold the same rows.
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.differing == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExampleKind {
    /// In the source, not in the target.
    Missing,
    /// In the target, not in the source.
    Extra,
    /// Same key, different values.
    Differing,
    /// A `(_lsn, _seq)` pair written more than once.
    Duplicate,
}

/// One difference, as `pgcdc validate` reports it (its JSON shape is part of the report).
#[derive(Debug, Serialize)]
pub struct Example {
    pub kind: ExampleKind,
    /// The row's key (for whole-row comparison: every column), as output values.
    #[serde(serialize_with = "as_map")]
    pub key: Vec<(String, Option<String>)>,
    /// For `differing`: the first columns that differ (at most [`COLUMNS_PER_EXAMPLE`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDiff>,
    /// For whole-row comparison: how often the row occurs in the source and the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_count: Option<usize>,
    /// For `duplicate`: the pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// A column that differs between source and target (values shortened).
#[derive(Debug, Serialize)]
pub struct ColumnDiff {
    pub column: String,
    pub source: Option<String>,
    pub target: Option<String>,
}

pub(crate) fn as_map<S: serde::Serializer>(
    v: &[(String, Option<String>)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, v)| (k, v)))
}

impl Example {
    pub(super) fn new(kind: ExampleKind, key: Vec<(String, Option<String>)>) -> Example {
        Example {
            kind,
            key,
            columns: Vec::new(),
            source_count: None,
            target_count: None,
            lsn: None,
            seq: None,
        }
    }

    /// The example of a `(_lsn, _seq)` pair found more than once in the target.
    pub fn duplicate(lsn: Lsn, seq: i64) -> Example {
        Example {
            lsn: Some(lsn),
            seq: Some(seq),
            ..Example::new(ExampleKind::Duplicate, Vec::new())
        }
    }
}

/// Compares a table by key.
///
/// `columns` names the values of every row in order, `key` the key's columns in order (used
/// to name examples). `source` and `target` map a key to its row; the target is the
/// materialised state projected onto `columns` ([`super::materialize::project`]). Rows are
/// matched by key and differ when any value differs. Never fails.
pub fn compare_keyed(
    columns: &[String],
    key: &[String],
    source: &Rows,
    target: &Rows,
) -> TableDiff {
    let mut parts = DiffParts::default();
    parts.add_keyed(source, target);
    parts.finish(columns, key)
}

/// Compares a table without a key as multisets of whole rows (values in `columns` order).
///
/// A row occurring more often in the source than in the target counts as missing that many
/// times, and the other way round as extra; `differing` stays 0. Examples name the whole row
/// and both counts. Never fails.
pub fn compare_multisets(columns: &[String], source: &RowCounts, target: &RowCounts) -> TableDiff {
    let mut parts = DiffParts::default();
    parts.add_multisets(source, target);
    parts.finish(columns, columns)
}

/// Counts equal rows: the source side of [`compare_multisets`].
pub fn count_rows(rows: Vec<Row>) -> RowCounts {
    let mut counts = HashMap::with_capacity(rows.len());
    for r in rows {
        *counts.entry(r).or_insert(0) += 1;
    }
    counts
}

pub(crate) fn shorten(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| match s.char_indices().nth(VALUE_CHARS) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.clone(),
    })
}

pub(super) fn named(names: &[String], values: &[Option<String>]) -> Vec<(String, Option<String>)> {
    names
        .iter()
        .cloned()
        .zip(values.iter().map(shorten))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, v: &str) -> Row {
        vec![Some(id.to_string()), Some(v.to_string())]
    }

    #[test]
    fn whole_rows_are_compared_as_multisets() {
        let cols = vec!["id".to_string(), "v".to_string()];
        let source = count_rows(vec![row("1", "a"), row("1", "a"), row("2", "b")]);
        let target = count_rows(vec![row("1", "a"), row("2", "b")]);
        let diff = compare_multisets(&cols, &source, &target);
        assert_eq!(
            (diff.source_rows, diff.target_rows, diff.missing, diff.extra),
            (3, 2, 1, 0)
        );
        assert_eq!(diff.examples[0].source_count, Some(2));
        assert_eq!(diff.examples[0].target_count, Some(1));
        assert!(!diff.is_clean());
    }

    #[test]
    fn keyed_comparison_names_keys_and_columns_in_order() {
        let cols = vec!["id".to_string(), "v".to_string(), "w".to_string()];
        let key = vec!["id".to_string()];
        let k = |s: &str| vec![Some(s.to_string())];
        let r = |a: &str, b: &str, c: &str| {
            vec![
                Some(a.to_string()),
                Some(b.to_string()),
                Some(c.to_string()),
            ]
        };
        let source: Rows = [
            (k("1"), r("1", "x", "y")),
            (k("2"), r("2", "x", "y")),
            (k("3"), r("3", "x", "y")),
        ]
        .into();
        let target: Rows = [
            (k("1"), r("1", "x", "y")),
            (k("2"), r("2", "X", "Y")),
            (k("4"), r("4", "x", "y")),
        ]
        .into();
        let diff = compare_keyed(&cols, &key, &source, &target);
        assert_eq!((diff.missing, diff.extra, diff.differing), (1, 1, 1));
        let kinds: Vec<ExampleKind> = diff.examples.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ExampleKind::Missing,
                ExampleKind::Extra,
                ExampleKind::Differing
            ]
        );
        let d = diff
            .examples
            .iter()
            .find(|e| e.kind == ExampleKind::Differing)
            .unwrap();
        assert_eq!(d.key, vec![("id".to_string(), Some("2".to_string()))]);
        assert_eq!(
            d.columns
                .iter()
                .map(|c| c.column.as_str())
                .collect::<Vec<_>>(),
            vec!["v", "w"]
        );
        let json = serde_json::to_value(d).unwrap();
        assert_eq!(json["key"]["id"], "2");
    }

    #[test]
    fn equal_tables_are_clean_and_long_values_shortened() {
        let cols = vec!["id".to_string(), "v".to_string()];
        let rows: Rows = [(vec![Some("1".to_string())], row("1", "a"))].into();
        assert!(compare_keyed(&cols, &cols[..1], &rows, &rows).is_clean());
        let long = "x".repeat(200);
        assert_eq!(
            shorten(&Some(long)).unwrap(),
            format!("{}… (200 bytes)", "x".repeat(VALUE_CHARS))
        );
    }
}
