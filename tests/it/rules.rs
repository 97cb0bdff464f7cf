//! Selection and transformation rules (issue 12, SPEC 5.5): `[[rule]]`s drop, rename,
//! retype and filter through the full load, CDC and `validate`; on PostgreSQL 15 `setup`
//! puts column lists and row filters into the publication, and pgcdc applies what the
//! server cannot. Outputs are read back with pyarrow and the raw bytes of every file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{assert_success, describe, pg, read_parquet_glob_with_python, report_table, stdout, Setup};

/// A `full-load-and-cdc` config over `public.*` with an uncompressed Parquet sink (so that a
/// value in a file shows in its raw bytes), followed by `rules`.
fn config(s: &Setup, name: &str, rules: &str) -> PathBuf {
    let toml = format!(
        "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\ntables = [\"public.*\"]\n\n\
         [pipeline]\nmode = \"full-load-and-cdc\"\nstatus_interval = \"1s\"\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\ncompression = \"none\"\n\n{rules}",
        s.db.url,
        s.publication,
        s.slot,
        s.out().display()
    );
    let path = s.dir.path().join(name);
    std::fs::write(&path, toml).expect("write config");
    path
}

async fn validate_clean(s: &Setup, cfg: &Path) -> Value {
    let out = s.pgcdc(cfg, &["validate", "--timeout", "60s", "--format", "json"]).await;
    eprintln!("pgcdc validate: {}", describe(&out));
    assert_success(&out, "pgcdc validate");
    serde_json::from_str(&stdout(&out)).expect("validate --format json")
}

/// The target table `dir` (`schema/table` under the output) read by pyarrow and
/// materialised by `key` (SPEC 5.1 without TOAST): key text → row.
fn materialised(s: &Setup, dir: &str, key: &[&str]) -> BTreeMap<String, Value> {
    let read = read_parquet_glob_with_python(&s.out(), &format!("{dir}/**/*.parquet"));
    let rows = read["tables"][dir]["rows"].as_array().unwrap_or_else(|| panic!("no rows in {dir}: {read:#}")).clone();
    let mut state = BTreeMap::new();
    for r in rows {
        let k = key.iter().map(|c| r[*c].to_string()).collect::<Vec<_>>().join("|");
        match r["_op"].as_str().expect("_op") {
            "L" | "I" | "U" => {
                state.insert(k, r);
            }
            "D" => {
                state.remove(&k);
            }
            "T" => state.clear(),
            op => panic!("unexpected _op {op}"),
        }
    }
    state
}

