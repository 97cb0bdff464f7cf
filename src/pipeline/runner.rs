//! `pgcdc run`: the full load (if any), then CDC, as one readable sequence: open the
//! pipeline, preflight ([`crate::source::preflight`]), create the slot, start streaming, wait,
//! stop in order.
//!
//! The replication reader ([`crate::source::replication::reader`], a tokio task on a thread
//! of its own, [`crate::source::replication::own_thread`]) reads the
//! socket, answers keepalives and sends standby status updates carrying
//! [`super::progress::Progress::durable`]. The pipeline (one OS thread) does all decoding and
//! writing. They talk through a bounded channel of event batches; this module adds the
//! signals, a later until-LSN and heartbeats, and watches the reload tasks.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::blocking_catalog::BlockingCatalog;
use super::spill::spill_dir;
use super::{Flow, Pipeline, PipelineOptions, PipelineStats, SourceEvent};
use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::model::Lsn;
use crate::sink::open_sinks;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::preflight;
use crate::source::replication::own_thread::{joined, OwnThread};
use crate::source::replication::{pgoutput_options, reader, ReplicationConn, SnapshotAction};
use crate::source::sql;
use crate::storage::Targets;

/// The pgoutput protocol rule lives with the replication client; re-exported for callers of
/// the old path.
pub use crate::source::replication::protocol_version;

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
    /// `--resync` (README, "A lost slot"); a pending resync is finished in any case.
    pub resync: crate::load::resync::ResyncRequest,
}

pub struct RunSummary {
    /// The full load, when this run did (or finished) one.
    pub load: Option<crate::load::LoadSummary>,
    /// CDC statistics; `None` in `full-load` mode.
    pub stats: Option<PipelineStats>,
    pub durable: Lsn,
}

/// Runs the configured mode: the full load (if any), then CDC until the until-LSN, a
/// signal, or an error.
pub async fn run(config: &Config, mut opts: RunOptions) -> Result<RunSummary> {
    let stage_streamed = super::staging::enabled_by_env()?;
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let catalog = Arc::new(Catalog::new(sql::connect(&info).await?));
    // Bad rules stop the run before it touches the target or the slot.
    warn_unruled_exclusions(&crate::source::rules::plan(&catalog, config).await?, &config.source.publication);
    // One writer per target: before any recovery, cleanup, progress read or slot action.
    let mut targets = Targets::open(config)?;
    targets.lock()?;
    // Installed once for the whole run, so that no SIGTERM between the load and CDC is lost.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::runtime(format!("installing signal handler: {e}")))?;
    crate::source::publication::warn_unpublished(&catalog, &config.source.publication, &config.source.tables).await;
    let mode = config.pipeline.mode;
    let mut load = None;
    // A lost slot replaced, or the replacement an earlier run began finished (`load::resync`).
    tokio::select! {
        r = crate::load::resync::resync_if_needed(config, &targets, &info, &catalog, opts.resync) => { r?; }
        _ = tokio::signal::ctrl_c() => return super::stop::stopped_during_resync("interrupted"),
        _ = sigterm.recv() => return super::stop::stopped_during_resync("terminated"),
    }
    if mode == Mode::FullLoad && !opts.reload.is_empty() {
        return Err(Error::config("--reload reloads a table while CDC runs, and mode `full-load` runs no CDC")
            .with_hint("use --mode full-load-and-cdc or --mode cdc"));
    }
    if mode != Mode::Cdc {
        preflight::require_logical_wal_level(&catalog).await?;
        let load_run = crate::load::full_load(config, &targets, &info, &catalog, mode);
        tokio::select! {
            r = load_run => load = r?,
            _ = tokio::signal::ctrl_c() => return super::stop::stopped_during_load(&targets, "interrupted"),
            _ = sigterm.recv() => return super::stop::stopped_during_load(&targets, "terminated"),
        }
        if let Some(l) = &load {
            tracing::info!(rows = l.rows, tables = l.tables, chunks = l.chunks, seconds = format!("{:.1}", l.seconds), "full load done");
        }
        if mode == Mode::FullLoad {
            return Ok(RunSummary { load, stats: None, durable: Lsn::ZERO });
        }
    }
    // CDC, again after a lost source (see `reconnect`) for as long as source.reconnect_timeout.
    let mut catalog = catalog;
    loop {
        let mut stopping = false;
        let lost = match run_cdc(config, &targets, &mut opts, &info, catalog, &mut sigterm, &mut stopping, stage_streamed).await {
            Ok(mut summary) => {
                summary.load = load;
                return Ok(summary);
            }
            Err(e) if !stopping && super::reconnect::source_lost(&e) => e,
            Err(e) => return Err(crate::source::slot_health::explain(e, &config.source.slot)),
        };
        let lost_at = std::time::Instant::now();
        match super::reconnect::reconnect(&info, lost, lost_at, config.source.reconnect_timeout, &mut sigterm).await? {
            super::reconnect::Reconnected::Catalog(c) => catalog = Arc::new(c),
            super::reconnect::Reconnected::Stopped => {
                tracing::info!("stopped while reconnecting; the next run resumes from the last durable position");
                return Ok(RunSummary { load, stats: None, durable: Lsn::ZERO });
            }
        }
    }
}

