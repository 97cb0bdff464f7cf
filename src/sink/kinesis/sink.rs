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

use super::aggregate::Aggregation;
use super::dms_json::{DmsJsonEncoder, DmsJsonOptions, PartitionKeyType};
use super::planner::{Entry, MAX_RECORD_BYTES};
use super::sender::{self, Batch, Shared, StreamRef};
use crate::aws::Bridge;
use crate::batch::TableBatchBuilder;
use crate::config::{AwsConfig, KinesisSinkConfig};
use crate::error::{Error, Result};
use crate::model::{Lsn, OutputRow, TableSchema, TxnMeta};
use crate::sink::{Checkpoint, Delivery, Sink, Watermark};
use crate::state::checkpoint::{read_checkpoint_versioned_at, sink_checkpoint_key, write_checkpoint_at, Held};
use crate::storage::Storage;

/// How long records wait for more to fill a PutRecords request.
pub const LINGER: Duration = Duration::from_millis(200);
/// Encoded bytes after which a flush is due regardless of [`LINGER`].
const FLUSH_BYTES: usize = 4 << 20;
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
}

impl KinesisSink {
    /// Opens the sink: checks the options, and that the stream exists and can be described
    /// (one clear error if not, exit 1). `progress` is the target the acknowledged position
    /// is stored in.
    pub fn open(cfg: &KinesisSinkConfig, aws: Option<&AwsConfig>, progress: Arc<dyn Storage>) -> Result<KinesisSink> {
        if cfg.format != "dms-json" {
            return Err(Error::config(format!("kind = \"kinesis\": format = {:?} is not supported", cfg.format)).with_hint("use format = \"dms-json\""));
        }
        let kpl = match cfg.aggregation.as_str() {
            "none" => false,
            "kpl" => true,
            other => return Err(Error::config(format!("kind = \"kinesis\": aggregation = {other:?}")).with_hint("use \"none\" (the default) or \"kpl\"")),
        };
        let partition_key_type = match cfg.partition_key.as_str() {
            "primary-key" => PartitionKeyType::PrimaryKey,
            "schema-table" => PartitionKeyType::SchemaTable,
            other => {
                return Err(Error::config(format!("kind = \"kinesis\": partition_key = {other:?}")).with_hint("use \"primary-key\" (the default) or \"schema-table\""))
            }
        };
        let encoder = DmsJsonEncoder::new(DmsJsonOptions { partition_key_type, ..Default::default() })?;
        let bridge = Arc::new(Bridge::new("pgcdc-kinesis", 2)?);
        let aws = aws.cloned();
        let client = bridge.run(async move { aws_sdk_kinesis::Client::new(&crate::aws::load(aws.as_ref()).await) })?;
        let stream = StreamRef { client, stream: cfg.stream.clone() };
        check_stream(&bridge, &stream)?;
        let aggregation = match kpl {
            true => {
                let s = stream.clone();
                Some(bridge.run(async move { Aggregation::start(&s).await })??)
            }
            false => None,
        };
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel(4);
        bridge.handle().spawn(sender::run(stream, cfg.max_in_flight, rx, shared.clone(), aggregation));
        let name: String = cfg.stream.rsplit('/').next().unwrap_or(&cfg.stream).chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        Ok(KinesisSink {
            stream: cfg.stream.clone(),
            bridge,
            tx: Some(tx),
            shared,
            progress,
            key: sink_checkpoint_key(&format!("kinesis-{name}")),
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
        })
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
            .with_hint("dead letters are not built yet: leave the table out of source.tables, or remove the Kinesis sink"));
        }
        self.pending_bytes += entry.size();
        self.pending_since.get_or_insert_with(Instant::now);
        self.pending.push(entry);
        Ok(())
    }
}

fn without_attnums(table: &TableSchema) -> TableSchema {
    let mut t = table.clone();
    for c in &mut t.columns {
        c.attnum = None;
    }
    t
}

/// DescribeStreamSummary once: a missing stream, denied access or an unreachable endpoint
/// is one clear error at start instead of retries later.
fn check_stream(bridge: &Bridge, stream: &StreamRef) -> Result<()> {
    let s = stream.clone();
    let answer = bridge.run(async move {
        let call = s.client.describe_stream_summary();
        let call = if s.is_arn() { call.stream_arn(&s.stream) } else { call.stream_name(&s.stream) };
        call.send().await.map(|_| ()).map_err(|e| {
            use aws_sdk_kinesis::error::ProvideErrorMetadata;
            let code = e.code().unwrap_or("").to_string();
            (code, crate::aws::error_causes(&e))
        })
    })?;
    answer.map_err(|(code, detail)| {
        Error::runtime(format!("Kinesis stream {}: {detail}", stream.stream)).with_hint(sender::refusal_hint(&code))
    })
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
        self.open[i].1.append(row).map_err(|e| Error::runtime(format!("{}: {e}", table.qualified_name())))
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
        let batch = Batch { entries: std::mem::take(&mut self.pending), mark: checkpoint.end_lsn };
        self.pending_bytes = 0;
        self.pending_since = None;
        self.last_mark = self.last_mark.max(checkpoint.end_lsn);
        self.sent = true;
        let tx = self.tx.clone().expect("open until drained");
        // Waits while the sender is full: the back-pressure of a slow stream.
        self.bridge
            .run(async move { tx.send(batch).await })?
            .map_err(|_| self.shared.failure().unwrap_or_else(|| Error::runtime("internal: the Kinesis sender stopped")))?;
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
