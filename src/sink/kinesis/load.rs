//! [`KinesisLoad`]: the full load's rows as DMS-JSON `load` records (SPEC 5.3), put into a
//! Kinesis sink's stream by the copy workers.
//!
//! Each copy worker encodes its chunk's batches ([`KinesisLoad::encode`]) and hands them to
//! the one sender of the stream ([`KinesisLoad::send`]); before the chunk is recorded as
//! done the worker waits until every record it handed over is acknowledged
//! ([`KinesisLoad::wait`]). A crash before that copies the chunk again, and its records are
//! sent again: at least once, like every Kinesis record. A row's `load` record is its only
//! record of the load, so per-key order is trivially kept within the load; the CDC after the
//! load starts only once every chunk is acknowledged, so a key's changes follow its `load`
//! record. (A chunk copied again after a crash reads a newer snapshot; the CDC from the
//! slot's point then repeats changes that record already holds, and a consumer that applies
//! by key converges, as the Parquet output does: README "Full load".)
//!
//! Methods are called from the load's tokio tasks: `encode` is CPU work (call it inside
//! `block_in_place`), `send` and `wait` are async and may be called from any runtime.

use bytes::Bytes;

use std::sync::Arc;

use super::dms_json::{DmsJsonEncoder, DmsJsonOptions, DmsRecordKind};
use super::planner::{Entry, MAX_RECORD_BYTES};
use super::sender::Batch;
use super::stream::{self, OpenStream};
use crate::config::{AwsConfig, KinesisSinkConfig};
use crate::error::{Error, Result};
use crate::model::{Lsn, TableSchema};
use crate::sink::dead_letter::{DeadLetterRoute, DeadLetters};
use crate::sink::Checkpoint;
use crate::state::checkpoint::write_checkpoint_at;
use crate::storage::Storage;
use arrow_array::RecordBatch;

/// One Kinesis sink as the full load sees it. Shared by every copy worker.
pub struct KinesisLoad {
    stream: String,
    options: DmsJsonOptions,
    open: OpenStream,
    /// The next batch's mark (the sender acknowledges by position; the load counts batches),
    /// taken together with handing the batch over, so marks reach the sender in order.
    next_mark: tokio::sync::Mutex<u64>,
    /// `[dead_letter]`: where a row whose record would pass 1 MiB goes.
    dead_letters: Option<DeadLetterRoute>,
    letters: Option<Arc<DeadLetters>>,
}

impl KinesisLoad {
    /// Opens the stream (see [`stream::open`]: one clear error if it cannot be described).
    /// Blocks; call it inside `block_in_place` from a runtime.
    /// With `letters`, rows this sink can never put become dead letters of sink
    /// `kinesis-{stream}` (as the CDC sink names them) instead of stopping the load.
    pub fn open(cfg: &KinesisSinkConfig, aws: Option<&AwsConfig>, letters: Option<Arc<DeadLetters>>) -> Result<KinesisLoad> {
        let options = stream::encoder_options(cfg)?;
        DmsJsonEncoder::new(options.clone())?;
        let key = stream::checkpoint_key(&cfg.stream);
        let label = key.rsplit('/').next().unwrap_or(&key).trim_end_matches(".json").to_string();
        Ok(KinesisLoad {
            stream: cfg.stream.clone(),
            options,
            open: stream::open(cfg, aws)?,
            next_mark: tokio::sync::Mutex::new(0),
            dead_letters: letters.clone().map(|l| DeadLetterRoute::new(l, label)),
            letters,
        })
    }

    /// The `[dead_letter]` location, for rows the load cannot read at all.
    pub fn dead_letters(&self) -> Option<&Arc<DeadLetters>> {
        self.letters.as_ref()
    }

    pub fn describe(&self) -> String {
        format!("kinesis {}", self.stream)
    }

    /// The `load` records of `batch` (rows of `table` in the native layout, `_op = 'L'`).
    /// A row whose record would pass the 1 MiB limit is a dead letter (written before this
    /// returns), or without `[dead_letter]` an error naming the table. Blocking.
    pub fn encode(&self, table: &TableSchema, batch: &RecordBatch) -> Result<Vec<Entry>> {
        let mut encoder = DmsJsonEncoder::new(self.options.clone())?;
        let now = crate::time_fmt::now_unix_micros();
        let mut out = Vec::with_capacity(batch.num_rows());
        for r in encoder.encode_batch(table, batch, now)? {
            let entry = Entry { partition_key: r.partition_key, explicit_hash_key: None, data: Bytes::from(r.data) };
            if entry.size() > MAX_RECORD_BYTES {
                let reason = format!("its Kinesis record has {} bytes, over the 1 MiB limit ({MAX_RECORD_BYTES} bytes)", entry.size());
                match (&self.dead_letters, r.kind) {
                    (Some(d), DmsRecordKind::Data { row, .. }) => d.refuse_batch_row(table, batch, row, reason)?,
                    _ => {
                        return Err(Error::runtime(format!("a row of {}: {reason}", table.qualified_name())).with_hint(
                            "add [dead_letter] url = \"file:///…\" (or s3://…) to keep such rows there and go on, or leave the table out of source.tables",
                        ))
                    }
                }
                continue;
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Hands `entries` to the sender; returns the mark to [`wait`](Self::wait) for. Waits
    /// while the sender is full (back-pressure on the copy workers).
    pub async fn send(&self, entries: Vec<Entry>) -> Result<Lsn> {
        let mut next = self.next_mark.lock().await;
        *next += 1;
        let mark = Lsn(*next);
        self.open.tx.send(Batch { entries, mark }).await.map_err(|_| self.stopped())?;
        Ok(mark)
    }

    /// Waits until every record handed over up to `mark` is acknowledged by the stream.
    /// Errors with the sender's permanent failure.
    pub async fn wait(&self, mark: Lsn) -> Result<()> {
        self.open.shared.wait_acked(mark).await
    }

    /// After a complete load, when CDC follows: stores `slot_lsn` as this sink's position in
    /// `progress`, so that its CDC starts where the load's snapshot ends.
    pub fn hand_over(&self, progress: &dyn Storage, slot_lsn: Lsn) -> Result<()> {
        let mut cp = Checkpoint::new(slot_lsn, slot_lsn);
        cp.written_at = crate::time_fmt::now_rfc3339();
        write_checkpoint_at(progress, &stream::checkpoint_key(&self.stream), &cp, &mut None)
    }

    fn stopped(&self) -> Error {
        self.open.shared.failure().unwrap_or_else(|| Error::runtime("internal: the Kinesis sender stopped"))
    }
}
