//! Detecting table rewrites that write no logical WAL for existing rows.
//!
//! `ALTER TABLE … ADD COLUMN … DEFAULT clock_timestamp()`, `ALTER COLUMN … TYPE … USING`,
//! `VACUUM FULL`, `CLUSTER` and `TRUNCATE` give the table a new `pg_class.relfilenode`; the
//! first two change existing rows without sending them through pgoutput, so the target is
//! stale until the table is reloaded (for the others a reload is harmless). The pipeline
//! reads the relfilenode with every Relation message ([`crate::source::attributes`]) and
//! compares it with the one recorded for the table in `_pgcdc/tables.json`
//! ([`crate::load::requests::Reloads::note_relfilenode`]), which also covers rewrites made while
//! pgcdc was stopped. The relfilenode is read from the catalog as it is when the message is
//! applied, so while catching up a rewrite may be noticed at an earlier Relation message
//! than its own; the reload then takes a snapshot after the rewrite either way. A rewrite of
//! a table that no change follows is noticed with the next change of the table.

/// The warning for a table whose relfilenode went from `old` to `new`: it names the table,
/// both relfilenodes and the likely causes. The pipeline logs it and, unless the same
/// transaction truncated the table (a TRUNCATE also takes a new relfilenode, and its `T`
/// row is in the stream), asks for a reload of the table ([`crate::load::requests`]).
pub fn rewrite_reason(table: &str, old: u32, new: u32) -> String {
    format!(
        "table {table} was rewritten (relfilenode {old} -> {new}): a rewriting ALTER TABLE (a volatile \
         DEFAULT, ALTER COLUMN TYPE ... USING), VACUUM FULL, CLUSTER or TRUNCATE; a rewriting \
         ALTER changes existing rows without sending them, so the table is reloaded"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_the_table_and_both_relfilenodes() {
        let why = rewrite_reason("public.t", 100, 200);
        assert!(why.contains("public.t") && why.contains("100 -> 200") && why.contains("reloaded"), "{why}");
    }
}
