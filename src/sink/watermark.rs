//! [`Watermark`]: how far a sink is durable, readable from any thread.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::Lsn;

/// A sink's durable position: every transaction whose commit record ends at or before it
/// is durable in the sink (SPEC 2.1). Only the sink raises it — from the pipeline thread
/// when its flush is synchronous (Parquet), from its own sender tasks when the endpoint
/// acknowledges asynchronously (Kinesis). Anyone may read it; the pipeline's
/// [`crate::pipeline::progress::Progress`] confirms the lowest watermark over all sinks to
/// the slot. It never moves backwards.
#[derive(Debug, Default)]
pub struct Watermark(AtomicU64);

impl Watermark {
    pub fn new(at: Lsn) -> Watermark {
        Watermark(AtomicU64::new(at.0))
    }

    pub fn get(&self) -> Lsn {
        Lsn(self.0.load(Ordering::Acquire))
    }

    /// Raises the watermark to `lsn`; a lower `lsn` changes nothing.
    pub fn raise(&self, lsn: Lsn) {
        self.0.fetch_max(lsn.0, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_moves_backwards() {
        let w = Watermark::new(Lsn(10));
        w.raise(Lsn(5));
        assert_eq!(w.get(), Lsn(10));
        w.raise(Lsn(20));
        assert_eq!(w.get(), Lsn(20));
    }
}
