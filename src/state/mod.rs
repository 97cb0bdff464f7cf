//! Durable progress: one home for what a run must remember across restarts, behind a small
//! store over [`Storage`].
//!
//! * [`checkpoint`]: the confirmed position (`_pgcdc/checkpoint.json`): every transaction
//!   ending at or before it is durable in the target. Written fenced and never backwards.
//! * [`load`]: the full load's plan and finished chunks (`_pgcdc/load.json`).
//! * [`tables`]: the tables the run follows, with their OIDs, relfilenodes and pending
//!   reloads (`_pgcdc/tables.json`).
//!
//! Progress lives in `[state] url` when configured, else in `_pgcdc/` of the first Parquet
//! sink. A Parquet sink's own checkpoint always stays in its target, with its files. Every object is written atomically ([`Storage::put`]); only the holder of
//! the target's lock writes. Commands that only read (`status`, `validate`) open the store
//! without the lock. Schema history stays beside the files it describes, with the Parquet
//! sink (`crate::sink::parquet::history`), and a sink's own exactly-once record (the Parquet
//! sink's flush manifest) is private to that sink.

pub mod checkpoint;
mod json;
pub mod load;
pub mod resync;
pub mod tables;

use std::sync::Arc;

pub use checkpoint::Checkpoint;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::storage::{self, Storage};

use self::load::LoadState;
use self::tables::TableRegistry;

/// The progress of one target. Cheap to clone; methods block on the storage and may be
/// called from any thread.
#[derive(Clone)]
pub struct ProgressStore {
    storage: Arc<dyn Storage>,
}

impl ProgressStore {
    /// The store of `config`: `[state] url`, else `_pgcdc/` in its first Parquet sink.
    /// Opening changes nothing.
    pub fn open(config: &Config) -> Result<ProgressStore> {
        if let Some(st) = &config.state {
            let options = crate::aws::S3Options { aws: config.aws.clone(), ..Default::default() };
            return Ok(ProgressStore::at(Arc::from(storage::open(&st.location, &options)?)));
        }
        let sink = config.parquet_sinks().next().ok_or_else(|| {
            Error::config("no Parquet sink and no [state] url: progress has nowhere to live")
                .with_hint("add [state] url = \"file:///var/lib/pgcdc/state\" or a [[sink]] with kind = \"parquet\"")
        })?;
        Ok(ProgressStore::at(Arc::from(storage::open_sink_target(config, sink)?)))
    }

    /// The store inside an opened target.
    pub fn at(storage: Arc<dyn Storage>) -> ProgressStore {
        ProgressStore { storage }
    }

    /// The target the store lives in (for writers that hold its lock).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The confirmed position, `None` before the first one.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        checkpoint::read_checkpoint(self.storage.as_ref())
    }

    /// The full load's plan and progress, `None` when no load was planned here.
    pub fn load_state(&self) -> Result<Option<LoadState>> {
        LoadState::read(self.storage.as_ref())
    }

    /// The acknowledged positions of sinks without a target of their own (Kinesis), by
    /// name (`kinesis-{stream}`), from `_pgcdc/sinks/`.
    pub fn sink_positions(&self) -> Result<Vec<(String, Checkpoint)>> {
        let mut out = Vec::new();
        for key in self.storage.list("_pgcdc/sinks")? {
            let name = key.rsplit('/').next().unwrap_or(&key).trim_end_matches(".json").to_string();
            if let Some((cp, _)) = checkpoint::read_checkpoint_versioned_at(self.storage.as_ref(), &key)? {
                out.push((name, cp));
            }
        }
        Ok(out)
    }

    /// The followed tables, `None` before the first run that recorded them.
    pub fn tables(&self) -> Result<Option<TableRegistry>> {
        TableRegistry::read(self.storage.as_ref())
    }
}
