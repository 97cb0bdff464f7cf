//! Selection and transformation rules as they apply to one source table (SPEC 5.5).
//!
//! [`TableRules::resolve`] folds the `[[rule]]`s matching a table (by its *source* name, in
//! configuration order) into one description; [`TableRules::shape`] turns the table's source
//! schema into its *output* schema (renamed, without dropped columns, text overrides) and
//! the projection from source to output columns. Everything downstream of the source
//! (batches, sinks, schema history, Glue, Kinesis) sees only the output schema; the source
//! side (SQL of the full load and `validate`, the reload book, the publication) keeps the
//! source names.
//!
//! A row filter (`where`) runs in PostgreSQL: in the publication when the server can
//! (`crate::source::rules`), else pgcdc asks the server to evaluate it per change
//! (`crate::pipeline::row_filter`); the full load and `validate` put it in their `WHERE`.
//!
//! Pure: no I/O. Called from any thread.

pub mod columns;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::RuleConfig;
use crate::config::TableFilter;
use crate::error::{Error, Result};
use crate::model::{ColumnSchema, PgType, TableSchema};

/// What the rules do to one source table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableRules {
    /// 1-based numbers of the rules that match the table, in order.
    pub matched: Vec<usize>,
    /// The target schema and table names (the source's unless renamed).
    pub target_schema: String,
    pub target_table: String,
    /// Source columns never read nor written.
    pub drop: Vec<String>,
    /// Source column → target column name.
    pub rename_columns: BTreeMap<String, String>,
    /// Source columns written as their PostgreSQL text form.
    pub text: Vec<String>,
    /// Row filters (PostgreSQL expressions over source columns), all of which must hold.
    pub filters: Vec<String>,
}

/// One output column's source: the source column's index and name in the source schema it
/// was shaped from, and whether it is written as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    pub index: usize,
    pub name: String,
    pub as_text: bool,
}

/// A source schema shaped by the rules.
#[derive(Debug, Clone)]
pub struct Shaped {
    /// What the sinks see: target names, kept columns (renamed, text overrides), the key
    /// among them. Same `relid`, replica identity and relfilenode as the source.
    pub output: Arc<TableSchema>,
    /// Per output column, where it comes from.
    pub columns: Vec<SourceColumn>,
    /// True when output column i is source column i for every i (no projection needed).
    pub identity: bool,
}

impl TableRules {
    /// The rules matching `schema.table`, folded in configuration order.
    pub fn resolve(rules: &[RuleConfig], schema: &str, table: &str) -> TableRules {
        let mut out = TableRules { target_schema: schema.to_string(), target_table: table.to_string(), ..TableRules::default() };
        for (i, r) in rules.iter().enumerate() {
            if !TableFilter::new(&r.tables.list()).matches(schema, table) {
                continue;
            }
            out.matched.push(i + 1);
            if let Some(rename) = r.rename() {
                if let Some(s) = rename.schema {
                    out.target_schema = s;
                }
                if let Some(t) = rename.table {
                    out.target_table = t;
                }
            }
            for c in &r.drop_columns {
                if !out.drop.contains(c) {
                    out.drop.push(c.clone());
                }
            }
            for (from, to) in &r.rename_columns {
                out.rename_columns.insert(from.clone(), to.clone());
            }
            for c in &r.text_columns {
                if !out.text.contains(c) {
                    out.text.push(c.clone());
                }
            }
            if let Some(f) = &r.filter {
                out.filters.push(f.trim().to_string());
            }
        }
        out
    }

    /// True when no rule matches (the table is written as the source has it).
    pub fn is_empty(&self) -> bool {
        self.matched.is_empty()
    }

