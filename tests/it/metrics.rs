//! `/metrics` and `/healthz` of `pgcdc run` (issue 11 step 1). The exposition text is read
//! by the test's own parser ([`exposition`], not the encoder pgcdc uses), which refuses any
//! line outside the Prometheus text format 0.0.4 grammar and any sample without a `# TYPE`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{assert_success, pg, write_config, ChildGuard, Setup};

mod exposition;
use exposition::{parse_exposition, value, Sample};

/// `GET path` over HTTP/1.1: the status and the body.
async fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connect {address}: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("answer within 20 s")
        .expect("read");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {text}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    if path == "/metrics" && status == 200 {
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
    }
    (status, body.to_string())
}

async fn scrape(address: &str) -> Vec<Sample> {
    let (status, body) = get(address, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    parse_exposition(&body)
}

/// Waits for the `metrics listening` event in a JSON log and returns its address.
async fn listening_address(log: &Path, run: &mut ChildGuard) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if event["message"] == "metrics listening" {
                return event["address"].as_str().expect("address").to_string();
            }
        }
        assert!(
            run.is_running() && Instant::now() < deadline,
            "no `metrics listening` event:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `/metrics` until `done` holds for a scrape (or fails after `secs`).
async fn scrape_until(
    address: &str,
    secs: u64,
    what: &str,
    done: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let samples = scrape(address).await;
        if done(&samples) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never held; last scrape: {samples:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `pgcdc --log-format json run -c cfg` in the background, its log in `log`.
fn spawn_run(cfg: &Path, log: &Path) -> ChildGuard {
    let mut cmd = crate::support::pgcdc();
    cmd.args(["--log-format", "json", "run", "-c"])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    ChildGuard::spawn(&mut cmd, "pgcdc run")
}

fn lsn_number(lsn: &str) -> f64 {
    let (hi, lo) = lsn.split_once('/').expect("X/Y");
    ((u64::from_str_radix(hi, 16).unwrap() << 32) + u64::from_str_radix(lo, 16).unwrap()) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_full_load_and_the_changes_that_were_replicated() {
    let s = Setup::new("metrics_counts").await;
    s.db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, n int);
         CREATE TABLE bad (id int PRIMARY KEY, amount numeric(10,2));
         CREATE TABLE marker (id int PRIMARY KEY);
         INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 1000) g;
         INSERT INTO b SELECT g, g FROM generate_series(1, 250) g",
    )
    .await;
    s.db.create_publication(&s.publication, "a, b, bad, marker")
        .await;
    let dl = s.dir.path().join("dead-letters");
    let toml = std::fs::read_to_string(s.config_with("full-load-and-cdc", "")).unwrap();
    let cfg = write_config(
        s.dir.path(),
        &format!(
            "{toml}\n[dead_letter]\nurl = \"file://{}\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            dl.display()
        ),
    );
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "pgcdc setup");
    let log = s.dir.path().join("run.log");
    let mut run = spawn_run(&cfg, &log);
    let address = listening_address(&log, &mut run).await;

    // The full load: rows per table equal the tables' sizes.
    let loaded = scrape_until(&address, 90, "the full load counted", |m| {
        value(m, "pgcdc_full_load_rows_total", &[("table", "public.a")]) == Some(1000.0)
            && value(m, "pgcdc_full_load_rows_total", &[("table", "public.b")]) == Some(250.0)
    })
    .await;
    assert!(
        value(
            &loaded,
            "pgcdc_full_load_bytes_total",
            &[("table", "public.a")]
        )
        .unwrap()
            > 1000.0
    );
    assert!(value(
        &loaded,
        "pgcdc_full_load_table_bytes",
        &[("table", "public.b")]
    )
    .is_some());

    // A mixed workload in 20 transactions, then a marker.
    for i in 0..10 {
        let base = 2000 + i * 100;
        s.db.exec(&format!(
            "INSERT INTO a SELECT g, 'new' || g FROM generate_series({base}, {base} + 29) g;
             UPDATE a SET v = v || '!' WHERE id BETWEEN {} AND {};
             DELETE FROM a WHERE id BETWEEN {} AND {}",
            i * 10 + 1,
            i * 10 + 10,
            500 + i * 5 + 1,
            500 + i * 5 + 5
        ))
        .await;
        s.db.exec(&format!("INSERT INTO b VALUES ({}, 0)", 1000 + i))
            .await;
    }
    // pgcdc reads a table's relfilenode when the stream first describes it: truncating b
    // before its inserts were decoded would look like a rewrite of b, and reload it.
    scrape_until(&address, 60, "b's inserts decoded", |m| {
        value(
            m,
            "pgcdc_changes_total",
            &[("table", "public.b"), ("op", "insert")],
        ) == Some(10.0)
    })
    .await;
    s.db.exec("TRUNCATE b").await;
    s.db.exec("INSERT INTO bad VALUES (1, 'NaN'), (2, 1.5)")
        .await;
    let before_marker = lsn_number(&s.db.current_lsn().await);
    s.db.exec("INSERT INTO marker VALUES (1)").await;

    // Everything before the marker is durable once the confirmed LSN passes it.
    let m = scrape_until(&address, 90, "the marker durable", |m| {
        value(m, "pgcdc_source_confirmed_lsn", &[]).is_some_and(|c| c >= before_marker)
    })
    .await;
    let count = |table: &str, op: &str| {
        value(&m, "pgcdc_changes_total", &[("table", table), ("op", op)]).unwrap_or(0.0)
    };
    assert_eq!(count("public.a", "insert"), 300.0);
    assert_eq!(count("public.a", "update"), 100.0);
    assert_eq!(count("public.a", "delete"), 50.0);
    assert_eq!(count("public.b", "insert"), 10.0);
    assert_eq!(count("public.b", "truncate"), 1.0);
    assert_eq!(
        count("public.bad", "insert"),
        2.0,
        "decoded, one of them refused by the sink"
    );
    assert_eq!(
        value(&m, "pgcdc_dead_letters_total", &[("table", "public.bad")]),
        Some(1.0)
    );
    // The same counts as the output holds, per table and op.
    for (table, ops) in [
        ("a", ["I", "U", "D"].as_slice()),
        ("b", ["I", "T"].as_slice()),
    ] {
        let rows = s.change_rows("public", table);
        for op in ops {
            let in_output = rows.iter().filter(|r| r.op.code() == *op).count() as f64;
            let label = pgcdc::metrics::op_label(pgcdc::model::RowOp::from_code(op).unwrap());
            let shown: Vec<_> = rows
                .iter()
                .filter(|r| r.op.code() == *op)
                .take(5)
                .map(|r| (r.lsn, r.seq))
                .collect();
            assert_eq!(
                count(&format!("public.{table}"), label),
                in_output,
                "public.{table} {op}: {shown:?}\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
    }
    assert!(value(&m, "pgcdc_transactions_total", &[]).unwrap() >= 22.0);
    // Positions and lag: present and sensible.
    let confirmed = value(&m, "pgcdc_source_confirmed_lsn", &[]).unwrap();
    let received = value(&m, "pgcdc_source_received_lsn", &[]).unwrap();
    assert!(
        received >= confirmed && confirmed > 0.0,
        "received {received}, confirmed {confirmed}"
    );
    let lag_bytes = value(&m, "pgcdc_source_lag_bytes", &[]).unwrap();
    assert!(lag_bytes < 64.0 * 1024.0 * 1024.0, "lag {lag_bytes}");
    let lag_seconds = value(&m, "pgcdc_source_lag_seconds", &[]).unwrap();
    assert!((0.0..60.0).contains(&lag_seconds), "lag {lag_seconds}s");
    let sink = format!("file://{}", s.out().display());
    assert!(
        value(
            &m,
            "pgcdc_sink_flush_duration_seconds_count",
            &[("sink", &sink)]
        )
        .unwrap()
            >= 1.0,
        "{m:#?}"
    );
    assert!(value(
        &m,
        "pgcdc_sink_flush_duration_seconds_bucket",
        &[("sink", &sink), ("le", "+Inf")]
    )
    .is_some());
    assert_eq!(
        value(&m, "pgcdc_sink_errors_total", &[("sink", &sink)]),
        None,
        "no sink error"
    );
    assert!(value(&m, "pgcdc_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(value(&m, "pgcdc_durable_flush_age_seconds", &[]).unwrap() < 60.0);
    assert_eq!(value(&m, "pgcdc_healthy", &[]), Some(1.0));
    assert_eq!(value(&m, "pgcdc_source_up", &[]), Some(1.0));
    // The slot is read every 5 s.
    let m = scrape_until(&address, 30, "the slot read", |m| {
        value(m, "pgcdc_slot_retained_wal_bytes", &[]).is_some_and(|b| b > 0.0)
    })
    .await;
    let server_version = pg().version_num();
    if server_version >= 130000 {
        assert_eq!(
            value(&m, "pgcdc_slot_wal_status", &[("status", "reserved")]),
            Some(1.0),
            "{m:#?}"
        );
    }

    assert_eq!(get(&address, "/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(get(&address, "/nothing").await.0, 404);
    let out = tokio::task::spawn_blocking(move || run.stop(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_503_while_the_source_is_down_and_200_when_it_returns() {
    let s = Setup::new("metrics_health").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "t").await;
    let toml = std::fs::read_to_string(s.config(""))
        .unwrap()
        .replace("[pipeline]", "reconnect_timeout = \"2min\"\n\n[pipeline]");
    let cfg = write_config(
        s.dir.path(),
        &format!("{toml}\n[metrics]\nlisten = \"127.0.0.1:0\"\n"),
    );
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "pgcdc setup");
    let log = s.dir.path().join("run.log");
    let mut run = spawn_run(&cfg, &log);
    let address = listening_address(&log, &mut run).await;
    s.db.exec("INSERT INTO t VALUES (1)").await;
    scrape_until(&address, 60, "streaming", |m| {
        value(
            m,
            "pgcdc_changes_total",
            &[("table", "public.t"), ("op", "insert")],
        ) == Some(1.0)
    })
    .await;
    assert_eq!(get(&address, "/healthz").await, (200, "ok\n".to_string()));

    tokio::task::spawn_blocking(|| pg().stop_with("fast"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = get(&address, "/healthz").await;
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            Instant::now() < deadline,
            "/healthz stayed 200 with the source down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        body.starts_with("source unreachable for ")
            && body.ends_with('\n')
            && body.lines().count() == 1,
        "{body:?}"
    );
    let m = scrape(&address).await;
    assert_eq!(value(&m, "pgcdc_source_up", &[]), Some(0.0));
    assert_eq!(value(&m, "pgcdc_healthy", &[]), Some(0.0));
    assert_eq!(value(&m, "pgcdc_source_reconnects_total", &[]), Some(1.0));

    tokio::task::spawn_blocking(|| pg().start_again())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while get(&address, "/healthz").await.0 != 200 {
        assert!(
            run.is_running(),
            "pgcdc run ended:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(Instant::now() < deadline, "/healthz never returned to 200");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    s.db.exec("INSERT INTO t VALUES (2)").await;
    let m = scrape_until(&address, 60, "streaming again", |m| {
        value(
            m,
            "pgcdc_changes_total",
            &[("table", "public.t"), ("op", "insert")],
        ) == Some(2.0)
    })
    .await;
    assert_eq!(value(&m, "pgcdc_source_up", &[]), Some(1.0));
    let out = tokio::task::spawn_blocking(move || run.stop(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_busy_listen_address_is_a_clear_configuration_error() {
    let s = Setup::new("metrics_listen").await;
    let base = std::fs::read_to_string(s.config("")).unwrap();
    for (listen, want) in [
        (
            "nonsense",
            "[metrics] listen = \"nonsense\" is not an address:port",
        ),
        ("localhost:9187", "write an IP address"),
    ] {
        let cfg = write_config(
            s.dir.path(),
            &format!("{base}\n[metrics]\nlisten = \"{listen}\"\n"),
        );
        let out = s.pgcdc(&cfg, &["run"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{listen}: {stderr}");
        assert!(stderr.contains(want), "{listen}: {stderr}");
    }
    // A port another process holds: exit 2 with a hint, before anything is connected or written.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cfg = write_config(
        s.dir.path(),
        &format!("{base}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let out = s.pgcdc(&cfg, &["run"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port} for [metrics]")),
        "{stderr}"
    );
    assert!(stderr.contains("another process listens"), "{stderr}");
    assert!(!s.out().exists(), "nothing written");
    assert!(s.db.slot_names().await.is_empty(), "no slot created");
}

/// S3 answers the first requests with `503 SlowDown`: while pgcdc retries them for longer
/// than `max_sink_failing`, `/healthz` says which sink fails; once S3 answers, 200 again,
/// and every refused request was counted as an error of that sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_503_while_a_sink_keeps_failing() {
    let s = Setup::new("metrics_sink").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "t").await;
    let bucket = crate::s3::new_bucket("metrics");
    let (endpoint, refused) =
        crate::support::s3_proxy::slow_down_proxy(crate::support::moto().port(), 8);
    let url = format!("s3://{bucket}/cdc/");
    let toml = std::fs::read_to_string(crate::s3::s3_config(&s, &url, &endpoint)).unwrap();
    let cfg = write_config(
        s.dir.path(),
        &format!("{toml}\n[metrics]\nlisten = \"127.0.0.1:0\"\nmax_sink_failing = \"1s\"\n"),
    );
    let log = s.dir.path().join("run.log");
    let mut cmd = crate::support::pgcdc();
    crate::support::moto().aws_env(&mut cmd);
    cmd.args(["--log-format", "json", "run", "-c"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let mut run = ChildGuard::spawn(&mut cmd, "pgcdc run");
    let address = listening_address(&log, &mut run).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let body = loop {
        let (status, body) = get(&address, "/healthz").await;
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never turned 503: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        body.starts_with(&format!("sink {url} failing for ")) && body.contains("SlowDown"),
        "{body:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&address, "/healthz").await.0 != 200 {
        assert!(
            run.is_running(),
            "pgcdc run ended:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(Instant::now() < deadline, "/healthz never returned to 200");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let m = scrape(&address).await;
    let refused = refused.load(std::sync::atomic::Ordering::SeqCst) as f64;
    assert_eq!(refused, 8.0);
    assert_eq!(
        value(&m, "pgcdc_sink_errors_total", &[("sink", &url)]),
        Some(refused),
        "{m:#?}"
    );
    let out = tokio::task::spawn_blocking(move || run.stop(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}
