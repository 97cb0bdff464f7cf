//! Issue 10, classes 5–7: names map to paths one-to-one and never outside the target; one
//! writer per target; stopping on a signal during the full load; `validate` honours its
//! timeout and says what it waits for; plain log lines when stderr is not a terminal.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{assert_success, sigterm, stderr, Setup};

/// A config in `full-load-and-cdc` mode; `extra_pipeline` lines go into `[pipeline]`.
/// Starts `pgcdc <args> -c cfg` with stdout and stderr captured.
fn spawn(cfg: &Path, args: &[&str]) -> Child {
    crate::support::pgcdc()
        .args(args)
        .arg("-c")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pgcdc")
}

async fn wait(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .unwrap()
}

/// Waits for `child`, killing it and failing the test when it runs longer than `limit`.
async fn wait_at_most(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = wait(child).await;
            panic!(
                "still running after {limit:?}; killed. stderr:\n{}",
                stderr(&out)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait(child).await
}

/// Log lines are plain text when stderr is not a terminal.
fn assert_no_ansi(out: &Output) {
    let err = stderr(out);
    assert!(
        !err.contains("\x1b["),
        "ANSI escape codes in captured stderr:\n{err:?}"
    );
}

async fn assert_validate_clean(s: &Setup, cfg: &Path) {
    let out = s.pgcdc(cfg, &["validate", "--timeout", "60s"]).await;
    assert_no_ansi(&out);
    assert_success(&out, "pgcdc validate");
}

/// Every file and directory under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Polls `_pgcdc/load.json` until at least one chunk is recorded done.
async fn wait_for_a_done_chunk(s: &Setup, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(b) = std::fs::read(s.out().join("_pgcdc/load.json")) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                let done = v["tables"]
                    .as_object()
                    .into_iter()
                    .flat_map(|t| t.values())
                    .flat_map(|t| t["chunks"].as_array().cloned().unwrap_or_default())
                    .filter(|c| !c["done_at"].is_null())
                    .count();
                if done > 0 {
                    assert_eq!(
                        v["complete"], false,
                        "the load finished too fast for this test"
                    );
                    return;
                }
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "pgcdc run ended before a chunk was done"
        );
        assert!(Instant::now() < deadline, "no chunk done within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A table whose load takes a few seconds: many small chunks, one worker.
const SLOW_LOAD: &str = "load_workers = 1\nload_chunk_size = \"64KiB\"";

async fn create_big_table(s: &Setup, rows: u32) {
    s.db.exec(&format!(
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, md5(g::text) || repeat('x', 80) FROM generate_series(1, {rows}) g;"
    ))
    .await;
    s.db.create_publication(&s.publication, "big").await;
}

// ---------------------------------------------------------------------------------------
// 6. One writer per target
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_a_fresh_target_one_loads_the_other_is_refused_at_once() {
    let s = Setup::new("ts_two_runs").await;
    create_big_table(&s, 100_000).await;
    let cfg = s.config_with("full-load-and-cdc", SLOW_LOAD);
    let args = [
        "run",
        "--mode",
        "full-load-and-cdc",
        "--until-lsn",
        "current",
    ];
    let first = spawn(&cfg, &args);
    let first_pid = first.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let second = spawn(&cfg, &args);
    let second_pid = second.id();
    let second_out = wait(second).await;
    let second_took = started.elapsed();
    let first_out = wait(first).await;
    eprintln!(
        "first:\n{}\nsecond:\n{}",
        stderr(&first_out),
        stderr(&second_out)
    );
    assert_no_ansi(&first_out);
    assert_no_ansi(&second_out);

    // Exactly one succeeds; the other is refused with the holder named.
    let (winner, loser, winner_pid, loser_took) =
        match (first_out.status.success(), second_out.status.success()) {
            (true, false) => (&first_out, &second_out, first_pid, Some(second_took)),
            (false, true) => (&second_out, &first_out, second_pid, None),
            other => panic!("exactly one run must succeed: {other:?}"),
        };
    assert_success(winner, "the run holding the target");
    assert_eq!(loser.status.code(), Some(1));
    let msg = stderr(loser);
    assert!(
        msg.contains("is in use by pgcdc pid")
            && msg.contains(&format!("pid {winner_pid} on host ")),
        "{msg}"
    );
    assert!(msg.contains(" since ") && msg.contains("hint:"), "{msg}");
    assert!(
        msg.contains(&format!("file://{}", s.out().display())),
        "{msg}"
    );
    if let Some(t) = loser_took {
        assert!(
            t < Duration::from_secs(3),
            "the refusal is immediate, took {t:?}"
        );
    }
    assert!(
        stderr(winner).contains("full load done"),
        "{}",
        stderr(winner)
    );

    s.assert_matches_source("public", "big").await;
    assert_validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_while_one_streams_is_refused_and_changes_nothing() {
    let s = Setup::new("ts_streaming").await;
    s.db.exec("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 500) g")
        .await;
    s.db.create_publication(&s.publication, "items").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    let mut first = spawn(&cfg, &["run"]);
    // Wait until the load is done and CDC writes: the first CDC rows are in the output.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.out().join("_pgcdc/checkpoint.json").exists() {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        assert!(
            Instant::now() < deadline,
            "the first run did not finish its load"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.db.exec("INSERT INTO items SELECT g, 'cdc' FROM generate_series(501, 600) g")
        .await;
    while !s.table_dir("public", "items").join("cdc").exists() {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        assert!(Instant::now() < deadline, "the first run wrote no CDC file");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = tree(&s.out());
    let lock_before = std::fs::read(s.out().join("_pgcdc/lock")).unwrap();

    let started = Instant::now();
    let second = s.pgcdc(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused at once"
    );
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let msg = stderr(&second);
    assert!(
        msg.contains(&format!("is in use by pgcdc pid {} on host", first.id())),
        "{msg}"
    );
    assert_no_ansi(&second);
    assert_eq!(tree(&s.out()), before, "the refused run changed the target");
    assert_eq!(
        std::fs::read(s.out().join("_pgcdc/lock")).unwrap(),
        lock_before
    );
    // check, status and validate only read: they run beside the writer.
    assert_success(&s.pgcdc(&cfg, &["status"]).await, "status beside a run");

    // The first run is intact and keeps writing.
    s.db.exec("UPDATE items SET v = 'late' WHERE id % 10 = 0; DELETE FROM items WHERE id % 13 = 0")
        .await;
    assert_validate_clean(&s, &cfg).await;
    sigterm(&first);
    let out = wait(first).await;
    assert!(
        out.status.success(),
        "SIGTERM is a clean stop: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    s.assert_matches_source("public", "items").await;
    assert_validate_clean(&s, &cfg).await;
}

// ---------------------------------------------------------------------------------------
// 5. Names map to paths safely and one-to-one
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tricky_names_get_their_own_directories_inside_the_target() {
    let s = Setup::new("ts_names").await;
    let tables = [
        ("public", "a/b"),
        ("public", "a_b"),
        ("..", "t"),
        ("public", "50% \"off\" it's"),
    ];
    let q = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
    let mut sql = String::from("CREATE SCHEMA \"..\";");
    for (i, (schema, table)) in tables.iter().enumerate() {
        sql += &format!(
            "CREATE TABLE {}.{} (id int PRIMARY KEY, v text);
             INSERT INTO {0}.{1} SELECT g, '{i}-' || g FROM generate_series(1, 50) g;",
            q(schema),
            q(table)
        );
    }
    s.db.exec(&sql).await;
    let list = tables
        .iter()
        .map(|(sc, t)| format!("{}.{}", q(sc), q(t)))
        .collect::<Vec<_>>()
        .join(", ");
    s.db.create_publication(&s.publication, &list).await;
    let cfg = s.config_with("full-load-and-cdc", "");
    let out = s.run_until_current(&cfg).await;
    assert_no_ansi(&out);
    let mut sql = String::new();
    for (i, (schema, table)) in tables.iter().enumerate() {
        let t = format!("{}.{}", q(schema), q(table));
        sql += &format!(
            "INSERT INTO {t} SELECT g, 'cdc {i}' FROM generate_series(51, 60) g;
             UPDATE {t} SET v = v || ' changed' WHERE id % 3 = {};
             DELETE FROM {t} WHERE id % 7 = {};",
            i % 3,
            i % 7
        );
    }
    s.db.exec(&sql).await;
    s.run_until_current(&cfg).await;

    for (schema, table) in tables {
        s.assert_matches_source(schema, table).await;
    }
    // Each table has its own directory; nothing is written beside the target.
    let mut parent: Vec<String> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    parent.sort();
    assert_eq!(parent, ["out", "pgcdc.toml"], "files outside the target");
    for dir in [
        "public/a%2Fb",
        "public/a_b",
        "%2E%2E/t",
        "public/50%25%20%22off%22%20it%27s",
    ] {
        assert!(
            s.out().join(dir).join("load").is_dir(),
            "{dir} missing: {:?}",
            tree(&s.out())
        );
        assert!(
            s.out().join(dir).join("cdc").is_dir(),
            "{dir} has no CDC files"
        );
    }
    assert!(
        s.out().join("_pgcdc/schema/%2E%2E/t").is_dir(),
        "{:?}",
        tree(&s.out())
    );
    assert_validate_clean(&s, &cfg).await;
}

// ---------------------------------------------------------------------------------------
// 7. Stopping and waiting
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_full_load_keeps_finished_chunks_and_exits_0() {
    let s = Setup::new("ts_sigterm_load").await;
    create_big_table(&s, 100_000).await;
    let cfg = s.config_with("full-load-and-cdc", SLOW_LOAD);
    let mut child = spawn(&cfg, &["run", "--until-lsn", "current"]);
    wait_for_a_done_chunk(&s, &mut child).await;
    let sent = Instant::now();
    sigterm(&child);
    let out = wait_at_most(child, Duration::from_secs(30)).await;
    let took = sent.elapsed();
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(
        out.status.signal(),
        None,
        "killed by a signal instead of stopping"
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(
        err.contains("terminated during the full load") && err.contains("chunks are done and kept"),
        "{err}"
    );
    assert!(err.contains("the next run resumes"), "{err}");
    assert_no_ansi(&out);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.out().join("_pgcdc/load.json")).unwrap()).unwrap();
    assert_eq!(state["complete"], false);

    let out = s.run_until_current(&cfg).await;
    assert!(
        stderr(&out).contains("resuming the full load"),
        "{}",
        stderr(&out)
    );
    s.assert_matches_source("public", "big").await;
    assert_validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_behind_a_prepared_transaction_times_out_and_names_it() {
    let s = Setup::new("ts_validate_wait").await;
    s.db.exec("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' FROM generate_series(1, 100) g")
        .await;
    s.db.create_publication(&s.publication, "items").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    s.run_until_current(&cfg).await;

    let gid = s.db.unique("gid");
    s.db.exec(&format!(
        "BEGIN; INSERT INTO items VALUES (1000, 'prepared'); PREPARE TRANSACTION '{gid}'"
    ))
    .await;
    let started = Instant::now();
    let child = spawn(&cfg, &["validate", "--timeout", "3s"]);
    let out = wait_at_most(child, Duration::from_secs(20)).await;
    let took = started.elapsed();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    eprintln!("{text}");
    s.db.exec(&format!("ROLLBACK PREPARED '{gid}'")).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        took < Duration::from_secs(10),
        "validate took {took:?} with --timeout 3s"
    );
    assert!(
        text.contains(&gid) && text.contains("prepared transaction"),
        "{text}"
    );
    assert!(
        text.contains("COMMIT PREPARED") && text.contains("ROLLBACK PREPARED"),
        "{text}"
    );
    assert_no_ansi(&out);

    s.db.exec("INSERT INTO items VALUES (2000, 'after')").await;
    s.run_until_current(&cfg).await;
    s.assert_matches_source("public", "items").await;
    assert_validate_clean(&s, &cfg).await;
}
