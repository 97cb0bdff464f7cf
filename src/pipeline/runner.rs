//! `pgcdc run`: preflight, slot handling, the replication reader task and the pipeline
//! thread, wired together.
//!
//! The reader (async, on tokio) reads the socket, answers keepalives and sends standby
//! status updates carrying [`Progress::durable`]. The pipeline (one OS thread) does all
//! decoding and writing. They talk through a bounded channel of event batches.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::relations::CatalogLookup;
use super::{Flow, Pipeline, PipelineOptions, PipelineStats, SourceEvent};
use crate::batch::CatalogType;
use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::model::Lsn;
use crate::sink::open_sinks;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::preflight;
use crate::source::replication::{ReplicationConn, SnapshotAction, StreamEvent};
use crate::source::sql;

/// Where `--until-lsn` stops.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    Lsn(Lsn),
    /// `pg_current_wal_lsn()` when the command starts.
    Current,
}

impl std::str::FromStr for Until {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "current" {
            Ok(Until::Current)
        } else {
            s.parse().map(Until::Lsn)
        }
    }
}

pub struct RunOptions {
    pub until: Option<Until>,
    /// An until-LSN decided after the run started (the demo sends it when its workload is
    /// done). Same meaning as `until`.
    pub until_later: Option<tokio::sync::oneshot::Receiver<Lsn>>,
    /// Tables to reload (`schema.table`, `--reload`), while CDC runs (README, "Reloads").
    pub reload: Vec<String>,
}

pub struct RunSummary {
    /// The full load, when this run did (or finished) one.
    pub load: Option<crate::load::LoadSummary>,
    /// CDC statistics; `None` in `full-load` mode.
    pub stats: Option<PipelineStats>,
    pub durable: Lsn,
}

/// Catalog lookups from the pipeline thread, executed on the runtime.
struct BlockingCatalog {
    catalog: Arc<Catalog>,
    handle: tokio::runtime::Handle,
}

impl CatalogLookup for BlockingCatalog {
    fn type_facts(&mut self, oid: u32) -> Result<Option<CatalogType>> {
        let c = self.catalog.clone();
        self.handle.block_on(async move { c.type_facts(oid).await })
    }
    fn primary_key(&mut self, relid: u32) -> Result<Vec<String>> {
        let c = self.catalog.clone();
        self.handle.block_on(async move { c.primary_key(relid).await })
    }
    fn relation_facts(&mut self, relid: u32) -> Result<crate::source::attributes::RelationFacts> {
        let c = self.catalog.clone();
        self.handle.block_on(async move { c.relation_facts(relid).await })
    }
}

/// The pgoutput protocol version for a server: the highest it supports.
pub fn protocol_version(server_version: u32) -> u32 {
    match server_version {
        v if v >= 160000 => 4,
        v if v >= 150000 => 3,
        v if v >= 140000 => 2,
        _ => 1,
    }
}

fn spill_dir(config: &Config) -> PathBuf {
    if let Some(d) = &config.pipeline.spill_dir {
        return PathBuf::from(d);
    }
    if let Some(p) = config.parquet_sinks().next() {
        let root = p.url.strip_prefix("file://").unwrap_or(&p.url);
        if !p.url.contains("://") || p.url.starts_with("file://") {
            return PathBuf::from(root).join("_pgcdc").join("spill");
        }
    }
    std::env::temp_dir().join(format!("pgcdc-spill-{}", std::process::id()))
}

/// Runs the configured mode: the full load (if any), then CDC until the until-LSN, a
/// signal, or an error.
pub async fn run(config: &Config, opts: RunOptions) -> Result<RunSummary> {
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let catalog = Arc::new(Catalog::new(sql::connect(&info).await?));
    // One writer per target: before any recovery, cleanup, progress read or slot action.
    let _locks = crate::sink::storage::lock::lock_parquet_targets(config)?;
    // Installed once for the whole run, so that no SIGTERM between the load and CDC is lost.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::runtime(format!("installing signal handler: {e}")))?;
    crate::source::publication::warn_unpublished(&catalog, &config.source.publication, &config.source.tables).await;
    let mode = config.pipeline.mode;
    let mut load = None;
    if mode == Mode::FullLoad && !opts.reload.is_empty() {
        return Err(Error::config("--reload reloads a table while CDC runs, and mode `full-load` runs no CDC")
            .with_hint("use --mode full-load-and-cdc or --mode cdc"));
    }
    if mode != Mode::Cdc {
        preflight::require_logical_wal_level(&catalog).await?;
        let load_run = crate::load::full_load(config, &info, &catalog, mode);
        tokio::select! {
            r = load_run => load = r?,
            _ = tokio::signal::ctrl_c() => return super::stop::stopped_during_load(config, "interrupted"),
            _ = sigterm.recv() => return super::stop::stopped_during_load(config, "terminated"),
        }
        if let Some(l) = &load {
            tracing::info!(rows = l.rows, tables = l.tables, chunks = l.chunks, seconds = format!("{:.1}", l.seconds), "full load done");
        }
        if mode == Mode::FullLoad {
            return Ok(RunSummary { load, stats: None, durable: Lsn::ZERO });
        }
    }
    let mut summary = run_cdc(config, opts, &info, catalog, sigterm).await?;
    summary.load = load;
    Ok(summary)
}

