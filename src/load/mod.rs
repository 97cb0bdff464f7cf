//! The full load (SPEC 2.6, 5.1): every selected table copied from one consistent snapshot,
//! in parallel CTID chunks, into `load/` files, resumable after a crash.
//!
//! # Hand-off with CDC
//!
//! The replication slot is created with an exported snapshot; every copy session imports
//! it. Rows are labelled `_op = 'L'`, `_lsn` = the slot's consistent point. CDC then streams
//! from exactly that point, so each change is either in the snapshot or in the stream.
//!
//! # Resuming
//!
//! Each chunk's file is published when the chunk is complete and `_pgcdc/load.json`
//! records it. After a crash the exported snapshot is gone: the finished chunks are kept,
//! and the unfinished ones are copied again in a new snapshot S2 (from a temporary slot),
//! labelled `_lsn = S2`, after removing anything an earlier attempt published for them.
//! CDC still starts at the slot's original point S1, so changes between S1 and S2 appear
//! both as CDC rows and (already applied) in the S2 chunks; ordering by `(_lsn, _seq)`
//! makes the materialised result converge to the source.

pub mod outputs;
pub mod plan;
pub mod progress;
pub mod reload;
pub mod requests;
pub mod resync;
mod worker;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use self::progress::LoadProgress;
use crate::state::load::LoadState;
use self::worker::{copy_chunk, enter_snapshot, LoadContext};
use crate::source::publication::PublishedTable;
use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::model::Lsn;
use crate::storage::{Storage, Targets};
use crate::sink::Checkpoint;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::preflight;
use crate::source::replication::{ReplicationConn, SnapshotAction};
use crate::source::sql;

pub struct LoadSummary {
    pub slot_lsn: Lsn,
    pub snapshot_lsn: Lsn,
    pub tables: usize,
    pub chunks: usize,
    pub rows: u64,
    pub resumed: bool,
    pub seconds: f64,
}

