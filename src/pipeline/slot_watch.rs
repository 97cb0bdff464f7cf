//! The slot's retained WAL for `/metrics`: while CDC streams, read `pg_replication_slots`
//! on the catalog connection every few seconds and hand it to [`crate::metrics::slot`].
//! Nothing is read when metrics are not served.

use std::sync::Arc;
use std::time::Duration;

use crate::source::catalog::Catalog;

/// How often the slot is read.
const EVERY: Duration = Duration::from_secs(5);

/// Stops the watch when dropped.
pub struct SlotWatch(Option<tokio::task::JoinHandle<()>>);

impl Drop for SlotWatch {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// Starts reading slot `slot` every [`EVERY`] until the returned guard is dropped (the end
/// of the CDC attempt). A failed read is logged at debug and tried again; the source being
/// lost is reported by the run itself. Must run inside a tokio runtime.
pub fn spawn(catalog: &Arc<Catalog>, slot: &str) -> SlotWatch {
    if !crate::metrics::enabled() {
        return SlotWatch(None);
    }
    let (catalog, slot) = (catalog.clone(), slot.to_string());
    SlotWatch(Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let read = async {
                let state = catalog.slot(&slot).await?;
                let current = catalog.current_wal_lsn().await?;
                Ok::<_, crate::error::Error>((state, current))
            };
            match read.await {
                Ok((Some(s), current)) => {
                    let retained = s.restart_lsn.map(|r| current.0.saturating_sub(r.0));
                    crate::metrics::slot(retained, s.safe_wal_size, s.wal_status.as_deref());
                }
                Ok((None, _)) => crate::metrics::slot(None, None, None),
                Err(e) => tracing::debug!("reading slot {slot} for metrics: {e}"),
            }
        }
    })))
}
