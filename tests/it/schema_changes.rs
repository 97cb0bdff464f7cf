//! Identities and schema changes (issue 10, classes 1 and 2): keys come from the stream's
//! replica identity, columns keep their values across renames, fast defaults and type
//! changes, and rewrites are reported. Every test ends with the materialised target equal
//! to the source, no `(_lsn, _seq)` twice and `pgcdc validate` clean.

use std::path::Path;

use crate::support::{assert_success, stderr, Running, Setup};

/// `pgcdc validate`, asserting a clean result (exit 0).
async fn assert_validate_clean(s: &Setup, cfg: &Path) -> String {
    let out = s.pgcdc(cfg, &["validate", "--timeout", "60s"]).await;
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_success(&out, "pgcdc validate");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_identity_using_index_keys_deletes_and_moved_keys_by_the_identity() {
    let s = Setup::new("schema_ri_index").await;
    s.db.exec(
        "CREATE TABLE accounts (id int PRIMARY KEY, code text NOT NULL, v int);
         CREATE UNIQUE INDEX accounts_code ON accounts (code);
         ALTER TABLE accounts REPLICA IDENTITY USING INDEX accounts_code;",
    )
    .await;
    s.db.create_publication(&s.publication, "accounts").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec("INSERT INTO accounts SELECT g, 'c' || g, g FROM generate_series(1, 59) g")
        .await;
    s.db.exec("DELETE FROM accounts WHERE id % 5 = 0").await; // deletes carry only `code`
    s.db.exec("UPDATE accounts SET id = id + 1000 WHERE id IN (1, 2, 3)")
        .await; // PK moves, identity does not
    s.db.exec("UPDATE accounts SET code = 'moved' || id WHERE id IN (4, 6)")
        .await; // identity moves (K tuple)
    s.db.exec("UPDATE accounts SET v = -v WHERE id IN (7, 8)")
        .await;
    s.run_until_current(&cfg).await;
    assert_eq!(s.assert_matches_source("public", "accounts").await, 59 - 11);
    assert_validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_key_changed_while_stopped_keys_each_change_by_its_own_identity() {
    let s = Setup::new("schema_pk_change").await;
    s.db.exec("CREATE TABLE items (id int PRIMARY KEY, code text NOT NULL, v int)")
        .await;
    s.db.create_publication(&s.publication, "items").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec("INSERT INTO items SELECT g, 'c' || g, g FROM generate_series(1, 40) g")
        .await;
    s.run_until_current(&cfg).await;
    // While pgcdc is stopped: changes under the old key, the key change, changes under the new.
    s.db.exec("DELETE FROM items WHERE id IN (1, 2)").await;
    s.db.exec("UPDATE items SET id = id + 100 WHERE id IN (3, 4)")
        .await;
    s.db.exec("UPDATE items SET v = 0 WHERE id = 5").await;
    s.db.exec("BEGIN; ALTER TABLE items DROP CONSTRAINT items_pkey; ALTER TABLE items ADD PRIMARY KEY (code); COMMIT").await;
    s.db.exec("DELETE FROM items WHERE code IN ('c6', 'c7')")
        .await;
    s.db.exec("UPDATE items SET code = 'moved8' WHERE code = 'c8'")
        .await;
    s.db.exec("UPDATE items SET id = 5 WHERE code = 'c9'").await; // a duplicate id is fine now
    s.db.exec("INSERT INTO items VALUES (1, 'new1', 1)").await;
    s.run_until_current(&cfg).await;
    assert_eq!(s.assert_matches_source("public", "items").await, 40 - 4 + 1);
    assert_validate_clean(&s, &cfg).await;
    // Each file names its own key; the history records both.
    let mut keys: Vec<String> = crate::support::parquet_files(&s.table_dir("public", "items"))
        .iter()
        .map(|f| {
            let file = std::fs::File::open(f).unwrap();
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap();
            b.schema().metadata()["pgcdc.key"].clone()
        })
        .collect();
    keys.dedup();
    assert_eq!(keys.first().map(String::as_str), Some("id"));
    assert_eq!(keys.last().map(String::as_str), Some("code"));
    let history = std::fs::read_dir(s.out().join("_pgcdc/schema/public/items"))
        .unwrap()
        .count();
    assert!(
        history >= 2,
        "the key change is recorded in the schema history ({history} entries)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_columns_keep_the_values_of_rows_not_touched_since() {
    let s = Setup::new("schema_rename").await;
    s.db.exec(
        "CREATE TABLE live (id int PRIMARY KEY, v text, n int);
         CREATE TABLE stopped (id int PRIMARY KEY, v text, n int);",
    )
    .await;
    s.db.create_publication(&s.publication, "live, stopped")
        .await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");

    // Renamed while pgcdc runs.
    let run = Running::start(&cfg);
    s.db.exec("INSERT INTO live SELECT g, 'v' || g, g FROM generate_series(1, 20) g")
        .await;
    run.wait_caught_up(&s).await;
    s.db.exec("ALTER TABLE live RENAME COLUMN v TO w").await;
    s.db.exec("UPDATE live SET w = 'changed' WHERE id IN (1, 2)")
        .await;
    s.db.exec("INSERT INTO live VALUES (21, 'after', 21)").await;
    run.wait_caught_up(&s).await;
    run.stop().await;

    // Renamed while pgcdc is stopped: the first Relation message names a column that no
    // longer exists under that name.
    s.db.exec("INSERT INTO stopped SELECT g, 'v' || g, g FROM generate_series(1, 20) g")
        .await;
    s.db.exec("ALTER TABLE stopped RENAME COLUMN v TO w").await;
    s.db.exec("UPDATE stopped SET w = 'changed' WHERE id IN (1, 2)")
        .await;
    s.run_until_current(&cfg).await;

    for t in ["live", "stopped"] {
        s.assert_matches_source("public", t).await;
    }
    assert_validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_default_reaches_rows_written_before_the_column() {
    let s = Setup::new("schema_fast_default").await;
    s.db.exec("CREATE TABLE f (id int PRIMARY KEY, v int); CREATE TABLE f_stopped (id int PRIMARY KEY, v int)").await;
    s.db.create_publication(&s.publication, "f, f_stopped")
        .await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    // `f` gets its column between two runs, `f_stopped` while pgcdc is stopped.
    s.db.exec("INSERT INTO f SELECT g, g FROM generate_series(1, 20) g")
        .await;
    s.run_until_current(&cfg).await;
    s.db.exec("INSERT INTO f_stopped SELECT g, g FROM generate_series(1, 20) g")
        .await;
    for t in ["f", "f_stopped"] {
        s.db.exec(&format!(
            "ALTER TABLE {t} ADD COLUMN c text DEFAULT 'x y', ADD COLUMN d int DEFAULT 7, ADD COLUMN e text;
             UPDATE {t} SET v = 0 WHERE id = 1;
             INSERT INTO {t} VALUES (21, 21, 'set', NULL, 'e');"
        ))
        .await;
    }
    s.run_until_current(&cfg).await;
    for t in ["f", "f_stopped"] {
        s.assert_matches_source("public", t).await;
    }
    assert_validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_preserving_type_change_compares_equal_and_the_rewrite_is_reported() {
    let s = Setup::new("schema_type_change").await;
    s.db.exec("CREATE TABLE m (id int PRIMARY KEY, amount int)")
        .await;
    s.db.create_publication(&s.publication, "m").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec("INSERT INTO m SELECT g, g FROM generate_series(1, 20) g")
        .await;
    s.run_until_current(&cfg).await;
    // A rewrite (new relfilenode) while pgcdc is stopped: found against the schema history.
    s.db.exec("ALTER TABLE m ALTER COLUMN amount TYPE numeric(20,2)")
        .await;
    s.db.exec("INSERT INTO m VALUES (21, 2.5)").await;
    let out = s.run_until_current(&cfg).await;
    s.assert_matches_source("public", "m").await;
    assert_validate_clean(&s, &cfg).await;
    assert!(
        stderr(&out).contains("table public.m was rewritten"),
        "no rewrite warning: {}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_while_running_is_reported() {
    let s = Setup::new("schema_rewrite_live").await;
    s.db.exec("CREATE TABLE w (id int PRIMARY KEY, v int)")
        .await;
    s.db.create_publication(&s.publication, "w").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    let run = Running::start(&cfg);
    s.db.exec("INSERT INTO w SELECT g, g FROM generate_series(1, 10) g")
        .await;
    run.wait_caught_up(&s).await;
    s.db.exec("VACUUM FULL w").await; // a rewrite whose reload is harmless: the output stays right
    s.db.exec("INSERT INTO w VALUES (11, 11)").await;
    run.wait_caught_up(&s).await;
    let err = stderr(&run.stop().await);
    assert!(
        err.contains("table public.w was rewritten"),
        "no rewrite warning"
    );
    s.assert_matches_source("public", "w").await;
    assert_validate_clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_columns_are_not_in_the_output_and_validate_says_so() {
    let s = Setup::new("schema_generated").await;
    s.db.exec("CREATE TABLE g (id int PRIMARY KEY, v int, doubled int GENERATED ALWAYS AS (v * 2) STORED)").await;
    s.db.create_publication(&s.publication, "g").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec("INSERT INTO g (id, v) SELECT g, g FROM generate_series(1, 10) g")
        .await;
    s.db.exec("UPDATE g SET v = 0 WHERE id = 1").await;
    s.run_until_current(&cfg).await;
    assert!(
        s.change_rows("public", "g")
            .iter()
            .all(|r| !r.values.contains_key("doubled")),
        "pgoutput does not send generated columns"
    );
    s.assert_matches_source("public", "g").await;
    let report = assert_validate_clean(&s, &cfg).await;
    assert!(
        report.contains("generated columns not in the output, not compared: doubled"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_load_keys_by_the_same_identity_as_the_stream() {
    let s = Setup::new("schema_ri_index_load").await;
    s.db.exec(
        "CREATE TABLE accounts (id int PRIMARY KEY, code text NOT NULL, v int);
         CREATE UNIQUE INDEX accounts_code ON accounts (code);
         ALTER TABLE accounts REPLICA IDENTITY USING INDEX accounts_code;
         INSERT INTO accounts SELECT g, 'c' || g, g FROM generate_series(1, 59) g;",
    )
    .await;
    s.db.create_publication(&s.publication, "accounts").await;
    let toml = std::fs::read_to_string(s.config(""))
        .unwrap()
        .replace("mode = \"cdc\"", "mode = \"full-load-and-cdc\"");
    let cfg = crate::support::write_config(s.dir.path(), &toml);
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.run_until_current(&cfg).await;
    s.db.exec("DELETE FROM accounts WHERE id % 5 = 0").await;
    s.db.exec("UPDATE accounts SET id = id + 1000 WHERE id IN (1, 2, 3)")
        .await;
    s.run_until_current(&cfg).await;
    assert_eq!(s.assert_matches_source("public", "accounts").await, 59 - 11);
    assert_validate_clean(&s, &cfg).await;
}
