//! Ordering, durability acknowledgements, checkpoints and back-pressure.
//!
//! The pipeline runs on its own thread and owns the sinks. It receives [`SourceEvent`]s in
//! stream order from the replication reader through a bounded channel (back-pressure: when
//! the sinks are slow, the reader stops reading the socket), decodes pgoutput, assembles
//! transactions (spilling streamed ones), applies the SPEC 5.1 row rules and drives every
//! sink through the [`crate::sink::Sink`] contract. [`Progress::durable`], the lowest
//! watermark over all sinks, is what the reader reports to the slot.

mod blocking_catalog;
mod changes;
pub mod progress;
pub mod relations;
mod reconnect;
mod reload_wiring;
mod replay;
mod row_filter;
mod shapes;
pub mod slot_watch;
pub mod rewrite;
pub mod runner;
mod huge_bytea;
mod spill;
pub mod staging;
mod stop;
mod summary;
pub mod table_watch;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use self::changes::{change_relid, change_rows, truncate_values, RowOut};
use self::staging::{Staged, Staging};
use crate::config::TableFilter;
use self::progress::Progress;
use self::relations::{CatalogLookup, Relations};
use crate::load::requests::{ReloadRequest, Reloads};
use self::spill::StreamSpill;
use crate::model::{OutputRow, TableSchema};
use crate::error::{Error, Result};
use crate::model::{pg_ts_to_unix_micros, Lsn, RowOp, TxnMeta};
use crate::sink::{Checkpoint, Sink};
use crate::source::pgoutput::{decode_message, Decoder, PgOutputMessage};

pub use crate::source::replication::SourceEvent;

#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The pipeline is done (until-LSN reached or shutdown); everything is flushed.
    Done,
}

struct SinkSlot {
    sink: Box<dyn Sink>,
    /// Transactions whose commit LSN is before this were already durable in this sink.
    resume_from: Lsn,
    /// Schema last announced to this sink per relation.
    announced: HashMap<u32, Arc<TableSchema>>,
    /// Whether the open transaction is fed to this sink.
    active: bool,
}

struct OpenTxn {
    meta: TxnMeta,
    seq: i64,
    /// Tables whose relfilenode changed (a rewrite, or a TRUNCATE): reloaded at commit
    /// unless this transaction truncated them ([`rewrite`]).
    rewritten: Vec<ReloadRequest>,
}

pub struct PipelineOptions {
    pub protocol_version: u32,
    pub until: Option<Lsn>,
    pub tables: Vec<String>,
    pub spill_dir: PathBuf,
    /// Minimum time between checkpoints written only to record idle progress.
    pub idle_checkpoint_interval: Duration,
    /// The `[[rule]]`s: every change is shaped by them before a sink sees it.
    pub rules: Vec<crate::config::RuleConfig>,
    /// Tables (`schema.table`) whose rule row filter the publication already applies; the
    /// pipeline applies the others' itself ([`row_filter`]).
    pub server_filters: std::collections::HashSet<String>,
    /// Whether streamed transactions are staged ([`staging`]); `PGCDC_STREAM_STAGING`.
    pub stage_streamed: bool,
}

pub struct Pipeline {
    decoder: Decoder,
    protocol_version: u32,
    sinks: Vec<SinkSlot>,
    relations: Relations,
    /// The relations shaped by the rules.
    shapes: shapes::Shapes,
    catalog: Box<dyn CatalogLookup + Send>,
    filter: TableFilter,
    txn: Option<OpenTxn>,
    spill: StreamSpill,
    /// Top-level xid of the stream chunk being received.
    stream_xid: Option<u32>,
    /// The streamed transaction being staged ([`staging`]).
    staging: Staging,
    /// The lowest watermark over the sinks, reported to the slot by the reader.
    progress: Arc<Progress>,
    until: Option<Lsn>,
    last_commit: Option<(Lsn, Lsn)>,
    last_checkpoint_at: Instant,
    idle_checkpoint_interval: Duration,
    stopping: bool,
    /// Told about every Relation message of a selected table (see [`reload`]).
    reloads: Option<Arc<Reloads>>,
    /// Relations described by the stream and not yet reported to `reloads`: reported at
    /// their first change.
    unobserved: std::collections::HashSet<u32>,
    pub stats: PipelineStats,
    /// The periodic info summary ([`summary`]).
    summary: summary::Summary,
}