/// CDC: opens the pipeline at what the sinks hold, checks the source, creates the slot if
/// needed, then streams until the pipeline is done (until-LSN or a signal) or something
/// fails. Called again after a lost source: it resolves `until = current` into `opts` once,
/// hands `until_later` back unless it fired, clears `reload` once the requests are
/// recorded, and sets `stopping` when a signal asked the run to stop.
#[allow(clippy::too_many_arguments)]
async fn run_cdc(
    config: &Config,
    targets: &Targets,
    opts: &mut RunOptions,
    info: &ConnInfo,
    catalog: Arc<Catalog>,
    sigterm: &mut tokio::signal::unix::Signal,
    stopping: &mut bool,
    stage_streamed: bool,
) -> Result<RunSummary> {
    let info = info.clone();
    let server_version = catalog.server_version_num().await?;
    let proto = protocol_version(server_version);

    // 1. The pipeline, positioned at what the sinks already hold.
    let sinks = open_sinks(config, targets)?;
    let lookup = Box::new(BlockingCatalog::new(catalog.clone(), tokio::runtime::Handle::current()));
    // Where each rule runs: the pipeline applies the row filters the publication does not.
    let rule_plan = crate::source::rules::plan(&catalog, config).await?;
    let until = match opts.until {
        Some(Until::Lsn(l)) => Some(l),
        Some(Until::Current) => {
            let lsn = catalog.current_wal_lsn().await?;
            opts.until = Some(Until::Lsn(lsn));
            Some(lsn)
        }
        None => None,
    };
    let pipeline_opts = PipelineOptions {
        protocol_version: proto,
        until,
        tables: config.source.tables.clone(),
        spill_dir: spill_dir(config),
        idle_checkpoint_interval: config.pipeline.status_interval,
        rules: config.rules.clone(),
        server_filters: rule_plan.server_filters(),
        stage_streamed,
    };
    let (mut pipeline, start) = tokio::task::block_in_place(|| Pipeline::open(sinks, lookup, pipeline_opts))?;

    // 2. The source agrees with the target; reloads are wired; the slot exists.
    let slot_exists = preflight::check_streaming_start(&catalog, &config.source.publication, &config.source.slot, start).await?;
    let reloads = super::reload_wiring::start(config, targets, &catalog, server_version, &opts.reload).await?;
    if let Some(r) = &reloads {
        pipeline.set_reloads(r.reloads.clone());
    }
    // Recorded: a later attempt after a lost source must not ask again.
    opts.reload.clear();
    // 3. Streaming: the reader task, on a thread of its own with its connection, feeds the
    //    pipeline thread.
    let replication = OwnThread::start("pgcdc-replication")?;
    let options = pgoutput_options(proto, &config.source.publication, server_version);
    let start_lsn = start.unwrap_or(Lsn::ZERO);
    let stream = {
        let (info, slot) = (info.clone(), config.source.slot.clone());
        joined(replication.spawn(async move {
            let mut conn = ReplicationConn::connect(&info).await?;
            if !slot_exists {
                let created = conn.create_slot(&slot, false, SnapshotAction::NoExport).await?;
                tracing::info!(%slot, lsn = %created.consistent_point, "created replication slot");
            }
            conn.start_replication(&slot, start_lsn, &options).await
        }), "connecting for replication").await??
    };
    tracing::info!(slot = %config.source.slot, from = %start_lsn, protocol = proto, until = ?until, "replicating");
    if until.is_some() {
        emit_until_marker(&catalog).await;
    }
    let progress = pipeline.progress();
    let _slot_watch = super::slot_watch::spawn(&catalog, &config.source.slot);
    let (tx, rx) = mpsc::channel::<Vec<SourceEvent>>(64);
    let (worker, mut done_rx) = spawn_pipeline_thread(pipeline, rx)?;
    let (stop_reader, stop_rx) = oneshot::channel();
    let durable = {
        let progress = progress.clone();
        move || progress.durable()
    };
    let mut reader = replication.spawn(reader::read(stream, start_lsn, config.pipeline.status_interval, durable, tx.clone(), stop_rx));

    // 4. Until the pipeline is done: signals, a later until-LSN and heartbeats go in; a
    //    failed reader, reload worker or publication watch stops the run.
    let heartbeat = config.source.heartbeat_interval;
    let mut heartbeat_tick = tokio::time::interval(heartbeat.unwrap_or(Duration::from_secs(3600)));
    let mut shutdown_sent = false;
    let mut task_error: Option<Error> = None;
    let mut reader_ended = None;
    let mut until_later = opts.until_later.take();
    let (mut reload_task, mut watch_task) = match &reloads {
        Some(r) => r.spawn(&info, config),
        None => (tokio::spawn(std::future::pending::<Result<()>>()), tokio::spawn(std::future::pending::<Result<()>>())),
    };
    loop {
        tokio::select! {
            biased;
            _ = &mut done_rx => break,
            r = &mut reload_task => { task_error = Some(super::reload_wiring::task_error(r, "the reload worker")); break; }
            r = &mut watch_task => { task_error = Some(super::reload_wiring::task_error(r, "the publication watch")); break; }
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
                    emit_until_marker(&catalog).await;
                }
            }
            _ = heartbeat_tick.tick(), if heartbeat.is_some() => {
                if let Err(e) = catalog.client.execute("SELECT pg_logical_emit_message(false, 'pgcdc_heartbeat', now()::text)", &[]).await {
                    tracing::warn!("heartbeat failed: {e}");
                }
            }
            ended = &mut reader => { reader_ended = Some(ended); break; }
        }
    }
    opts.until_later = until_later;
    *stopping = shutdown_sent;

    // 5. Stop in order: the reader, then the pipeline (which keeps what is complete), then
    //    the final durable position to the slot.
    drop(stop_reader);
    let ended = match reader_ended {
        Some(ended) => ended,
        None => reader.await,
    };
    drop(tx);
    let result = tokio::task::block_in_place(|| worker.join())
        .map_err(|_| Error::runtime("the pipeline thread panicked"))?;
    let durable = progress.durable();
    let reader_error = match ended {
        Ok(end) => joined(replication.spawn(end.finish(durable)), "closing the replication stream").await.unwrap_or_else(Some),
        Err(e) => Some(Error::runtime(format!("the replication reader failed: {e}"))),
    };
    tokio::task::block_in_place(|| drop(replication));
    let error = task_error.or(reader_error);
    watch_task.abort();
    if reloads.is_none() || result.is_err() || error.is_some() {
        reload_task.abort();
    }
    let stats = result?;
    if let Some(e) = error {
        return Err(e);
    }
    if let Some(r) = &reloads {
        // Stopping at the until-LSN finishes the reloads asked for; a signal leaves them
        // pending for the next run.
        r.finish(reload_task, shutdown_sent).await?;
    }
    Ok(RunSummary { load: None, stats: Some(stats), durable })
}

