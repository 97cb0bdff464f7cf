//! `pgcdc dms plan -c FILE --out DIR` (SPEC 7): the AWS DMS objects equivalent to a
//! configuration, as AWS CLI `--cli-input-json` documents, with `DIFFERENCES.md` and a
//! `README.md` of the commands that create them.
//!
//! [`build`] reads the configuration's sink choice ([`Target`]) and the source's facts
//! ([`source_facts`]) and returns the documents in memory ([`Plan`]); `dms apply` sends the
//! very same documents through the DMS API. [`write`] puts them into a directory all at once
//! (a temporary sibling renamed into place), so a failure never leaves half a plan.

pub mod differences;
pub mod endpoints;
pub mod rule_mappings;
pub mod source_facts;
pub mod table_mappings;
pub mod task;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::Config;
use crate::dms::names::Names;
use crate::dms::target::Target;
use crate::error::{Error, Result};
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;

/// What the plan cannot know: `${NAME}` strings in the documents. The README of a plan says
/// how to fill them in on the command line; `dms apply` fills them itself (the ARNs DMS
/// answers, the stream's ARN from Kinesis, `[dms] service_access_role_arn`).
pub mod placeholders {
    pub const SOURCE_ENDPOINT_ARN: &str = "${SOURCE_ENDPOINT_ARN}";
    pub const TARGET_ENDPOINT_ARN: &str = "${TARGET_ENDPOINT_ARN}";
    pub const REPLICATION_INSTANCE_ARN: &str = "${REPLICATION_INSTANCE_ARN}";
    pub const KINESIS_STREAM_ARN: &str = "${KINESIS_STREAM_ARN}";
    pub const SERVICE_ACCESS_ROLE_ARN: &str = "${SERVICE_ACCESS_ROLE_ARN}";

    /// Whether `v` is a placeholder.
    pub fn is_placeholder(v: &str) -> bool {
        v.starts_with("${") && v.ends_with('}')
    }
}

/// The files of a plan, in the order they are created.
pub const SOURCE_ENDPOINT_FILE: &str = "source-endpoint.json";
pub const TARGET_ENDPOINT_FILE: &str = "target-endpoint.json";
pub const INSTANCE_FILE: &str = "replication-instance.json";
pub const TASK_FILE: &str = "replication-task.json";

/// A plan in memory.
#[derive(Debug, Clone)]
pub struct Plan {
    pub names: Names,
    pub target: Target,
    /// `create-endpoint` input of the source, without the password.
    pub source_endpoint: Value,
    pub target_endpoint: Value,
    pub instance: Value,
    pub task: Value,
    /// The table mappings and task settings, also inside `task` as strings.
    pub table_mappings: Value,
    pub task_settings: Value,
    pub lobs: task::LobSizing,
    pub differences: String,
    pub facts: source_facts::SourceFacts,
}

/// Builds the plan of `config`: a configuration error when no sink can be mirrored, a
/// runtime error when the source cannot be read (unreachable, missing privileges).
pub async fn build(config: &Config) -> Result<Plan> {
    let target = Target::of(config)?;
    let names = Names::of(config, target.kind());
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let catalog = Catalog::new(crate::source::sql::connect(&info).await?);
    let facts = source_facts::read(config, &catalog).await?;
    let cap = config.dms.as_ref().and_then(|d| d.lob_max_size);
    let lobs = task::size_lobs(&facts.tables, cap, matches!(target, Target::Kinesis { .. }));
    let partition = match &target {
        Target::Kinesis { options, .. } => Some(options.partition_key_type),
        Target::S3 { .. } => None,
    };
    let mut table_mappings = table_mappings::table_mappings(&config.source.tables, &facts, partition);
    // The [[rule]]s as DMS transformation and selection rules, after pgcdc's selection.
    let (rules, rule_notes) = {
        let first = table_mappings["rules"].as_array().map_or(0, Vec::len) + 1;
        rule_mappings::rule_mappings(&config.rules, &facts, first)
    };
    if let Some(list) = table_mappings["rules"].as_array_mut() {
        list.extend(rules);
    }
    let task_settings = task::settings(&target, &lobs);
    let mut differences = differences::differences(config, &names, &target, &facts, &lobs);
    if !rule_notes.is_empty() {
        differences.push_str("\n## Rules DMS cannot express\n\n");
        for n in rule_notes {
            differences.push_str(&format!("* {n}\n"));
        }
    }
    Ok(Plan {
        source_endpoint: endpoints::source_endpoint(config, &info, &names, &facts),
        target_endpoint: endpoints::target_endpoint(config, &names, &target),
        instance: task::instance(config, &names),
        task: task::task(config, &names, &table_mappings, &task_settings),
        differences,
        table_mappings,
        task_settings,
        lobs,
        names,
        target,
        facts,
    })
}

