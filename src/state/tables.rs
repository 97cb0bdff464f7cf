//! The followed tables and the pending reloads, `_pgcdc/tables.json` in the target.
//!
//! `tables` maps each table the target holds completely (by relation OID) to its current
//! name and its leaf relations (itself, or its partitions when published via the root).
//! A table is "known" when it is there; a published table that is not (it joined the
//! publication, was recreated under a known name, or was renamed) needs a reload.
//! `pending` lists reloads that were requested and are not yet complete: the target is
//! not complete while one is listed (`validate` waits). The file is always replaced
//! atomically ([`Storage::put`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Lsn;
use crate::storage::{PutMode, Storage};

pub const TABLES_KEY: &str = "_pgcdc/tables.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TableRegistry {
    /// Relation OID → the table as the target holds it.
    pub tables: BTreeMap<u32, FollowedTable>,
    /// Reloads requested and not finished, in request order.
    pub pending: Vec<PendingReload>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowedTable {
    pub schema: String,
    pub table: String,
    /// OIDs of the leaf relations whose rows the table shows, sorted.
    pub leaves: Vec<u32>,
    /// The WAL position as of which this is known (e.g. the reload's snapshot): what the
    /// stream or the catalog said about the table before it is older news.
    #[serde(default)]
    pub seen_at: Lsn,
    /// `pg_class.relfilenode` as last read when the stream described the table; a new one
    /// means the table was rewritten ([`crate::pipeline::rewrite`]). `None` until first read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relfilenode: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingReload {
    pub relid: u32,
    /// The name the table had when the reload was (last) requested.
    pub schema: String,
    pub table: String,
    pub reason: String,
    /// The WAL position as of which the name is known (see [`FollowedTable::seen_at`]).
    #[serde(default)]
    pub seen_at: Lsn,
    /// Bumped by every request; a reload that finishes removes the entry only if no
    /// request arrived after it started.
    pub requests: u64,
    /// The attempt that started writing files, if any: its snapshot LSN and the name it
    /// wrote under. A redo first deletes that attempt's files.
    pub attempt: Option<Attempt>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attempt {
    pub lsn: Lsn,
    pub schema: String,
    pub table: String,
    /// The Parquet sinks (indexes among the configuration's Parquet sinks) the attempt
    /// writes into; `None` (registries written before sinks could be left out): all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<usize>>,
}

impl Attempt {
    /// Whether the attempt writes into Parquet sink `index`.
    pub fn writes_to(&self, index: usize) -> bool {
        self.outputs.as_ref().is_none_or(|o| o.contains(&index))
    }
}

impl TableRegistry {
    /// The registry, or `None` in a target that has none yet.
    pub fn read(storage: &dyn Storage) -> Result<Option<TableRegistry>> {
        let hint = "delete it: the next `pgcdc run` rebuilds it from the publication (reload changed tables with --reload)";
        Ok(super::json::read(storage, TABLES_KEY, hint)?.map(|(r, _)| r))
    }

    pub fn write(&self, storage: &dyn Storage) -> Result<()> {
        super::json::write(storage, TABLES_KEY, self, PutMode::Overwrite).map(|_| ())
    }

    /// The name a table is expected to have: the pending reload's, else the followed one's.
    pub fn expected_name(&self, relid: u32) -> Option<(&str, &str)> {
        if let Some(p) = self.pending.iter().find(|p| p.relid == relid) {
            return Some((&p.schema, &p.table));
        }
        self.tables
            .get(&relid)
            .map(|t| (t.schema.as_str(), t.table.as_str()))
    }

    /// The WAL position as of which the registry knows `relid` ([`FollowedTable::seen_at`]).
    pub fn known_at(&self, relid: u32) -> Lsn {
        let pending = self
            .pending
            .iter()
            .find(|p| p.relid == relid)
            .map(|p| p.seen_at);
        let followed = self.tables.get(&relid).map(|t| t.seen_at);
        pending
            .into_iter()
            .chain(followed)
            .max()
            .unwrap_or_default()
    }

    /// Why the target does not yet hold `tables` (relid, schema, table) completely: pending
    /// reloads, and tables that are unknown or known under another name. Empty when complete.
    pub fn incomplete(&self, tables: &[(u32, String, String)]) -> Vec<String> {
        let mut out: Vec<String> = self
            .pending
            .iter()
            .map(|p| format!("{}.{} ({})", p.schema, p.table, p.reason))
            .collect();
        for (relid, schema, table) in tables {
            if self.pending.iter().any(|p| p.relid == *relid) {
                continue;
            }
            match self.tables.get(relid) {
                Some(t) if &t.schema == schema && &t.table == table => {}
                Some(t) => out.push(format!(
                    "{schema}.{table} (known as {}.{}: not yet reloaded)",
                    t.schema, t.table
                )),
                None => out.push(format!("{schema}.{table} (not yet loaded)")),
            }
        }
        out
    }
}

/// What `validate` waits for: the reasons the target is not complete for `tables`, from
/// the registry (nothing when the target has no registry).
pub fn incomplete_tables(
    storage: &dyn Storage,
    tables: &[(u32, String, String)],
) -> Result<Vec<String>> {
    Ok(TableRegistry::read(storage)?
        .map(|r| r.incomplete(tables))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_names_pending_unknown_and_renamed_tables() {
        let mut r = TableRegistry::default();
        r.tables.insert(
            1,
            FollowedTable {
                schema: "public".into(),
                table: "a".into(),
                leaves: vec![1],
                seen_at: Lsn::ZERO,
                relfilenode: None,
            },
        );
        r.tables.insert(
            2,
            FollowedTable {
                schema: "public".into(),
                table: "b".into(),
                leaves: vec![2],
                seen_at: Lsn::ZERO,
                relfilenode: None,
            },
        );
        let t = |id: u32, n: &str| (id, "public".to_string(), n.to_string());
        assert!(r.incomplete(&[t(1, "a"), t(2, "b")]).is_empty());
        let out = r.incomplete(&[t(1, "a"), t(2, "c"), t(3, "d")]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].contains("known as public.b"));
        r.pending.push(PendingReload {
            relid: 3,
            schema: "public".into(),
            table: "d".into(),
            reason: "joined".into(),
            seen_at: Lsn::ZERO,
            requests: 1,
            attempt: None,
        });
        assert_eq!(r.expected_name(3), Some(("public", "d")));
        assert_eq!(
            r.incomplete(&[t(3, "d")]),
            vec!["public.d (joined)".to_string()]
        );
    }
}
