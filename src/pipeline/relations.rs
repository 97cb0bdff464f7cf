//! The relation cache: pgoutput Relation messages turned into [`TableSchema`]s with resolved
//! types and the key the materialisation rule uses.

use std::collections::HashMap;
use std::sync::Arc;

use crate::batch::{resolve, CatalogType, ColumnSchema, TableSchema};
use crate::error::{Error, Result};
use crate::source::attributes::RelationFacts;
use crate::source::pgoutput::Relation;

/// Catalog facts the pipeline may need while decoding. Implemented over a SQL session in
/// production and by fixtures in tests.
pub trait CatalogLookup {
    fn type_facts(&mut self, oid: u32) -> Result<Option<CatalogType>>;
    fn primary_key(&mut self, relid: u32) -> Result<Vec<String>>;
    /// The table's relfilenode and columns (attnums, missing values), read when a Relation
    /// message arrives. The default knows nothing (columns get no attnum).
    fn relation_facts(&mut self, _relid: u32) -> Result<RelationFacts> {
        Ok(RelationFacts::default())
    }
}

/// The key of the materialisation rule, from the identity the stream declares (so that
/// deletes and key-changing updates, which carry only the identity columns, find their
/// row): the columns flagged as replica identity (the primary key under `DEFAULT`, the
/// index's columns under `USING INDEX`), in the primary key's order when they are its
/// columns, else in table order. Under `FULL` (`replica_identity` `f`, every column
/// flagged) and `NOTHING` (`n`, none), the primary key when the table has one and all its
/// columns are present, else the flagged columns (every column under FULL).
pub fn choose_key(columns: &[ColumnSchema], primary_key: &[String], replica_identity: u8) -> Vec<usize> {
    let pk: Option<Vec<usize>> = primary_key.iter().map(|n| columns.iter().position(|c| &c.name == n)).collect();
    let pk = pk.filter(|idx| !idx.is_empty());
    let flagged: Vec<usize> = columns.iter().enumerate().filter(|(_, c)| c.replica_identity).map(|(i, _)| i).collect();
    match (replica_identity, pk) {
        (b'f' | b'n', pk) => pk.unwrap_or(flagged),
        (_, pk) if flagged.is_empty() => pk.unwrap_or_default(),
        // The primary key's columns, in the constraint's order (pgoutput flags them in table order).
        (_, Some(pk)) if pk.len() == flagged.len() && pk.iter().all(|i| flagged.contains(i)) => pk,
        _ => flagged,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::PgType;

    fn cols(flags: &[bool]) -> Vec<ColumnSchema> {
        ["id", "code", "v"]
            .iter()
            .zip(flags)
            .map(|(n, &f)| ColumnSchema {
                name: n.to_string(),
                type_oid: 25,
                type_modifier: -1,
                pg_type: PgType::Text,
                replica_identity: f,
                attnum: None,
                missing: None,
            })
            .collect()
    }

    #[test]
    fn the_key_is_the_streamed_identity() {
        let pk = vec!["id".to_string()];
        // USING INDEX on `code`: the identity, not today's primary key.
        assert_eq!(choose_key(&cols(&[false, true, false]), &pk, b'i'), vec![1]);
        // DEFAULT: the flagged primary key (as the stream had it, whatever the catalog says now),
        // in the constraint's order.
        assert_eq!(choose_key(&cols(&[true, false, false]), &["code".to_string()], b'd'), vec![0]);
        assert_eq!(choose_key(&cols(&[true, true, false]), &["code".to_string(), "id".to_string()], b'd'), vec![1, 0]);
        // FULL: the primary key when there is one, else every column.
        assert_eq!(choose_key(&cols(&[true, true, true]), &pk, b'f'), vec![0]);
        assert_eq!(choose_key(&cols(&[true, true, true]), &[], b'f'), vec![0, 1, 2]);
        // NOTHING: the primary key if any.
        assert_eq!(choose_key(&cols(&[false, false, false]), &pk, b'n'), vec![0]);
        assert!(choose_key(&cols(&[false, false, false]), &[], b'n').is_empty());
    }
}
