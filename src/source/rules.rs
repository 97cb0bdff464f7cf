//! The `[[rule]]`s checked against the source, and where each one runs (SPEC 5.5).
//!
//! [`plan`] is called by `check`, `setup`, `run` and `validate` before they do anything.
//! It refuses (configuration error, exit 2) a rule whose patterns match no published,
//! selected table, a column a rule names that none of its tables has, a key column
//! dropped, a row filter PostgreSQL rejects, two columns or two tables given one name.
//!
//! Then it decides, per table, where the column and row rules run:
//!
//! * **In the server** (PostgreSQL 15+): the publication's column list leaves the dropped
//!   columns out, and its row filter is the rules' `where`; nothing excluded leaves the
//!   database. `setup` writes both ([`TablePlan::server_columns`],
//!   [`TablePlan::server_filter`]) and records each filter it wrote, with the text the
//!   server deparsed it to, in the publication's comment (`pgcdc_rules`): a filter runs in
//!   the server exactly when the publication's current filter is that record's.
//! * **In pgcdc** otherwise: an older server, a `FOR ALL TABLES` publication, a column list
//!   PostgreSQL would refuse (`REPLICA IDENTITY FULL` needs every column), a filter reading
//!   columns outside the replica identity (PostgreSQL then refuses updates and deletes on
//!   the table), or a publication `setup` has not updated yet. The pipeline drops the
//!   columns and evaluates the filter itself (`crate::pipeline::row_filter`).
//!
//! The full load and `validate` apply every rule in their SQL either way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::catalog::Catalog;
use super::publication::PublicationEntry;
use super::quote::{qualified, quote_ident};
use crate::config::{Config, TableFilter};
use crate::error::{Error, Result};
use crate::model::TableSchema;
use crate::rules::columns::referenced_columns;
use crate::rules::TableRules;

/// Where a rule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The table has no such rule.
    Nothing,
    /// In the publication: the data never leaves the server.
    Server,
    /// In pgcdc, for the reason given; `fixable` when `setup` (or a replica identity) would
    /// move it into the server.
    Pgcdc { why: String, fixable: bool },
}

/// The rules of one published, selected table that at least one rule matches.
#[derive(Debug)]
pub struct TablePlan {
    pub schema: String,
    pub table: String,
    pub rules: TableRules,
    /// The table's current schema, every column (published or not).
    pub full: Arc<TableSchema>,
    /// Whether the publication has the table now (else `setup` is about to add it).
    pub published: bool,
    /// The publication's current column list and row filter of the table.
    pub entry: PublicationEntry,
    /// Where `drop_columns` runs.
    pub columns: Place,
    /// Where `where` runs.
    pub filter: Place,
    /// The column list the publication should have (`None`: none, every column).
    pub server_columns: Option<Vec<String>>,
    /// The row filter the publication should have (`None`: none).
    pub server_filter: Option<String>,
    /// Columns the publication leaves out that no rule drops (a disagreement `check` reports).
    pub unruled_excluded: Vec<String>,
}

