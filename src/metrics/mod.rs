//! Metrics and health of `pgcdc run` (SPEC 8, issue 11): `[metrics] listen` serves
//! `/metrics` (Prometheus text format 0.0.4) and `/healthz` ([`server`]).
//!
//! A leaf module: the pipeline, the full load and the sinks call the small recorder
//! functions below where the facts are known; nothing here calls back into them. Until
//! [`serve`] has started the server (only `run` with a `[metrics]` section does), every
//! recorder returns at once, so a run without `[metrics]` pays one atomic load per call.
//!
//! Recorders are cheap enough for the hot path: [`change`] (once per output row) is a
//! lookup by relation OID in a small map and an atomic add; everything else is called per
//! transaction, per flush, per batch or per second. Values that depend on the time of the
//! scrape (lag in seconds, durable age, resident memory, health) are computed when
//! `/metrics` or `/healthz` is asked.
//!
//! The crates: `prometheus-client` (the official Prometheus Rust client: a registry,
//! counters, gauges, histograms and the 0.0.4 text encoder; three small crates) and hyper's
//! server half (hyper 1 is already built for the AWS SDK). See the README, "Operations".

mod health;
mod lag;
mod registry;
mod server;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use self::health::Health;
pub use self::health::Limits;
use self::lag::LagClock;
use self::registry::Registry;
pub use self::server::{serve, MetricsServer};
use crate::model::{Lsn, RowOp, TableSchema};

/// The metrics of this process, once [`serve`] started the server.
static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Every metric and the facts health is decided from.
pub struct Metrics {
    registry: Registry,
    limits: Limits,
    health: Mutex<Health>,
    lag: Mutex<LagClock>,
    /// Per relation OID: its `schema`, `name` and counters by [`op_index`].
    changes: Mutex<HashMap<u32, TableCounters>>,
}

struct TableCounters {
    schema: String,
    name: String,
    ops: [Option<Counter>; 5],
}

fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Whether metrics are being served (recorders do nothing otherwise).
pub fn enabled() -> bool {
    get().is_some()
}

/// Installs `metrics` as this process's metrics; false when some already are.
fn install(metrics: Metrics) -> bool {
    METRICS.set(metrics).is_ok()
}

impl Metrics {
    pub fn new(limits: Limits) -> Metrics {
        let registry = Registry::new();
        registry.source_up.set(1);
        Metrics {
            registry,
            limits,
            health: Mutex::new(Health::new(Instant::now())),
            lag: Mutex::new(LagClock::default()),
            changes: Mutex::new(HashMap::new()),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lag(&self) -> std::sync::MutexGuard<'_, LagClock> {
        self.lag.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Updates the values that depend on the time of asking, then decides health: `Ok`
    /// or the one-line reason (see [`health`]).
    pub fn refresh(&self) -> Result<(), String> {
        let now = Instant::now();
        let lag_seconds = self.lag().lag_seconds(now_unix_micros());
        let r = &self.registry;
        r.source_lag_seconds.set(lag_seconds);
        if let Some(rss) = resident_memory_bytes() {
            r.resident_memory_bytes.set(rss);
        }
        let health = self.health();
        r.durable_flush_age_seconds
            .set(secs(now.saturating_duration_since(health.durable_moved_at)));
        r.durable_stalled_seconds.set(secs(health.stalled_for(now)));
        let verdict = health.verdict(now, lag_seconds, &self.limits);
        r.healthy.set(verdict.is_ok() as i64);
        verdict
    }

    /// The exposition text of every metric, refreshed now.
    pub fn exposition(&self) -> String {
        let _ = self.refresh();
        self.registry.encode()
    }

    fn change(&self, table: &TableSchema, op: RowOp, n: u64) {
        let mut map = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(table.relid).or_insert_with(|| TableCounters {
            schema: table.schema.clone(),
            name: table.name.clone(),
            ops: Default::default(),
        });
        if entry.schema != table.schema || entry.name != table.name {
            // Renamed (or the OID reused): counted under the new name from now on.
            *entry = TableCounters {
                schema: table.schema.clone(),
                name: table.name.clone(),
                ops: Default::default(),
            };
        }
        let i = op_index(op);
        let counter = entry.ops[i].get_or_insert_with(|| {
            let labels = [
                ("table", format!("{}.{}", table.schema, table.name)),
                ("op", op_label(op).to_string()),
            ];
            self.registry.changes.get_or_create_owned(&labels)
        });
        counter.inc_by(n);
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_millis() as f64 / 1000.0 * 10.0).round() / 10.0
}

fn now_unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The resident set of this process, from `/proc/self/statm` (Linux); `None` elsewhere.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096))
}

