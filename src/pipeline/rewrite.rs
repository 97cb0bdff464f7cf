//! Detecting table rewrites that write no logical WAL for existing rows.
//!
//! `ALTER TABLE … ADD COLUMN … DEFAULT clock_timestamp()`, `ALTER COLUMN … TYPE … USING`,
//! `VACUUM FULL`, `CLUSTER` and `TRUNCATE` give the table a new `pg_class.relfilenode`; the
//! first two change existing rows without sending them through pgoutput, so the target is
//! stale until the table is reloaded (for the others a reload is harmless). The pipeline
//! reads the relfilenode with every Relation message ([`crate::source::attributes`]) and
//! asks [`rewritten`] whether it changed since the previous Relation message of the table
//! (in this run, or as recorded in the schema history by an earlier run).

use crate::batch::TableSchema;

/// Why `next` describes a rewritten table compared with `prev` (two schemas of the same
/// relation, `prev` older), or `None` when it was not rewritten or one of them does not know
/// its relfilenode. The reason names the table, the old and new relfilenode, and the likely
/// causes. Called by the pipeline where a Relation message is applied; the caller logs the
/// reason as a warning and requests a reload of the table.
pub fn rewritten(prev: &TableSchema, next: &TableSchema) -> Option<String> {
    let (old, new) = (prev.relfilenode?, next.relfilenode?);
    if prev.relid != next.relid || old == new {
        return None;
    }
    Some(format!(
        "table {} was rewritten (relfilenode {old} -> {new}): a rewriting ALTER TABLE (a volatile \
         DEFAULT, ALTER COLUMN TYPE ... USING), VACUUM FULL, CLUSTER or TRUNCATE; a rewriting \
         ALTER changes existing rows without sending them, so the target may hold stale values \
         for them until the table is reloaded",
        next.qualified_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(relfilenode: Option<u32>) -> TableSchema {
        TableSchema {
            relid: 7,
            schema: "public".into(),
            name: "t".into(),
            columns: Vec::new(),
            key: Vec::new(),
            replica_identity: b'd',
            relfilenode,
        }
    }

    #[test]
    fn a_new_relfilenode_is_a_rewrite() {
        let why = rewritten(&table(Some(100)), &table(Some(200))).expect("rewritten");
        assert!(
            why.contains("public.t") && why.contains("100 -> 200"),
            "{why}"
        );
        assert_eq!(rewritten(&table(Some(100)), &table(Some(100))), None);
        assert_eq!(
            rewritten(&table(None), &table(Some(100))),
            None,
            "unknown before: no claim"
        );
        assert_eq!(rewritten(&table(Some(100)), &table(None)), None);
        let mut other = table(Some(200));
        other.relid = 8;
        assert_eq!(
            rewritten(&table(Some(100)), &other),
            None,
            "another relation"
        );
    }
}
