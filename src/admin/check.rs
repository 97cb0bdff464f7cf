//! `pgcdc check`: a preflight of everything `run` needs, each finding ok / warning /
//! blocker with a fix. A blocker is something `run` would fail on (or, for a target, could
//! not write to); a warning is something that works but will hurt later (WAL retention, a
//! missing TOAST value, a type written as text). The CLI prints them as a table or JSON and
//! exits 2 when there is a blocker.

use super::connect_catalog;
use crate::config::Config;
use crate::error::Result;
use crate::sink::open_sinks;
use crate::source::conninfo::ConnInfo;
use crate::source::preflight::{SlotProblem, WalLevel};
use crate::source::publication::{add_tables_sql, table_names};
use crate::source::replication::ReplicationConn;

/// How bad a finding is. Serialised as `ok`, `warning`, `blocker` (`check --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    #[serde(rename = "warning")]
    Warn,
    /// `run` cannot work until this is fixed.
    Blocker,
}

/// One finding: what was checked, what was found, and the fix (for warnings and blockers).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckItem {
    pub level: Level,
    #[serde(rename = "check")]
    pub what: String,
    #[serde(rename = "finding")]
    pub detail: String,
    #[serde(rename = "fix")]
    pub hint: Option<String>,
}

/// A blocker from an error: its message is the finding, its hint the fix.
pub(super) fn failed(what: &str, e: crate::error::Error) -> CheckItem {
    CheckItem { level: Level::Blocker, what: what.into(), detail: e.message, hint: e.hint }
}

pub(super) fn item(level: Level, what: &str, detail: impl Into<String>, hint: Option<&str>) -> CheckItem {
    CheckItem { level, what: what.into(), detail: detail.into(), hint: hint.map(str::to_string) }
}

