//! The lag in seconds: the age of the oldest committed transaction that is not yet durable
//! in every sink, from the commit timestamps the pipeline sees.
//!
//! The pipeline reports each commit ([`LagClock::committed`]) and each flush, with the
//! position it handed over ([`LagClock::handed_over`]); the durable position comes about
//! once a second ([`LagClock::durable`]). Only the oldest commit time of each hand-over is
//! kept, so memory does not grow with the number of transactions.

use std::collections::VecDeque;

use crate::model::Lsn;

/// Hand-overs kept at most; beyond it the newest two merge (keeping the older time, so the
/// lag is never under-reported).
const MAX_HANDED: usize = 1024;

#[derive(Debug, Default)]
pub struct LagClock {
    /// The oldest commit time (Unix µs) committed since the last hand-over.
    pending: Option<i64>,
    /// Hand-overs not yet durable: (position handed over, oldest commit time in it).
    handed: VecDeque<(Lsn, i64)>,
}

impl LagClock {
    pub fn committed(&mut self, commit_ts_us: i64) {
        self.pending.get_or_insert(commit_ts_us);
    }

    /// Everything committed so far was handed to the sinks up to `end`.
    pub fn handed_over(&mut self, end: Lsn) {
        let Some(ts) = self.pending.take() else {
            return;
        };
        if self.handed.len() >= MAX_HANDED {
            if let Some(last) = self.handed.back_mut() {
                last.0 = last.0.max(end);
                return;
            }
        }
        self.handed.push_back((end, ts));
    }

    /// Every sink holds the stream up to `durable`.
    pub fn durable(&mut self, durable: Lsn) {
        while self.handed.front().is_some_and(|(end, _)| *end <= durable) {
            self.handed.pop_front();
        }
    }

    /// Seconds between the oldest non-durable commit and `now_us` (Unix µs); 0 when none.
    pub fn lag_seconds(&self, now_us: i64) -> f64 {
        match self.handed.front().map(|h| h.1).or(self.pending) {
            Some(ts) => (now_us.saturating_sub(ts)).max(0) as f64 / 1e6,
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_commit_not_yet_durable_sets_the_lag() {
        let mut c = LagClock::default();
        assert_eq!(c.lag_seconds(5_000_000), 0.0);
        c.committed(1_000_000);
        c.committed(2_000_000);
        assert_eq!(c.lag_seconds(5_000_000), 4.0);
        c.handed_over(Lsn(100));
        c.committed(3_000_000);
        c.handed_over(Lsn(200));
        c.durable(Lsn(99));
        assert_eq!(c.lag_seconds(5_000_000), 4.0);
        c.durable(Lsn(100));
        assert_eq!(c.lag_seconds(5_000_000), 2.0);
        c.durable(Lsn(250));
        assert_eq!(c.lag_seconds(5_000_000), 0.0);
        c.handed_over(Lsn(300));
        assert_eq!(
            c.lag_seconds(5_000_000),
            0.0,
            "an idle hand-over adds nothing"
        );
    }

    #[test]
    fn hand_overs_are_bounded() {
        let mut c = LagClock::default();
        for i in 0..(MAX_HANDED as u64 + 10) {
            c.committed(i as i64 * 1000);
            c.handed_over(Lsn(i + 1));
        }
        assert_eq!(c.handed.len(), MAX_HANDED);
        c.durable(Lsn(MAX_HANDED as u64 - 1));
        assert_eq!(c.handed.len(), 1);
        assert_eq!(c.handed[0].0, Lsn(MAX_HANDED as u64 + 10));
        c.durable(Lsn(MAX_HANDED as u64 + 10));
        assert_eq!(c.lag_seconds(0), 0.0);
    }
}
