//! `pgcdc dms status -c FILE [--json]`: the DMS task of the configuration (found by the
//! identifier [`Names::of`] gives it, as `apply` created it), its state and progress
//! (DescribeReplicationTasks), and DMS's per-table statistics (DescribeTableStatistics)
//! beside pgcdc's own counts for the same tables, with every difference marked.
//!
//! pgcdc's counts are the checkpoint's `counts` (rows written per table and operation since
//! the target was created: `L`, `I`, `U`, `D`) of the mirrored sink: the Parquet sink's
//! target, or the Kinesis sink's acknowledged position (`_pgcdc/sinks/kinesis-{stream}`).
//! DMS's `FullLoadRows`, `Inserts`, `Updates` and `Deletes` are compared with `L`, `I`, `U`
//! and `D`; a table one side does not know counts as zero there ([`compare`]).
//!
//! Needs no source connection. A task that does not exist is a runtime error (exit 1) with
//! the hint to run `pgcdc dms apply`; missing permissions are a configuration error (exit 2)
//! naming the IAM action ([`crate::dms::apply::dms_error`]). Differences do not change the
//! exit code (0): DMS and pgcdc are rarely at the same position at the same moment.

use std::collections::BTreeMap;

use aws_sdk_databasemigration::Client;
use serde::Serialize;

use crate::config::Config;
use crate::dms::apply::{describe_task, dms_error};
use crate::dms::names::Names;
use crate::dms::target::Target;
use crate::error::{Error, Result};
use crate::state::{Checkpoint, ProgressStore};

/// The compared row counts of one table on one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub full_load_rows: u64,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
}

impl Counts {
    /// The fields of [`Counts`] by their JSON names, in document order.
    fn fields(&self) -> [(&'static str, u64); 4] {
        [
            ("full_load_rows", self.full_load_rows),
            ("inserts", self.inserts),
            ("updates", self.updates),
            ("deletes", self.deletes),
        ]
    }

    /// pgcdc's counts of one table from a checkpoint's `{"L": n, "I": n, …}`.
    pub fn of_ops(ops: &BTreeMap<String, u64>) -> Counts {
        let n = |k: &str| ops.get(k).copied().unwrap_or(0);
        Counts {
            full_load_rows: n("L"),
            inserts: n("I"),
            updates: n("U"),
            deletes: n("D"),
        }
    }
}

/// DMS's statistics of one table (DescribeTableStatistics).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DmsTable {
    #[serde(flatten)]
    pub counts: Counts,
    pub ddls: i64,
    pub full_load_error_rows: i64,
    pub table_state: Option<String>,
    pub validation_state: Option<String>,
    pub validation_pending_records: i64,
    pub validation_failed_records: i64,
    pub validation_suspended_records: i64,
    /// RFC 3339.
    pub last_update_time: Option<String>,
}

/// One table of the report: both sides and the names of the counts that differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStatus {
    /// `schema.table`.
    pub table: String,
    /// `None` when DMS reports no statistics for the table.
    pub dms: Option<DmsTable>,
    /// `None` when pgcdc's checkpoint has no count for the table.
    pub pgcdc: Option<Counts>,
    /// Names of the [`Counts`] fields whose values differ (empty: the table agrees).
    pub differences: Vec<&'static str>,
}

/// The task's state (DescribeReplicationTasks).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskState {
    pub identifier: String,
    pub arn: String,
    pub status: String,
    pub migration_type: Option<String>,
    pub stop_reason: Option<String>,
    pub last_failure_message: Option<String>,
    pub full_load_progress_percent: Option<i32>,
    pub tables_loaded: Option<i32>,
    pub tables_loading: Option<i32>,
    pub tables_queued: Option<i32>,
    pub tables_errored: Option<i32>,
}

/// The whole report; its JSON form is `--json`'s document.
#[derive(Debug, Serialize)]
pub struct DmsStatus {
    pub task: TaskState,
    /// Where pgcdc's counts come from (`None`: pgcdc has not written a checkpoint yet).
    pub pgcdc_source: Option<String>,
    /// pgcdc's checkpoint time (RFC 3339), when there is one.
    pub pgcdc_written_at: Option<String>,
    pub tables: Vec<TableStatus>,
    /// True when any table has a difference.
    pub differs: bool,
}

