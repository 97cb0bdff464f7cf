//! What `/healthz` decides, from facts the run reports (see [`super`]): pure state and
//! rules, no clock or I/O of its own, so that the rules are tested with chosen instants.
//!
//! Unhealthy, in this order of precedence (the first that holds is the one-line reason):
//!
//! 1. the source is unreachable: `run` lost it and is reconnecting ([`Health::source_lost`]);
//! 2. a sink has been failing — retrying S3 or Kinesis requests without a success — for
//!    longer than `max_sink_failing`;
//! 3. WAL has waited past the durable position for longer than `max_durable_age` without
//!    the durable position moving (an idle source with nothing past the durable position is
//!    healthy however long it stays idle);
//! 4. the lag passes `max_lag_bytes` or `max_lag` (when set).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::MetricsConfig;
use crate::model::Lsn;

/// The limits of `[metrics]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_durable_age: Duration,
    pub max_lag_bytes: Option<u64>,
    pub max_lag: Option<Duration>,
    pub max_sink_failing: Duration,
}

impl Limits {
    pub fn from_config(c: &MetricsConfig) -> Limits {
        Limits {
            max_durable_age: c.max_durable_age,
            max_lag_bytes: c.max_lag_bytes,
            max_lag: c.max_lag,
            max_sink_failing: c.max_sink_failing,
        }
    }
}

/// The facts health is decided from; see the module documentation.
#[derive(Debug)]
pub struct Health {
    /// Since when the source is lost, and why.
    source_lost: Option<(Instant, String)>,
    /// Sinks failing now: since when, and the last error.
    failing: BTreeMap<String, (Instant, String)>,
    durable: Lsn,
    received: Lsn,
    lag_bytes: u64,
    /// When the durable position last moved (or health started).
    pub durable_moved_at: Instant,
    /// Since when WAL waits past the durable position without it moving; `None` when caught up.
    behind_since: Option<Instant>,
}

impl Health {
    pub fn new(now: Instant) -> Health {
        Health {
            source_lost: None,
            failing: BTreeMap::new(),
            durable: Lsn::ZERO,
            received: Lsn::ZERO,
            lag_bytes: 0,
            durable_moved_at: now,
            behind_since: None,
        }
    }

    /// The source went away; `run` is reconnecting. Kept until [`Health::source_back`].
    pub fn source_lost(&mut self, now: Instant, why: &str) {
        if self.source_lost.is_none() {
            self.source_lost = Some((now, why.to_string()));
        }
    }

    pub fn source_back(&mut self) {
        self.source_lost = None;
    }

    pub fn is_source_lost(&self) -> bool {
        self.source_lost.is_some()
    }

    /// A request of `sink` failed and will be retried.
    pub fn sink_failed(&mut self, now: Instant, sink: &str, why: &str) {
        match self.failing.get_mut(sink) {
            Some(f) => f.1 = why.to_string(),
            None => {
                self.failing
                    .insert(sink.to_string(), (now, why.to_string()));
            }
        }
    }

    /// A request of `sink` succeeded after failures.
    pub fn sink_recovered(&mut self, sink: &str) {
        self.failing.remove(sink);
    }

    /// The positions of the stream, about once a second: the highest WAL end the server
    /// reported, the durable position and the lag in bytes between them.
    pub fn positions(&mut self, now: Instant, received: Lsn, durable: Lsn, lag_bytes: u64) {
        let moved = durable > self.durable;
        if moved {
            self.durable = durable;
            self.durable_moved_at = now;
        }
        self.received = self.received.max(received);
        self.lag_bytes = lag_bytes;
        let behind = lag_bytes > 0;
        self.behind_since = match (behind, self.behind_since) {
            (false, _) => None,
            (true, _) if moved => Some(now),
            (true, None) => Some(now),
            (true, Some(since)) => Some(since),
        };
    }