#[derive(Default, Debug, Clone)]
pub struct PipelineStats {
    pub transactions: u64,
    pub rows: u64,
    pub streamed_transactions: u64,
    /// Streamed transactions written from their staging ([`staging`]), not replayed.
    pub staged_transactions: u64,
    pub aborted_streams: u64,
    pub flushes: u64,
}

impl Pipeline {
    /// Recovers every sink and returns the pipeline and the LSN to start streaming from.
    pub fn open(
        mut sinks: Vec<Box<dyn Sink>>,
        catalog: Box<dyn CatalogLookup + Send>,
        opts: PipelineOptions,
    ) -> Result<(Pipeline, Option<Lsn>)> {
        let mut slots = Vec::new();
        let mut start: Option<Lsn> = None;
        let mut any_fresh = false;
        for mut sink in sinks.drain(..) {
            let cp = sink.recover().map_err(|e| e.context(format!("recovering {}", sink.describe())))?;
            let resume_from = cp.as_ref().map(|c| c.end_lsn).unwrap_or(Lsn::ZERO);
            if cp.is_none() {
                any_fresh = true;
            }
            start = Some(start.map_or(resume_from, |s| s.min(resume_from)));
            slots.push(SinkSlot { sink, resume_from, announced: HashMap::new(), active: false });
        }
        let start = if any_fresh { None } else { start };
        let watermarks = slots.iter().map(|s| s.sink.watermark()).collect();
        let progress = Arc::new(Progress::new(start.unwrap_or(Lsn::ZERO), watermarks));
        let pipeline = Pipeline {
            decoder: Decoder::new(opts.protocol_version),
            protocol_version: opts.protocol_version,
            sinks: slots,
            relations: Relations::default(),
            shapes: shapes::Shapes::new(opts.rules, opts.server_filters),
            catalog,
            filter: TableFilter::new(&opts.tables),
            txn: None,
            spill: StreamSpill::new(opts.spill_dir)?,
            stream_xid: None,
            staging: Staging::new(opts.stage_streamed),
            progress,
            until: opts.until,
            last_commit: None,
            last_checkpoint_at: Instant::now(),
            idle_checkpoint_interval: opts.idle_checkpoint_interval,
            stopping: false,
            reloads: None,
            unobserved: Default::default(),
            stats: PipelineStats::default(),
            summary: summary::Summary::from_env()?,
        };
        Ok((pipeline, start))
    }

