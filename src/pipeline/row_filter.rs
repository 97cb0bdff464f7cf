//! A rule's row filter applied by pgcdc, when the publication does not apply it (a server
//! before PostgreSQL 15, a filter reading columns outside the replica identity, a publication
//! `setup` has not updated).
//!
//! The filter is PostgreSQL's expression, evaluated by the server on the change's values
//! ([`crate::pipeline::relations::CatalogLookup::row_matches`]), so it means exactly what it
//! means in the full load's `WHERE`. Changes follow PostgreSQL's own semantics for
//! publication row filters:
//!
//! * insert: kept when the new row matches;
//! * delete: kept when the old row matched;
//! * update: old and new match → update; only the old → delete of the old row; only the
//!   new → insert of the new row; neither → nothing.
//!
//! The old row of an update is known when the stream carries it (`REPLICA IDENTITY FULL`),
//! or when the filter reads only identity columns (the key: sent when it changed, else equal
//! to the new row's). Otherwise (the filter reads other columns, which is why the server
//! could not apply it) an update is written as an update when the new row matches and as a
//! delete of its key when it does not, and a delete is always written: materialised, the
//! target is the same (a delete of a key it does not hold changes nothing), but a row moving
//! in shows as `U`, not `I`. `check` says so and names the fix (`REPLICA IDENTITY FULL`).
//! A value the stream did not send (an unchanged TOASTed column) counts as NULL.

use std::borrow::Cow;

use super::changes::{update_rows, RowOut};
use crate::error::Result;
use crate::model::{RowOp, TableSchema, TupleValue};
use crate::rules::columns::referenced_columns;
use crate::source::pgoutput::{OldKind, PgOutputMessage, Tuple};

/// A row filter pgcdc applies to one table.
#[derive(Debug, Clone)]
pub struct ClientFilter {
    /// The expression, over the table's source columns.
    pub expr: String,
    /// True when the old row of every update can be evaluated (see the module docs).
    pub exact: bool,
}

impl ClientFilter {
    /// The filter `expr` on `table` (source schema): exact under `REPLICA IDENTITY FULL` or
    /// when every column it reads is in the replica identity (the table's key).
    pub fn new(table: &TableSchema, expr: String) -> ClientFilter {
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let read = referenced_columns(&expr, &names);
        let key = table.key_names();
        let exact = table.replica_identity == b'f' || read.iter().all(|n| key.contains(n));
        ClientFilter { expr, exact }
    }
}

/// Evaluates the filter on one source row: `Ok(true)` when it holds.
pub type Eval<'e> = dyn FnMut(&[TupleValue]) -> Result<bool> + 'e;

/// The rows of an Insert, Update or Delete that `filter` lets through (none for any other
/// message).
pub fn change_rows_filtered<'a>(table: &TableSchema, filter: &ClientFilter, msg: &'a PgOutputMessage, eval: &mut Eval) -> Result<Vec<RowOut<'a>>> {
    match msg {
        PgOutputMessage::Insert { new, .. } => insert_rows(new, eval),
        PgOutputMessage::Update { old, new, .. } => update_rows_filtered(table, filter, old.as_ref(), new, eval),
        PgOutputMessage::Delete { old, .. } => delete_rows(filter, old, eval),
        _ => Ok(Vec::new()),
    }
}

/// The rows of an insert.
pub fn insert_rows<'a>(new: &'a Tuple, eval: &mut Eval) -> Result<Vec<RowOut<'a>>> {
    Ok(if eval(new)? { vec![RowOut { op: RowOp::Insert, values: Cow::Borrowed(new.as_slice()) }] } else { Vec::new() })
}

/// The rows of a delete carrying `old`.
pub fn delete_rows<'a>(filter: &ClientFilter, old: &'a (OldKind, Tuple), eval: &mut Eval) -> Result<Vec<RowOut<'a>>> {
    let keep = if old.0 == OldKind::Full || filter.exact { eval(&old.1)? } else { true };
    Ok(if keep { vec![RowOut { op: RowOp::Delete, values: Cow::Borrowed(old.1.as_slice()) }] } else { Vec::new() })
}

