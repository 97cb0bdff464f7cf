//! The operator commands against a real server (SPEC 3, 8): `check`, `setup`, `status`,
//! `teardown`, TLS (`sslmode` require / verify-full with `sslrootcert`) and password
//! authentication (SCRAM-SHA-256, MD5) for `run`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::pg::{MD5_PASSWORD, MD5_USER, SCRAM_PASSWORD, SCRAM_USER};
use crate::support::{assert_success, config_toml, describe, output_of, parquet_files, pgcdc_c, stdout, ChildGuard, Setup};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Asserts the exit code and that stdout holds every phrase; returns stdout.
#[track_caller]
fn assert_stdout(out: &Output, code: i32, phrases: &[&str]) -> String {
    let ctx = describe(out);
    eprintln!("{ctx}");
    assert_eq!(out.status.code(), Some(code), "{ctx}");
    for p in phrases {
        assert!(stdout(out).contains(p), "stdout lacks {p:?}; {ctx}");
    }
    stdout(out)
}

/// The line of `check`'s output about `what` (the first one), e.g. `ok       wal_level  logical`.
#[track_caller]
fn check_line<'a>(report: &'a str, what: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.len() > 7 && l[7..].trim_start().starts_with(what))
        .unwrap_or_else(|| panic!("no `{what}` line in:\n{report}"))
}

async fn publication_tables(s: &Setup) -> Vec<String> {
    s.db.query_strings(&format!(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = '{}' ORDER BY 1",
        s.publication
    ))
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

async fn publication_count(s: &Setup) -> i64 {
    s.db.count(&format!("pg_publication WHERE pubname = '{}'", s.publication)).await
}

/// A new CA (key and self-signed certificate) that signed nothing, as `dir/other-ca.crt`.
fn unrelated_ca(dir: &Path) -> PathBuf {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "2", "-subj", "/CN=an unrelated CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (install the openssl CLI; `make test` does)");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    dir.join("other-ca.crt")
}

/// Creates a small table and its publication, runs `setup` and `run --until-lsn current`
/// with the config at `cfg`, and checks that the output equals the source.
async fn replicate_small_table(s: &Setup, cfg: &Path) {
    s.db.exec("CREATE TABLE IF NOT EXISTS small (id int PRIMARY KEY, label text)").await;
    if publication_count(s).await == 0 {
        s.db.create_publication(&s.publication, "small").await;
    }
    assert_success(&pgcdc_c("setup", cfg, &[]).await, "pgcdc setup");
    s.db.exec(
        "INSERT INTO small SELECT g, 'row ' || g FROM generate_series(1, 50) g;
         UPDATE small SET label = 'changed' WHERE id <= 5;
         DELETE FROM small WHERE id > 45",
    )
    .await;
    let out = pgcdc_c("run", cfg, &["--until-lsn", "current"]).await;
    assert_success(&out, "pgcdc run --until-lsn current");
    assert!(stdout(&out).contains("replicated"), "{}", describe(&out));
    assert_eq!(s.change_rows("public", "small").len(), 50 + 5 + 5, "every change arrived");
    assert_eq!(s.assert_matches_source("public", "small").await, 45);
}

// ---------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_a_good_setup_lists_ok_lines_and_exits_0() {
    let s = Setup::new("cmd_check_ok").await;
    s.db.exec("CREATE TABLE items (id int PRIMARY KEY, name text)").await;
    s.db.create_publication(&s.publication, "items").await;
    let cfg = s.config_with_source(&s.db.url, "");
    assert_success(&pgcdc_c("setup", &cfg, &[]).await, "setup");

    let out = pgcdc_c("check", &cfg, &[]).await;
    let report = assert_stdout(&out, 0, &[]);
    for what in ["connect", "server version", "wal_level", "replication privilege", "replication connection", "publication", "slot", "target"] {
        let line = check_line(&report, what);
        assert!(line.starts_with("ok "), "`{what}` is not ok: {line}\n{report}");
    }
    assert!(check_line(&report, "connect").contains(&s.db.name));
    assert!(check_line(&report, "wal_level").contains("logical"));
    assert!(check_line(&report, "publication").contains(&format!("{}: 1 table(s)", s.publication)));
    assert!(check_line(&report, "slot").contains("plugin pgoutput"));
    assert!(check_line(&report, "target").contains("is writable"));
    // The only warnings of a good setup: `name` is stored out of line (unchanged TOAST
    // values), and the test server keeps WAL for a stopped slot without limit.
    let warns: Vec<&str> = report.lines().filter(|l| l.starts_with("warning ")).collect();
    assert!(!report.contains("BLOCKER") && warns.len() == 2, "{report}");
    assert!(check_line(&report, "unchanged TOAST values").contains("public.items (name)"), "{report}");
    assert!(check_line(&report, "max_slot_wal_keep_size").contains("-1 (unlimited)"), "{report}");
    // check itself writes no data
    assert!(parquet_files(&s.out()).is_empty());
    assert!(!s.out().join("_pgcdc/checkpoint.json").exists());
}

