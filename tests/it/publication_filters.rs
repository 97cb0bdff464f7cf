//! What the publication says is what leaves the database (issue 10, classes 3 and 4):
//! PostgreSQL 15 column lists and row filters are honoured by the full load and by
//! `validate`, not only by pgoutput; tables `source.tables` selects that the publication
//! leaves out are reported by `check`, `run` and `validate`, never silently skipped.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{describe, parquet_files, report_table, stderr, stdout, Setup};

/// The test's config in `full-load-and-cdc` mode, with `extra_source` lines in `[source]`.
fn config(s: &Setup, name: &str, extra_source: &str) -> PathBuf {
    let base = std::fs::read_to_string(s.config("")).expect("config");
    let toml = base
        .replacen("[source]\n", &format!("[source]\n{extra_source}"), 1)
        .replace("mode = \"cdc\"", "mode = \"full-load-and-cdc\"");
    let path = s.dir.path().join(name);
    std::fs::write(&path, toml).expect("write config");
    path
}

async fn validate(s: &Setup, cfg: &Path, json: bool) -> Output {
    let mut args = vec!["validate", "--timeout", "60s"];
    if json {
        args.extend(["--format", "json"]);
    }
    let out = s.pgcdc(cfg, &args).await;
    eprintln!("pgcdc validate: {}", describe(&out));
    out
}