    /// Makes the pipeline report tables the stream shows (OID and name) to `reloads`, which
    /// asks for a reload of a table that joined, was renamed or was recreated.
    pub fn set_reloads(&mut self, reloads: Arc<Reloads>) {
        self.reloads = Some(reloads);
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Handles one event. Errors stop the pipeline without flushing anything unfinished.
    pub fn handle(&mut self, event: SourceEvent) -> Result<Flow> {
        match event {
            SourceEvent::Data { wal_end, data } => {
                self.summary.saw_server_end(wal_end);
                self.on_data(wal_end, data)
            }
            SourceEvent::Keepalive { wal_end } => {
                self.summary.saw_server_end(wal_end);
                self.on_position(wal_end)
            }
            SourceEvent::Tick => {
                self.summary.tick(Instant::now(), &self.stats, self.progress.durable());
                if self.txn.is_none() {
                    self.flush_due()?;
                }
                Ok(Flow::Continue)
            }
            SourceEvent::SetUntil(lsn) => {
                self.until = Some(lsn);
                if self.last_commit.is_some_and(|(_, end)| end > lsn) {
                    return self.finish();
                }
                Ok(Flow::Continue)
            }
            SourceEvent::Shutdown => {
                self.stopping = true;
                if self.txn.is_none() {
                    return self.finish();
                }
                Ok(Flow::Continue)
            }
        }
    }

    fn on_data(&mut self, _wal_end: Lsn, data: Bytes) -> Result<Flow> {
        if let Some(top) = self.stream_xid {
            // Changes inside a stream are only stored now and decoded once, at Stream Commit.
            if matches!(data.first(), Some(b'R' | b'Y' | b'I' | b'U' | b'D' | b'T' | b'M')) {
                self.spill.append(top, &data)?;
                self.stage(top, data);
                return Ok(Flow::Continue);
            }
        }
        let msg = self.decoder.decode(data).map_err(|e| Error::runtime(format!("decoding pgoutput: {e}")))?;
        tracing::trace!(?msg, "pgoutput");
        match msg {
            PgOutputMessage::Begin { final_lsn, commit_ts, xid } => {
                if self.until.is_some_and(|u| final_lsn > u) {
                    tracing::debug!(%final_lsn, "transaction commits after the until-LSN: stopping");
                    return self.finish();
                }
                let meta = TxnMeta { xid: Some(xid), commit_lsn: final_lsn, end_lsn: final_lsn, commit_ts_us: pg_ts_to_unix_micros(commit_ts) };
                self.begin(meta)?;
            }
            PgOutputMessage::Commit { commit_lsn, end_lsn, commit_ts, .. } => {
                let mut txn = self.txn.take().ok_or_else(|| Error::runtime("pgoutput Commit without Begin"))?;
                if txn.meta.commit_lsn != commit_lsn {
                    return Err(Error::runtime(format!(
                        "pgoutput Commit at {commit_lsn} does not match Begin's final LSN {}",
                        txn.meta.commit_lsn
                    )));
                }
                txn.meta.end_lsn = end_lsn;
                txn.meta.commit_ts_us = pg_ts_to_unix_micros(commit_ts);
                return self.commit(txn);
            }
            PgOutputMessage::StreamStart { xid, first_segment } => {
                self.stream_xid = Some(xid);
                if first_segment {
                    self.start_staging(xid);
                }
            }
            PgOutputMessage::StreamStop => self.stream_xid = None,
            PgOutputMessage::StreamAbort { xid, subxid, .. } => {
                if xid == subxid {
                    self.stats.aborted_streams += 1;
                    crate::metrics::streamed_transaction_aborted();
                    if self.staging.end(xid).is_some() {
                        self.discard_staging();
                    }
                } else if self.staging.active(xid).is_some_and(|s| s.touched_by(subxid)) {
                    self.abandon_staging(xid, &"a subtransaction with staged changes was rolled back");
                }
                self.spill.abort(xid, subxid);
            }
            PgOutputMessage::StreamCommit { xid, commit_lsn, end_lsn, commit_ts, .. } => {
                return self.stream_commit(xid, commit_lsn, end_lsn, commit_ts);
            }
            PgOutputMessage::Message { flags, lsn, .. } if flags & 1 == 0 => {
                // A non-transactional logical message (e.g. our heartbeat) marks a position.
                return self.on_position(lsn);
            }
            PgOutputMessage::Origin { .. } | PgOutputMessage::Message { .. } => {}
            PgOutputMessage::BeginPrepare { .. }
            | PgOutputMessage::Prepare { .. }
            | PgOutputMessage::CommitPrepared { .. }
            | PgOutputMessage::RollbackPrepared { .. }
            | PgOutputMessage::StreamPrepare { .. } => {
                return Err(Error::runtime("received a two-phase commit message, but pgcdc does not enable two_phase")
                    .with_hint("the slot was probably created with two_phase enabled by another tool: give pgcdc its own slot"));
            }
            change => self.apply_change(change)?,
        }
        Ok(Flow::Continue)
    }

    fn begin(&mut self, meta: TxnMeta) -> Result<()> {
        if self.txn.is_some() {
            return Err(Error::runtime("pgoutput Begin inside an open transaction"));
        }
        for slot in &mut self.sinks {
            slot.active = meta.commit_lsn >= slot.resume_from;
            if slot.active {
                slot.sink.begin(&meta)?;
            }
        }
        self.txn = Some(OpenTxn { meta, seq: 0, rewritten: Vec::new() });
        Ok(())
    }

    fn commit(&mut self, txn: OpenTxn) -> Result<Flow> {
        if let Some(r) = &self.reloads {
            for req in txn.rewritten.iter().cloned() {
                if r.loads_tables() {
                    tracing::warn!("{}", req.reason);
                    r.submit(req)?;
                } else {
                    tracing::warn!(
                        "{}; mode `cdc` loads no table by itself: `pgcdc run --reload {}.{}` reloads it",
                        req.reason,
                        req.schema,
                        req.table
                    );
                }
            }
        }
        for slot in &mut self.sinks {
            if slot.active {
                slot.sink.commit(&txn.meta)?;
                slot.active = false;
            }
        }
        self.stats.transactions += 1;
        crate::metrics::transaction(txn.meta.commit_ts_us);
        self.last_commit = Some((txn.meta.commit_lsn, txn.meta.end_lsn));
        self.flush_due()?;
        if self.stopping || self.until.is_some_and(|u| txn.meta.end_lsn > u) {
            tracing::debug!(end_lsn = %txn.meta.end_lsn, stopping = self.stopping, "stopping after commit");
            return self.finish();
        }
        Ok(Flow::Continue)
    }

    fn stream_commit(&mut self, xid: u32, commit_lsn: Lsn, end_lsn: Lsn, commit_ts: i64) -> Result<Flow> {
        if self.until.is_some_and(|u| commit_lsn > u) {
            tracing::debug!(%commit_lsn, "streamed transaction commits after the until-LSN: stopping");
            return self.finish();
        }
        let meta = TxnMeta { xid: Some(xid), commit_lsn, end_lsn, commit_ts_us: pg_ts_to_unix_micros(commit_ts) };
        self.begin(meta.clone())?;
        self.stats.streamed_transactions += 1;
        crate::metrics::streamed_transaction();
        let staged = self.staging.end(xid);
        let spilled = self.spill.take(xid)?;
        let written = match staged {
            Some(staged) => self.commit_staged(*staged, &meta)?,
            None => false,
        };
        if let (false, Some(spilled)) = (written, spilled) {
            crate::failpoint::hit("stream-replay");
            let (started, rows) = (Instant::now(), self.stats.rows);
            let mut replay = replay::Replay::start(spilled, self.protocol_version)?;
            while let Some(change) = replay.next()? {
                self.apply_change(change)?;
            }
            tracing::debug!(xid, rows = self.stats.rows - rows, seconds = started.elapsed().as_secs_f64(), "replayed a streamed transaction");
        }
        let txn = self.txn.take().expect("begun above");
        self.commit(txn)
    }

    /// Stages streamed transaction `xid` (at its first segment) if nothing is staged and
    /// every sink can ([`staging`]).
    fn start_staging(&mut self, xid: u32) {
        if !matches!(self.staging, Staging::Idle) || self.sinks.iter_mut().any(|s| s.sink.staging().is_none()) {
            return;
        }
        self.staging = Staging::Active(Box::new(Staged::new(xid, self.shapes.empty_like())));
        let opened = self.sinks.iter_mut().try_for_each(|s| s.sink.staging().expect("checked above").open());
        if let Err(e) = opened {
            self.abandon_staging(xid, &e);
        }
    }

    /// Hands one change of streamed transaction `top` to the sinks' staging, if `top` is
    /// staged; the first error abandons the staging (the spill is replayed at the commit).
    fn stage(&mut self, top: u32, data: Bytes) {
        let mut staged = match std::mem::replace(&mut self.staging, Staging::Idle) {
            Staging::Active(s) if s.xid == top => s,
            other => {
                self.staging = other;
                return;
            }
        };
        match self.stage_message(&mut staged, data) {
            Ok(()) => self.staging = Staging::Active(staged),
            Err(e) => self.abandon_staging(top, &e),
        }
    }

    fn stage_message(&mut self, staged: &mut Staged, data: Bytes) -> Result<()> {
        // A Relation message is kept (copied); a change's message must stay the only owner
        // of its bytes, or a huge bytea cannot be decoded in place (`huge_bytea`).
        let relation_message = (data.first() == Some(&b'R')).then(|| data.clone());
        let mut msg = decode_streamed(data, self.protocol_version)?;
        match &msg {
            PgOutputMessage::Relation { relation, xid } => {
                let raw = relation_message.expect("a Relation message starts with R");
                return staged.relation(&raw, relation, *xid, self.catalog.as_mut());
            }
            PgOutputMessage::Type { .. } | PgOutputMessage::Message { .. } => return Ok(()),
            PgOutputMessage::Truncate { .. } => return Err(Error::runtime("a TRUNCATE")),
            _ => {}
        }
        let relid = change_relid(&msg).ok_or_else(|| Error::runtime(format!("unexpected pgoutput message inside a transaction: {msg:?}")))?;
        let source = staged.source(relid)?;
        if !self.filter.matches(&source.schema, &source.name) {
            return Ok(());
        }
        let shape = staged.shape(&source)?;
        if shape.filter.is_some() {
            return Err(Error::runtime("a row filter pgcdc evaluates itself"));
        }
        huge_bytea::decode_change(&shape, &mut msg);
        let subxid = msg.stream_xid();
        for row in change_rows(&shape.source, &msg) {
            let values = shape.output_values(&row.values)?;
            let out = OutputRow { op: row.op, lsn: Lsn::ZERO, seq: staged.seq, xid: Some(staged.xid), commit_ts_us: 0, values: &values };
            for slot in &mut self.sinks {
                slot.sink.staging().ok_or_else(|| Error::runtime("internal: a sink lost its staging"))?.row(shape.output(), &out)?;
            }
            staged.staged(&shape, row.op, subxid)?;
        }
        Ok(())
    }

    /// Stops staging `xid` for good: its spill is replayed at its commit.
    fn abandon_staging(&mut self, xid: u32, reason: &dyn std::fmt::Display) {
        self.discard_staging();
        tracing::debug!(xid, %reason, "streamed transaction no longer staged: replayed at its commit");
        self.staging = Staging::Abandoned(xid);
    }

    /// Drops what every sink staged.
    fn discard_staging(&mut self) {
        for slot in &mut self.sinks {
            if let Some(s) = slot.sink.staging() {
                s.discard();
            }
        }
        if matches!(self.staging, Staging::Active(_)) {
            self.staging = Staging::Idle;
        }
    }

    /// Writes the staged transaction `staged` (begun as `meta`) in the sinks; `false` when
    /// the stream now describes one of its tables otherwise than it was staged under (the
    /// staging is dropped, and the caller replays the spill instead).
    fn commit_staged(&mut self, staged: Staged, meta: &TxnMeta) -> Result<bool> {
        let started = Instant::now();
        // The transaction's Relation messages, as the replay would apply them.
        for raw in staged.relation_messages() {
            self.apply_change(decode_streamed(raw.clone(), self.protocol_version)?)?;
        }
        let mut shapes = Vec::with_capacity(staged.tables.len());
        for t in &staged.tables {
            match self.shape(t.shape.source.relid)? {
                Some(now) if now.output() == t.shape.output() => shapes.push(now),
                _ => {
                    self.discard_staging();
                    tracing::debug!(xid = staged.xid, table = %t.shape.source.qualified_name(), "a staged table changed before the commit: replaying");
                    return Ok(false);
                }
            }
        }
        for shape in &shapes {
            self.announce(shape)?;
        }
        crate::failpoint::hit("stream-staged-commit");
        for slot in &mut self.sinks {
            let staging = slot.sink.staging().ok_or_else(|| Error::runtime("internal: a sink lost its staging"))?;
            if slot.active {
                staging.commit(meta)?;
            } else {
                staging.discard();
            }
        }
        for (shape, t) in shapes.iter().zip(&staged.tables) {
            for &(op, n) in &t.counts {
                crate::metrics::changes(shape.output(), op, n);
            }
        }
        let rows = staged.rows();
        self.stats.rows += rows;
        self.stats.staged_transactions += 1;
        tracing::debug!(xid = staged.xid, rows, seconds = started.elapsed().as_secs_f64(), "wrote a staged streamed transaction");
        Ok(true)
    }

    /// Relation, Type, Insert, Update, Delete, Truncate inside a transaction.
    fn apply_change(&mut self, msg: PgOutputMessage) -> Result<()> {
        match msg {
            PgOutputMessage::Relation { relation, .. } => {
                let (table, _, _) = self.relations.apply(&relation, self.catalog.as_mut())?;
                let Some(r) = self.reloads.as_ref().filter(|_| self.filter.matches(&relation.namespace, &relation.name)) else {
                    return Ok(());
                };
                // pgoutput also describes the leaf partition of a change it publishes as its
                // root: a table is reported to the reload book only when a change of its own
                // follows (see `emit`).
                self.unobserved.insert(relation.relid);
                // A new relfilenode since the stream last described the table (in this run or
                // an earlier one): rewritten, or truncated; decided at commit.
                if let Some(new) = table.relfilenode {
                    if let Some(old) = r.note_relfilenode(table.relid, new)? {
                        let reason = rewrite::rewrite_reason(&table.qualified_name(), old, new);
                        let txn = self.txn.as_mut().ok_or_else(|| Error::runtime("pgoutput Relation outside a transaction"))?;
                        txn.rewritten.push(ReloadRequest {
                            relid: table.relid,
                            schema: table.schema.clone(),
                            table: table.name.clone(),
                            reason,
                        });
                    }
                }
            }
            PgOutputMessage::Type { .. } => {}
            mut change @ (PgOutputMessage::Insert { .. } | PgOutputMessage::Update { .. } | PgOutputMessage::Delete { .. }) => {
                let Some(shape) = self.shape(changes::change_relid(&change).expect("a change"))? else { return Ok(()) };
                huge_bytea::decode_change(&shape, &mut change);
                let rows = match &shape.filter {
                    None => changes::change_rows(&shape.source, &change),
                    Some(f) => row_filter::change_rows_filtered(&shape.source, f, &change, &mut self.evaluator(&shape, f))?,
                };
                self.emit_all(&shape, rows)?;
            }
            PgOutputMessage::Truncate { relids, .. } => {
                if let Some(txn) = self.txn.as_mut() {
                    txn.rewritten.retain(|r| !relids.contains(&r.relid));
                }
                for relid in relids {
                    let Some(shape) = self.shape(relid)? else { continue };
                    let values = truncate_values(&shape.source);
                    self.emit(&shape, RowOut { op: RowOp::Truncate, values: values.as_slice().into() })?;
                }
            }
            other => return Err(Error::runtime(format!("unexpected pgoutput message inside a transaction: {other:?}"))),
        }
        Ok(())
    }

    /// The relation's current shape (its source schema as the stream last described it);
    /// `None` for a table `source.tables` does not select (its changes are dropped).
    fn shape(&mut self, relid: u32) -> Result<Option<Arc<shapes::TableShape>>> {
        let source = self.relations.get(relid)?.clone();
        if !self.filter.matches(&source.schema, &source.name) {
            return Ok(None);
        }
        self.shapes.of(&source).map(Some)
    }

    /// Evaluates `filter` on source rows of `shape` through the catalog session.
    fn evaluator<'e>(&'e mut self, shape: &'e shapes::TableShape, filter: &'e row_filter::ClientFilter) -> impl FnMut(&[crate::model::TupleValue]) -> Result<bool> + 'e {
        let catalog = &mut self.catalog;
        move |values| catalog.row_matches(&shape.source, &filter.expr, values)
    }

    fn emit_all(&mut self, shape: &shapes::TableShape, rows: Vec<RowOut<'_>>) -> Result<()> {
        rows.into_iter().try_for_each(|row| self.emit(shape, row))
    }

    /// Writes one row of `shape`'s source table (values per source column) to every active
    /// sink, as the output table.
    fn emit(&mut self, shape: &shapes::TableShape, row: RowOut<'_>) -> Result<()> {
        // `shape` comes from `Pipeline::shape`: its table is selected by `source.tables`.
        self.announce(shape)?;
        let values = shape.output_values(&row.values)?;
        let table = shape.output();
        let txn = self.txn.as_mut().expect("announce checked it");
        let out = OutputRow {
            op: row.op,
            lsn: txn.meta.commit_lsn,
            seq: txn.seq,
            xid: txn.meta.xid,
            commit_ts_us: txn.meta.commit_ts_us,
            values: &values,
        };
        txn.seq += 1;
        self.stats.rows += 1;
        crate::metrics::change(table, row.op);
        for slot in self.sinks.iter_mut().filter(|s| s.active) {
            slot.sink.row(table, &out)?;
        }
        Ok(())
    }

    /// What a change of `shape`'s table does before its rows are written: reports the table
    /// to the reload book at its first change, and announces the output schema to every
    /// active sink that has not seen it.
    fn announce(&mut self, shape: &shapes::TableShape) -> Result<()> {
        let source = &shape.source;
        let txn = self.txn.as_ref().ok_or_else(|| Error::runtime("pgoutput sent a change outside a transaction"))?;
        if !self.unobserved.is_empty() && self.unobserved.remove(&source.relid) {
            if let Some(r) = &self.reloads {
                r.observe(source.relid, &source.schema, &source.name, None, txn.meta.commit_lsn)?;
            }
        }
        let table = shape.output();
        for slot in self.sinks.iter_mut().filter(|s| s.active) {
            let announced = slot.announced.get(&table.relid).is_some_and(|a| Arc::ptr_eq(a, table));
            if !announced {
                slot.sink.relation(table, &txn.meta)?;
                slot.announced.insert(table.relid, table.clone());
            }
        }
        Ok(())
    }

    /// The server has sent everything before `pos`. When nothing is open or waiting for a
    /// flush, that position is as good as durable: record it (rate-limited) so idle slots
    /// advance (SPEC 2.7), and stop if it passes the until-LSN.
    fn on_position(&mut self, pos: Lsn) -> Result<Flow> {
        if self.txn.is_some() {
            return Ok(Flow::Continue);
        }
        // Open streamed transactions commit after `pos`; unflushed rows are committed work.
        let idle = self.spill.open_count() == 0 && !self.sinks.iter().any(|s| s.sink.has_pending());
        let reached = self.until.is_some_and(|u| pos >= u);
        if reached || self.stopping {
            tracing::debug!(%pos, "at or past the until-LSN between transactions: stopping");
            self.discard_staging();
            self.flush_all(if self.spill.open_count() == 0 { Some(pos) } else { None })?;
            self.drain_all()?;
            return Ok(Flow::Done);
        }
        if idle && pos > self.handed_over() && self.last_checkpoint_at.elapsed() >= self.idle_checkpoint_interval {
            self.flush_all(Some(pos))?;
        }
        Ok(Flow::Continue)
    }

    /// Flushes every sink that wants to (its size or age limit, e.g. Kinesis' linger or
    /// Parquet's flush_interval): each sink keeps its own cadence, and the slot follows the
    /// slowest watermark.
    fn flush_due(&mut self) -> Result<()> {
        let now = Instant::now();
        self.flush_sinks(None, |s| s.wants_flush(now))
    }

    /// Flushes every sink. `idle_pos` is a position known to have nothing unflushed before
    /// it.
    fn flush_all(&mut self, idle_pos: Option<Lsn>) -> Result<()> {
        self.flush_sinks(idle_pos, |_| true)
    }

    fn flush_sinks(&mut self, idle_pos: Option<Lsn>, pick: impl Fn(&dyn Sink) -> bool) -> Result<()> {
        let (commit_lsn, end_lsn) = self.last_commit.unwrap_or((Lsn::ZERO, Lsn::ZERO));
        let end = idle_pos.map_or(end_lsn, |p| p.max(end_lsn));
        if end == Lsn::ZERO {
            return Ok(());
        }
        let cp = Checkpoint::new(end, commit_lsn);
        let mut flushed = false;
        for slot in &mut self.sinks {
            if !pick(slot.sink.as_ref()) || (end <= slot.resume_from && !slot.sink.has_pending()) {
                continue;
            }
            crate::metrics::timed_flush(&slot.sink.describe(), || slot.sink.flush(&cp)).map_err(|e| e.context(format!("flushing {}", slot.sink.describe())))?;
            tracing::debug!(sink = %slot.sink.describe(), lsn = %end, "flushed sink");
            slot.resume_from = slot.resume_from.max(end);
            flushed = true;
        }
        if !flushed {
            return Ok(());
        }
        self.stats.flushes += 1;
        crate::metrics::handed_over(end);
        self.last_checkpoint_at = Instant::now();
        crate::failpoint::hit("flushed-before-ack");
        tracing::debug!(lsn = %end, durable = %self.progress.durable(), "flushed");
        Ok(())
    }

    /// The position every sink was handed at its last flush (durable in synchronous sinks,
    /// on its way in asynchronous ones).
    fn handed_over(&self) -> Lsn {
        self.sinks.iter().map(|s| s.resume_from).min().unwrap_or(Lsn::ZERO)
    }

    /// Flushes what is committed, then waits until every sink holds it durably. Every way
    /// to [`Flow::Done`] goes through here or does the same.
    fn finish(&mut self) -> Result<Flow> {
        self.discard_staging();
        self.flush_all(None)?;
        self.drain_all()?;
        Ok(Flow::Done)
    }

    fn drain_all(&mut self) -> Result<()> {
        for slot in &mut self.sinks {
            slot.sink.drain().map_err(|e| e.context(format!("draining {}", slot.sink.describe())))?;
        }
        Ok(())
    }

    /// Flushes what is committed and waits until it is durable; used when the source ends
    /// without a Shutdown event.
    pub fn close(&mut self) -> Result<()> {
        self.discard_staging();
        if self.txn.is_none() {
            self.flush_all(None)?;
            self.drain_all()?;
        }
        Ok(())
    }
}

/// Decodes a message of a streamed transaction.
fn decode_streamed(raw: Bytes, protocol_version: u32) -> Result<PgOutputMessage> {
    decode_message(raw, protocol_version, true).map_err(|e| Error::runtime(format!("decoding pgoutput: {e}")))
}
