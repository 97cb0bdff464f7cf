//! The correctness rules of SPEC 5.1 that turn pgoutput changes into output rows.
//!
//! * Insert → `I`. Delete → `D` with the old tuple (key columns, or every column under
//!   REPLICA IDENTITY FULL).
//! * Update → `U`; an unchanged TOASTed value (`u`) stays null and is listed in `_unchanged`,
//!   unless the old tuple (REPLICA IDENTITY FULL) carries it, then it is filled in.
//! * An update that changes the key (a `K` old tuple, or an `O` old tuple whose key columns
//!   differ from the new row's) → `D` of the old key followed by `I` of the new row. If that
//!   `I` still lacks an unchanged TOASTed value, it lists it in `_unchanged`: the value is the
//!   one of the row deleted just before it (`_seq` − 1), which the materialisation rule
//!   carries over.
//! * Truncate → one `T` row per table, data columns null.

use std::borrow::Cow;

use crate::model::TableSchema;
use crate::model::RowOp;
use crate::source::pgoutput::{OldKind, PgOutputMessage, Tuple};
use crate::model::TupleValue;

/// One output row before the transaction metadata is attached.
pub struct RowOut<'a> {
    pub op: RowOp,
    pub values: Cow<'a, [TupleValue]>,
}

/// The rows of an Insert, Update or Delete (none for any other message), when pgcdc
/// applies no row filter of its own.
pub fn change_rows<'a>(table: &TableSchema, msg: &'a PgOutputMessage) -> Vec<RowOut<'a>> {
    match msg {
        PgOutputMessage::Insert { new, .. } => vec![RowOut { op: RowOp::Insert, values: Cow::Borrowed(new.as_slice()) }],
        PgOutputMessage::Update { old, new, .. } => update_rows(table, old.as_ref(), new),
        PgOutputMessage::Delete { old, .. } => vec![RowOut { op: RowOp::Delete, values: Cow::Borrowed(old.1.as_slice()) }],
        _ => Vec::new(),
    }
}

/// The relation of an Insert, Update or Delete.
pub fn change_relid(msg: &PgOutputMessage) -> Option<u32> {
    match msg {
        PgOutputMessage::Insert { relid, .. } | PgOutputMessage::Update { relid, .. } | PgOutputMessage::Delete { relid, .. } => Some(*relid),
        _ => None,
    }
}

/// The rows of an Update, in order.
pub fn update_rows<'a>(table: &TableSchema, old: Option<&'a (OldKind, Tuple)>, new: &'a Tuple) -> Vec<RowOut<'a>> {
    match old {
        None => vec![RowOut { op: RowOp::Update, values: Cow::Borrowed(new.as_slice()) }],
        Some((OldKind::Key, old_key)) => vec![
            RowOut { op: RowOp::Delete, values: Cow::Borrowed(old_key.as_slice()) },
            RowOut { op: RowOp::Insert, values: Cow::Borrowed(new.as_slice()) },
        ],
        Some((OldKind::Full, old_row)) => {
            let filled = fill_unchanged(new, old_row);
            let key_changed = !table.key.is_empty()
                && table.key.iter().any(|&i| old_row.get(i) != filled.get(i));
            if key_changed {
                vec![
                    RowOut { op: RowOp::Delete, values: Cow::Borrowed(old_row.as_slice()) },
                    RowOut { op: RowOp::Insert, values: filled },
                ]
            } else {
                vec![RowOut { op: RowOp::Update, values: filled }]
            }
        }
    }
}

/// Replaces `u` values of `new` with the old tuple's value where it has one.
fn fill_unchanged<'a>(new: &'a Tuple, old: &Tuple) -> Cow<'a, [TupleValue]> {
    if !new.iter().any(|v| matches!(v, TupleValue::Unchanged)) {
        return Cow::Borrowed(new.as_slice());
    }
    Cow::Owned(
        new.iter()
            .zip(old.iter().chain(std::iter::repeat(&TupleValue::Unchanged)))
            .map(|(n, o)| match (n, o) {
                (TupleValue::Unchanged, TupleValue::Text(_) | TupleValue::Binary(_) | TupleValue::Null) => o.clone(),
                _ => n.clone(),
            })
            .collect(),
    )
}

/// The all-null values of a `T` row.
pub fn truncate_values(table: &TableSchema) -> Vec<TupleValue> {
    vec![TupleValue::Null; table.columns.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ColumnSchema, PgType};
    use bytes::Bytes;

    fn table() -> TableSchema {
        let col = |name: &str| ColumnSchema {
            name: name.into(),
            type_oid: 25,
            type_modifier: -1,
            pg_type: PgType::Text,
            replica_identity: true,
            attnum: None,
            missing: None,
        };
        TableSchema { relid: 1, schema: "public".into(), name: "t".into(), columns: vec![col("id"), col("big")], key: vec![0], replica_identity: b'f', relfilenode: None }
    }
    fn t(s: &str) -> TupleValue {
        TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn plain_update_keeps_unchanged_marker() {
        let new = vec![t("1"), TupleValue::Unchanged];
        let rows = update_rows(&table(), None, &new);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].op, RowOp::Update);
        assert_eq!(rows[0].values[1], TupleValue::Unchanged);
    }

    #[test]
    fn key_update_becomes_delete_then_insert() {
        let old = (OldKind::Key, vec![t("1"), TupleValue::Null]);
        let new = vec![t("2"), TupleValue::Unchanged];
        let rows = update_rows(&table(), Some(&old), &new);
        assert_eq!(rows.iter().map(|r| r.op).collect::<Vec<_>>(), vec![RowOp::Delete, RowOp::Insert]);
        assert_eq!(rows[0].values[0], t("1"));
        assert_eq!(rows[1].values[1], TupleValue::Unchanged);
    }

    #[test]
    fn full_identity_fills_toast_and_detects_key_change() {
        let old = (OldKind::Full, vec![t("1"), t("big value")]);
        let same_key = vec![t("1"), TupleValue::Unchanged];
        let rows = update_rows(&table(), Some(&old), &same_key);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].op, RowOp::Update);
        assert_eq!(rows[0].values[1], t("big value"));
        let new_key = vec![t("2"), TupleValue::Unchanged];
        let rows = update_rows(&table(), Some(&old), &new_key);
        assert_eq!(rows.iter().map(|r| r.op).collect::<Vec<_>>(), vec![RowOp::Delete, RowOp::Insert]);
        assert_eq!(rows[1].values[1], t("big value"));
    }
}