    /// How long WAL has waited past the durable position without it moving.
    pub fn stalled_for(&self, now: Instant) -> Duration {
        self.behind_since
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    /// `Ok` when healthy, else the one-line reason (module documentation).
    pub fn verdict(&self, now: Instant, lag_seconds: f64, limits: &Limits) -> Result<(), String> {
        let age = |since: Instant| {
            humantime::format_duration(Duration::from_secs(
                now.saturating_duration_since(since).as_secs(),
            ))
        };
        if let Some((since, why)) = &self.source_lost {
            return Err(format!(
                "source unreachable for {} (reconnecting): {why}",
                age(*since)
            ));
        }
        for (sink, (since, why)) in &self.failing {
            if now.saturating_duration_since(*since) > limits.max_sink_failing {
                return Err(format!("sink {sink} failing for {}: {why}", age(*since)));
            }
        }
        let stalled = self.stalled_for(now);
        if stalled > limits.max_durable_age {
            return Err(format!(
                "nothing became durable for {} (limit max_durable_age = {}) while {} bytes of WAL wait past {}",
                humantime::format_duration(Duration::from_secs(stalled.as_secs())),
                humantime::format_duration(limits.max_durable_age),
                self.lag_bytes,
                self.durable
            ));
        }
        if let Some(max) = limits.max_lag_bytes.filter(|m| self.lag_bytes > *m) {
            return Err(format!(
                "lag {} bytes is over max_lag_bytes = {max}",
                self.lag_bytes
            ));
        }
        if let Some(max) = limits.max_lag.filter(|m| lag_seconds > m.as_secs_f64()) {
            return Err(format!(
                "lag {lag_seconds:.0}s is over max_lag = {}",
                humantime::format_duration(max)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_durable_age: Duration::from_secs(60),
            max_lag_bytes: Some(1000),
            max_lag: Some(Duration::from_secs(30)),
            max_sink_failing: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_lost_source_is_unhealthy_until_it_is_back() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        assert_eq!(h.verdict(t0, 0.0, &limits()), Ok(()));
        h.source_lost(t0, "connection refused");
        let why = h
            .verdict(t0 + Duration::from_secs(3), 0.0, &limits())
            .unwrap_err();
        assert_eq!(
            why,
            "source unreachable for 3s (reconnecting): connection refused"
        );
        h.source_back();
        assert_eq!(
            h.verdict(t0 + Duration::from_secs(4), 0.0, &limits()),
            Ok(())
        );
    }

    #[test]
    fn a_sink_is_unhealthy_only_once_it_failed_longer_than_the_limit() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        h.sink_failed(t0, "s3://b/p/", "SlowDown");
        h.sink_failed(t0 + Duration::from_secs(5), "s3://b/p/", "HTTP 500");
        assert_eq!(
            h.verdict(t0 + Duration::from_secs(10), 0.0, &limits()),
            Ok(())
        );
        let why = h
            .verdict(t0 + Duration::from_secs(11), 0.0, &limits())
            .unwrap_err();
        assert_eq!(why, "sink s3://b/p/ failing for 11s: HTTP 500");
        h.sink_recovered("s3://b/p/");
        assert_eq!(
            h.verdict(t0 + Duration::from_secs(12), 0.0, &limits()),
            Ok(())
        );
    }

    #[test]
    fn durable_age_counts_only_while_wal_waits_past_the_durable_position() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut h = Health::new(t0);
        // Idle: nothing past the durable position, however long.
        h.positions(t0 + s(100), Lsn(10), Lsn(10), 0);
        assert_eq!(h.verdict(t0 + s(500), 0.0, &limits()), Ok(()));
        // WAL waits from 500 s; the durable position moves at 540 s and work still waits.
        h.positions(t0 + s(500), Lsn(20), Lsn(10), 10);
        h.positions(t0 + s(540), Lsn(30), Lsn(20), 10);
        assert_eq!(h.stalled_for(t0 + s(560)), s(20));
        assert_eq!(h.verdict(t0 + s(600), 0.0, &limits()), Ok(()));
        let why = h.verdict(t0 + s(601), 0.0, &limits()).unwrap_err();
        assert!(
            why.starts_with("nothing became durable for 1m 1s (limit max_durable_age = 1m)"),
            "{why}"
        );
        h.positions(t0 + s(602), Lsn(30), Lsn(30), 0);
        assert_eq!(h.verdict(t0 + s(700), 0.0, &limits()), Ok(()));
        assert_eq!(h.durable_moved_at, t0 + s(602));
    }

    #[test]
    fn lag_limits() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        h.positions(t0, Lsn(5000), Lsn(3000), 2000);
        assert_eq!(
            h.verdict(t0, 0.0, &limits()).unwrap_err(),
            "lag 2000 bytes is over max_lag_bytes = 1000"
        );
        h.positions(t0, Lsn(5000), Lsn(4500), 500);
        assert_eq!(
            h.verdict(t0, 31.0, &limits()).unwrap_err(),
            "lag 31s is over max_lag = 30s"
        );
        assert_eq!(h.verdict(t0, 30.0, &limits()), Ok(()));
        let off = Limits {
            max_lag_bytes: None,
            max_lag: None,
            ..limits()
        };
        h.positions(t0, Lsn(50000), Lsn(4500), 45500);
        assert_eq!(h.verdict(t0, 1e6, &off), Ok(()));
    }
}
