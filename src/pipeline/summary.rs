//! The periodic progress summary `pgcdc run` logs at info (issue 11, "Logs").
//!
//! The pipeline thread tells [`Summary`] every WAL end the server reports (in each data
//! message and keepalive) and calls [`Summary::tick`] at each `SourceEvent::Tick` (about once
//! a second). Once an interval has passed since the last summary (a minute by default;
//! `PGCDC_SUMMARY_INTERVAL`, a humantime duration such as `1s`, overrides it — a knob for
//! tests and operators who want a denser trace), one `summary` event is logged with:
//!
//! * `lag_bytes`: the server's last known WAL end minus the durable position (0 while the
//!   server has reported nothing beyond it). A new slot has no durable position until its
//!   first flush; it starts at the server's current WAL position, so until then the lag
//!   counts from the first WAL end the server reported;
//! * `rows`, `rows_per_sec`, `transactions`, `flushes`: counted since the previous summary;
//! * `durable` and `server_wal_end`: the two positions, as `X/Y`.
//!
//! Only counters the pipeline already keeps are used, so a summary costs nothing between
//! intervals.

use std::time::{Duration, Instant};

use super::PipelineStats;
use crate::error::{Error, Result};
use crate::model::Lsn;

/// The environment variable overriding [`DEFAULT_INTERVAL`].
pub const INTERVAL_ENV: &str = "PGCDC_SUMMARY_INTERVAL";
/// How often a summary is logged unless [`INTERVAL_ENV`] says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// What the previous summary saw; see the module documentation.
pub struct Summary {
    interval: Duration,
    last_at: Instant,
    last: PipelineStats,
    server_end: Lsn,
    /// The first WAL end the server reported: the base of the lag while nothing is durable.
    first_end: Option<Lsn>,
}

/// The counts and positions of one summary (what [`Summary::tick`] logs).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryLine {
    pub lag_bytes: u64,
    pub rows: u64,
    pub rows_per_sec: f64,
    pub transactions: u64,
    pub flushes: u64,
    pub durable: Lsn,
    pub server_wal_end: Lsn,
}

impl Summary {
    /// A summary every `interval`, counting from now.
    pub fn new(interval: Duration) -> Summary {
        Summary {
            interval,
            last_at: Instant::now(),
            last: PipelineStats::default(),
            server_end: Lsn::ZERO,
            first_end: None,
        }
    }

    /// A summary at the interval [`INTERVAL_ENV`] names, or every minute when it is unset.
    /// A value that is not a positive humantime duration is a configuration error.
    pub fn from_env() -> Result<Summary> {
        let interval = match std::env::var(INTERVAL_ENV) {
            Ok(v) => parse_interval(&v)?,
            Err(_) => DEFAULT_INTERVAL,
        };
        Ok(Summary::new(interval))
    }

    /// Records a WAL end the server reported; only the highest is kept.
    pub fn saw_server_end(&mut self, wal_end: Lsn) {
        self.server_end = self.server_end.max(wal_end);
        self.first_end.get_or_insert(wal_end);
    }

    /// The server's last known WAL end minus `durable` (module documentation).
    pub fn lag_bytes(&self, durable: Lsn) -> u64 {
        let base = if durable == Lsn::ZERO {
            self.first_end.unwrap_or(Lsn::ZERO)
        } else {
            durable
        };
        self.server_end.0.saturating_sub(base.0)
    }