    /// The row filter: the rules' filters ANDed, each in parentheses; `None` without any.
    pub fn row_filter(&self) -> Option<String> {
        match self.filters.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(many.iter().map(|f| format!("({f})")).collect::<Vec<_>>().join(" AND ")),
        }
    }

    /// True when the output name differs from the source's.
    pub fn renames_table(&self, schema: &str, table: &str) -> bool {
        self.target_schema != schema || self.target_table != table
    }

    /// The output name of source column `name`.
    pub fn target_column<'a>(&'a self, name: &'a str) -> &'a str {
        self.rename_columns.get(name).map(String::as_str).unwrap_or(name)
    }

    /// `source`'s output shape: see [`Shaped`]. Dropped columns the source does not have
    /// (a publication column list already left them out) are ignored. Errors when a key
    /// column is dropped (updates and deletes could not be applied) or two output columns
    /// get one name; the startup checks (`crate::source::rules`) report both first, so here
    /// they mean the table changed under a running pipeline.
    pub fn shape(&self, source: &Arc<TableSchema>) -> Result<Shaped> {
        let what = || format!("{}.{}", source.schema, source.name);
        let mut columns = Vec::new();
        let mut out_cols: Vec<ColumnSchema> = Vec::new();
        let mut key_map = vec![None; source.columns.len()];
        for (i, c) in source.columns.iter().enumerate() {
            if self.drop.contains(&c.name) {
                if source.key.contains(&i) {
                    return Err(Error::config(format!(
                        "a rule drops column {} of {}, which is part of its key (replica identity)",
                        c.name,
                        what()
                    ))
                    .with_hint("updates and deletes are applied by key: keep the column (rename it, or write it as text), or give the table another replica identity"));
                }
                continue;
            }
            let as_text = self.text.contains(&c.name);
            let mut col = c.clone();
            col.name = self.target_column(&c.name).to_string();
            if as_text {
                col.type_oid = TEXT_OID;
                col.type_modifier = -1;
                col.pg_type = PgType::Text;
            }
            if out_cols.iter().any(|o| o.name == col.name) {
                return Err(Error::config(format!("the rules give two columns of {} the name {}", what(), col.name))
                    .with_hint("rename_columns must give every kept column its own name"));
            }
            key_map[i] = Some(out_cols.len());
            columns.push(SourceColumn { index: i, name: c.name.clone(), as_text });
            out_cols.push(col);
        }
        let identity = out_cols.len() == source.columns.len() && columns.iter().all(|c| !c.as_text) && out_cols.iter().zip(&source.columns).all(|(o, s)| o.name == s.name);
        let key = source.key.iter().filter_map(|&k| key_map.get(k).copied().flatten()).collect();
        let output = if identity && !self.renames_table(&source.schema, &source.name) {
            source.clone()
        } else {
            Arc::new(TableSchema {
                schema: self.target_schema.clone(),
                name: self.target_table.clone(),
                columns: out_cols,
                key,
                ..(**source).clone()
            })
        };
        Ok(Shaped { output, columns, identity })
    }
}

/// `pg_type` OID of `text`.
const TEXT_OID: u32 = 25;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::fixtures::orders;

    use crate::config::parse_rules as rules;

    #[test]
    fn rules_fold_in_order_by_source_name() {
        let r = rules(
            r#"
            [[rule]]
            tables = "public.*"
            rename = "lake.*"
            drop_columns = ["name"]
            where = "region <> 'x'"
            [[rule]]
            tables = ["public.orders", "other.t"]
            rename = "sales"
            rename_columns = { amount = "total" }
            text_columns = ["tags"]
            where = "amount > 0"
            [[rule]]
            tables = "nomatch.*"
            rename = "z.z"
            "#,
        );
        let t = TableRules::resolve(&r, "public", "orders");
        assert_eq!(t.matched, vec![1, 2]);
        assert_eq!((t.target_schema.as_str(), t.target_table.as_str()), ("lake", "sales"));
        assert_eq!(t.row_filter().unwrap(), "(region <> 'x') AND (amount > 0)");
        let other = TableRules::resolve(&r, "public", "items");
        assert_eq!((other.target_schema.as_str(), other.target_table.as_str()), ("lake", "items"));
        assert_eq!(other.row_filter().unwrap(), "region <> 'x'");
        assert!(TableRules::resolve(&r, "x", "y").is_empty());
    }

    #[test]
    fn shape_projects_renames_and_retypes() {
        let r = rules(
            r#"
            [[rule]]
            tables = "public.orders"
            rename = "crm.order"
            drop_columns = ["name", "not_here"]
            rename_columns = { amount = "total", id = "order_id" }
            text_columns = ["tags"]
            "#,
        );
        let source = Arc::new(orders());
        let s = TableRules::resolve(&r, "public", "orders").shape(&source).unwrap();
        let names: Vec<&str> = s.output.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["order_id", "region", "total", "tags"]);
        assert_eq!((s.output.schema.as_str(), s.output.name.as_str()), ("crm", "order"));
        assert_eq!(s.output.key, vec![1, 0], "the key follows its columns");
        assert_eq!(s.output.columns[3].pg_type, PgType::Text);
        assert_eq!(s.output.columns[3].type_oid, 25);
        assert_eq!(s.columns.iter().map(|c| (c.index, c.as_text)).collect::<Vec<_>>(), [(0, false), (1, false), (2, false), (3, true)]);
        assert!(!s.identity);
        assert_eq!(s.output.relid, source.relid);

        let untouched = TableRules::resolve(&[], "public", "orders").shape(&source).unwrap();
        assert!(untouched.identity && Arc::ptr_eq(&untouched.output, &source));
    }

    #[test]
    fn shape_refuses_dropping_the_key_and_name_clashes() {
        let source = Arc::new(orders());
        let e = TableRules::resolve(&rules("[[rule]]\ntables = \"public.orders\"\ndrop_columns = [\"region\"]"), "public", "orders").shape(&source).unwrap_err();
        assert!(e.message.contains("part of its key"), "{e}");
        let e = TableRules::resolve(&rules("[[rule]]\ntables = \"public.orders\"\nrename_columns = { name = \"region\" }"), "public", "orders").shape(&source).unwrap_err();
        assert!(e.message.contains("two columns"), "{e}");
    }
}
