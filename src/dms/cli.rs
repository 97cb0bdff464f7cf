//! The `pgcdc dms …` subcommands: their arguments and what each prints. `src/cli` only
//! hands them over ([`DmsCommand::run`]).

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;
use crate::error::Result;

/// `pgcdc dms`: the AWS DMS task that does what the configuration does.
#[derive(Subcommand)]
pub enum DmsCommand {
    /// Write the equivalent DMS objects as AWS CLI --cli-input-json files.
    ///
    /// Also DIFFERENCES.md (what DMS will do differently, from this source's actual tables
    /// and values) and README.md (the commands that create them).
    ///
    /// Reads the source catalog and the largest value of each LOB column (one scan per
    /// table) to size the task's LOB settings. Settings the configuration cannot say go in
    /// an optional [dms] section: name, sink, service_access_role_arn, s3_url,
    /// instance_class, allocated_storage, lob_max_size.
    Plan {
        #[arg(short, long)]
        config: PathBuf,
        /// The directory to write; new or empty unless --force.
        #[arg(long)]
        out: PathBuf,
        /// Replace the contents of a non-empty --out.
        #[arg(long)]
        force: bool,
    },
    /// Create or update the planned DMS objects through the DMS API, idempotently.
    ///
    /// Uses [aws] region and endpoint_url and the standard credential chain. A second run
    /// changes nothing and says so.
    ///
    /// Endpoints are modified when a planned setting differs; the replication instance is
    /// created but never resized; the task is modified only when ready, stopped or failed.
    /// Needs [dms] service_access_role_arn.
    Apply {
        #[arg(short, long)]
        config: PathBuf,
        /// Start the task (a task that never ran) or resume it (stopped or failed).
        #[arg(long)]
        start: bool,
        /// Show the task's progress until it runs CDC (full-load mode: until the load
        /// finished); exit 1 when it fails.
        #[arg(long)]
        wait: bool,
        /// Print what would be created or changed, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The DMS task's state and per-table statistics beside pgcdc's own counts.
    ///
    /// Counts that differ are marked (`*`). Exit 1 when the task does not exist (run
    /// `pgcdc dms apply`), 2 when DMS denies access.
    Status {
        #[arg(short, long)]
        config: PathBuf,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Compare DMS's S3 output with pgcdc's, table by table and row by row.
    ///
    /// Reads DMS's Parquet and CSV files (gzip or not, with or without header and Op,
    /// full-load and CDC, date folders) under --dms, pgcdc's output (native or DMS layout)
    /// under --ours, takes columns and types from the source, and reports rows only in DMS,
    /// only in pgcdc, and differing cells with a likely reason. Exit 3 when they differ.
    Compare {
        #[arg(short, long)]
        config: PathBuf,
        /// DMS's output: a directory or s3://bucket/prefix/ (the S3 target's BucketFolder).
        #[arg(long)]
        dms: String,
        /// pgcdc's output; default: the Parquet sink's target ([dms] sink, else the first).
        #[arg(long)]
        ours: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: CompareFormat,
        /// Write the report to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// The report formats of `pgcdc dms compare`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CompareFormat {
    Text,
    Json,
    Markdown,
    Html,
}

impl DmsCommand {
    /// Runs the subcommand; returns the exit code.
    pub async fn run(self) -> Result<i32> {
        match self {
            DmsCommand::Plan { config, out, force } => {
                let config = Config::load(&config)?;
                let plan = super::plan::build(&config).await?;
                let files = super::plan::write(&plan, &out, force)?;
                println!(
                    "DMS task {} (sink {}, {} table(s), LobMaxSize {} KiB) planned in {}:",
                    plan.names.task,
                    plan.target.sink_number(),
                    plan.facts.tables.len(),
                    plan.lobs.max_kib,
                    out.display()
                );
                for f in files {
                    println!("  {}", f.display());
                }
                for r in &plan.lobs.at_risk {
                    println!("warning: {}.{} holds a value of {} bytes, larger than the LOB size DMS will keep (see DIFFERENCES.md)", r.table, r.column, r.largest);
                }
                Ok(0)
            }
            DmsCommand::Apply {
                config,
                start,
                wait,
                dry_run,
            } => {
                let config = Config::load(&config)?;
                let opts = super::apply::ApplyOptions {
                    dry_run,
                    start,
                    wait,
                };
                let report =
                    super::apply::apply(&config, opts, &mut |line| eprintln!("{line}")).await?;
                for line in report.lines() {
                    println!("{line}");
                }
                Ok(0)
            }
            DmsCommand::Status { config, json } => {
                let status = super::status::status(&Config::load(&config)?).await?;
                if json {
                    let doc = serde_json::to_string_pretty(&status)
                        .map_err(|e| crate::error::Error::runtime(e.to_string()))?;
                    println!("{doc}");
                } else {
                    print!("{}", super::status::render(&status));
                }
                Ok(0)
            }
            DmsCommand::Compare {
                config,
                dms,
                ours,
                format,
                out,
            } => {
                let config = Config::load(&config)?;
                let opts = super::compare::Options { dms, ours };
                let report = super::compare::compare(&config, &opts).await?;
                let doc = match format {
                    CompareFormat::Text => super::compare::text::render(&report),
                    CompareFormat::Json => serde_json::to_string_pretty(&report)
                        .map_err(|e| crate::error::Error::runtime(e.to_string()))?
                        + "\n",
                    CompareFormat::Markdown => super::compare::markdown::render(&report),
                    CompareFormat::Html => super::compare::html::render(&report),
                };
                match out {
                    Some(path) => {
                        std::fs::write(&path, doc).map_err(|e| {
                            crate::error::Error::io(format!("writing {}", path.display()), &e)
                        })?;
                        let n = report.tables.iter().filter(|t| !t.is_equal()).count();
                        println!(
                            "{} table(s) compared, {n} differ; report in {}",
                            report.tables.len(),
                            path.display()
                        );
                    }
                    None => print!("{doc}"),
                }
                Ok(if report.equal { 0 } else { 3 })
            }
        }
    }
}
