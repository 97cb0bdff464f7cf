//! Positions shared between the pipeline thread and the replication reader.
//!
//! The durable position is the lowest [`Watermark`] over all sinks: what every sink holds
//! durably (SPEC 2.1). Sinks raise their own watermarks — synchronously at a flush, or from
//! their sender tasks as acknowledgements arrive — so the reader, which reports
//! [`Progress::durable`] to the slot, sees a slow asynchronous sink hold the position back
//! without asking the pipeline thread. It only ever moves forward.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::model::Lsn;
use crate::sink::Watermark;

pub struct Progress {
    sinks: Vec<Arc<Watermark>>,
    /// The highest position reported so far (and the start): `durable` never goes below it.
    reported: AtomicU64,
}

impl Progress {
    /// The progress over `sinks`' watermarks, starting at `start` (where streaming starts).
    pub fn new(start: Lsn, sinks: Vec<Arc<Watermark>>) -> Progress {
        Progress { sinks, reported: AtomicU64::new(start.0) }
    }

    /// The position every sink holds durably. Callable from any thread.
    pub fn durable(&self) -> Lsn {
        let floor = Lsn(self.reported.load(Ordering::Acquire));
        let Some(low) = self.sinks.iter().map(|w| w.get()).min() else { return floor };
        if low > floor {
            self.reported.fetch_max(low.0, Ordering::AcqRel);
        }
        low.max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_sink_holds_the_position_back() {
        let (a, b) = (Arc::new(Watermark::new(Lsn(0))), Arc::new(Watermark::new(Lsn(0))));
        let p = Progress::new(Lsn(100), vec![a.clone(), b.clone()]);
        assert_eq!(p.durable(), Lsn(100), "never below the start");
        a.raise(Lsn(300));
        assert_eq!(p.durable(), Lsn(100));
        b.raise(Lsn(200));
        assert_eq!(p.durable(), Lsn(200));
        b.raise(Lsn(400));
        assert_eq!(p.durable(), Lsn(300));
    }
}