fn op_index(op: RowOp) -> usize {
    match op {
        RowOp::Insert => 0,
        RowOp::Update => 1,
        RowOp::Delete => 2,
        RowOp::Truncate => 3,
        RowOp::Load => 4,
    }
}

/// The `op` label of a change row.
pub fn op_label(op: RowOp) -> &'static str {
    match op {
        RowOp::Insert => "insert",
        RowOp::Update => "update",
        RowOp::Delete => "delete",
        RowOp::Truncate => "truncate",
        RowOp::Load => "load",
    }
}

/// The `sink` label of a sink named as logs name it ([`crate::sink::Sink::describe`]): a
/// Parquet sink is its location (`file:///…`, `s3://bucket/prefix/`, the name S3 request
/// failures are recorded under), a Kinesis sink `kinesis STREAM`.
pub fn sink_label(describe: &str) -> &str {
    describe.strip_prefix("parquet ").unwrap_or(describe)
}

// ---- Recorders: called where the facts are known; no-ops without `[metrics]`. ----

/// The pipeline emitted one output row of `table` (a change, not a loaded row).
pub fn change(table: &TableSchema, op: RowOp) {
    changes(table, op, 1);
}

/// `n` row changes of one operation at once (a staged streamed transaction's).
pub fn changes(table: &TableSchema, op: RowOp, n: u64) {
    if let Some(m) = get() {
        m.change(table, op, n);
    }
}

/// The pipeline committed a transaction (streamed or not) with this commit time (Unix µs).
pub fn transaction(commit_ts_us: i64) {
    if let Some(m) = get() {
        m.registry.transactions.inc();
        m.lag().committed(commit_ts_us);
    }
}

/// A streamed (in-progress) transaction committed; [`transaction`] is called too.
pub fn streamed_transaction() {
    if let Some(m) = get() {
        m.registry.streamed_transactions.inc();
    }
}

/// A streamed transaction aborted.
pub fn streamed_transaction_aborted() {
    if let Some(m) = get() {
        m.registry.streamed_transactions_aborted.inc();
    }
}

/// `bytes` of a streamed transaction were written to the spill directory.
pub fn spilled(bytes: usize) {
    if let Some(m) = get() {
        m.registry.spill_bytes.inc_by(bytes as u64);
    }
}

/// Runs `flush` (a sink's flush), recording its duration under `sink` (as
/// [`crate::sink::Sink::describe`] names it) and an error when it fails.
pub fn timed_flush<T, E>(sink: &str, flush: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let Some(m) = get() else { return flush() };
    let started = Instant::now();
    let result = flush();
    let labels = [("sink", sink_label(sink).to_string())];
    m.registry
        .sink_flush_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        m.registry.sink_errors.get_or_create(&labels).inc();
    }
    result
}

/// Everything committed so far was handed to every sink up to `end` (a flush).
pub fn handed_over(end: Lsn) {
    if let Some(m) = get() {
        m.lag().handed_over(end);
    }
}

/// The stream's positions, about once a second: the highest WAL end the server reported,
/// the durable (confirmed) position and the lag in bytes between them (as the periodic
/// summary computes it, `crate::pipeline::summary`).
pub fn positions(received: Lsn, durable: Lsn, lag_bytes: u64) {
    if let Some(m) = get() {
        let r = &m.registry;
        r.source_received_lsn.set(received.max(durable).0);
        r.source_confirmed_lsn.set(durable.0);
        r.source_lag_bytes.set(lag_bytes);
        m.lag().durable(durable);
        m.health()
            .positions(Instant::now(), received, durable, lag_bytes);
    }
}

/// A request to `sink` (a location such as `s3://bucket/prefix/`, or `kinesis STREAM`)
/// failed and will be retried; `why` is the error, without secrets.
pub fn sink_failed(sink: &str, why: &str) {
    if let Some(m) = get() {
        let sink = sink_label(sink);
        m.registry
            .sink_errors
            .get_or_create(&[("sink", sink.to_string())])
            .inc();
        m.health().sink_failed(Instant::now(), sink, why);
    }
}

