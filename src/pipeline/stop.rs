//! Stopping `pgcdc run` on SIGINT/SIGTERM during the full load (SPEC 3: a signal stops the
//! run cleanly with exit 0).

use super::runner::RunSummary;
use crate::storage::Targets;
use crate::error::Result;
use crate::state::ProgressStore;
use crate::model::Lsn;

/// Called by `runner::run` once the full load's future has been dropped on a signal (which
/// aborts its copy workers). Logs how far the load got and returns an empty summary: the
/// finished chunks are recorded in `_pgcdc/load.json` and the next run resumes from there.
/// `why` is `interrupted` (SIGINT) or `terminated` (SIGTERM).
pub fn stopped_during_load(targets: &Targets, why: &str) -> Result<RunSummary> {
    let state = targets.progress().and_then(|t| ProgressStore::at(t.clone()).load_state().ok().flatten());
    match state {
        Some(st) => {
            let chunks = st.tables.values().map(|t| t.chunks.len()).sum::<usize>();
            let done = chunks - st.pending();
            tracing::info!(
                "{why} during the full load: {done} of {chunks} chunks are done and kept; the next run resumes the load"
            );
        }
        None => tracing::info!("{why} before the full load started; the next run starts it"),
    }
    Ok(RunSummary {
        load: None,
        stats: None,
        durable: Lsn::ZERO,
    })
}

/// Called by `runner::run` when a signal stopped a resync (`crate::load::resync`): the
/// resync stays pending in `_pgcdc/resync.json` and the next run finishes it.
pub fn stopped_during_resync(why: &str) -> Result<RunSummary> {
    tracing::info!("{why} during the resync: the tables copied so far are kept; the next run finishes the resync");
    Ok(RunSummary { load: None, stats: None, durable: Lsn::ZERO })
}
