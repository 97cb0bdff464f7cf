//! Comparing the two materialised sides of one table ([`super::materialise::Side`]) into a
//! [`TableReport`]: rows only in DMS, only in pgcdc, differing (same key, some value
//! differs) with every differing column, and the likely reasons ([`super::normalise::likely_reason`],
//! and TRUNCATE, which DMS does not capture).

use std::collections::BTreeMap;

use serde::Serialize;

use super::materialise::{Changes, Side};
use super::normalise::{likely_reason, Kind};
use crate::model::TableSchema;
use crate::validate::compare::{as_map, shorten};

/// Examples kept per kind and table.
pub const EXAMPLES_PER_KIND: usize = 10;

/// What one table's comparison found (its JSON form is documented in the README).
#[derive(Debug, Serialize)]
pub struct TableReport {
    /// `schema.table`.
    pub table: String,
    /// The key columns rows are matched by (all columns: compared as a multiset).
    pub key: Vec<String>,
    pub dms_files: usize,
    pub pgcdc_files: usize,
    pub dms_rows: usize,
    pub pgcdc_rows: usize,
    /// Rows equal on both sides.
    pub matching: usize,
    pub only_in_dms: usize,
    pub only_in_pgcdc: usize,
    /// Same key, some value differs.
    pub differing: usize,
    /// Column → how many differing rows differ in it.
    pub differing_columns: BTreeMap<String, usize>,
    pub dms_changes: Changes,
    pub pgcdc_changes: Changes,
    /// Likely reason → how many cells (or rows, for TRUNCATE) it explains.
    pub reasons: BTreeMap<String, usize>,
    /// Up to [`EXAMPLES_PER_KIND`] of each kind, in the order only_in_dms, only_in_pgcdc,
    /// differing, each in key order.
    pub examples: Vec<Example>,
}

