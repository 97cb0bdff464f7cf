//! The `[[rule]]`s as DMS table-mapping rules (SPEC 5.5): for each published table a rule
//! matches, `remove-column`, `rename` (table, column, and schema when every table of that
//! schema moves to the same one), `change-data-type` to string for `text_columns`, and a
//! selection rule with source filters for a `where` DMS can express (comparisons of one
//! column with a literal, `IS [NOT] NULL`, joined by `AND`). What DMS cannot express is
//! returned as a note for `DIFFERENCES.md`: DMS would then write it unchanged.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::source_facts::SourceFacts;
use super::table_mappings::dms_name;
use crate::config::RuleConfig;
use crate::rules::TableRules;

/// The rules to append to the table mappings (ids from `first_id`), and notes.
pub fn rule_mappings(rules: &[RuleConfig], facts: &SourceFacts, first_id: usize) -> (Vec<Value>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut push = |mut r: Value| {
        let id = first_id + out.len();
        r["rule-id"] = json!(id.to_string());
        r["rule-name"] = json!(format!("{}-{id}", r["rule-action"].as_str().unwrap_or("rule")));
        out.push(r);
    };
    // Schema renames: DMS renames a whole schema.
    let mut schema_targets: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for t in &facts.tables {
        schema_targets.entry(&t.schema).or_default().push(TableRules::resolve(rules, &t.schema, &t.name).target_schema);
    }
    for (schema, targets) in &schema_targets {
        let first = &targets[0];
        if targets.iter().all(|t| t == first) {
            if first != schema {
                push(json!({"rule-type": "transformation", "rule-target": "schema", "object-locator": {"schema-name": dms_name(schema, false)}, "rule-action": "rename", "value": first}));
            }
        } else if targets.iter().any(|t| t != schema) {
            notes.push(format!("the rules move some tables of schema {schema} to another schema: DMS renames whole schemas only, so those tables keep schema {schema} in DMS's output"));
        }
    }
    for t in &facts.tables {
        let r = TableRules::resolve(rules, &t.schema, &t.name);
        if r.is_empty() {
            continue;
        }
        let (s, n) = (dms_name(&t.schema, false), dms_name(&t.name, false));
        let table_locator = json!({"schema-name": s, "table-name": n});
        let column_locator = |c: &str| json!({"schema-name": s, "table-name": n, "column-name": dms_name(c, false)});
        for c in t.columns.iter().filter(|c| r.drop.contains(&c.name)) {
            push(json!({"rule-type": "transformation", "rule-target": "column", "object-locator": column_locator(&c.name), "rule-action": "remove-column"}));
        }
        for c in t.columns.iter().filter(|c| r.text.contains(&c.name)) {
            push(json!({"rule-type": "transformation", "rule-target": "column", "object-locator": column_locator(&c.name), "rule-action": "change-data-type", "data-type": {"type": "string", "length": 65535}}));
        }
        for (from, to) in r.rename_columns.iter().filter(|(from, _)| t.columns.iter().any(|c| &c.name == *from)) {
            push(json!({"rule-type": "transformation", "rule-target": "column", "object-locator": column_locator(from), "rule-action": "rename", "value": to}));
        }
        if r.target_table != t.name {
            push(json!({"rule-type": "transformation", "rule-target": "table", "object-locator": table_locator.clone(), "rule-action": "rename", "value": r.target_table}));
        }
        if let Some(filter) = r.row_filter() {
            match dms_filters(&filter) {
                Some(filters) => push(json!({"rule-type": "selection", "object-locator": table_locator.clone(), "rule-action": "include", "filters": filters})),
                None => notes.push(format!(
                    "the row filter of {}.{} (`{filter}`) has no DMS equivalent (DMS filters compare one column with a literal): DMS would replicate every row",
                    t.schema, t.name
                )),
            }
        }
    }
    (out, notes)
}

/// DMS source filters for `filter` when it is a conjunction of `column OP literal` (`=`,
/// `<>`, `!=`, `<=`, `>=`) and `column IS [NOT] NULL`; `None` otherwise.
pub fn dms_filters(filter: &str) -> Option<Value> {
    let mut by_column: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for term in split_and(filter)? {
        let (column, condition) = term_condition(term.trim())?;
        by_column.entry(column).or_default().push(condition);
    }
    Some(Value::Array(
        by_column
            .into_iter()
            .map(|(c, conditions)| json!({"filter-type": "source", "column-name": c, "filter-conditions": conditions}))
            .collect(),
    ))
}

/// The terms of `a AND b AND …` outside quotes; `None` when it has `OR`, `NOT` or parentheses.
fn split_and(filter: &str) -> Option<Vec<String>> {
    let mut terms = vec![String::new()];
    let mut quoted = false;
    let words: Vec<&str> = filter.split_inclusive(char::is_whitespace).collect();
    for w in words {
        let bare = w.trim();
        if !quoted && bare.eq_ignore_ascii_case("and") {
            terms.push(String::new());
            continue;
        }
        if !quoted && (bare.eq_ignore_ascii_case("or") || bare.contains('(') || bare.contains(')')) {
            return None;
        }
        quoted ^= w.matches('\'').count() % 2 == 1;
        terms.last_mut().expect("one term").push_str(w);
    }
    (!quoted).then_some(terms)
}

