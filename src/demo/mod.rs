//! `pgcdc demo` (SPEC 9): a throwaway cluster, a small shop schema with ~200k rows, a full
//! load and CDC into `./pgcdc-demo/` while a mixed workload runs, stop at the current LSN,
//! a check of the output against the source, and a summary of where to look.

pub mod cluster;
pub mod cluster_serve;
mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::cluster::LocalCluster;
use crate::config::Config;
use crate::error::{Error, Result, ResultExt};
use crate::pipeline::runner::{self, RunOptions};
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::sql;
use crate::validate::compare::{ExampleKind, TableDiff};
use crate::validate::current::compare_current;

pub const TABLES: [&str; 3] = ["customers", "products", "orders"];

pub struct DemoTable {
    pub name: String,
    pub diff: TableDiff,
    pub files: usize,
    pub change_rows: usize,
}

impl DemoTable {
    /// Up to 10 lines naming differences (missing, differing, then extra keys), as the demo
    /// summary prints them.
    pub fn example_lines(&self) -> Vec<String> {
        let values = |key: &[(String, Option<String>)]| key.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>();
        let mut lines = Vec::new();
        for kind in [ExampleKind::Missing, ExampleKind::Differing, ExampleKind::Extra] {
            for e in self.diff.examples.iter().filter(|e| e.kind == kind) {
                lines.push(match (kind, e.columns.first()) {
                    (ExampleKind::Differing, Some(c)) => format!(
                        "key {:?}: column {} is {:?} in the source, {:?} in the target",
                        values(&e.key),
                        c.column,
                        Some(&c.source),
                        Some(&c.target)
                    ),
                    (ExampleKind::Extra, _) => format!("extra key {:?}", values(&e.key)),
                    _ => format!("missing key {:?}", values(&e.key)),
                });
            }
        }
        lines.truncate(10);
        lines
    }
}

pub struct DemoReport {
    pub out_dir: PathBuf,
    pub loaded_rows: u64,
    pub tables: Vec<DemoTable>,
    pub transactions: u64,
    pub streamed: u64,
}

/// Runs the demo into `out_dir` (replaced if it holds an earlier demo).
pub async fn run(out_dir: &Path) -> Result<DemoReport> {
    let cluster = tokio::task::block_in_place(|| LocalCluster::start("logical_decoding_work_mem = '1MB'"))?;
    tracing::info!(port = cluster.port, "started a throwaway PostgreSQL");
    let admin = sql::connect(&ConnInfo::from_url(Some(&cluster.url("postgres")))?).await?;
    admin
        .batch_execute("CREATE DATABASE shop")
        .await
        .map_err(|e| Error::runtime(format!("creating the demo database: {e}")))?;
    let url = cluster.url("shop");
    let info = ConnInfo::from_url(Some(&url))?;
    let client = sql::connect(&info).await?;
    client
        .batch_execute(workload::SCHEMA)
        .await
        .map_err(|e| Error::runtime(format!("creating the demo schema: {}", sql::db_error_text(&e))))?;
    tracing::info!("loading the sample data (about 200k rows)");
    client
        .batch_execute(workload::INITIAL)
        .await
        .map_err(|e| Error::runtime(format!("loading the demo data: {}", sql::db_error_text(&e))))?;

    if out_dir.join("_pgcdc").exists() || out_dir.join("pgcdc.toml").exists() {
        std::fs::remove_dir_all(out_dir).runtime_ctx(|| format!("removing the earlier demo {}", out_dir.display()))?;
    } else if out_dir.exists()
        && std::fs::read_dir(out_dir).runtime_ctx(|| format!("listing {}", out_dir.display()))?.next().is_some()
    {
        return Err(Error::config(format!("{} exists and is not an earlier demo", out_dir.display()))
            .with_hint("remove it or run the demo from another directory"));
    }
    std::fs::create_dir_all(out_dir).runtime_ctx(|| format!("creating {}", out_dir.display()))?;
    let out_dir = out_dir.canonicalize().runtime_ctx(|| format!("resolving {}", out_dir.display()))?;
    let config_text = format!(
        "# Written by `pgcdc demo`.\n[source]\nurl = \"{url}\"\npublication = \"pgcdc_demo\"\nslot = \"pgcdc_demo\"\n\n\
         [pipeline]\nmode = \"full-load-and-cdc\"\n\n[[sink]]\nkind = \"parquet\"\nurl = \"file://{}\"\nflush_interval = \"2s\"\n",
        out_dir.join("out").display()
    );
    let config_path = out_dir.join("pgcdc.toml");
    std::fs::write(&config_path, &config_text).runtime_ctx(|| format!("writing {}", config_path.display()))?;
    let config = Config::parse(&config_text)?;
    crate::admin::setup::setup(&config, &Default::default()).await?;

    let (until_tx, until_rx) = tokio::sync::oneshot::channel();
    let run_config = config.clone();
    let replication =
        tokio::spawn(async move { runner::run(&run_config, RunOptions { until: None, until_later: Some(until_rx), reload: Vec::new(), resync: Default::default() }).await });
    // Start the workload once the load has taken its snapshot, so it runs during the copy.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    workload::run(&client).await?;
    let catalog = Catalog::new(client);
    let stop_at = catalog.current_wal_lsn().await?;
    let _ = until_tx.send(stop_at);
    let summary = replication.await.map_err(|e| Error::runtime(format!("replication task failed: {e}")))??;

    let mut tables = Vec::new();
    for name in TABLES {
        let schema = catalog.table_schema("public", name).await?;
        tables.push(compare_table(&catalog, &schema, &out_dir.join("out")).await?);
    }
    drop(cluster);
    Ok(DemoReport {
        out_dir,
        loaded_rows: summary.load.as_ref().map_or(0, |l| l.rows),
        tables,
        transactions: summary.stats.as_ref().map_or(0, |s| s.transactions),
        streamed: summary.stats.as_ref().map_or(0, |s| s.streamed_transactions),
    })
}

async fn compare_table(catalog: &Catalog, schema: &Arc<crate::model::TableSchema>, root: &Path) -> Result<DemoTable> {
    let dir = crate::sink::parquet::naming::table_dir(root, &schema.schema, &schema.name);
    let c = compare_current(&catalog.client, schema, &dir, None).await?;
    if !c.duplicates.is_empty() {
        return Err(Error::runtime(format!("{}: {} duplicated (_lsn, _seq) pairs", schema.name, c.duplicates.len())));
    }
    Ok(DemoTable { name: schema.name.clone(), diff: c.diff, files: c.files, change_rows: c.change_rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::compare::{compare_keyed, Rows};

    #[test]
    fn example_lines_keep_the_demo_wording() {
        let cols = vec!["id".to_string(), "v".to_string()];
        let s = |v: &str| Some(v.to_string());
        let source: Rows = [(vec![s("1")], vec![s("1"), s("a")]), (vec![s("2")], vec![s("2"), s("b")])].into();
        let target: Rows = [(vec![s("2")], vec![s("2"), None]), (vec![s("3")], vec![s("3"), s("c")])].into();
        let t = DemoTable { name: "t".into(), diff: compare_keyed(&cols, &cols[..1], &source, &target), files: 1, change_rows: 2 };
        assert_eq!(
            t.example_lines(),
            vec![
                r#"missing key [Some("1")]"#.to_string(),
                r#"key [Some("2")]: column v is Some(Some("b")) in the source, Some(None) in the target"#.to_string(),
                r#"extra key [Some("3")]"#.to_string(),
            ]
        );
    }
}
