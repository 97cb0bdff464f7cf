//! Tables that join the publication, are renamed, recreated, attached or detached while
//! `pgcdc run` streams (issue 10, class 3 and the identity cases of class 2), and reloads on
//! request: each ends with the materialised target equal to the source, no `(_lsn, _seq)`
//! twice, and `pgcdc validate` clean.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use std::time::Duration;

use pgcdc::model::RowOp;
use crate::support::{assert_success, Running, Setup};

async fn validate_clean(s: &Setup, cfg: &Path) {
    let out = s.pgcdc(cfg, &["validate", "--timeout", "60s"]).await;
    assert_success(&out, "pgcdc validate");
}

fn loaded_rows(s: &Setup, table: &str) -> usize {
    s.change_rows("public", table)
        .iter()
        .filter(|r| r.op == RowOp::Load)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filled_table_added_to_the_publication_while_running_is_loaded() {
    let s = Setup::new("tc_join").await;
    s.db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 10) g;
         CREATE TABLE b (id int PRIMARY KEY, v text); INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 100) g;
         CREATE TABLE quiet (id int PRIMARY KEY, v text); INSERT INTO quiet SELECT g, 'q' || g FROM generate_series(1, 30) g;",
    )
    .await;
    s.db.create_publication(&s.publication, "a").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    let run = Running::start_streaming(&cfg, &s);
    s.db.exec(&format!(
        "ALTER PUBLICATION \"{}\" ADD TABLE b, quiet",
        s.publication
    ))
    .await;
    s.db.exec(
        "UPDATE b SET v = 'changed at once' WHERE id <= 5; INSERT INTO b VALUES (101, 'new')",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.db.exec("UPDATE b SET v = 'changed later' WHERE id % 10 = 0; DELETE FROM b WHERE id = 7; INSERT INTO a VALUES (11, 'x')").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.stop().await;
    s.db.exec("UPDATE b SET v = 'after the stop' WHERE id = 1")
        .await;
    s.run_until_current(&cfg).await;
    assert_eq!(s.assert_matches_source("public", "a").await, 11);
    assert_eq!(s.assert_matches_source("public", "b").await, 100);
    // A table that joined and never changed is loaded too.
    assert_eq!(s.assert_matches_source("public", "quiet").await, 30);
    assert!(loaded_rows(&s, "quiet") >= 30);
    validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reload_rewrites_a_table_whose_files_were_deleted() {
    let s = Setup::new("tc_reload").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g;").await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    s.run_until_current(&cfg).await;
    s.db.exec("UPDATE t SET v = 'u' WHERE id % 3 = 0; DELETE FROM t WHERE id % 5 = 0; INSERT INTO t VALUES (1000, 'n')").await;
    s.run_until_current(&cfg).await;
    // Only published tables can be reloaded: CDC would not follow any other.
    s.db.exec("CREATE TABLE other (id int PRIMARY KEY)").await;
    let out = s.pgcdc(&cfg, &["run", "--reload", "public.other", "--until-lsn", "current"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", crate::support::stderr(&out));
    assert!(crate::support::stderr(&out).contains("is not in publication"), "{}", crate::support::stderr(&out));
    std::fs::remove_dir_all(s.table_dir("public", "t")).unwrap();
    s.db.exec("UPDATE t SET v = 'after the loss' WHERE id = 1")
        .await;
    let out = s
        .pgcdc(
            &cfg,
            &["run", "--reload", "public.t", "--until-lsn", "current"],
        )
        .await;
    assert_success(&out, "pgcdc run --reload public.t");
    let rows = s.change_rows("public", "t");
    let reset = rows
        .iter()
        .find(|r| r.op == RowOp::Truncate)
        .expect("a reset row");
    assert_eq!(reset.seq, -1, "the reset sorts before the reload's rows");
    assert!(rows
        .iter()
        .filter(|r| r.op == RowOp::Load)
        .all(|r| r.lsn == reset.lsn && r.seq >= 0));
    assert_eq!(s.assert_matches_source("public", "t").await, 500 - 100 + 1);
    let reg = std::fs::read_to_string(s.out().join("_pgcdc/tables.json")).unwrap();
    assert!(reg.contains("\"pending\": []"), "{reg}");
    validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_table_is_followed_under_its_new_name_while_running_and_while_stopped() {
    let s = Setup::new("tc_rename").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20) g;").await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    let run = Running::start_streaming(&cfg, &s);
    s.db.exec("ALTER TABLE t RENAME TO t2").await;
    s.db.exec("UPDATE t2 SET v = 'renamed' WHERE id <= 4").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.stop().await;
    s.db.exec("ALTER TABLE t2 RENAME TO t3").await;
    s.db.exec("INSERT INTO t3 VALUES (21, 'while stopped'); DELETE FROM t3 WHERE id = 2")
        .await;
    s.run_until_current(&cfg).await;
    assert_eq!(s.assert_matches_source("public", "t3").await, 20);
    // The old directory keeps the history up to the rename.
    assert!(
        s.change_rows("public", "t")
            .iter()
            .filter(|r| r.op == RowOp::Load)
            .count()
            == 20
    );
    validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_and_created_again_does_not_bring_back_old_rows() {
    let s = Setup::new("tc_recreate").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'old' || g FROM generate_series(1, 50) g;").await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    let run = Running::start_streaming(&cfg, &s);
    s.db.exec("UPDATE t SET v = 'old, updated' WHERE id <= 10")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.db.exec(&format!(
        "DROP TABLE t; CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'new' || g FROM generate_series(40, 60) g;
         ALTER PUBLICATION \"{}\" ADD TABLE t",
        s.publication
    ))
    .await;
    s.db.exec("UPDATE t SET v = 'new, updated' WHERE id = 45; INSERT INTO t VALUES (61, 'new')")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.stop().await;
    // And once more while stopped.
    s.db.exec(&format!(
        "DROP TABLE t; CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'third');
         ALTER PUBLICATION \"{}\" ADD TABLE t",
        s.publication
    ))
    .await;
    s.run_until_current(&cfg).await;
    assert_eq!(s.assert_matches_source("public", "t").await, 1);
    validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_and_detaching_partitions_reloads_the_root() {
    let s = Setup::new("tc_partitions").await;
    s.db.exec(
        "CREATE TABLE m (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
         CREATE TABLE m1 PARTITION OF m FOR VALUES IN (1);
         INSERT INTO m SELECT g, 1, 'one' FROM generate_series(1, 200) g;
         CREATE TABLE m2 (id int, k int, v text, PRIMARY KEY (id, k));
         INSERT INTO m2 SELECT g, 2, 'two' FROM generate_series(1, 150) g;",
    )
    .await;
    s.db.exec(&format!(
        "CREATE PUBLICATION \"{}\" FOR TABLE m WITH (publish_via_partition_root = true)",
        s.publication
    ))
    .await;
    let cfg = s.config_with("full-load-and-cdc", "");
    let run = Running::start_streaming(&cfg, &s);
    s.db.exec("ALTER TABLE m ATTACH PARTITION m2 FOR VALUES IN (2)")
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    s.db.exec("UPDATE m SET v = 'two, updated' WHERE k = 2 AND id <= 10")
        .await;
    s.db.exec("ALTER TABLE m DETACH PARTITION m1").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    run.stop().await;
    s.run_until_current(&cfg).await;
    assert_eq!(s.assert_matches_source("public", "m").await, 150);
    validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_killed_after_copying_is_redone_without_duplicates() {
    let s = Setup::new("tc_reload_kill").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g;").await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    s.run_until_current(&cfg).await;
    s.db.exec("UPDATE t SET v = 'u' WHERE id % 4 = 0").await;
    let mut cmd = crate::support::pgcdc();
    cmd.args([
        "run",
        "--reload",
        "public.t",
        "--until-lsn",
        "current",
        "-c",
    ])
    .arg(&cfg)
    .env("PGCDC_FAILPOINTS", "reload-copied");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "killed after the reload's copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reg = std::fs::read_to_string(s.out().join("_pgcdc/tables.json")).unwrap();
    assert!(
        reg.contains("requested with --reload") && reg.contains("\"attempt\": {"),
        "the reload is pending: {reg}"
    );
    let out = s.pgcdc(&cfg, &["validate", "--timeout", "2s"]).await;
    assert_eq!(out.status.code(), Some(1), "validate does not pass a pending reload: {}", crate::support::stderr(&out));
    assert!(crate::support::stderr(&out).contains("public.t (requested with --reload)"), "{}", crate::support::stderr(&out));
    s.db.exec("DELETE FROM t WHERE id % 9 = 0").await;
    s.run_until_current(&cfg).await;
    let resets = s
        .change_rows("public", "t")
        .iter()
        .filter(|r| r.op == RowOp::Truncate)
        .count();
    assert_eq!(resets, 1, "the interrupted attempt's files are gone");
    assert_eq!(s.assert_matches_source("public", "t").await, 2000 - 222);
    validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cdc_mode_a_joining_table_is_named_in_a_warning_and_loaded_on_request() {
    let s = Setup::new("tc_cdc_join").await;
    s.db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, v text); INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 40) g;",
    )
    .await;
    s.db.create_publication(&s.publication, "a").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "pgcdc setup");
    s.db.exec("INSERT INTO a VALUES (1, 'one')").await;
    s.run_until_current(&cfg).await;
    s.db.exec(&format!("ALTER PUBLICATION \"{}\" ADD TABLE b", s.publication)).await;
    s.db.exec("UPDATE b SET v = 'changed' WHERE id = 3").await;
    let out = s.run_until_current(&cfg).await;
    let log = crate::support::stderr(&out);
    assert!(log.contains("public.b joined the publication") && log.contains("pgcdc run --reload public.b"), "{log}");
    let out = s.pgcdc(&cfg, &["run", "--reload", "public.b", "--until-lsn", "current"]).await;
    assert_success(&out, "pgcdc run --reload public.b");
    assert_eq!(s.assert_matches_source("public", "a").await, 1);
    assert_eq!(s.assert_matches_source("public", "b").await, 40);
    validate_clean(&s, &cfg).await;
}

/// Rewrites that send no row through pgoutput (a volatile default, `ALTER TYPE … USING`)
/// are noticed by the table's new relfilenode and the table is reloaded, while running and
/// across a stop; a TRUNCATE (also a new relfilenode, but its `T` row is in the stream)
/// reloads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_rewritten_without_sending_their_rows_are_reloaded() {
    let s = Setup::new("tc_rewrite").await;
    s.db.exec(
        "CREATE TABLE r (id int PRIMARY KEY, v int); INSERT INTO r SELECT g, g FROM generate_series(1, 50) g;
         CREATE TABLE u (id int PRIMARY KEY, v int); INSERT INTO u SELECT g, g FROM generate_series(1, 40) g;
         CREATE TABLE tr (id int PRIMARY KEY, v int); INSERT INTO tr SELECT g, g FROM generate_series(1, 20) g;",
    )
    .await;
    s.db.create_publication(&s.publication, "r, u, tr").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    s.run_until_current(&cfg).await;
    let loads_before = |t: &str| loaded_rows(&s, t);
    assert_eq!(loads_before("tr"), 20);

    // While running: every existing row gets a value pgoutput never sends.
    let run = Running::start_streaming(&cfg, &s);
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.db.exec("ALTER TABLE r ADD COLUMN at timestamptz DEFAULT clock_timestamp()").await;
    s.db.exec("UPDATE r SET v = -1 WHERE id = 1").await;
    s.db.exec("TRUNCATE tr; INSERT INTO tr VALUES (1, 1)").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.stop().await;

    // While stopped: the rewrite is found against the relfilenode recorded by the last run.
    s.db.exec("ALTER TABLE u ALTER COLUMN v TYPE text USING (v * 10)::text || '!'").await;
    s.db.exec("INSERT INTO u VALUES (41, 'new')").await;
    let out = s.run_until_current(&cfg).await;
    assert!(crate::support::stderr(&out).contains("table public.u was rewritten"), "{}", crate::support::stderr(&out));

    assert_eq!(s.assert_matches_source("public", "r").await, 50);
    assert_eq!(s.assert_matches_source("public", "u").await, 41);
    assert_eq!(s.assert_matches_source("public", "tr").await, 1);
    assert!(loaded_rows(&s, "r") >= 100, "r was loaded and reloaded");
    assert!(loaded_rows(&s, "u") >= 80, "u was loaded and reloaded");
    assert_eq!(loaded_rows(&s, "tr"), 20, "a TRUNCATE reloads nothing");
    validate_clean(&s, &cfg).await;
}
