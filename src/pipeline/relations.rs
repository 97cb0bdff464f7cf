//! The relation cache: pgoutput Relation messages turned into [`TableSchema`]s with resolved
//! types and the key the materialisation rule uses.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{choose_key, resolve, CatalogType, ColumnSchema, TableSchema};
use crate::error::{Error, Result};
use crate::source::attributes::RelationFacts;
use crate::source::pgoutput::Relation;

/// Catalog facts the pipeline may need while decoding. Implemented over a SQL session in
/// production and by fixtures in tests.
///
/// Called from the pipeline thread while it decodes (a Relation message), so an
/// implementation may block on its own connection; an `Err` stops the pipeline.
pub trait CatalogLookup {
    /// `pg_type` facts of a non-builtin type (domains, enums, arrays, extension types),
    /// `None` when the type does not exist (any more).
    fn type_facts(&mut self, oid: u32) -> Result<Option<CatalogType>>;
    /// The primary key's column names in constraint order; empty when there is none.
    fn primary_key(&mut self, relid: u32) -> Result<Vec<String>>;
    /// The table's relfilenode and columns (attnums, missing values), read when a Relation
    /// message arrives. The default knows nothing (columns get no attnum).
    fn relation_facts(&mut self, _relid: u32) -> Result<RelationFacts> {
        Ok(RelationFacts::default())
    }
    /// Whether the row filter `expr` holds for `values`, a row of `table` (its source
    /// schema; text values, `Unchanged` counted as NULL), evaluated by PostgreSQL. The
    /// default has no server to ask and fails.
    fn row_matches(&mut self, table: &Arc<TableSchema>, _expr: &str, _values: &[crate::model::TupleValue]) -> Result<bool> {
        Err(Error::runtime(format!("cannot evaluate the row filter of {} without a catalog session", table.qualified_name())))
    }
}

#[derive(Default)]
pub struct Relations {
    tables: HashMap<u32, Arc<TableSchema>>,
    types: HashMap<u32, Option<CatalogType>>,
}

impl Relations {
    pub fn get(&self, relid: u32) -> Result<&Arc<TableSchema>> {
        self.tables.get(&relid).ok_or_else(|| {
            Error::runtime(format!("pgoutput sent a change for relation {relid} before describing it"))
        })
    }

    /// Updates the cache from a Relation message; returns the table's schema, whether its
    /// shape (name, columns or types) differs from what was cached, and the schema cached
    /// before (if any).
    pub fn apply(
        &mut self,
        rel: &Relation,
        catalog: &mut dyn CatalogLookup,
    ) -> Result<(Arc<TableSchema>, bool, Option<Arc<TableSchema>>)> {
        let facts = catalog.relation_facts(rel.relid)?;
        let mut columns = Vec::with_capacity(rel.columns.len());
        for (position, c) in rel.columns.iter().enumerate() {
            let mut lookup_err = None;
            let types = &mut self.types;
            let pg_type = resolve(c.type_oid, c.type_modifier, &mut |oid| {
                if let Some(t) = types.get(&oid) {
                    return t.clone();
                }
                match catalog.type_facts(oid) {
                    Ok(t) => {
                        types.insert(oid, t.clone());
                        t
                    }
                    Err(e) => {
                        lookup_err = Some(e);
                        None
                    }
                }
            });
            if let Some(e) = lookup_err {
                return Err(e);
            }
            columns.push(ColumnSchema {
                name: c.name.clone(),
                type_oid: c.type_oid,
                type_modifier: c.type_modifier,
                pg_type,
                replica_identity: c.is_key(),
                attnum: facts.attribute(&c.name, position).map(|a| a.attnum),
                missing: facts.attribute(&c.name, position).and_then(|a| a.missing.clone()),
            });
        }
        let key = choose_key(&columns, &catalog.primary_key(rel.relid)?, rel.replica_identity);
        let table = Arc::new(TableSchema {
            relid: rel.relid,
            schema: rel.namespace.clone(),
            name: rel.name.clone(),
            columns,
            key,
            replica_identity: rel.replica_identity,
            relfilenode: facts.relfilenode,
        });
        let prev = self.tables.get(&rel.relid).cloned();
        let changed = match self.tables.get(&rel.relid) {
            Some(old) => !old.same_shape(&table) || old.schema != table.schema || old.name != table.name,
            None => true,
        };
        let table = if changed || self.tables.get(&rel.relid).is_some_and(|o| !o.same_history(&table)) {
            self.tables.insert(rel.relid, table.clone());
            table
        } else {
            self.tables[&rel.relid].clone()
        };
        Ok((table, changed, prev))
    }
}
