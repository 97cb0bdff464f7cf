//! The `create-endpoint` documents: the PostgreSQL source and the S3 or Kinesis target,
//! each an AWS CLI `--cli-input-json` input (and the input `apply` sends).
//!
//! Neither holds a secret: the source's password is left out (give it with `--password`,
//! or let `apply` send it from the configuration), and an ARN the plan cannot know is a
//! `${…}` placeholder ([`super::placeholders`]).

use serde_json::{json, Map, Value};

use super::placeholders::{KINESIS_STREAM_ARN, SERVICE_ACCESS_ROLE_ARN};
use super::source_facts::SourceFacts;
use crate::config::{Compression, Config, FileFormat, Layout};
use crate::dms::names::Names;
use crate::dms::target::Target;
use crate::source::conninfo::{ConnInfo, SslMode};

/// DMS's `SslMode` for libpq's `sslmode`: DMS has no "try TLS, else plain", so `prefer`
/// asks for TLS (`require`) and `allow` for none.
pub fn dms_ssl_mode(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable | SslMode::Allow => "none",
        SslMode::Prefer | SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// DMS's decoder for this source: `pglogical` when the extension is installed (DMS then
/// uses it anyway), else `test-decoding` (no extension needed).
pub fn plugin_name(facts: &SourceFacts) -> &'static str {
    if facts.has_pglogical {
        "pglogical"
    } else {
        "test-decoding"
    }
}

fn tags() -> Value {
    json!([{"Key": "created-by", "Value": "pgcdc"}])
}

/// The source endpoint. `SlotName` is DMS's own slot ([`Names::slot`]); DMS needs it to
/// exist (README.md of the plan says how to create it). Heartbeat on (pgcdc advances idle
/// slots too, SPEC 2.7) at `source.heartbeat_interval` rounded up to minutes, else 5;
/// `CaptureDdls` so that column changes reach the target as in pgcdc;
/// `MapBooleanAsBoolean` (pgcdc writes booleans, DMS's default is a string),
/// `MapJsonbAsClob`, `MapLongVarcharAs = nclob` when a table has an unbounded varchar (DMS
/// would cut it at 8000 characters as a string; as a LOB it follows the LOB size), and
/// `FailTasksOnLobTruncation` so a truncated LOB stops the task instead of passing silently.
pub fn source_endpoint(
    config: &Config,
    info: &ConnInfo,
    names: &Names,
    facts: &SourceFacts,
) -> Value {
    let heartbeat_minutes = config
        .source
        .heartbeat_interval
        .map(|d| d.as_secs().div_ceil(60).max(1))
        .unwrap_or(5);
    let mut pg = json!({
        "DatabaseName": info.dbname,
        "SlotName": names.slot,
        "PluginName": plugin_name(facts),
        "HeartbeatEnable": true,
        "HeartbeatFrequency": heartbeat_minutes,
        "CaptureDdls": true,
        "MapBooleanAsBoolean": true,
        "MapJsonbAsClob": true,
        "FailTasksOnLobTruncation": true,
    });
    if facts
        .tables
        .iter()
        .flat_map(|t| &t.columns)
        .any(|c| c.type_text == "character varying")
    {
        pg["MapLongVarcharAs"] = json!("nclob");
    }
    json!({
        "EndpointIdentifier": names.source_endpoint,
        "EndpointType": "source",
        "EngineName": "postgres",
        "ServerName": info.host,
        "Port": info.port,
        "DatabaseName": info.dbname,
        "Username": info.user,
        "SslMode": dms_ssl_mode(info.sslmode),
        "PostgreSQLSettings": pg,
        "Tags": tags(),
    })
}

