//! A comparison added up over parts of a table: [`DiffParts`] takes the source and target
//! of one part at a time (rows of one key are always in the same part) and gives the same
//! [`TableDiff`] as comparing the whole table at once. The whole-table comparisons of
//! [`super::compare`] are one part.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use super::compare::{
    named, shorten, ColumnDiff, Example, ExampleKind, Row, RowCounts, Rows, TableDiff, COLUMNS_PER_EXAMPLE, EXAMPLES_PER_KIND,
};
use crate::error::Result;

/// What an example needs besides its key (or whole row).
enum Detail {
    None,
    /// A differing row: the source's and the target's values.
    Values(Row, Row),
    /// A whole row: how often it occurs in the source and the target.
    Counts(usize, usize),
}

/// The smallest [`EXAMPLES_PER_KIND`] keys offered, with their details, sorted.
#[derive(Default)]
struct Smallest(Vec<(Row, Detail)>);

impl Smallest {
    /// Keeps `key` when it is among the smallest so far (`detail` is only called then).
    fn offer(&mut self, key: &Row, detail: impl FnOnce() -> Result<Detail>) -> Result<()> {
        if self.0.len() >= EXAMPLES_PER_KIND && self.0.last().is_some_and(|(k, _)| k <= key) {
            return Ok(());
        }
        let at = self.0.partition_point(|(k, _)| k < key);
        self.0.insert(at, (key.clone(), detail()?));
        self.0.truncate(EXAMPLES_PER_KIND);
        Ok(())
    }
}

/// Counts and example candidates of a comparison, part by part.
#[derive(Default)]
pub struct DiffParts {
    source_rows: usize,
    target_rows: usize,
    missing: usize,
    extra: usize,
    differing: usize,
    kinds: [Smallest; 3],
}

impl DiffParts {
    /// Adds one part of a comparison by key: rows matched by key, differing when any value
    /// differs (see [`super::compare::compare_keyed`]).
    pub fn add_keyed(&mut self, source: &Rows, target: &Rows) {
        let same = |s: &Row, t: &Row| Ok(s == t);
        let row = |r: &Row| Ok(r.clone());
        self.add_keyed_with(source, target, same, row, row, row).expect("rows never fail");
    }

    /// [`DiffParts::add_keyed`] over any form of rows: `same` says whether a source and a
    /// target row are equal, `key_row`, `source_row` and `target_row` give the [`Row`]
    /// forms (called for differences only). Errors are those of the callbacks.
    pub fn add_keyed_with<K: Eq + Hash, S, T, H: BuildHasher>(
        &mut self,
        source: &HashMap<K, S, H>,
        target: &HashMap<K, T, H>,
        same: impl Fn(&S, &T) -> Result<bool>,
        key_row: impl Fn(&K) -> Result<Row>,
        source_row: impl Fn(&S) -> Result<Row>,
        target_row: impl Fn(&T) -> Result<Row>,
    ) -> Result<()> {
        self.source_rows += source.len();
        self.target_rows += target.len();
        let [missing, extra, differing] = &mut self.kinds;
        for (k, sv) in source {
            match target.get(k) {
                None => {
                    self.missing += 1;
                    missing.offer(&key_row(k)?, || Ok(Detail::None))?;
                }
                Some(tv) if !same(sv, tv)? => {
                    self.differing += 1;
                    differing.offer(&key_row(k)?, || Ok(Detail::Values(source_row(sv)?, target_row(tv)?)))?;
                }
                Some(_) => {}
            }
        }
        for k in target.keys().filter(|k| !source.contains_key(*k)) {
            self.extra += 1;
            extra.offer(&key_row(k)?, || Ok(Detail::None))?;
        }
        Ok(())
    }

    /// Adds one part of a comparison of whole-row multisets (see
    /// [`super::compare::compare_multisets`]).
    pub fn add_multisets(&mut self, source: &RowCounts, target: &RowCounts) {
        self.add_multisets_with(source, target, |r| Ok(r.clone())).expect("rows never fail");
    }

