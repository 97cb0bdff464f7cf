//! Argument parsing and presentation. Every command's work lives elsewhere; this module
//! turns its result into text and an exit code (SPEC 3: 0 ok, 1 runtime, 2 usage/config,
//! 3 differences).

mod output;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::pipeline::runner::{self, RunOptions, Until};

#[derive(Parser)]
#[command(name = "pgcdc", version, about = "PostgreSQL logical replication to Parquet and Kinesis")]
struct Cli {
    /// Log format: human-readable text or one JSON object per line (timestamp, level,
    /// target, message and the event's fields).
    #[arg(long, global = true, value_enum, env = "PGCDC_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Replicate: stream changes into every sink until --until-lsn or SIGINT/SIGTERM.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Overrides pipeline.mode.
        #[arg(long)]
        mode: Option<Mode>,
        /// Stop once every transaction committed at or before LSN is durable (`X/Y` or `current`).
        #[arg(long)]
        until_lsn: Option<Until>,
        /// Reload SCHEMA.TABLE while CDC runs: a fresh snapshot of it replaces what the
        /// target holds for it (repeatable).
        #[arg(long, value_name = "SCHEMA.TABLE")]
        reload: Vec<String>,
        /// Recover from a lost (dropped or invalidated) slot: a new slot, every table loaded
        /// again from its snapshot into a new load generation, then CDC from there.
        #[arg(long)]
        resync: bool,
        /// With --resync: also when the slot is healthy.
        #[arg(long, requires = "resync")]
        force: bool,
    },
    /// Preflight: connectivity, wal_level, capacity, privileges, publication, replica
    /// identities, column types, slot, targets.
    ///
    /// Each finding is ok, warning or blocker, with a fix. Exit 0 without blockers, 2 with.
    Check {
        #[arg(short, long)]
        config: PathBuf,
        /// Print the findings as one JSON object ({"blockers", "warnings", "findings": [{"level", "check", "finding", "fix"}]}).
        #[arg(long)]
        json: bool,
    },
    /// Apply migrations/ in order: the publication, the slot, and with --admin-url the
    /// least-privilege role in source.url and its grants. Safe to run again: what exists
    /// is kept; what was applied is recorded in the publication's comment.
    Setup {
        #[arg(short, long)]
        config: PathBuf,
        /// Connect as this (admin) user instead of source.url, and also create the role in
        /// source.url (LOGIN REPLICATION, nothing else) with SELECT on the published tables.
        #[arg(long, env = "PGCDC_ADMIN_URL", hide_env_values = true)]
        admin_url: Option<String>,
        /// Print the SQL that would be applied (for a DBA to review or run) and change nothing.
        #[arg(long)]
        print: bool,
    },
    /// Slot lag, confirmed LSN, target checkpoint and per-table counts.
    Status {
        #[arg(short, long)]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare the target with the source at one exact LSN (a snapshot of the source);
    /// exit 3 on any difference.
    Validate {
        #[arg(short, long)]
        config: PathBuf,
        /// How long to wait, in all, for the snapshot (it waits for running and prepared
        /// transactions) and for the target to reach the snapshot's LSN (`pgcdc run` must be
        /// running, or have run with --until-lsn current).
        #[arg(long, default_value = "5m", value_parser = parse_timeout)]
        timeout: std::time::Duration,
        /// Report as a text table or as JSON.
        #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
        format: ValidateFormat,
        /// The target to validate: the N-th [[sink]] of the configuration (from 1); by
        /// default the first Parquet sink.
        #[arg(long, value_name = "N")]
        sink: Option<usize>,
    },
    /// The main job on an embedded default: a throwaway PostgreSQL, a sample schema and
    /// workload, replicated into ./pgcdc-demo/ and checked against the source.
    Demo {
        /// Output directory.
        #[arg(long, default_value = "pgcdc-demo")]
        dir: PathBuf,
    },
    /// A throwaway PostgreSQL for `make bench` (one JSON line on stdout, held until stdin
    /// closes); not a user command.
    #[command(hide = true)]
    Cluster {
        /// A postgresql.conf line added after the base settings (repeatable).
        #[arg(long)]
        conf: Vec<String>,
    },
    /// The DMS companion: plan and apply the AWS DMS task equivalent to the configuration.
    #[command(subcommand)]
    Dms(crate::dms::cli::DmsCommand),
    /// Drop the slot and the publication.
    Teardown {
        #[arg(short, long)]
        config: PathBuf,
        /// Required: confirms that the slot (and its retained WAL) may be dropped.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ValidateFormat {
    Text,
    Json,
}

fn parse_timeout(s: &str) -> std::result::Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 30s, 5m"))
}

/// Entry point of the binary: returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            tracing::debug!(error = %e.message, "command failed");
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGCDC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Log lines go above the full load's progress bars instead of through them.
    // Colours only on a terminal: captured or redirected logs are plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| crate::logging::LogWriter);
    match format {
        LogFormat::Text => builder.init(),
        // The event's fields are top-level keys next to timestamp, level, target and message.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn load(path: &std::path::Path) -> Result<Config> {
    Config::load(path)
}

async fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Run { config, mode, until_lsn, reload, resync, force } => {
            let mut config = load(&config)?;
            if let Some(m) = mode {
                config.pipeline.mode = m;
            }
            let _metrics = crate::metrics::serve(config.metrics.as_ref()).await?;
            let summary = runner::run(&config, RunOptions { until: until_lsn, until_later: None, reload, resync: crate::load::resync::ResyncRequest::from_flags(resync, force) }).await?;
            output::run_summary(&summary);
            Ok(0)
        }
        Command::Check { config, json } => {
            let config = load(&config)?;
            let items = crate::admin::check::check(&config).await?;
            Ok(output::check_report(&items, json))
        }
        Command::Setup { config, admin_url, print } => {
            let config = load(&config)?;
            let opts = crate::admin::setup::SetupOptions { admin_url, print };
            let report = crate::admin::setup::setup(&config, &opts).await?;
            if print {
                for s in &report.sql {
                    println!("{s}\n");
                }
                for a in report.actions {
                    eprintln!("{a}");
                }
            } else {
                for a in report.actions {
                    println!("{a}");
                }
            }
            Ok(0)
        }
        Command::Status { config, json } => {
            let config = load(&config)?;
            let status = crate::admin::status::status(&config).await?;
            output::status(&status, json);
            Ok(0)
        }
        Command::Validate { config, timeout, format, sink } => {
            let config = load(&config)?;
            let opts = crate::validate::run::ValidateOptions { timeout, sink, ..Default::default() };
            let report = crate::validate::run::validate(&config, &opts).await?;
            Ok(output::validate(&report, format == ValidateFormat::Json))
        }
        Command::Demo { dir } => {
            if dir.to_string_lossy().contains("://") {
                return Err(Error::config(format!("`pgcdc demo` is not supported for S3 targets yet (--dir {})", dir.display()))
                    .with_hint("give --dir a local directory"));
            }
            let report = crate::demo::run(&dir).await?;
            Ok(output::demo(&report))
        }
        Command::Cluster { conf } => {
            tokio::task::block_in_place(|| crate::demo::cluster_serve::serve(&conf))?;
            Ok(0)
        }
        Command::Dms(dms) => dms.run().await,
        Command::Teardown { config, yes } => {
            let config = load(&config)?;
            if !yes {
                return Err(Error::config("teardown drops the replication slot and the publication; refusing without --yes")
                    .with_hint("run `pgcdc teardown -c FILE --yes`"));
            }
            for a in crate::admin::setup::teardown(&config).await? {
                println!("{a}");
            }
            Ok(0)
        }
    }
}
