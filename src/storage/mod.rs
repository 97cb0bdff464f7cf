//! Where targets keep their objects: the [`Storage`] contract, a local directory
//! ([`LocalStorage`]) or S3 ([`S3Storage`]). Used by the sinks (their files) and the
//! progress store ([`crate::state`]).
//!
//! Keys are `/`-separated paths relative to the sink's root URL. The contract:
//!
//! * [`Storage::publish_file`] makes a finished local file appear at a key atomically (a
//!   reader sees all of it or nothing) and durably (it survives a crash once the call
//!   returns). The local file is consumed.
//! * [`Storage::put`] does the same for a small in-memory object (checkpoints, manifests,
//!   schema history), and says what it does when an object is already there ([`PutMode`]):
//!   progress objects are written with conditional puts, so a stale writer that wakes up
//!   after another took over finds its next progress write refused (fencing).
//! * Files are assembled in [`Storage::staging_dir`], a local directory owned by the sink; for
//!   a local target it lies inside the target so that publishing is a rename. What is staged
//!   is checked and cleaned through the trait ([`Storage::has_staged`],
//!   [`Storage::clear_staging`]), never by reading the directory behind its back.
//! * Opening a storage changes nothing in the target. Only the holder of the target's lock
//!   ([`Storage::lock`]) writes: taking the lock prepares the target for writing.
//! * Keys never leave the root: a key that is absolute or has an empty, `.` or `..` segment
//!   is refused with an internal error (table names are encoded into safe segments by
//!   [`crate::sink::parquet::naming::path_component`] before they get here).

mod local;
pub mod lock;
pub mod s3;
mod s3_errors;
mod s3_lock;
mod targets;

pub use local::LocalStorage;
pub use lock::TargetLock;
pub use s3::S3Storage;
pub use targets::Targets;

use std::path::Path;

use crate::aws::S3Options;
use crate::config::{Config, Location, ParquetSinkConfig};
use crate::error::{Error, Result};

/// How [`Storage::put`] treats an object already at its key.
#[derive(Clone, Copy, Debug)]
pub enum PutMode<'a> {
    /// Replace whatever is there (data files: a key always holds the same rows).
    Overwrite,
    /// Only when nothing is there (S3: `If-None-Match: *`).
    CreateOnly,
    /// Only when the object is still the version read or written before (S3: `If-Match`
    /// with its ETag).
    ReplaceIf(&'a Version),
}

/// An object's version as its backend identifies it: the ETag on S3; on a local directory
/// the file's inode, size and modification time (every put writes a new file and renames
/// it into place, so a put always changes it). Opaque: only compared for equality.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(pub String);

/// The error of a conditional [`Storage::put`] that found the object changed: another
/// writer took over the target. Not retryable: this process must stop without writing.
pub fn refused(target: &str, key: &str, mode: &PutMode<'_>) -> Error {
    let what = match mode {
        PutMode::CreateOnly => "it already exists",
        _ => "it changed since this process read or wrote it",
    };
    Error::runtime(format!(
        "{target}/{key} was not written: {what}; {REFUSED}"
    ))
    .with_hint("stop the other run first; this one stops without writing anything more")
}

/// The words that mark a [`refused`] error.
const REFUSED: &str = "another pgcdc run has taken over this target";

/// Whether `e` is a [`refused`] conditional put.
pub fn is_refused(e: &Error) -> bool {
    e.message.contains(REFUSED)
}