/// A non-transactional message past the until-LSN reaches the reader at once instead of
/// waiting for the next keepalive. Failure only costs time.
async fn emit_until_marker(catalog: &Catalog) {
    let _ = catalog.client.execute("SELECT pg_logical_emit_message(false, 'pgcdc', 'until')", &[]).await;
}

/// Starts the pipeline thread on `rx`. The receiver fires when the thread has ended, for
/// whatever reason.
fn spawn_pipeline_thread(
    pipeline: Pipeline,
    rx: mpsc::Receiver<Vec<SourceEvent>>,
) -> Result<(std::thread::JoinHandle<Result<PipelineStats>>, oneshot::Receiver<()>)> {
    let (done_tx, done_rx) = oneshot::channel();
    let worker = std::thread::Builder::new()
        .name("pgcdc-pipeline".into())
        .spawn(move || {
            let result = pipeline_thread(pipeline, rx);
            let _ = done_tx.send(());
            result
        })
        .map_err(|e| Error::runtime(format!("starting the pipeline thread: {e}")))?;
    Ok((worker, done_rx))
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

/// Warns about columns of ruled tables that the publication's column list leaves out but no
/// rule drops: a column added after `setup` wrote a column list is not published (PostgreSQL
/// column lists name their columns) until `setup` runs again.
fn warn_unruled_exclusions(plan: &crate::source::rules::RulePlan, publication: &str) {
    for t in plan.tables.iter().filter(|t| !t.unruled_excluded.is_empty()) {
        tracing::warn!(
            "publication {publication} leaves out column(s) {} of {}, which no rule drops: they are not replicated (hint: `pgcdc setup -c FILE` publishes them, or drop them with a rule to say so)",
            t.unruled_excluded.join(", "),
            t.name()
        );
    }
}
