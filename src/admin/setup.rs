//! `pgcdc setup`: apply `migrations/` (publication, slot). Idempotent: what exists is kept,
//! tables matching `source.tables` that are missing from the publication are added.

use super::connect_catalog;
use crate::source::quote::{qualified, quote_ident, quote_literal};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::config::TableFilter;
use crate::source::conninfo::ConnInfo;
use crate::source::sql::db_error_text;

const PUBLICATION_SQL: &str = include_str!("../../migrations/001_publication.sql");
const SLOT_SQL: &str = include_str!("../../migrations/002_slot.sql");

/// What `setup` did, one line per action.
pub struct SetupReport {
    pub actions: Vec<String>,
}

fn sql_body(template: &str) -> String {
    template.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n")
}

pub async fn setup(config: &Config) -> Result<SetupReport> {
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let catalog = connect_catalog(&info).await?;
    let client = &catalog.client;
    let mut actions = Vec::new();
    let publication = &config.source.publication;

    let tables = matching_tables(client, &config.source.tables).await?;
    if !config.source.tables.is_empty() && tables.is_empty() {
        return Err(Error::config(format!("source.tables {:?} matches no table", config.source.tables))
            .with_hint("patterns are schema.table with * wildcards, e.g. \"public.*\""));
    }
    if !catalog.publication_exists(publication).await? {
        let target = if config.source.tables.is_empty() {
            "ALL TABLES".to_string()
        } else {
            format!("TABLE {}", tables.iter().map(|(s, t)| qualified(s, t)).collect::<Vec<_>>().join(", "))
        };
        let sql = sql_body(PUBLICATION_SQL)
            .replace("{{publication}}", &quote_ident(publication))
            .replace("{{tables}}", &target);
        client.batch_execute(&sql).await.map_err(|e| {
            Error::runtime(format!("creating publication {publication}: {}", db_error_text(&e)))
                .with_hint("FOR ALL TABLES needs a superuser; list tables in source.tables, or run setup as the tables' owner")
        })?;
        actions.push(format!("created publication {publication} for {target}"));
    } else if !config.source.tables.is_empty() {
        // The same notion of "missing" as `check` and `validate`: a partitioned table whose
        // partitions are published (or the other way round) is not added again.
        for (s, t) in &catalog.unpublished_matching_tables(publication, &config.source.tables).await? {
            let sql = format!("ALTER PUBLICATION {} ADD TABLE {}", quote_ident(publication), qualified(s, t));
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| Error::runtime(format!("adding {s}.{t} to publication {publication}: {}", db_error_text(&e))))?;
            actions.push(format!("added {s}.{t} to publication {publication}"));
        }
        if actions.is_empty() {
            actions.push(format!("publication {publication} exists"));
        }
    } else {
        actions.push(format!("publication {publication} exists"));
    }

    let slot = &config.source.slot;
    match catalog.slot(slot).await? {
        Some(s) if s.plugin.as_deref() != Some("pgoutput") => {
            return Err(Error::runtime(format!("slot {slot} exists but uses plugin {:?}", s.plugin.unwrap_or_default()))
                .with_hint("choose another source.slot"));
        }
        Some(_) => actions.push(format!("replication slot {slot} exists")),
        None => {
            let sql = sql_body(SLOT_SQL).replace("{{slot}}", &quote_literal(slot));
            client.batch_execute(&sql).await.map_err(|e| {
                Error::runtime(format!("creating replication slot {slot}: {}", db_error_text(&e)))
                    .with_hint("the role needs REPLICATION; the server needs wal_level = logical and a free max_replication_slots entry")
            })?;
            actions.push(format!("created replication slot {slot} (pgoutput)"));
        }
    }
    Ok(SetupReport { actions })
}

/// User tables matching the patterns (every user table when there are none), except
/// unlogged and temporary ones, which cannot be published.
pub async fn matching_tables(client: &tokio_postgres::Client, patterns: &[String]) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p'
                AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
              ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| Error::runtime(format!("listing tables: {}", db_error_text(&e))))?;
    let filter = TableFilter::new(patterns);
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(s, t)| filter.matches(s, t))
        .collect())
}

/// `pgcdc teardown --yes`: drop the slot and the publication.
pub async fn teardown(config: &Config) -> Result<Vec<String>> {
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let catalog = connect_catalog(&info).await?;
    let mut actions = Vec::new();
    let slot = &config.source.slot;
    match catalog.slot(slot).await? {
        Some(s) if s.active => {
            return Err(Error::runtime(format!("slot {slot} is in use by PID {}", s.active_pid.unwrap_or(0)))
                .with_hint("stop pgcdc (or the other consumer) first"));
        }
        Some(_) => {
            catalog
                .client
                .execute("SELECT pg_drop_replication_slot($1)", &[slot])
                .await
                .map_err(|e| Error::runtime(format!("dropping slot {slot}: {}", db_error_text(&e))))?;
            actions.push(format!("dropped replication slot {slot}"));
        }
        None => actions.push(format!("replication slot {slot} did not exist")),
    }
    let publication = &config.source.publication;
    if catalog.publication_exists(publication).await? {
        catalog
            .client
            .batch_execute(&format!("DROP PUBLICATION {}", quote_ident(publication)))
            .await
            .map_err(|e| Error::runtime(format!("dropping publication {publication}: {}", db_error_text(&e))))?;
        actions.push(format!("dropped publication {publication}"));
    } else {
        actions.push(format!("publication {publication} did not exist"));
    }
    Ok(actions)
}