/// The rows of an update (see the module docs).
pub fn update_rows_filtered<'a>(
    table: &TableSchema,
    filter: &ClientFilter,
    old: Option<&'a (OldKind, Tuple)>,
    new: &'a Tuple,
    eval: &mut Eval,
) -> Result<Vec<RowOut<'a>>> {
    let rows = update_rows(table, old, new);
    // The new row as written (unchanged TOAST filled from a full old row).
    let new_row = rows.last().expect("an update gives one or two rows");
    let new_in = eval(&new_row.values)?;
    let old_row: Option<&[TupleValue]> = match old {
        Some((OldKind::Full, o)) => Some(o),
        Some((OldKind::Key, k)) if filter.exact => Some(k),
        // The key did not change and the filter reads only key columns: the old row
        // matched exactly when the new one does.
        None if filter.exact => None,
        _ => {
            // Unknown old row: an update when the new row matches, else a delete of its key.
            return Ok(if new_in {
                rows
            } else {
                match old {
                    Some((OldKind::Key, k)) => vec![RowOut { op: RowOp::Delete, values: Cow::Borrowed(k.as_slice()) }],
                    _ => vec![RowOut { op: RowOp::Delete, values: Cow::Owned(key_only(table, new)) }],
                }
            });
        }
    };
    let old_in = match old_row {
        Some(o) => eval(o)?,
        None => new_in,
    };
    Ok(match (old_in, new_in) {
        (true, true) => rows,
        (false, false) => Vec::new(),
        (true, false) => {
            let old_values = match old {
                Some((_, o)) => Cow::Borrowed(o.as_slice()),
                None => Cow::Owned(key_only(table, new)),
            };
            vec![RowOut { op: RowOp::Delete, values: old_values }]
        }
        (false, true) => {
            let mut rows = rows;
            let last = rows.pop().expect("one or two rows");
            vec![RowOut { op: RowOp::Insert, values: last.values }]
        }
    })
}

