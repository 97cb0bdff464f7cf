//! Schema history under `_pgcdc/schema/{schema}/{table}/{lsn}.json`: one entry each time a
//! table's columns (with their attnums and missing values), its key or its relfilenode
//! change, named by the commit LSN of the transaction that first used them.

use std::collections::HashMap;
use std::sync::Arc;

use super::naming::table_prefix;
use crate::model::TableSchema;
use crate::error::Result;
use crate::model::Lsn;
use crate::storage::{PutMode, Storage};

#[derive(Default)]
pub struct SchemaHistory {
    /// Latest known schema per table prefix (loaded lazily from storage).
    latest: HashMap<String, Option<Arc<TableSchema>>>,
}

impl SchemaHistory {
    /// Records `table` if it differs from the latest stored entry for it
    /// ([`TableSchema::same_history`]). (Rewrites are noticed by the pipeline, through the
    /// relfilenode it keeps in `_pgcdc/tables.json`.)
    pub fn record(&mut self, storage: &dyn Storage, table: &Arc<TableSchema>, at: Lsn) -> Result<()> {
        let prefix = table_prefix(&table.schema, &table.name);
        let dir = format!("_pgcdc/schema/{prefix}");
        if !self.latest.contains_key(&prefix) {
            let last = storage.list(&dir)?.into_iter().next_back();
            let stored = match last {
                Some(key) => storage
                    .get(&key)?
                    .and_then(|b| serde_json::from_slice::<TableSchema>(&b).ok())
                    .map(Arc::new),
                None => None,
            };
            self.latest.insert(prefix.clone(), stored);
        }
        let same = matches!(self.latest.get(&prefix), Some(Some(s)) if s.same_history(table));
        if !same {
            let body = serde_json::to_vec_pretty(table.as_ref()).expect("serialisable");
            storage.put(&format!("{dir}/{}.json", at.file_hex()), &body, PutMode::Overwrite)?;
            self.latest.insert(prefix, Some(table.clone()));
        }
        Ok(())
    }
}
