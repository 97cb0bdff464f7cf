//! A running `pgcdc run` survives its source restarting (issue 11 step 2): PostgreSQL stopped
//! fast, then immediately (a crash), each time started again while pgcdc keeps running; it
//! reconnects with back-off, resumes from the durable position, and at the end the output
//! equals the source with no change twice. Each nextest test runs in its own process with
//! its own cluster, so restarting it disturbs no other test.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{assert_success, pg, write_config, ChildGuard, Setup};

async fn changes(s: &Setup, round: i32) {
    let base = round * 1000;
    s.db.exec(&format!(
        "INSERT INTO items SELECT g, 'item ' || g, g % 10 FROM generate_series({base}, {base} + 499) g;
         UPDATE items SET qty = qty + 1 WHERE id % 3 = 0 AND id >= {base};
         DELETE FROM items WHERE id % 7 = 0 AND id >= {base};
         INSERT INTO notes SELECT {base} + g, repeat(md5(g::text), 100) FROM generate_series(1, 20) g"
    ))
    .await;
}

/// Waits until the output holds a row of `marker` with `id`: everything committed before it
/// has been received then.
async fn wait_for_marker(s: &Setup, id: i32, run: &mut ChildGuard, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let dir = s.table_dir("public", "marker");
        if dir.exists() && s.change_rows("public", "marker").iter().any(|r| r.values["id"].as_deref() == Some(&id.to_string())) {
            return;
        }
        assert!(run.is_running(), "pgcdc run exited while the source restarted:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        assert!(Instant::now() < deadline, "marker {id} never reached the output");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_pipeline_survives_fast_and_immediate_restarts_of_its_source() {
    let s = Setup::new("reconnect").await;
    s.db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);
         CREATE TABLE notes (id int PRIMARY KEY, body text);
         CREATE TABLE marker (id int PRIMARY KEY)",
    )
    .await;
    s.db.create_publication(&s.publication, "items, notes, marker").await;
    let cfg = s.config("");
    // Reconnecting is on by default; a short limit keeps a broken test from hanging.
    let toml = std::fs::read_to_string(&cfg).unwrap().replace("[pipeline]", "reconnect_timeout = \"2min\"\n\n[pipeline]");
    let cfg = write_config(s.dir.path(), &toml);
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "pgcdc setup");
    let log = s.dir.path().join("run.log");
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "-c"]).arg(&cfg).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    let mut run = ChildGuard::spawn(&mut cmd, "pgcdc run");

    changes(&s, 1).await;
    s.db.exec("INSERT INTO marker VALUES (1)").await;
    wait_for_marker(&s, 1, &mut run, &log).await;
    for (round, mode) in [(2, "fast"), (3, "immediate")] {
        tokio::task::spawn_blocking(move || pg().stop_with(mode)).await.unwrap();
        // pgcdc finds the server gone and retries meanwhile (refused connections).
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::spawn_blocking(|| pg().start_again()).await.unwrap();
        changes(&s, round).await;
        s.db.exec(&format!("INSERT INTO marker VALUES ({round})")).await;
        wait_for_marker(&s, round, &mut run, &log).await;
    }
    let out = tokio::task::spawn_blocking(move || run.stop(Duration::from_secs(30))).await.unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(out.status.success(), "SIGTERM after the restarts: {:?}\n{stderr}", out.status);
    assert_eq!(stderr.matches("lost the source").count(), 2, "one reconnect per restart:\n{stderr}");
    assert_eq!(stderr.matches("reconnected to the source").count(), 2, "{stderr}");
    // Everything once: the materialised output equals the source, no (_lsn, _seq) twice.
    s.assert_matches_source("public", "items").await;
    s.assert_matches_source("public", "notes").await;
    assert_eq!(s.assert_matches_source("public", "marker").await, 3);
}

/// With `reconnect_timeout = "0s"` a lost source ends the run at once with the error (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnecting_a_lost_source_ends_the_run_with_its_error() {
    let s = Setup::new("reconnect_off").await;
    s.db.exec("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)").await;
    s.db.create_publication(&s.publication, "items").await;
    let cfg = s.config("");
    let toml = std::fs::read_to_string(&cfg).unwrap().replace("[pipeline]", "reconnect_timeout = \"0s\"\n\n[pipeline]");
    let cfg = write_config(s.dir.path(), &toml);
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "pgcdc setup");
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "-c"]).arg(&cfg).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut run = ChildGuard::spawn(&mut cmd, "pgcdc run");
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(|| pg().stop_with("fast")).await.unwrap();
    let out = tokio::task::spawn_blocking(move || run.wait(Duration::from_secs(30))).await.unwrap();
    tokio::task::spawn_blocking(|| pg().start_again()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stayed unreachable") || stderr.contains("lost the source"), "{stderr}");
}
