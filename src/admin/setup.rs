//! `pgcdc setup`: apply `migrations/` in order, idempotently, and record what was applied.
//!
//! Each migration is applied only when what it creates is missing (a second run applies
//! nothing and says so): `001_publication` (or `ALTER PUBLICATION … ADD TABLE` for tables
//! matching `source.tables` that it lacks), `002_slot`, and with `--admin-url` the
//! least-privilege role `003_role` (the user in `source.url`) and `004_grants` (USAGE and
//! SELECT on the published tables it cannot read yet). `--print` shows the same SQL for a
//! DBA instead of running it. What was applied is recorded as JSON in the publication's
//! comment (`obj_description(oid, 'pg_publication')`): migration file → UTC time.

use super::connect_catalog;
use crate::config::Config;
use crate::config::TableFilter;
use crate::error::{Error, Result};
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::quote::{qualified, quote_ident, quote_literal};
use crate::source::rules::{table_spec, RulePlan};
use crate::source::sql::db_error_text;

const PUBLICATION_SQL: &str = include_str!("../../migrations/001_publication.sql");
const SLOT_SQL: &str = include_str!("../../migrations/002_slot.sql");
const ROLE_SQL: &str = include_str!("../../migrations/003_role.sql");
const GRANTS_SQL: &str = include_str!("../../migrations/004_grants.sql");

/// How `setup` runs.
#[derive(Default)]
pub struct SetupOptions {
    /// Connect with this URL instead of `source.url`, and also create the role in
    /// `source.url` and grant it what it needs (`003_role`, `004_grants`).
    pub admin_url: Option<String>,
    /// Print the SQL instead of running it; changes nothing.
    pub print: bool,
}

/// What `setup` did (or, with `--print`, would do): one line per object, and the SQL.
pub struct SetupReport {
    pub actions: Vec<String>,
    /// `-- file: action` then the statement, for every migration that (would) apply.
    pub sql: Vec<String>,
}

/// A migration that applies: its file, what it does, and its SQL with values filled in.
/// `shown` is the SQL as printed (the password replaced by a psql variable).
pub(super) struct Step {
    pub(super) file: &'static str,
    /// Past tense, printed once applied ("created replication slot s (pgoutput)").
    pub(super) action: String,
    pub(super) sql: String,
    pub(super) shown: String,
    pub(super) hint: &'static str,
}

/// The rule plan for the tables the publication has or will have after this setup.
async fn plan_rules(catalog: &Catalog, config: &Config, tables: &[(String, String)], exists: bool) -> Result<RulePlan> {
    if !exists {
        return crate::source::rules::plan_tables(catalog, config, tables, config.source.tables.is_empty()).await;
    }
    let publication = &config.source.publication;
    let mut all = catalog.selected_published_tables(publication, &config.source.tables).await?;
    for t in catalog.unpublished_matching_tables(publication, &config.source.tables).await? {
        if !all.contains(&t) {
            all.push(t);
        }
    }
    crate::source::rules::plan_tables(catalog, config, &all, catalog.publication_all_tables(publication).await?).await
}

pub(super) fn sql_body(template: &str) -> String {
    template.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n")
}

