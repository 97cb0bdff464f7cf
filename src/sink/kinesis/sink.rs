//! [`KinesisSink`]: change rows as DMS-JSON records (SPEC 5.3) put into a Kinesis data
//! stream, at least once, in commit order per partition key.
//!
//! On the pipeline thread the sink collects the rows of the open transaction per table in
//! Arrow batches, encodes them at commit ([`super::dms_json`]) and, at a flush, hands the
//! records with the flush's position to its sender ([`super::sender`]), which runs on the
//! sink's own tokio runtime and never blocks the pipeline except for back-pressure (a full
//! queue). Durability: the sink stores the position up to which the stream acknowledged
//! every record in the progress store (`_pgcdc/sinks/kinesis-{stream}.json` in the first
//! Parquet sink, fenced like the checkpoint) and only then raises its [`Watermark`], so the
//! slot is never confirmed past what a restart would resend from. It writes that position at
//! most once per [`ACK_WRITE_INTERVAL`] (one PUT a second on S3), and always at the end. A
//! restart resends what came after that position; consumers drop duplicates by
//! `stream-position`. With `aggregation = "kpl"` the sender packs records per shard
//! ([`super::aggregate`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::dms_json::{DmsJsonEncoder, DmsRecordKind};
use super::planner::{Entry, MAX_RECORD_BYTES};
use super::sender::{Batch, Shared};
use super::stream::{self, OpenStream};
use crate::aws::Bridge;
use crate::batch::TableBatchBuilder;
use crate::config::{AwsConfig, KinesisSinkConfig};
use crate::error::{Error, Result};
use crate::model::{Lsn, OutputRow, TableSchema, TxnMeta};
use crate::sink::dead_letter::{DeadLetterRoute, DeadLetters};
use crate::sink::{Checkpoint, Delivery, Sink, Watermark};
use crate::state::checkpoint::{read_checkpoint_versioned_at, write_checkpoint_at, Held};
use crate::storage::Storage;

/// How long records wait for more to fill a PutRecords request.
pub const LINGER: Duration = Duration::from_millis(200);
/// Encoded bytes after which a flush is due regardless of [`LINGER`]; inside a transaction,
/// after which its records so far go to the sender (memory stays bounded whatever the
/// transaction's size).
const FLUSH_BYTES: usize = 4 << 20;
/// Rows of one table in the open transaction after which they are encoded.
const ENCODE_ROWS: usize = 8192;
/// The shortest time between two writes of the acknowledged position (a PUT on S3), except
/// the one at [`Sink::drain`].
pub const ACK_WRITE_INTERVAL: Duration = Duration::from_secs(1);

pub struct KinesisSink {
    stream: String,
    bridge: Arc<Bridge>,
    tx: Option<mpsc::Sender<Batch>>,
    shared: Arc<Shared>,
    /// Where the acknowledged position is stored, and under which key.
    progress: Arc<dyn Storage>,
    key: String,
    held: Held,
    /// When the acknowledged position was last written ([`ACK_WRITE_INTERVAL`]).
    acked_written_at: Option<Instant>,
    watermark: Arc<Watermark>,
    encoder: DmsJsonEncoder,
    /// The schema last announced per relation (create-table / column-change records).
    announced: HashMap<u32, Arc<TableSchema>>,
    /// Rows of the open transaction, per table in first-row order.
    open: Vec<(Arc<TableSchema>, TableBatchBuilder)>,
    /// Encoded records of committed transactions, not yet handed to the sender.
    pending: Vec<Entry>,
    pending_bytes: usize,
    pending_since: Option<Instant>,
    /// The position of the last flush handed to the sender (or recovered).
    last_mark: Lsn,
    /// Whether this run handed the sender anything: [`Sink::drain`] waits for that only (the
    /// sender's acknowledgements start from zero, below a recovered position).
    sent: bool,
    /// `[dead_letter]`: where rows with an unconvertible value and records over 1 MiB go.
    dead_letters: Option<DeadLetterRoute>,
    /// Key column names per table, for dead letters of rejected records.
    key_columns: super::rejections::KeyColumns,
}

impl KinesisSink {
    /// Opens the sink: checks the options, and that the stream exists and can be described
    /// (one clear error if not, exit 1). `progress` is the target the acknowledged position
    /// is stored in.
    pub fn open(cfg: &KinesisSinkConfig, aws: Option<&AwsConfig>, progress: Arc<dyn Storage>) -> Result<KinesisSink> {
        let encoder = DmsJsonEncoder::new(stream::encoder_options(cfg)?)?;
        let OpenStream { bridge, tx, shared } = stream::open(cfg, aws)?;
        Ok(KinesisSink {
            stream: cfg.stream.clone(),
            bridge,
            tx: Some(tx),
            shared,
            progress,
            key: stream::checkpoint_key(&cfg.stream),
            held: None,
            acked_written_at: None,
            watermark: Arc::default(),
            encoder,
            announced: HashMap::new(),
            open: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: None,
            last_mark: Lsn::ZERO,
            sent: false,
            dead_letters: None,
            key_columns: Default::default(),
        })
    }