    /// [`DiffParts::add_multisets`] over any form of whole rows, `row` giving their [`Row`]
    /// form (called for differences only).
    pub fn add_multisets_with<K: Eq + Hash, H: BuildHasher>(
        &mut self,
        source: &HashMap<K, usize, H>,
        target: &HashMap<K, usize, H>,
        row: impl Fn(&K) -> Result<Row>,
    ) -> Result<()> {
        self.source_rows += source.values().sum::<usize>();
        self.target_rows += target.values().sum::<usize>();
        let count = |m: &HashMap<K, usize, H>, r: &K| m.get(r).copied().unwrap_or(0);
        let [missing, extra, _] = &mut self.kinds;
        for (r, &s) in source {
            let t = count(target, r);
            if s > t {
                self.missing += s - t;
                missing.offer(&row(r)?, || Ok(Detail::Counts(s, t)))?;
            }
        }
        for (r, &t) in target {
            let s = count(source, r);
            if t > s {
                self.extra += t - s;
                extra.offer(&row(r)?, || Ok(Detail::Counts(s, t)))?;
            }
        }
        Ok(())
    }

    /// Adds the parts `other` added (parts compared elsewhere, e.g. on another thread).
    pub fn merge(&mut self, other: DiffParts) {
        self.source_rows += other.source_rows;
        self.target_rows += other.target_rows;
        self.missing += other.missing;
        self.extra += other.extra;
        self.differing += other.differing;
        for (mine, theirs) in self.kinds.iter_mut().zip(other.kinds) {
            for (k, detail) in theirs.0 {
                let _ = mine.offer(&k, || Ok(detail));
            }
        }
    }

    /// The comparison of all parts added. `columns` names the values of every row, `key`
    /// the key's columns (for whole rows: `columns`).
    pub fn finish(self, columns: &[String], key: &[String]) -> TableDiff {
        let mut diff = TableDiff {
            source_rows: self.source_rows,
            target_rows: self.target_rows,
            missing: self.missing,
            extra: self.extra,
            differing: self.differing,
            examples: Vec::new(),
        };
        let kinds = [ExampleKind::Missing, ExampleKind::Extra, ExampleKind::Differing];
        for (kind, found) in kinds.into_iter().zip(self.kinds) {
            for (k, detail) in found.0 {
                let mut e = Example::new(kind, named(key, &k));
                match detail {
                    Detail::None => {}
                    Detail::Values(sv, tv) => {
                        e.columns = (0..columns.len())
                            .filter(|&i| sv[i] != tv[i])
                            .take(COLUMNS_PER_EXAMPLE)
                            .map(|i| ColumnDiff {
                                column: columns[i].clone(),
                                source: shorten(&sv[i]),
                                target: shorten(&tv[i]),
                            })
                            .collect();
                    }
                    Detail::Counts(s, t) => {
                        e.source_count = Some(s);
                        e.target_count = Some(t);
                    }
                }
                diff.examples.push(e);
            }
        }
        diff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::compare::{compare_keyed, compare_multisets, count_rows};

    fn r(a: usize, b: &str) -> Row {
        vec![Some(a.to_string()), Some(b.to_string())]
    }

    /// Any split of the keys into parts gives the whole table's report.
    #[test]
    fn parts_add_up_to_the_whole_comparison() {
        let cols = vec!["id".to_string(), "v".to_string()];
        let key = &cols[..1];
        let source: Rows = (0..40)
            .filter(|i| i % 7 != 0)
            .map(|i| (vec![Some(i.to_string())], r(i, "a")))
            .collect();
        let target: Rows = (0..45)
            .filter(|i| i % 5 != 0)
            .map(|i| (vec![Some(i.to_string())], r(i, if i % 3 == 0 { "b" } else { "a" })))
            .collect();
        let whole = serde_json::to_value(compare_keyed(&cols, key, &source, &target)).unwrap();
        let mut parts = DiffParts::default();
        for p in 0..3 {
            let part = |m: &Rows| -> Rows {
                m.iter()
                    .filter(|(k, _)| k[0].as_ref().unwrap().len() % 3 == p)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            parts.add_keyed(&part(&source), &part(&target));
        }
        assert_eq!(serde_json::to_value(parts.finish(&cols, key)).unwrap(), whole);

        let s = count_rows((0..30).map(|i| r(i % 9, "x")).collect());
        let t = count_rows((0..25).map(|i| r(i % 11, "x")).collect());
        let whole = serde_json::to_value(compare_multisets(&cols, &s, &t)).unwrap();
        let mut parts = DiffParts::default();
        for p in 0..2 {
            let part = |m: &RowCounts| -> RowCounts {
                m.iter()
                    .filter(|(k, _)| k[0].as_ref().unwrap().parse::<usize>().unwrap() % 2 == p)
                    .map(|(k, v)| (k.clone(), *v))
                    .collect()
            };
            parts.add_multisets(&part(&s), &part(&t));
        }
        assert_eq!(serde_json::to_value(parts.finish(&cols, &cols)).unwrap(), whole);
    }
}
