//! The plan's JSON documents as DMS SDK values, and the SDK's descriptions back as JSON of
//! the same keys, so that [`super::diff`] compares like with like. One list of fields per
//! settings type, in both directions; a key the plan does not set is never compared.

use aws_sdk_databasemigration::types::{
    CompressionTypeValue, DataFormatValue, DatePartitionDelimiterValue, DatePartitionSequenceValue,
    Endpoint, KinesisSettings, LongVarcharMappingType, MessageFormatValue, ParquetVersionValue,
    PluginNameValue, PostgreSqlSettings, S3Settings,
};
use serde_json::{json, Map, Value};

fn s(v: &Value) -> Option<String> {
    v.as_str().map(String::from)
}
fn b(v: &Value) -> Option<bool> {
    v.as_bool()
}
fn i(v: &Value) -> Option<i32> {
    v.as_i64().and_then(|x| i32::try_from(x).ok())
}

/// `builder.set_x(doc[key])` for each field.
macro_rules! build {
    ($builder:expr, $doc:expr; $($key:literal => $set:ident($conv:expr)),* $(,)?) => {{
        let mut bld = $builder;
        $( bld = bld.$set($doc.get($key).and_then($conv)); )*
        bld.build()
    }};
}

/// `{key: current.x()}` for each field the description has.
macro_rules! describe {
    ($cur:expr; $($key:literal => $get:ident),* $(,)?) => {{
        let mut m = Map::new();
        $( if let Some(v) = $cur.$get() { m.insert($key.into(), ToJson::to_json(&v)); } )*
        Value::Object(m)
    }};
}

trait ToJson {
    fn to_json(&self) -> Value;
}
impl ToJson for &str {
    fn to_json(&self) -> Value {
        json!(self)
    }
}
impl ToJson for bool {
    fn to_json(&self) -> Value {
        json!(self)
    }
}
impl ToJson for i32 {
    fn to_json(&self) -> Value {
        json!(self)
    }
}
macro_rules! enum_json {
    ($($t:ty),*) => { $( impl ToJson for &$t { fn to_json(&self) -> Value { json!(self.as_str()) } } )* };
}
enum_json!(
    PluginNameValue,
    LongVarcharMappingType,
    DataFormatValue,
    CompressionTypeValue,
    ParquetVersionValue,
    DatePartitionSequenceValue,
    DatePartitionDelimiterValue,
    MessageFormatValue
);

/// `PostgreSQLSettings` of the plan (the password is added by the caller).
pub fn postgres_settings(doc: &Value) -> PostgreSqlSettings {
    build!(PostgreSqlSettings::builder(), doc;
        "DatabaseName" => set_database_name(s),
        "SlotName" => set_slot_name(s),
        "PluginName" => set_plugin_name(|v: &Value| v.as_str().map(PluginNameValue::from)),
        "HeartbeatEnable" => set_heartbeat_enable(b),
        "HeartbeatFrequency" => set_heartbeat_frequency(i),
        "CaptureDdls" => set_capture_ddls(b),
        "MapBooleanAsBoolean" => set_map_boolean_as_boolean(b),
        "MapJsonbAsClob" => set_map_jsonb_as_clob(b),
        "MapLongVarcharAs" => set_map_long_varchar_as(|v: &Value| v.as_str().map(LongVarcharMappingType::from)),
        "FailTasksOnLobTruncation" => set_fail_tasks_on_lob_truncation(b),
    )
}

pub fn describe_postgres(c: &PostgreSqlSettings) -> Value {
    describe!(c;
        "DatabaseName" => database_name, "SlotName" => slot_name, "PluginName" => plugin_name,
        "HeartbeatEnable" => heartbeat_enable, "HeartbeatFrequency" => heartbeat_frequency,
        "CaptureDdls" => capture_ddls, "MapBooleanAsBoolean" => map_boolean_as_boolean,
        "MapJsonbAsClob" => map_jsonb_as_clob, "MapLongVarcharAs" => map_long_varchar_as,
        "FailTasksOnLobTruncation" => fail_tasks_on_lob_truncation,
    )
}

