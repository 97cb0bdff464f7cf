//! The checks that must pass before pgcdc reads from a server: `wal_level`, the
//! publication, and the replication slot. One place for what `run`, the full load and
//! `check` (and `validate`) test, so they agree on what counts as a problem.
//!
//! Two kinds of callers:
//! * commands that stop at the first problem (`run`, the full load, `validate`) use the
//!   `require_*` functions and the error builders: each returns the one readable error
//!   with a hint that the command exits with (exit 1, see `src/error.rs`);
//! * `check`, which reports every finding with its own wording, uses the classifications
//!   ([`WalLevel::is_logical`], [`SlotProblem::of`]) and formats the items itself.
//!
//! Every function only reads the catalog; none changes the server.

use std::time::Duration;

use super::catalog::{Catalog, SlotState};
use crate::error::{Error, Result};
use crate::model::Lsn;

/// The server's `wal_level` setting. Logical replication needs `logical`.
pub struct WalLevel(pub String);

impl WalLevel {
    /// Reads the setting. An error is a failed query, not a wrong level.
    pub async fn read(catalog: &Catalog) -> Result<WalLevel> {
        Ok(WalLevel(catalog.setting("wal_level").await?))
    }

    pub fn is_logical(&self) -> bool {
        self.0 == "logical"
    }

    /// `Ok` when logical; otherwise the error `run` fails with, naming the level and the fix.
    pub fn require_logical(&self) -> Result<()> {
        if self.is_logical() {
            return Ok(());
        }
        Err(Error::runtime(format!(
            "the server's wal_level is `{}`, logical replication needs `logical`",
            self.0
        ))
        .with_hint("set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"))
    }
}

/// Fails unless the server's `wal_level` is `logical` (see [`WalLevel::require_logical`]).
/// Called by `run` before the full load and again before streaming.
pub async fn require_logical_wal_level(catalog: &Catalog) -> Result<()> {
    WalLevel::read(catalog).await?.require_logical()
}

/// "publication `P` does not exist", with the hint to create it with `pgcdc setup`.
pub fn publication_missing(publication: &str) -> Error {
    Error::runtime(format!("publication `{publication}` does not exist"))
        .with_hint("create it with `pgcdc setup -c FILE`")
}

/// Fails with [`publication_missing`] unless the publication exists. Called by the full
/// load (before any slot is created, so a failed load leaves the server as it was) and
/// meant for `validate`.
pub async fn require_publication(catalog: &Catalog, publication: &str) -> Result<()> {
    if catalog.publication_exists(publication).await? {
        require_published_tables(catalog, publication).await
    } else {
        Err(publication_missing(publication))
    }
}

/// Fails when an existing publication publishes no table and is not `FOR ALL TABLES`:
/// nothing would ever be replicated, which is a configuration mistake, not a quiet run.
/// (A `FOR ALL TABLES` publication in a database without tables yet is allowed: tables
/// created later are published by it.)
pub async fn require_published_tables(catalog: &Catalog, publication: &str) -> Result<()> {
    if !catalog.publication_tables(publication).await?.is_empty() || catalog.publication_all_tables(publication).await? {
        return Ok(());
    }
    Err(publication_empty(publication))
}

/// Fails, naming them and the GRANT, when the role cannot SELECT some of `tables` (the
/// full load and `validate` read them). Called before a load creates a slot or writes.
pub async fn require_select(catalog: &Catalog, tables: &[(String, String)]) -> Result<()> {
    let mut denied = Vec::new();
    for (schema, table) in tables {
        let name = crate::source::quote::qualified(schema, table);
        let row = catalog
            .client
            .query_one("SELECT has_table_privilege($1::text::regclass, 'SELECT')", &[&name])
            .await
            .map_err(|e| crate::source::sql::query_error(format!("reading the privileges on {schema}.{table}"), &e))?;
        if !row.get::<_, bool>(0) {
            denied.push(name);
        }
    }
    if denied.is_empty() {
        return Ok(());
    }
    Err(Error::runtime(format!("the role in source.url cannot SELECT {}: the full load cannot read them", denied.join(", ")))
        .with_hint(format!("GRANT SELECT ON {} TO <the role>; or run `pgcdc setup --admin-url URL`, which grants it", denied.join(", "))))
}

/// "publication `P` publishes no table", with the statements that add some.
pub fn publication_empty(publication: &str) -> Error {
    Error::runtime(format!("publication `{publication}` publishes no table: nothing would be replicated"))
        .with_hint(format!("ALTER PUBLICATION \"{publication}\" ADD TABLE ...; or list the tables in source.tables and run `pgcdc setup -c FILE`; or fix source.publication"))
}

/// "replication slot `S` is in use by another process", naming the process when `pid` is
/// given, with the hint to stop the other consumer.
pub fn slot_in_use(slot_name: &str, pid: Option<&str>) -> Error {
    let who = pid.map(|p| format!(" (PID {p})")).unwrap_or_default();
    Error::runtime(format!(
        "replication slot `{slot_name}` is in use by another process{who}"
    ))
    .with_hint("stop the other consumer, or give this pgcdc its own source.slot")
}

/// What makes an existing slot unusable for streaming, in the order they are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotProblem {
    /// The slot decodes with another output plugin than pgoutput.
    WrongPlugin { plugin: String },
    /// The slot is invalidated (`wal_status = lost`): the WAL it needed is gone.
    Lost,
    /// A walsender holds the slot.
    InUse { pid: Option<i32> },
}