    /// Sends changes this sink can never put (see [`crate::sink::dead_letter`]) to
    /// `letters`, named `kinesis-{stream}` there, instead of stopping the run; `None` keeps
    /// the error.
    pub fn with_dead_letters(mut self, letters: Option<Arc<DeadLetters>>) -> KinesisSink {
        let label = self.key.rsplit('/').next().unwrap_or(&self.key).trim_end_matches(".json").to_string();
        self.dead_letters = letters.map(|l| DeadLetterRoute::new(l, label));
        if let Some(route) = &self.dead_letters {
            let _ = self.shared.rejected.set(super::rejections::dead_letter_hook(route.clone(), self.key_columns.clone()));
        }
        self
    }

    /// Stores the acknowledged position and then raises the watermark to it. Called on the
    /// pipeline thread (at flushes and at the end): at most once per [`ACK_WRITE_INTERVAL`]
    /// unless `now` (at [`Sink::drain`]); a skipped write leaves the watermark where it was.
    fn record_acked(&mut self, now: bool) -> Result<()> {
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        let acked = self.shared.acked();
        if self.held.as_ref().is_some_and(|(cp, _)| cp.end_lsn >= acked) || acked == Lsn::ZERO {
            return Ok(());
        }
        if !now && !self.ack_write_due(Instant::now()) {
            return Ok(());
        }
        self.acked_written_at = Some(Instant::now());
        let mut cp = Checkpoint::new(acked, acked);
        cp.written_at = crate::time_fmt::now_rfc3339();
        write_checkpoint_at(self.progress.as_ref(), &self.key, &cp, &mut self.held)?;
        self.watermark.raise(acked);
        Ok(())
    }

    fn unrecorded_acks(&self) -> bool {
        self.shared.acked() > self.watermark.get()
    }

    fn ack_write_due(&self, now: Instant) -> bool {
        self.acked_written_at.is_none_or(|t| now.duration_since(t) >= ACK_WRITE_INTERVAL)
    }

    /// Encodes the rows `builder` holds (of `table`) into pending records.
    fn encode(&mut self, table: &Arc<TableSchema>, builder: &mut TableBatchBuilder) -> Result<()> {
        if builder.is_empty() {
            return Ok(());
        }
        let batch = builder.finish();
        let now = crate::time_fmt::now_unix_micros();
        for r in self.encoder.encode_batch(table, &batch, now)? {
            if let (Some(d), DmsRecordKind::Data { row, .. }) = (&self.dead_letters, r.kind) {
                let size = r.partition_key.len() + r.data.len();
                if size > MAX_RECORD_BYTES {
                    let reason = format!("its Kinesis record has {size} bytes, over the 1 MiB limit ({MAX_RECORD_BYTES} bytes)");
                    d.refuse_batch_row(table, &batch, row, reason)?;
                    continue;
                }
            }
            self.push(r.partition_key, r.data, table)?;
        }
        Ok(())
    }

    fn push(&mut self, partition_key: String, data: Vec<u8>, table: &TableSchema) -> Result<()> {
        let entry = Entry { partition_key, explicit_hash_key: None, data: Bytes::from(data) };
        if entry.size() > MAX_RECORD_BYTES {
            return Err(Error::runtime(format!(
                "a change of {} makes a Kinesis record of {} bytes, over the 1 MiB limit",
                table.qualified_name(),
                entry.size()
            ))
            .with_hint("add [dead_letter] url = \"file:///…\" (or s3://…) to keep such changes there and go on, or leave the table out of source.tables"));
        }
        self.pending_bytes += entry.size();
        self.pending_since.get_or_insert_with(Instant::now);
        self.pending.push(entry);
        Ok(())
    }
}

impl KinesisSink {
    /// Hands the pending records to the sender, durable at `mark` once acknowledged (a
    /// flush's position, or the last one again inside a transaction). Waits while the
    /// sender is full: the back-pressure of a slow stream.
    fn hand_over(&mut self, mark: Lsn) -> Result<()> {
        let batch = Batch { entries: std::mem::take(&mut self.pending), mark };
        self.pending_bytes = 0;
        self.pending_since = None;
        self.last_mark = self.last_mark.max(mark);
        self.sent = true;
        let tx = self.tx.clone().expect("open until drained");
        self.bridge
            .run(async move { tx.send(batch).await })?
            .map_err(|_| self.shared.failure().unwrap_or_else(|| Error::runtime("internal: the Kinesis sender stopped")))
    }
}

fn without_attnums(table: &TableSchema) -> TableSchema {
    let mut t = table.clone();
    for c in &mut t.columns {
        c.attnum = None;
    }
    t
}