    /// Logs a summary (and returns it) when the interval has passed since the last one.
    /// Every call also hands the positions to `/metrics` ([`crate::metrics::positions`]).
    pub fn tick(
        &mut self,
        now: Instant,
        stats: &PipelineStats,
        durable: Lsn,
    ) -> Option<SummaryLine> {
        crate::metrics::positions(self.server_end, durable, self.lag_bytes(durable));
        let elapsed = now.saturating_duration_since(self.last_at);
        if elapsed < self.interval {
            return None;
        }
        let rows = stats.rows.saturating_sub(self.last.rows);
        let line = SummaryLine {
            lag_bytes: self.lag_bytes(durable),
            rows,
            rows_per_sec: (rows as f64 / elapsed.as_secs_f64().max(1e-3) * 10.0).round() / 10.0,
            transactions: stats.transactions.saturating_sub(self.last.transactions),
            flushes: stats.flushes.saturating_sub(self.last.flushes),
            durable,
            server_wal_end: self.server_end.max(durable),
        };
        tracing::info!(
            lag_bytes = line.lag_bytes,
            rows = line.rows,
            rows_per_sec = line.rows_per_sec,
            transactions = line.transactions,
            flushes = line.flushes,
            durable = %line.durable,
            server_wal_end = %line.server_wal_end,
            interval = %humantime::format_duration(self.interval),
            "summary"
        );
        self.last_at = now;
        self.last = stats.clone();
        Some(line)
    }
}

fn parse_interval(v: &str) -> Result<Duration> {
    match humantime::parse_duration(v.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(
            Error::config(format!("{INTERVAL_ENV}={v:?} is not a positive duration")).with_hint(
                format!(
                    "write it like `1s` or `5m`, or unset {INTERVAL_ENV} for one summary a minute"
                ),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(rows: u64, transactions: u64, flushes: u64) -> PipelineStats {
        PipelineStats {
            rows,
            transactions,
            flushes,
            ..Default::default()
        }
    }

    #[test]
    fn a_summary_once_the_interval_has_passed_with_counts_since_the_last() {
        let mut s = Summary::new(Duration::from_secs(10));
        let t0 = s.last_at;
        assert_eq!(
            s.tick(t0 + Duration::from_secs(5), &stats(50, 5, 1), Lsn(100)),
            None
        );
        s.saw_server_end(Lsn(500));
        s.saw_server_end(Lsn(400));
        let first = s
            .tick(t0 + Duration::from_secs(10), &stats(100, 10, 2), Lsn(200))
            .unwrap();
        assert_eq!(
            (
                first.lag_bytes,
                first.rows,
                first.rows_per_sec,
                first.transactions,
                first.flushes
            ),
            (300, 100, 10.0, 10, 2)
        );
        assert_eq!((first.durable, first.server_wal_end), (Lsn(200), Lsn(500)));
        assert_eq!(
            s.tick(t0 + Duration::from_secs(15), &stats(150, 15, 3), Lsn(500)),
            None
        );
        let second = s
            .tick(t0 + Duration::from_secs(30), &stats(500, 12, 5), Lsn(600))
            .unwrap();
        assert_eq!(
            (
                second.lag_bytes,
                second.rows,
                second.rows_per_sec,
                second.transactions,
                second.flushes
            ),
            (0, 400, 20.0, 2, 3)
        );
        assert_eq!(
            second.server_wal_end,
            Lsn(600),
            "never reported below the durable position"
        );
    }

    #[test]
    fn before_the_first_flush_of_a_new_slot_the_lag_counts_from_the_first_reported_end() {
        let mut s = Summary::new(Duration::from_secs(1));
        let t0 = s.last_at;
        s.saw_server_end(Lsn(0x1000));
        s.saw_server_end(Lsn(0x1400));
        let line = s
            .tick(t0 + Duration::from_secs(1), &stats(0, 0, 0), Lsn::ZERO)
            .unwrap();
        assert_eq!(line.lag_bytes, 0x400);
        let line = s
            .tick(t0 + Duration::from_secs(2), &stats(0, 0, 1), Lsn(0x1400))
            .unwrap();
        assert_eq!(line.lag_bytes, 0);
    }

    #[test]
    fn the_interval_must_be_a_positive_duration() {
        assert_eq!(parse_interval("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_interval(" 5m ").unwrap(), Duration::from_secs(300));
        for bad in ["", "0s", "soon", "-1s"] {
            let e = parse_interval(bad).unwrap_err();
            assert!(
                e.message.contains(INTERVAL_ENV) && e.hint.is_some(),
                "{bad}: {e}"
            );
        }
    }
}