pub fn s3_settings(doc: &Value) -> S3Settings {
    build!(S3Settings::builder(), doc;
        "ServiceAccessRoleArn" => set_service_access_role_arn(s),
        "BucketName" => set_bucket_name(s),
        "BucketFolder" => set_bucket_folder(s),
        "DataFormat" => set_data_format(|v: &Value| v.as_str().map(DataFormatValue::from)),
        "CompressionType" => set_compression_type(|v: &Value| v.as_str().map(CompressionTypeValue::from)),
        "IncludeOpForFullLoad" => set_include_op_for_full_load(b),
        "CdcInsertsOnly" => set_cdc_inserts_only(b),
        "DatePartitionEnabled" => set_date_partition_enabled(b),
        "DatePartitionSequence" => set_date_partition_sequence(|v: &Value| v.as_str().map(DatePartitionSequenceValue::from)),
        "DatePartitionDelimiter" => set_date_partition_delimiter(|v: &Value| v.as_str().map(DatePartitionDelimiterValue::from)),
        "CdcMaxBatchInterval" => set_cdc_max_batch_interval(i),
        "CdcMinFileSize" => set_cdc_min_file_size(i),
        "MaxFileSize" => set_max_file_size(i),
        "TimestampColumnName" => set_timestamp_column_name(s),
        "AddColumnName" => set_add_column_name(b),
        "CsvNullValue" => set_csv_null_value(s),
        "ParquetVersion" => set_parquet_version(|v: &Value| v.as_str().map(ParquetVersionValue::from)),
        "EnableStatistics" => set_enable_statistics(b),
        "ParquetTimestampInMillisecond" => set_parquet_timestamp_in_millisecond(b),
    )
}

pub fn describe_s3(c: &S3Settings) -> Value {
    describe!(c;
        "ServiceAccessRoleArn" => service_access_role_arn, "BucketName" => bucket_name, "BucketFolder" => bucket_folder,
        "DataFormat" => data_format, "CompressionType" => compression_type, "IncludeOpForFullLoad" => include_op_for_full_load,
        "CdcInsertsOnly" => cdc_inserts_only, "DatePartitionEnabled" => date_partition_enabled,
        "DatePartitionSequence" => date_partition_sequence, "DatePartitionDelimiter" => date_partition_delimiter,
        "CdcMaxBatchInterval" => cdc_max_batch_interval, "CdcMinFileSize" => cdc_min_file_size, "MaxFileSize" => max_file_size,
        "TimestampColumnName" => timestamp_column_name, "AddColumnName" => add_column_name, "CsvNullValue" => csv_null_value,
        "ParquetVersion" => parquet_version, "EnableStatistics" => enable_statistics,
        "ParquetTimestampInMillisecond" => parquet_timestamp_in_millisecond,
    )
}

pub fn kinesis_settings(doc: &Value) -> KinesisSettings {
    build!(KinesisSettings::builder(), doc;
        "StreamArn" => set_stream_arn(s),
        "MessageFormat" => set_message_format(|v: &Value| v.as_str().map(MessageFormatValue::from)),
        "ServiceAccessRoleArn" => set_service_access_role_arn(s),
        "IncludeTransactionDetails" => set_include_transaction_details(b),
        "IncludePartitionValue" => set_include_partition_value(b),
        "PartitionIncludeSchemaTable" => set_partition_include_schema_table(b),
        "IncludeTableAlterOperations" => set_include_table_alter_operations(b),
        "IncludeControlDetails" => set_include_control_details(b),
        "IncludeNullAndEmpty" => set_include_null_and_empty(b),
        "NoHexPrefix" => set_no_hex_prefix(b),
    )
}

pub fn describe_kinesis(c: &KinesisSettings) -> Value {
    describe!(c;
        "StreamArn" => stream_arn, "MessageFormat" => message_format, "ServiceAccessRoleArn" => service_access_role_arn,
        "IncludeTransactionDetails" => include_transaction_details, "IncludePartitionValue" => include_partition_value,
        "PartitionIncludeSchemaTable" => partition_include_schema_table,
        "IncludeTableAlterOperations" => include_table_alter_operations, "IncludeControlDetails" => include_control_details,
        "IncludeNullAndEmpty" => include_null_and_empty, "NoHexPrefix" => no_hex_prefix,
    )
}

/// An endpoint as described, in the plan's keys (top level and its settings).
pub fn describe_endpoint(e: &Endpoint) -> Value {
    let mut doc = describe!(e;
        "EndpointIdentifier" => endpoint_identifier, "EngineName" => engine_name, "ServerName" => server_name,
        "Port" => port, "DatabaseName" => database_name, "Username" => username,
    );
    if let Some(t) = e.endpoint_type() {
        doc["EndpointType"] = json!(t.as_str().to_ascii_lowercase());
    }
    if let Some(m) = e.ssl_mode() {
        doc["SslMode"] = json!(m.as_str());
    }
    if let Some(p) = e.postgre_sql_settings() {
        doc["PostgreSQLSettings"] = describe_postgres(p);
    }
    if let Some(p) = e.s3_settings() {
        doc["S3Settings"] = describe_s3(p);
    }
    if let Some(p) = e.kinesis_settings() {
        doc["KinesisSettings"] = describe_kinesis(p);
    }
    doc
}
