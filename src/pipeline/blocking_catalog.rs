//! The pipeline thread's view of the source catalog: [`CatalogLookup`] answered by the
//! async [`Catalog`], blocking the pipeline thread (never a tokio worker) until the query
//! returns.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::Statement;

use super::relations::CatalogLookup;
use crate::model::{CatalogType, TableSchema, TupleValue};
use crate::error::Result;
use crate::source::catalog::Catalog;

/// Catalog lookups from the pipeline thread, executed on the runtime behind `handle`.
pub struct BlockingCatalog {
    pub catalog: Arc<Catalog>,
    pub handle: tokio::runtime::Handle,
    /// Prepared row filters by relation: the source schema and expression they were
    /// prepared for, and the statement.
    pub row_filters: HashMap<u32, (Arc<TableSchema>, String, Statement)>,
}

impl BlockingCatalog {
    pub fn new(catalog: Arc<Catalog>, handle: tokio::runtime::Handle) -> BlockingCatalog {
        BlockingCatalog { catalog, handle, row_filters: HashMap::new() }
    }
}

impl CatalogLookup for BlockingCatalog {
    fn type_facts(&mut self, oid: u32) -> Result<Option<CatalogType>> {
        let c = self.catalog.clone();
        self.handle.block_on(async move { c.type_facts(oid).await })
    }
    fn primary_key(&mut self, relid: u32) -> Result<Vec<String>> {
        let c = self.catalog.clone();
        self.handle
            .block_on(async move { c.primary_key(relid).await })
    }
    fn relation_facts(&mut self, relid: u32) -> Result<crate::source::attributes::RelationFacts> {
        let c = self.catalog.clone();
        self.handle
            .block_on(async move { c.relation_facts(relid).await })
    }
    fn row_matches(&mut self, table: &Arc<TableSchema>, expr: &str, values: &[TupleValue]) -> Result<bool> {
        let fresh = !self.row_filters.get(&table.relid).is_some_and(|(t, e, _)| Arc::ptr_eq(t, table) && e == expr);
        if fresh {
            let c = self.catalog.clone();
            let statement = self.handle.block_on(async { c.row_filter_statement(table, expr).await })?;
            self.row_filters.insert(table.relid, (table.clone(), expr.to_string(), statement));
        }
        let (_, _, statement) = &self.row_filters[&table.relid];
        let c = self.catalog.clone();
        let name = table.qualified_name();
        self.handle.block_on(async { c.row_filter_holds(statement, &name, values).await })
    }
}
