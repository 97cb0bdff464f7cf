//! `setup`'s part for the `[[rule]]`s (PostgreSQL 15+): `005_rules` puts each published
//! table's column list and row filter where the rules say (`crate::source::rules`), and
//! [`recorded`] is what `setup` writes into the publication's comment so that `run` knows
//! which filters the publication applies.

use super::setup::{sql_body, Step};
use crate::error::Result;
use crate::source::catalog::Catalog;
use crate::source::quote::{qualified, quote_ident, quote_literal};
use crate::source::rules::{recorded_filters, table_spec, Place, RulePlan, TablePlan, RECORD_KEY};

const RULES_SQL: &str = include_str!("../../migrations/005_rules.sql");

/// A `005_rules` step for every published table whose entry differs from its plan, and for
/// every table `setup` once gave a row filter that no rule asks for any more (its entry is
/// reset to every column and row).
pub(super) async fn rule_steps(catalog: &Catalog, publication: &str, plan: &RulePlan, actions: &mut Vec<String>) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for p in plan.tables.iter().filter(|p| p.published) {
        if publication_agrees(p) {
            actions.push(format!("publication {publication} applies the rules of {}", p.name()));
            continue;
        }
        let what = match (&p.server_columns, &p.server_filter) {
            (Some(_), Some(_)) => "its column list and row filter",
            (Some(_), None) => "its column list",
            (None, Some(_)) => "its row filter",
            (None, None) => "every column and row (no rule runs in the server)",
        };
        steps.push(step(publication, &qualified(&p.schema, &p.table), &table_spec(p), format!("set {}'s entry in publication {publication} to {what}", p.name())));
    }
    for table in recorded_filters(catalog, publication).await?.keys() {
        if plan.tables.iter().any(|p| &p.name() == table) {
            continue;
        }
        let Some((schema, name)) = table.split_once('.') else { continue };
        if catalog.publication_entry(publication, schema, name).await?.is_some_and(|e| e.row_filter.is_some()) {
            let q = qualified(schema, name);
            steps.push(step(publication, &q, &q, format!("removed the row filter of {table} from publication {publication}: no rule asks for it any more")));
        }
    }
    Ok(steps)
}

/// Whether the publication's entry of `p` is what the plan wants.
fn publication_agrees(p: &TablePlan) -> bool {
    let names: Vec<&str> = p.full.columns.iter().map(|c| c.name.as_str()).collect();
    let published: Vec<&str> = match &p.entry.attnames {
        Some(a) => names.iter().copied().filter(|n| a.iter().any(|x| x == n)).collect(),
        None => names.clone(),
    };
    let wanted: Vec<&str> = match &p.server_columns {
        Some(c) => c.iter().map(String::as_str).collect(),
        None => names,
    };
    let filter_ok = match &p.server_filter {
        None => p.entry.row_filter.is_none(),
        Some(_) => p.filter == Place::Server,
    };
    published == wanted && filter_ok
}

fn step(publication: &str, table: &str, spec: &str, action: String) -> Step {
    let sql = sql_body(RULES_SQL)
        .replace("{{publication}}", &quote_ident(publication))
        .replace("{{table_spec}}", spec)
        .replace("{{table}}", table);
    Step {
        file: "005_rules.sql",
        action,
        shown: sql.clone(),
        sql,
        hint: "changing a publication needs the owner of the publication and of the table: run setup with --admin-url; PostgreSQL's message says what else it refused",
    }
}

/// The `pgcdc_rules` record: per table with a row filter in the publication, the rule's
/// `where` and the filter as the server now shows it.
pub(super) async fn recorded(catalog: &Catalog, publication: &str, plan: &RulePlan) -> Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for p in &plan.tables {
        let Some(filter) = &p.server_filter else { continue };
        let now = catalog.publication_entry(publication, &p.schema, &p.table).await?.and_then(|e| e.row_filter);
        if let Some(rowfilter) = now {
            map.insert(p.name(), serde_json::json!({ "where": filter, "rowfilter": rowfilter }));
        }
    }
    Ok(serde_json::Value::Object(map))
}

/// For `setup --print`: the statement that records the filters the printed SQL puts into
/// the publication (`None` when it puts none), so that `run` knows the publication applies them.
pub(super) fn record_sql(publication: &str, plan: &RulePlan) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> = plan
        .tables
        .iter()
        .filter_map(|p| p.server_filter.as_ref().map(|f| (p.name(), serde_json::json!({ "where": f }))))
        .collect();
    if map.is_empty() {
        return None;
    }
    let comment = serde_json::json!({ RECORD_KEY: map }).to_string();
    Some(format!("COMMENT ON PUBLICATION {} IS {};", quote_ident(publication), quote_literal(&comment)))
}
