//! `pgcdc dms apply -c FILE [--start] [--wait] [--dry-run]`: creates or updates the DMS
//! objects of the plan ([`crate::dms::plan::build`]) through the DMS API, idempotently.
//!
//! Each object (source endpoint, target endpoint, replication instance, task) is looked up
//! by its identifier. A missing one is created; an existing one is compared with the plan
//! ([`diff::changes`], only the keys the plan sets) and modified only when something
//! differs, so a second run changes nothing and says so. `--dry-run` prints the same report
//! without calling any create, modify or start. `--start` starts a task that never ran and
//! resumes a stopped or failed one; `--wait` prints the task's progress until it runs CDC
//! (or, for `full-load`, finishes) and fails when the task fails.
//!
//! Errors name the call: missing permissions (`AccessDenied…`) with the IAM action to grant,
//! invalid settings (`InvalidParameter…`) with DMS's message, and a task that cannot be
//! modified in its state with the way out (stop it first).

pub mod convert;
pub mod diff;
mod errors;
mod task;

use aws_sdk_databasemigration::types::{
    DmsSslModeValue, Filter, ReplicationEndpointTypeValue, Tag,
};
use aws_sdk_databasemigration::Client;
use serde_json::Value;

use crate::config::Config;
use crate::dms::plan::{self, placeholders, Plan};
use crate::dms::target::Target;
use crate::error::{Error, Result};
use crate::source::conninfo::ConnInfo;
pub use errors::dms_error;
pub use task::describe_task;

/// What `apply` was asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    pub dry_run: bool,
    pub start: bool,
    pub wait: bool,
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created,
    Unchanged,
    Modified(Vec<diff::Change>),
    /// `--dry-run`: what would be done.
    WouldCreate,
    WouldModify(Vec<diff::Change>),
}

/// The report: one line per object, in order, then what `--start`/`--wait` did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub objects: Vec<(String, String, Outcome)>,
    pub notes: Vec<String>,
}

impl ApplyReport {
    /// True when no object was (or would be) created or modified.
    pub fn unchanged(&self) -> bool {
        self.objects
            .iter()
            .all(|(_, _, o)| *o == Outcome::Unchanged)
    }

    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, id, o) in &self.objects {
            match o {
                Outcome::Created => out.push(format!("{kind} {id}: created")),
                Outcome::Unchanged => out.push(format!("{kind} {id}: unchanged")),
                Outcome::WouldCreate => out.push(format!("{kind} {id}: would be created")),
                Outcome::Modified(c) | Outcome::WouldModify(c) => {
                    let verb = if matches!(o, Outcome::Modified(_)) {
                        "modified"
                    } else {
                        "would be modified"
                    };
                    out.push(format!("{kind} {id}: {verb}"));
                    out.extend(c.iter().map(|c| format!("    {c}")));
                }
            }
        }
        if self.unchanged() {
            out.push("nothing to change: the DMS objects match the plan".into());
        }
        out.extend(self.notes.iter().cloned());
        out
    }
}

/// A DMS client over `[aws]` (region, endpoint URL) and the standard credential chain.
pub async fn client(config: &Config) -> Client {
    Client::new(&crate::aws::load(config.aws.as_ref()).await)
}

/// Applies the plan of `config`. `progress` receives `--wait`'s progress lines.
pub async fn apply(
    config: &Config,
    opts: ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ApplyReport> {
    let mut plan = plan::build(config).await?;
    let dms = client(config).await;
    resolve_placeholders(config, &mut plan).await?;
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let mut report = ApplyReport::default();
    let (src_arn, o) = endpoint(
        &dms,
        &plan.source_endpoint,
        info.password.as_deref(),
        opts.dry_run,
    )
    .await?;
    report
        .objects
        .push(("endpoint".into(), plan.names.source_endpoint.clone(), o));
    let (tgt_arn, o) = endpoint(&dms, &plan.target_endpoint, None, opts.dry_run).await?;
    report
        .objects
        .push(("endpoint".into(), plan.names.target_endpoint.clone(), o));
    let (inst_arn, o) = task::instance(&dms, &plan.instance, opts.dry_run).await?;
    report.objects.push((
        "replication instance".into(),
        plan.names.instance.clone(),
        o,
    ));
    let arns = task::Arns {
        source: src_arn,
        target: tgt_arn,
        instance: inst_arn,
    };
    let (task_arn, o) = task::task(&dms, &plan, &arns, opts.dry_run, progress).await?;
    report
        .objects
        .push(("replication task".into(), plan.names.task.clone(), o));
    if opts.start {
        match (&task_arn, opts.dry_run) {
            (Some(arn), false) => report.notes.push(task::start(&dms, arn).await?),
            _ => report.notes.push(format!(
                "replication task {}: would be started",
                plan.names.task
            )),
        }
    }
    if opts.wait && !opts.dry_run {
        if let Some(arn) = &task_arn {
            report
                .notes
                .push(task::wait(&dms, arn, config.pipeline.mode, progress).await?);
        }
    }
    Ok(report)
}

/// Fills the placeholders `apply` can know: the Kinesis stream's ARN (DescribeStreamSummary)
/// and the role (`[dms] service_access_role_arn`, else a configuration error).
async fn resolve_placeholders(config: &Config, plan: &mut Plan) -> Result<()> {
    let key = match plan.target {
        Target::S3 { .. } => "S3Settings",
        Target::Kinesis { .. } => "KinesisSettings",
    };
    let settings = &mut plan.target_endpoint[key];
    if settings["ServiceAccessRoleArn"] == placeholders::SERVICE_ACCESS_ROLE_ARN {
        return Err(Error::config("[dms] service_access_role_arn is not set: DMS needs a role to write to the target")
            .with_hint("add [dms] service_access_role_arn = \"arn:aws:iam::ACCOUNT:role/ROLE\" (a role DMS may assume that may write to the target)"));
    }
    if let (true, Target::Kinesis { stream, .. }) = (
        settings["StreamArn"] == placeholders::KINESIS_STREAM_ARN,
        &plan.target,
    ) {
        let kinesis = aws_sdk_kinesis::Client::new(&crate::aws::load(config.aws.as_ref()).await);
        let answer = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| {
                Error::runtime(format!(
                    "Kinesis DescribeStreamSummary of stream {stream}: {}",
                    crate::aws::error_causes(&e)
                ))
                .with_hint("create the stream first, or give sink.stream as an ARN")
            })?;
        let arn = answer
            .stream_description_summary()
            .map(|s| s.stream_arn().to_string())
            .unwrap_or_default();
        settings["StreamArn"] = Value::String(arn);
    }
    Ok(())
}