/// Runs (or finishes) the full load. Returns `None` when there is nothing to load because
/// the target already holds a complete load or CDC progress of its own.
pub async fn full_load(config: &Config, targets: &Targets, info: &ConnInfo, catalog: &Catalog, mode: Mode) -> Result<Option<LoadSummary>> {
    let started = std::time::Instant::now();
    // Every sink receives the rows; the load's state lives with progress.
    let storage: Arc<dyn Storage> = targets.progress().cloned().expect("Config refuses a configuration without a progress store");
    let existing = LoadState::read(storage.as_ref())?;
    if existing.as_ref().is_some_and(|s| s.complete) {
        tracing::info!("the full load is already complete in this target");
        return Ok(None);
    }
    if existing.is_none() && holds_cdc_progress(config, targets)? {
        tracing::warn!("the target already holds CDC progress without a full load: not loading");
        return Ok(None);
    }
    if existing.is_none() {
        refuse_used_targets(targets)?;
    }
    // What a killed earlier run left half written (staged files, open multipart uploads)
    // goes before anything is copied; nothing of this run is being written yet.
    for target in targets.all() {
        target.clear_staging()?;
    }
    let version = catalog.server_version_num().await?;
    let tid_ranges = version >= 140000;
    let workers = config.pipeline.load_workers.unwrap_or_else(default_workers);
    let slot = &config.source.slot;

    // A missing publication fails here, before a slot is created or recreated: a run that
    // cannot load must leave the server as it found it (SPEC 2.8).
    // So is a table the role cannot read: the load would fail after writing the others.
    let readable = selected_tables(config, catalog).await?;
    preflight::require_select(catalog, &readable).await?;
    // So is a Kinesis stream that cannot be described.
    let records = tokio::task::block_in_place(|| outputs::record_outputs(config))?;

    // The connection whose snapshot the workers import: it must stay open and idle until
    // every worker has imported it, so it lives until the load is done.
    let mut repl = ReplicationConn::connect(info).await?;
    let temp_slot = format!("pgcdc_load_{}", std::process::id());
    let (state, snapshot_name, snapshot_lsn, resumed) = match existing {
        None => {
            let created = if mode == Mode::FullLoadAndCdc {
                if let Some(s) = catalog.slot(slot).await? {
                    if s.active {
                        return Err(preflight::slot_in_use(slot, None));
                    }
                    // The target is empty, so nothing depends on the old slot's position;
                    // the load needs a slot created together with its snapshot.
                    tracing::info!(slot = %slot, "recreating the slot together with the load snapshot");
                    catalog
                        .client
                        .execute("SELECT pg_drop_replication_slot($1)", &[slot])
                        .await
                        .map_err(|e| Error::runtime(format!("dropping slot {slot}: {}", sql::db_error_text(&e))))?;
                }
                repl.create_slot(slot, false, SnapshotAction::Export).await?
            } else {
                repl.create_slot(&temp_slot, true, SnapshotAction::Export).await?
            };
            let tables = selected_tables(config, catalog).await?;
            let chunk_pages = config.pipeline.load_chunk_size.map(|b| (b / 8192).max(1) as u32);
            let planned = plan::plan(catalog, &tables, workers, chunk_pages, tid_ranges).await?;
            let state = LoadState { slot_lsn: created.consistent_point, started_us: crate::time_fmt::now_unix_micros(), complete: false, tables: planned };
            state.write(storage.as_ref())?;
            let name = created.snapshot_name.ok_or_else(|| Error::runtime("the server did not export a snapshot"))?;
            (state, name, created.consistent_point, false)
        }
        Some(state) => {
            if mode == Mode::FullLoadAndCdc && catalog.slot(slot).await?.is_none() {
                return Err(Error::runtime(format!(
                    "the full load was interrupted and replication slot `{slot}` is gone: changes since {} are lost",
                    state.slot_lsn
                ))
                .with_hint(crate::source::slot_health::RESYNC_HINT));
            }
            let created = repl.create_slot(&temp_slot, true, SnapshotAction::Export).await?;
            let name = created.snapshot_name.ok_or_else(|| Error::runtime("the server did not export a snapshot"))?;
            tracing::info!(pending = state.pending(), snapshot = %created.consistent_point, "resuming the full load");
            (state, name, created.consistent_point, true)
        }
    };

    // Only the published columns and rows (PG15 column lists and row filters), as CDC
    // streams them, shaped by the rules.
    let mut schemas: Vec<(String, Arc<PublishedTable>)> = Vec::new();
    for (key, t) in &state.tables {
        let published = catalog.published_table_schema(&config.source.publication, &config.rules, &t.schema, &t.table).await?;
        schemas.push((key.clone(), Arc::new(published)));
    }
    let progress = Arc::new(LoadProgress::new(
        &state.tables.iter().map(|(k, t)| (k.clone(), t.bytes)).collect::<Vec<_>>(),
    ));
    for (k, t) in &state.tables {
        let done: u64 = t.chunks.iter().filter(|c| c.done_at.is_some()).map(|c| c.rows).sum();
        progress.table(k).add(done, 0);
    }
    let jobs: VecDeque<(String, Arc<PublishedTable>, crate::state::load::Chunk)> = schemas
        .iter()
        .flat_map(|(key, schema)| {
            state.tables[key]
                .chunks
                .iter()
                .filter(|c| c.done_at.is_none())
                // Big chunks first within each table: the open-ended last chunk is cheap.
                .map(|c| (key.clone(), schema.clone(), c.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let chunks = jobs.len();
    let jobs = Arc::new(Mutex::new(jobs));
    let ctx = Arc::new(LoadContext {
        outputs: outputs::load_outputs(config, targets)?,
        records,
        snapshot_lsn,
        snapshot_ts_us: crate::time_fmt::now_unix_micros(),
        tid_ranges,
        reload: false,
        resumed,
    });
    let shared_state = Arc::new(Mutex::new(state));
    // Dropping this future (a signal, see `runner::run`) stops the workers at their next
    // await: a chunk is published and recorded without an await in between, so what is
    // recorded is complete, and an unfinished chunk is copied again by the next run.
    let mut handles = AbortOnDrop(Vec::new());
    for _ in 0..workers.min(chunks.max(1)) {
        let (info, name, jobs, ctx, state, progress, progress_target) =
            (info.clone(), snapshot_name.clone(), jobs.clone(), ctx.clone(), shared_state.clone(), progress.clone(), storage.clone());
        // The session is driven in the worker's own task (`sql::driven`): the COPY stream
        // is read on the thread that decodes it.
        handles.0.push(tokio::spawn(async move {
            sql::driven(&info, |client| async move {
            enter_snapshot(&client, &name).await?;
            loop {
                let job = jobs.lock().expect("not poisoned").pop_front();
                let Some((key, schema, chunk)) = job else { break };
                let tp = progress.table(&key);
                let rows = copy_chunk(&client, &ctx, &schema, &chunk, &tp).await?;
                progress.tick();
                let mut st = state.lock().expect("not poisoned");
                if let Some(c) = st.tables.get_mut(&key).and_then(|t| t.chunks.iter_mut().find(|c| c.part == chunk.part)) {
                    c.done_at = Some(ctx.snapshot_lsn);
                    c.rows = rows;
                }
                if st.tables[&key].chunks.iter().all(|c| c.done_at.is_some()) {
                    tp.finish();
                }
                crate::failpoint::hit("load-chunk-done");
                tokio::task::block_in_place(|| st.write(progress_target.as_ref()))?;
            }
            let _ = client.batch_execute("COMMIT").await;
            Ok::<(), Error>(())
            })
            .await
        }));
    }
    if let Some(e) = handles.join().await {
        return Err(e.context("full load"));
    }
    drop(repl);
    let mut state = Arc::try_unwrap(shared_state).map_err(|_| Error::runtime("internal: load state still shared"))?.into_inner().expect("not poisoned");
    state.complete = true;
    state.write(storage.as_ref())?;
    let rows: u64 = state.tables.values().flat_map(|t| &t.chunks).map(|c| c.rows).sum();
    if mode == Mode::FullLoadAndCdc {
        // CDC continues from the slot's consistent point.
        let mut cp = Checkpoint::new(state.slot_lsn, state.slot_lsn);
        for (k, t) in &state.tables {
            cp.counts.entry(k.clone()).or_default().insert("L".into(), t.chunks.iter().map(|c| c.rows).sum());
        }
        cp.written_at = crate::time_fmt::now_rfc3339();
        // Each sink recovers from the checkpoint in its own target; a Kinesis sink from
        // its position in the progress store.
        for target in targets.all() {
            crate::state::checkpoint::write_checkpoint(target.as_ref(), &cp, &mut None)?;
        }
        for r in &ctx.records {
            r.hand_over(storage.as_ref(), state.slot_lsn)?;
        }
    }
    Ok(Some(LoadSummary {
        slot_lsn: state.slot_lsn,
        snapshot_lsn,
        tables: state.tables.len(),
        chunks,
        rows,
        resumed,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// Whether a sink already holds CDC progress of its own (a Parquet checkpoint, or a Kinesis
/// sink's position in the progress store): then there is nothing to load.
fn holds_cdc_progress(config: &Config, targets: &Targets) -> Result<bool> {
    if let Some(first) = targets.first() {
        if crate::state::checkpoint::read_checkpoint(first.as_ref())?.is_some() {
            return Ok(true);
        }
    }
    let progress = targets.progress().expect("checked by the caller");
    for s in &config.sinks {
        if let crate::config::SinkConfig::Kinesis(k) = s {
            let key = crate::sink::kinesis::stream::checkpoint_key(&k.stream);
            if crate::state::checkpoint::read_checkpoint_versioned_at(progress.as_ref(), &key)?.is_some() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A new load writes into every Parquet sink, so none may hold another run's progress (the
/// first one was checked by the caller): its old files would mix with the new load's.
fn refuse_used_targets(targets: &Targets) -> Result<()> {
    for target in targets.all().skip(1) {
        let used = crate::state::checkpoint::read_checkpoint(target.as_ref())?.is_some()
            || LoadState::read(target.as_ref())?.is_some();
        if used {
            return Err(Error::config(format!(
                "{} already holds the output of another run, and the full load writes into every Parquet sink",
                target.describe()
            ))
            .with_hint("point that sink at an empty location, or empty it"));
        }
    }
    Ok(())
}

/// Copy workers that are aborted when the load is dropped unfinished.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<Result<()>>>);

impl AbortOnDrop {
    /// Waits for every worker; the first error (a worker's, or a worker that panicked or
    /// was cancelled), if any. Called once, by the task that spawned them.
    async fn join(&mut self) -> Option<Error> {
        let mut first_error = None;
        for h in self.0.iter_mut() {
            match h.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => first_error = first_error.or(Some(Error::runtime(format!("a copy worker failed: {e}")))),
            }
        }
        first_error
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8)
}

/// The publication's tables that match `source.tables`.
pub async fn selected_tables(config: &Config, catalog: &Catalog) -> Result<Vec<(String, String)>> {
    let publication = &config.source.publication;
    preflight::require_publication(catalog, publication).await?;
    catalog.selected_published_tables(publication, &config.source.tables).await
}
