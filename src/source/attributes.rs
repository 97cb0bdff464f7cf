//! Per-column catalog facts read when a Relation message arrives: each column's `attnum`
//! (its identity across renames), a fast default's missing value, and the table's
//! `relfilenode` (which changes when the table is rewritten).
//!
//! These are read from the *current* catalog, which may be newer than the Relation message
//! being applied while pgcdc catches up; [`RelationFacts::attribute`] says how columns
//! that no longer exist under their streamed name are matched.

use super::catalog::Catalog;
use super::sql::db_error_text;
use crate::error::{Error, Result};

/// One live (not dropped) column of a table, as in `pg_attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeFacts {
    pub name: String,
    pub attnum: i16,
    /// `attmissingval` when `atthasmissing`, in PostgreSQL's text form; `None` is null.
    pub missing: Option<String>,
    /// A generated column (`attgenerated <> ''`): pgoutput does not send it (PostgreSQL 15).
    pub generated: bool,
}

/// What [`Catalog::relation_facts`] reads about one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelationFacts {
    /// `pg_class.relfilenode`; `None` when the table is gone or has no storage of its own
    /// (partitioned tables).
    pub relfilenode: Option<u32>,
    /// Live columns in `attnum` order.
    pub attributes: Vec<AttributeFacts>,
}

impl RelationFacts {
    /// The catalog column behind the `position`-th column (0-based) named `name` of a
    /// Relation message: the column of that name, else — when it was renamed since the
    /// message was written — the `position`-th column that pgoutput sends (not generated).
    /// The fallback is right unless columns were also added or dropped before it since
    /// (a documented limit); `None` when nothing matches.
    pub fn attribute(&self, name: &str, position: usize) -> Option<&AttributeFacts> {
        self.attributes.iter().find(|a| a.name == name).or_else(|| {
            self.attributes
                .iter()
                .filter(|a| !a.generated)
                .nth(position)
        })
    }
}

/// Parses the text form of a one-element array (`attmissingval::text`: `{x}`, `{"a b"}`,
/// `{NULL}`) into the element's text; `None` for a null element or an unexpected form.
pub fn missing_value(array_text: &str) -> Option<String> {
    let inner = array_text.strip_prefix('{')?.strip_suffix('}')?;
    if let Some(quoted) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        let mut out = String::with_capacity(quoted.len());
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.extend(chars.next());
            } else {
                out.push(c);
            }
        }
        return Some(out);
    }
    if inner.eq_ignore_ascii_case("NULL") {
        return None;
    }
    Some(inner.to_string())
}

impl Catalog {
    /// The table's relfilenode and live columns (see [`RelationFacts`]). A table that no
    /// longer exists gives empty facts, not an error.
    pub async fn relation_facts(&self, relid: u32) -> Result<RelationFacts> {
        let rows = self
            .client
            .query(
                "SELECT c.relfilenode, a.attname::text, a.attnum,
                        CASE WHEN a.atthasmissing THEN a.attmissingval::text END,
                        COALESCE(a.attgenerated <> '', false)
                   FROM pg_class c
                   LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                  WHERE c.oid = $1
                  ORDER BY a.attnum",
                &[&relid],
            )
            .await
            .map_err(|e| Error::runtime(format!("reading pg_attribute: {}", db_error_text(&e))))?;
        let mut facts = RelationFacts::default();
        for r in &rows {
            let node: u32 = r.get(0);
            facts.relfilenode = Some(node).filter(|n| *n != 0);
            let Some(name) = r.get::<_, Option<String>>(1) else {
                continue;
            };
            facts.attributes.push(AttributeFacts {
                name,
                attnum: r.get(2),
                missing: r
                    .get::<_, Option<String>>(3)
                    .as_deref()
                    .and_then(missing_value),
                generated: r.get(4),
            });
        }
        Ok(facts)
    }
}

impl Catalog {
    /// Names of the table's generated (STORED) columns, in `attnum` order. pgoutput does not
    /// send them on PostgreSQL 15, so the output has no such column and `validate` compares
    /// without them (and says so).
    pub async fn generated_columns(&self, relid: u32) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT attname::text FROM pg_attribute
                  WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated <> ''
                  ORDER BY attnum",
                &[&relid],
            )
            .await
            .map_err(|e| Error::runtime(format!("reading pg_attribute: {}", db_error_text(&e))))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_values_are_unquoted() {
        assert_eq!(missing_value("{x}").as_deref(), Some("x"));
        assert_eq!(
            missing_value(r#"{"a b \"q\" \\ z"}"#).as_deref(),
            Some(r#"a b "q" \ z"#)
        );
        assert_eq!(missing_value("{NULL}"), None);
        assert_eq!(missing_value(r#"{"NULL"}"#).as_deref(), Some("NULL"));
        assert_eq!(missing_value("{{1,2}}").as_deref(), Some("{1,2}"));
    }

    #[test]
    fn renamed_columns_fall_back_to_their_position() {
        let a = |name: &str, attnum: i16, generated: bool| AttributeFacts {
            name: name.into(),
            attnum,
            missing: None,
            generated,
        };
        let facts = RelationFacts {
            relfilenode: Some(1),
            attributes: vec![a("id", 1, false), a("g", 2, true), a("renamed", 3, false)],
        };
        assert_eq!(facts.attribute("id", 0).map(|a| a.attnum), Some(1));
        assert_eq!(facts.attribute("old_name", 1).map(|a| a.attnum), Some(3));
        assert_eq!(facts.attribute("gone", 5), None);
    }
}
