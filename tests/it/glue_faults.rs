//! Glue faults (issue 7 steps 3 and 6): the fault proxy (`tests/py/fault_proxy.py`) sits
//! between pgcdc and moto for S3 and Glue alike (`[aws] endpoint_url`), and answers a share
//! of the Glue calls pgcdc makes (GetTable, CreateTable, UpdateTable, GetPartitions,
//! CreatePartition) with throttling, 500s (`InternalServiceException` and AWS' generic
//! `InternalFailure`), connection resets, and lost answers (the call is done, the answer
//! never arrives, so the retry finds the table or partition already there).
//!
//! * Transient faults: pgcdc rides them out without help through a full load, CDC and an
//!   `ALTER TABLE ... ADD COLUMN`; the Glue table has the newest file's columns, the
//!   location and one partition per folder; the log names the failing Glue request and says
//!   it retries; the data equals the source and `validate` is clean.
//! * A permanent fault (AccessDenied on CreateTable) stops `pgcdc run` at once with one
//!   clear error and exit 1, the slot is not confirmed past the stored checkpoint, and the
//!   next run (fault gone) registers the table and completes the data.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgcdc::model::Lsn;

use crate::glue::{glue_py, partitions_in_s3, read_table};
use crate::s3::{fetch, new_bucket, pgcdc_s3, s3_config};
use crate::s3_faults::{start_proxy, write_plan};
use crate::support::{describe, moto, pgcdc, python, ChildGuard, Setup};

/// `(X-Amz-Target, fault)` of every Glue request the proxy failed, in order.
fn glue_faults(log: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let target = v["target"].as_str()?.strip_prefix("AWSGlue.")?.to_string();
            Some((target, v["fault"].as_str()?.to_string()))
        })
        .collect()
}

/// How many requests the proxy saw for the Glue operation `op` (`"CreateTable"`).
fn glue_requests(log: &Path, op: &str) -> usize {
    let target = format!("\"AWSGlue.{op}\"");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&target))
        .count()
}

/// A Glue database for this test, created straight in moto.
fn new_glue_database(hint: &str) -> String {
    let db = format!("pgcdc_{hint}_{}", std::process::id());
    glue_py(&format!(
        "glue.create_database(DatabaseInput={{'Name': '{db}'}})"
    ));
    db
}

/// Adds `[catalog] glue_database = db` to the config at `cfg`.
fn with_catalog(cfg: &Path, db: &str) {
    let toml =
        std::fs::read_to_string(cfg).unwrap() + &format!("\n[catalog]\nglue_database = \"{db}\"\n");
    std::fs::write(cfg, toml).unwrap();
}

/// Column names of the newest CDC file of `public.{table}` in the fetched output.
fn newest_cdc_file_columns(s: &Setup, table: &str) -> Vec<String> {
    let script = format!(
        "import glob, json, os, pyarrow.parquet as pq\n\
         files = glob.glob(os.path.join({dir:?}, '**', 'public', '{table}', 'cdc', '*', '*.parquet'), recursive=True)\n\
         newest = max(files, key=os.path.basename)\n\
         print(json.dumps(pq.read_schema(newest).names))",
        dir = s.out().display().to_string()
    );
    let out = Command::new(python())
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A config for `url` that talks to moto straight (no proxy, no catalog), beside the test's
/// `pgcdc.toml` (which `s3_config` writes).
fn direct_config(s: &Setup, url: &str) -> std::path::PathBuf {
    let written = s3_config(s, url, &moto().endpoint_url());
    let direct = written.with_file_name("direct.toml");
    std::fs::rename(&written, &direct).unwrap();
    direct
}

/// The `end_lsn` of the checkpoint stored in the target of `cfg` (`pgcdc status --json`).
async fn stored_checkpoint(cfg: &Path) -> Lsn {
    let out = pgcdc_s3(cfg, &["status", "--json"]).await;
    let st: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("status: {}", describe(&out)));
    st["targets"][0]["checkpoint"]["end_lsn"]
        .as_str()
        .expect("a checkpoint")
        .parse()
        .unwrap()
}