/// `row` with every column outside the key NULL: the values of a delete by key.
fn key_only(table: &TableSchema, row: &[TupleValue]) -> Vec<TupleValue> {
    row.iter().enumerate().map(|(i, v)| if table.key.contains(&i) { v.clone() } else { TupleValue::Null }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ColumnSchema, PgType};
    use bytes::Bytes;

    /// (id key, country, note); identity `ident`, key id.
    fn table(ident: u8) -> TableSchema {
        let col = |name: &str, key: bool| ColumnSchema {
            name: name.into(),
            type_oid: 25,
            type_modifier: -1,
            pg_type: PgType::Text,
            replica_identity: key || ident == b'f',
            attnum: None,
            missing: None,
        };
        TableSchema { relid: 1, schema: "public".into(), name: "t".into(), columns: vec![col("id", true), col("country", false), col("note", false)], key: vec![0], replica_identity: ident, relfilenode: None }
    }
    fn t(s: &str) -> TupleValue {
        TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
    }
    fn row(id: &str, country: &str) -> Tuple {
        vec![t(id), t(country), t("n")]
    }
    /// `country = 'NG'`.
    fn ng(values: &[TupleValue]) -> Result<bool> {
        Ok(values[1] == t("NG"))
    }
    fn ops(rows: &[RowOut]) -> Vec<(RowOp, TupleValue, TupleValue)> {
        rows.iter().map(|r| (r.op, r.values[0].clone(), r.values[1].clone())).collect()
    }

    #[test]
    fn exactness_follows_the_identity() {
        assert!(!ClientFilter::new(&table(b'd'), "country = 'NG'".into()).exact);
        assert!(ClientFilter::new(&table(b'd'), "id > '5'".into()).exact);
        assert!(ClientFilter::new(&table(b'f'), "country = 'NG'".into()).exact);
    }

    #[test]
    fn full_identity_moves_rows_in_and_out() {
        let tb = table(b'f');
        let f = ClientFilter::new(&tb, "country = 'NG'".into());
        let mut eval = ng;
        let new_in = row("1", "NG");
        let new_out = row("1", "GH");
        let old_in = (OldKind::Full, row("1", "NG"));
        let old_out = (OldKind::Full, row("1", "GH"));
        // in → in: update; out → in: insert; in → out: delete of the old row; out → out: nothing.
        assert_eq!(ops(&update_rows_filtered(&tb, &f, Some(&old_in), &new_in, &mut eval).unwrap()), [(RowOp::Update, t("1"), t("NG"))]);
        assert_eq!(ops(&update_rows_filtered(&tb, &f, Some(&old_out), &new_in, &mut eval).unwrap()), [(RowOp::Insert, t("1"), t("NG"))]);
        assert_eq!(ops(&update_rows_filtered(&tb, &f, Some(&old_in), &new_out, &mut eval).unwrap()), [(RowOp::Delete, t("1"), t("NG"))]);
        assert!(update_rows_filtered(&tb, &f, Some(&old_out), &new_out, &mut eval).unwrap().is_empty());
        // A key change from outside into the filter: only the insert.
        let moved = row("2", "NG");
        assert_eq!(ops(&update_rows_filtered(&tb, &f, Some(&old_out), &moved, &mut eval).unwrap()), [(RowOp::Insert, t("2"), t("NG"))]);
        // Deletes and inserts by their row.
        assert_eq!(delete_rows(&f, &old_out, &mut eval).unwrap().len(), 0);
        assert_eq!(delete_rows(&f, &old_in, &mut eval).unwrap().len(), 1);
        assert_eq!(insert_rows(&new_out, &mut eval).unwrap().len(), 0);
        assert_eq!(insert_rows(&new_in, &mut eval).unwrap().len(), 1);
    }

    #[test]
    fn unknown_old_rows_update_or_delete_by_key() {
        let tb = table(b'd');
        let f = ClientFilter::new(&tb, "country = 'NG'".into());
        let mut eval = ng;
        assert_eq!(ops(&update_rows_filtered(&tb, &f, None, &row("1", "NG"), &mut eval).unwrap()), [(RowOp::Update, t("1"), t("NG"))]);
        let gh = row("1", "GH");
        let out = update_rows_filtered(&tb, &f, None, &gh, &mut eval).unwrap();
        assert_eq!(ops(&out), [(RowOp::Delete, t("1"), TupleValue::Null)], "a delete by key, other columns NULL");
        // A delete with only the key cannot be evaluated: written.
        let key_only = (OldKind::Key, vec![t("1"), TupleValue::Null, TupleValue::Null]);
        assert_eq!(delete_rows(&f, &key_only, &mut eval).unwrap().len(), 1);
    }

    #[test]
    fn key_filters_are_exact_without_the_old_row() {
        let tb = table(b'd');
        let f = ClientFilter::new(&tb, "id = '1'".into());
        let mut eval = |v: &[TupleValue]| Ok(v[0] == t("1"));
        assert!(update_rows_filtered(&tb, &f, None, &row("2", "x"), &mut eval).unwrap().is_empty());
        assert_eq!(update_rows_filtered(&tb, &f, None, &row("1", "x"), &mut eval).unwrap().len(), 1);
        // The key moves out of the filter: a delete of the old key only.
        let old = (OldKind::Key, vec![t("1"), TupleValue::Null, TupleValue::Null]);
        assert_eq!(ops(&update_rows_filtered(&tb, &f, Some(&old), &row("2", "x"), &mut eval).unwrap()), [(RowOp::Delete, t("1"), TupleValue::Null)]);
    }
}