/// Runs every check; stops early only when the server cannot be reached at all.
pub async fn check(config: &Config) -> Result<Vec<CheckItem>> {
    let mut items = Vec::new();
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let catalog = match connect_catalog(&info).await {
        Ok(c) => {
            items.push(item(Level::Ok, "connect", info.redacted(), None));
            c
        }
        Err(e) => {
            items.push(failed("connect", e));
            return Ok(items);
        }
    };
    let version = catalog.server_version_num().await?;
    items.push(if version >= 100000 {
        item(Level::Ok, "server version", format!("{version}"), None)
    } else {
        item(Level::Blocker, "server version", format!("{version}"), Some("pgcdc needs PostgreSQL 10 or later"))
    });
    if version < 140000 {
        items.push(item(Level::Warn, "streaming", "PostgreSQL < 14: large transactions are not streamed, they arrive at commit", Some("upgrade to 14+ for streaming of large transactions")));
    }
    let wal_level = WalLevel::read(&catalog).await?;
    items.push(if wal_level.is_logical() {
        item(Level::Ok, "wal_level", wal_level.0, None)
    } else {
        item(Level::Blocker, "wal_level", format!("is `{}`", wal_level.0), Some("ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"))
    });
    let (superuser, replication) = catalog.role_attributes().await?;
    items.push(if superuser || replication {
        item(Level::Ok, "replication privilege", format!("role {}", info.user), None)
    } else {
        item(Level::Blocker, "replication privilege", format!("role {} has neither REPLICATION nor SUPERUSER", info.user), Some("ALTER ROLE ... WITH REPLICATION (or `pgcdc setup --admin-url URL`, which grants it)"))
    });
    match ReplicationConn::connect(&info).await {
        Ok(mut conn) => match conn.identify_system().await {
            Ok(sys) => items.push(item(Level::Ok, "replication connection", format!("system {} timeline {} at {}", sys.system_id, sys.timeline, sys.xlogpos), None)),
            Err(e) => items.push(failed("replication connection", e)),
        },
        Err(e) => items.push(failed("replication connection", e)),
    }
    let publication = &config.source.publication;
    if catalog.publication_exists(publication).await? {
        let tables = catalog.publication_tables(publication).await?;
        items.push(if tables.is_empty() && !catalog.publication_all_tables(publication).await? {
            let e = crate::source::preflight::publication_empty(publication);
            CheckItem { level: Level::Blocker, what: "publication".into(), detail: e.message, hint: e.hint }
        } else {
            item(Level::Ok, "publication", format!("{publication}: {} table(s)", tables.len()), None)
        });
        for (schema, table, ident, has_pk) in &tables {
            match (ident.as_str(), has_pk) {
                ("n", _) => items.push(item(Level::Warn, "replica identity", format!("{schema}.{table} has REPLICA IDENTITY NOTHING: updates and deletes fail on the source"), Some("ALTER TABLE ... REPLICA IDENTITY FULL or add a primary key"))),
                ("d", false) => items.push(item(Level::Warn, "replica identity", format!("{schema}.{table} has no primary key: updates and deletes fail on the source and rows cannot be matched"), Some("add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL"))),
                _ => {}
            }
        }
        items.extend(super::check_server::tables(&catalog, publication).await?);
        match crate::source::rules::plan(&catalog, config).await {
            Ok(plan) => items.extend(super::check_rules::findings(publication, &plan)),
            Err(e) => items.push(failed("rules", e)),
        }
        items.extend(super::check_types::text_mapped(&catalog, &tables).await?);
        // A blocker, not a warning: the user asked for these tables and will not get them.
        let missing = catalog.unpublished_matching_tables(publication, &config.source.tables).await?;
        if !missing.is_empty() {
            let hint = format!("{} (or run `pgcdc setup -c FILE`, which adds them)", add_tables_sql(publication, &missing));
            let detail = format!("{} match source.tables but are not in publication {publication}: not replicated", table_names(&missing));
            items.push(item(Level::Blocker, "unpublished tables", detail, Some(&hint)));
        }
    } else {
        items.push(item(Level::Blocker, "publication", format!("{publication} does not exist"), Some("run `pgcdc setup -c FILE`")));
    }
    let slot = &config.source.slot;
    let slot_state = catalog.slot(slot).await?;
    items.extend(super::check_server::capacity(&catalog, slot_state.is_some()).await?);
    match slot_state {
        None => items.push(item(Level::Warn, "slot", format!("{slot} does not exist yet"), Some("`pgcdc setup` or the first `pgcdc run` creates it"))),
        Some(s) => {
            let lag = match (catalog.current_wal_lsn().await, s.confirmed_flush_lsn) {
                (Ok(cur), Some(c)) => format!(", {} bytes behind", cur.0.saturating_sub(c.0)),
                _ => String::new(),
            };
            let detail = format!(
                "{slot}: plugin {}, confirmed {}{lag}, wal_status {}",
                s.plugin.clone().unwrap_or_default(),
                s.confirmed_flush_lsn.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                s.wal_status.clone().unwrap_or_else(|| "-".into())
            );
            items.push(match SlotProblem::of(&s) {
                Some(SlotProblem::WrongPlugin { .. }) => item(Level::Blocker, "slot", detail, Some("pgcdc needs a pgoutput slot: choose another source.slot")),
                Some(SlotProblem::Lost) => item(Level::Blocker, "slot", detail, Some("the slot is invalidated (the server removed WAL it still needed): `pgcdc run --resync` makes a new slot and loads every table again")),
                Some(SlotProblem::InUse { pid }) => item(Level::Warn, "slot", format!("{detail}; in use by PID {}", pid.unwrap_or(0)), Some("another process reads this slot; `run` will fail until it stops")),
                None => item(Level::Ok, "slot", detail, None),
            });
        }
    }
    // Opening a sink changes nothing in its target; the probe looks without writing.
    let probed = crate::storage::Targets::open(config).and_then(|targets| {
        let sinks = open_sinks(config, &targets)?;
        for t in targets.all() {
            t.probe_writable()?;
        }
        Ok(sinks)
    });
    match probed {
        Ok(sinks) => {
            for s in sinks {
                items.push(item(Level::Ok, "target", format!("{} is writable", s.describe()), None));
            }
        }
        Err(e) => items.push(failed("target", e)),
    }
    match crate::sink::dead_letter::DeadLetters::probe(config) {
        Ok(Some(location)) => items.push(item(Level::Ok, "dead letters", format!("{location} is writable"), None)),
        Ok(None) => {}
        Err(e) => items.push(failed("dead letters", e)),
    }
    Ok(items)
}
