//! The full load's durable plan and progress, `_pgcdc/load.json` in the target.
//!
//! Written when the load is planned and again after each chunk is published, so a restart
//! knows which chunks are done (their files are kept) and which must be copied again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Lsn;
use crate::storage::{PutMode, Storage};

pub const LOAD_STATE_KEY: &str = "_pgcdc/load.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadState {
    /// The consistent point of the replication slot: CDC continues from here.
    pub slot_lsn: Lsn,
    /// Snapshot time of the first snapshot (µs since the Unix epoch).
    pub started_us: i64,
    pub complete: bool,
    /// `schema.table` → its chunks.
    pub tables: BTreeMap<String, TableLoad>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableLoad {
    pub schema: String,
    pub table: String,
    /// Approximate size when planned, for progress.
    pub bytes: u64,
    pub chunks: Vec<Chunk>,
}

/// A CTID block range of one leaf relation: `[start_page, end_page)`, open-ended when
/// `end_page` is `None` (rows added after planning land there).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Chunk {
    pub part: u32,
    /// The relation actually scanned (the table itself, or a leaf partition).
    pub leaf_schema: String,
    pub leaf_table: String,
    pub start_page: u32,
    pub end_page: Option<u32>,
    /// Set once the chunk's file is published: the snapshot it was copied in.
    pub done_at: Option<Lsn>,
    pub rows: u64,
}

impl LoadState {
    pub fn read(storage: &dyn Storage) -> Result<Option<LoadState>> {
        Ok(super::json::read(storage, LOAD_STATE_KEY, "start over with an empty target (and a new slot)")?.map(|(s, _)| s))
    }

    pub fn write(&self, storage: &dyn Storage) -> Result<()> {
        super::json::write(storage, LOAD_STATE_KEY, self, PutMode::Overwrite).map(|_| ())
    }

    pub fn pending(&self) -> usize {
        self.tables.values().flat_map(|t| &t.chunks).filter(|c| c.done_at.is_none()).count()
    }
}
