//! A lost replication slot (issue 11 step 2): dropped or invalidated, before a run or under
//! a running one, `run` stops with one clear error naming the slot and `pgcdc run --resync`;
//! the resync (a new slot, every table loaded again into a new load generation) ends with
//! `validate` clean, also after crashes in the middle of it.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{assert_success, pg, stderr, write_config, ChildGuard, Setup};

async fn tables(s: &Setup) {
    s.db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);
         CREATE TABLE notes (id int PRIMARY KEY, body text);
         INSERT INTO items SELECT g, 'item ' || g, g % 10 FROM generate_series(1, 3000) g;
         INSERT INTO notes SELECT g, md5(g::text) FROM generate_series(1, 500) g",
    )
    .await;
    s.db.create_publication(&s.publication, "items, notes")
        .await;
}

/// Inserts, updates and deletes in both tables (`round` keeps keys apart).
async fn changes(s: &Setup, round: i32) {
    let base = round * 10_000;
    s.db.exec(&format!(
        "INSERT INTO items SELECT g, 'item ' || g, g % 10 FROM generate_series({base}, {base} + 299) g;
         UPDATE items SET qty = qty + {round} WHERE id % 5 = 0;
         DELETE FROM items WHERE id % 11 = {round} % 11;
         INSERT INTO notes SELECT {base} + g, md5(g::text) FROM generate_series(1, 50) g;
         DELETE FROM notes WHERE id % 13 = {round} % 13"
    ))
    .await;
}

/// A full-load-and-cdc config whose run gives up reconnecting after 2 minutes.
fn config(s: &Setup) -> std::path::PathBuf {
    let cfg = s.config_with("full-load-and-cdc", "load_workers = 1");
    let toml = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[pipeline]", "reconnect_timeout = \"2min\"\n\n[pipeline]");
    write_config(s.dir.path(), &toml)
}

/// Waits until no walsender holds the slot (a finished run's exits asynchronously).
async fn slot_released(s: &Setup) {
    for _ in 0..100 {
        let active =
            s.db.query_scalar(&format!(
                "SELECT active::text FROM pg_replication_slots WHERE slot_name = '{}'",
                s.slot
            ))
            .await;
        if active.as_deref() != Some("true") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("slot {} stayed active", s.slot);
}

async fn drop_slot(s: &Setup) {
    slot_released(s).await;
    s.db.exec(&format!("SELECT pg_drop_replication_slot('{}')", s.slot))
        .await;
}

/// `run` refuses to go on, naming the slot, what happened and the recovery; exit 1.
fn assert_lost_slot_error(out: &std::process::Output, s: &Setup, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("replication slot `{}`", s.slot)),
        "{err}"
    );
    assert!(err.contains(what), "{what}: {err}");
    assert!(err.contains("pgcdc run --resync"), "{err}");
    assert!(
        !err.contains("stayed unreachable"),
        "no reconnect loop for a lost slot: {err}"
    );
}

