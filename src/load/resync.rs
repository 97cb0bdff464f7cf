//! `pgcdc run --resync`: the recovery from a lost replication slot (README, "A lost slot").
//!
//! When the slot was dropped or invalidated ([`crate::source::slot_health`]), the changes
//! since the target's position are gone, so CDC cannot continue. A resync starts over from a
//! new slot without throwing the output away:
//!
//! 1. `_pgcdc/resync.json` ([`ResyncState`]) records that a resync is pending, before any
//!    slot is touched; while it exists every `run` finishes the resync first.
//! 2. The lost slot is dropped if it still exists, and created again with an exported
//!    snapshot; its consistent point S is recorded.
//! 3. Every selected table is copied in that snapshot with the full load's code
//!    ([`super::worker::copy_chunk`]) into a new load generation
//!    `{table}/load/{S}-{part:05}.parquet` of every Parquet sink (`_op = 'L'`, `_lsn = S`),
//!    and, as `load` records, into every Kinesis sink. A table is recorded as copied when
//!    all its chunks are published.
//! 4. Only when every table is copied, each table gets its reset file: the reset row `T` at
//!    `(S, -1)` (as a reload's part 0 has, README "Rules"), in the part after its last
//!    chunk. Until then readers see the old output (with the new load rows on top); from
//!    then on everything before S is superseded.
//! 5. Every sink's position moves to S (the Parquet checkpoints, the Kinesis positions), an
//!    unfinished full load counts as complete, and the pending record is removed. CDC then
//!    streams from S as usual.
//!
//! A crash or a signal anywhere in between leaves the record: the next `run` (with or
//! without `--resync`) keeps the tables already copied, deletes what the interrupted attempt
//! published for the others, and copies those in a fresh snapshot S2 of a temporary slot
//! (like a resumed full load: CDC still starts at S, and the reset at `(S2, -1)` supersedes
//! the changes between S and S2, which S2's snapshot already holds). If the new slot is lost
//! too, the resync starts over with another new slot.
//!
//! A DMS-layout sink cannot express "everything before S is superseded" (no reset row), so a
//! resync refuses to start while one holds output (README, "Output layout (DMS)").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::outputs::LoadOutput;
use super::worker::{copy_chunk, enter_snapshot, LoadContext};
use crate::batch::TableBatchBuilder;
use crate::config::{Config, Mode, SinkConfig};
use crate::error::{Error, Result};
use crate::model::{Lsn, OutputRow, RowOp, TableSchema, TupleValue};
use crate::sink::parquet::load::LoadWriter;
use crate::sink::parquet::naming::table_prefix;
use crate::source::catalog::{Catalog, SlotState};
use crate::source::conninfo::ConnInfo;
use crate::source::preflight::{self, SlotProblem};
use crate::source::replication::{ReplicationConn, SnapshotAction};
use crate::source::sql;
use crate::state::checkpoint::{
    read_checkpoint_versioned_at, write_checkpoint_at, Checkpoint, CHECKPOINT_KEY,
};
use crate::state::resync::{CopiedTable, ResyncState};
use crate::storage::{Storage, Targets};

/// What `run` was asked to do about the slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResyncRequest {
    /// Plain `run`: only a pending resync is finished.
    #[default]
    No,
    /// `--resync`: only when the slot is missing or invalidated.
    Requested,
    /// `--resync --force`: also over a healthy slot.
    Forced,
}

impl ResyncRequest {
    /// From `--resync` and `--force`.
    pub fn from_flags(resync: bool, force: bool) -> ResyncRequest {
        match (resync, force) {
            (false, _) => ResyncRequest::No,
            (true, false) => ResyncRequest::Requested,
            (true, true) => ResyncRequest::Forced,
        }
    }
}

pub struct ResyncSummary {
    /// The new slot's consistent point: CDC continues from here.
    pub slot_lsn: Lsn,
    pub tables: usize,
    /// Rows copied by this run (tables copied by an interrupted run are not counted).
    pub rows: u64,
    pub seconds: f64,
}

