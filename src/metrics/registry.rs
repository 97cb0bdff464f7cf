//! The Prometheus registry of `pgcdc run`: every metric, its name, help and labels, and the
//! text exposition (format 0.0.4) of [`Registry::encode`].
//!
//! Names follow Prometheus conventions: the `pgcdc_` prefix, the unit in the name
//! (`_bytes`, `_seconds`), `_total` on counters (added by the encoder). Labels: `table`
//! (`schema.table` of the source), `op` (`insert`, `update`, `delete`, `truncate`), `sink`
//! (see [`super::sink_label`]), `status` (a slot's `wal_status`). The README's
//! "Operations" section lists them with their meaning; keep the two in step.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry as PromRegistry;

/// One label.
pub type Label1 = [(&'static str, String); 1];
/// Two labels.
pub type Label2 = [(&'static str, String); 2];
/// A gauge holding a u64 (positions, byte counts).
pub type GaugeU64 = Gauge<u64, AtomicU64>;
/// A gauge holding seconds.
pub type GaugeF64 = Gauge<f64, AtomicU64>;

/// The sink flush histogram's buckets: 5 ms doubling to about 82 s.
#[derive(Clone)]
pub struct FlushBuckets;

impl MetricConstructor<Histogram> for FlushBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.005, 2.0, 15))
    }
}

