//! The pipeline thread's view of the source catalog: [`CatalogLookup`] answered by the
//! async [`Catalog`], blocking the pipeline thread (never a tokio worker) until the query
//! returns.

use std::sync::Arc;

use super::relations::CatalogLookup;
use crate::model::CatalogType;
use crate::error::Result;
use crate::source::catalog::Catalog;

/// Catalog lookups from the pipeline thread, executed on the runtime behind `handle`.
pub struct BlockingCatalog {
    pub catalog: Arc<Catalog>,
    pub handle: tokio::runtime::Handle,
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
}