fn tags(doc: &Value) -> Vec<Tag> {
    doc["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            Tag::builder()
                .set_key(t["Key"].as_str().map(String::from))
                .set_value(t["Value"].as_str().map(String::from))
                .build()
        })
        .collect()
}

/// Creates or updates one endpoint; returns its ARN (`None` only when `dry_run` would create
/// it) and what happened. `password` goes with a create or modify of the source, never into
/// a comparison or a message.
async fn endpoint(
    dms: &Client,
    doc: &Value,
    password: Option<&str>,
    dry_run: bool,
) -> Result<(Option<String>, Outcome)> {
    let id = doc["EndpointIdentifier"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let found = dms
        .describe_endpoints()
        .filters(
            Filter::builder()
                .name("endpoint-id")
                .values(&id)
                .build()
                .map_err(|e| Error::runtime(e.to_string()))?,
        )
        .send()
        .await;
    let current = match found {
        Ok(a) => a.endpoints().first().cloned(),
        Err(e) if errors::is_not_found(&e) => None,
        Err(e) => return Err(dms_error("DescribeEndpoints", &id, e)),
    };
    let str_of = |k: &str| doc[k].as_str().map(String::from);
    let pg = doc
        .get("PostgreSQLSettings")
        .map(convert::postgres_settings);
    let s3 = doc.get("S3Settings").map(convert::s3_settings);
    let kinesis = doc.get("KinesisSettings").map(convert::kinesis_settings);
    let Some(current) = current else {
        if dry_run {
            return Ok((None, Outcome::WouldCreate));
        }
        let answer = dms
            .create_endpoint()
            .endpoint_identifier(&id)
            .endpoint_type(ReplicationEndpointTypeValue::from(
                doc["EndpointType"].as_str().unwrap_or_default(),
            ))
            .engine_name(str_of("EngineName").unwrap_or_default())
            .set_server_name(str_of("ServerName"))
            .set_port(doc["Port"].as_i64().map(|p| p as i32))
            .set_database_name(str_of("DatabaseName"))
            .set_username(str_of("Username"))
            .set_password(password.map(String::from))
            .set_ssl_mode(doc["SslMode"].as_str().map(DmsSslModeValue::from))
            .set_postgre_sql_settings(pg)
            .set_s3_settings(s3)
            .set_kinesis_settings(kinesis)
            .set_tags(Some(tags(doc)))
            .send()
            .await
            .map_err(|e| dms_error("CreateEndpoint", &id, e))?;
        let arn = answer
            .endpoint()
            .and_then(|e| e.endpoint_arn())
            .map(String::from);
        return Ok((arn, Outcome::Created));
    };
    let arn = current.endpoint_arn().map(String::from);
    let changes = diff::changes(
        doc,
        &convert::describe_endpoint(&current),
        &["Tags", "EndpointIdentifier"],
    );
    if changes.is_empty() {
        return Ok((arn, Outcome::Unchanged));
    }
    if dry_run {
        return Ok((arn, Outcome::WouldModify(changes)));
    }
    dms.modify_endpoint()
        .set_endpoint_arn(arn.clone())
        .engine_name(str_of("EngineName").unwrap_or_default())
        .set_server_name(str_of("ServerName"))
        .set_port(doc["Port"].as_i64().map(|p| p as i32))
        .set_database_name(str_of("DatabaseName"))
        .set_username(str_of("Username"))
        .set_password(password.map(String::from))
        .set_ssl_mode(doc["SslMode"].as_str().map(DmsSslModeValue::from))
        .set_postgre_sql_settings(pg)
        .set_s3_settings(s3)
        .set_kinesis_settings(kinesis)
        .send()
        .await
        .map_err(|e| dms_error("ModifyEndpoint", &id, e))?;
    Ok((arn, Outcome::Modified(changes)))
}
