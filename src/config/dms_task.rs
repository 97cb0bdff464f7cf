//! `[dms]`: the settings of the DMS companion (`pgcdc dms plan|apply`, SPEC 7) that the rest
//! of the configuration cannot say: which sink the DMS task mirrors, the names and the
//! IAM role DMS needs, the replication instance, and an optional LOB size cap. Every key is
//! optional; `pgcdc run` ignores the section.

use serde::Deserialize;

use super::units;

/// The `[dms]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DmsTaskConfig {
    /// The base of every DMS identifier (endpoints, instance, task); default
    /// `pgcdc-{database}-{slot}`. Made valid for DMS by `crate::dms::names`.
    #[serde(default)]
    pub name: Option<String>,
    /// The `[[sink]]` (from 1) the DMS task mirrors; default: the first S3 Parquet or
    /// Kinesis sink.
    #[serde(default)]
    pub sink: Option<usize>,
    /// The IAM role DMS assumes to write to S3 or Kinesis (`ServiceAccessRoleArn`).
    #[serde(default)]
    pub service_access_role_arn: Option<String>,
    /// Where DMS writes when the mirrored Parquet sink is a local directory
    /// (`s3://bucket/prefix/`); default: beside the sink's own S3 prefix.
    #[serde(default)]
    pub s3_url: Option<String>,
    /// `ReplicationInstanceClass` (default `dms.t3.medium`).
    #[serde(default)]
    pub instance_class: Option<String>,
    /// `AllocatedStorage` of the instance in GiB (default 50).
    #[serde(default)]
    pub allocated_storage: Option<u32>,
    /// Caps the task's `LobMaxSize` (default: sized from the source's largest values).
    #[serde(default, with = "units::opt_size")]
    pub lob_max_size: Option<u64>,
}
