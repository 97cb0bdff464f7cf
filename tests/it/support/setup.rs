//! A test's own database, publication, slot and output directory ([`Setup`]), its configs,
//! background runs ([`Running`]), and the checks of pgcdc's output: materialise the target
//! with the SPEC 5.1 rule and compare it with the source, value by value.

use std::path::{Path, PathBuf};
use std::process::Output;

use pgcdc::source::catalog::Catalog;
use pgcdc::source::conninfo::ConnInfo;
use pgcdc::validate::current::compare_current;
use pgcdc::validate::materialize::{read_table_rows, ChangeRow};

use super::pg::{fresh_db, TestDb};
use super::process::{assert_success, ChildGuard};
use super::util::{pgcdc, write_config};

/// A test's names and paths: its own publication, slot and output directory.
pub struct Setup {
    pub db: TestDb,
    pub publication: String,
    pub slot: String,
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub async fn new(hint: &str) -> Setup {
        let db = fresh_db(hint).await;
        let publication = db.unique("pub");
        let slot = db.unique("slot");
        Setup { db, publication, slot, dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Writes a config with a Parquet sink into the output directory; `extra_sink` lines go
    /// into the `[[sink]]` table.
    pub fn config(&self, extra_sink: &str) -> PathBuf {
        let toml = format!(
            "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"cdc\"\nstatus_interval = \"1s\"\n\n\
             [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\n{}{extra_sink}\n",
            self.db.url,
            self.publication,
            self.slot,
            self.out().display(),
            if extra_sink.contains("flush_interval") { "" } else { "flush_interval = \"1s\"\n" },
        );
        write_config(self.dir.path(), &toml)
    }

    /// Writes a config in `mode` with `extra_pipeline` lines in `[pipeline]` and a Parquet
    /// sink flushing every second.
    pub fn config_with(&self, mode: &str, extra_pipeline: &str) -> PathBuf {
        let toml = format!(
            "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"{mode}\"\nstatus_interval = \"1s\"\n{extra_pipeline}\n\n\
             [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\n",
            self.db.url,
            self.publication,
            self.slot,
            self.out().display()
        );
        write_config(self.dir.path(), &toml)
    }

    /// Writes a cdc config for this test's publication, slot and output directory with `url`
    /// as the source (another user, TLS parameters, ...); `extra_source` lines go into
    /// `[source]`. See [`config_toml`].
    pub fn config_with_source(&self, url: &str, extra_source: &str) -> PathBuf {
        write_config(self.dir.path(), &config_toml(url, &self.publication, &self.slot, &self.out(), extra_source))
    }

    /// `pgcdc <args> -c <config>`, waiting for it; returns the output.
    pub async fn pgcdc(&self, config: &Path, args: &[&str]) -> Output {
        let mut cmd = pgcdc();
        cmd.args(args).arg("-c").arg(config);
        super::process::output_of(cmd).await
    }

    /// `pgcdc run --until-lsn current`, asserting success.
    pub async fn run_until_current(&self, config: &Path) -> Output {
        let out = self.pgcdc(config, &["run", "--until-lsn", "current"]).await;
        // Shown when the test fails later.
        eprintln!("pgcdc run stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        assert_success(&out, "pgcdc run --until-lsn current");
        out
    }

    /// The table's directory, named as pgcdc names it (`naming::table_dir`).
    pub fn table_dir(&self, schema: &str, table: &str) -> PathBuf {
        pgcdc::sink::parquet::naming::table_dir(&self.out(), schema, table)
    }

    /// Every change row of a table, sorted by (_lsn, _seq).
    pub fn change_rows(&self, schema: &str, table: &str) -> Vec<ChangeRow> {
        let (mut rows, _, _) = read_table_rows(&self.table_dir(schema, table)).expect("read output");
        rows.sort_by_key(|r| (r.lsn, r.seq));
        rows
    }

    /// Asserts that the materialised target equals the source table and has no duplicate
    /// `(_lsn, _seq)`. Returns the number of rows compared.
    pub async fn assert_matches_source(&self, schema: &str, table: &str) -> usize {
        let info = ConnInfo::from_url(Some(&self.db.url)).expect("url");
        let catalog = Catalog::new(pgcdc::source::sql::connect(&info).await.expect("connect"));
        let ts = catalog.table_schema(schema, table).await.expect("table schema");
        self.compare_with_source(&catalog, schema, table, &ts, None).await
    }

    /// Like [`Setup::assert_matches_source`] for a table published with a column list and a
    /// row filter: the source is read as `SELECT <columns> FROM table WHERE <filter>`
    /// (`columns` in table order), and the target must equal exactly that. The key is the
    /// table's key (every key column must be among `columns`).
    pub async fn assert_matches_source_published(&self, schema: &str, table: &str, columns: &[&str], filter: &str) -> usize {
        let info = ConnInfo::from_url(Some(&self.db.url)).expect("url");
        let catalog = Catalog::new(pgcdc::source::sql::connect(&info).await.expect("connect"));
        let full = catalog.table_schema(schema, table).await.expect("table schema");
        let key_names: Vec<String> = full.key.iter().map(|&i| full.columns[i].name.clone()).collect();
        let mut ts = (*full).clone();
        ts.columns.retain(|c| columns.contains(&c.name.as_str()));
        assert_eq!(ts.columns.len(), columns.len(), "{schema}.{table} lacks some of {columns:?}");
        ts.key = key_names
            .iter()
            .map(|k| ts.columns.iter().position(|c| &c.name == k).unwrap_or_else(|| panic!("key column {k} is not in {columns:?}")))
            .collect();
        self.compare_with_source(&catalog, schema, table, &std::sync::Arc::new(ts), Some(filter)).await
    }

    /// Materialises the target's `schema.table` and asserts it equals the source read with
    /// `ts`'s columns (and `WHERE filter`), with no duplicate `(_lsn, _seq)`.
    async fn compare_with_source(&self, catalog: &Catalog, schema: &str, table: &str, ts: &std::sync::Arc<pgcdc::model::TableSchema>, filter: Option<&str>) -> usize {
        let c = compare_current(&catalog.client, ts, &self.table_dir(schema, table), filter).await.expect("compare with the source");
        assert!(c.duplicates.is_empty(), "{schema}.{table}: duplicated (_lsn, _seq): {:?}", &c.duplicates[..c.duplicates.len().min(5)]);
        assert!(c.diff.is_clean(), "{schema}.{table} differs from the source: {:#?}", c.diff);
        c.diff.source_rows
    }
}

/// A cdc config with a Parquet sink in `out` (flushing every second); `extra_source` lines
/// go into `[source]`.
pub fn config_toml(url: &str, publication: &str, slot: &str, out: &Path, extra_source: &str) -> String {
    format!(
        "[source]\nurl = \"{url}\"\npublication = \"{publication}\"\nslot = \"{slot}\"\n{extra_source}\n\
         [pipeline]\nmode = \"cdc\"\nstatus_interval = \"1s\"\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\n",
        out.display()
    )
}

/// The entry of `schema.table` (`name`) in a `pgcdc validate --format json` report.
#[track_caller]
pub fn report_table<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| format!("{}.{}", t["schema"].as_str().unwrap(), t["table"].as_str().unwrap()) == name)
        .unwrap_or_else(|| panic!("{name} not in the report: {report:#}"))
}

/// All `*.parquet` files under `dir`, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// How long [`Running::stop`] waits after SIGTERM before it kills the run (and the
/// clean-stop assertion fails); a clean stop takes a second or two.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A `pgcdc run -c cfg` child without an until-LSN (stdout and stderr captured), stopped
/// with SIGTERM by [`Running::stop`], or killed when dropped (also when the test panics).
pub struct Running(ChildGuard);

impl Running {
    pub fn start(cfg: &Path) -> Running {
        let mut cmd = pgcdc();
        cmd.arg("run")
            .arg("-c")
            .arg(cfg)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Running(ChildGuard::spawn(&mut cmd, "pgcdc run"))
    }