fn term_condition(term: &str) -> Option<(String, Value)> {
    let lower = term.to_ascii_lowercase();
    for (suffix, op) in [(" is not null", "notnull"), (" is null", "null")] {
        if let Some(col) = lower.strip_suffix(suffix) {
            return Some((column_name(&term[..col.len()])?, json!({"filter-operator": op})));
        }
    }
    for (sym, op) in [("<>", "noteq"), ("!=", "noteq"), ("<=", "ste"), (">=", "gte"), ("=", "eq")] {
        if let Some((col, value)) = term.split_once(sym) {
            if value.starts_with('=') || col.ends_with(['<', '>', '!']) {
                continue;
            }
            return Some((column_name(col)?, json!({"filter-operator": op, "value": literal(value.trim())?})));
        }
    }
    None
}

fn column_name(text: &str) -> Option<String> {
    let t = text.trim();
    if let Some(q) = t.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        return Some(q.replace("\"\"", "\""));
    }
    (!t.is_empty() && t.chars().all(|c| c.is_alphanumeric() || c == '_')).then(|| t.to_lowercase())
}

fn literal(text: &str) -> Option<String> {
    if let Some(s) = text.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        return Some(s.replace("''", "'"));
    }
    text.parse::<f64>().is_ok().then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::source_facts::{ColumnFacts, TableFacts};
    use super::*;

    fn facts() -> SourceFacts {
        let col = |n: &str| ColumnFacts { name: n.into(), type_text: "text".into(), base_type: "text".into(), largest: None };
        let table = |s: &str, n: &str| TableFacts {
            schema: s.into(),
            name: n.into(),
            has_primary_key: true,
            replica_identity: 'd',
            columns: vec![col("id"), col("name"), col("ssn"), col("country")],
        };
        SourceFacts {
            server_version_num: 150000,
            has_pglogical: false,
            publication_exists: true,
            tables: vec![table("public", "customers"), table("public", "orders"), table("sales", "a"), table("sales", "b")],
            unpublished: vec![],
        }
    }

    #[test]
    fn rules_become_dms_transformations() {
        let rules = crate::config::parse_rules(
            r#"
            [[rule]]
            tables = "public.customers"
            drop_columns = ["ssn"]
            rename = "crm.customer"
            rename_columns = { name = "full_name" }
            text_columns = ["country"]
            where = "country = 'NG'"
            [[rule]]
            tables = "public.orders"
            where = "lower(country) = 'ng'"
            [[rule]]
            tables = "sales.a"
            rename = "lake.*"
            "#,
        );
        let (out, notes) = rule_mappings(&rules, &facts(), 7);
        let actions: Vec<(String, String)> = out.iter().map(|r| (r["rule-target"].as_str().unwrap_or("-").to_string(), r["rule-action"].as_str().unwrap().to_string())).collect();
        assert_eq!(
            actions,
            [("column", "remove-column"), ("column", "change-data-type"), ("column", "rename"), ("table", "rename"), ("-", "include")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(out[0]["rule-id"], "7");
        assert_eq!(out[3]["value"], "customer");
        assert_eq!(out[4]["filters"][0]["filter-conditions"][0]["value"], "NG");
        // The public schema keeps its name for orders, so DMS cannot rename it for customers;
        // sales.b stays in sales while sales.a moves: no schema rename either.
        assert_eq!(notes.len(), 3, "{notes:#?}");
        assert!(notes.iter().any(|n| n.contains("lower(country)")));
        assert!(notes.iter().any(|n| n.contains("schema public")) && notes.iter().any(|n| n.contains("schema sales")));
    }

    #[test]
    fn simple_filters_translate() {
        let f = dms_filters("country = 'NG' AND qty >= 5 and note IS NOT NULL").unwrap();
        assert_eq!(f.as_array().unwrap().len(), 3);
        assert_eq!(f[0]["column-name"], "country");
        assert_eq!(f[0]["filter-conditions"][0], json!({"filter-operator": "eq", "value": "NG"}));
        assert_eq!(f[2]["filter-conditions"][0], json!({"filter-operator": "gte", "value": "5"}));
        assert_eq!(f[1]["filter-conditions"][0], json!({"filter-operator": "notnull"}));
        assert_eq!(dms_filters("name <> 'a and b'").unwrap()[0]["filter-conditions"][0]["value"], "a and b");
        for untranslatable in ["a = 1 OR b = 2", "lower(c) = 'x'", "qty > 5", "a = b"] {
            assert!(dms_filters(untranslatable).is_none(), "{untranslatable}");
        }
    }
}