impl TablePlan {
    pub fn name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// Every table's plan, and what the server can do.
#[derive(Debug, Default)]
pub struct RulePlan {
    pub tables: Vec<TablePlan>,
}

impl RulePlan {
    /// `schema.table` of the tables whose rule filter the publication applies.
    pub fn server_filters(&self) -> HashSet<String> {
        self.tables.iter().filter(|t| t.filter == Place::Server).map(TablePlan::name).collect()
    }
}

/// The key under which `setup` records filters in the publication's comment.
pub const RECORD_KEY: &str = "pgcdc_rules";

/// Checks `config.rules` against the source and places them (module docs). Without rules,
/// or without the publication (reported elsewhere), an empty plan.
pub async fn plan(catalog: &Catalog, config: &Config) -> Result<RulePlan> {
    let publication = &config.source.publication;
    if config.rules.is_empty() || !catalog.publication_exists(publication).await? {
        return Ok(RulePlan::default());
    }
    let tables = catalog.selected_published_tables(publication, &config.source.tables).await?;
    let all_tables = catalog.publication_all_tables(publication).await?;
    plan_tables(catalog, config, &tables, all_tables).await
}

/// [`plan`] for the publication `tables` (published, or about to be by `setup`), `FOR ALL
/// TABLES` or not; the publication's current entries are read when it exists.
pub async fn plan_tables(catalog: &Catalog, config: &Config, tables: &[(String, String)], all_tables: bool) -> Result<RulePlan> {
    let publication = &config.source.publication;
    if config.rules.is_empty() {
        return Ok(RulePlan::default());
    }
    let version = catalog.server_version_num().await?;
    let recorded = recorded_filters(catalog, publication).await?;

    // Each rule must match a table; its columns must exist in one of them.
    let mut fulls: HashMap<(String, String), Arc<TableSchema>> = HashMap::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let what = rule.describe(i + 1);
        let patterns = TableFilter::new(&rule.tables.list());
        let matched: Vec<&(String, String)> = tables.iter().filter(|(s, t)| patterns.matches(s, t)).collect();
        if matched.is_empty() {
            let names: Vec<String> = tables.iter().take(12).map(|(s, t)| format!("{s}.{t}")).collect();
            return Err(Error::config(format!("{what} matches no table that publication {publication} publishes and source.tables selects"))
                .with_hint(format!("patterns are schema.table with * wildcards; the tables are: {}", names.join(", "))));
        }
        for (s, t) in &matched {
            if let std::collections::hash_map::Entry::Vacant(e) = fulls.entry((s.clone(), t.clone())) {
                e.insert(catalog.table_schema(s, t).await?);
            }
        }
        let named = rule.drop_columns.iter().chain(&rule.text_columns).chain(rule.rename_columns.keys());
        for column in named {
            let known = matched.iter().any(|(s, t)| fulls[&(s.clone(), t.clone())].columns.iter().any(|c| &c.name == column));
            if !known {
                let (s, t) = matched[0];
                let columns: Vec<&str> = fulls[&(s.clone(), t.clone())].columns.iter().map(|c| c.name.as_str()).collect();
                return Err(Error::config(format!("{what} names column `{column}`, which none of its tables has"))
                    .with_hint(format!("column names are case-sensitive, written without quotes; {s}.{t} has: {}", columns.join(", "))));
            }
        }
        if let Some(filter) = &rule.filter {
            for (s, t) in &matched {
                check_filter(catalog, s, t, filter).await.map_err(|e| e.context(what.clone()))?;
            }
        }
    }

    // Target names are unique; every table shapes.
    let mut targets: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    let mut plans = Vec::new();
    for (s, t) in tables {
        let rules = TableRules::resolve(&config.rules, s, t);
        let target = (rules.target_schema.clone(), rules.target_table.clone());
        if let Some((os, ot)) = targets.insert(target.clone(), (s.clone(), t.clone())) {
            return Err(Error::config(format!("the rules write {os}.{ot} and {s}.{t} both as {}.{}", target.0, target.1))
                .with_hint("give each table its own target name with `rename`"));
        }
        if rules.is_empty() {
            continue;
        }
        let full = match fulls.get(&(s.clone(), t.clone())) {
            Some(f) => f.clone(),
            None => catalog.table_schema(s, t).await?,
        };
        rules.shape(&full)?;
        let entry = catalog.publication_entry(publication, s, t).await?;
        let published = entry.is_some();
        let mut plan = place(version, all_tables, publication, &recorded, s, t, rules, full, entry.unwrap_or_default());
        plan.published = published;
        plans.push(plan);
    }
    Ok(RulePlan { tables: plans })
}