/// A target's storage; see the module documentation for the contract as a whole. Methods
/// may be called from any thread (a storage is shared by the pipeline and the load
/// workers); they block until done. Every error names the key and the target.
pub trait Storage: Send + Sync {
    /// The root, for messages (`file:///data/out`).
    fn describe(&self) -> String;
    /// Takes the target's writer lock, without waiting, and prepares the target for writing
    /// (creates it and its staging area). Contract: while the returned [`TargetLock`] lives,
    /// no other process's `lock` on the same target succeeds; the lock is released when it
    /// is dropped or the process ends in any way (a crash never leaves a target locked for
    /// good). When another process holds it, the error (exit 1) names the holder (host, pid,
    /// since when) and the target is left exactly as it was. `pgcdc run` takes it on every
    /// Parquet target before recovery, staging cleanup or any read of progress; commands
    /// that only read (`validate`, `status`, `check`) do not. A local target uses `flock`
    /// (see [`lock`]); an S3 target a conditional write of a lock object with a lease (see
    /// `s3_lock`).
    fn lock(&self) -> Result<TargetLock>;
    /// Checks that the target could be written (for `check`) without changing it.
    fn probe_writable(&self) -> Result<()>;
    /// The local directory where the caller assembles files before
    /// [`Storage::publish_file`]; owned by the lock holder. Anything left there by a crash
    /// is garbage the writer removes at recovery.
    fn staging_dir(&self) -> &Path;
    /// Moves the finished local file `local` (inside [`Storage::staging_dir`]) to `key`,
    /// replacing any object there: atomically (readers see all of it or nothing) and
    /// durably (it survives a crash once the call returns). `local` is consumed on success;
    /// on error the key holds either the old object or the whole new one.
    fn publish_file(&self, local: &Path, key: &str) -> Result<()>;
    /// Publishes several staged files, each as [`Storage::publish_file`] does; a backend may
    /// upload them concurrently (S3 does, a few at a time). `Ok` when all are published; on
    /// error each file is either whole at its key or not there, and the caller's recovery
    /// (the flush manifest) decides.
    fn publish_files(&self, files: &[(std::path::PathBuf, String)]) -> Result<()> {
        for (local, key) in files {
            self.publish_file(local, key)?;
        }
        Ok(())
    }
    /// Writes `data` at `key` with the same guarantees as [`Storage::publish_file`]
    /// (checkpoints, manifests, schema history), if `mode` allows, and returns the new
    /// object's version. A mode that does not hold is the error [`refused`], and the object
    /// is left as it was. (A local target checks the condition under its writer lock.)
    fn put(&self, key: &str, data: &[u8], mode: PutMode<'_>) -> Result<Version>;
    /// The object at `key` with its version, `None` when there is none.
    fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>>;
    /// The object at `key`, `None` when there is none.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_versioned(key)?.map(|(data, _)| data))
    }
    /// Whether a file that was assembled in [`Storage::staging_dir`] is still there (not
    /// yet published, and not lost with the machine).
    fn has_staged(&self, path: &Path) -> bool;
    /// Removes everything in [`Storage::staging_dir`]: what a crashed run left half done.
    /// Called by the lock holder during recovery only.
    fn clear_staging(&self) -> Result<()>;
    /// Whether an object exists at `key`.
    fn exists(&self, key: &str) -> Result<bool>;
    /// Removes the object at `key`, durably; no error when there is none.
    fn delete(&self, key: &str) -> Result<()>;
    /// Every key in the folder `prefix` (keys starting with `prefix/`; every key for an
    /// empty prefix), recursively, sorted. `public/t` does not list `public/t2/...`.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
}

/// Opens the storage at a target's location. Changes nothing in the target.
pub fn open(location: &Location, s3: &S3Options) -> Result<Box<dyn Storage>> {
    match location {
        Location::Local(dir) => Ok(Box::new(LocalStorage::open(dir.clone())?)),
        Location::S3 { bucket, prefix } => Ok(Box::new(S3Storage::open(bucket, prefix, s3.clone())?)),
    }
}

/// Opens the target of the Parquet sink `sink` of `config` (its location, and for S3 its
/// upload options and the `[aws]` section). Changes nothing in the target.
pub fn open_sink_target(config: &Config, sink: &ParquetSinkConfig) -> Result<Box<dyn Storage>> {
    open(&sink.location, &S3Options::of(config, sink))
}