impl Sink for KinesisSink {
    fn describe(&self) -> String {
        format!("kinesis {}", self.stream)
    }

    fn delivery(&self) -> Delivery {
        Delivery::AtLeastOnceRecords
    }

    fn watermark(&self) -> Arc<Watermark> {
        self.watermark.clone()
    }

    fn recover(&mut self) -> Result<Option<Checkpoint>> {
        self.held = read_checkpoint_versioned_at(self.progress.as_ref(), &self.key)?;
        let cp = self.held.as_ref().map(|(cp, _)| cp.clone());
        if let Some(cp) = &cp {
            self.watermark.raise(cp.end_lsn);
            self.last_mark = cp.end_lsn;
        }
        Ok(cp)
    }

    fn begin(&mut self, _txn: &TxnMeta) -> Result<()> {
        self.open.clear();
        Ok(())
    }

    fn relation(&mut self, table: &Arc<TableSchema>, txn: &TxnMeta) -> Result<()> {
        let now = crate::time_fmt::now_unix_micros();
        // Rows before a schema change go out with the old schema.
        if let Some(i) = self.open.iter().position(|(t, _)| t.relid == table.relid) {
            let (t, mut b) = self.open.remove(i);
            self.encode(&t, &mut b)?;
        }
        let control = match self.announced.get(&table.relid) {
            None => vec![self.encoder.create_table(table, txn.commit_lsn, now)],
            // Matched by name, not attnum: the attnums come from the catalog as it is now,
            // not as of this point of the stream, so after a later DROP COLUMN they no longer
            // line up and a plain ADD COLUMN would read as a rename. A rename reads as a
            // drop and an add; a change of anything but names and types (a default, an
            // attnum) announces nothing.
            Some(old) => self.encoder.column_changes(&without_attnums(old), &without_attnums(table), txn.commit_lsn, now),
        };
        for r in control {
            self.push(r.partition_key, r.data, table)?;
        }
        self.announced.insert(table.relid, table.clone());
        let key = table.key.iter().filter_map(|&i| table.columns.get(i)).map(|c| c.name.clone()).collect();
        self.key_columns.lock().expect("not poisoned").insert(table.qualified_name(), key);
        Ok(())
    }

    fn row(&mut self, table: &Arc<TableSchema>, row: &OutputRow<'_>) -> Result<()> {
        let i = match self.open.iter().position(|(t, _)| Arc::ptr_eq(t, table)) {
            Some(i) => i,
            None => {
                self.open.push((table.clone(), TableBatchBuilder::new(table.clone())));
                self.open.len() - 1
            }
        };
        match (self.open[i].1.append(row), &self.dead_letters) {
            (Ok(()), _) => {}
            // The builder holds nothing of a refused row.
            (Err(e), Some(d)) => d.refuse_row(table, row, &e)?,
            (Err(e), None) => return Err(Error::runtime(format!("{}: {e}", table.qualified_name())).with_hint(crate::sink::dead_letter::REFUSED_HINT)),
        }
        // A big transaction: its rows reach the pipeline only once it is committed (a
        // streamed one is replayed at its commit), so they may be encoded and sent before
        // its end, under the last flush's position (they count toward no new position yet).
        if self.open[i].1.len() >= ENCODE_ROWS {
            let t = self.open[i].0.clone();
            let mut b = std::mem::replace(&mut self.open[i].1, TableBatchBuilder::new(t.clone()));
            self.encode(&t, &mut b)?;
            self.open[i].1 = b;
            if self.pending_bytes >= FLUSH_BYTES {
                self.hand_over(self.last_mark)?;
            }
        }
        Ok(())
    }

    fn commit(&mut self, _txn: &TxnMeta) -> Result<()> {
        for (t, mut b) in std::mem::take(&mut self.open) {
            self.encode(&t, &mut b)?;
        }
        Ok(())
    }

    /// Also when acknowledgements arrived that are not recorded yet and a write is due:
    /// recording them (at the next flush) is what advances the slot, also while the source
    /// is idle.
    fn wants_flush(&self, now: Instant) -> bool {
        self.pending_bytes >= FLUSH_BYTES
            || self.pending_since.is_some_and(|t| now.duration_since(t) >= LINGER)
            || (self.unrecorded_acks() && self.ack_write_due(now))
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.unrecorded_acks()
    }

    fn flush(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.record_acked(false)?;
        if self.pending.is_empty() && checkpoint.end_lsn <= self.last_mark {
            return Ok(());
        }
        self.hand_over(checkpoint.end_lsn)?;
        self.record_acked(false)
    }

    fn drain(&mut self) -> Result<()> {
        if !self.sent {
            return self.record_acked(true);
        }
        let (shared, mark) = (self.shared.clone(), self.last_mark);
        self.bridge.run(async move { shared.wait_acked(mark).await })??;
        self.record_acked(true)
    }
}