/// Called by `run` after it locked the targets and before the full load: performs the
/// resync asked for, or finishes a pending one; `None` when there is nothing to do.
///
/// Errors: `--resync` on a healthy slot without `--force` (a configuration error: nothing
/// was changed), a slot in use or of another plugin, a DMS-layout sink that holds output,
/// mode `full-load`, and any failure while copying (the resync stays pending).
pub async fn resync_if_needed(
    config: &Config,
    targets: &Targets,
    info: &ConnInfo,
    catalog: &Catalog,
    request: ResyncRequest,
) -> Result<Option<ResyncSummary>> {
    let storage = targets
        .progress()
        .cloned()
        .expect("Config refuses a configuration without a progress store");
    let pending = tokio::task::block_in_place(|| ResyncState::read(storage.as_ref()))?;
    let state = match pending {
        Some(st) => {
            tracing::info!(slot = %config.source.slot, copied = st.copied.len(), "finishing the resync an earlier run started");
            st
        }
        None if request == ResyncRequest::No => return Ok(None),
        None => {
            if config.pipeline.mode == Mode::FullLoad {
                return Err(Error::config(
                    "--resync replaces a lost slot, and mode `full-load` uses no slot",
                )
                .with_hint("use --mode full-load-and-cdc or --mode cdc"));
            }
            let slot = preflight::slot_after_release(catalog, &config.source.slot).await?;
            let reason = why_resync(
                &config.source.slot,
                slot.as_ref(),
                request == ResyncRequest::Forced,
            )?;
            tokio::task::block_in_place(|| refuse_dms_output(config, targets))?;
            tracing::warn!(slot = %config.source.slot, "resync: {reason}; loading every table again from a new slot");
            let st = ResyncState {
                reason,
                started_at: crate::time_fmt::now_rfc3339(),
                ..Default::default()
            };
            tokio::task::block_in_place(|| st.write(storage.as_ref()))?;
            st
        }
    };
    resync(config, targets, info, catalog, storage, state)
        .await
        .map(Some)
}

/// Why a new resync may start, from the slot's state; an error when it may not.
fn why_resync(slot_name: &str, slot: Option<&SlotState>, force: bool) -> Result<String> {
    let Some(slot) = slot else {
        return Ok(format!("replication slot `{slot_name}` is missing"));
    };
    match SlotProblem::of(slot) {
        Some(SlotProblem::Lost) => Ok(format!("replication slot `{slot_name}` is invalidated (wal_status = lost)")),
        Some(p) => Err(p.error(slot_name)),
        None if force => Ok(format!("forced over the healthy replication slot `{slot_name}`")),
        None => Err(Error::config(format!(
            "replication slot `{slot_name}` is healthy: --resync would drop it and load every table again; nothing was changed"
        ))
        .with_hint(
            "`pgcdc run` continues from the slot; to reload one table use `--reload SCHEMA.TABLE`; to start over from a new slot anyway, `pgcdc run --resync --force`",
        )),
    }
}

/// A DMS-layout sink that already holds output cannot take a resync (module docs).
fn refuse_dms_output(config: &Config, targets: &Targets) -> Result<()> {
    for (i, s) in config.sinks.iter().enumerate() {
        let SinkConfig::Parquet(p) = s else { continue };
        if p.layout != crate::config::Layout::Dms {
            continue;
        }
        let Some(target) = targets.for_sink(i) else {
            continue;
        };
        if !target.list("")?.iter().all(|k| k.starts_with("_pgcdc/")) {
            return Err(Error::config(format!(
                "{} (layout = \"dms\") already holds output, and a resync cannot mark it superseded: the DMS layout has no reset row, so old CDC files would be applied on top of the new load",
                target.describe()
            ))
            .with_hint("move that output away (or point the sink at an empty location), then run `pgcdc run --resync` again: the sink then gets the new load and the CDC after it"));
        }
    }
    Ok(())
}