/// Puts DMS's and pgcdc's tables side by side, sorted by name; a table missing on one side
/// is compared against zero counts. Pure: the unit of the marking rule.
pub fn compare(
    dms: Vec<(String, DmsTable)>,
    ours: &BTreeMap<String, BTreeMap<String, u64>>,
) -> Vec<TableStatus> {
    let mut by_name: BTreeMap<String, TableStatus> = BTreeMap::new();
    for (name, t) in dms {
        by_name.insert(
            name.clone(),
            TableStatus {
                table: name,
                dms: Some(t),
                pgcdc: None,
                differences: vec![],
            },
        );
    }
    for (name, ops) in ours {
        let e = by_name.entry(name.clone()).or_insert_with(|| TableStatus {
            table: name.clone(),
            dms: None,
            pgcdc: None,
            differences: vec![],
        });
        e.pgcdc = Some(Counts::of_ops(ops));
    }
    let mut out: Vec<TableStatus> = by_name.into_values().collect();
    for t in &mut out {
        let d = t.dms.as_ref().map(|d| d.counts).unwrap_or_default();
        let p = t.pgcdc.unwrap_or_default();
        t.differences = d
            .fields()
            .iter()
            .zip(p.fields())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((k, _), _)| *k)
            .collect();
    }
    out
}

/// Reads the task and the statistics from DMS and pgcdc's counts from its progress store.
pub async fn status(config: &Config) -> Result<DmsStatus> {
    let target = Target::of(config)?;
    let names = Names::of(config, target.kind());
    let dms = crate::dms::apply::client(config).await;
    let t = describe_task(&dms, ("replication-task-id", &names.task))
        .await?
        .ok_or_else(|| {
            Error::runtime(format!("DMS replication task {} does not exist", names.task))
                .with_hint("create it with `pgcdc dms apply -c FILE` (same configuration: the task's name comes from [dms] name or the database and slot)")
        })?;
    let stats = t.replication_task_stats();
    let task = TaskState {
        identifier: names.task.clone(),
        arn: t.replication_task_arn().unwrap_or_default().to_string(),
        status: t.status().unwrap_or("unknown").to_string(),
        migration_type: t.migration_type().map(|m| m.as_str().to_string()),
        stop_reason: t.stop_reason().map(String::from),
        last_failure_message: t.last_failure_message().map(String::from),
        full_load_progress_percent: stats.map(|s| s.full_load_progress_percent()),
        tables_loaded: stats.map(|s| s.tables_loaded()),
        tables_loading: stats.map(|s| s.tables_loading()),
        tables_queued: stats.map(|s| s.tables_queued()),
        tables_errored: stats.map(|s| s.tables_errored()),
    };
    let dms_tables = table_statistics(&dms, &task).await?;
    let (pgcdc_source, cp) = our_checkpoint(config, &target)?;
    let empty = BTreeMap::new();
    let tables = compare(dms_tables, cp.as_ref().map(|c| &c.counts).unwrap_or(&empty));
    Ok(DmsStatus {
        task,
        pgcdc_written_at: cp.as_ref().map(|c| c.written_at.clone()),
        pgcdc_source: cp.as_ref().map(|_| pgcdc_source),
        differs: tables.iter().any(|t| !t.differences.is_empty()),
        tables,
    })
}