async fn run_cdc(
    config: &Config,
    opts: RunOptions,
    info: &ConnInfo,
    catalog: Arc<Catalog>,
    mut sigterm: tokio::signal::unix::Signal,
) -> Result<RunSummary> {
    let info = info.clone();
    let server_version = catalog.server_version_num().await?;
    let proto = protocol_version(server_version);

    let sinks = open_sinks(config)?;
    let lookup = Box::new(BlockingCatalog { catalog: catalog.clone(), handle: tokio::runtime::Handle::current() });
    let until = match opts.until {
        Some(Until::Lsn(l)) => Some(l),
        Some(Until::Current) => Some(catalog.current_wal_lsn().await?),
        None => None,
    };
    let pipeline_opts = PipelineOptions {
        protocol_version: proto,
        until,
        tables: config.source.tables.clone(),
        spill_dir: spill_dir(config),
        idle_checkpoint_interval: config.pipeline.status_interval,
    };
    let (mut pipeline, start) = tokio::task::block_in_place(|| Pipeline::open(sinks, lookup, pipeline_opts))?;
    let slot_exists = preflight::check_streaming_start(&catalog, &config.source.publication, &config.source.slot, start).await?;
    let reloads = super::reload_wiring::start(config, &catalog, server_version, &opts.reload).await?;
    if let Some(r) = &reloads {
        pipeline.set_reloads(r.reloads.clone());
    }

    let mut conn = ReplicationConn::connect(&info).await?;
    if !slot_exists {
        let created = conn.create_slot(&config.source.slot, false, SnapshotAction::NoExport).await?;
        tracing::info!(slot = %config.source.slot, lsn = %created.consistent_point, "created replication slot");
    }
    let mut options = vec![
        ("proto_version", proto.to_string()),
        ("publication_names", format!("\"{}\"", config.source.publication.replace('"', "\"\""))),
    ];
    if proto >= 2 {
        options.push(("streaming", "on".into()));
    }
    if server_version >= 140000 {
        options.push(("messages", "true".into()));
    }
    let start_lsn = start.unwrap_or(Lsn::ZERO);
    let mut stream = conn.start_replication(&config.source.slot, start_lsn, &options).await?;
    tracing::info!(slot = %config.source.slot, from = %start_lsn, protocol = proto, until = ?until, "replicating");

    if let Some(u) = until {
        // A non-transactional message past the until-LSN reaches us at once instead of
        // waiting for the next keepalive. Failure only costs time.
        let _ = catalog.client.execute("SELECT pg_logical_emit_message(false, 'pgcdc', 'until')", &[]).await;
        let _ = u;
    }

    let progress = pipeline.progress();
    let (tx, rx) = mpsc::channel::<Vec<SourceEvent>>(64);
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let worker = std::thread::Builder::new()
        .name("pgcdc-pipeline".into())
        .spawn(move || {
            let result = pipeline_thread(pipeline, rx);
            let _ = done_tx.send(());
            result
        })
        .map_err(|e| Error::runtime(format!("starting the pipeline thread: {e}")))?;

    let heartbeat = config.source.heartbeat_interval;
    let mut status_tick = tokio::time::interval(config.pipeline.status_interval.min(Duration::from_secs(10)));
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let mut heartbeat_tick = tokio::time::interval(heartbeat.unwrap_or(Duration::from_secs(3600)));
    let mut received = start_lsn;
    let mut shutdown_sent = false;
    let mut reader_error: Option<Error> = None;
    let mut last_reported = Lsn::ZERO;
    let mut until_later = opts.until_later;
    let (mut reload_task, mut watch_task) = match &reloads {
        Some(r) => r.spawn(&info, config),
        None => (tokio::spawn(std::future::pending::<Result<()>>()), tokio::spawn(std::future::pending::<Result<()>>())),
    };

    loop {
        tokio::select! {
            biased;
            _ = &mut done_rx => break,
            r = &mut reload_task => { reader_error = Some(super::reload_wiring::task_error(r, "the reload worker")); break; }
            r = &mut watch_task => { reader_error = Some(super::reload_wiring::task_error(r, "the publication watch")); break; }
            _ = tokio::signal::ctrl_c(), if !shutdown_sent => {
                tracing::info!("interrupted: finishing the current transaction and flushing");
                shutdown_sent = true;
                if tx.send(vec![SourceEvent::Shutdown]).await.is_err() { break; }
            }
            _ = sigterm.recv(), if !shutdown_sent => {
                tracing::info!("terminated: finishing the current transaction and flushing");
                shutdown_sent = true;
                if tx.send(vec![SourceEvent::Shutdown]).await.is_err() { break; }
            }
            later = async { until_later.as_mut().expect("guarded").await }, if until_later.is_some() => {
                until_later = None;
                if let Ok(lsn) = later {
                    if tx.send(vec![SourceEvent::SetUntil(lsn)]).await.is_err() { break; }
                    let _ = catalog.client.execute("SELECT pg_logical_emit_message(false, 'pgcdc', 'until')", &[]).await;
                }
            }
            _ = status_tick.tick() => {
                let durable = progress.durable();
                if let Err(e) = stream.send_status(received, durable, durable, false).await { reader_error = Some(e); break; }
                last_reported = durable;
            }
            _ = second.tick() => {
                if tx.send(vec![SourceEvent::Tick]).await.is_err() { break; }
                let durable = progress.durable();
                if durable > last_reported {
                    // Tell the slot promptly after a flush.
                    if let Err(e) = stream.send_status(received, durable, durable, false).await { reader_error = Some(e); break; }
                    last_reported = durable;
                }
            }
            _ = heartbeat_tick.tick(), if heartbeat.is_some() => {
                if let Err(e) = catalog.client.execute("SELECT pg_logical_emit_message(false, 'pgcdc_heartbeat', now()::text)", &[]).await {
                    tracing::warn!("heartbeat failed: {e}");
                }
            }
            ev = stream.next() => {
                match ev {
                    Ok(Some(first)) => {
                        let mut batch = Vec::with_capacity(64);
                        let mut reply = false;
                        let mut push = |ev: StreamEvent, batch: &mut Vec<SourceEvent>, received: &mut Lsn| match ev {
                            StreamEvent::XLogData { wal_end, data, .. } => {
                                *received = (*received).max(wal_end);
                                batch.push(SourceEvent::Data { wal_end, data });
                            }
                            StreamEvent::Keepalive { wal_end, reply_requested } => {
                                *received = (*received).max(wal_end);
                                reply |= reply_requested;
                                batch.push(SourceEvent::Keepalive { wal_end });
                            }
                        };
                        push(first, &mut batch, &mut received);
                        while batch.len() < 256 {
                            match stream.try_next_buffered() {
                                Ok(Some(ev)) => push(ev, &mut batch, &mut received),
                                Ok(None) => break,
                                Err(e) => { reader_error = Some(e); break; }
                            }
                        }
                        if reply {
                            let durable = progress.durable();
                            if let Err(e) = stream.send_status(received, durable, durable, false).await { reader_error = Some(e); break; }
                        }
                        if reader_error.is_some() || tx.send(batch).await.is_err() { break; }
                    }
                    Ok(None) => { reader_error = Some(Error::runtime("the server ended the replication stream")); break; }
                    Err(e) => { reader_error = Some(e); break; }
                }
            }
        }
    }
    drop(tx);
    let result = tokio::task::block_in_place(|| worker.join())
        .map_err(|_| Error::runtime("the pipeline thread panicked"))?;
    let durable = progress.durable();
    let _ = stream.send_status(received, durable, durable, false).await;
    stream.close().await;
    watch_task.abort();
    if reloads.is_none() || result.is_err() || reader_error.is_some() {
        reload_task.abort();
    }
    let stats = result?;
    if let Some(e) = reader_error {
        return Err(e);
    }
    if let Some(r) = &reloads {
        // Stopping at the until-LSN finishes the reloads asked for; a signal leaves them
        // pending for the next run.
        r.finish(reload_task, shutdown_sent).await?;
    }
    Ok(RunSummary { load: None, stats: Some(stats), durable })
}

fn pipeline_thread(mut pipeline: Pipeline, mut rx: mpsc::Receiver<Vec<SourceEvent>>) -> Result<PipelineStats> {
    while let Some(batch) = rx.blocking_recv() {
        for ev in batch {
            if pipeline.handle(ev)? == Flow::Done {
                return Ok(pipeline.stats.clone());
            }
        }
    }
    // The reader stopped (error or end of stream): keep what is complete.
    pipeline.close()?;
    Ok(pipeline.stats.clone())
}