impl SlotProblem {
    /// The first problem of `slot`, or `None` when `run` can stream from it.
    pub fn of(slot: &SlotState) -> Option<SlotProblem> {
        if slot.plugin.as_deref() != Some("pgoutput") {
            Some(SlotProblem::WrongPlugin {
                plugin: slot.plugin.clone().unwrap_or_default(),
            })
        } else if slot.wal_status.as_deref() == Some("lost") {
            Some(SlotProblem::Lost)
        } else if slot.active {
            Some(SlotProblem::InUse {
                pid: slot.active_pid,
            })
        } else {
            None
        }
    }

    /// The error `run` fails with for this problem of slot `slot_name`.
    pub fn error(&self, slot_name: &str) -> Error {
        match self {
            SlotProblem::WrongPlugin { plugin } => Error::runtime(format!(
                "replication slot `{slot_name}` uses plugin {plugin:?}, pgcdc needs pgoutput"
            ))
            .with_hint("use another source.slot name; pgcdc creates its own slot"),
            SlotProblem::Lost => super::slot_health::invalidated(slot_name),
            SlotProblem::InUse { pid } => {
                let pid = pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
                slot_in_use(slot_name, Some(&pid))
            }
        }
    }
}

/// The slot's state once no walsender holds it, waiting up to 10 s: the walsender of a
/// previous run (killed or stopped a moment ago) may still hold the slot while it notices
/// its client is gone. Returns the last state read (still active after 10 s).
pub async fn slot_after_release(catalog: &Catalog, slot_name: &str) -> Result<Option<SlotState>> {
    let mut slot = catalog.slot(slot_name).await?;
    for _ in 0..50 {
        if !slot.as_ref().is_some_and(|s| s.active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        slot = catalog.slot(slot_name).await?;
    }
    Ok(slot)
}

/// Everything `run` checks right before streaming: `wal_level`, the publication, the slot
/// ([`SlotProblem`]) and whether the slot agrees with `start`, the position the target
/// already holds (`None` for an empty target).
///
/// Returns whether the slot exists (`false`: the caller creates it). Errors: a wrong
/// `wal_level`, a missing publication, an unusable slot, a slot that is missing although
/// the target holds changes, or a slot that confirmed more than the target holds (changes
/// in between would be lost).
pub async fn check_streaming_start(
    catalog: &Catalog,
    publication: &str,
    slot_name: &str,
    start: Option<Lsn>,
) -> Result<bool> {
    require_logical_wal_level(catalog).await?;
    if !catalog.publication_exists(publication).await? {
        return Err(publication_missing(publication).with_hint(format!(
            "create it with `pgcdc setup -c FILE`, or CREATE PUBLICATION \"{publication}\" FOR TABLE ...; or fix source.publication"
        )));
    }
    require_published_tables(catalog, publication).await?;
    let Some(slot) = slot_after_release(catalog, slot_name).await? else {
        if let Some(start) = start {
            return Err(super::slot_health::dropped(slot_name, start));
        }
        return Ok(false);
    };
    if let Some(problem) = SlotProblem::of(&slot) {
        return Err(problem.error(slot_name));
    }
    if let (Some(start), Some(confirmed)) = (start, slot.confirmed_flush_lsn) {
        if confirmed > start {
            return Err(Error::runtime(format!(
                "replication slot `{slot_name}` has confirmed {confirmed}, but the target only holds changes up to {start}: changes in between are missing"
            ))
            .with_hint("the slot was advanced by something else or recreated: `pgcdc run --resync --force -c FILE` replaces it and loads every table again (README, \"A lost slot\")"));
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(plugin: Option<&str>, wal_status: Option<&str>, active_pid: Option<i32>) -> SlotState {
        SlotState {
            plugin: plugin.map(str::to_string),
            slot_type: "logical".into(),
            database: Some("db".into()),
            active: active_pid.is_some(),
            active_pid,
            confirmed_flush_lsn: None,
            restart_lsn: None,
            wal_status: wal_status.map(str::to_string),
            safe_wal_size: None,
        }
    }

    #[test]
    fn slot_problems_are_found_in_order_plugin_lost_in_use() {
        assert_eq!(
            SlotProblem::of(&slot(Some("pgoutput"), Some("reserved"), None)),
            None
        );
        assert_eq!(
            SlotProblem::of(&slot(Some("test_decoding"), Some("lost"), Some(7))),
            Some(SlotProblem::WrongPlugin {
                plugin: "test_decoding".into()
            })
        );
        assert_eq!(
            SlotProblem::of(&slot(Some("pgoutput"), Some("lost"), Some(7))),
            Some(SlotProblem::Lost)
        );
        assert_eq!(
            SlotProblem::of(&slot(Some("pgoutput"), None, Some(7))),
            Some(SlotProblem::InUse { pid: Some(7) })
        );
    }

    #[test]
    fn errors_keep_their_wording() {
        let e = SlotProblem::InUse { pid: Some(42) }.error("s");
        assert_eq!(
            e.message,
            "replication slot `s` is in use by another process (PID 42)"
        );
        assert_eq!(
            slot_in_use("s", None).message,
            "replication slot `s` is in use by another process"
        );
        let e = SlotProblem::WrongPlugin {
            plugin: "wal2json".into(),
        }
        .error("s");
        assert_eq!(
            e.message,
            "replication slot `s` uses plugin \"wal2json\", pgcdc needs pgoutput"
        );
        let e = WalLevel("replica".into()).require_logical().unwrap_err();
        assert_eq!(
            e.message,
            "the server's wal_level is `replica`, logical replication needs `logical`"
        );
        assert!(WalLevel("logical".into()).require_logical().is_ok());
        let e = publication_missing("p");
        assert_eq!(e.message, "publication `p` does not exist");
        assert_eq!(
            e.hint.as_deref(),
            Some("create it with `pgcdc setup -c FILE`")
        );
    }
}
