//! The replication instance and the task: create, compare, modify, start and wait.

use std::time::Duration;

use aws_sdk_databasemigration::types::{
    Filter, MigrationTypeValue, ReplicationTask, StartReplicationTaskTypeValue,
};
use aws_sdk_databasemigration::Client;
use serde_json::{json, Value};

use super::diff::{self, Change};
use super::errors::{dms_error, is_not_found};
use super::{tags, Outcome};
use crate::config::Mode;
use crate::dms::plan::Plan;
use crate::error::{Error, Result};

/// The ARNs the task refers to (`None` where a dry run would create the object).
pub struct Arns {
    pub source: Option<String>,
    pub target: Option<String>,
    pub instance: Option<String>,
}

/// States in which DMS lets a task be modified.
const MODIFIABLE: &[&str] = &["ready", "stopped", "failed", "failed-move"];

fn filter(name: &str, value: &str) -> Result<Filter> {
    Filter::builder()
        .name(name)
        .values(value)
        .build()
        .map_err(|e| Error::runtime(e.to_string()))
}

/// Creates the replication instance when missing and waits until it is available (a task
/// can only be created on an available instance); an existing one is compared by class and
/// storage, and a difference is reported, not applied (resizing restarts running tasks:
/// `aws dms modify-replication-instance` is the user's decision).
pub async fn instance(
    dms: &Client,
    doc: &Value,
    dry_run: bool,
) -> Result<(Option<String>, Outcome)> {
    let id = doc["ReplicationInstanceIdentifier"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let found = dms
        .describe_replication_instances()
        .filters(filter("replication-instance-id", &id)?)
        .send()
        .await;
    let current = match found {
        Ok(a) => a.replication_instances().first().cloned(),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(dms_error("DescribeReplicationInstances", &id, e)),
    };
    if let Some(c) = current {
        let described = json!({
            "ReplicationInstanceClass": c.replication_instance_class(),
            "AllocatedStorage": c.allocated_storage(),
        });
        let changes = diff::changes(
            &json!({"ReplicationInstanceClass": doc["ReplicationInstanceClass"], "AllocatedStorage": doc["AllocatedStorage"]}),
            &described,
            &[],
        );
        let arn = c.replication_instance_arn().map(String::from);
        if changes.is_empty() {
            return Ok((arn, Outcome::Unchanged));
        }
        if dry_run {
            return Ok((arn, Outcome::WouldModify(changes)));
        }
        let list: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        return Err(Error::config(format!("replication instance {id} differs from the plan: {}", list.join(", "))).with_hint(format!(
            "resize it with `aws dms modify-replication-instance --replication-instance-arn {} --apply-immediately`, or change [dms] instance_class / allocated_storage",
            arn.unwrap_or_default()
        )));
    }
    if dry_run {
        return Ok((None, Outcome::WouldCreate));
    }
    let answer = dms
        .create_replication_instance()
        .replication_instance_identifier(&id)
        .replication_instance_class(doc["ReplicationInstanceClass"].as_str().unwrap_or_default())
        .set_allocated_storage(doc["AllocatedStorage"].as_i64().map(|x| x as i32))
        .set_multi_az(doc["MultiAZ"].as_bool())
        .set_publicly_accessible(doc["PubliclyAccessible"].as_bool())
        .set_auto_minor_version_upgrade(doc["AutoMinorVersionUpgrade"].as_bool())
        .set_tags(Some(tags(doc)))
        .send()
        .await
        .map_err(|e| dms_error("CreateReplicationInstance", &id, e))?;
    let arn = answer
        .replication_instance()
        .and_then(|r| r.replication_instance_arn())
        .map(String::from);
    Ok((arn, Outcome::Created))
}

/// The task with the DMS filter `id_filter` (`replication-task-id` or `-arn`, value);
/// `None` when there is none. Also used by `pgcdc dms status`.
pub async fn describe_task(dms: &Client, id_filter: (&str, &str)) -> Result<Option<ReplicationTask>> {
    match dms
        .describe_replication_tasks()
        .filters(filter(id_filter.0, id_filter.1)?)
        .send()
        .await
    {
        Ok(a) => Ok(a.replication_tasks().first().cloned()),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(dms_error("DescribeReplicationTasks", id_filter.1, e)),
    }
}

/// The task as the plan's keys: its mappings and settings parsed, so that formatting and
/// DMS's added defaults do not count as differences.
fn describe(t: &ReplicationTask) -> Value {
    let parse = |s: Option<&str>| {
        s.and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or(Value::Null)
    };
    json!({
        "MigrationType": t.migration_type().map(|m| m.as_str()),
        "SourceEndpointArn": t.source_endpoint_arn(),
        "TargetEndpointArn": t.target_endpoint_arn(),
        "ReplicationInstanceArn": t.replication_instance_arn(),
        "TableMappings": parse(t.table_mappings()),
        "ReplicationTaskSettings": parse(t.replication_task_settings()),
    })
}

/// The changes to a task, with the ARNs of this run.
pub fn task_changes(plan: &Plan, arns: &Arns, current: &Value) -> Vec<Change> {
    let wanted = json!({
        "MigrationType": plan.task["MigrationType"],
        "SourceEndpointArn": arns.source,
        "TargetEndpointArn": arns.target,
        "TableMappings": plan.table_mappings,
        "ReplicationTaskSettings": plan.task_settings,
    });
    diff::changes(&wanted, current, &[])
}

/// Creates or updates the task; a task that must change but runs is an error naming its
/// state.
pub async fn task(
    dms: &Client,
    plan: &Plan,
    arns: &Arns,
    dry_run: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(Option<String>, Outcome)> {
    let id = plan.names.task.clone();
    let current = describe_task(dms, ("replication-task-id", &id)).await?;
    let mappings = plan.table_mappings.to_string();
    let settings = plan.task_settings.to_string();
    let migration =
        MigrationTypeValue::from(plan.task["MigrationType"].as_str().unwrap_or_default());
    let Some(current) = current else {
        if dry_run {
            return Ok((None, Outcome::WouldCreate));
        }
        let instance = arns.instance.clone().unwrap_or_default();
        wait_instance_available(dms, &instance, progress).await?;
        let answer = dms
            .create_replication_task()
            .replication_task_identifier(&id)
            .set_source_endpoint_arn(arns.source.clone())
            .set_target_endpoint_arn(arns.target.clone())
            .replication_instance_arn(instance)
            .migration_type(migration)
            .table_mappings(mappings)
            .replication_task_settings(settings)
            .set_tags(Some(tags(&plan.task)))
            .send()
            .await
            .map_err(|e| dms_error("CreateReplicationTask", &id, e))?;
        return Ok((
            answer
                .replication_task()
                .and_then(|t| t.replication_task_arn())
                .map(String::from),
            Outcome::Created,
        ));
    };
    let arn = current.replication_task_arn().map(String::from);
    let changes = task_changes(plan, arns, &describe(&current));
    if changes.is_empty() {
        return Ok((arn, Outcome::Unchanged));
    }
    if dry_run {
        return Ok((arn, Outcome::WouldModify(changes)));
    }
    let status = current.status().unwrap_or_default();
    if !MODIFIABLE.contains(&status) {
        return Err(Error::runtime(format!(
            "replication task {id} must change ({}) but is {status}: DMS modifies a task only when it is ready, stopped or failed",
            changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .with_hint(format!("stop it (aws dms stop-replication-task --replication-task-arn {}), then run apply again", arn.unwrap_or_default())));
    }
    dms.modify_replication_task()
        .set_replication_task_arn(arn.clone())
        .migration_type(migration)
        .table_mappings(mappings)
        .replication_task_settings(settings)
        .send()
        .await
        .map_err(|e| dms_error("ModifyReplicationTask", &id, e))?;
    Ok((arn, Outcome::Modified(changes)))
}

async fn wait_instance_available(
    dms: &Client,
    arn: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30 * 60);
    loop {
        let a = dms
            .describe_replication_instances()
            .filters(filter("replication-instance-arn", arn)?)
            .send()
            .await
            .map_err(|e| dms_error("DescribeReplicationInstances", arn, e))?;
        let status = a
            .replication_instances()
            .first()
            .and_then(|r| r.replication_instance_status())
            .unwrap_or("missing")
            .to_string();
        if status == "available" {
            return Ok(());
        }
        if std::time::Instant::now() > deadline
            || matches!(status.as_str(), "failed" | "missing" | "deleting")
        {
            return Err(Error::runtime(format!(
                "replication instance {arn} is {status}, not available"
            ))
            .with_hint(
                "see the instance in the DMS console; run apply again once it is available",
            ));
        }
        progress(&format!(
            "replication instance: {status}, waiting until it is available"
        ));
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// How long `--start` waits for a task being created or modified to become ready before it
/// asks DMS to start it anyway (DMS then says whether it can).
const SETTLE: Duration = Duration::from_secs(30);

/// Starts a task that never ran (`start-replication`) or resumes a stopped or failed one
/// (`resume-processing`); a running task is left alone. A task still `creating` or
/// `modifying` is waited for up to [`SETTLE`], then started as if ready. Returns the line to
/// print.
pub async fn start(dms: &Client, arn: &str) -> Result<String> {
    let settle_until = std::time::Instant::now() + SETTLE;
    let (id, status) = loop {
        let t = describe_task(dms, ("replication-task-arn", arn))
            .await?
            .ok_or_else(|| Error::runtime(format!("replication task {arn} disappeared")))?;
        let id = t.replication_task_identifier().unwrap_or(arn).to_string();
        let status = t.status().unwrap_or_default().to_string();
        if !matches!(status.as_str(), "creating" | "modifying")
            || std::time::Instant::now() > settle_until
        {
            break (id, status);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let kind = match status.as_str() {
        "running" | "starting" => return Ok(format!("replication task {id}: already {status}")),
        "ready" | "creating" | "modifying" => StartReplicationTaskTypeValue::StartReplication,
        "stopped" | "failed" => StartReplicationTaskTypeValue::ResumeProcessing,
        other => {
            return Err(Error::runtime(format!(
                "replication task {id} is {other} and cannot be started now"
            ))
            .with_hint("wait until it is ready or stopped, then run apply --start again"))
        }
    };
    dms.start_replication_task()
        .replication_task_arn(arn)
        .start_replication_task_type(kind.clone())
        .send()
        .await
        .map_err(|e| dms_error("StartReplicationTask", &id, e))?;
    Ok(format!(
        "replication task {id}: {}",
        if kind == StartReplicationTaskTypeValue::StartReplication {
            "started"
        } else {
            "resumed"
        }
    ))
}

/// Prints the task's state and full-load progress every 10 s until it runs CDC (for
/// `full-load`: until it stopped after the load); an error when it fails or stops otherwise.
pub async fn wait(
    dms: &Client,
    arn: &str,
    mode: Mode,
    progress: &mut dyn FnMut(&str),
) -> Result<String> {
    let mut last = String::new();
    loop {
        let t = describe_task(dms, ("replication-task-arn", arn))
            .await?
            .ok_or_else(|| Error::runtime(format!("replication task {arn} disappeared")))?;
        let id = t.replication_task_identifier().unwrap_or(arn).to_string();
        let status = t.status().unwrap_or_default().to_string();
        let stats = t.replication_task_stats();
        let pct = stats.map(|s| s.full_load_progress_percent()).unwrap_or(0);
        let loaded = stats.map(|s| s.tables_loaded()).unwrap_or(0);
        let errored = stats.map(|s| s.tables_errored()).unwrap_or(0);
        let line = format!("replication task {id}: {status}, full load {pct}% ({loaded} table(s) loaded, {errored} errored)");
        if line != last {
            progress(&line);
            last = line;
        }
        let stop_reason = t.stop_reason().unwrap_or_default().to_string();
        match status.as_str() {
            "running" if mode == Mode::Cdc || (mode == Mode::FullLoadAndCdc && pct >= 100) => {
                return Ok(format!("replication task {id}: running CDC"))
            }
            "failed" => {
                return Err(Error::runtime(format!(
                    "replication task {id} failed: {}",
                    t.last_failure_message().unwrap_or(&stop_reason)
                ))
                .with_hint(
                    "see the task's CloudWatch log; fix the cause and run apply --start again",
                ))
            }
            "stopped" if mode == Mode::FullLoad && stop_reason.contains("FULL_LOAD") => {
                return Ok(format!("replication task {id}: full load finished"))
            }
            "stopped" => {
                return Err(
                    Error::runtime(format!("replication task {id} stopped: {stop_reason}"))
                        .with_hint("run apply --start to resume it"),
                )
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}