/// `pgcdc run -c cfg` in the background, its stderr into `log`.
fn spawn_run(cfg: &Path, log: &Path) -> ChildGuard {
    let mut cmd = pgcdc();
    moto().aws_env(&mut cmd);
    cmd.args(["run", "-c"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    ChildGuard::spawn(&mut cmd, "pgcdc run through the fault proxy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_throttling_500s_resets_and_lost_answers_are_ridden_out() {
    let s = Setup::new("glue_faults").await;
    let bucket = new_bucket("gluefaults");
    let db = new_glue_database("gluefaults");
    s.db.exec(
        "CREATE TABLE orders (id int PRIMARY KEY, v text, pad text);
         INSERT INTO orders SELECT g, 'v' || g, repeat('x', 100) FROM generate_series(1, 1500) g",
    )
    .await;
    s.db.create_publication(&s.publication, "orders").await;

    let plan = s.dir.path().join("plan.json");
    let proxy_log = s.dir.path().join("proxy.jsonl");
    let (_proxy, endpoint) = start_proxy(&plan, &proxy_log);
    // Rules are tried in order; a rule past its limit lets the request through to the next.
    let rule = |target: &str, fault: &str, every: u32, limit: u32| {
        serde_json::json!({"target_contains": format!("AWSGlue.{target}"), "fault": fault,
                           "every": every, "limit": limit})
    };
    let mut generic_500 = rule("UpdateTable", "internal_json", 1, 2);
    generic_500["code"] = "InternalFailure".into();
    let faults = serde_json::json!([
        rule("GetTable", "throttle_glue", 2, 3),
        rule("CreateTable", "internal_json", 1, 1),
        rule("CreateTable", "reset", 1, 1),
        // The table is created, the answer lost: the retry meets AlreadyExistsException.
        rule("CreateTable", "lost_answer", 1, 1),
        generic_500,
        rule("UpdateTable", "lost_answer", 1, 1),
        rule("GetPartitions", "reset", 1, 1),
        rule("CreatePartition", "throttle_glue", 1, 2),
        rule("CreatePartition", "lost_answer", 1, 1),
        rule("CreatePartition", "internal_json", 2, 2),
    ]);
    write_plan(&plan, &serde_json::json!({"rules": faults}));

    let url = format!("s3://{bucket}/g/");
    let cfg = s3_config(&s, &url, &endpoint);
    with_catalog(&cfg, &db);
    let log_path = s.dir.path().join("run.log");
    let mut run = spawn_run(&cfg, &log_path);

    for i in 0..10 {
        s.db.exec(&format!(
            "INSERT INTO orders VALUES ({}, 'new', 'p'); UPDATE orders SET v = 'u{i}' WHERE id % 50 = {i}; DELETE FROM orders WHERE id = {}",
            10_000 + i,
            100 + i
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A new column: the Glue table is updated (UpdateTable, through its faults).
    s.db.exec("ALTER TABLE orders ADD COLUMN extra varchar(20)")
        .await;
    for i in 0..5 {
        s.db.exec(&format!(
            "INSERT INTO orders (id, v, extra) VALUES ({}, 'x', 'e{i}'); UPDATE orders SET extra = 'f' WHERE id = {}",
            20_000 + i,
            1 + i
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let target: Lsn = s.db.current_lsn().await.parse().unwrap();

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let confirmed =
            s.db.slot_confirmed_lsn(&s.slot)
                .await
                .map(|l| l.parse::<Lsn>().unwrap());
        if confirmed.is_some_and(|c| c >= target) {
            break;
        }
        if let Some(status) = run.0.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "pgcdc run ended ({status}) during the Glue faults:\n{}",
                std::fs::read_to_string(&log_path).unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "pgcdc did not catch up through the Glue faults (confirmed {confirmed:?}, target {target}):\n{}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = run.stop(Duration::from_secs(60));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "SIGTERM after the Glue faults: {log}"
    );

    // Every planned fault hit a Glue call.
    let hit = glue_faults(&proxy_log);
    for (op, fault) in [
        ("GetTable", "throttle_glue"),
        ("CreateTable", "internal_json"),
        ("CreateTable", "reset"),
        ("CreateTable", "lost_answer"),
        ("UpdateTable", "internal_json"),
        ("UpdateTable", "lost_answer"),
        ("GetPartitions", "reset"),
        ("CreatePartition", "throttle_glue"),
        ("CreatePartition", "lost_answer"),
        ("CreatePartition", "internal_json"),
    ] {
        assert!(
            hit.iter().any(|(o, f)| o == op && f == fault),
            "no {fault} on {op}: {hit:?}"
        );
    }
    // The log names the failing request and says it retries.
    for needle in [
        "creating Glue table",
        "updating Glue table",
        "adding partition date=",
        "ThrottlingException",
        "InternalFailure",
        "failed, retrying in",
        "failing_for",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    for line in log.lines().filter(|l| l.contains("retrying in")) {
        assert!(
            line.contains("Glue"),
            "a retry line names its Glue request: {line}"
        );
    }

    // The catalog: the newest file's columns, the location, one partition per folder.
    fetch(&s, &bucket, "g");
    let (cols, loc, keys, parts) = read_table(&db, "public_orders");
    let names: Vec<String> = cols.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, newest_cdc_file_columns(&s, "orders"));
    assert!(
        cols.iter().any(|(n, t)| n == "extra" && t == "string"),
        "{cols:?}"
    );
    assert_eq!(loc, format!("s3://{bucket}/g/public/orders/cdc/"));
    assert_eq!(keys, vec!["date".to_string()]);
    let want = partitions_in_s3(&bucket, "g", "orders");
    assert!(
        want.iter().any(|(v, _)| v == "load") && want.len() > 1,
        "{want:?}"
    );
    assert_eq!(parts, want);

    // Nothing lost or doubled.
    s.assert_matches_source("public", "orders").await;
    let direct = direct_config(&s, &url);
    let out = pgcdc_s3(&direct, &["validate"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "validate after the Glue faults: {}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_access_denied_stops_run_with_one_error_and_confirms_nothing_unstored() {
    let s = Setup::new("glue_denied").await;
    let bucket = new_bucket("gluedenied");
    let db = new_glue_database("gluedenied");
    s.db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 200) g",
    )
    .await;
    s.db.create_publication(&s.publication, "t").await;
    let plan = s.dir.path().join("plan.json");
    let proxy_log = s.dir.path().join("proxy.jsonl");
    let (_proxy, endpoint) = start_proxy(&plan, &proxy_log);
    let url = format!("s3://{bucket}/d/");
    let direct = direct_config(&s, &url);
    let cfg = s3_config(&s, &url, &endpoint);
    with_catalog(&cfg, &db);

    // A clean full load registers the table; then the table is dropped from Glue and the
    // credentials lose glue:CreateTable, so the next run's first CDC file cannot be
    // registered.
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "full load: {}", describe(&out));
    glue_py(&format!(
        "glue.delete_table(DatabaseName='{db}', Name='public_t')"
    ));
    write_plan(
        &plan,
        &serde_json::json!({"rules": [{"target_contains": "AWSGlue.CreateTable", "fault": "denied_glue"}]}),
    );
    let before = glue_requests(&proxy_log, "CreateTable");
    let stored_before = stored_checkpoint(&direct).await;
    s.db.exec("INSERT INTO t VALUES (1001, 'a'); UPDATE t SET v = 'b' WHERE id = 2")
        .await;

    let log_path = s.dir.path().join("denied.log");
    let mut run = spawn_run(&cfg, &log_path);
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = run.0.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "pgcdc run kept going for 90 s after AccessDenied:\n{}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    run.0 = None;
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("creating Glue table") && log.contains("AccessDeniedException"),
        "{log}"
    );
    assert!(
        log.contains("glue:"),
        "the hint names the permissions: {log}"
    );
    assert_eq!(
        log.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "one error: {log}"
    );
    assert!(
        !log.contains("retrying in"),
        "a permanent error is not retried: {log}"
    );
    assert_eq!(
        glue_requests(&proxy_log, "CreateTable") - before,
        1,
        "CreateTable tried once"
    );

    // The failed flush left no checkpoint, and the slot is not confirmed past the stored one.
    let stored = stored_checkpoint(&direct).await;
    assert_eq!(
        stored, stored_before,
        "the failed flush moved the checkpoint"
    );
    let confirmed: Lsn =
        s.db.slot_confirmed_lsn(&s.slot)
            .await
            .expect("the slot")
            .parse()
            .unwrap();
    assert!(
        confirmed <= stored,
        "slot confirmed to {confirmed}, beyond the stored {stored}"
    );

    // With the permission back, the next run registers the table and completes the data.
    write_plan(&plan, &serde_json::json!({"rules": []}));
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(
        out.status.success(),
        "after AccessDenied: {}",
        describe(&out)
    );
    assert!(
        describe(&out).contains("published by an interrupted flush"),
        "recovery registers the stopped flush's file: {}",
        describe(&out)
    );
    let (_, loc, _, parts) = read_table(&db, "public_t");
    assert_eq!(loc, format!("s3://{bucket}/d/public/t/cdc/"));
    assert_eq!(parts, partitions_in_s3(&bucket, "d", "t"));
    fetch(&s, &bucket, "d");
    s.assert_matches_source("public", "t").await;
    let out = pgcdc_s3(&direct, &["validate"]).await;
    assert_eq!(out.status.code(), Some(0), "validate: {}", describe(&out));
}
