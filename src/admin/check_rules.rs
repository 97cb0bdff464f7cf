//! `check`'s findings about the `[[rule]]`s: a bad rule is a blocker (its error), and for
//! each table a rule matches, where its rules run and why (`crate::source::rules`), and
//! where the publication disagrees with them.

use super::check::{item, CheckItem, Level};
use crate::source::rules::{Place, RulePlan, TablePlan};

const WHAT: &str = "rules";

/// The findings of one plan.
pub(super) fn findings(publication: &str, plan: &RulePlan) -> Vec<CheckItem> {
    let mut items = Vec::new();
    for p in &plan.tables {
        table_findings(publication, p, &mut items);
    }
    items
}

fn table_findings(publication: &str, p: &TablePlan, items: &mut Vec<CheckItem>) {
    let name = p.name();
    let r = &p.rules;
    let mut shape = Vec::new();
    if r.renames_table(&p.schema, &p.table) {
        shape.push(format!("written as {}.{}", r.target_schema, r.target_table));
    }
    if !r.rename_columns.is_empty() {
        shape.push(format!("columns renamed {}", r.rename_columns.iter().map(|(a, b)| format!("{a} → {b}")).collect::<Vec<_>>().join(", ")));
    }
    if !r.text.is_empty() {
        shape.push(format!("written as text: {}", r.text.join(", ")));
    }
    if !shape.is_empty() {
        items.push(item(Level::Ok, WHAT, format!("{name}: {} (by pgcdc)", shape.join("; ")), None));
    }
    let dropped = r.drop.join(", ");
    match &p.columns {
        Place::Nothing => {}
        Place::Server => items.push(item(Level::Ok, WHAT, format!("{name}: drop_columns {dropped}: left out by publication {publication}'s column list, never leave the server"), None)),
        Place::Pgcdc { why, fixable } => items.push(item(
            Level::Warn,
            WHAT,
            format!("{name}: drop_columns {dropped} run in pgcdc (read from the server, never written): {why}"),
            Some(if *fixable { "run `pgcdc setup -c FILE` to put the column list into the publication" } else { "nothing to fix for correctness; on PostgreSQL 15+ with a publication listing its tables, and a replica identity other than FULL, they would stay in the server" }),
        )),
    }
    let filter = r.row_filter().unwrap_or_default();
    match &p.filter {
        Place::Nothing => {}
        Place::Server => items.push(item(Level::Ok, WHAT, format!("{name}: where {filter}: publication {publication}'s row filter, rows outside it never leave the server"), None)),
        Place::Pgcdc { why, fixable } => {
            let identity = p.server_filter.is_none() && *fixable;
            let hint = if identity {
                format!("ALTER TABLE {} REPLICA IDENTITY FULL makes it exact, and `pgcdc setup -c FILE` then puts it into the publication", crate::source::quote::qualified(&p.schema, &p.table))
            } else if *fixable {
                "run `pgcdc setup -c FILE` to put the row filter into the publication".to_string()
            } else {
                "nothing to fix for correctness; PostgreSQL 15+ with a publication listing its tables would apply it in the server".to_string()
            };
            items.push(item(Level::Warn, WHAT, format!("{name}: where {filter} runs in pgcdc (each change is evaluated by the server on pgcdc's session): {why}"), Some(&hint)));
        }
    }
    if !p.unruled_excluded.is_empty() {
        items.push(item(
            Level::Warn,
            WHAT,
            format!("publication {publication} leaves out column(s) {} of {name}, which no rule drops: they are not replicated", p.unruled_excluded.join(", ")),
            Some("add them to a rule's drop_columns to say so, or run `pgcdc setup -c FILE` to publish them"),
        ));
    }
    if let Some(f) = &p.entry.row_filter {
        if p.filter != Place::Server {
            items.push(item(
                Level::Warn,
                WHAT,
                format!("publication {publication} filters the rows of {name} with {f}, which is not the rules' where: both apply"),
                Some("run `pgcdc setup -c FILE` to make the publication's filter the rules' (or none)"),
            ));
        }
    }
}