/// A request to `sink` succeeded after [`sink_failed`].
pub fn sink_recovered(sink: &str) {
    if let Some(m) = get() {
        m.health().sink_recovered(sink_label(sink));
    }
}

/// `run` lost the source and is reconnecting; `why` is the error that ended the attempt.
pub fn source_lost(why: &str) {
    if let Some(m) = get() {
        let mut h = m.health();
        if !h.is_source_lost() {
            m.registry.source_reconnects.inc();
        }
        h.source_lost(Instant::now(), why);
        m.registry.source_up.set(0);
    }
}

/// The source answers again.
pub fn source_back() {
    if let Some(m) = get() {
        m.health().source_back();
        m.registry.source_up.set(1);
    }
}

/// The replication slot as last read: WAL it retains, `safe_wal_size` (`None` without
/// `max_slot_wal_keep_size`) and `wal_status`.
pub fn slot(retained_bytes: Option<u64>, safe_wal_size: Option<i64>, wal_status: Option<&str>) {
    if let Some(m) = get() {
        let r = &m.registry;
        if let Some(b) = retained_bytes {
            r.slot_retained_wal_bytes.set(b);
        }
        match safe_wal_size {
            Some(s) => {
                r.slot_safe_wal_size_bytes.get_or_create(&Vec::new()).set(s);
            }
            None => r.slot_safe_wal_size_bytes.clear(),
        }
        r.slot_wal_status.clear();
        if let Some(s) = wal_status {
            r.slot_wal_status
                .get_or_create(&[("status", s.to_string())])
                .set(1);
        }
    }
}

/// A change of `table` (`schema.table`) went to the dead-letter location.
pub fn dead_letter(table: &str) {
    if let Some(m) = get() {
        m.registry
            .dead_letters
            .get_or_create(&[("table", table.to_string())])
            .inc();
    }
}

/// The full load (or a reload) will copy `table`, about `bytes` large.
pub fn load_planned(table: &str, bytes: u64) {
    if let Some(m) = get() {
        m.registry
            .full_load_table_bytes
            .get_or_create(&[("table", table.to_string())])
            .set(bytes);
    }
}

/// The full load (or a reload) read `rows` rows, `bytes` bytes of `table`.
pub fn loaded(table: &str, rows: u64, bytes: u64) {
    if let Some(m) = get() {
        let labels = [("table", table.to_string())];
        m.registry
            .full_load_rows
            .get_or_create(&labels)
            .inc_by(rows);
        m.registry
            .full_load_bytes
            .get_or_create(&labels)
            .inc_by(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_durable_age: Duration::from_secs(300),
            max_lag_bytes: None,
            max_lag: None,
            max_sink_failing: Duration::from_secs(60),
        }
    }

    fn table(relid: u32, schema: &str, name: &str) -> TableSchema {
        TableSchema {
            relid,
            schema: schema.into(),
            name: name.into(),
            columns: vec![],
            key: vec![],
            replica_identity: b'd',
            relfilenode: None,
        }
    }

    #[test]
    fn changes_are_counted_per_table_and_op_and_follow_renames() {
        let m = Metrics::new(limits());
        let t = table(1, "public", "t");
        for _ in 0..3 {
            m.change(&t, RowOp::Insert, 1);
        }
        m.change(&t, RowOp::Delete, 1);
        m.change(&table(1, "public", "t2"), RowOp::Insert, 1);
        let text = m.exposition();
        assert!(
            text.contains("pgcdc_changes_total{table=\"public.t\",op=\"insert\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("pgcdc_changes_total{table=\"public.t\",op=\"delete\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pgcdc_changes_total{table=\"public.t2\",op=\"insert\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("pgcdc_healthy 1\n"), "{text}");
        assert!(text.contains("pgcdc_source_up 1\n"), "{text}");
        assert!(!text.contains("pgcdc_resident_memory_bytes 0\n"), "{text}");
    }

    #[test]
    fn labels() {
        assert_eq!(sink_label("parquet s3://b/p/"), "s3://b/p/");
        assert_eq!(sink_label("parquet file:///x"), "file:///x");
        assert_eq!(sink_label("kinesis orders"), "kinesis orders");
        assert_eq!(op_label(RowOp::Truncate), "truncate");
    }
}
