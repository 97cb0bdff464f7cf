//! Atomic publication of a flush: several files plus the checkpoint, all or nothing.
//!
//! A flush writes every part to staging and fsyncs it, then writes
//! `_pgcdc/manifest.json` (the parts' staging paths and final keys, and the checkpoint),
//! then publishes each part, then writes `_pgcdc/checkpoint.json` and deletes the manifest.
//! After a crash, [`recover`] finds the manifest and rolls the flush forward (publishing what
//! is still in staging), or — if a staged part was lost with the machine — back (deleting the
//! parts already published), so the target never holds a transaction twice or half.
//!
//! The checkpoint itself belongs to the progress store ([`crate::state::checkpoint`]), which
//! writes it fenced and never backwards; the manifest is this sink's private exactly-once
//! record, written create-only so that a stale writer cannot start a flush over another's.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::checkpoint::{read_checkpoint_versioned, write_checkpoint, Held};
use crate::state::Checkpoint;
use crate::storage::{PutMode, Storage};

pub const MANIFEST_KEY: &str = "_pgcdc/manifest.json";

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

/// Publishes `manifest` as one atomic step (see the module docs); `held` is updated to the
/// new checkpoint.
pub fn commit(storage: &dyn Storage, manifest: &Manifest, held: &mut Held) -> Result<()> {
    use crate::failpoint::hit;
    if !manifest.parts.is_empty() {
        hit("flush-before-manifest");
        storage.put(MANIFEST_KEY, &serde_json::to_vec_pretty(manifest).expect("serialisable"), PutMode::CreateOnly)?;
        hit("flush-after-manifest");
        // The first part alone (a crash window the tests aim at), then the rest together:
        // a backend may upload them concurrently.
        let files: Vec<(std::path::PathBuf, String)> =
            manifest.parts.iter().map(|p| (std::path::PathBuf::from(&p.staging), p.key.clone())).collect();
        storage.publish_file(&files[0].0, &files[0].1)?;
        hit("flush-after-first-publish");
        storage.publish_files(&files[1..])?;
    }
    hit("flush-before-checkpoint");
    write_checkpoint(storage, &manifest.checkpoint, held)?;
    hit("flush-after-checkpoint");
    if !manifest.parts.is_empty() {
        storage.delete(MANIFEST_KEY)?;
    }
    Ok(())
}

/// Finishes or undoes an interrupted flush; returns the checkpoint that holds afterwards,
/// with its version. Called by the lock holder only.
pub fn recover(storage: &dyn Storage) -> Result<Held> {
    let mut held = read_checkpoint_versioned(storage)?;
    if let Some(bytes) = storage.get(MANIFEST_KEY)? {
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::runtime(format!("{}/{MANIFEST_KEY} is corrupt: {e}", storage.describe()))
        })?;
        let lost = manifest
            .parts
            .iter()
            .map(|p| Ok(!storage.has_staged(std::path::Path::new(&p.staging)) && !storage.exists(&p.key)?))
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
                if storage.has_staged(std::path::Path::new(&p.staging)) {
                    storage.publish_file(std::path::Path::new(&p.staging), &p.key)?;
                    crate::failpoint::hit("recover-after-publish");
                }
            }
            // The checkpoint may already be written (a crash between it and deleting the
            // manifest): then it is the manifest's and stays.
            if held.as_ref().map(|(cp, _)| cp.end_lsn) != Some(manifest.checkpoint.end_lsn) {
                write_checkpoint(storage, &manifest.checkpoint, &mut held)?;
            }
            storage.delete(MANIFEST_KEY)?;
        }
    }
    // Whatever else is in staging belongs to a flush that never reached its manifest.
    storage.clear_staging()?;
    Ok(held)
}