/// `validate` with a `run` beside it (the target must reach validate's LSN): exit 0.
async fn validate_clean(s: &Setup, cfg: &Path) {
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "-c"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut run = ChildGuard::spawn(&mut cmd, "pgcdc run");
    let out = s.pgcdc(cfg, &["validate", "--timeout", "90s"]).await;
    let stopped = tokio::task::spawn_blocking(move || run.stop(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_success(
        &out,
        &format!(
            "validate\n{}\nrun beside it:\n{}",
            crate::support::stdout(&out),
            stderr(&stopped)
        ),
    );
    assert!(stopped.status.success(), "{}", stderr(&stopped));
}

fn load_generations(s: &Setup, table: &str) -> Vec<String> {
    let mut lsns: Vec<String> = std::fs::read_dir(s.table_dir("public", table).join("load"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .split('-')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    lsns.sort();
    lsns.dedup();
    lsns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_slot_stops_run_clearly_and_resync_recovers_with_validate_clean() {
    let s = Setup::new("resync_dropped").await;
    tables(&s).await;
    let cfg = config(&s);
    s.run_until_current(&cfg).await;
    changes(&s, 1).await;
    s.run_until_current(&cfg).await;

    // `--resync` over a healthy slot changes nothing without --force.
    slot_released(&s).await;
    let out = s
        .pgcdc(&cfg, &["run", "--resync", "--until-lsn", "current"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is healthy") && stderr(&out).contains("--resync --force"),
        "{}",
        stderr(&out)
    );

    drop_slot(&s).await;
    changes(&s, 2).await; // lost with the slot: only a fresh load has them
    let out = s.pgcdc(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_lost_slot_error(
        &out,
        &s,
        "does not exist, but the target already holds changes",
    );
    assert_eq!(load_generations(&s, "items").len(), 1);

    let out = s
        .pgcdc(&cfg, &["run", "--resync", "--until-lsn", "current"])
        .await;
    assert_success(&out, "pgcdc run --resync");
    assert!(stderr(&out).contains("resync done"), "{}", stderr(&out));
    // The old generation is kept beside the new one; the reset row supersedes it.
    assert_eq!(load_generations(&s, "items").len(), 2);
    changes(&s, 3).await;
    s.run_until_current(&cfg).await;
    s.assert_matches_source("public", "items").await;
    s.assert_matches_source("public", "notes").await;
    validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_slot_stops_run_clearly_and_resync_recovers_with_validate_clean() {
    let s = Setup::new("resync_lost").await;
    tables(&s).await;
    let cfg = config(&s);
    s.run_until_current(&cfg).await;
    slot_released(&s).await;

    // Let the server remove WAL the slot still needs.
    pg().psql_exec(
        "postgres",
        "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'",
    );
    pg().reload();
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            pg().psql_exec("postgres", "ALTER SYSTEM RESET max_slot_wal_keep_size");
            pg().reload();
        }
    }
    let _reset = Reset;
    let mut status = None;
    for round in 0..20 {
        changes(&s, 10 + round).await;
        s.db.exec("SELECT pg_switch_wal(); CHECKPOINT").await;
        status =
            s.db.query_scalar(&format!(
                "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{}'",
                s.slot
            ))
            .await;
        if status.as_deref() == Some("lost") {
            break;
        }
    }
    assert_eq!(
        status.as_deref(),
        Some("lost"),
        "the slot was never invalidated"
    );
    drop(_reset);

    let out = s.pgcdc(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_lost_slot_error(&out, &s, "is invalidated (wal_status = lost)");
    let out = s
        .pgcdc(&cfg, &["run", "--resync", "--until-lsn", "current"])
        .await;
    assert_success(&out, "pgcdc run --resync");
    changes(&s, 40).await;
    s.run_until_current(&cfg).await;
    s.assert_matches_source("public", "items").await;
    validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_dropped_under_a_running_pipeline_ends_the_run_instead_of_retrying() {
    let s = Setup::new("resync_running").await;
    tables(&s).await;
    let cfg = config(&s);
    let log = s.dir.path().join("run.log");
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut run = ChildGuard::spawn(&mut cmd, "pgcdc run");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    changes(&s, 1).await;
    // Replicated and durable: the target holds a position past the load.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s
        .change_rows("public", "items")
        .iter()
        .any(|r| r.values["id"].as_deref() == Some("10001"))
    {
        assert!(run.is_running(), "pgcdc run exited early:\n{}", log_text());
        assert!(
            Instant::now() < deadline,
            "changes never reached the output:\n{}",
            log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Take the slot away from the walsender: end it, drop the slot before pgcdc is back.
    let client = s.db.client().await;
    let sql = format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{0}' AND active;
         SELECT pg_drop_replication_slot('{0}')",
        s.slot
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = client.batch_execute(&sql).await {
        assert!(Instant::now() < deadline, "could not drop the slot: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || run.wait(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run kept retrying:\n{}",
        log_text()
    );
    let mut out = out;
    out.stderr = log_text().into_bytes();
    assert_lost_slot_error(&out, &s, "does not exist");

    changes(&s, 2).await;
    let out = s
        .pgcdc(&cfg, &["run", "--resync", "--until-lsn", "current"])
        .await;
    assert_success(&out, "pgcdc run --resync");
    s.assert_matches_source("public", "items").await;
    s.assert_matches_source("public", "notes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_killed_midway_is_finished_by_the_next_run_with_validate_clean() {
    let s = Setup::new("resync_crash").await;
    tables(&s).await;
    let cfg = config(&s);
    s.run_until_current(&cfg).await;
    changes(&s, 1).await;
    s.run_until_current(&cfg).await;
    drop_slot(&s).await;
    changes(&s, 2).await;

    // Killed after the first table is copied, then (plain run) after the resets.
    for (round, args, point) in [
        (3, vec!["run", "--resync"], "resync-table-copied"),
        (4, vec!["run"], "resync-reset-written"),
    ] {
        let mut cmd = crate::support::pgcdc();
        cmd.args(&args)
            .args(["--until-lsn", "current", "-c"])
            .arg(&cfg)
            .env("PGCDC_FAILPOINTS", point);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{point} was not reached: {}",
            stderr(&out)
        );
        assert!(
            s.out().join("_pgcdc/resync.json").exists(),
            "the resync stays pending after {point}"
        );
        // status says so, with how far it got.
        let st = s.pgcdc(&cfg, &["status", "--json"]).await;
        assert_success(&st, "status during a pending resync");
        let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        let pending = &doc["resync_pending"];
        assert!(pending["started_at"].as_str().is_some_and(|t| !t.is_empty()), "{doc}");
        assert!(pending["tables_copied"].as_u64().is_some_and(|n| n >= 1), "{point}: {doc}");
        let text = s.pgcdc(&cfg, &["status"]).await;
        assert!(String::from_utf8_lossy(&text.stdout).contains("resync pending since"), "{}", String::from_utf8_lossy(&text.stdout));
        changes(&s, round).await;
    }
    let out = s.pgcdc(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_success(&out, "pgcdc run after the killed resyncs");
    assert!(
        stderr(&out).contains("finishing the resync"),
        "{}",
        stderr(&out)
    );
    assert!(!s.out().join("_pgcdc/resync.json").exists());
    let st = s.pgcdc(&cfg, &["status", "--json"]).await;
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(doc["resync_pending"].is_null(), "{doc}");
    changes(&s, 5).await;
    s.run_until_current(&cfg).await;
    s.assert_matches_source("public", "items").await;
    s.assert_matches_source("public", "notes").await;
    validate_clean(&s, &cfg).await;
}

/// A Kinesis sink beside the Parquet one gets every row again as a `load` record (one per
/// row the new load generation holds, each once), then the changes after the resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_sends_every_row_to_a_kinesis_sink_as_a_load_record() {
    use crate::kinesis::{config, new_stream, read_stream, setup_tables, workload};
    use crate::s3::pgcdc_s3;
    use crate::support::{describe, moto};
    let s = setup_tables("resync_kinesis").await;
    let stream = new_stream();
    let cfg = config(&s, &stream, &moto().endpoint_url(), 1);
    workload(&s, 0).await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    drop_slot(&s).await;
    s.db.exec("DELETE FROM acct WHERE id % 3 = 0; UPDATE notes SET tag = 'lost'")
        .await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_lost_slot_error(&out, &s, "does not exist");
    let out = pgcdc_s3(&cfg, &["run", "--resync", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    workload(&s, 1).await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));

    let read = read_stream(&stream);
    let mut sent = Vec::new();
    for r in read
        .iter()
        .filter(|r| r.json["metadata"]["operation"] == "load")
    {
        sent.push(r.key.clone());
    }
    let mut loaded = Vec::new();
    for (t, key) in [("acct", "id"), ("notes", "k")] {
        for r in s
            .change_rows("public", t)
            .into_iter()
            .filter(|r| r.op == pgcdc::model::RowOp::Load)
        {
            loaded.push(format!(
                "public.{t}.{}",
                r.values[key].as_ref().expect("a key")
            ));
        }
    }
    sent.sort();
    loaded.sort();
    assert!(!loaded.is_empty());
    assert_eq!(
        sent, loaded,
        "one load record per row of the new load generation"
    );
    s.assert_matches_source("public", "acct").await;
    s.assert_matches_source("public", "notes").await;
}
