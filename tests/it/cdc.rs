//! End-to-end CDC against a real server: `pgcdc setup` + `pgcdc run --until-lsn current`,
//! then the output is read back and checked row by row (SPEC 2.1, 2.2, 2.4, 5.1).

use pgcdc::model::RowOp;
use crate::support::{assert_success, parquet_files, read_parquet_with_python, stderr, stdout, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_changes_materialise_to_the_source_and_restart_writes_nothing_twice() {
    let s = Setup::new("cdc_mixed").await;
    s.db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int, price numeric(10,2), seen timestamptz);
         CREATE TABLE notes (id bigint PRIMARY KEY, body text)",
    )
    .await;
    s.db.create_publication(&s.publication, "items, notes").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "pgcdc setup");
    // setup is idempotent
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "pgcdc setup (again)");

    s.db.exec(
        "INSERT INTO items SELECT g, 'item ' || g, g % 10, g * 1.5, now() FROM generate_series(1, 3000) g;
         INSERT INTO notes VALUES (1, 'a'), (2, 'b\\N'), (3, NULL);
         UPDATE items SET qty = qty + 100 WHERE id % 3 = 0;
         DELETE FROM items WHERE id % 7 = 0;
         BEGIN; INSERT INTO items VALUES (100000, 'in txn', 1, 1, now()); UPDATE items SET name = 'changed in txn' WHERE id = 100000; DELETE FROM notes WHERE id = 1; COMMIT;",
    )
    .await;
    s.run_until_current(&cfg).await;
    assert_eq!(s.assert_matches_source("public", "items").await, 3000 - 428 + 1);
    assert_eq!(s.assert_matches_source("public", "notes").await, 2);

    // The slot was told: its confirmed position is at least the last commit we wrote.
    let confirmed: pgcdc::model::Lsn = s.db.slot_confirmed_lsn(&s.slot).await.unwrap().parse().unwrap();
    let max_lsn = s.change_rows("public", "items").iter().map(|r| r.lsn).max().unwrap();
    assert!(confirmed.0 as i64 > max_lsn, "slot confirmed {confirmed} is not past the last commit");
    let checkpoint = std::fs::read_to_string(s.out().join("_pgcdc/checkpoint.json")).unwrap();
    assert!(checkpoint.contains("\"I\": 3001"), "checkpoint counts: {checkpoint}");

    // A second run with nothing new writes no file; a third picks up only new changes.
    let files_before = parquet_files(&s.out());
    s.run_until_current(&cfg).await;
    assert_eq!(parquet_files(&s.out()), files_before, "a restart must not rewrite anything");
    s.db.exec("UPDATE items SET price = 0 WHERE id < 10; INSERT INTO notes VALUES (4, 'd')").await;
    s.run_until_current(&cfg).await;
    s.assert_matches_source("public", "items").await;
    s.assert_matches_source("public", "notes").await;

    // Names are LSN ranges that sort in LSN order, in date partitions.
    for f in parquet_files(&s.out()) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let parent = f.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        assert!(parent.starts_with("date="), "{}", f.display());
        let (first, last) = name.trim_end_matches(".parquet").split_once('-').unwrap();
        assert_eq!((first.len(), &last[..16.min(last.len())].len()), (16, &16));
        assert!(first <= &last[..16]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toast_key_changes_truncate_and_added_columns_follow_the_rules() {
    let s = Setup::new("cdc_rules").await;
    s.db.exec(
        "CREATE TABLE docs (id int PRIMARY KEY, big text, v int);
         CREATE TABLE docs_full (id int PRIMARY KEY, big text, v int);
         ALTER TABLE docs_full REPLICA IDENTITY FULL;
         CREATE TABLE scratch (id int PRIMARY KEY);
         -- a value large and incompressible enough to be stored out of line (TOAST)
         CREATE FUNCTION big_value() RETURNS text LANGUAGE sql AS $$ SELECT string_agg(md5(g::text), '') FROM generate_series(1, 600) g $$;",
    )
    .await;
    s.db.create_publication(&s.publication, "docs, docs_full, scratch").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    // One transaction per statement, as an application would do them.
    for sql in [
        "INSERT INTO docs VALUES (1, big_value(), 1), (2, 'small', 1)",
        "INSERT INTO docs_full VALUES (1, big_value(), 1)",
        "INSERT INTO scratch SELECT generate_series(1, 10)",
        "UPDATE docs SET v = 2 WHERE id = 1",      // big unchanged: not sent
        "UPDATE docs SET id = 10 WHERE id = 1",    // key change, big still unchanged
        "UPDATE docs_full SET v = 2 WHERE id = 1", // FULL: the old tuple carries big
        "TRUNCATE scratch",
        "INSERT INTO scratch VALUES (42)",
        "ALTER TABLE docs ADD COLUMN extra text",
        "INSERT INTO docs VALUES (3, 'after', 3, 'new column')",
        "UPDATE docs SET extra = 'x' WHERE id = 2",
    ] {
        s.db.exec(sql).await;
    }
    s.run_until_current(&cfg).await;

    let rows = s.change_rows("public", "docs");
    let ops: Vec<RowOp> = rows.iter().map(|r| r.op).collect();
    use RowOp::*;
    assert_eq!(ops, vec![Insert, Insert, Update, Delete, Insert, Insert, Update]);
    assert_eq!(rows[2].unchanged, vec!["big".to_string()], "unchanged TOAST is listed");
    assert_eq!(rows[2].values["big"], None, "and null, not a value");
    assert_eq!(rows[3].values["id"].as_deref(), Some("1"));
    assert_eq!((rows[3].lsn, rows[3].seq + 1), (rows[4].lsn, rows[4].seq), "D and I of a key change are adjacent");
    assert_eq!(rows[4].values["id"].as_deref(), Some("10"));
    assert_eq!(rows[5].values["extra"].as_deref(), Some("new column"));
    s.assert_matches_source("public", "docs").await;

    let full = s.change_rows("public", "docs_full");
    assert_eq!(full[1].op, Update);
    assert!(full[1].unchanged.is_empty(), "REPLICA IDENTITY FULL fills the value from the old tuple");
    assert_eq!(full[1].values["big"].as_ref().map(|v| v.len()), Some(600 * 32));
    s.assert_matches_source("public", "docs_full").await;

    let scratch = s.change_rows("public", "scratch");
    assert_eq!(scratch.iter().filter(|r| r.op == Truncate).count(), 1);
    assert_eq!(s.assert_matches_source("public", "scratch").await, 1);

    // The added column starts a new file with the new schema, and the history keeps both.
    let history = std::fs::read_dir(s.out().join("_pgcdc/schema/public/docs")).unwrap().count();
    assert_eq!(history, 2, "schema history entries for docs");
    assert!(parquet_files(&s.table_dir("public", "docs")).len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_streamed_transactions_leave_nothing_and_big_ones_arrive_whole() {
    let s = Setup::new("cdc_stream").await;
    s.db.exec("CREATE TABLE big (id int PRIMARY KEY, pad text)").await;
    s.db.create_publication(&s.publication, "big").await;
    let cfg = s.config("max_file_size = \"256KiB\"");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    // logical_decoding_work_mem is 64kB on the test cluster: these are streamed.
    s.db.exec(
        "BEGIN; INSERT INTO big SELECT g, repeat('x', 50) FROM generate_series(1, 30000) g; ROLLBACK;
         BEGIN; INSERT INTO big SELECT g, 'kept' FROM generate_series(1, 20000) g;
                SAVEPOINT s1; INSERT INTO big SELECT g, 'rolled back' FROM generate_series(20001, 25000) g; ROLLBACK TO s1;
                UPDATE big SET pad = 'updated' WHERE id <= 5000; COMMIT;",
    )
    .await;
    let out = s.run_until_current(&cfg).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("(0 streamed"), "the big transaction should have been streamed: {stdout}");
    let rows = s.change_rows("public", "big");
    assert_eq!(rows.len(), 25000, "20000 inserts + 5000 updates, nothing of the aborted work");
    assert!(rows.iter().all(|r| r.values["pad"].as_deref() != Some("rolled back")));
    assert_eq!(rows.iter().map(|r| r.lsn).collect::<std::collections::HashSet<_>>().len(), 1, "one transaction");
    assert_eq!(s.assert_matches_source("public", "big").await, 20000);
    assert!(parquet_files(&s.table_dir("public", "big")).len() > 1, "max_file_size splits the transaction's parts");
}

/// A streamed transaction is written from its staging (converted and encoded while it
/// streams, its commit LSN and time filled in at the commit) exactly as its replay from the
/// spill writes it: the same rows, values and metadata, read back by pyarrow and DuckDB,
/// on wide rows with TOAST, arrays, jsonb, bytea, key changes and REPLICA IDENTITY FULL,
/// between ordinary transactions on the same tables. The transactions staging gives up on
/// (a schema change inside, a rolled-back subtransaction with staged rows) are replayed,
/// and an aborted one leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_streamed_transaction_writes_what_its_replay_writes() {
    let s = Setup::new("cdc_staged").await;
    s.db.exec(
        "CREATE TABLE wide (id bigint PRIMARY KEY, customer text, price numeric(12,2), tags text[], payload jsonb,
                            created timestamptz, uid uuid, blob bytea, big text, flag bool);
         CREATE TABLE full_id (id int PRIMARY KEY, v text, big text);
         ALTER TABLE full_id REPLICA IDENTITY FULL",
    )
    .await;
    s.db.create_publication(&s.publication, "wide, full_id").await;
    let staged_cfg = s.config("max_file_size = \"512KiB\"");
    // The replayed run: its own slot (created now, so it sees the same changes) and output.
    let replayed_out = s.out().with_file_name("replayed");
    let replayed_slot = format!("{}_replayed", s.slot);
    let toml = std::fs::read_to_string(&staged_cfg).unwrap()
        .replace(&format!("slot = \"{}\"", s.slot), &format!("slot = \"{replayed_slot}\""))
        .replace(&s.out().display().to_string(), &replayed_out.display().to_string());
    let replayed_cfg = staged_cfg.with_file_name("replayed.toml");
    std::fs::write(&replayed_cfg, toml).unwrap();
    assert_success(&s.pgcdc(&staged_cfg, &["setup"]).await, "setup");
    assert_success(&s.pgcdc(&replayed_cfg, &["setup"]).await, "setup of the second slot");
    let row = "g, 'cust ' || (g % 97), (g * 1.25)::numeric(12,2), ARRAY['a' || g, NULL, 'c'], jsonb_build_object('g', g, 'n', ARRAY[g, g + 1]),
               '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute', md5(g::text)::uuid, decode(md5(g::text), 'hex'),
               CASE WHEN g % 5 = 0 THEN (SELECT string_agg(md5((g * 1000 + i)::text), '') FROM generate_series(1, 80) i) END, g % 2 = 0";
    s.db.exec(&format!("INSERT INTO wide SELECT {row} FROM generate_series(-20, -1) g; INSERT INTO full_id VALUES (-1, 'before', 'b')")).await;
    // logical_decoding_work_mem is 64kB on the test cluster: streamed.
    s.db.exec(&format!(
        "BEGIN;
         INSERT INTO wide SELECT {row} FROM generate_series(1, 20000) g;
         UPDATE wide SET price = price + 1 WHERE id % 7 = 0;
         UPDATE wide SET id = id + 100000 WHERE id % 1000 = 0;
         DELETE FROM wide WHERE id % 11 = 0;
         UPDATE wide SET customer = NULL, payload = NULL WHERE id < 0;
         INSERT INTO full_id SELECT g, 'v' || g, repeat(md5(g::text), 100) FROM generate_series(1, 3000) g;
         UPDATE full_id SET v = 'changed' WHERE id % 3 = 0;
         UPDATE full_id SET id = -id WHERE id % 500 = 0;
         DELETE FROM full_id WHERE id % 10 = 1;
         COMMIT;
         INSERT INTO wide SELECT {row} FROM generate_series(30001, 30010) g;
         UPDATE full_id SET v = 'after' WHERE id = -1;
         BEGIN; INSERT INTO full_id SELECT g, 'aborted', 'x' FROM generate_series(10001, 16000) g; ROLLBACK;
         BEGIN;
         INSERT INTO full_id SELECT g, 'pre', 'p' FROM generate_series(20001, 26000) g;
         ALTER TABLE full_id ADD COLUMN extra int DEFAULT 7;
         INSERT INTO full_id SELECT g, 'ddl', 'y', g FROM generate_series(26001, 29000) g;
         COMMIT;
         BEGIN;
         INSERT INTO wide SELECT {row} FROM generate_series(50001, 54000) g;
         SAVEPOINT a; DELETE FROM wide WHERE id > 50000; ROLLBACK TO a;
         UPDATE wide SET flag = NULL WHERE id > 53000;
         COMMIT;"
    ))
    .await;
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&staged_cfg).env("PGCDC_LOG", "info,pgcdc::pipeline=debug");
    let staged = crate::support::output_of(cmd).await;
    assert_success(&staged, "the staged run");
    assert!(stdout(&staged).contains("(3 streamed, 1 of them staged; 1 aborted streams skipped)"), "{}", stdout(&staged));
    for reason in ["changes schema inside the transaction", "a subtransaction with staged changes was rolled back"] {
        assert!(stderr(&staged).contains(reason), "staging should have stopped for {reason:?}: {}", stderr(&staged));
    }
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&replayed_cfg).env("PGCDC_STREAM_STAGING", "off");
    let replayed = crate::support::output_of(cmd).await;
    assert_success(&replayed, "the replayed run");
    assert!(stdout(&replayed).contains("(3 streamed, 0 of them staged; 1 aborted streams skipped)"), "{}", stdout(&replayed));

    let (a, b) = (read_parquet_with_python(&s.out()), read_parquet_with_python(&replayed_out));
    for table in ["public/wide", "public/full_id"] {
        let (staged, replayed) = (&a["tables"][table], &b["tables"][table]);
        assert_eq!(staged["duckdb_error"], serde_json::Value::Null, "{table}: {}", staged["duckdb_error"]);
        assert_eq!(staged["duckdb_rows"], staged["pyarrow_rows"], "{table}");
        assert_eq!(staged["fields"], replayed["fields"], "{table}: the same columns");
        let rows = staged["rows"].as_array().unwrap();
        assert!(rows.len() > 9000, "{table}: {} rows", rows.len());
        assert_eq!(rows, replayed["rows"].as_array().unwrap(), "{table}: staged and replayed rows differ");
    }
    assert!(parquet_files(&s.table_dir("public", "wide")).len() > 2, "max_file_size splits the staged parts");
    assert!(s.assert_matches_source("public", "wide").await > 18000);
    s.assert_matches_source("public", "full_id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slot_advances_past_unpublished_traffic() {
    let s = Setup::new("cdc_idle").await;
    s.db.exec("CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE other (id int)").await;
    s.db.create_publication(&s.publication, "published").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec("INSERT INTO other SELECT generate_series(1, 1000)").await;
    let target: pgcdc::model::Lsn = s.db.current_lsn().await.parse().unwrap();
    s.run_until_current(&cfg).await;
    let confirmed: pgcdc::model::Lsn = s.db.slot_confirmed_lsn(&s.slot).await.unwrap().parse().unwrap();
    assert!(confirmed >= target, "slot confirmed {confirmed}, expected at least {target}");
    assert!(parquet_files(&s.out()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_slot_is_detected_instead_of_silently_skipping_changes() {
    let s = Setup::new("cdc_slot_gap").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec("INSERT INTO t VALUES (1)").await;
    s.run_until_current(&cfg).await;
    // The walsender of the finished run exits asynchronously.
    for _ in 0..100 {
        let active = s.db.query_scalar(&format!("SELECT active::text FROM pg_replication_slots WHERE slot_name = '{}'", s.slot)).await;
        if active.as_deref() == Some("false") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    s.db.exec(&format!("SELECT pg_drop_replication_slot('{}')", s.slot)).await;
    s.db.exec("INSERT INTO t VALUES (2)").await; // lost with the slot
    let out = s.pgcdc(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist, but the target already holds changes"), "{}", stderr(&out));
    s.db.exec(&format!("SELECT pg_create_logical_replication_slot('{}', 'pgoutput')", s.slot)).await;
    s.db.exec("INSERT INTO t VALUES (3)").await;
    let out = s.pgcdc(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("changes in between are missing"), "{}", stderr(&out));
}

/// SPEC 2.7: with `heartbeat_interval`, pgcdc writes `pg_logical_emit_message` heartbeats,
/// so the slot's confirmed position keeps moving on a database where nothing else writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_advance_an_otherwise_idle_slot() {
    let s = Setup::new("cdc_heartbeat").await;
    s.db.exec("CREATE TABLE quiet (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "quiet").await;
    let toml = format!(
        "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\nheartbeat_interval = \"500ms\"\n\n\
         [pipeline]\nmode = \"cdc\"\nstatus_interval = \"1s\"\n\n[[sink]]\nkind = \"parquet\"\nurl = \"{}\"\n",
        s.db.url,
        s.publication,
        s.slot,
        s.out().display()
    );
    let cfg = crate::support::write_config(s.dir.path(), &toml);
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    let before: pgcdc::model::Lsn = s.db.slot_confirmed_lsn(&s.slot).await.unwrap().parse().unwrap();
    let child = crate::support::pgcdc().args(["run", "-c"]).arg(&cfg).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut advanced = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let now: pgcdc::model::Lsn = s.db.slot_confirmed_lsn(&s.slot).await.unwrap().parse().unwrap();
        if now > before {
            advanced = true;
            break;
        }
    }
    crate::support::sigterm(&child);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(advanced, "the slot stayed at {before}: heartbeats did not advance it");
    assert!(parquet_files(&s.out()).is_empty(), "heartbeats write no rows");
}
