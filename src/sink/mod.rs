//! Sinks: where changes go. One folder per sink (`parquet`, later `kinesis`) and the storage
//! backends they write through (`storage`).
//!
//! # The sink contract
//!
//! The pipeline drives every sink with the same calls, in commit order, from one thread:
//!
//! * [`Sink::recover`] once at start. The sink finishes or discards whatever an earlier,
//!   interrupted run left half done and returns its durable [`Checkpoint`]. The pipeline then
//!   feeds it only transactions whose `end_lsn` is past that checkpoint: this is how a restart
//!   skips what is already written (SPEC 2.2).
//! * [`Sink::begin`], [`Sink::row`]…, [`Sink::commit`] for each committed transaction. Rows
//!   handed over between `begin` and `commit` must not become visible to readers before the
//!   transaction's commit has been handed over *and* a later [`Sink::flush`] returned
//!   (SPEC 2.4). Rows are borrowed for the call only; a sink copies what it keeps.
//! * [`Sink::flush`] makes everything committed so far durable and records the checkpoint in
//!   the sink's own target. When it returns `Ok`, a crash at any later instant loses nothing
//!   up to `checkpoint.end_lsn` and repeats nothing. "Durable" means: local files fsynced
//!   together with their directory; S3 objects acknowledged; Kinesis records acknowledged.
//!   Only after every sink's `flush` returned does the pipeline confirm the position to the
//!   replication slot (SPEC 2.1).
//! * Any `Err` stops the pipeline. Nothing is confirmed to the slot past the last successful
//!   flush, so the next run repeats the unflushed transactions and `recover` cleans up.

mod open;
pub mod kinesis;
pub mod parquet;

pub use open::open_sinks;

use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::model::{OutputRow, TableSchema, TxnMeta};
pub use crate::state::Checkpoint;

/// See the module documentation for the contract as a whole. Every method is called from
/// the one pipeline thread, in stream order; none is called concurrently with another.
pub trait Sink: Send {
    /// A short name for logs and errors, e.g. `parquet file:///data/out`. Pure; may be
    /// called at any time.
    fn describe(&self) -> String;
    /// Called once, before any other call but `describe`: finishes or discards what an
    /// interrupted run left half done (a crash between writing data and recording it) and
    /// returns the durable checkpoint, `None` for a new target. After it the target holds
    /// exactly the transactions up to that checkpoint. An `Err` stops `run` before anything
    /// is read from the slot.
    fn recover(&mut self) -> Result<Option<Checkpoint>>;
    /// A committed transaction starts; only transactions whose `end_lsn` is past the
    /// recovered checkpoint are handed over. Rows follow, then [`Sink::commit`].
    fn begin(&mut self, txn: &TxnMeta) -> Result<()>;
    /// The table's schema as of this point of the stream. Called before its first row and
    /// again whenever its columns, key or relfilenode change (a new file with the new
    /// schema starts then, and the schema history records it).
    fn relation(&mut self, table: &Arc<TableSchema>, txn: &TxnMeta) -> Result<()>;
    /// One output row of the current transaction, in `_seq` order. The row is borrowed for
    /// the call only: the sink copies what it keeps. Nothing of it may become visible to
    /// readers before the transaction's commit and a later successful flush.
    fn row(&mut self, table: &Arc<TableSchema>, row: &OutputRow<'_>) -> Result<()>;
    /// The current transaction is complete: its rows become part of the next flush.
    fn commit(&mut self, txn: &TxnMeta) -> Result<()>;
    /// True when buffered data has reached a size or age limit and should be flushed.
    /// Pure; asked between transactions.
    fn wants_flush(&self, now: Instant) -> bool;
    /// True when committed rows are waiting for a flush. Pure.
    fn has_pending(&self) -> bool;
    /// Makes everything committed so far durable and records `checkpoint` (whose `counts`
    /// the sink fills in) in its target; called between transactions only. `Ok` means a
    /// crash at any later instant loses nothing up to `checkpoint.end_lsn` and repeats
    /// nothing; only then may the pipeline confirm that position to the slot. `Err` stops
    /// the pipeline: nothing past the previous flush is confirmed, and the next run's
    /// [`Sink::recover`] cleans up.
    fn flush(&mut self, checkpoint: &Checkpoint) -> Result<()>;
}