impl Plan {
    /// Every file of the plan as (name, contents).
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let pretty =
            |v: &Value| serde_json::to_string_pretty(v).expect("JSON values serialise") + "\n";
        vec![
            (SOURCE_ENDPOINT_FILE, pretty(&self.source_endpoint)),
            (TARGET_ENDPOINT_FILE, pretty(&self.target_endpoint)),
            (INSTANCE_FILE, pretty(&self.instance)),
            (TASK_FILE, pretty(&self.task)),
            ("table-mappings.json", pretty(&self.table_mappings)),
            ("task-settings.json", pretty(&self.task_settings)),
            ("DIFFERENCES.md", self.differences.clone()),
            ("README.md", self.readme()),
        ]
    }

    /// How to create the objects with the AWS CLI, in order, filling in the placeholders.
    fn readme(&self) -> String {
        let n = &self.names;
        // Placeholders left in the target endpoint, replaced in place with sed.
        let target_text = self.target_endpoint.to_string();
        let mut fill = String::new();
        if target_text.contains(placeholders::SERVICE_ACCESS_ROLE_ARN) {
            fill.push_str("ROLE_ARN=arn:aws:iam::ACCOUNT:role/ROLE   # may write to the target (or set [dms] service_access_role_arn and plan again)\n");
            fill.push_str(&format!(
                "sed -i \"s|\\${{SERVICE_ACCESS_ROLE_ARN}}|$ROLE_ARN|\" {TARGET_ENDPOINT_FILE}\n"
            ));
        }
        if let (true, Target::Kinesis { stream, .. }) = (
            target_text.contains(placeholders::KINESIS_STREAM_ARN),
            &self.target,
        ) {
            fill.push_str(&format!(
                "STREAM_ARN=$(aws kinesis describe-stream-summary --stream-name {stream} --query StreamDescriptionSummary.StreamARN --output text)\n\
                 sed -i \"s|\\${{KINESIS_STREAM_ARN}}|$STREAM_ARN|\" {TARGET_ENDPOINT_FILE}\n"
            ));
        }
        format!(
            "# DMS task `{task}`, planned by pgcdc\n\n\
             The AWS DMS objects equivalent to this pgcdc configuration (sink {sink}), as AWS CLI `--cli-input-json` documents. \
             Read `DIFFERENCES.md` first. `pgcdc dms apply -c FILE` creates or updates the same objects without the AWS CLI steps below (the slot is still yours to create).\n\n\
             | file | command |\n|---|---|\n\
             | `{SOURCE_ENDPOINT_FILE}` | `aws dms create-endpoint` (PostgreSQL source, endpoint `{src}`) |\n\
             | `{TARGET_ENDPOINT_FILE}` | `aws dms create-endpoint` (target, endpoint `{tgt}`) |\n\
             | `{INSTANCE_FILE}` | `aws dms create-replication-instance` (`{inst}`) |\n\
             | `{TASK_FILE}` | `aws dms create-replication-task` (`{task}`; `table-mappings.json` and `task-settings.json` are its two settings, readable) |\n\n\
             Values in `${{…}}` are placeholders: the files hold no password and no ARN the plan cannot know. \
             Give the ARNs DMS answers on the command line (they replace the file's value) and fill in the others:\n\n\
             ```sh\n\
             # DMS reads its own slot (not pgcdc's), created with its decoder:\n\
             psql \"$SOURCE_URL\" -c \"SELECT pg_create_logical_replication_slot('{slot}', '{plugin}')\"\n\
             {fill}\
             SRC=$(aws dms create-endpoint --cli-input-json file://{SOURCE_ENDPOINT_FILE} --password \"$PGPASSWORD\" --query Endpoint.EndpointArn --output text)\n\
             TGT=$(aws dms create-endpoint --cli-input-json file://{TARGET_ENDPOINT_FILE} --query Endpoint.EndpointArn --output text)\n\
             INST=$(aws dms create-replication-instance --cli-input-json file://{INSTANCE_FILE} --query ReplicationInstance.ReplicationInstanceArn --output text)\n\
             aws dms wait replication-instance-available --filters Name=replication-instance-arn,Values=$INST\n\
             aws dms create-replication-task --cli-input-json file://{TASK_FILE} \\\n    \
             --source-endpoint-arn \"$SRC\" --target-endpoint-arn \"$TGT\" --replication-instance-arn \"$INST\"\n\
             ```\n",
            task = n.task,
            sink = self.target.sink_number(),
            src = n.source_endpoint,
            tgt = n.target_endpoint,
            inst = n.instance,
            slot = n.slot,
            plugin = endpoints::plugin_name(&self.facts).replace('-', "_"),
        )
    }
}

/// Writes `plan` into `out`: refused (configuration error, nothing written) when `out`
/// exists and is not empty unless `force`, in which case it is replaced whole. The files
/// are written into a temporary sibling directory first and renamed into place, so `out`
/// holds either the old contents or the whole new plan.
pub fn write(plan: &Plan, out: &Path, force: bool) -> Result<Vec<PathBuf>> {
    let non_empty = match std::fs::read_dir(out) {
        Ok(mut d) => d.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(Error::config(format!(
                "--out {} is a file, not a directory",
                out.display()
            ))
            .with_hint("give a new or empty directory"))
        }
        Err(e) => return Err(Error::io(format!("reading --out {}", out.display()), &e)),
    };
    if non_empty && !force {
        return Err(
            Error::config(format!("--out {} is not empty", out.display()))
                .with_hint("give a new or empty directory, or add --force to replace its contents"),
        );
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .ok_or_else(|| Error::config(format!("--out {} has no directory name", out.display())))?;
    let tmp = parent.join(format!(
        ".{}.pgcdc-plan-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let hint = |e: Error| e.with_hint("give --out a directory you can write to");
    std::fs::create_dir(&tmp).map_err(|e| {
        hint(Error::io(
            format!("cannot create the plan next to {}", out.display()),
            &e,
        ))
    })?;
    let result = (|| {
        let mut written = Vec::new();
        for (file, text) in plan.files() {
            let p = tmp.join(file);
            std::fs::write(&p, text)
                .map_err(|e| hint(Error::io(format!("writing {}", p.display()), &e)))?;
            written.push(out.join(file));
        }
        if out.exists() {
            std::fs::remove_dir_all(out)
                .map_err(|e| hint(Error::io(format!("replacing {}", out.display()), &e)))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| {
            hint(Error::io(
                format!("moving the plan into {}", out.display()),
                &e,
            ))
        })?;
        Ok(written)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