/// Each row's last op in the target table `dir`, by the value of `id`.
fn last_ops(s: &Setup, dir: &str) -> BTreeMap<i64, String> {
    let read = read_parquet_glob_with_python(&s.out(), &format!("{dir}/**/*.parquet"));
    let mut ops = BTreeMap::new();
    for r in read["tables"][dir]["rows"].as_array().expect("rows") {
        ops.insert(r["id"].as_i64().expect("id"), r["_op"].as_str().unwrap().to_string());
    }
    ops
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn contains(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn ids(s: &Setup, sql: &str) -> Vec<String> {
    s.db.query_strings(sql).await.into_iter().map(|r| r[0].clone().unwrap_or_default()).collect()
}

const RULES: &str = r#"
[[rule]]
tables = "public.customers"
drop_columns = ["ssn", "card_number"]
rename = "crm.customer"
rename_columns = { name = "full_name" }
text_columns = ["matrix"]

[[rule]]
tables = "public.orders"
where = "country = 'NG'"

[[rule]]
tables = ["public.shipments"]
where = "region = 'eu'"

[[rule]]
tables = "public.events"
where = "kind <> 'debug'"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_shape_the_load_cdc_and_validate_and_run_in_the_server_where_they_can() {
    assert!(pg().version_num() >= 150000, "this test needs PostgreSQL 15 (column lists and row filters)");
    let s = Setup::new("rules").await;
    s.db.exec(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, ssn text, card_number text, country text, matrix int[]);
         INSERT INTO customers SELECT g, 'name ' || g, 'SSN-SECRET-' || g, 'CARD-SECRET-' || g,
                CASE WHEN g % 2 = 0 THEN 'NG' ELSE 'KE' END,
                CASE WHEN g % 3 = 0 THEN '{{1,2},{3,4}}'::int[] ELSE ARRAY[g, g + 1] END
           FROM generate_series(1, 40) g;
         -- The filter reads a column outside the key: PostgreSQL cannot apply it, pgcdc does.
         CREATE TABLE orders (id int PRIMARY KEY, country text NOT NULL, amount numeric(10,2));
         INSERT INTO orders SELECT g, CASE WHEN g % 2 = 0 THEN 'NG' ELSE 'KE' END, g * 1.5 FROM generate_series(1, 40) g;
         -- The filter reads a key column: in the publication.
         CREATE TABLE shipments (id int, region text, qty int, PRIMARY KEY (id, region));
         INSERT INTO shipments SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 40) g;
         -- REPLICA IDENTITY FULL: any filter can be in the publication.
         CREATE TABLE events (id int PRIMARY KEY, kind text, payload text);
         ALTER TABLE events REPLICA IDENTITY FULL;
         INSERT INTO events SELECT g, CASE WHEN g % 2 = 0 THEN 'debug' ELSE 'info' END, 'p' || g FROM generate_series(1, 40) g;
         CREATE TABLE plain (id int PRIMARY KEY, v text);
         INSERT INTO plain SELECT g, 'v' || g FROM generate_series(1, 5) g",
    )
    .await;
    let cfg = config(&s, "rules.toml", RULES);

    // setup writes the publication with column lists and row filters where PostgreSQL can.
    let out = s.pgcdc(&cfg, &["setup", "--print"]).await;
    assert_success(&out, "setup --print");
    let printed = stdout(&out);
    assert!(printed.contains("\"public\".\"customers\" (\"id\", \"name\", \"country\", \"matrix\")"), "{printed}");
    assert!(printed.contains("\"public\".\"shipments\" WHERE (region = 'eu')"), "{printed}");
    let out = s.pgcdc(&cfg, &["setup"]).await;
    assert_success(&out, "setup");
    let entries = s
        .db
        .query_strings(&format!(
            "SELECT tablename::text, array_to_string(attnames, ','), rowfilter FROM pg_publication_tables WHERE pubname = '{}' ORDER BY 1",
            s.publication
        ))
        .await;
    let entry = |t: &str| entries.iter().find(|r| r[0].as_deref() == Some(t)).unwrap_or_else(|| panic!("{t} not published: {entries:?}")).clone();
    assert_eq!(entry("customers")[1].as_deref(), Some("id,name,country,matrix"), "the dropped columns never leave the server");
    assert!(entry("shipments")[2].as_deref().is_some_and(|f| f.contains("'eu'")), "{entries:?}");
    assert!(entry("events")[2].as_deref().is_some_and(|f| f.contains("'debug'")), "{entries:?}");
    assert_eq!(entry("orders")[2], None, "a filter outside the replica identity stays out of the publication: {entries:?}");
    // A second setup changes nothing.
    let again = s.pgcdc(&cfg, &["setup"]).await;
    assert_success(&again, "setup again");
    assert!(!stdout(&again).contains("005_rules"), "{}", stdout(&again));

    // check says where each rule runs.
    let out = s.pgcdc(&cfg, &["check", "--json"]).await;
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("check --json: {e}: {}", describe(&out)));
    let rules: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "rules")
        .map(|f| (f["level"].as_str().unwrap().to_string(), f["finding"].as_str().unwrap().to_string()))
        .collect();
    let finding = |needle: &str| rules.iter().find(|(_, f)| f.contains(needle)).unwrap_or_else(|| panic!("no rules finding with {needle}: {rules:#?}")).clone();
    assert_eq!(finding("public.orders: where").0, "warning");
    assert!(finding("public.orders: where").1.contains("outside the replica identity"));
    assert_eq!(finding("public.shipments: where").0, "ok");
    assert_eq!(finding("public.events: where").0, "ok");
    assert_eq!(finding("public.customers: drop_columns").0, "ok");
    assert!(finding("public.customers: written as crm.customer").1.contains("full_name"));
    assert_eq!(report["blockers"], 0, "{report:#}");

    // Full load, then CDC: rows move into and out of every filter in both directions.
    s.run_until_current(&cfg).await;
    s.db.exec(
        "UPDATE customers SET ssn = 'SSN-SECRET-NEW', card_number = 'CARD-SECRET-NEW' WHERE id = 1;
         UPDATE customers SET name = 'renamed', matrix = '{{5,6},{7,8}}' WHERE id = 2;
         INSERT INTO customers VALUES (100, 'new', 'SSN-SECRET-100', 'CARD-SECRET-100', 'NG', '{{{1}}}');
         DELETE FROM customers WHERE id = 3;
         UPDATE customers SET id = 200 WHERE id = 4;
         UPDATE orders SET country = 'NG' WHERE id IN (1, 3);
         UPDATE orders SET country = 'KE' WHERE id IN (2, 4);
         UPDATE orders SET amount = amount + 1 WHERE id IN (5, 6);
         DELETE FROM orders WHERE id IN (7, 8);
         INSERT INTO orders VALUES (100, 'NG', 1), (101, 'KE', 2);
         UPDATE shipments SET region = 'eu' WHERE id = 1;
         UPDATE shipments SET region = 'us' WHERE id = 2;
         UPDATE shipments SET qty = qty + 100 WHERE id IN (3, 6);
         UPDATE events SET kind = 'info' WHERE id IN (2, 4);
         UPDATE events SET kind = 'debug' WHERE id IN (1, 3);
         UPDATE events SET payload = 'changed' WHERE id IN (5, 6);
         DELETE FROM events WHERE id IN (9, 10);
         INSERT INTO events VALUES (100, 'info', 'x'), (101, 'debug', 'y');
         UPDATE plain SET v = 'changed' WHERE id = 1",
    )
    .await;
    s.run_until_current(&cfg).await;

    // validate compares the filtered, renamed, reduced source with the target: clean.
    let report = validate_clean(&s, &cfg).await;
    for t in ["crm.customer", "public.orders", "public.shipments", "public.events", "public.plain"] {
        assert_eq!(report_table(&report, t)["status"], "identical", "{t}: {report:#}");
    }

    // Read independently: the renamed table under its new name and shape, text overrides
    // holding multi-dimensional arrays as PostgreSQL prints them.
    assert!(!s.out().join("public/customers").exists(), "the source name is not written");
    let customers = materialised(&s, "crm/customer", &["id"]);
    let cols = read_parquet_glob_with_python(&s.out(), "crm/customer/**/*.parquet")["tables"]["crm/customer"]["columns"].clone();
    assert_eq!(cols, serde_json::json!(["id", "full_name", "country", "matrix", "_op", "_lsn", "_seq", "_xid", "_commit_ts", "_unchanged"]));
    let source = s.db.query_strings("SELECT id::text, name, country, matrix::text FROM customers ORDER BY id").await;
    assert_eq!(customers.len(), source.len());
    for r in &source {
        let t = &customers[&r[0].clone().unwrap()];
        assert_eq!(t["full_name"].as_str(), r[1].as_deref(), "{t}");
        assert_eq!(t["country"].as_str(), r[2].as_deref(), "{t}");
        assert_eq!(t["matrix"].as_str(), r[3].as_deref(), "{t}");
    }
    assert_eq!(customers["2"]["matrix"], "{{5,6},{7,8}}");
    assert_eq!(customers["100"]["matrix"], "{{{1}}}");

    // The filtered tables hold exactly the rows inside their filters.
    for (dir, sql, key) in [
        ("public/orders", "SELECT id::text FROM orders WHERE country = 'NG' ORDER BY id", vec!["id"]),
        ("public/events", "SELECT id::text FROM events WHERE kind <> 'debug' ORDER BY id", vec!["id"]),
    ] {
        let target: Vec<String> = materialised(&s, dir, &key).keys().cloned().collect();
        let mut want = ids(&s, sql).await;
        want.sort();
        assert_eq!(target, want, "{dir}");
    }
    let shipments: Vec<String> = materialised(&s, "public/shipments", &["id", "region"]).values().map(|r| r["region"].to_string()).collect();
    assert!(shipments.iter().all(|r| r == "\"eu\""), "{shipments:?}");
    // PostgreSQL's semantics in the server (events, FULL): moved in = insert, moved out =
    // delete; in pgcdc without the old row (orders): moved in = update, moved out = delete.
    let events = last_ops(&s, "public/events");
    assert_eq!((events[&2].as_str(), events[&4].as_str(), events[&1].as_str(), events[&3].as_str()), ("I", "I", "D", "D"), "{events:?}");
    assert!(!events.contains_key(&101), "a row outside the filter is never written");
    let orders = last_ops(&s, "public/orders");
    assert_eq!((orders[&1].as_str(), orders[&2].as_str(), orders[&6].as_str()), ("U", "D", "U"), "{orders:?}");
    // Without the old row, a change of a row outside the filter is written as a delete of
    // its key (harmless to the materialised target); an insert outside it never is.
    assert_eq!((orders[&5].as_str(), orders[&7].as_str()), ("D", "D"), "{orders:?}");
    assert!(!orders.contains_key(&101) && !orders.contains_key(&9), "{orders:?}");

    // The dropped columns' values are in no byte of any file (Parquet uncompressed, schema
    // history and state included), while the kept values are (the grep can see values).
    let files = all_files(&s.out());
    assert!(files.iter().any(|f| contains(&std::fs::read(f).unwrap(), "name 17")), "kept values are visible to the grep");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for secret in ["SSN-SECRET", "CARD-SECRET", "card_number", "ssn"] {
            assert!(!contains(&bytes, secret), "{} holds {secret}", f.display());
        }
    }
    // Schema history follows the output shape and name.
    let history: Vec<PathBuf> = files.iter().filter(|f| f.to_string_lossy().contains("_pgcdc/schema/")).cloned().collect();
    assert!(history.iter().any(|f| f.to_string_lossy().contains("_pgcdc/schema/crm/customer/")), "{history:?}");
    assert!(!history.iter().any(|f| f.to_string_lossy().contains("/customers/")), "{history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgcdc_applies_filters_the_publication_lacks_then_setup_moves_them_into_the_server() {
    let s = Setup::new("rules_client").await;
    s.db.exec(
        "CREATE TABLE events (id int PRIMARY KEY, kind text, payload text);
         ALTER TABLE events REPLICA IDENTITY FULL;
         INSERT INTO events SELECT g, CASE WHEN g % 2 = 0 THEN 'debug' ELSE 'info' END, 'p' || g FROM generate_series(1, 20) g;
         CREATE TABLE people (id int PRIMARY KEY, name text, secret text);
         INSERT INTO people SELECT g, 'n' || g, 'TOPSECRET-' || g FROM generate_series(1, 10) g",
    )
    .await;
    // A publication made by hand: no column list, no filter.
    s.db.create_publication(&s.publication, "TABLE events, people").await;
    let cfg = config(
        &s,
        "client.toml",
        "[[rule]]\ntables = \"public.events\"\nwhere = \"kind <> 'debug'\"\n\n[[rule]]\ntables = \"public.people\"\ndrop_columns = [\"secret\"]\n",
    );
    let out = s.pgcdc(&cfg, &["check", "--json"]).await;
    let report: Value = serde_json::from_str(&stdout(&out)).expect("check --json");
    let pending: Vec<&Value> = report["findings"].as_array().unwrap().iter().filter(|f| f["check"] == "rules" && f["level"] == "warning").collect();
    assert_eq!(pending.len(), 2, "both rules run in pgcdc until setup: {report:#}");
    assert!(pending.iter().all(|f| f["fix"].as_str().unwrap().contains("pgcdc setup")), "{pending:#?}");

    s.run_until_current(&cfg).await;
    s.db.exec(
        "UPDATE events SET kind = 'info' WHERE id = 2;   -- in
         UPDATE events SET kind = 'debug' WHERE id = 1;  -- out
         UPDATE events SET payload = 'x' WHERE id IN (3, 4);
         DELETE FROM events WHERE id IN (5, 6);
         INSERT INTO events VALUES (30, 'debug', 'z'), (31, 'info', 'z');
         UPDATE people SET secret = 'TOPSECRET-NEW', name = 'changed' WHERE id = 1",
    )
    .await;
    s.run_until_current(&cfg).await;
    // pgcdc evaluates the filter exactly (REPLICA IDENTITY FULL gives it the old row).
    let ops = last_ops(&s, "public/events");
    assert_eq!((ops[&2].as_str(), ops[&1].as_str(), ops[&3].as_str(), ops[&5].as_str()), ("I", "D", "U", "D"), "{ops:?}");
    assert!(!ops.contains_key(&4) && !ops.contains_key(&6) && !ops.contains_key(&30), "rows outside the filter are never written: {ops:?}");
    validate_clean(&s, &cfg).await;

    // setup moves both into the publication; replication goes on from there.
    let out = s.pgcdc(&cfg, &["setup"]).await;
    assert_success(&out, "setup");
    assert!(stdout(&out).contains("005_rules") || stdout(&out).contains("set public.events"), "{}", describe(&out));
    let filter = s
        .db
        .query_scalar(&format!("SELECT rowfilter FROM pg_publication_tables WHERE pubname = '{}' AND tablename = 'events'", s.publication))
        .await;
    assert!(filter.is_some_and(|f| f.contains("debug")));
    s.db.exec(
        "UPDATE events SET kind = 'info' WHERE id = 8;
         UPDATE events SET kind = 'debug' WHERE id = 7;
         INSERT INTO events VALUES (40, 'debug', 'z'), (41, 'info', 'z');
         UPDATE people SET secret = 'TOPSECRET-LATER' WHERE id = 2",
    )
    .await;
    s.run_until_current(&cfg).await;
    let ops = last_ops(&s, "public/events");
    assert_eq!((ops[&8].as_str(), ops[&7].as_str(), ops[&41].as_str()), ("I", "D", "I"), "{ops:?}");
    assert!(!ops.contains_key(&40));
    validate_clean(&s, &cfg).await;
    for f in all_files(&s.out()) {
        assert!(!contains(&std::fs::read(&f).unwrap(), "TOPSECRET"), "{} holds a dropped value", f.display());
    }
}

