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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_dms_section_of_the_readme_loads_and_unknown_keys_are_refused() {
        let base = "[source]\nurl = \"postgres://u@h/db\"\n[[sink]]\nkind = \"parquet\"\nurl = \"s3://bucket/cdc/\"\n";
        let c = Config::parse(&format!(
            "{base}[dms]\nname = \"shop-dms\"\nsink = 1\nservice_access_role_arn = \"arn:aws:iam::123456789012:role/dms-target\"\n\
             s3_url = \"s3://bucket/dms/\"\ninstance_class = \"dms.t3.medium\"\nallocated_storage = 50\nlob_max_size = \"1MiB\"\n"
        ))
        .unwrap();
        let d = c.dms.unwrap();
        assert_eq!((d.name.as_deref(), d.sink, d.lob_max_size), (Some("shop-dms"), Some(1), Some(1 << 20)));
        let e = Config::parse(&format!("{base}[dms]\nlob_size = \"1MiB\"\n")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("unknown key `lob_size`"), "{e}");
    }
}