/// Steps 2 to 5 of the module docs, from wherever `state` stands.
async fn resync(
    config: &Config,
    targets: &Targets,
    info: &ConnInfo,
    catalog: &Catalog,
    storage: Arc<dyn Storage>,
    mut state: ResyncState,
) -> Result<ResyncSummary> {
    let started = std::time::Instant::now();
    let slot_name = &config.source.slot;
    let save = |st: &ResyncState| tokio::task::block_in_place(|| st.write(storage.as_ref()));
    let tables = super::selected_tables(config, catalog).await?;
    let remaining: Vec<(String, String)> = tables
        .iter()
        .filter(|(s, t)| !state.copied.contains_key(&format!("{s}.{t}")))
        .cloned()
        .collect();

    // 2. The new slot (or the one an interrupted resync created), and a snapshot to copy in.
    let slot = preflight::slot_after_release(catalog, slot_name).await?;
    let ours =
        state.slot_lsn.is_some() && slot.as_ref().is_some_and(|s| SlotProblem::of(s).is_none());
    let mut repl = ReplicationConn::connect(info).await?;
    let mut snapshot = None;
    if !ours {
        if let Some(s) = &slot {
            if let Some(p @ (SlotProblem::InUse { .. } | SlotProblem::WrongPlugin { .. })) =
                SlotProblem::of(s)
            {
                return Err(p.error(slot_name));
            }
            drop_slot(catalog, slot_name).await?;
        }
        // Files of earlier attempts of an abandoned slot are superseded by the new resets.
        state = ResyncState {
            reason: state.reason,
            started_at: state.started_at,
            ..Default::default()
        };
        let created = repl
            .create_slot(slot_name, false, SnapshotAction::Export)
            .await?;
        tracing::info!(slot = %slot_name, lsn = %created.consistent_point, "resync: created the new replication slot");
        state.slot_lsn = Some(created.consistent_point);
        state.attempts.push(created.consistent_point);
        save(&state)?;
        crate::failpoint::hit("resync-slot-created");
        snapshot = Some((created.snapshot_name, created.consistent_point));
    }
    let slot_lsn = state.slot_lsn.expect("set above");
    let remaining: Vec<(String, String)> = if ours { remaining } else { tables.clone() };
    if snapshot.is_none() && !remaining.is_empty() {
        let created = repl
            .create_slot(
                &format!("pgcdc_resync_{}", std::process::id()),
                true,
                SnapshotAction::Export,
            )
            .await?;
        tracing::info!(snapshot = %created.consistent_point, tables = remaining.len(), "resuming the resync in a new snapshot");
        let earlier = state.attempts.clone();
        let outputs = super::outputs::load_outputs(config, targets)?;
        let targets_named: Vec<(String, String)> = remaining
            .iter()
            .map(|(s, t)| {
                let r = crate::rules::TableRules::resolve(&config.rules, s, t);
                (r.target_schema, r.target_table)
            })
            .collect();
        tokio::task::block_in_place(|| remove_attempts(&outputs, &targets_named, &earlier))?;
        state.attempts.push(created.consistent_point);
        save(&state)?;
        snapshot = Some((created.snapshot_name, created.consistent_point));
    }

    // 3. Copy.
    let mut rows = 0;
    if let Some((name, lsn)) = snapshot.filter(|_| !remaining.is_empty()) {
        let name = name.ok_or_else(|| Error::runtime("the server did not export a snapshot"))?;
        rows = copy_tables(
            config, targets, info, catalog, &remaining, &name, lsn, &storage, &mut state,
        )
        .await?;
    }
    drop(repl);

    // 4. The resets, once every table is copied.
    if !state.reset {
        let outputs = super::outputs::load_outputs(config, targets)?;
        let native: Vec<&LoadOutput> = outputs.iter().filter(|o| o.dms.is_none()).collect();
        for t in state.copied.values() {
            let published = match catalog
                .published_table_schema(&config.source.publication, &config.rules, &t.schema, &t.table)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(table = %format!("{}.{}", t.schema, t.table), "no reset file: {}", e.message);
                    continue;
                }
            };
            tokio::task::block_in_place(|| {
                native
                    .iter()
                    .try_for_each(|o| write_reset(o, &published.schema, t.lsn, t.parts))
            })?;
        }
        state.reset = true;
        save(&state)?;
        crate::failpoint::hit("resync-reset-written");
    }

    // 5. Every sink continues from the new slot.
    tokio::task::block_in_place(|| move_positions(config, targets, &storage, &state, slot_lsn))?;
    crate::failpoint::hit("resync-positions-moved");
    tokio::task::block_in_place(|| ResyncState::remove(storage.as_ref()))?;
    let summary = ResyncSummary {
        slot_lsn,
        tables: state.copied.len(),
        rows,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(slot = %slot_name, lsn = %slot_lsn, tables = summary.tables, rows, seconds = format!("{:.1}", summary.seconds), "resync done: CDC continues from the new slot");
    Ok(summary)
}

async fn drop_slot(catalog: &Catalog, slot: &str) -> Result<()> {
    tracing::info!(slot = %slot, "resync: dropping the lost replication slot");
    catalog
        .client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .map_err(|e| Error::runtime(format!("dropping slot {slot}: {}", sql::db_error_text(&e))))?;
    Ok(())
}

/// Deletes what earlier attempts published for `tables` (target names) in the native
/// outputs (a DMS-layout chunk file is replaced by name when copied again).
fn remove_attempts(
    outputs: &[LoadOutput],
    tables: &[(String, String)],
    attempts: &[Lsn],
) -> Result<()> {
    for o in outputs.iter().filter(|o| o.dms.is_none()) {
        for (schema, table) in tables {
            let dir = format!("{}/load", table_prefix(schema, table));
            let prefixes: Vec<String> = attempts
                .iter()
                .map(|a| format!("{dir}/{}-", a.file_hex()))
                .collect();
            for key in o.storage.list(&dir)? {
                if prefixes.iter().any(|p| key.starts_with(p)) {
                    o.storage.delete(&key)?;
                }
            }
        }
    }
    Ok(())
}