/// Each bad rule: one clear error from `check` (a blocker) and from `run`, exit 2, and
/// nothing written, no slot created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_by_check_and_run() {
    let s = Setup::new("rules_bad").await;
    s.db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y')",
    )
    .await;
    s.db.create_publication(&s.publication, "TABLE a, b").await;
    let cases = [
        ("[[rule]]\ntables = \"public.a\"\ndrop_columns = [\"nope\"]\n", "names column `nope`, which none of its tables has"),
        ("[[rule]]\ntables = \"public.a\"\nwhere = \"v === 'x'\"\n", "is not a valid row filter of public.a"),
        ("[[rule]]\ntables = \"public.a\"\nwhere = \"nope = 1\"\n", "is not a valid row filter of public.a"),
        ("[[rule]]\ntables = \"public.nothing*\"\nrename = \"x.y\"\n", "matches no table"),
        ("[[rule]]\ntables = [\"public.a\", \"public.b\"]\nrename = \"lake.same\"\n", "both as lake.same"),
        ("[[rule]]\ntables = \"public.a\"\nrename = \"b\"\n", "both as public.b"),
        ("[[rule]]\ntables = \"public.a\"\ndrop_columns = [\"id\"]\n", "part of its key"),
        ("[[rule]]\ntables = \"public.a\"\nrename_columns = { v = \"id\" }\n", "two columns of public.a the name id"),
        ("[[rule]]\ntables = \"public.a\"\ndrop_colums = [\"v\"]\n", "unknown key `drop_colums`"),
    ];
    for (i, (rule, needle)) in cases.iter().enumerate() {
        let cfg = config(&s, &format!("bad{i}.toml"), rule);
        for args in [vec!["check"], vec!["run", "--until-lsn", "current"]] {
            let out = s.pgcdc(&cfg, &args).await;
            let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.status.code(), Some(2), "{args:?} with {rule}: {}", describe(&out));
            assert!(text.contains(needle), "{args:?} with {rule}: expected {needle:?} in\n{text}");
            assert!(text.contains("fix:") || text.contains("hint:"), "{args:?} with {rule}: no fix in\n{text}");
            assert!(!text.contains("panicked"), "{text}");
        }
        assert!(!s.out().exists() || all_files(&s.out()).is_empty(), "{rule}: files written: {:?}", all_files(&s.out()));
        let slot = s.db.query_scalar(&format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'", s.slot)).await;
        assert_eq!(slot.as_deref(), Some("0"), "{rule}: a slot was created");
    }
}