/// Server capacity and what the role may read: slot and WAL sender headroom, WAL retention,
/// SELECT on each published table, and the tables whose updates lack unchanged TOAST values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_tables_it_cannot_read_toast_columns_and_unbounded_wal_retention() {
    let s = Setup::new("cmd_check_access").await;
    let role = s.db.unique("chk");
    s.db.exec(&format!(
        "CREATE TABLE plain (id int PRIMARY KEY, n int);
         CREATE TABLE docs (id int PRIMARY KEY, body text, meta jsonb);
         CREATE TABLE docs_full (id int PRIMARY KEY, body text);
         ALTER TABLE docs_full REPLICA IDENTITY FULL;
         CREATE ROLE {role} LOGIN REPLICATION;
         GRANT SELECT ON docs, docs_full TO {role};"
    ))
    .await;
    s.db.create_publication(&s.publication, "plain, docs, docs_full").await;
    assert_success(&pgcdc_c("setup", &s.config_with_source(&s.db.url, ""), &[]).await, "setup");
    let cfg = s.config_with_source(&s.db.url_as(&role), "");
    let out = pgcdc_c("check", &cfg, &[]).await;
    let report = assert_stdout(&out, 2, &[]);
    let line = check_line(&report, "table privileges");
    assert!(line.starts_with("BLOCKER ") && line.contains("public.plain") && !line.contains("docs"), "{report}");
    assert!(report.contains("GRANT SELECT ON \"public\".\"plain\""), "the fix names the table: {report}");
    let line = check_line(&report, "unchanged TOAST values");
    assert!(line.starts_with("warning ") && line.contains("public.docs (body, meta)"), "{report}");
    assert!(!line.contains("docs_full") && !line.contains("plain"), "FULL fills them in; plain has none: {report}");
    assert!(check_line(&report, "max_slot_wal_keep_size").starts_with("warning "), "{report}");
    for what in ["free replication slots", "free wal senders"] {
        assert!(check_line(&report, what).starts_with("ok "), "{what}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_a_missing_publication_fails_with_a_hint() {
    let s = Setup::new("cmd_check_nopub").await;
    s.db.exec("CREATE TABLE items (id int PRIMARY KEY)").await;
    let cfg = s.config_with_source(&s.db.url, "");
    let out = pgcdc_c("check", &cfg, &[]).await;
    let report = assert_stdout(&out, 2, &["fix: run `pgcdc setup -c FILE`"]);
    let line = check_line(&report, "publication");
    assert!(line.starts_with("BLOCKER ") && line.contains(&format!("{} does not exist", s.publication)), "{report}");
    // The slot is not there either: only a warning, `setup` or `run` creates it.
    let line = check_line(&report, "slot");
    assert!(line.starts_with("warning ") && line.contains("does not exist yet"), "{report}");
    // Everything else is fine, and says so.
    for what in ["connect", "wal_level", "replication privilege", "replication connection", "target"] {
        assert!(check_line(&report, what).starts_with("ok "), "{what}: {report}");
    }
    // check changes nothing on the server.
    assert!(s.db.slot_names().await.is_empty());
    assert_eq!(publication_count(&s).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_about_tables_without_a_primary_key() {
    let s = Setup::new("cmd_check_nopk").await;
    s.db.exec(
        "CREATE TABLE with_pk (id int PRIMARY KEY, v text);
         CREATE TABLE no_pk (id int, v text);
         CREATE TABLE no_pk_full (id int, v text);
         ALTER TABLE no_pk_full REPLICA IDENTITY FULL;
         CREATE TABLE ident_nothing (id int PRIMARY KEY, v text);
         ALTER TABLE ident_nothing REPLICA IDENTITY NOTHING;",
    )
    .await;
    s.db.create_publication(&s.publication, "with_pk, no_pk, no_pk_full, ident_nothing").await;
    let cfg = s.config_with_source(&s.db.url, "");
    assert_success(&pgcdc_c("setup", &cfg, &[]).await, "setup");

    let out = pgcdc_c("check", &cfg, &[]).await;
    // Warnings do not fail the check.
    let report = assert_stdout(&out, 0, &["4 table(s)"]);
    let warns: Vec<&str> = report.lines().filter(|l| l.starts_with("warning  replica identity")).collect();
    assert_eq!(warns.len(), 2, "{report}");
    assert!(warns.iter().any(|l| l.contains("public.no_pk has no primary key")), "{report}");
    assert!(warns.iter().any(|l| l.contains("public.ident_nothing has REPLICA IDENTITY NOTHING")), "{report}");
    assert!(!warns.iter().any(|l| l.contains("with_pk") || l.contains("no_pk_full")), "tables with a key or FULL are fine: {report}");
    assert!(report.contains("fix: add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL"), "{report}");
    assert!(!report.contains("BLOCKER"), "{report}");
}

// ---------------------------------------------------------------------------------------
// setup
// ---------------------------------------------------------------------------------------

/// `check --json`: the same findings as one JSON object with counts; a column without a
/// native Arrow mapping (enum, an array of inet) is a warning naming it, and a blocker
/// (a table the role cannot read) makes the exit code 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_json_lists_findings_with_levels_and_names_text_mapped_columns() {
    let s = Setup::new("cmd_check_json").await;
    let role = s.db.unique("chkj");
    s.db.exec(&format!(
        "CREATE TYPE mood AS ENUM ('ok', 'sad');
         CREATE TABLE odd (id int PRIMARY KEY, m mood, nets inet[], n numeric, tags text[]);
         CREATE TABLE hidden (id int PRIMARY KEY);
         CREATE ROLE {role} LOGIN REPLICATION;
         GRANT SELECT ON odd TO {role};"
    ))
    .await;
    s.db.create_publication(&s.publication, "odd, hidden").await;
    assert_success(&pgcdc_c("setup", &s.config_with_source(&s.db.url, ""), &[]).await, "setup");

    let good = pgcdc_c("check", &s.config_with_source(&s.db.url, ""), &["--json"]).await;
    let doc: serde_json::Value = serde_json::from_str(&stdout(&good)).unwrap_or_else(|e| panic!("{e}: {}", describe(&good)));
    assert_eq!(good.status.code(), Some(0), "{}", describe(&good));
    assert_eq!(doc["blockers"], 0, "{doc}");
    let findings = doc["findings"].as_array().unwrap();
    let types = findings.iter().find(|f| f["check"] == "column types").unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(types["level"], "warning", "{doc}");
    let finding = types["finding"].as_str().unwrap();
    assert!(finding.contains("public.odd.m (mood)") && finding.contains("public.odd.nets (inet[])"), "{finding}");
    assert!(!finding.contains(".n ") && !finding.contains("tags"), "numeric and text[] map natively: {finding}");
    assert!(types["fix"].as_str().is_some_and(|f| !f.is_empty()), "{doc}");
    assert_eq!(doc["warnings"], findings.iter().filter(|f| f["level"] == "warning").count(), "{doc}");
    assert!(findings.iter().all(|f| ["ok", "warning", "blocker"].contains(&f["level"].as_str().unwrap())), "{doc}");

    let out = pgcdc_c("check", &s.config_with_source(&s.db.url_as(&role), ""), &["--json"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(doc["blockers"], 1, "{doc}");
    let blocker = doc["findings"].as_array().unwrap().iter().find(|f| f["level"] == "blocker").unwrap();
    assert_eq!(blocker["check"], "table privileges", "{doc}");
    assert!(blocker["finding"].as_str().unwrap().contains("public.hidden"), "{doc}");
    assert!(blocker["fix"].as_str().unwrap().contains("GRANT SELECT ON \"public\".\"hidden\""), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_creates_publication_and_slot_and_is_idempotent() {
    let s = Setup::new("cmd_setup").await;
    s.db.exec("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)").await;
    let cfg = s.config_with_source(&s.db.url, "");

    let out = pgcdc_c("setup", &cfg, &[]).await;
    assert_stdout(
        &out,
        0,
        &[
            &format!("created publication {} for ALL TABLES", s.publication),
            &format!("created replication slot {} (pgoutput)", s.slot),
        ],
    );
    let all = s.db.query_scalar(&format!("SELECT puballtables::text FROM pg_publication WHERE pubname = '{}'", s.publication)).await;
    assert_eq!(all.as_deref(), Some("true"));
    assert_eq!(publication_tables(&s).await, vec!["public.a", "public.b"]);
    let slot = s
        .db
        .query_strings(&format!(
            "SELECT plugin, slot_type, database, active::text FROM pg_replication_slots WHERE slot_name = '{}'",
            s.slot
        ))
        .await;
    assert_eq!(
        slot,
        vec![vec![Some("pgoutput".into()), Some("logical".into()), Some(s.db.name.clone()), Some("false".into())]]
    );
    let confirmed = s.db.slot_confirmed_lsn(&s.slot).await;

    // Again: nothing changes, the slot is not recreated.
    s.db.exec("INSERT INTO a VALUES (1)").await;
    let out = pgcdc_c("setup", &cfg, &[]).await;
    let text = assert_stdout(
        &out,
        0,
        &[&format!("publication {} exists", s.publication), &format!("replication slot {} exists", s.slot)],
    );
    assert!(!text.contains("created"), "{text}");
    assert_eq!(s.db.slot_confirmed_lsn(&s.slot).await, confirmed, "the slot was kept");
    assert_eq!(s.db.slot_names().await, vec![s.slot.clone()]);
    assert_eq!(publication_count(&s).await, 1);

    // And what setup prepared replicates: the row inserted after it arrives.
    assert_success(&pgcdc_c("run", &cfg, &["--until-lsn", "current"]).await, "run");
    assert_eq!(s.assert_matches_source("public", "a").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_with_table_patterns_publishes_only_matching_tables_and_adds_new_ones() {
    let s = Setup::new("cmd_setup_tables").await;
    s.db.exec(
        "CREATE TABLE keep_a (id int PRIMARY KEY);
         CREATE TABLE keep_b (id int PRIMARY KEY);
         CREATE TABLE other_c (id int PRIMARY KEY);
         CREATE SCHEMA side;
         CREATE TABLE side.keep_x (id int PRIMARY KEY);",
    )
    .await;
    let cfg = s.config_with_source(&s.db.url, "tables = [\"public.keep_*\"]\n");

    let out = pgcdc_c("setup", &cfg, &[]).await;
    assert_stdout(
        &out,
        0,
        &[
            &format!("created publication {} for TABLE \"public\".\"keep_a\", \"public\".\"keep_b\"", s.publication),
            &format!("created replication slot {}", s.slot),
        ],
    );
    assert_eq!(publication_tables(&s).await, vec!["public.keep_a", "public.keep_b"]);
    let all = s.db.query_scalar(&format!("SELECT puballtables::text FROM pg_publication WHERE pubname = '{}'", s.publication)).await;
    assert_eq!(all.as_deref(), Some("false"), "patterns give FOR TABLE, not FOR ALL TABLES");

    // A new matching table is added on the next run; a new non-matching one is not.
    s.db.exec("CREATE TABLE keep_new (id int PRIMARY KEY); CREATE TABLE other_new (id int PRIMARY KEY)").await;
    let out = pgcdc_c("setup", &cfg, &[]).await;
    let text = assert_stdout(
        &out,
        0,
        &[&format!("added public.keep_new to publication {}", s.publication), &format!("replication slot {} exists", s.slot)],
    );
    assert!(!text.contains("other_new"), "{text}");
    assert_eq!(publication_tables(&s).await, vec!["public.keep_a", "public.keep_b", "public.keep_new"]);

    // Nothing new: nothing to do.
    let out = pgcdc_c("setup", &cfg, &[]).await;
    assert_stdout(&out, 0, &[&format!("publication {} exists", s.publication)]);
    assert_eq!(publication_tables(&s).await, vec!["public.keep_a", "public.keep_b", "public.keep_new"]);

    // Several patterns, and a schema wildcard.
    let s2_pub = s.db.unique("pub2");
    let toml = config_toml(&s.db.url, &s2_pub, &s.db.unique("slot2"), &s.dir.path().join("out2"), "tables = [\"side.*\", \"public.other_c\"]\n");
    let cfg2 = crate::support::write_config(&s.dir.path().join("second"), &toml);
    assert_stdout(&pgcdc_c("setup", &cfg2, &[]).await, 0, &["created publication"]);
    let tables: Vec<String> = s
        .db
        .query_strings(&format!(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = '{s2_pub}' ORDER BY 1"
        ))
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert_eq!(tables, vec!["public.other_c", "side.keep_x"]);

    // Patterns that match nothing are a configuration error, and create nothing.
    let toml = config_toml(&s.db.url, &s.db.unique("pub3"), &s.db.unique("slot3"), &s.dir.path().join("out3"), "tables = [\"nowhere.*\"]\n");
    let cfg3 = crate::support::write_config(&s.dir.path().join("third"), &toml);
    let out = pgcdc_c("setup", &cfg3, &[]).await;
    eprintln!("{}", describe(&out));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("matches no table") && err.contains("hint: patterns are schema.table"), "{err}");
    assert_eq!(s.db.slot_names().await.len(), 2, "no third slot");
}

// ---------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_slot_lag_and_the_target_checkpoint_with_counts() {
    let s = Setup::new("cmd_status").await;
    s.db.exec("CREATE TABLE items (id int PRIMARY KEY, v text); CREATE TABLE notes (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "items, notes").await;
    let cfg = s.config_with_source(&s.db.url, "");

    // Before setup: no slot, no checkpoint.
    let out = pgcdc_c("status", &cfg, &[]).await;
    assert_stdout(&out, 0, &[&format!("slot {}: missing", s.slot), "no checkpoint yet"]);
    let json: serde_json::Value = serde_json::from_slice(&pgcdc_c("status", &cfg, &["--json"]).await.stdout).expect("json");
    assert_eq!(json["slot_exists"], false);
    assert!(json["targets"][0]["checkpoint"].is_null(), "{json:#}");

    assert_success(&pgcdc_c("setup", &cfg, &[]).await, "setup");
    s.db.exec(
        "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');
         UPDATE items SET v = 'B' WHERE id = 2;
         DELETE FROM items WHERE id = 3;
         INSERT INTO notes VALUES (10)",
    )
    .await;
    assert_success(&pgcdc_c("run", &cfg, &["--until-lsn", "current"]).await, "run");

    let out = pgcdc_c("status", &cfg, &[]).await;
    let text = assert_stdout(
        &out,
        0,
        &[
            &format!("slot {}: inactive", s.slot),
            "server WAL position",
            "confirmed flush LSN",
            "wal_status",
            "lag                   ",
            "bytes",
            &format!("target file://{}", s.out().display()),
            "durable up to",
        ],
    );
    let items = text.lines().find(|l| l.trim_start().starts_with("public.items")).unwrap_or_else(|| panic!("{text}"));
    assert!(items.contains("D=1") && items.contains("I=3") && items.contains("U=1"), "{items}");
    let notes = text.lines().find(|l| l.trim_start().starts_with("public.notes")).unwrap_or_else(|| panic!("{text}"));
    assert!(notes.contains("I=1"), "{notes}");
    assert!(!text.contains("confirmed flush LSN   -"), "{text}");

    let out = pgcdc_c("status", &cfg, &["--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(json["slot"], s.slot.as_str());
    assert_eq!(json["slot_exists"], true);
    assert_eq!(json["slot_active"], false);
    let confirmed = json["confirmed_flush_lsn"].as_str().expect("confirmed_flush_lsn");
    assert_eq!(Some(confirmed.to_string()), s.db.slot_confirmed_lsn(&s.slot).await);
    let lag_after_run = json["lag_bytes"].as_u64().expect("lag_bytes");
    assert!(json["retained_bytes"].as_u64().is_some(), "{json:#}");
    assert!(json["current_wal_lsn"].as_str().is_some_and(|l| l.contains('/')), "{json:#}");
    let target = &json["targets"][0];
    assert!(target["target"].as_str().unwrap().contains(&s.out().display().to_string()), "{json:#}");
    let cp = &target["checkpoint"];
    assert_eq!(cp["counts"]["public.items"]["I"], 3, "{json:#}");
    assert_eq!(cp["counts"]["public.items"]["U"], 1, "{json:#}");
    assert_eq!(cp["counts"]["public.items"]["D"], 1, "{json:#}");
    assert_eq!(cp["counts"]["public.notes"]["I"], 1, "{json:#}");
    assert!(cp["end_lsn"].is_string() && cp["commit_lsn"].is_string(), "{json:#}");
    assert!(cp["written_at"].as_str().is_some_and(|w| !w.is_empty()), "{json:#}");

    // New changes that nobody replicates yet show up as lag.
    s.db.exec("INSERT INTO items SELECT g, repeat('x', 100) FROM generate_series(100, 2000) g").await;
    let out = pgcdc_c("status", &cfg, &["--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    let lag = json["lag_bytes"].as_u64().unwrap();
    assert!(lag > lag_after_run + 100_000, "lag {lag} after 1900 rows (was {lag_after_run})");
    assert_eq!(json["targets"][0]["checkpoint"]["counts"]["public.items"]["I"], 3, "the target did not change");
}

// ---------------------------------------------------------------------------------------
// teardown
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_drops_slot_and_publication_and_a_second_one_says_so() {
    let s = Setup::new("cmd_teardown").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    let cfg = s.config_with_source(&s.db.url, "tables = [\"public.t\"]\n");
    assert_success(&pgcdc_c("setup", &cfg, &[]).await, "setup");
    assert_eq!(s.db.slot_names().await, vec![s.slot.clone()]);
    assert_eq!(publication_count(&s).await, 1);

    let out = pgcdc_c("teardown", &cfg, &["--yes"]).await;
    assert_stdout(
        &out,
        0,
        &[&format!("dropped replication slot {}", s.slot), &format!("dropped publication {}", s.publication)],
    );
    assert!(s.db.slot_names().await.is_empty());
    assert_eq!(publication_count(&s).await, 0);
    // The table and its data are not touched.
    assert_eq!(s.db.count("t").await, 0);

    let out = pgcdc_c("teardown", &cfg, &["--yes"]).await;
    assert_stdout(
        &out,
        0,
        &[&format!("replication slot {} did not exist", s.slot), &format!("publication {} did not exist", s.publication)],
    );

    // Setup after a teardown starts over.
    assert_stdout(&pgcdc_c("setup", &cfg, &[]).await, 0, &["created publication", "created replication slot"]);
}

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_full_against_localhost_with_the_ca_replicates() {
    let s = Setup::new("cmd_tls_full").await;
    let ca = s.db.cluster.ca_cert_path();
    let url = format!(
        "postgres://postgres@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
        s.db.cluster.port(),
        s.db.name,
        ca.display()
    );
    let cfg = s.config_with_source(&url, "");
    replicate_small_table(&s, &cfg).await;
    // check goes over TLS too, both connections.
    let out = pgcdc_c("check", &cfg, &[]).await;
    let report = assert_stdout(&out, 0, &["sslmode=verify-full"]);
    assert!(check_line(&report, "replication connection").starts_with("ok "), "{report}");

    // The certificate also names 127.0.0.1: verify-full by IP works with the right CA.
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}?sslmode=verify-full&sslrootcert={}",
        s.db.cluster.port(),
        s.db.name,
        ca.display()
    );
    let cfg = s.config_with_source(&url, "");
    assert_success(&pgcdc_c("run", &cfg, &["--until-lsn", "current"]).await, "run verify-full by IP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_without_a_ca_replicates_over_tls() {
    let s = Setup::new("cmd_tls_require").await;
    let app = s.db.unique("tlsprobe");
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}?sslmode=require&application_name={app}",
        s.db.cluster.port(),
        s.db.name
    );
    let cfg = s.config_with_source(&url, "");
    replicate_small_table(&s, &cfg).await;

    // While a run is active, the server sees both of its connections encrypted.
    let mut child = {
        let mut cmd = crate::support::pgcdc();
        cmd.arg("run").arg("-c").arg(&cfg).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        ChildGuard(Some(cmd.spawn().expect("spawn pgcdc run")))
    };
    let sql = format!(
        "SELECT count(*)::text || ' ' || coalesce(bool_and(s.ssl), false)::text
           FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
          WHERE a.application_name = '{app}'"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Both the SQL session and the walsender.
        let seen = s.db.query_scalar(&sql).await.unwrap();
        if seen == "2 true" {
            break;
        }
        assert!(!seen.ends_with("false") || seen.starts_with('0'), "a connection is not encrypted: {seen}");
        assert!(Instant::now() < deadline, "never saw both connections of the run: {seen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = tokio::task::spawn_blocking(move || child.stop(Duration::from_secs(30))).await.unwrap();
    assert_success(&out, "run stopped with SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_full_with_an_unrelated_ca_is_refused() {
    let s = Setup::new("cmd_tls_wrong_ca").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await;
    s.db.create_publication(&s.publication, "t").await;
    let other_ca = unrelated_ca(s.dir.path());
    for mode in ["verify-full", "verify-ca"] {
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/{}?sslmode={mode}&sslrootcert={}",
            s.db.cluster.port(),
            s.db.name,
            other_ca.display()
        );
        let cfg = s.config_with_source(&url, "");
        for (command, more) in [("run", &["--until-lsn", "current"][..]), ("setup", &[][..])] {
            let out = pgcdc_c(command, &cfg, more).await;
            let ctx = describe(&out);
            eprintln!("{ctx}");
            assert_eq!(out.status.code(), Some(1), "{ctx}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(&format!("TLS handshake with 127.0.0.1:{} failed", s.db.cluster.port())), "{ctx}");
            assert!(err.contains("certificate"), "{ctx}");
            assert!(err.contains("hint: check sslrootcert"), "{ctx}");
            assert!(!err.contains("panicked"), "{ctx}");
        }
        let out = pgcdc_c("check", &cfg, &[]).await;
        let report = assert_stdout(&out, 2, &[]);
        assert!(check_line(&report, "connect").starts_with("BLOCKER ") && report.contains("TLS handshake"), "{report}");
    }
    assert!(s.db.slot_names().await.is_empty(), "nothing was created");
    assert!(parquet_files(&s.out()).is_empty());
    assert!(!s.out().join("_pgcdc/checkpoint.json").exists());

    // An sslrootcert that does not exist is a configuration error.
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}?sslmode=verify-full&sslrootcert={}",
        s.db.cluster.port(),
        s.db.name,
        s.dir.path().join("missing-ca.crt").display()
    );
    let out = pgcdc_c("run", &s.config_with_source(&url, ""), &["--until-lsn", "current"]).await;
    eprintln!("{}", describe(&out));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read sslrootcert") && err.contains("missing-ca.crt"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Password authentication
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_user_with_the_right_password_replicates() {
    let s = Setup::new("cmd_auth_scram").await;
    // Default sslmode (prefer): SCRAM inside TLS.
    let cfg = s.config_with_source(&s.db.url_with_password(SCRAM_USER, SCRAM_PASSWORD), "");
    replicate_small_table(&s, &cfg).await;
    // And without TLS.
    let url = format!("{}?sslmode=disable", s.db.url_with_password(SCRAM_USER, SCRAM_PASSWORD));
    let cfg = s.config_with_source(&url, "");
    s.db.exec("INSERT INTO small VALUES (1000, 'plain')").await;
    assert_success(&pgcdc_c("run", &cfg, &["--until-lsn", "current"]).await, "run with SCRAM, no TLS");
    assert_eq!(s.assert_matches_source("public", "small").await, 46);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_user_with_the_right_password_replicates() {
    let s = Setup::new("cmd_auth_md5").await;
    let url = format!("{}?sslmode=disable", s.db.url_with_password(MD5_USER, MD5_PASSWORD));
    let cfg = s.config_with_source(&url, "");
    replicate_small_table(&s, &cfg).await;
    // The password may also come from PGPASSWORD, over TLS.
    let cfg = s.config_with_source(&format!("{}?sslmode=require", s.db.url_as(MD5_USER)), "");
    s.db.exec("INSERT INTO small VALUES (1000, 'env')").await;
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env("PGPASSWORD", MD5_PASSWORD);
    assert_success(&output_of(cmd).await, "run with PGPASSWORD");
    assert_eq!(s.assert_matches_source("public", "small").await, 46);
}