pub async fn setup(config: &Config, opts: &SetupOptions) -> Result<SetupReport> {
    let role_info = ConnInfo::from_url(config.source.url.as_deref())?;
    let info = match &opts.admin_url {
        Some(url) => ConnInfo::from_url(Some(url))?,
        None => role_info.clone(),
    };
    let catalog = connect_catalog(&info).await?;
    let mut actions = Vec::new();
    let mut steps = Vec::new();
    let publication = &config.source.publication;

    let tables = matching_tables(&catalog.client, &config.source.tables).await?;
    if !config.source.tables.is_empty() && tables.is_empty() {
        return Err(Error::config(format!("source.tables {:?} matches no table", config.source.tables))
            .with_hint("patterns are schema.table with * wildcards, e.g. \"public.*\""));
    }
    let publication_exists = catalog.publication_exists(publication).await?;
    // The rules, for the tables the publication will have (checked first: a bad rule
    // changes nothing).
    let rule_plan = plan_rules(&catalog, config, &tables, publication_exists).await?;
    let spec = |s: &str, t: &str| match rule_plan.tables.iter().find(|p| p.schema == s && p.table == t) {
        Some(p) => table_spec(p),
        None => qualified(s, t),
    };
    if !publication_exists {
        let target = if config.source.tables.is_empty() {
            "ALL TABLES".to_string()
        } else {
            format!("TABLE {}", tables.iter().map(|(s, t)| spec(s, t)).collect::<Vec<_>>().join(", "))
        };
        let sql = sql_body(PUBLICATION_SQL).replace("{{publication}}", &quote_ident(publication)).replace("{{tables}}", &target);
        steps.push(Step {
            file: "001_publication.sql",
            action: format!("created publication {publication} for {target}"),
            shown: sql.clone(),
            sql,
            hint: "FOR ALL TABLES needs a superuser; list tables in source.tables, or run setup as the tables' owner (--admin-url)",
        });
    } else if !config.source.tables.is_empty() {
        // The same notion of "missing" as `check` and `validate`: a partitioned table whose
        // partitions are published (or the other way round) is not added again.
        for (s, t) in &catalog.unpublished_matching_tables(publication, &config.source.tables).await? {
            let sql = format!("ALTER PUBLICATION {} ADD TABLE {};", quote_ident(publication), spec(s, t));
            steps.push(Step {
                file: "001_publication.sql",
                action: format!("added {s}.{t} to publication {publication}"),
                shown: sql.clone(),
                sql,
                hint: "only the table's owner or a superuser may add it: run setup with --admin-url",
            });
        }
    }
    if publication_exists && steps.is_empty() {
        actions.push(format!("publication {publication} exists"));
    }
    if publication_exists {
        steps.extend(super::setup_rules::rule_steps(&catalog, publication, &rule_plan, &mut actions).await?);
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
            steps.push(Step {
                file: "002_slot.sql",
                action: format!("created replication slot {slot} (pgoutput)"),
                shown: sql.clone(),
                sql,
                hint: "the role needs REPLICATION; the server needs wal_level = logical and a free max_replication_slots entry",
            });
        }
    }

    if opts.admin_url.is_some() {
        let planned: Vec<(String, String)> = if publication_exists { published_tables(&catalog, publication).await? } else { tables.clone() };
        steps.extend(role_steps(&catalog, &role_info, &planned, &mut actions).await?);
    }

    let mut sql_lines = Vec::new();
    for step in &steps {
        sql_lines.push(format!("-- {}: {}\n{}", step.file, step.action, step.shown));
    }
    if opts.print {
        if let Some(comment) = super::setup_rules::record_sql(publication, &rule_plan) {
            sql_lines.push(format!("-- 005_rules.sql: record the row filters for pgcdc\n{comment}"));
        }
        actions.extend(steps.iter().map(|s| format!("would apply {}: {}", s.file, s.action)));
        if steps.is_empty() {
            actions.push("nothing to apply".into());
        }
        return Ok(SetupReport { actions, sql: sql_lines });
    }
    for step in &steps {
        catalog.client.batch_execute(&step.sql).await.map_err(|e| {
            // The SQL text may hold the password: the error names the migration, not the SQL.
            Error::runtime(format!("{} ({}): {}", doing(&step.action), step.file, db_error_text(&e))).with_hint(step.hint)
        })?;
        actions.push(step.action.clone());
    }
    if steps.is_empty() {
        actions.push("nothing to apply: everything exists".into());
    } else if let Err(e) = record(&catalog, publication, &steps, &rule_plan).await {
        actions.push(format!("warning: could not record the applied migrations in publication {publication}'s comment: {}", e.message));
    }
    Ok(SetupReport { actions, sql: sql_lines })
}

/// "creating …" for "created …": what a failed step was doing.
fn doing(action: &str) -> String {
    for (past, present) in [("created ", "creating "), ("added ", "adding "), ("granted ", "granting ")] {
        if let Some(rest) = action.strip_prefix(past) {
            return format!("{present}{rest}");
        }
    }
    action.to_string()
}

