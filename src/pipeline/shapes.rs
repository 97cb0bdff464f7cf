//! The pipeline's cache of tables shaped by the rules: for each relation, its source schema
//! (from the relation cache), its output schema and projection ([`crate::rules::Shaped`]),
//! and the row filter pgcdc applies itself, if any ([`super::row_filter`]).
//!
//! Owned by the pipeline thread. A shape is recomputed when the relation cache hands out a
//! new source schema (a Relation message that changed it), so the output schema is a new
//! `Arc` exactly when the source's is, and sinks re-announce it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::row_filter::ClientFilter;
use crate::config::RuleConfig;
use crate::error::Result;
use crate::model::{TableSchema, TupleValue};
use crate::rules::{Shaped, TableRules};

/// One relation as the sinks see it.
pub struct TableShape {
    /// The schema the stream describes (source names, published columns).
    pub source: Arc<TableSchema>,
    pub shaped: Shaped,
    /// The rules' row filter, when the publication does not apply it.
    pub filter: Option<ClientFilter>,
}

impl TableShape {
    /// What the sinks see.
    pub fn output(&self) -> &Arc<TableSchema> {
        &self.shaped.output
    }

    /// `values` (one per source column) as output values; `Err` when their number is not
    /// the source's number of columns.
    pub fn output_values<'a>(&self, values: &'a [TupleValue]) -> Result<std::borrow::Cow<'a, [TupleValue]>> {
        let table = &self.source;
        if values.len() != table.columns.len() {
            return Err(crate::error::Error::runtime(format!(
                "a change of {}.{} has {} values for {} columns",
                table.schema,
                table.name,
                values.len(),
                table.columns.len()
            )));
        }
        Ok(self.project(values))
    }

    /// `values` (one per source column) as output values.
    pub fn project<'a>(&self, values: &'a [TupleValue]) -> std::borrow::Cow<'a, [TupleValue]> {
        if self.shaped.identity {
            return std::borrow::Cow::Borrowed(values);
        }
        std::borrow::Cow::Owned(self.shaped.columns.iter().map(|c| values.get(c.index).cloned().unwrap_or(TupleValue::Null)).collect())
    }
}

pub struct Shapes {
    rules: Vec<RuleConfig>,
    /// Source tables (`schema.table`) whose rule filter the publication applies.
    server_filters: HashSet<String>,
    by_relid: HashMap<u32, Arc<TableShape>>,
}

impl Shapes {
    pub fn new(rules: Vec<RuleConfig>, server_filters: HashSet<String>) -> Shapes {
        Shapes { rules, server_filters, by_relid: HashMap::new() }
    }

    /// The same rules with nothing cached (for a transaction's own relation cache).
    pub fn empty_like(&self) -> Shapes {
        Shapes::new(self.rules.clone(), self.server_filters.clone())
    }

    /// The shape of `source` (the relation cache's current schema of the relation).
    /// Errors when the rules cannot shape it (a key column dropped, two columns with one name).
    pub fn of(&mut self, source: &Arc<TableSchema>) -> Result<Arc<TableShape>> {
        if let Some(s) = self.by_relid.get(&source.relid).filter(|s| Arc::ptr_eq(&s.source, source)) {
            return Ok(s.clone());
        }
        let rules = TableRules::resolve(&self.rules, &source.schema, &source.name);
        let shaped = rules.shape(source)?;
        let filter = rules
            .row_filter()
            .filter(|_| !self.server_filters.contains(&source.qualified_name()))
            .map(|expr| ClientFilter::new(source, expr));
        let shape = Arc::new(TableShape { source: source.clone(), shaped, filter });
        self.by_relid.insert(source.relid, shape.clone());
        Ok(shape)
    }
}
