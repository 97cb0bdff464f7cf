//! `check` items about the server's capacity and the published tables (issue 11 step 3):
//! replication slot and WAL sender headroom, `max_slot_wal_keep_size`, SELECT on each
//! published table, and tables whose updates will lack unchanged TOAST values.

use super::check::{item, CheckItem, Level};
use crate::error::{Error, Result};
use crate::source::catalog::Catalog;

fn query_error(what: &str, e: tokio_postgres::Error) -> Error {
    crate::source::sql::query_error(what, &e)
}

/// Free replication slots and WAL senders (a new slot needs one of each), and whether the
/// server bounds the WAL a stopped slot retains. `slot_exists`: our slot is already there
/// (it needs no free one).
pub async fn capacity(catalog: &Catalog, slot_exists: bool) -> Result<Vec<CheckItem>> {
    let row = catalog
        .client
        .query_one(
            "SELECT current_setting('max_replication_slots')::int,
                    (SELECT count(*) FROM pg_replication_slots)::int,
                    current_setting('max_wal_senders')::int,
                    (SELECT count(*) FROM pg_stat_replication)::int,
                    coalesce(current_setting('max_slot_wal_keep_size', true), '')",
            &[],
        )
        .await
        .map_err(|e| query_error("reading the replication settings", e))?;
    let (max_slots, slots, max_senders, senders, keep): (i32, i32, i32, i32, String) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let mut items = Vec::new();
    let free_slots = max_slots - slots;
    let slot_detail = format!("{slots} of max_replication_slots = {max_slots} in use");
    items.push(match (free_slots, slot_exists) {
        (_, true) => item(Level::Ok, "free replication slots", slot_detail, None),
        (f, false) if f <= 0 => item(Level::Blocker, "free replication slots", format!("{slot_detail}: no free slot for {}", "pgcdc"), Some("raise max_replication_slots (restart needed) or drop an unused slot")),
        (1, false) => item(Level::Warn, "free replication slots", format!("{slot_detail}: pgcdc's slot takes the last one"), Some("raise max_replication_slots so a second consumer or a resync has room")),
        _ => item(Level::Ok, "free replication slots", slot_detail, None),
    });
    let free_senders = max_senders - senders;
    let sender_detail = format!("{senders} of max_wal_senders = {max_senders} in use");
    items.push(if free_senders <= 0 {
        item(Level::Blocker, "free wal senders", format!("{sender_detail}: no free WAL sender"), Some("raise max_wal_senders (restart needed)"))
    } else {
        item(Level::Ok, "free wal senders", sender_detail, None)
    });
    items.push(match keep.as_str() {
        // PostgreSQL < 13 has no such setting.
        "" => item(Level::Warn, "max_slot_wal_keep_size", "not available before PostgreSQL 13: a stopped pgcdc makes the server keep WAL without limit", Some("monitor the slot's retained WAL (`pgcdc status`)")),
        "-1" => item(Level::Warn, "max_slot_wal_keep_size", "-1 (unlimited): while pgcdc is stopped the server keeps all WAL since its position, until the disk fills", Some("ALTER SYSTEM SET max_slot_wal_keep_size = '50GB' (a bound the disk can hold; past it the slot is invalidated and needs a resync)")),
        v => item(Level::Ok, "max_slot_wal_keep_size", v.to_string(), None),
    });
    Ok(items)
}

/// For the published tables: a blocker for each the role cannot SELECT (the full load and
/// `validate` read it), and a WARN for each whose replica identity is not FULL and that has
/// columns stored out of line (TOAST): an update that leaves such a value unchanged does not
/// carry it (the row lists it in `_unchanged`).
pub async fn tables(catalog: &Catalog, publication: &str) -> Result<Vec<CheckItem>> {
    let rows = catalog
        .client
        .query(
            "SELECT p.schemaname::text, p.tablename::text,
                    has_table_privilege(c.oid, 'SELECT'),
                    c.relreplident::text,
                    coalesce(string_agg(a.attname::text, ', ' ORDER BY a.attnum) FILTER (WHERE a.attstorage IN ('x', 'e')), '')
               FROM pg_publication_tables p
               JOIN pg_namespace n ON n.nspname = p.schemaname
               JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
               LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE p.pubname = $1
              GROUP BY 1, 2, 3, 4
              ORDER BY 1, 2",
            &[&publication],
        )
        .await
        .map_err(|e| query_error("reading the published tables' privileges and columns", e))?;
    let mut items = Vec::new();
    let mut no_select = Vec::new();
    let mut toast = Vec::new();
    for r in &rows {
        let (schema, table, select, ident, toastable): (String, String, bool, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let name = format!("{schema}.{table}");
        if !select {
            no_select.push((name.clone(), crate::source::quote::qualified(&schema, &table)));
        }
        if ident != "f" && !toastable.is_empty() {
            toast.push(format!("{name} ({toastable})"));
        }
    }
    if !no_select.is_empty() {
        let (names, quoted): (Vec<String>, Vec<String>) = no_select.into_iter().unzip();
        let hint = format!("GRANT SELECT ON {} TO the role in source.url (or `pgcdc setup --admin-url URL`, which grants it)", quoted.join(", "));
        items.push(item(Level::Blocker, "table privileges", format!("no SELECT on {}: the full load and validate cannot read them", names.join(", ")), Some(&hint)));
    } else if !rows.is_empty() {
        items.push(item(Level::Ok, "table privileges", format!("SELECT on all {} published table(s)", rows.len()), None));
    }
    if !toast.is_empty() {
        items.push(item(
            Level::Warn,
            "unchanged TOAST values",
            format!("updates that leave these columns unchanged do not carry their values (listed in `_unchanged`): {}", toast.join("; ")),
            Some("fine when the consumer keeps the previous value (SPEC 5.1); with ALTER TABLE ... REPLICA IDENTITY FULL pgcdc fills them in from the old row, at the cost of more WAL"),
        ));
    }
    Ok(items)
}