/// Every page of DescribeTableStatistics of the task.
async fn table_statistics(dms: &Client, task: &TaskState) -> Result<Vec<(String, DmsTable)>> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = dms
            .describe_table_statistics()
            .replication_task_arn(&task.arn)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| dms_error("DescribeTableStatistics", &task.identifier, e))?;
        for s in page.table_statistics() {
            let n = |v: i64| v.max(0) as u64;
            let name = format!(
                "{}.{}",
                s.schema_name().unwrap_or_default(),
                s.table_name().unwrap_or_default()
            );
            out.push((
                name,
                DmsTable {
                    counts: Counts {
                        full_load_rows: n(s.full_load_rows()),
                        inserts: n(s.inserts()),
                        updates: n(s.updates()),
                        deletes: n(s.deletes()),
                    },
                    ddls: s.ddls(),
                    full_load_error_rows: s.full_load_error_rows(),
                    table_state: s.table_state().map(String::from),
                    validation_state: s.validation_state().map(String::from),
                    validation_pending_records: s.validation_pending_records(),
                    validation_failed_records: s.validation_failed_records(),
                    validation_suspended_records: s.validation_suspended_records(),
                    last_update_time: s.last_update_time().and_then(|d| {
                        d.fmt(aws_sdk_databasemigration::primitives::DateTimeFormat::DateTime)
                            .ok()
                    }),
                },
            ));
        }
        match page.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return Ok(out),
        }
    }
}

/// The checkpoint holding pgcdc's counts for the mirrored sink, and where it was read.
fn our_checkpoint(config: &Config, target: &Target) -> Result<(String, Option<Checkpoint>)> {
    match target {
        Target::S3 { sink, .. } => {
            let store = ProgressStore::at(std::sync::Arc::from(crate::storage::open_sink_target(
                config, sink,
            )?));
            Ok((store.storage().describe(), store.checkpoint()?))
        }
        Target::Kinesis { stream, .. } => {
            let store = ProgressStore::open(config)?;
            // The name the Kinesis sink stores its position under (an ARN's last part).
            let key = crate::sink::kinesis::stream::checkpoint_key(stream);
            let name = key
                .rsplit('/')
                .next()
                .unwrap_or(&key)
                .trim_end_matches(".json")
                .to_string();
            let cp = store
                .sink_positions()?
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| c);
            Ok((format!("{} ({name})", store.storage().describe()), cp))
        }
    }
}

