//! S3 faults (issue 7 step 3): a proxy between pgcdc and the endpoint
//! (`tests/py/fault_proxy.py`) answers some uploads with 503 SlowDown and 500, resets some
//! connections in the middle of an upload, and takes the endpoint down for 30 seconds, all
//! during a mixed workload. pgcdc rides it out without help: the slot is never confirmed
//! past what is stored, replication catches up once the endpoint is back, the output equals
//! the source with no `(_lsn, _seq)` twice, `validate` is clean, and the log said what was
//! failing.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pgcdc::model::Lsn;

use crate::s3::{fetch, new_bucket, pgcdc_s3, s3_config};
use crate::support::{describe, moto, pgcdc, py::py_script, python, ChildGuard, Setup};

/// The fault proxy in front of moto; its endpoint URL.
pub(crate) fn start_proxy(plan: &Path, log: &Path) -> (ChildGuard, String) {
    write_plan(plan, &serde_json::json!({"rules": []}));
    let mut cmd = Command::new(python());
    cmd.arg(py_script("fault_proxy.py"))
        .args(["--upstream", &moto().endpoint_url()])
        .arg("--plan")
        .arg(plan)
        .arg("--log")
        .arg(log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut guard = ChildGuard::spawn(&mut cmd, "fault_proxy.py");
    let stdout = guard.0.as_mut().unwrap().stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).expect("proxy says its port");
    let port = line.trim().strip_prefix("PORT ").unwrap_or_else(|| panic!("proxy said {line:?}"));
    (guard, format!("http://127.0.0.1:{port}"))
}

/// Replaces the proxy's plan atomically (it rereads the file before every request).
pub(crate) fn write_plan(plan: &Path, v: &serde_json::Value) {
    let tmp = plan.with_extension("tmp");
    std::fs::write(&tmp, v.to_string()).unwrap();
    std::fs::rename(&tmp, plan).unwrap();
}

pub(crate) fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Every fault the proxy injected, by kind.
fn injected(log: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(f) = v["fault"].as_str() {
            *out.entry(f.to_string()).or_default() += 1;
        }
    }
    out
}

/// One mixed transaction: an insert, updates and a delete.
async fn mixed(s: &Setup, i: i32) {
    s.db.exec(&format!(
        "INSERT INTO t VALUES ({}, 'new {i}', repeat('p', 500)); UPDATE t SET v = 'u{i}' WHERE id % 40 = {}; DELETE FROM t WHERE id = {}",
        100_000 + i,
        i % 40,
        200 + i
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_errors_resets_and_a_30s_outage_lose_and_double_nothing() {
    let s = Setup::new("s3_faults").await;
    let bucket = new_bucket("faults");
    s.db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text, pad text);
         INSERT INTO t SELECT g, 'v' || g, repeat('x', 200) FROM generate_series(1, 3000) g",
    )
    .await;
    s.db.create_publication(&s.publication, "t").await;
    // The server ends a replication connection that says nothing for 5 s: pgcdc must keep
    // talking to it while its sink waits out the outage.
    s.db.exec(&format!("ALTER DATABASE \"{}\" SET wal_sender_timeout = '5s'", s.db.name)).await;

    let plan = s.dir.path().join("plan.json");
    let proxy_log = s.dir.path().join("proxy.jsonl");
    let (_proxy, endpoint) = start_proxy(&plan, &proxy_log);
    let faults = serde_json::json!([
        {"method": "PUT", "path_contains": format!("/{bucket}/"), "fault": "slowdown", "every": 3, "limit": 8},
        {"method": "PUT", "path_contains": format!("/{bucket}/"), "fault": "internal", "every": 5, "limit": 5},
        {"method": "PUT", "path_contains": format!("/{bucket}/"), "fault": "reset", "every": 7, "limit": 4},
    ]);
    write_plan(&plan, &serde_json::json!({"rules": faults}));

    let url = format!("s3://{bucket}/f/");
    let cfg = s3_config(&s, &url, &endpoint);
    let log_path = s.dir.path().join("run.log");
    let mut cmd = pgcdc();
    moto().aws_env(&mut cmd);
    cmd.args(["run", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let mut run = ChildGuard::spawn(&mut cmd, "pgcdc run through the fault proxy");

    for i in 0..20 {
        mixed(&s, i).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // The endpoint goes away for 30 s while changes keep coming.
    let outage_from = Instant::now();
    write_plan(&plan, &serde_json::json!({"rules": faults, "outage_until": now_secs() + 30.0}));
    for i in 20..60 {
        mixed(&s, i).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // During the outage the slot is never confirmed beyond what the target holds (SPEC 2.1):
    // read the stored checkpoint straight from the endpoint, then the slot.
    let direct = s3_config(&s, &url, &moto().endpoint_url());
    let out = pgcdc_s3(&direct, &["status", "--json"]).await;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("status: {}", describe(&out)));
    let stored: Lsn = status["targets"][0]["checkpoint"]["end_lsn"].as_str().expect("a checkpoint").parse().unwrap();
    let confirmed: Lsn = s.db.slot_confirmed_lsn(&s.slot).await.expect("the slot").parse().unwrap();
    assert!(confirmed <= stored, "the slot was confirmed to {confirmed}, beyond the stored {stored}, during the outage");
    assert!(outage_from.elapsed() < Duration::from_secs(30), "the outage was over before the check");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(outage_from.elapsed())).await;
    for i in 60..70 {
        mixed(&s, i).await;
    }
    let target: Lsn = s.db.current_lsn().await.parse().unwrap();

    // It catches up by itself once the endpoint is back.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let confirmed = s.db.slot_confirmed_lsn(&s.slot).await.map(|l| l.parse::<Lsn>().unwrap());
        if confirmed.is_some_and(|c| c >= target) {
            break;
        }
        if let Some(status) = run.0.as_mut().unwrap().try_wait().unwrap() {
            panic!("pgcdc run ended ({status}) during the faults:\n{}", std::fs::read_to_string(&log_path).unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "pgcdc did not catch up after the outage (confirmed {confirmed:?}, target {target}):\n{}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = run.stop(Duration::from_secs(60));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(out.status.code(), Some(0), "SIGTERM after the faults: {log}");

    // The faults really happened, and the log said what was failing.
    let seen = injected(&proxy_log);
    for kind in ["slowdown", "internal", "reset"] {
        assert!(seen.get(kind).is_some_and(|n| *n > 0), "no {kind} injected: {seen:?}");
    }
    assert!(log.contains("SlowDown"), "the log names the throttling:\n{log}");
    assert!(log.contains("retrying in"), "the log says it retries:\n{log}");
    assert!(log.contains("failing_for"), "the log says for how long it has been failing:\n{log}");

    // Nothing lost or doubled: read back through pyarrow's S3 filesystem, and validate.
    fetch(&s, &bucket, "f");
    s.assert_matches_source("public", "t").await;
    let out = pgcdc_s3(&direct, &["validate"]).await;
    assert_eq!(out.status.code(), Some(0), "validate after the faults: {}", describe(&out));
}