/// Every metric; cloned handles share their values with the registry.
pub struct Registry {
    registry: PromRegistry,
    pub source_lag_bytes: GaugeU64,
    pub source_lag_seconds: GaugeF64,
    pub source_received_lsn: GaugeU64,
    pub source_confirmed_lsn: GaugeU64,
    pub source_up: Gauge<i64, AtomicI64>,
    pub source_reconnects: Counter,
    pub slot_retained_wal_bytes: GaugeU64,
    pub slot_safe_wal_size_bytes: Family<Vec<(&'static str, String)>, Gauge<i64, AtomicI64>>,
    pub slot_wal_status: Family<Label1, Gauge<i64, AtomicI64>>,
    pub changes: Family<Label2, Counter>,
    pub transactions: Counter,
    pub streamed_transactions: Counter,
    pub streamed_transactions_aborted: Counter,
    pub spill_bytes: Counter,
    pub sink_flush_seconds: Family<Label1, Histogram, FlushBuckets>,
    pub sink_errors: Family<Label1, Counter>,
    pub dead_letters: Family<Label1, Counter>,
    pub full_load_rows: Family<Label1, Counter>,
    pub full_load_bytes: Family<Label1, Counter>,
    pub full_load_table_bytes: Family<Label1, GaugeU64>,
    pub durable_flush_age_seconds: GaugeF64,
    pub durable_stalled_seconds: GaugeF64,
    pub resident_memory_bytes: GaugeU64,
    pub healthy: Gauge<i64, AtomicI64>,
}

impl Registry {
    /// Registers every metric under the `pgcdc_` prefix.
    pub fn new() -> Registry {
        let mut r = PromRegistry::with_prefix("pgcdc");
        let m = Registry {
            registry: PromRegistry::default(),
            source_lag_bytes: Default::default(),
            source_lag_seconds: Default::default(),
            source_received_lsn: Default::default(),
            source_confirmed_lsn: Default::default(),
            source_up: Default::default(),
            source_reconnects: Default::default(),
            slot_retained_wal_bytes: Default::default(),
            slot_safe_wal_size_bytes: Default::default(),
            slot_wal_status: Default::default(),
            changes: Default::default(),
            transactions: Default::default(),
            streamed_transactions: Default::default(),
            streamed_transactions_aborted: Default::default(),
            spill_bytes: Default::default(),
            sink_flush_seconds: Family::new_with_constructor(FlushBuckets),
            sink_errors: Default::default(),
            dead_letters: Default::default(),
            full_load_rows: Default::default(),
            full_load_bytes: Default::default(),
            full_load_table_bytes: Default::default(),
            durable_flush_age_seconds: Default::default(),
            durable_stalled_seconds: Default::default(),
            resident_memory_bytes: Default::default(),
            healthy: Default::default(),
        };
        r.register(
            "source_lag_bytes",
            "WAL the server reported past the confirmed (durable) position",
            m.source_lag_bytes.clone(),
        );
        r.register("source_lag_seconds", "Age of the oldest committed transaction not yet durable in every sink; 0 when none waits", m.source_lag_seconds.clone());
        r.register(
            "source_received_lsn",
            "Highest WAL position the server reported (data or keepalive), as a number",
            m.source_received_lsn.clone(),
        );
        r.register(
            "source_confirmed_lsn",
            "Position durable in every sink and confirmed to the slot, as a number",
            m.source_confirmed_lsn.clone(),
        );
        r.register(
            "source_up",
            "1 while the source is reachable, 0 while pgcdc is reconnecting to it",
            m.source_up.clone(),
        );
        r.register(
            "source_reconnects",
            "Times the source was lost and pgcdc began reconnecting",
            m.source_reconnects.clone(),
        );
        r.register(
            "slot_retained_wal_bytes",
            "WAL the replication slot keeps on the server (pg_current_wal_lsn - restart_lsn)",
            m.slot_retained_wal_bytes.clone(),
        );
        r.register("slot_safe_wal_size_bytes", "pg_replication_slots.safe_wal_size: WAL that can still be written before the slot is lost (absent without max_slot_wal_keep_size)", m.slot_safe_wal_size_bytes.clone());
        r.register("slot_wal_status", "1 for the slot's current pg_replication_slots.wal_status (reserved, extended, unreserved, lost)", m.slot_wal_status.clone());
        r.register("changes", "Change rows decoded per source table and operation (an update of the key counts as a delete and an insert)", m.changes.clone());
        r.register(
            "transactions",
            "Committed transactions decoded",
            m.transactions.clone(),
        );
        r.register(
            "streamed_transactions",
            "Committed transactions the server streamed in progress (pgoutput streaming)",
            m.streamed_transactions.clone(),
        );
        r.register(
            "streamed_transactions_aborted",
            "Streamed transactions that aborted",
            m.streamed_transactions_aborted.clone(),
        );
        r.register(
            "spill_bytes",
            "Bytes of streamed transactions written to the local spill directory",
            m.spill_bytes.clone(),
        );
        r.register(
            "sink_flush_duration_seconds",
            "Time a sink flush took (Parquet: until durable; Kinesis: until handed to the sender)",
            m.sink_flush_seconds.clone(),
        );
        r.register(
            "sink_errors",
            "Failed sink writes: each retried S3 or Kinesis request, and each failed flush",
            m.sink_errors.clone(),
        );
        r.register(
            "dead_letters",
            "Changes written to the dead-letter location, per source table",
            m.dead_letters.clone(),
        );
        r.register(
            "full_load_rows",
            "Rows read by the full load (and reloads), per table",
            m.full_load_rows.clone(),
        );
        r.register(
            "full_load_bytes",
            "Bytes read by the full load (and reloads), per table",
            m.full_load_bytes.clone(),
        );
        r.register(
            "full_load_table_bytes",
            "Estimated size of each table the full load copies (its relation size)",
            m.full_load_table_bytes.clone(),
        );
        r.register(
            "durable_flush_age_seconds",
            "Seconds since the confirmed (durable) position last moved",
            m.durable_flush_age_seconds.clone(),
        );
        r.register("durable_stalled_seconds", "Seconds WAL has waited past the durable position without it moving; 0 when caught up (compared with max_durable_age)", m.durable_stalled_seconds.clone());
        r.register(
            "resident_memory_bytes",
            "Resident memory of the pgcdc process",
            m.resident_memory_bytes.clone(),
        );
        r.register(
            "healthy",
            "1 while /healthz answers 200, else 0",
            m.healthy.clone(),
        );
        Registry { registry: r, ..m }
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_prefix_units_and_total() {
        let r = Registry::new();
        r.transactions.inc();
        r.changes
            .get_or_create(&[("table", "public.t".into()), ("op", "insert".into())])
            .inc_by(3);
        r.sink_flush_seconds
            .get_or_create(&[("sink", "file:///x".into())])
            .observe(0.02);
        let text = r.encode();
        for want in [
            "# TYPE pgcdc_transactions_total counter\npgcdc_transactions_total 1\n",
            "pgcdc_changes_total{table=\"public.t\",op=\"insert\"} 3\n",
            "pgcdc_sink_flush_duration_seconds_bucket{sink=\"file:///x\",le=\"0.04\"} 1\n",
            "pgcdc_sink_flush_duration_seconds_count{sink=\"file:///x\"} 1\n",
            "# TYPE pgcdc_source_lag_bytes gauge\npgcdc_source_lag_bytes 0\n",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
        assert!(!text.contains("# EOF"), "0.0.4, not OpenMetrics");
    }
}
