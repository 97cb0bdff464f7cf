//! `[[rule]]` entries (SPEC 4, 5.5): what leaves the database and under which names.
//!
//! Each rule names the tables it applies to with `tables` (one pattern or a list, the syntax
//! of `source.tables`) and any of its actions. Rules apply in the order written, always to
//! the *source* names: a later `rename` of the same part wins, `where` filters are ANDed,
//! column lists accumulate. What this module checks needs no database (keys, syntax, a rule
//! that does nothing); what needs the catalog (a pattern matching no table, an unknown
//! column, a filter PostgreSQL rejects, two tables renamed to one name) is checked by
//! `crate::source::rules` when `check`, `setup`, `run` and `validate` start.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// One `[[rule]]` as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `schema.table` patterns with `*` wildcards (a string or a list of strings).
    pub tables: Patterns,
    /// Columns never read from the source and never written.
    #[serde(default)]
    pub drop_columns: Vec<String>,
    /// The target name: `schema.table`, `schema.*` (schema only) or `table` (table only).
    #[serde(default)]
    pub rename: Option<String>,
    /// Source column name → target column name.
    #[serde(default)]
    pub rename_columns: BTreeMap<String, String>,
    /// A row filter in PostgreSQL's expression syntax over the table's source columns.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Columns written as their PostgreSQL text form instead of their mapped type (SPEC 5.4).
    #[serde(default)]
    pub text_columns: Vec<String>,
}

/// `tables = "public.t"` or `tables = ["public.a", "sales.*"]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Patterns {
    One(String),
    Many(Vec<String>),
}

impl Patterns {
    pub fn list(&self) -> Vec<String> {
        match self {
            Patterns::One(p) => vec![p.clone()],
            Patterns::Many(v) => v.clone(),
        }
    }
}

/// A parsed `rename`: each part is `None` when the rule keeps the source's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub schema: Option<String>,
    pub table: Option<String>,
}

impl RuleConfig {
    /// `rename` parsed (see the field); `None` when the rule does not rename.
    pub fn rename(&self) -> Option<Rename> {
        let r = self.rename.as_deref()?;
        Some(match r.split_once('.') {
            Some((s, "*")) => Rename { schema: Some(s.to_string()), table: None },
            Some(("*", t)) => Rename { schema: None, table: Some(t.to_string()) },
            Some((s, t)) => Rename { schema: Some(s.to_string()), table: Some(t.to_string()) },
            None => Rename { schema: None, table: Some(r.to_string()) },
        })
    }

    /// `rule N (tables = …)`, for messages.
    pub fn describe(&self, n: usize) -> String {
        format!("rule {n} (tables = {})", self.tables.list().join(", "))
    }
}

/// Checks what can be checked without a database; `rules` in configuration order.
pub fn validate(rules: &[RuleConfig]) -> Result<()> {
    for (i, r) in rules.iter().enumerate() {
        let what = r.describe(i + 1);
        let patterns = r.tables.list();
        if patterns.is_empty() || patterns.iter().any(|p| p.trim().is_empty()) {
            return Err(Error::config(format!("[[rule]] {} has an empty `tables` pattern", i + 1))
                .with_hint("write tables = \"schema.table\" (with * wildcards), or a list of such patterns"));
        }
        let does_something = !r.drop_columns.is_empty()
            || r.rename.is_some()
            || !r.rename_columns.is_empty()
            || r.filter.is_some()
            || !r.text_columns.is_empty();
        if !does_something {
            return Err(Error::config(format!("{what} does nothing"))
                .with_hint("give it drop_columns, rename, rename_columns, where or text_columns; tables to leave out belong in source.tables"));
        }
        if let Some(raw) = &r.rename {
            let bad = match r.rename() {
                Some(Rename { schema, table }) => {
                    schema.as_deref().is_some_and(|s| s.is_empty() || s.contains('*'))
                        || table.as_deref().is_some_and(|t| t.is_empty() || t.contains('*') || t.contains('.'))
                        || (schema.is_none() && table.is_none())
                }
                None => true,
            };
            if bad {
                return Err(Error::config(format!("{what}: rename = {raw:?} is not a target name"))
                    .with_hint("write \"schema.table\", \"schema.*\" (rename the schema only) or \"table\" (rename the table only)"));
            }
        }
        if r.filter.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(Error::config(format!("{what}: `where` is empty"))
                .with_hint("write a PostgreSQL boolean expression over the table's columns, e.g. where = \"country = 'NG'\", or remove it"));
        }
        let named = r.drop_columns.iter().chain(r.text_columns.iter()).chain(r.rename_columns.keys());
        for c in named.chain(r.rename_columns.values()) {
            if c.is_empty() {
                return Err(Error::config(format!("{what} names an empty column")).with_hint("column names are written as in the table, without quotes"));
            }
        }
        for c in &r.drop_columns {
            if r.text_columns.contains(c) || r.rename_columns.contains_key(c) {
                return Err(Error::config(format!("{what} drops column {c} and also renames or retypes it"))
                    .with_hint("a dropped column is never written: remove it from rename_columns / text_columns"));
            }
        }
    }
    Ok(())
}

/// `[[rule]]` tables of a TOML text, for unit tests anywhere in the crate.
#[cfg(test)]
pub(crate) fn parse_rules(text: &str) -> Vec<RuleConfig> {
    #[derive(Deserialize)]
    struct Rules {
        rule: Vec<RuleConfig>,
    }
    toml::from_str::<Rules>(text).expect("valid [[rule]] tables").rule
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> RuleConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn rename_forms() {
        let r = |s: &str| rule(&format!("tables = \"a.b\"\nrename = \"{s}\"")).rename().unwrap();
        assert_eq!(r("crm.customer"), Rename { schema: Some("crm".into()), table: Some("customer".into()) });
        assert_eq!(r("crm.*"), Rename { schema: Some("crm".into()), table: None });
        assert_eq!(r("customer"), Rename { schema: None, table: Some("customer".into()) });
        assert_eq!(r("*.customer"), Rename { schema: None, table: Some("customer".into()) });
    }

    #[test]
    fn static_checks() {
        let ok = rule("tables = [\"public.*\"]\ndrop_columns = [\"ssn\"]\nrename_columns = { a = \"b\" }\nwhere = \"x > 1\"");
        assert!(validate(&[ok]).is_ok());
        for (text, needle) in [
            ("tables = \"a.b\"", "does nothing"),
            ("tables = \"\"\ndrop_columns = [\"x\"]", "empty `tables`"),
            ("tables = \"a.b\"\nrename = \"x.y.z\"", "not a target name"),
            ("tables = \"a.b\"\nrename = \"*.*\"", "not a target name"),
            ("tables = \"a.b\"\nwhere = \" \"", "`where` is empty"),
            ("tables = \"a.b\"\ndrop_columns = [\"x\"]\ntext_columns = [\"x\"]", "drops column x"),
        ] {
            let e = validate(&[rule(text)]).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.message.contains(needle), "{text}: {e}");
            assert!(e.hint.is_some(), "{text}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<RuleConfig>("tables = \"a.b\"\ndrop_column = [\"x\"]").is_err());
    }
}