    /// [`Running::start`], then waits until the run streams: the full load (if any) wrote
    /// the first checkpoint.
    pub fn start_streaming(cfg: &Path, s: &Setup) -> Running {
        let r = Running::start(cfg);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !s.out().join("_pgcdc/checkpoint.json").exists() {
            assert!(std::time::Instant::now() < deadline, "pgcdc run never started streaming");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        r
    }

    /// Waits until the slot confirmed everything written so far (the run flushed it).
    pub async fn wait_caught_up(&self, s: &Setup) {
        // The insert position: with synchronous_commit off, the write position may lag.
        let target: pgcdc::model::Lsn =
            s.db.query_scalar("SELECT pg_current_wal_insert_lsn()::text").await.unwrap().parse().unwrap();
        let started = std::time::Instant::now();
        loop {
            let confirmed: Option<pgcdc::model::Lsn> = s.db.slot_confirmed_lsn(&s.slot).await.and_then(|l| l.parse().ok());
            if confirmed.is_some_and(|c| c >= target) {
                return;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "pgcdc run did not catch up to {target}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then the run's output, asserting a clean stop (exit 0).
    pub async fn stop(mut self) -> Output {
        let out = tokio::task::spawn_blocking(move || self.0.stop(STOP_TIMEOUT)).await.expect("join");
        eprintln!("pgcdc run (stopped) stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        assert_success(&out, "pgcdc run stopped with SIGTERM");
        out
    }
}
