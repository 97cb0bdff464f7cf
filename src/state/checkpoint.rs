//! The confirmed position: `_pgcdc/checkpoint.json`, the [`Checkpoint`] up to which every
//! transaction is durable in the target and may be (or has been) confirmed to the slot.
//!
//! Fencing: the checkpoint is written create-only when none exists and otherwise
//! replace-if-unchanged, with the version the writer last read or wrote ([`Held`]); so a
//! stale process that wakes up after another took over the target has its next write
//! refused instead of undoing the other's progress. A checkpoint never moves backwards.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Lsn;
use crate::storage::{PutMode, Storage, Version};

pub const CHECKPOINT_KEY: &str = "_pgcdc/checkpoint.json";

/// Durable progress of a target (the confirmed position), stored in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every transaction whose commit record ends at or before this LSN is durable in the
    /// sink (or had no rows for it). Confirmed to the slot.
    pub end_lsn: Lsn,
    /// Commit LSN of the last transaction written, for people reading the file.
    pub commit_lsn: Lsn,
    /// Rows written per table and operation since the target was created: `{"public.t": {"I": 3}}`.
    #[serde(default)]
    pub counts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    /// When this checkpoint was written (RFC 3339, UTC).
    #[serde(default)]
    pub written_at: String,
}

impl Checkpoint {
    pub fn new(end_lsn: Lsn, commit_lsn: Lsn) -> Checkpoint {
        Checkpoint { end_lsn, commit_lsn, counts: Default::default(), written_at: String::new() }
    }
}

/// The checkpoint as last read or written by this writer, with its version: what the next
/// checkpoint write must find unchanged. `None` for a target without a checkpoint yet.
pub type Held = Option<(Checkpoint, Version)>;

/// Writes `cp` as the target's checkpoint: create-only when `held` is `None`, else only if
/// the stored checkpoint is still the one held (module docs, "Fencing"). A checkpoint
/// behind the held one is an internal error: progress never moves backwards.
pub fn write_checkpoint(storage: &dyn Storage, cp: &Checkpoint, held: &mut Held) -> Result<()> {
    write_checkpoint_at(storage, CHECKPOINT_KEY, cp, held)
}

/// The key of the checkpoint a sink without a target of its own (Kinesis) keeps in the
/// progress store: `_pgcdc/sinks/{name}.json`.
pub fn sink_checkpoint_key(name: &str) -> String {
    format!("_pgcdc/sinks/{name}.json")
}

/// [`write_checkpoint`] at another key (see [`sink_checkpoint_key`]), with the same fencing.
pub fn write_checkpoint_at(storage: &dyn Storage, key: &str, cp: &Checkpoint, held: &mut Held) -> Result<()> {
    let mode = match held {
        Some((prev, _)) if cp.end_lsn < prev.end_lsn => {
            return Err(Error::runtime(format!(
                "internal: refusing to move the checkpoint of {} back from {} to {}",
                storage.describe(),
                prev.end_lsn,
                cp.end_lsn
            )))
        }
        Some((_, version)) => PutMode::ReplaceIf(version),
        None => PutMode::CreateOnly,
    };
    let version = super::json::write(storage, key, cp, mode)?;
    *held = Some((cp.clone(), version));
    Ok(())
}

pub fn read_checkpoint(storage: &dyn Storage) -> Result<Option<Checkpoint>> {
    Ok(read_checkpoint_versioned(storage)?.map(|(cp, _)| cp))
}

/// The stored checkpoint with its version (see [`Held`]).
pub fn read_checkpoint_versioned(storage: &dyn Storage) -> Result<Held> {
    read_checkpoint_versioned_at(storage, CHECKPOINT_KEY)
}

/// [`read_checkpoint_versioned`] at another key (see [`sink_checkpoint_key`]).
pub fn read_checkpoint_versioned_at(storage: &dyn Storage, key: &str) -> Result<Held> {
    super::json::read(storage, key, "restore it from backup, or start over with an empty target and a new slot")
}