/// Copies every chunk of `tables` in the exported snapshot `snapshot` (consistent point
/// `lsn`) with `load_workers` sessions, recording each table in `state` once all its chunks
/// are published. Returns the rows copied.
#[allow(clippy::too_many_arguments)]
async fn copy_tables(
    config: &Config,
    targets: &Targets,
    info: &ConnInfo,
    catalog: &Catalog,
    tables: &[(String, String)],
    snapshot: &str,
    lsn: Lsn,
    storage: &Arc<dyn Storage>,
    state: &mut ResyncState,
) -> Result<u64> {
    let tid_ranges = catalog.server_version_num().await? >= 140000;
    let workers = config
        .pipeline
        .load_workers
        .unwrap_or_else(super::default_workers);
    let chunk_pages = config
        .pipeline
        .load_chunk_size
        .map(|b| (b / 8192).max(1) as u32);
    let planned = super::plan::plan(catalog, tables, workers, chunk_pages, tid_ranges).await?;
    let mut jobs = VecDeque::new();
    let mut left: HashMap<String, (CopiedTable, usize)> = HashMap::new();
    for (key, t) in &planned {
        let published = Arc::new(
            catalog
                .published_table_schema(&config.source.publication, &config.rules, &t.schema, &t.table)
                .await?,
        );
        let parts = t.chunks.iter().map(|c| c.part + 1).max().unwrap_or(0);
        let copied = CopiedTable {
            schema: t.schema.clone(),
            table: t.table.clone(),
            lsn,
            parts,
            rows: 0,
        };
        if t.chunks.is_empty() {
            state.copied.insert(key.clone(), copied);
            continue;
        }
        left.insert(key.clone(), (copied, t.chunks.len()));
        for c in &t.chunks {
            jobs.push_back((key.clone(), published.clone(), c.clone()));
        }
    }
    let progress = Arc::new(super::progress::LoadProgress::new(
        &planned
            .iter()
            .map(|(k, t)| (k.clone(), t.bytes))
            .collect::<Vec<_>>(),
    ));
    let chunks = jobs.len();
    let jobs = Arc::new(Mutex::new(jobs));
    let ctx = Arc::new(LoadContext {
        outputs: super::outputs::load_outputs(config, targets)?,
        records: tokio::task::block_in_place(|| super::outputs::record_outputs(config))?,
        snapshot_lsn: lsn,
        snapshot_ts_us: crate::time_fmt::now_unix_micros(),
        tid_ranges,
        // No reset row in part 0: the resets are written once every table is copied.
        reload: false,
        // Never: a resumed load would delete the part's files of every snapshot, the old
        // generation's included (`remove_attempts` removed this resync's own).
        resumed: false,
    });
    let shared = Arc::new(Mutex::new((std::mem::take(state), left, 0u64)));
    let mut handles = super::AbortOnDrop(Vec::new());
    for _ in 0..workers.min(chunks.max(1)) {
        let (info, name, jobs, ctx, shared, progress, storage) = (
            info.clone(),
            snapshot.to_string(),
            jobs.clone(),
            ctx.clone(),
            shared.clone(),
            progress.clone(),
            storage.clone(),
        );
        handles.0.push(tokio::spawn(async move {
            let client = sql::connect(&info).await?;
            enter_snapshot(&client, &name).await?;
            loop {
                let job = jobs.lock().expect("not poisoned").pop_front();
                let Some((key, schema, chunk)) = job else {
                    break;
                };
                let tp = progress.table(&key);
                let rows = copy_chunk(&client, &ctx, &schema, &chunk, &tp).await?;
                progress.tick();
                let mut guard = shared.lock().expect("not poisoned");
                let (st, left, total) = &mut *guard;
                *total += rows;
                let done = left.get_mut(&key).map(|(t, n)| {
                    t.rows += rows;
                    *n -= 1;
                    *n == 0
                });
                if done == Some(true) {
                    tp.finish();
                    let (t, _) = left.remove(&key).expect("present");
                    st.copied.insert(key, t);
                    tokio::task::block_in_place(|| st.write(storage.as_ref()))?;
                    crate::failpoint::hit("resync-table-copied");
                }
            }
            let _ = client.batch_execute("COMMIT").await;
            Ok::<(), Error>(())
        }));
    }
    let first_error = handles.join().await;
    drop(handles);
    let (st, _, rows) = std::mem::take(&mut *shared.lock().expect("not poisoned"));
    *state = st;
    match first_error {
        Some(e) => Err(e.context("resync")),
        None => Ok(rows),
    }
}

