//! The compute and the task: `create-replication-instance` and `create-replication-task`
//! documents, the task's settings, and the LOB size chosen from the source's largest values.
//!
//! Compute is a provisioned replication instance, not a serverless replication config: a
//! companion run beside pgcdc wants a fixed, known capacity (throughput and cost compared
//! like for like, no capacity scaling in the middle of a comparison), and instances are
//! what every DMS API answers for (including the local endpoints tests run against).

use serde_json::{json, Value};

use super::placeholders::{REPLICATION_INSTANCE_ARN, SOURCE_ENDPOINT_ARN, TARGET_ENDPOINT_ARN};
use super::source_facts::TableFacts;
use crate::config::{Config, Mode};
use crate::dms::names::Names;
use crate::dms::target::Target;

/// DMS's default `LobMaxSize` (KiB), the least pgcdc chooses.
pub const MIN_LOB_KIB: u64 = 32;
/// The largest `LobMaxSize` (KiB) pgcdc chooses for S3: 100 MiB. DMS's S3 target has
/// limited LOB mode only, so larger values are truncated whatever is set.
pub const MAX_LOB_KIB: u64 = 100 * 1024;
/// For Kinesis: a record is at most 1 MiB, so a larger LOB can never arrive whole.
pub const MAX_KINESIS_LOB_KIB: u64 = 1024;

/// A column whose largest value is larger than the chosen LOB size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRisk {
    pub table: String,
    pub column: String,
    pub largest: i64,
}

/// The LOB settings and what they leave at risk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LobSizing {
    /// `LobMaxSize`, KiB.
    pub max_kib: u64,
    /// The largest LOB value of the source: (table, column, bytes).
    pub largest: Option<(String, String, i64)>,
    /// Columns with a value larger than `max_kib`, largest first.
    pub at_risk: Vec<AtRisk>,
}

/// Sizes limited LOB mode from the largest values: the largest value plus a quarter of
/// headroom, rounded up to a power of two KiB, at least [`MIN_LOB_KIB`], at most the
/// target's limit and `cap` (`[dms] lob_max_size`, bytes). Columns whose largest value
/// exceeds the result are named in [`LobSizing::at_risk`].
pub fn size_lobs(tables: &[TableFacts], cap: Option<u64>, kinesis: bool) -> LobSizing {
    let mut all: Vec<(String, String, i64)> = tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter_map(move |c| c.largest.map(|l| (t.qualified(), c.name.clone(), l)))
        })
        .collect();
    all.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
    let largest = all.first().cloned();
    let wanted = largest
        .as_ref()
        .map(|l| {
            (l.2 as u64 + l.2 as u64 / 4)
                .div_ceil(1024)
                .next_power_of_two()
        })
        .unwrap_or(0);
    let limit = if kinesis {
        MAX_KINESIS_LOB_KIB
    } else {
        MAX_LOB_KIB
    };
    let limit = cap
        .map(|c| (c / 1024).max(1))
        .map_or(limit, |c| c.min(limit));
    let max_kib = wanted.max(MIN_LOB_KIB).min(limit);
    let at_risk = all
        .into_iter()
        .filter(|(_, _, l)| *l as u64 > max_kib * 1024)
        .map(|(table, column, largest)| AtRisk {
            table,
            column,
            largest,
        })
        .collect();
    LobSizing {
        max_kib,
        largest,
        at_risk,
    }
}

/// `MigrationType` of `mode`.
pub fn migration_type(mode: Mode) -> &'static str {
    match mode {
        Mode::FullLoad => "full-load",
        Mode::Cdc => "cdc",
        Mode::FullLoadAndCdc => "full-load-and-cdc",
    }
}

/// The replication instance: `[dms] instance_class` (default `dms.t3.medium`) and
/// `allocated_storage` (default 50 GiB), single-AZ, not public.
pub fn instance(config: &Config, names: &Names) -> Value {
    let dms = config.dms.clone().unwrap_or_default();
    json!({
        "ReplicationInstanceIdentifier": names.instance,
        "ReplicationInstanceClass": dms.instance_class.unwrap_or_else(|| "dms.t3.medium".into()),
        "AllocatedStorage": dms.allocated_storage.unwrap_or(50),
        "MultiAZ": false,
        "PubliclyAccessible": false,
        "AutoMinorVersionUpgrade": true,
        "Tags": [{"Key": "created-by", "Value": "pgcdc"}],
    })
}

