//! The task's `TableMappings`: DMS selection rules for exactly the tables pgcdc replicates,
//! and, for a Kinesis target whose partition key is `schema-table`, the object-mapping rule
//! that makes DMS partition the same way.
//!
//! * Each `source.tables` pattern becomes one `include` rule; its `*` becomes DMS's `%`, and
//!   the characters DMS treats as wildcards (`_`, `%`, `[`) are bracketed so that they match
//!   only themselves (DMS: `_` is any one character, `[_]` a literal underscore). A pattern
//!   without a schema matches every schema (`%`), as in pgcdc.
//! * Without patterns, pgcdc replicates every table of its publication; DMS has no
//!   publication, so every published table gets an exact `include` rule.
//! * Tables the patterns match but the publication leaves out are not replicated by pgcdc:
//!   each gets an `exclude` rule.

use serde_json::{json, Value};

use super::source_facts::SourceFacts;
use crate::sink::kinesis::dms_json::PartitionKeyType;

/// `text` as a DMS object-locator name: `*` is `%`, literal `_`, `%` and `[` bracketed.
pub fn dms_name(text: &str, wildcard: bool) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '*' if wildcard => out.push('%'),
            '_' | '%' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// The mapping document (`{"rules": [...]}`) for `patterns` (`source.tables`) over the
/// source `facts`; `partition` is the Kinesis partition key type (`None` for S3).
pub fn table_mappings(
    patterns: &[String],
    facts: &SourceFacts,
    partition: Option<PartitionKeyType>,
) -> Value {
    let mut rules = Vec::new();
    let mut push = |rule_type: &str,
                    action: &str,
                    schema: String,
                    table: String,
                    extra: Option<(&str, Value)>| {
        let id = rules.len() + 1;
        let mut r = json!({
            "rule-type": rule_type,
            "rule-id": id.to_string(),
            "rule-name": format!("{action}-{id}"),
            "object-locator": {"schema-name": schema, "table-name": table},
            "rule-action": action,
        });
        if rule_type == "selection" {
            r["filters"] = json!([]);
        }
        if let Some((k, v)) = extra {
            r[k] = v;
        }
        rules.push(r);
    };
    if patterns.is_empty() {
        for t in &facts.tables {
            push(
                "selection",
                "include",
                dms_name(&t.schema, false),
                dms_name(&t.name, false),
                None,
            );
        }
    } else {
        for p in patterns {
            let (schema, table) = p.split_once('.').unwrap_or(("*", p.as_str()));
            push(
                "selection",
                "include",
                dms_name(schema, true),
                dms_name(table, true),
                None,
            );
        }
    }
    for (schema, table) in &facts.unpublished {
        push(
            "selection",
            "exclude",
            dms_name(schema, false),
            dms_name(table, false),
            None,
        );
    }
    if partition == Some(PartitionKeyType::SchemaTable) {
        push(
            "object-mapping",
            "map-record-to-record",
            "%".into(),
            "%".into(),
            Some((
                "mapping-parameters",
                json!({"partition-key-type": "schema-table"}),
            )),
        );
    }
    json!({ "rules": rules })
}

#[cfg(test)]
mod tests {
    use super::super::source_facts::TableFacts;
    use super::*;

    fn table(schema: &str, name: &str) -> TableFacts {
        TableFacts {
            schema: schema.into(),
            name: name.into(),
            has_primary_key: true,
            replica_identity: 'd',
            columns: vec![],
        }
    }

    #[test]
    fn names_escape_dms_wildcards() {
        assert_eq!(dms_name("order_*", true), "order[_]%");
        assert_eq!(dms_name("a%b[c", false), "a[%]b[[]c");
        assert_eq!(dms_name("*", false), "*");
    }

    #[test]
    fn patterns_publications_and_exclusions() {
        let facts = SourceFacts {
            tables: vec![table("public", "a_b"), table("sales", "orders")],
            unpublished: vec![("public".into(), "secret".into())],
            ..Default::default()
        };
        let m = table_mappings(&["public.*".into(), "orders".into()], &facts, None);
        let rules = m["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0]["object-locator"],
            json!({"schema-name": "public", "table-name": "%"})
        );
        assert_eq!(
            rules[1]["object-locator"],
            json!({"schema-name": "%", "table-name": "orders"})
        );
        assert_eq!(
            (
                rules[2]["rule-action"].as_str(),
                rules[2]["object-locator"]["table-name"].as_str()
            ),
            (Some("exclude"), Some("secret"))
        );
        let ids: Vec<&str> = rules
            .iter()
            .map(|r| r["rule-id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["1", "2", "3"]);
        // No patterns: the publication's tables, exactly.
        let m = table_mappings(&[], &facts, Some(PartitionKeyType::SchemaTable));
        let rules = m["rules"].as_array().unwrap();
        assert_eq!(
            rules[0]["object-locator"],
            json!({"schema-name": "public", "table-name": "a[_]b"})
        );
        assert_eq!(rules[3]["rule-type"], "object-mapping");
        assert_eq!(
            rules[3]["mapping-parameters"]["partition-key-type"],
            "schema-table"
        );
    }
}
