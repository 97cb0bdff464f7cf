//! `pgcdc status`: the slot, the server position and what each target holds.

use serde::Serialize;

use super::connect_catalog;
use crate::config::Config;
use crate::error::Result;
use crate::state::load::LoadState;
use crate::state::ProgressStore;
use crate::model::Lsn;
use crate::storage;
use crate::state::Checkpoint;
use crate::source::catalog::SlotState;
use crate::source::conninfo::ConnInfo;

#[derive(Serialize)]
pub struct Status {
    pub slot: String,
    pub slot_exists: bool,
    pub slot_active: bool,
    pub confirmed_flush_lsn: Option<String>,
    pub restart_lsn: Option<String>,
    pub wal_status: Option<String>,
    pub current_wal_lsn: String,
    /// Bytes of WAL between the server's position and the slot's confirmed position.
    pub lag_bytes: Option<u64>,
    /// Bytes of WAL the slot holds back (from restart_lsn).
    pub retained_bytes: Option<u64>,
    pub targets: Vec<TargetStatus>,
    /// Where progress lives (`[state] url` or the first Parquet sink).
    pub progress_store: Option<String>,
    /// Sinks without a target of their own (Kinesis): how far the stream acknowledged
    /// every record.
    pub sink_positions: Vec<SinkPosition>,
    /// `[dead_letter]`: how many changes went there, in total and per table.
    pub dead_letters: Option<crate::sink::dead_letter::DeadLetterCount>,
    /// A `run --resync` that has not finished (`_pgcdc/resync.json`); the next `run`
    /// finishes it before it streams.
    pub resync_pending: Option<ResyncPending>,
}

#[derive(Serialize)]
pub struct ResyncPending {
    pub reason: String,
    pub started_at: String,
    /// Tables copied completely so far.
    pub tables_copied: usize,
}

#[derive(Serialize)]
pub struct SinkPosition {
    pub sink: String,
    pub acknowledged_lsn: String,
    pub written_at: String,
}

#[derive(Serialize)]
pub struct TargetStatus {
    pub target: String,
    pub checkpoint: Option<Checkpoint>,
    /// Full-load progress, when a load was planned in this target.
    pub load: Option<LoadStatus>,
    /// The `[state]` store, which holds progress and no sink's files.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub progress_only: bool,
}

#[derive(Serialize)]
pub struct LoadStatus {
    pub complete: bool,
    pub slot_lsn: String,
    pub tables: Vec<TableLoadStatus>,
}

#[derive(Serialize)]
pub struct TableLoadStatus {
    pub table: String,
    pub chunks_done: usize,
    pub chunks: usize,
    pub rows: u64,
}

fn load_status(state: LoadState) -> LoadStatus {
    LoadStatus {
        complete: state.complete,
        slot_lsn: state.slot_lsn.to_string(),
        tables: state
            .tables
            .iter()
            .map(|(name, t)| TableLoadStatus {
                table: name.clone(),
                chunks_done: t.chunks.iter().filter(|c| c.done_at.is_some()).count(),
                chunks: t.chunks.len(),
                rows: t.chunks.iter().map(|c| c.rows).sum(),
            })
            .collect(),
    }
}

pub async fn status(config: &Config) -> Result<Status> {
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let catalog = connect_catalog(&info).await?;
    let current = catalog.current_wal_lsn().await?;
    let slot: Option<SlotState> = catalog.slot(&config.source.slot).await?;
    let behind = |l: Option<Lsn>| l.map(|l| current.0.saturating_sub(l.0));
    let mut targets = Vec::new();
    for p in config.parquet_sinks() {
        let store = ProgressStore::at(std::sync::Arc::from(storage::open_sink_target(config, p)?));
        targets.push(TargetStatus {
            target: store.storage().describe(),
            checkpoint: store.checkpoint()?,
            load: store.load_state()?.map(load_status),
            progress_only: false,
        });
    }
    let store = ProgressStore::open(config)?;
    if config.state.is_some() {
        targets.push(TargetStatus { target: store.storage().describe(), checkpoint: None, load: store.load_state()?.map(load_status), progress_only: true });
    }
    let sink_positions = store
        .sink_positions()?
        .into_iter()
        .map(|(sink, cp)| SinkPosition { sink, acknowledged_lsn: cp.end_lsn.to_string(), written_at: cp.written_at })
        .collect();
    Ok(Status {
        slot: config.source.slot.clone(),
        slot_exists: slot.is_some(),
        slot_active: slot.as_ref().is_some_and(|s| s.active),
        confirmed_flush_lsn: slot.as_ref().and_then(|s| s.confirmed_flush_lsn).map(|l| l.to_string()),
        restart_lsn: slot.as_ref().and_then(|s| s.restart_lsn).map(|l| l.to_string()),
        wal_status: slot.as_ref().and_then(|s| s.wal_status.clone()),
        current_wal_lsn: current.to_string(),
        lag_bytes: behind(slot.as_ref().and_then(|s| s.confirmed_flush_lsn)),
        retained_bytes: behind(slot.as_ref().and_then(|s| s.restart_lsn)),
        targets,
        progress_store: Some(store.storage().describe()),
        sink_positions,
        dead_letters: crate::sink::dead_letter::DeadLetters::count(config)?,
        resync_pending: crate::state::resync::ResyncState::read(store.storage().as_ref())?
            .map(|r| ResyncPending { reason: r.reason, started_at: r.started_at, tables_copied: r.copied.len() }),
    })
}
