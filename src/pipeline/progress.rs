//! Positions shared between the pipeline thread and the replication reader.
//!
//! The pipeline is the only writer of `durable`; the reader reports it to the server in
//! standby status updates. `durable` only ever moves forward and never past what every sink
//! has flushed (SPEC 2.1).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::Lsn;

#[derive(Default)]
pub struct Progress {
    durable: AtomicU64,
}

impl Progress {
    pub fn new(start: Lsn) -> Progress {
        Progress { durable: AtomicU64::new(start.0) }
    }
    pub fn durable(&self) -> Lsn {
        Lsn(self.durable.load(Ordering::Acquire))
    }
    /// Raises the durable position (never lowers it).
    pub fn advance(&self, lsn: Lsn) {
        self.durable.fetch_max(lsn.0, Ordering::AcqRel);
    }
}