/// `003_role` when the role is missing, `004_grants` for what it cannot read yet. A role
/// that exists keeps its attributes (a line says so when it lacks REPLICATION).
async fn role_steps(catalog: &Catalog, role: &ConnInfo, tables: &[(String, String)], actions: &mut Vec<String>) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let name = quote_ident(&role.user);
    let existing = catalog
        .client
        .query_opt("SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = $1", &[&role.user])
        .await
        .map_err(|e| Error::runtime(format!("reading pg_roles: {}", db_error_text(&e))))?;
    let exists = existing.is_some();
    match existing {
        Some(r) => {
            actions.push(format!("role {} exists", role.user));
            if !r.get::<_, bool>(0) && !r.get::<_, bool>(1) {
                actions.push(format!("warning: role {} has no REPLICATION: ALTER ROLE {name} REPLICATION", role.user));
            }
        }
        None => {
            let template = sql_body(ROLE_SQL).replace("{{role}}", &name);
            let (sql, shown) = match &role.password {
                Some(p) => (template.replace("{{password}}", &format!("PASSWORD {}", quote_literal(p))), template.replace("{{password}}", "PASSWORD :'password'")),
                None => (template.replace(" {{password}}", ""), template.replace(" {{password}}", "")),
            };
            steps.push(Step { file: "003_role.sql", action: format!("created role {} (LOGIN REPLICATION, nothing else)", role.user), sql, shown, hint: "creating a role needs CREATEROLE or a superuser in --admin-url" });
        }
    }
    // For a role that does not exist yet, nothing is granted.
    let mut schemas: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for (s, t) in tables {
        let row = catalog
            .client
            .query_one(
                "SELECT NOT $3 OR NOT has_schema_privilege($1, n.oid, 'USAGE'), NOT $3 OR NOT has_table_privilege($1, c.oid, 'SELECT')
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $2 AND c.relname = $4",
                &[&role.user, s, &exists, t],
            )
            .await
            .map_err(|e| Error::runtime(format!("reading the privileges of role {} on {s}.{t}: {}", role.user, db_error_text(&e))))?;
        if row.get::<_, bool>(0) && !schemas.contains(&quote_ident(s)) {
            schemas.push(quote_ident(s));
        }
        if row.get::<_, bool>(1) {
            missing.push(qualified(s, t));
        }
    }
    if schemas.is_empty() && missing.is_empty() {
        if exists {
            actions.push(format!("role {} can read the {} published table(s)", role.user, tables.len()));
        }
        return Ok(steps);
    }
    let sql = sql_body(GRANTS_SQL)
        .lines()
        .filter(|l| {
            let unused = (l.contains("{{schemas}}") && schemas.is_empty()) || (l.contains("{{tables}}") && missing.is_empty());
            !unused
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{{schemas}}", &schemas.join(", "))
        .replace("{{tables}}", &missing.join(", "))
        .replace("{{role}}", &name);
    let action = format!("granted role {} SELECT on {} table(s) and USAGE on {} schema(s)", role.user, missing.len(), schemas.len());
    steps.push(Step { file: "004_grants.sql", action, shown: sql.clone(), sql, hint: "granting needs the tables' owner or a superuser in --admin-url" });
    Ok(steps)
}

/// The publication's tables, and the partitioned tables above them (a full load may read
/// through the root).
async fn published_tables(catalog: &Catalog, publication: &str) -> Result<Vec<(String, String)>> {
    let rows = catalog
        .client
        .query(
            "SELECT DISTINCT n.nspname::text, c.relname::text
               FROM pg_publication_tables p
               JOIN pg_namespace pn ON pn.nspname = p.schemaname
               JOIN pg_class pc ON pc.relnamespace = pn.oid AND pc.relname = p.tablename
               CROSS JOIN LATERAL (SELECT pc.oid AS relid UNION SELECT relid FROM pg_partition_ancestors(pc.oid)) a
               JOIN pg_class c ON c.oid = a.relid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE p.pubname = $1
              ORDER BY 1, 2",
            &[&publication],
        )
        .await
        .map_err(|e| Error::runtime(format!("reading the published tables: {}", db_error_text(&e))))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Merges the applied migrations, and the row filters the rules put into the publication
/// (`crate::source::rules::RECORD_KEY`), into the JSON in the publication's comment.
async fn record(catalog: &Catalog, publication: &str, steps: &[Step], rules: &RulePlan) -> Result<()> {
    let q = |e: tokio_postgres::Error| Error::runtime(db_error_text(&e));
    if !catalog.publication_exists(publication).await? {
        return Ok(());
    }
    let mut comment = crate::source::rules::publication_comment(catalog, publication).await?;
    let mut log: serde_json::Map<String, serde_json::Value> =
        comment.get("pgcdc_setup").and_then(|m| m.as_object().cloned()).unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for s in steps {
        log.insert(s.file.to_string(), serde_json::Value::String(now.clone()));
    }
    comment.insert("pgcdc_setup".into(), serde_json::Value::Object(log));
    comment.insert(crate::source::rules::RECORD_KEY.into(), super::setup_rules::recorded(catalog, publication, rules).await?);
    let comment = serde_json::Value::Object(comment).to_string();
    catalog
        .client
        .batch_execute(&format!("COMMENT ON PUBLICATION {} IS {}", quote_ident(publication), quote_literal(&comment)))
        .await
        .map_err(q)
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