/// Glue tables follow the renamed, reduced shape (S3 on moto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_tables_follow_the_renamed_and_reduced_shape() {
    use crate::glue::{glue_py, read_table};
    use crate::s3::{new_bucket, pgcdc_s3, s3_config};
    let s = Setup::new("rules_glue").await;
    let bucket = new_bucket("rules");
    let db = format!("pgcdc_rules_{}", std::process::id());
    glue_py(&format!("glue.create_database(DatabaseInput={{'Name': '{db}'}})"));
    s.db.exec(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, ssn text, matrix int[]);
         INSERT INTO customers SELECT g, 'n' || g, 'SSN-SECRET', '{{1,2},{3,4}}' FROM generate_series(1, 20) g",
    )
    .await;
    s.db.create_publication(&s.publication, "customers").await;
    let cfg = s3_config(&s, &format!("s3://{bucket}/out/"), &crate::support::moto().endpoint_url());
    let toml = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "\n[catalog]\nglue_database = \"{db}\"\n\n[[rule]]\ntables = \"public.customers\"\ndrop_columns = [\"ssn\"]\nrename = \"crm.customer\"\nrename_columns = {{ name = \"full_name\" }}\ntext_columns = [\"matrix\"]\n"
        );
    std::fs::write(&cfg, toml).unwrap();
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    s.db.exec("INSERT INTO customers VALUES (100, 'x', 'SSN-SECRET', '{{5}}')").await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let (cols, loc, _, _) = read_table(&db, "crm_customer");
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).take(3).collect();
    assert_eq!(names, ["id", "full_name", "matrix"], "{cols:?}");
    assert!(cols.iter().any(|(n, t)| n == "matrix" && t == "string"), "{cols:?}");
    assert!(!cols.iter().any(|(n, _)| n == "ssn" || n == "name"), "{cols:?}");
    assert_eq!(loc, format!("s3://{bucket}/out/crm/customer/cdc/"));
    let tables = glue_py(&format!("print(json.dumps([t['Name'] for t in glue.get_tables(DatabaseName='{db}')['TableList']]))"));
    assert_eq!(tables, serde_json::json!(["crm_customer"]), "no table under the source name");
}