/// The task settings: limited LOB mode of `lobs`; a restarted full load replaces DMS's own
/// files (`DROP_AND_CREATE`: its folder is its own); DDL handling on; validation on for S3
/// (DMS cannot validate a Kinesis target); `BeforeImageSettings` of the Kinesis format.
pub fn settings(target: &Target, lobs: &LobSizing) -> Value {
    let mut s = json!({
        "TargetMetadata": {
            "SupportLobs": true,
            "FullLobMode": false,
            "LimitedSizeLobMode": true,
            "LobMaxSize": lobs.max_kib,
            "LobChunkSize": 64,
            "InlineLobMaxSize": 0,
            "BatchApplyEnabled": false,
        },
        "FullLoadSettings": {
            "TargetTablePrepMode": "DROP_AND_CREATE",
            "MaxFullLoadSubTasks": 8,
            "CommitRate": 10000,
        },
        "ChangeProcessingDdlHandlingPolicy": {
            "HandleSourceTableDropped": true,
            "HandleSourceTableTruncated": true,
            "HandleSourceTableAltered": true,
        },
        "ErrorBehavior": {
            "DataTruncationErrorPolicy": "LOG_ERROR",
            "FailOnNoTablesCaptured": true,
        },
        "Logging": {"EnableLogging": true},
        "ValidationSettings": {
            "EnableValidation": matches!(target, Target::S3 { .. }),
            "ValidationMode": "ROW_LEVEL",
            "ThreadCount": 5,
            "FailureMaxCount": 10000,
            "TableFailureMaxCount": 1000,
            "HandleCollationDiff": false,
            "SkipLobColumns": false,
        },
    });
    if let Target::Kinesis { options, .. } = target {
        let b = &options.before_image;
        s["BeforeImageSettings"] = json!({
            "EnableBeforeImage": b.enable_before_image,
            "FieldName": b.field_name,
            "ColumnFilter": match b.column_filter {
                crate::sink::kinesis::dms_json::ColumnFilter::PkOnly => "pk-only",
                crate::sink::kinesis::dms_json::ColumnFilter::NonLob => "non-lob",
                crate::sink::kinesis::dms_json::ColumnFilter::All => "all",
            },
        });
    }
    s
}

/// The task: `mappings` and `settings` as JSON strings (as the API takes them), ARNs as
/// placeholders.
pub fn task(config: &Config, names: &Names, mappings: &Value, settings: &Value) -> Value {
    json!({
        "ReplicationTaskIdentifier": names.task,
        "SourceEndpointArn": SOURCE_ENDPOINT_ARN,
        "TargetEndpointArn": TARGET_ENDPOINT_ARN,
        "ReplicationInstanceArn": REPLICATION_INSTANCE_ARN,
        "MigrationType": migration_type(config.pipeline.mode),
        "TableMappings": mappings.to_string(),
        "ReplicationTaskSettings": settings.to_string(),
        "Tags": [{"Key": "created-by", "Value": "pgcdc"}],
    })
}

#[cfg(test)]
mod tests {
    use super::super::source_facts::{ColumnFacts, TableFacts};
    use super::*;

    fn t(name: &str, cols: &[(&str, Option<i64>)]) -> TableFacts {
        TableFacts {
            schema: "public".into(),
            name: name.into(),
            has_primary_key: true,
            replica_identity: 'd',
            columns: cols
                .iter()
                .map(|(c, l)| ColumnFacts {
                    name: c.to_string(),
                    type_text: "text".into(),
                    base_type: "text".into(),
                    largest: *l,
                })
                .collect(),
        }
    }

    #[test]
    fn lob_size_follows_the_largest_value() {
        // Nothing large: DMS's default 32 KiB.
        let s = size_lobs(&[t("a", &[("x", Some(100)), ("y", None)])], None, false);
        assert_eq!((s.max_kib, s.at_risk.len()), (32, 0));
        // 100 KB + 25 % = 125 KiB -> 128 KiB; nothing at risk.
        let s = size_lobs(
            &[
                t("a", &[("x", Some(100 * 1024))]),
                t("b", &[("z", Some(10))]),
            ],
            None,
            false,
        );
        assert_eq!(s.max_kib, 128);
        assert_eq!(s.largest, Some(("public.a".into(), "x".into(), 100 * 1024)));
        assert!(s.at_risk.is_empty());
        // Capped by [dms] lob_max_size: the larger column is named.
        let s = size_lobs(
            &[t("a", &[("x", Some(100 * 1024)), ("y", Some(40 * 1024))])],
            Some(64 * 1024),
            false,
        );
        assert_eq!(s.max_kib, 64);
        assert_eq!(
            s.at_risk,
            vec![AtRisk {
                table: "public.a".into(),
                column: "x".into(),
                largest: 100 * 1024
            }]
        );
        // Kinesis: at most 1 MiB, and 200 MiB values exceed the S3 limit too.
        let s = size_lobs(&[t("a", &[("x", Some(5 << 20))])], None, true);
        assert_eq!((s.max_kib, s.at_risk.len()), (1024, 1));
        let s = size_lobs(&[t("a", &[("x", Some(200 << 20))])], None, false);
        assert_eq!((s.max_kib, s.at_risk.len()), (MAX_LOB_KIB, 1));
    }
}
