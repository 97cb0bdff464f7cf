//! `pgcdc validate` (SPEC 6) against a real server: clean after `run --until-lsn current`,
//! clean while the source keeps changing under a running `pgcdc run`, exit 3 naming the
//! table, key and column when the target is tampered with, tables without a key reported as
//! not validatable, and a clear exit 1 when no pipeline brings the target up to the snapshot.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{assert_success, describe, parquet_files, report_table, stderr, stdout, ChildGuard, Setup};

async fn validate(s: &Setup, cfg: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["validate"];
    args.extend_from_slice(extra);
    let out = s.pgcdc(cfg, &args).await;
    eprintln!("pgcdc validate {extra:?}: {}", describe(&out));
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("validate --format json printed no JSON ({e}): {}", describe(out)))
}

/// Waits until no walsender holds the pipeline's slot (a finished run's exits asynchronously).
async fn wait_slot_active(s: &Setup, active: bool) {
    let sql = format!("SELECT active::text FROM pg_replication_slots WHERE slot_name = '{}'", s.slot);
    let want = if active { "true" } else { "false" };
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.db.query_scalar(&sql).await.as_deref() != Some(want) {
        assert!(Instant::now() < deadline, "slot {} never became active = {want}", s.slot);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `pgcdc run` child process logging to a file, stopped with SIGTERM (or killed) when dropped.
struct RunningPgcdc {
    child: ChildGuard,
    log: PathBuf,
}

impl RunningPgcdc {
    fn start(cfg: &Path, log: PathBuf) -> RunningPgcdc {
        let mut cmd = crate::support::pgcdc();
        cmd.arg("run").arg("-c").arg(cfg).stdin(Stdio::null()).stdout(Stdio::null());
        cmd.stderr(std::fs::File::create(&log).expect("run log"));
        RunningPgcdc { child: ChildGuard::spawn(&mut cmd, "pgcdc run"), log }
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        let status = self.child.stop(Duration::from_secs(30)).status;
        eprintln!("pgcdc run log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        status
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_is_clean_after_a_run_and_while_the_source_keeps_changing() {
    let s = Setup::new("val_clean").await;
    s.db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int, price numeric(10,2), seen timestamptz);
         CREATE TABLE pairs (region text, id int, v jsonb, PRIMARY KEY (region, id));
         CREATE TABLE logged (at int, msg text);
         ALTER TABLE logged REPLICA IDENTITY FULL;
         CREATE TABLE keyless (a int, b text);
         CREATE TABLE unpublished (id int PRIMARY KEY)",
    )
    .await;
    s.db.create_publication(&s.publication, "items, pairs, logged, keyless").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec(
        "INSERT INTO items SELECT g, 'item ' || g, g % 10, g * 1.5, now() FROM generate_series(1, 2000) g;
         UPDATE items SET qty = qty + 100 WHERE id % 3 = 0;
         DELETE FROM items WHERE id % 7 = 0;
         INSERT INTO pairs SELECT r, g, jsonb_build_object('g', g) FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 50) g;
         UPDATE pairs SET id = id + 1000 WHERE region = 'us' AND id <= 10;
         -- whole-row comparison: duplicates count, a delete removes one of them
         INSERT INTO logged VALUES (1, 'a'), (1, 'a'), (1, 'a'), (2, 'b'), (3, NULL);
         DELETE FROM logged WHERE at = 2;
         UPDATE logged SET msg = 'c' WHERE at = 3;
         INSERT INTO keyless VALUES (1, 'x');
         INSERT INTO unpublished VALUES (1)",
    )
    .await;
    s.run_until_current(&cfg).await;
    // Traffic after the run on a table that is not published: nothing for the target to do.
    s.db.exec("INSERT INTO unpublished SELECT generate_series(2, 100)").await;

    let out = validate(&s, &cfg, &["--format", "json", "--timeout", "60s"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["clean"], true);
    assert_eq!(report["target_ready"], "no_changes_since_checkpoint", "no run is active: {report:#}");
    let items = report_table(&report, "public.items");
    assert_eq!((items["status"].as_str(), items["source_rows"].as_u64(), items["target_rows"].as_u64()), (Some("identical"), Some(2000 - 285), Some(2000 - 285)));
    assert_eq!(items["key"], serde_json::json!(["id"]));
    let pairs = report_table(&report, "public.pairs");
    assert_eq!((pairs["status"].as_str(), pairs["source_rows"].as_u64()), (Some("identical"), Some(100)));
    let logged = report_table(&report, "public.logged");
    assert_eq!(
        (logged["status"].as_str(), logged["compared_by"].as_str(), logged["source_rows"].as_u64(), logged["target_rows"].as_u64()),
        (Some("identical"), Some("whole_row"), Some(4), Some(4))
    );
    let keyless = report_table(&report, "public.keyless");
    assert_eq!(keyless["status"], "not_validated");
    assert_eq!(keyless["reason"], "no primary key or replica identity");
    assert!(report["tables"].as_array().unwrap().iter().all(|t| t["table"] != "unpublished"));
    let slots = s.db.slot_names().await;
    assert_eq!(slots, vec![s.slot.clone()], "the temporary validation slot is gone");

    // The text form: a table, the unvalidatable table said plainly.
    let out = validate(&s, &cfg, &["--timeout", "60s"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("source rows") && text.contains("target rows"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("public.items") && l.contains(" 1715 ") && l.ends_with("identical")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("public.keyless") && l.contains("cannot validate: no primary key or replica identity")), "{text}");
    assert!(text.contains("1 cannot be validated"), "{text}");

    // Now the source keeps changing while `pgcdc run` replicates and validate runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let client = s.db.client().await;
        tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = 100_000 + n;
                client
                    .batch_execute(&format!(
                        "BEGIN;
                         INSERT INTO items VALUES ({id}, 'new {n}', {n}, {n}.25, now());
                         UPDATE items SET qty = qty + 1, seen = now() WHERE id = {};
                         DELETE FROM items WHERE id = {};
                         INSERT INTO logged VALUES ({n}, 'w'), ({n}, 'w');
                         DELETE FROM logged WHERE at = {} AND msg = 'w';
                         UPDATE pairs SET v = jsonb_build_object('n', {n}) WHERE region = 'eu' AND id = {};
                         COMMIT;",
                        1 + n % 1999,
                        id - 3,
                        n - 2,
                        1 + n % 50
                    ))
                    .await
                    .expect("writer transaction");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            n
        })
    };
    let mut run = RunningPgcdc::start(&cfg, s.dir.path().join("run.log"));
    wait_slot_active(&s, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = validate(&s, &cfg, &["--format", "json", "--timeout", "120s"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    let status = run.stop();
    assert!(status.success(), "pgcdc run exited with {status}");
    assert!(written > 5, "the writer made only {written} transactions");

    assert_eq!(during.status.code(), Some(0), "{}", describe(&during));
    let report = json(&during);
    assert_eq!(report["target_ready"], "checkpoint", "{report:#}");
    let items = report_table(&report, "public.items");
    assert_eq!(items["status"], "identical");
    assert!(items["source_rows"].as_u64().unwrap() > 2000 - 285, "validated before the writer wrote anything: {items:#}");
    assert_eq!(report_table(&report, "public.logged")["status"], "identical");
    assert_eq!(report_table(&report, "public.pairs")["status"], "identical");
}

/// Rewrites a Parquet file of the target with pyarrow: `change` (id 2's name), `remove`
/// (the row of id 3), `add` (a new id 999) or `duplicate` (the first row again).
fn tamper(file: &Path, action: &str) {
    const SCRIPT: &str = r#"
import sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
path, action = sys.argv[1], sys.argv[2]
t = pq.read_table(path)
if action == "change":
    names = t.column("name").to_pylist()
    names[t.column("id").to_pylist().index(2)] = "tampered"
    i = t.schema.get_field_index("name")
    t = t.set_column(i, t.schema.field(i), pa.array(names, type=t.schema.field(i).type))
elif action == "remove":
    t = t.filter(pc.not_equal(t["id"], 3))
elif action == "add":
    row = t.slice(0, 1).to_pylist()[0]
    row["id"] = 999
    row["_seq"] = max(t.column("_seq").to_pylist()) + 1
    t = pa.concat_tables([t, pa.Table.from_pylist([row], schema=t.schema)])
elif action == "duplicate":
    t = pa.concat_tables([t, t.slice(0, 1)])
pq.write_table(t, path, compression="zstd")
"#;
    crate::support::util::run_checked(
        std::process::Command::new(crate::support::python()).arg("-c").arg(SCRIPT).arg(file).arg(action),
        &format!("tamper {action}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_removed_added_or_duplicated_target_row_exits_3_and_names_it() {
    let s = Setup::new("val_tamper").await;
    s.db.exec("CREATE TABLE items (id int PRIMARY KEY, name text, qty int); CREATE TABLE other (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "items, other").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec("INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 20) g; INSERT INTO other VALUES (1)").await;
    s.run_until_current(&cfg).await;
    let files = parquet_files(&s.table_dir("public", "items"));
    assert_eq!(files.len(), 1, "one transaction, one file: {files:?}");
    let file = &files[0];
    let original = std::fs::read(file).unwrap();
    assert_eq!(validate(&s, &cfg, &["--timeout", "60s"]).await.status.code(), Some(0));

    // A changed value: the table, the key and the column are named.
    tamper(file, "change");
    let out = validate(&s, &cfg, &["--timeout", "60s"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.starts_with("public.items") && l.contains("DIFFERENT")), "{text}");
    assert!(text.contains("differing  id=2: name: \"item 2\" in the source, tampered in the target"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("public.other") && l.ends_with("identical")), "{text}");
    let out = validate(&s, &cfg, &["--timeout", "60s", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["clean"], false);
    let items = report_table(&report, "public.items");
    assert_eq!((items["differing"].as_u64(), items["missing"].as_u64(), items["extra"].as_u64()), (Some(1), Some(0), Some(0)));
    assert_eq!(items["examples"][0]["kind"], "differing");
    assert_eq!(items["examples"][0]["key"], serde_json::json!({"id": "2"}));
    assert_eq!(items["examples"][0]["columns"][0], serde_json::json!({"column": "name", "source": "item 2", "target": "tampered"}));
    std::fs::write(file, &original).unwrap();

    // A removed row is missing.
    tamper(file, "remove");
    let out = validate(&s, &cfg, &["--timeout", "60s"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(stdout(&out).contains("missing    id=3"), "{}", describe(&out));
    std::fs::write(file, &original).unwrap();

    // An added row is extra.
    tamper(file, "add");
    let out = validate(&s, &cfg, &["--timeout", "60s"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(stdout(&out).contains("extra      id=999"), "{}", describe(&out));
    std::fs::write(file, &original).unwrap();

    // A change written twice materialises the same, but breaks exactly-once (SPEC 2.2).
    tamper(file, "duplicate");
    let out = validate(&s, &cfg, &["--timeout", "60s", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let report = json(&out);
    let items = report_table(&report, "public.items");
    assert_eq!((items["duplicates"].as_u64(), items["differing"].as_u64()), (Some(1), Some(0)), "{items:#}");
    assert_eq!(items["examples"][0]["kind"], "duplicate");
    std::fs::write(file, &original).unwrap();

    assert_eq!(validate(&s, &cfg, &["--timeout", "60s"]).await.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_running_pipeline_validate_times_out_with_exit_1_and_a_hint() {
    let s = Setup::new("val_timeout").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec("INSERT INTO t VALUES (1, 'a')").await;

    // Nothing replicated yet.
    let started = Instant::now();
    let out = validate(&s, &cfg, &["--timeout", "2s"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(started.elapsed() >= Duration::from_secs(2));
    let err = stderr(&out);
    assert!(err.contains("the target has no checkpoint yet"), "{err}");
    assert!(err.contains("`pgcdc run` must be running") && err.contains("pgcdc run --until-lsn current"), "{err}");

    // Replicated, then changed again: the target is behind by a transaction on `t`.
    s.run_until_current(&cfg).await;
    s.db.exec("UPDATE t SET v = 'b'").await;
    wait_slot_active(&s, false).await;
    let out = validate(&s, &cfg, &["--timeout", "2s"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("the target is durable up to") && err.contains("needs it at"), "{err}");
    assert!(err.contains("1 transaction(s) changing the validated tables committed in between"), "{err}");
    assert!(err.contains("pgcdc run --until-lsn current"), "{err}");

    // Caught up, it validates.
    s.run_until_current(&cfg).await;
    let out = validate(&s, &cfg, &["--timeout", "60s"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

/// Usage and configuration problems exit 2 before anything is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_exit_2() {
    let s = Setup::new("val_config").await;
    let cfg = crate::support::write_config(
        &s.dir.path().join("kinesis"),
        &format!("[source]\nurl = \"{}\"\npublication = \"p\"\nslot = \"s\"\n\n[[sink]]\nkind = \"kinesis\"\nstream = \"x\"\n", s.db.url),
    );
    let out = validate(&s, &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = s.pgcdc(&s.config(""), &["validate", "--timeout", "soon"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
