//! Sinks: where changes go. One folder per sink (`parquet`, `kinesis` being built); the
//! storage backends they write through live beside them in `crate::storage`.
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
//! * [`Sink::flush`] hands over everything committed so far, up to `checkpoint.end_lsn`. A
//!   sink that writes synchronously (Parquet) makes it durable before it returns; one that
//!   sends asynchronously (Kinesis) may return once the work is queued, and makes it durable
//!   later, from its own tasks.
//! * Each sink reports how far it is durable through its [`Watermark`]. "Durable" means:
//!   local files fsynced together with their directory; S3 objects acknowledged; Kinesis
//!   records acknowledged. The pipeline confirms to the replication slot only the lowest
//!   watermark over all sinks (SPEC 2.1), so a slow or failing sink holds the slot back and
//!   loses nothing.
//! * Each sink states its [`Delivery`]: what a restart after a crash repeats.
//! * [`Sink::drain`] at the end of a run waits until everything handed over is durable.
//! * A sink may also offer [`Staging`]: the rows of a streamed transaction, handed over
//!   while it still streams and written with placeholders for its commit LSN and time,
//!   which its commit then fills in.
//! * Any `Err` stops the pipeline. Nothing is confirmed to the slot past the lowest
//!   watermark, so the next run repeats what was not durable and `recover` cleans up. An
//!   asynchronous sink reports a failure of its sender tasks at its next call (the pipeline
//!   calls `flush` at least every idle checkpoint interval, so a failure surfaces also while
//!   the source is idle).

mod open;
pub mod dead_letter;
pub mod kinesis;
pub mod parquet;
mod watermark;

pub use open::open_sinks;
pub use watermark::Watermark;

use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::model::{OutputRow, TableSchema, TxnMeta};
pub use crate::state::Checkpoint;

/// What a restart after a crash repeats in a sink's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Files published exactly once: a restart repeats nothing that was published
    /// (SPEC 2.2). The sink keeps its own record of what a flush published.
    ExactlyOnceFiles,
    /// Records acknowledged at least once: a restart resends what was sent after the
    /// watermark, and consumers drop duplicates by their position (`stream-position`).
    AtLeastOnceRecords,
}

/// See the module documentation for the contract as a whole. Every method is called from
/// the one pipeline thread, in stream order; none is called concurrently with another.
pub trait Sink: Send {
    /// A short name for logs and errors, e.g. `parquet file:///data/out`. Pure; may be
    /// called at any time.
    fn describe(&self) -> String;
    /// What a restart repeats in this sink's output. Pure.
    fn delivery(&self) -> Delivery;
    /// The sink's durable position, shared with whoever reads it (the reader reports the
    /// lowest over all sinks to the slot). The same watermark for the sink's whole life;
    /// [`Sink::recover`] sets it to the recovered checkpoint.
    fn watermark(&self) -> Arc<Watermark>;
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
    /// Hands over everything committed so far, up to `checkpoint` (whose `counts` the sink
    /// fills in); called between transactions only. Once it is durable the sink raises its
    /// [`Watermark`] to `checkpoint.end_lsn` — before returning when it writes
    /// synchronously; later, from its sender, when it sends asynchronously. For an
    /// exactly-once sink that means a crash at any later instant loses nothing up to that
    /// position and repeats nothing. `Err` stops the pipeline: nothing past the lowest
    /// watermark is confirmed, and the next run's [`Sink::recover`] cleans up.
    fn flush(&mut self, checkpoint: &Checkpoint) -> Result<()>;
    /// Waits until everything handed over by [`Sink::flush`] is durable (the watermark
    /// reached the last flush's position), at the end of a run. A synchronous sink has
    /// nothing to wait for. `Err`: it never became durable; the next run repeats it.
    fn drain(&mut self) -> Result<()> {
        Ok(())
    }
    /// The sink's [`Staging`] of streamed transactions, `None` when it has none (the
    /// pipeline then replays such a transaction from its spill at the commit). Pure.
    fn staging(&mut self) -> Option<&mut dyn Staging> {
        None
    }
}

/// Writing a streamed transaction while it streams (pgoutput `streaming`), so that its
/// commit finds most of the work done instead of replaying it all.
///
/// The pipeline stages at most one transaction at a time, and only while its changes need
/// no decision that the commit could overturn. It keeps the transaction's spill as the
/// source of truth: whenever staging stops short (a subtransaction is rolled back, a table
/// changes schema, any `Err` from here), it [`discard`](Staging::discard)s and replays the
/// spill at the commit as if nothing had been staged. So:
///
/// * Nothing staged may become visible to readers, or count in a checkpoint, before
///   [`Staging::commit`]; a discarded or abandoned staging leaves nothing behind but files
///   in the sink's staging area, which the next [`Sink::recover`] removes.
/// * `Err` from [`Staging::open`] or [`Staging::row`] is not an error of the run: the
///   pipeline discards and falls back. `Err` from [`Staging::commit`] is (as `row`'s).
///
/// Called from the pipeline thread, between and inside other transactions: staged rows
/// must not touch what the sink holds for the transactions it is handed meanwhile.
pub trait Staging {
    /// Starts staging a transaction (discarding whatever was staged before).
    fn open(&mut self) -> Result<()>;
    /// One row of the staged transaction, in `_seq` order; `row.lsn` and
    /// `row.commit_ts_us` are placeholders. `table` is the schema the transaction itself
    /// describes; the pipeline stages a table under one schema only.
    fn row(&mut self, table: &Arc<TableSchema>, row: &OutputRow<'_>) -> Result<()>;
    /// Drops what was staged.
    fn discard(&mut self);
    /// Called between [`Sink::begin`] and [`Sink::commit`] of the staged transaction, after
    /// [`Sink::relation`] announced each of its tables (with the schema it was staged
    /// under), instead of its rows: the staged rows become the transaction's, with
    /// `txn.commit_lsn` and `txn.commit_ts_us`, exactly as if they had been handed over by
    /// [`Sink::row`].
    fn commit(&mut self, txn: &TxnMeta) -> Result<()>;
}