/// Publishes `table`'s reset file in `o`: the reset row `T` at `(lsn, -1)`, as part `part`
/// of the load generation at `lsn`.
fn write_reset(o: &LoadOutput, table: &Arc<TableSchema>, lsn: Lsn, part: u32) -> Result<()> {
    let ts = crate::time_fmt::now_unix_micros();
    let nulls = vec![TupleValue::Null; table.columns.len()];
    let reset = OutputRow {
        op: RowOp::Truncate,
        lsn,
        seq: -1,
        xid: None,
        commit_ts_us: ts,
        values: &nulls,
    };
    let mut builder = TableBatchBuilder::new(table.clone());
    builder
        .append(&reset)
        .map_err(|e| Error::runtime(format!("the reset row of {}: {e}", table.qualified_name())))?;
    let batch = builder.finish();
    let mut w = LoadWriter::create(
        o.storage.as_ref(),
        table,
        lsn,
        ts,
        part,
        o.compression,
        None,
    )?;
    w.write(&batch)?;
    w.finish(o.storage.as_ref())?;
    Ok(())
}

/// Step 5: recovers every sink (an interrupted flush is rolled forward first, so no older
/// checkpoint lands after the move), then sets each sink's position to `slot_lsn`, keeping
/// its counts and adding the loaded rows; marks an unfinished full load complete.
fn move_positions(
    config: &Config,
    targets: &Targets,
    progress: &Arc<dyn Storage>,
    state: &ResyncState,
    slot_lsn: Lsn,
) -> Result<()> {
    for mut sink in crate::sink::open_sinks(config, targets)? {
        sink.recover()
            .map_err(|e| e.context(format!("recovering {}", sink.describe())))?;
    }
    let mut keys: Vec<(Arc<dyn Storage>, String)> = targets
        .all()
        .map(|t| (t.clone(), CHECKPOINT_KEY.to_string()))
        .collect();
    for s in &config.sinks {
        if let SinkConfig::Kinesis(k) = s {
            keys.push((
                progress.clone(),
                crate::sink::kinesis::stream::checkpoint_key(&k.stream),
            ));
        }
    }
    for (storage, key) in keys {
        let mut held = read_checkpoint_versioned_at(storage.as_ref(), &key)?;
        let mut cp = Checkpoint::new(slot_lsn, slot_lsn);
        if let Some((old, _)) = &held {
            if old.end_lsn > slot_lsn {
                return Err(Error::runtime(format!(
                    "{} holds changes up to {}, past the new slot's consistent point {slot_lsn}",
                    storage.describe(),
                    old.end_lsn
                ))
                .with_hint("the source is not the server this target was replicated from: point the sink at an empty location"));
            }
            cp.counts = old.counts.clone();
        }
        for (name, t) in &state.copied {
            *cp.counts
                .entry(name.clone())
                .or_default()
                .entry("L".into())
                .or_default() += t.rows;
        }
        cp.written_at = crate::time_fmt::now_rfc3339();
        write_checkpoint_at(storage.as_ref(), &key, &cp, &mut held)?;
    }
    if let Some(mut load) = crate::state::load::LoadState::read(progress.as_ref())? {
        if !load.complete {
            load.complete = true;
            load.write(progress.as_ref())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(wal_status: &str, active: bool) -> SlotState {
        SlotState {
            plugin: Some("pgoutput".into()),
            slot_type: "logical".into(),
            database: Some("db".into()),
            active,
            active_pid: active.then_some(7),
            confirmed_flush_lsn: None,
            restart_lsn: None,
            wal_status: Some(wal_status.into()),
            safe_wal_size: None,
        }
    }

    #[test]
    fn a_resync_needs_a_lost_slot_or_force() {
        assert!(why_resync("s", None, false).unwrap().contains("missing"));
        assert!(why_resync("s", Some(&slot("lost", false)), false)
            .unwrap()
            .contains("invalidated"));
        let healthy = why_resync("s", Some(&slot("reserved", false)), false).unwrap_err();
        assert_eq!(healthy.exit_code(), 2);
        assert!(
            healthy.message.contains("is healthy"),
            "{}",
            healthy.message
        );
        assert!(healthy.hint.unwrap().contains("--resync --force"));
        assert!(why_resync("s", Some(&slot("reserved", false)), true)
            .unwrap()
            .contains("forced"));
        let busy = why_resync("s", Some(&slot("reserved", true)), true).unwrap_err();
        assert!(busy.message.contains("in use"), "{}", busy.message);
    }
}
