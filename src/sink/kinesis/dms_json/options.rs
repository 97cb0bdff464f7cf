//! [`DmsJsonOptions`]: the settings of the `dms-json` record format, each one a setting of
//! DMS's Kinesis target endpoint (`KinesisSettings`) or task (`BeforeImageSettings`), named
//! in snake case.
//!
//! Defaults are the settings of the reference DMS task whose records pgcdc matches
//! (`tests/fixtures/dms_kinesis/`, task settings in
//! `../shared/testdata/dms_task_settings/postgres_to_kinesis_settings.json`): every
//! `Include…` switch on and `PartitionIncludeSchemaTable` on. DMS's own defaults are all
//! `false`; set them to `false` to get DMS's default output.

use serde::Deserialize;

use crate::error::Error;

/// How a data record's partition key is formed (DMS's `partition-key-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKeyType {
    /// `primary-key`: the key column values joined by `.`, prefixed by `schema.table.` when
    /// `partition_include_schema_table` is on (`public.foo.42`, as the real load record's
    /// `partition-key-value`). All changes of one key reach one shard, in commit order.
    #[default]
    PrimaryKey,
    /// `schema-table`: `schema.table`; every change of a table reaches one shard.
    SchemaTable,
}

impl PartitionKeyType {
    /// The value of `metadata.partition-key-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionKeyType::PrimaryKey => "primary-key",
            PartitionKeyType::SchemaTable => "schema-table",
        }
    }
}

/// DMS `BeforeImageSettings.ColumnFilter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColumnFilter {
    /// `pk-only` (DMS's default): the primary key's columns.
    #[default]
    PkOnly,
    /// `non-lob`: every column that is not a LOB.
    NonLob,
    /// `all`: every column with a before-image value.
    All,
}

/// DMS `BeforeImageSettings`: an extra attribute on every `update` record with the row's
/// values before the update, as far as the source sent them.
///
/// What pgcdc can put there: an `update` record is a change that kept its key (a
/// key-changing update is a `delete` of the old key and an `insert` of the new row, SPEC
/// 5.1), and PostgreSQL sends no old values for it under the default replica identity. So the
/// before image is `{}` for every update, whatever the filter: exactly what DMS writes for
/// such an update from PostgreSQL (the real record `MSG_DATA_UPDATE_VALUE` of
/// daq-tools/commons-codec has `"before-image": {}`). DMS writes the old key for a
/// key-changing update (`{"id": 46}`); pgcdc writes that change as `delete` + `insert`
/// instead (see the module documentation). Old non-key values under `REPLICA IDENTITY FULL`
/// (`non-lob`, `all`) are not carried by pgcdc's rows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeforeImageSettings {
    /// DMS `EnableBeforeImage` (default `false`).
    pub enable_before_image: bool,
    /// DMS `FieldName`: the attribute's name (default `before-image`); not empty, not `data`
    /// nor `metadata`.
    pub field_name: String,
    /// DMS `ColumnFilter` (default `pk-only`).
    pub column_filter: ColumnFilter,
}

impl Default for BeforeImageSettings {
    fn default() -> Self {
        BeforeImageSettings {
            enable_before_image: false,
            field_name: "before-image".into(),
            column_filter: ColumnFilter::PkOnly,
        }
    }
}

/// The settings of the `dms-json` format. See the module documentation for defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DmsJsonOptions {
    /// DMS `IncludeTransactionDetails`: CDC records carry `transaction-record-id`,
    /// `prev-transaction-id`, `prev-transaction-record-id`, `commit-timestamp` and
    /// `stream-position`. Needed to drop duplicates by `stream-position`.
    pub include_transaction_details: bool,
    /// DMS `IncludePartitionValue`: `metadata.partition-key-value` (not for `schema-table`).
    pub include_partition_value: bool,
    /// DMS `PartitionIncludeSchemaTable`: `primary-key` partition keys start with
    /// `schema.table.`.
    pub partition_include_schema_table: bool,
    /// DMS `IncludeNullAndEmpty`: null values and empty strings are written; when `false`
    /// such columns are left out of `data`.
    pub include_null_and_empty: bool,
    /// DMS `IncludeControlDetails`: control records carry `control.table-def`.
    pub include_control_details: bool,
    /// DMS `IncludeTableAlterOperations`: column changes produce control records.
    pub include_table_alter_operations: bool,
    /// DMS `NoHexPrefix`: bytea values without the `0x` prefix (default `false`).
    pub no_hex_prefix: bool,
    /// DMS object mapping `partition-key-type` (default `primary-key`).
    pub partition_key_type: PartitionKeyType,
    /// DMS `BeforeImageSettings`.
    pub before_image: BeforeImageSettings,
    /// What DMS puts where its task resource id goes (`serv-res-id-…`): control records'
    /// `partition-key-value` and the first part of their partition key
    /// (`task.schema.table`). Default `pgcdc`.
    pub task_id: String,
}

impl Default for DmsJsonOptions {
    fn default() -> Self {
        DmsJsonOptions {
            include_transaction_details: true,
            include_partition_value: true,
            partition_include_schema_table: true,
            include_null_and_empty: true,
            include_control_details: true,
            include_table_alter_operations: true,
            no_hex_prefix: false,
            partition_key_type: PartitionKeyType::PrimaryKey,
            before_image: BeforeImageSettings::default(),
            task_id: "pgcdc".into(),
        }
    }
}

impl DmsJsonOptions {
    /// Checks what serde cannot: a usable before-image field name and task id. The error is
    /// a configuration error naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        let bi = &self.before_image;
        if bi.enable_before_image && matches!(bi.field_name.as_str(), "" | "data" | "metadata") {
            return Err(Error::config(format!(
                "before_image.field_name {:?} cannot be used for the before image",
                bi.field_name
            ))
            .with_hint(
                "set before_image.field_name to a name such as \"before-image\" (DMS's FieldName)",
            ));
        }
        if self.task_id.is_empty() {
            return Err(Error::config("task_id is empty")
                .with_hint("remove task_id to use \"pgcdc\", or set a name"));
        }
        Ok(())
    }
}