/// The target endpoint of `target`.
pub fn target_endpoint(config: &Config, names: &Names, target: &Target) -> Value {
    let role = config
        .dms
        .as_ref()
        .and_then(|d| d.service_access_role_arn.clone())
        .unwrap_or_else(|| SERVICE_ACCESS_ROLE_ARN.into());
    let (engine, key, settings) = match target {
        Target::S3 { .. } => ("s3", "S3Settings", s3_settings(target, &role)),
        Target::Kinesis {
            stream, options, ..
        } => {
            let arn = if stream.starts_with("arn:") {
                stream.clone()
            } else {
                KINESIS_STREAM_ARN.into()
            };
            let s = json!({
                "StreamArn": arn,
                "MessageFormat": "json-unformatted",
                "ServiceAccessRoleArn": role,
                "IncludeTransactionDetails": options.include_transaction_details,
                "IncludePartitionValue": options.include_partition_value,
                "PartitionIncludeSchemaTable": options.partition_include_schema_table,
                "IncludeTableAlterOperations": options.include_table_alter_operations,
                "IncludeControlDetails": options.include_control_details,
                "IncludeNullAndEmpty": options.include_null_and_empty,
                "NoHexPrefix": options.no_hex_prefix,
            });
            ("kinesis", "KinesisSettings", s)
        }
    };
    let mut doc = Map::new();
    doc.insert("EndpointIdentifier".into(), json!(names.target_endpoint));
    doc.insert("EndpointType".into(), json!("target"));
    doc.insert("EngineName".into(), json!(engine));
    doc.insert(key.into(), settings);
    doc.insert("Tags".into(), tags());
    Value::Object(doc)
}

/// `S3Settings` mirroring the Parquet sink. In the DMS layout every DMS option of the
/// sink (SPEC 5.2, [`crate::config::ParquetSinkConfig`]) is the DMS setting of the same
/// name; in the native layout the settings closest to pgcdc's files: `Op` in full-load
/// files too (pgcdc's `_op` is `L` there), a commit-time column (`DMS_TIMESTAMP`, pgcdc's
/// `_commit_ts`) and date folders (`YYYY-MM-DD`, pgcdc's `date=YYYY-MM-DD`). Files close
/// at the sink's `flush_interval` or `max_file_size`, whichever comes first
/// (`CdcMaxBatchInterval`, `CdcMinFileSize`; `MaxFileSize` for full-load files). DMS compresses Parquet with GZIP or not at all: zstd becomes NONE.
fn s3_settings(target: &Target, role: &str) -> Value {
    let Target::S3 {
        sink,
        bucket,
        folder,
        ..
    } = target
    else {
        unreachable!("an S3 target")
    };
    let dms = sink.layout == Layout::Dms;
    let mut s = json!({
        "ServiceAccessRoleArn": role,
        "BucketName": bucket,
        "BucketFolder": folder,
        "DataFormat": if sink.format == FileFormat::Csv { "csv" } else { "parquet" },
        "CompressionType": if sink.compression == Compression::Gzip { "GZIP" } else { "NONE" },
        "IncludeOpForFullLoad": if dms { sink.include_op_for_full_load } else { true },
        "CdcInsertsOnly": dms && sink.cdc_inserts_only,
        "DatePartitionEnabled": if dms { sink.date_partitioning } else { true },
        "CdcMaxBatchInterval": sink.flush_interval.as_secs().max(1),
        "CdcMinFileSize": (sink.max_file_size / 1024).max(1),
        "MaxFileSize": (sink.max_file_size / 1024).clamp(1, 1_048_576),
    });
    if s["DatePartitionEnabled"] == json!(true) {
        s["DatePartitionSequence"] = json!("YYYYMMDD");
        s["DatePartitionDelimiter"] = json!(if dms { "SLASH" } else { "DASH" });
    }
    let timestamp = if dms {
        sink.timestamp_column.clone()
    } else {
        Some("DMS_TIMESTAMP".into())
    };
    if let Some(c) = timestamp {
        s["TimestampColumnName"] = json!(c);
    }
    if sink.format == FileFormat::Csv {
        s["AddColumnName"] = json!(sink.add_column_name);
        if let Some(v) = &sink.csv_null_value {
            s["CsvNullValue"] = json!(v);
        }
    } else {
        s["ParquetVersion"] = json!("parquet-2-0");
        s["EnableStatistics"] = json!(true);
        s["ParquetTimestampInMillisecond"] = json!(dms && sink.parquet_timestamp_in_millisecond);
    }
    s
}