/// Where `rules` of `schema.table` run, and what the publication should hold.
#[allow(clippy::too_many_arguments)]
fn place(
    version: u32,
    all_tables: bool,
    publication: &str,
    recorded: &HashMap<String, (String, Option<String>)>,
    schema: &str,
    table: &str,
    rules: TableRules,
    full: Arc<TableSchema>,
    entry: PublicationEntry,
) -> TablePlan {
    let name = format!("{schema}.{table}");
    let capable = if version < 150000 {
        Err(format!("PostgreSQL {} has no publication column lists or row filters (15+)", version / 10000))
    } else if all_tables {
        Err(format!("publication {publication} is FOR ALL TABLES, which takes no column lists or row filters"))
    } else {
        Ok(())
    };
    let dropped: Vec<&str> = full.columns.iter().filter(|c| rules.drop.contains(&c.name)).map(|c| c.name.as_str()).collect();
    let full_identity = full.replica_identity == b'f';
    let server_columns = (capable.is_ok() && !full_identity && !dropped.is_empty())
        .then(|| full.columns.iter().filter(|c| !rules.drop.contains(&c.name)).map(|c| c.name.clone()).collect());
    let columns = if dropped.is_empty() {
        Place::Nothing
    } else if entry.attnames.as_ref().is_some_and(|a| dropped.iter().all(|d| !a.iter().any(|n| n == d))) {
        Place::Server
    } else {
        match &capable {
            Err(why) => Place::Pgcdc { why: why.clone(), fixable: false },
            Ok(()) if full_identity => Place::Pgcdc {
                why: "the table has REPLICA IDENTITY FULL, and PostgreSQL then requires a column list to hold every column".into(),
                fixable: false,
            },
            Ok(()) => Place::Pgcdc { why: "the publication still publishes them: `pgcdc setup` writes its column list".into(), fixable: true },
        }
    };
    let filter_text = rules.row_filter();
    let names: Vec<&str> = full.columns.iter().map(|c| c.name.as_str()).collect();
    let outside: Vec<&str> = filter_text
        .as_deref()
        .map(|f| referenced_columns(f, &names))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !full_identity && !full.key_names().contains(n))
        .collect();
    let server_filter = filter_text.clone().filter(|_| capable.is_ok() && outside.is_empty());
    let filter = match &filter_text {
        None => Place::Nothing,
        Some(f) if entry.row_filter.is_some() && recorded.get(&name).is_some_and(|(w, r)| w == f && r.as_ref().is_none_or(|r| Some(r) == entry.row_filter.as_ref())) => Place::Server,
        Some(_) => match &capable {
            Err(why) => Place::Pgcdc { why: why.clone(), fixable: false },
            Ok(()) if !outside.is_empty() => Place::Pgcdc {
                why: format!(
                    "it reads {}, outside the replica identity, and PostgreSQL refuses updates and deletes under such a publication filter; an update whose old row pgcdc cannot see is written as an update, or as a delete of its key",
                    outside.join(", ")
                ),
                fixable: true,
            },
            Ok(()) => Place::Pgcdc { why: "the publication does not apply it yet: `pgcdc setup` writes it there".into(), fixable: true },
        },
    };
    let unruled_excluded = match &entry.attnames {
        Some(a) => full.columns.iter().filter(|c| !a.contains(&c.name) && !rules.drop.contains(&c.name)).map(|c| c.name.clone()).collect(),
        None => Vec::new(),
    };
    TablePlan { schema: schema.into(), table: table.into(), rules, full, published: true, entry, columns, filter, server_columns, server_filter, unruled_excluded }
}

/// Whether PostgreSQL accepts `filter` as a row filter of `schema.table`: prepared (never
/// run) as `SELECT 1 FROM ONLY t WHERE (filter)`, which catches syntax errors, unknown
/// columns, non-boolean results and several statements.
async fn check_filter(catalog: &Catalog, schema: &str, table: &str, filter: &str) -> Result<()> {
    let sql = format!("SELECT 1 FROM ONLY {} WHERE ({filter})", qualified(schema, table));
    catalog.client.prepare(&sql).await.map(|_| ()).map_err(|e| {
        Error::config(format!("where = {filter:?} is not a valid row filter of {schema}.{table}: {}", super::sql::db_error_text(&e)))
            .with_hint("write a PostgreSQL boolean expression over the table's columns, as in a WHERE clause, e.g. where = \"country = 'NG'\"")
    })
}

/// The filters `setup` recorded in the publication's comment: `schema.table` → (the rule's
/// `where`, the row filter the server deparsed it to when `setup` applied it; absent when
/// a DBA applied `setup --print`'s SQL).
pub async fn recorded_filters(catalog: &Catalog, publication: &str) -> Result<HashMap<String, (String, Option<String>)>> {
    let comment = publication_comment(catalog, publication).await?;
    let mut out = HashMap::new();
    if let Some(map) = comment.get(RECORD_KEY).and_then(|v| v.as_object()) {
        for (table, v) in map {
            if let Some(w) = v.get("where").and_then(|x| x.as_str()) {
                out.insert(table.clone(), (w.to_string(), v.get("rowfilter").and_then(|x| x.as_str()).map(str::to_string)));
            }
        }
    }
    Ok(out)
}

/// The JSON object in the publication's comment (empty when there is none or it is not JSON).
pub async fn publication_comment(catalog: &Catalog, publication: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    let row = catalog
        .client
        .query_opt("SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1", &[&publication])
        .await
        .map_err(|e| super::sql::query_error("reading the publication's comment", &e))?;
    Ok(row
        .and_then(|r| r.get::<_, Option<String>>(0))
        .and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default())
}

/// `"schema"."table" ("c1", …) WHERE (filter)`: a table of a publication with the column
/// list and row filter of `plan` (the form of `CREATE PUBLICATION … FOR TABLE` and `ALTER
/// PUBLICATION … ADD TABLE`).
pub fn table_spec(plan: &TablePlan) -> String {
    let mut spec = qualified(&plan.schema, &plan.table);
    if let Some(cols) = &plan.server_columns {
        spec.push_str(&format!(" ({})", cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")));
    }
    if let Some(f) = &plan.server_filter {
        spec.push_str(&format!(" WHERE ({f})"));
    }
    spec
}
