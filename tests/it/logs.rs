//! Logs (issue 11, "Logs"): `--log-format json` writes one JSON object per line, `pgcdc run`
//! logs where it starts replicating and a periodic summary (lag, rows/s), and no line
//! carries the source password.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::pg::{SCRAM_PASSWORD, SCRAM_USER};
use crate::support::{assert_success, ChildGuard, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_show_the_start_and_a_summary_and_never_the_password() {
    let s = Setup::new("logs_json").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await;
    s.db.exec(&format!("CREATE PUBLICATION {} FOR TABLE t", s.publication))
        .await;
    let cfg = s.config_with_source(&s.db.url_with_password(SCRAM_USER, SCRAM_PASSWORD), "");

    let mut cmd = crate::support::pgcdc();
    cmd.args(["--log-format", "json", "run", "-c"])
        .arg(&cfg)
        .env("PGCDC_SUMMARY_INTERVAL", "1s")
        .env("PGCDC_LOG", "info,pgcdc=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut run = ChildGuard::spawn(&mut cmd, "pgcdc run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.out().join("_pgcdc/checkpoint.json").exists() {
        assert!(
            run.is_running() && Instant::now() < deadline,
            "pgcdc run never started streaming"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few seconds of workload: several summaries see rows.
    for i in 0..8 {
        s.db.exec(&format!(
            "INSERT INTO t SELECT g, 'v' || g FROM generate_series({}, {}) g",
            i * 100 + 1,
            i * 100 + 100
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = tokio::task::spawn_blocking(move || run.stop(Duration::from_secs(120)))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("pgcdc run stderr:\n{stderr}");
    assert_success(&out, "pgcdc run stopped with SIGTERM");

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains(SCRAM_PASSWORD) && !stderr.contains(SCRAM_PASSWORD),
        "the password leaked (SPEC 2.9)"
    );
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for e in &events {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(e.get(key).is_some(), "no {key}: {e}");
        }
    }
    let named = |m: &'static str| events.iter().filter(move |e| e["message"] == m);

    let start = named("replicating").next().expect("a `replicating` event");
    assert_eq!(start["slot"], s.slot.as_str(), "{start}");
    assert!(
        start["from"].as_str().is_some_and(|p| p.contains('/')),
        "{start}"
    );
    assert!(start["protocol"].as_u64().is_some(), "{start}");

    let summaries: Vec<_> = named("summary").collect();
    assert!(
        summaries.len() >= 2,
        "a summary a second over several seconds: {summaries:?}"
    );
    for e in &summaries {
        for key in [
            "lag_bytes",
            "rows",
            "rows_per_sec",
            "transactions",
            "flushes",
        ] {
            assert!(e[key].is_number(), "{key} is not a number: {e}");
        }
        // A new slot and a small workload: never the whole WAL before the slot (a lag
        // counted from 0/0 would be).
        assert!(e["lag_bytes"].as_u64().unwrap() < 16 << 20, "lag: {e}");
        assert!(
            e["durable"].as_str().is_some_and(|p| p.contains('/')),
            "{e}"
        );
    }
    let rows: u64 = summaries.iter().map(|e| e["rows"].as_u64().unwrap()).sum();
    assert!(
        rows > 0 && rows <= 800,
        "the summaries count the rows replicated: {rows}"
    );
    assert!(
        summaries
            .iter()
            .any(|e| e["rows_per_sec"].as_f64().unwrap() > 0.0),
        "{summaries:?}"
    );

    // At debug, each flush names its sink and position.
    let flush = named("flushed sink")
        .next()
        .expect("a debug `flushed sink` event");
    assert!(
        flush["sink"].is_string() && flush["lsn"].is_string(),
        "{flush}"
    );
}