impl TableReport {
    pub fn is_equal(&self) -> bool {
        self.only_in_dms == 0 && self.only_in_pgcdc == 0 && self.differing == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExampleKind {
    OnlyInDms,
    OnlyInPgcdc,
    Differing,
}

/// One row that differs.
#[derive(Debug, Serialize)]
pub struct Example {
    pub kind: ExampleKind,
    /// The row's key values (shortened).
    #[serde(serialize_with = "as_map")]
    pub key: Vec<(String, Option<String>)>,
    /// `differing`: every column that differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<CellDiff>,
}

/// A differing cell: both values (shortened) and the likely reason, if known.
#[derive(Debug, Serialize)]
pub struct CellDiff {
    pub column: String,
    pub dms: Option<String>,
    pub pgcdc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Compares `dms` with `pgcdc` for `table` (values in its column order, of `kinds`).
pub fn diff(table: &TableSchema, kinds: &[Kind], dms: &Side, pgcdc: &Side) -> TableReport {
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let key_idx: Vec<usize> = if table.key.is_empty() {
        (0..names.len()).collect()
    } else {
        table.key.clone()
    };
    let key_names: Vec<String> = key_idx.iter().map(|&i| names[i].clone()).collect();
    let mut r = TableReport {
        table: table.qualified_name(),
        key: key_names.clone(),
        dms_files: dms.files,
        pgcdc_files: pgcdc.files,
        dms_rows: dms.row_count(),
        pgcdc_rows: pgcdc.row_count(),
        matching: 0,
        only_in_dms: 0,
        only_in_pgcdc: 0,
        differing: 0,
        differing_columns: BTreeMap::new(),
        dms_changes: dms.changes,
        pgcdc_changes: pgcdc.changes,
        reasons: BTreeMap::new(),
        examples: Vec::new(),
    };
    let named = |k: &[Option<String>]| -> Vec<(String, Option<String>)> {
        key_names
            .iter()
            .cloned()
            .zip(k.iter().map(shorten))
            .collect()
    };
    let mut only_dms = Vec::new();
    let mut only_pgcdc = Vec::new();
    let mut differing = Vec::new();
    for (k, (drow, dn)) in &dms.rows {
        match pgcdc.rows.get(k) {
            None => {
                r.only_in_dms += dn;
                only_dms.push(k);
            }
            Some((prow, pn)) => {
                r.matching += dn.min(pn);
                if dn > pn {
                    r.only_in_dms += dn - pn;
                    only_dms.push(k);
                } else if pn > dn {
                    r.only_in_pgcdc += pn - dn;
                    only_pgcdc.push(k);
                }
                if drow != prow {
                    r.matching -= dn.min(pn);
                    r.differing += 1;
                    let mut cells = Vec::new();
                    for i in (0..names.len()).filter(|&i| drow[i] != prow[i]) {
                        *r.differing_columns.entry(names[i].clone()).or_insert(0) += 1;
                        let reason =
                            likely_reason(kinds[i], drow[i].as_deref(), prow[i].as_deref());
                        if let Some(reason) = &reason {
                            *r.reasons.entry(reason.clone()).or_insert(0) += 1;
                        }
                        cells.push(CellDiff {
                            column: names[i].clone(),
                            dms: shorten(&drow[i]),
                            pgcdc: shorten(&prow[i]),
                            reason,
                        });
                    }
                    differing.push((k, cells));
                }
            }
        }
    }
    for (k, (_, pn)) in &pgcdc.rows {
        if !dms.rows.contains_key(k) {
            r.only_in_pgcdc += pn;
            only_pgcdc.push(k);
        }
    }
    only_pgcdc.sort();
    if pgcdc.changes.truncate > 0 && r.only_in_dms > 0 {
        r.reasons.insert(
            format!(
                "pgcdc saw {} TRUNCATE(s); DMS does not capture TRUNCATE and keeps the rows",
                pgcdc.changes.truncate
            ),
            r.only_in_dms,
        );
    }
    for (kind, keys) in [
        (ExampleKind::OnlyInDms, &only_dms),
        (ExampleKind::OnlyInPgcdc, &only_pgcdc),
    ] {
        for k in keys.iter().take(EXAMPLES_PER_KIND) {
            r.examples.push(Example {
                kind,
                key: named(k),
                columns: Vec::new(),
            });
        }
    }
    for (k, cells) in differing.into_iter().take(EXAMPLES_PER_KIND) {
        r.examples.push(Example {
            kind: ExampleKind::Differing,
            key: named(k),
            columns: cells,
        });
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ColumnSchema, PgType};

    fn side(rows: &[(&str, &str)]) -> Side {
        let mut s = Side::default();
        for (k, v) in rows {
            let row = vec![Some(k.to_string()), Some(v.to_string())];
            s.rows.insert(vec![Some(k.to_string())], (row, 1));
        }
        s
    }

    #[test]
    fn rows_on_one_side_and_differing_cells_are_named() {
        let col = |name: &str| ColumnSchema {
            name: name.into(),
            type_oid: 25,
            type_modifier: -1,
            pg_type: PgType::Text,
            replica_identity: false,
            attnum: None,
            missing: None,
        };
        let t = TableSchema {
            relid: 1,
            schema: "s".into(),
            name: "t".into(),
            columns: vec![col("id"), col("v")],
            key: vec![0],
            replica_identity: b'd',
            relfilenode: None,
        };
        let dms = side(&[("1", "a"), ("2", "abc"), ("3", "x")]);
        let mut ours = side(&[("1", "a"), ("2", "abcdef"), ("4", "y")]);
        ours.changes.truncate = 1;
        let r = diff(&t, &[Kind::Text, Kind::Text], &dms, &ours);
        assert_eq!(
            (r.matching, r.only_in_dms, r.only_in_pgcdc, r.differing),
            (1, 1, 1, 1)
        );
        assert!(!r.is_equal());
        let kinds: Vec<ExampleKind> = r.examples.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                ExampleKind::OnlyInDms,
                ExampleKind::OnlyInPgcdc,
                ExampleKind::Differing
            ]
        );
        let d = &r.examples[2];
        assert_eq!(d.key, vec![("id".to_string(), Some("2".to_string()))]);
        assert_eq!(d.columns[0].column, "v");
        assert!(d.columns[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("truncated"));
        assert_eq!(r.differing_columns["v"], 1);
        assert!(r.reasons.keys().any(|k| k.contains("TRUNCATE")));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["examples"][2]["key"]["id"], "2");
        assert!(diff(&t, &[Kind::Text, Kind::Text], &dms, &dms).is_equal());
    }
}