const PEOPLE_COLUMNS: [&str; 3] = ["id", "name", "country"];
const PEOPLE_FILTER: &str = "country = 'NG'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_list_and_row_filter_are_honoured_by_the_load_cdc_and_validate() {
    let s = Setup::new("pub_filters").await;
    // national_id (PII) and note are kept out of the publication; only Nigerian rows are
    // published. The filter column is part of the replica identity (PostgreSQL requires it
    // for a filter on a publication of updates and deletes).
    s.db.exec(
        "CREATE TABLE people (id int, name text, national_id text, country text NOT NULL, note text, PRIMARY KEY (id, country));
         INSERT INTO people
           SELECT g, 'person ' || g, 'NID-SECRET-' || (100000 + g),
                  CASE WHEN g % 2 = 0 OR g = 41 THEN 'NG' ELSE 'KE' END, 'note ' || g
             FROM generate_series(1, 42) g;
         CREATE TABLE plain (id int PRIMARY KEY, v text);
         INSERT INTO plain SELECT g, 'v' || g FROM generate_series(1, 5) g;
         -- Published through its root: the root's column list and filter apply to the leaves.
         CREATE TABLE orders (id int, region text, card text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
         CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
         INSERT INTO orders SELECT g, CASE WHEN g % 3 = 0 THEN 'us' ELSE 'eu' END, 'CARD-SECRET-' || g
           FROM generate_series(1, 30) g",
    )
    .await;
    assert_eq!(
        s.db.query_scalar("SELECT count(*) FROM people WHERE country = 'NG'")
            .await
            .as_deref(),
        Some("22")
    );
    // The column list in another order than the table's: files follow the table's order.
    s.db.create_publication(
        &s.publication,
        "TABLE people (country, name, id) WHERE (country = 'NG'), plain,
               orders (id, region) WHERE (region = 'eu' OR id > 20)
         WITH (publish_via_partition_root = true)",
    )
    .await;
    let cfg = config(&s, "filters.toml", "");

    // The full load: only the published columns and rows.
    s.run_until_current(&cfg).await;
    let loaded = crate::support::read_parquet_glob_with_python(&s.out(), "public/people/load/**/*.parquet");
    let people = &loaded["tables"]["public/people"];
    assert_eq!(
        people["pyarrow_rows"], 22,
        "only the rows passing the row filter are loaded: {people:#}"
    );
    assert_eq!(
        people["columns"],
        serde_json::json!([
            "id",
            "name",
            "country",
            "_op",
            "_lsn",
            "_seq",
            "_xid",
            "_commit_ts",
            "_unchanged"
        ])
    );
    s.assert_matches_source_published("public", "people", &PEOPLE_COLUMNS, PEOPLE_FILTER)
        .await;

    // CDC: rows move into and out of the filter, change inside and outside it, and come and go.
    s.db.exec(
        "UPDATE people SET country = 'NG' WHERE id IN (1, 3);               -- enter: arrive as inserts
         UPDATE people SET country = 'KE' WHERE id IN (2, 4);               -- leave: arrive as deletes
         UPDATE people SET name = name || ' (renamed)' WHERE id IN (6, 5);  -- inside and outside
         UPDATE people SET national_id = 'NID-SECRET-CHANGED' WHERE id = 10; -- only an unpublished column
         DELETE FROM people WHERE id IN (7, 8);                             -- outside and inside
         INSERT INTO people VALUES (100, 'new NG', 'NID-SECRET-100', 'NG', 'n'), (101, 'new KE', 'NID-SECRET-101', 'KE', 'n');
         UPDATE plain SET v = 'changed' WHERE id = 1;
         UPDATE orders SET region = 'us' WHERE id IN (1, 2);  -- leave (and move partition)
         UPDATE orders SET region = 'eu' WHERE id = 3;        -- enter
         INSERT INTO orders VALUES (31, 'us', 'CARD-SECRET-31'), (32, 'eu', 'CARD-SECRET-32');
         DELETE FROM orders WHERE id IN (4, 6)",
    )
    .await;
    s.db.exec("UPDATE people SET country = 'KE' WHERE id = 12")
        .await;
    s.db.exec("UPDATE people SET country = 'NG', name = 'back' WHERE id = 12")
        .await;
    s.run_until_current(&cfg).await;

    // No file holds the unpublished columns or any of their values; load and CDC files have
    // the same schema.
    let all = crate::support::read_parquet_with_python(&s.out());
    let cdc = crate::support::read_parquet_glob_with_python(&s.out(), "public/people/cdc/**/*.parquet");
    assert!(
        cdc["tables"]["public/people"]["pyarrow_rows"]
            .as_u64()
            .unwrap()
            > 0,
        "{cdc:#}"
    );
    assert_eq!(
        cdc["tables"]["public/people"]["columns"], people["columns"],
        "CDC files have the load files' schema"
    );
    for (name, t) in all["tables"].as_object().expect("tables") {
        let cols: Vec<&str> = t["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(
            !cols.contains(&"national_id") && !cols.contains(&"note") && !cols.contains(&"card"),
            "{name} has unpublished columns: {cols:?}"
        );
        assert!(
            t["pyarrow_concat_error"].is_null(),
            "{name}: files with different schemas: {t:#}"
        );
    }
    let text = all.to_string();
    assert!(
        !text.contains("CARD-SECRET"),
        "a card number reached the target"
    );
    assert!(
        !text.contains("NID-SECRET"),
        "a national id reached the target"
    );
    assert!(
        !text.contains("note 2"),
        "an unpublished column's value reached the target"
    );
    // Every file of the target, also pgcdc's own state and schema history.
    let mut dirs = vec![s.out()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(11).any(|w| w == b"national_id"),
                    "{} names national_id",
                    path.display()
                );
            }
        }
    }

    // The target is exactly the published rows, and validate (reading the source through the
    // same column list and filter) agrees.
    let expected = s
        .assert_matches_source_published("public", "people", &PEOPLE_COLUMNS, PEOPLE_FILTER)
        .await;
    assert_eq!(
        expected,
        22 + 2 - 2 - 1 + 1,
        "ids 1, 3 entered, 2, 4 left, 8 deleted, 100 inserted"
    );
    s.assert_matches_source("public", "plain").await;
    // Loaded: 20 in eu + 21, 24, 27, 30 in us; then 1, 2 left, 3 entered, 31 and 32
    // inserted, 4 deleted (6 was in us and outside).
    let orders = s
        .assert_matches_source_published(
            "public",
            "orders",
            &["id", "region"],
            "region = 'eu' OR id > 20",
        )
        .await;
    assert_eq!(orders, 24 - 2 + 1 + 2 - 1);
    let out = validate(&s, &cfg, true).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let p = report_table(&report, "public.people");
    assert_eq!(
        (
            p["status"].as_str(),
            p["source_rows"].as_u64(),
            p["target_rows"].as_u64()
        ),
        (Some("identical"), Some(22), Some(22)),
        "{p:#}"
    );

    // validate compares the filtered set: losing the load file is seen.
    let load_files = parquet_files(&s.table_dir("public", "people").join("load"));
    assert_eq!(load_files.len(), 1, "{load_files:?}");
    let saved = std::fs::read(&load_files[0]).unwrap();
    std::fs::remove_file(&load_files[0]).unwrap();
    let out = validate(&s, &cfg, false).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("public.people") && l.contains("DIFFERENT")),
        "{}",
        describe(&out)
    );
    std::fs::write(&load_files[0], saved).unwrap();
    let out = validate(&s, &cfg, false).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_matching_the_patterns_but_not_published_are_reported_by_check_run_and_validate() {
    let s = Setup::new("pub_missing").await;
    s.db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, v text);
         CREATE TABLE parted (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
         CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
         CREATE SCHEMA other;
         CREATE TABLE other.x (id int PRIMARY KEY);
         INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 10) g;
         INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 10) g;
         INSERT INTO parted SELECT g, 1 FROM generate_series(1, 10) g",
    )
    .await;
    // The partitions of `parted` are published through their root: not missing.
    s.db.create_publication(
        &s.publication,
        "TABLE a, b, parted WITH (publish_via_partition_root = true)",
    )
    .await;
    let cfg = config(&s, "patterns.toml", "tables = [\"public.*\"]\n");

    let out = s.pgcdc(&cfg, &["check"]).await;
    assert!(
        !stdout(&out).contains("unpublished"),
        "nothing is missing yet: {}",
        describe(&out)
    );
    s.run_until_current(&cfg).await;

    // Created later: a plain table and a partition tree that match public.*, a table in
    // another schema that does not, and an unlogged table (which cannot be published).
    s.db.exec(
        "CREATE TABLE c (id int PRIMARY KEY, v text);
         INSERT INTO c VALUES (1, 'lost');
         CREATE TABLE lonely (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
         CREATE TABLE lonely_1 PARTITION OF lonely FOR VALUES IN (1);
         INSERT INTO lonely VALUES (1, 1);
         CREATE TABLE other.y (id int PRIMARY KEY);
         CREATE UNLOGGED TABLE scratch (id int);
         INSERT INTO a VALUES (11, 'a11'); INSERT INTO parted VALUES (11, 1)",
    )
    .await;
    let hint = format!(
        "ALTER PUBLICATION \"{}\" ADD TABLE \"public\".\"c\", \"public\".\"lonely\";",
        s.publication
    );

    // check: a failed item naming them, with the statement that fixes it.
    let out = s.pgcdc(&cfg, &["check"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("unpublished tables"))
        .unwrap_or_else(|| panic!("{}", describe(&out)));
    assert!(
        line.starts_with("BLOCKER ") && line.contains("public.c, public.lonely match source.tables"),
        "{line}"
    );
    assert!(text.contains(&hint), "{text}");
    assert!(
        !text.contains("lonely_1")
            && !text.contains("parted_1")
            && !text.contains("other.")
            && !text.contains("scratch"),
        "{text}"
    );

    // run: a warning at start, and it keeps replicating the other tables.
    let out = s.run_until_current(&cfg).await;
    let log = stderr(&out);
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("not in publication"))
        .unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(warning.contains("public.c, public.lonely"), "{warning}");
    assert_eq!(s.assert_matches_source("public", "a").await, 11);
    assert_eq!(s.assert_matches_source("public", "parted").await, 11);
    s.assert_matches_source("public", "b").await;

    // validate: listed as not published, exit 3, while the published tables are identical.
    let out = validate(&s, &cfg, false).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = stdout(&out);
    for t in ["public.c", "public.lonely"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{t} ")))
            .unwrap_or_else(|| panic!("{t} missing: {text}"));
        assert!(line.contains("NOT PUBLISHED"), "{line}");
    }
    assert!(text.contains("2 not published"), "{text}");
    let out = validate(&s, &cfg, true).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["clean"], false);
    assert_eq!(report_table(&report, "public.c")["status"], "not_published");
    assert_eq!(
        report_table(&report, "public.lonely")["status"],
        "not_published"
    );
    for t in ["public.a", "public.b", "public.parted"] {
        assert_eq!(
            report_table(&report, t)["status"],
            "identical",
            "{report:#}"
        );
    }
    assert_eq!(report["tables"].as_array().unwrap().len(), 5, "{report:#}");

    // Without `tables` (everything in the publication) nothing is missing, and the same
    // target validates clean.
    let all = config(&s, "all.toml", "");
    let out = s.pgcdc(&all, &["check"]).await;
    assert!(!stdout(&out).contains("unpublished"), "{}", describe(&out));
    let out = s.run_until_current(&all).await;
    assert!(
        !stderr(&out).contains("not in publication"),
        "{}",
        describe(&out)
    );
    let out = validate(&s, &all, false).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_adds_exactly_the_tables_check_reports_as_unpublished() {
    let s = Setup::new("pub_setup").await;
    s.db.exec(
        "CREATE TABLE a (id int PRIMARY KEY);
         CREATE TABLE p (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
         CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
         CREATE UNLOGGED TABLE scratch (id int);
         INSERT INTO a VALUES (1); INSERT INTO p VALUES (1, 1)",
    )
    .await;
    let cfg = config(&s, "setup.toml", "tables = [\"public.*\"]\n");
    // A partitioned table is published per partition (publish_via_partition_root is off):
    // a second setup must not add it again, and an unlogged table is left alone.
    for _ in 0..2 {
        let out = s.pgcdc(&cfg, &["setup"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    }
    let out = s.pgcdc(&cfg, &["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    s.db.exec("CREATE TABLE c (id int PRIMARY KEY)").await;
    let out = s.pgcdc(&cfg, &["check"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = s.pgcdc(&cfg, &["setup"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("added public.c to publication"),
        "{}",
        describe(&out)
    );
    let out = s.pgcdc(&cfg, &["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    s.run_until_current(&cfg).await;
    s.db.exec("INSERT INTO c VALUES (1); INSERT INTO p VALUES (2, 1)")
        .await;
    s.run_until_current(&cfg).await;
    s.assert_matches_source("public", "c").await;
    s.assert_matches_source("public", "a").await;
    assert_eq!(
        s.assert_matches_source("public", "p1").await,
        2,
        "published per partition"
    );
    let out = validate(&s, &cfg, false).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}
