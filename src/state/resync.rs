//! A pending resync: `_pgcdc/resync.json` in the progress store (README, "A lost slot").
//!
//! Written by `pgcdc run --resync` ([`crate::load::resync`]) before it drops or creates a
//! slot, rewritten after each step, and deleted only once the new load is complete and every
//! sink's position has moved to the new slot's consistent point. While it exists, every
//! `run` (with or without `--resync`) finishes the resync before it streams.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Lsn;
use crate::storage::{PutMode, Storage};

pub const RESYNC_KEY: &str = "_pgcdc/resync.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ResyncState {
    /// Why the resync was started (the slot's state then), for people reading the file.
    pub reason: String,
    /// When it was started (RFC 3339, UTC).
    pub started_at: String,
    /// The new slot's consistent point once it is created: CDC continues from here.
    pub slot_lsn: Option<Lsn>,
    /// Every snapshot LSN a copy ran in (the slot's, then one per resumed attempt): the
    /// files of a table not yet copied are `{table}/load/{lsn}-*` for one of these.
    pub attempts: Vec<Lsn>,
    /// Tables whose every chunk is published, by `schema.table`.
    pub copied: BTreeMap<String, CopiedTable>,
    /// Set once every copied table's reset file is published.
    pub reset: bool,
}

/// A table copied completely in the snapshot at `lsn`, in `parts` chunks (its reset file is
/// part number `parts`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CopiedTable {
    pub schema: String,
    pub table: String,
    pub lsn: Lsn,
    pub parts: u32,
    /// Rows copied (added to the checkpoint's `L` count).
    #[serde(default)]
    pub rows: u64,
}

impl ResyncState {
    /// The pending resync, `None` when there is none.
    pub fn read(storage: &dyn Storage) -> Result<Option<ResyncState>> {
        Ok(super::json::read(
            storage,
            RESYNC_KEY,
            "delete it and run `pgcdc run --resync` again",
        )?
        .map(|(s, _)| s))
    }

    pub fn write(&self, storage: &dyn Storage) -> Result<()> {
        super::json::write(storage, RESYNC_KEY, self, PutMode::Overwrite).map(|_| ())
    }

    /// Ends the resync: the next run streams normally.
    pub fn remove(storage: &dyn Storage) -> Result<()> {
        storage.delete(RESYNC_KEY)
    }
}