/// The text report: the task, then one line per table with DMS's and pgcdc's counts as
/// `dms/pgcdc` and `*` before every count that differs.
pub fn render(s: &DmsStatus) -> String {
    let t = &s.task;
    let mut out = format!("replication task {}: {}", t.identifier, t.status);
    if let Some(m) = &t.migration_type {
        out += &format!(" ({m})");
    }
    out.push('\n');
    if let Some(r) = t.stop_reason.as_deref().filter(|r| !r.is_empty()) {
        out += &format!("  stop reason: {r}\n");
    }
    if let Some(m) = t.last_failure_message.as_deref().filter(|r| !r.is_empty()) {
        out += &format!("  last failure: {m}\n");
    }
    if let Some(p) = t.full_load_progress_percent {
        out += &format!(
            "  full load {p}%: {} table(s) loaded, {} loading, {} queued, {} errored\n",
            t.tables_loaded.unwrap_or(0),
            t.tables_loading.unwrap_or(0),
            t.tables_queued.unwrap_or(0),
            t.tables_errored.unwrap_or(0)
        );
    }
    match (&s.pgcdc_source, &s.pgcdc_written_at) {
        (Some(src), Some(at)) => out += &format!("pgcdc counts: {src} (checkpoint {at})\n"),
        _ => out += "pgcdc counts: none yet (pgcdc has written no checkpoint)\n",
    }
    let header = [
        "table",
        "full load",
        "inserts",
        "updates",
        "deletes",
        "state",
        "validation",
    ];
    let mut rows: Vec<[String; 7]> = vec![header.map(String::from)];
    for tb in &s.tables {
        let d = tb.dms.as_ref().map(|d| d.counts).unwrap_or_default();
        let p = tb.pgcdc.unwrap_or_default();
        let cell = |k: &str, a: u64, b: u64| {
            let mark = if tb.differences.contains(&k) { "*" } else { "" };
            format!("{mark}{a}/{b}")
        };
        let f = d.fields();
        let g = p.fields();
        let dash = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".into());
        rows.push([
            tb.table.clone(),
            cell(f[0].0, f[0].1, g[0].1),
            cell(f[1].0, f[1].1, g[1].1),
            cell(f[2].0, f[2].1, g[2].1),
            cell(f[3].0, f[3].1, g[3].1),
            dash(tb.dms.as_ref().and_then(|d| d.table_state.as_ref())),
            dash(tb.dms.as_ref().and_then(|d| d.validation_state.as_ref())),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    out += "counts are DMS/pgcdc; * marks a count that differs\n";
    let differing: Vec<&str> = s
        .tables
        .iter()
        .filter(|t| !t.differences.is_empty())
        .map(|t| t.table.as_str())
        .collect();
    if differing.is_empty() {
        out += "every table's counts agree\n";
    } else {
        out += &format!(
            "{} table(s) differ: {}\n",
            differing.len(),
            differing.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(v: &[(&str, u64)]) -> BTreeMap<String, u64> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    fn dms(full: u64, i: u64, u: u64, d: u64) -> DmsTable {
        DmsTable {
            counts: Counts {
                full_load_rows: full,
                inserts: i,
                updates: u,
                deletes: d,
            },
            ..Default::default()
        }
    }

    #[test]
    fn equal_counts_are_not_marked_and_differing_ones_are_named() {
        let ours = BTreeMap::from([
            (
                "public.a".to_string(),
                ops(&[("L", 3), ("I", 2), ("U", 1), ("D", 1), ("T", 1)]),
            ),
            ("public.b".to_string(), ops(&[("L", 1)])),
        ]);
        let out = compare(
            vec![
                ("public.b".into(), dms(1, 1, 0, 0)),
                ("public.a".into(), dms(3, 2, 1, 1)),
            ],
            &ours,
        );
        assert_eq!(
            out.iter().map(|t| t.table.as_str()).collect::<Vec<_>>(),
            ["public.a", "public.b"]
        );
        assert!(
            out[0].differences.is_empty(),
            "TRUNCATE (T) is not compared: {:?}",
            out[0]
        );
        assert_eq!(out[1].differences, ["inserts"]);
    }

    #[test]
    fn a_table_on_one_side_only_is_compared_with_zero() {
        let ours = BTreeMap::from([("public.ours".to_string(), ops(&[("I", 2)]))]);
        let out = compare(
            vec![
                ("public.theirs".into(), dms(5, 0, 0, 0)),
                ("public.idle".into(), dms(0, 0, 0, 0)),
            ],
            &ours,
        );
        let by = |n: &str| out.iter().find(|t| t.table == n).unwrap();
        assert_eq!(by("public.ours").differences, ["inserts"]);
        assert!(by("public.ours").dms.is_none());
        assert_eq!(by("public.theirs").differences, ["full_load_rows"]);
        assert!(by("public.theirs").pgcdc.is_none());
        assert!(
            by("public.idle").differences.is_empty(),
            "0 rows on both sides agree"
        );
    }

    #[test]
    fn the_text_marks_differing_counts_and_names_the_tables() {
        let ours = BTreeMap::from([("public.a".to_string(), ops(&[("L", 3), ("D", 2)]))]);
        let s = DmsStatus {
            task: TaskState {
                identifier: "t-task".into(),
                status: "running".into(),
                ..Default::default()
            },
            pgcdc_source: Some("/out".into()),
            pgcdc_written_at: Some("2026-01-01T00:00:00Z".into()),
            tables: compare(vec![("public.a".into(), dms(3, 0, 0, 1))], &ours),
            differs: true,
        };
        let text = render(&s);
        assert!(text.contains("replication task t-task: running"), "{text}");
        assert!(
            text.contains("public.a  3/3") && text.contains("*1/2"),
            "{text}"
        );
        assert!(text.contains("1 table(s) differ: public.a"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json["tables"][0]["differences"],
            serde_json::json!(["deletes"])
        );
        assert_eq!(json["tables"][0]["dms"]["full_load_rows"], 3);
        assert_eq!(json["tables"][0]["pgcdc"]["deletes"], 2);
    }
}
