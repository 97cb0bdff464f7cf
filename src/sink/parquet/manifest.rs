//! Atomic publication of a flush: several files plus the checkpoint, all or nothing.
//!
//! A flush writes every part to staging and fsyncs it, then writes
//! `_pgcdc/manifest.json` (the parts' staging paths and final keys, and the checkpoint),
//! then publishes each part, then writes `_pgcdc/checkpoint.json` and deletes the manifest.
//! After a crash, [`recover`] finds the manifest and rolls the flush forward (publishing what
//! is still in staging), or — if a staged part was lost with the machine — back (deleting the
//! parts already published), so the target never holds a transaction twice or half.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sink::storage::Storage;
use crate::sink::Checkpoint;

pub const MANIFEST_KEY: &str = "_pgcdc/manifest.json";
pub const CHECKPOINT_KEY: &str = "_pgcdc/checkpoint.json";

#[derive(Serialize, Deserialize)]
pub struct Manifest {
    pub checkpoint: Checkpoint,
    pub parts: Vec<ManifestPart>,
}

#[derive(Serialize, Deserialize)]
pub struct ManifestPart {
    /// Local staging path of the finished file.
    pub staging: String,
    pub key: String,
}

/// Publishes `manifest` as one atomic step (see the module docs).
pub fn commit(storage: &dyn Storage, manifest: &Manifest) -> Result<()> {
    use crate::failpoint::hit;
    if !manifest.parts.is_empty() {
        hit("flush-before-manifest");
        storage.put_atomic(MANIFEST_KEY, &serde_json::to_vec_pretty(manifest).expect("serialisable"))?;
        hit("flush-after-manifest");
        for (i, p) in manifest.parts.iter().enumerate() {
            storage.publish_file(std::path::Path::new(&p.staging), &p.key)?;
            if i == 0 {
                hit("flush-after-first-publish");
            }
        }
    }
    hit("flush-before-checkpoint");
    write_checkpoint(storage, &manifest.checkpoint)?;
    hit("flush-after-checkpoint");
    if !manifest.parts.is_empty() {
        storage.delete(MANIFEST_KEY)?;
    }
    Ok(())
}

pub fn write_checkpoint(storage: &dyn Storage, cp: &Checkpoint) -> Result<()> {
    storage.put_atomic(CHECKPOINT_KEY, &serde_json::to_vec_pretty(cp).expect("serialisable"))
}

pub fn read_checkpoint(storage: &dyn Storage) -> Result<Option<Checkpoint>> {
    match storage.get(CHECKPOINT_KEY)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::runtime(format!("{}/{CHECKPOINT_KEY} is corrupt: {e}", storage.describe()))
                .with_hint("restore it from backup, or start over with an empty target and a new slot")
        }),
    }
}

/// Finishes or undoes an interrupted flush; returns the checkpoint that holds afterwards.
pub fn recover(storage: &dyn Storage) -> Result<Option<Checkpoint>> {
    if let Some(bytes) = storage.get(MANIFEST_KEY)? {
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::runtime(format!("{}/{MANIFEST_KEY} is corrupt: {e}", storage.describe()))
        })?;
        let lost = manifest
            .parts
            .iter()
            .map(|p| Ok(!std::path::Path::new(&p.staging).exists() && !storage.exists(&p.key)?))
            .collect::<Result<Vec<bool>>>()?
            .into_iter()
            .any(|l| l);
        if lost {
            tracing::warn!("an interrupted flush lost a staged file; rolling it back");
            for p in &manifest.parts {
                storage.delete(&p.key)?;
            }
            storage.delete(MANIFEST_KEY)?;
        } else {
            tracing::info!(parts = manifest.parts.len(), "finishing a flush interrupted by a crash");
            for p in &manifest.parts {
                if std::path::Path::new(&p.staging).exists() {
                    storage.publish_file(std::path::Path::new(&p.staging), &p.key)?;
                    crate::failpoint::hit("recover-after-publish");
                }
            }
            write_checkpoint(storage, &manifest.checkpoint)?;
            storage.delete(MANIFEST_KEY)?;
        }
    }
    // Whatever else is in staging belongs to a flush that never reached its manifest.
    if let Ok(entries) = std::fs::read_dir(storage.staging_dir()) {
        for e in entries.flatten() {
            std::fs::remove_file(e.path()).ok();
        }
    }
    read_checkpoint(storage)
}
