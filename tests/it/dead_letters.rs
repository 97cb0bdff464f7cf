//! Dead letters (issue 8 step 6, SPEC 5.3/5.4): with `[dead_letter] url`, a change no sink
//! can hold (NaN in `numeric(p,s)`, a two-dimensional array, a timestamp past the int64
//! microsecond range, a Kinesis record over 1 MiB) is written there as one JSON document with
//! its reason, table, key, LSN and `_seq`, counted by `status`, and the run goes on; a
//! replay after a crash rewrites the same document. Without `[dead_letter]` the run stops as
//! before (`types::*_stops_the_run` prove it; one case is repeated here next to its
//! dead-letter twin).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pgcdc::model::RowOp;
use serde_json::Value;

use crate::kinesis::{data_records, new_stream, read_stream};
use crate::s3::pgcdc_s3;
use crate::support::process::assert_success;
use crate::support::{describe, moto, write_config, Setup};

/// The three values the Arrow mapping refuses, in columns of one table.
const BAD: [(&str, &str); 3] = [
    ("amount", "'NaN'"),
    ("a", "'{{1,2},{3,4}}'"),
    ("ts", "'294270-01-01 00:00:00'"),
];

async fn setup_tables(hint: &str) -> Setup {
    let s = Setup::new(hint).await;
    s.db.exec(
        "CREATE TABLE bad (id int PRIMARY KEY, amount numeric(10,2), a int[], ts timestamp, note text);
         CREATE TABLE good (id int PRIMARY KEY, v text)",
    )
    .await;
    s.db.create_publication(&s.publication, "bad, good").await;
    s
}

/// Inserts rows `from..from+20` into both tables and one row per refused value into `bad`
/// at `from + 100 + i`; returns the ids of the refused rows.
async fn rows_with_refused_values(s: &Setup, from: i32) -> Vec<i32> {
    s.db.exec(&format!(
        "INSERT INTO bad SELECT g, g * 1.5, ARRAY[g, NULL], '2024-01-01'::timestamp + g * interval '1 hour', 'n' || g FROM generate_series({from}, {from} + 19) g;
         INSERT INTO good SELECT g, 'v' || g FROM generate_series({from}, {from} + 19) g"
    ))
    .await;
    let mut ids = Vec::new();
    for (i, (column, value)) in BAD.iter().enumerate() {
        let id = from + 100 + i as i32;
        s.db.exec(&format!(
            "INSERT INTO bad (id, {column}, note) VALUES ({id}, {value}, 'refused')"
        ))
        .await;
        ids.push(id);
    }
    ids
}

/// Every dead letter under `dir`, by key.
fn dead_letters(dir: &Path) -> BTreeMap<String, Value> {
    stored_dead_letters(&pgcdc::storage::LocalStorage::open(dir.to_path_buf()).unwrap())
}

/// Every dead letter in `storage` (a local directory or S3), by key.
fn stored_dead_letters(storage: &dyn pgcdc::storage::Storage) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for key in storage.list("").unwrap() {
        if key.starts_with("_pgcdc/") {
            continue;
        }
        let data = storage.get(&key).unwrap().unwrap();
        out.insert(
            key.clone(),
            serde_json::from_slice(&data).unwrap_or_else(|e| panic!("{key}: {e}")),
        );
    }
    out
}

/// Checks one dead letter of `bad` per refused id with `op` by `sink` (a prefix), with the
/// reason naming the refused column; returns them by id.
fn check_letters<'a>(
    letters: &'a BTreeMap<String, Value>,
    ids: &[i32],
    op: &str,
    sink: &str,
) -> BTreeMap<i32, &'a Value> {
    let mut found = BTreeMap::new();
    for (name, d) in letters {
        let id: i32 = d["key"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no key: {d:#}"))
            .parse()
            .unwrap();
        if ids.contains(&id) && d["op"] == op && d["sink"].as_str().unwrap().starts_with(sink) {
            assert!(
                found.insert(id, d).is_none(),
                "two dead letters of id {id} by {sink}: {letters:#?}"
            );
        }
    }
    assert_eq!(
        found.keys().copied().collect::<Vec<_>>(),
        ids,
        "{op} by {sink}: {letters:#?}"
    );
    for (i, (column, _)) in BAD.iter().enumerate() {
        let d = found[&ids[i]];
        assert_eq!(d["table"], "public.bad", "{d:#}");
        assert_eq!(d["column"], *column, "{d:#}");
        assert!(d["reason"].as_str().unwrap().contains(column), "{d:#}");
        assert!(
            d["lsn"].as_str().unwrap().contains('/') && d["seq"].is_i64(),
            "{d:#}"
        );
        assert_eq!(d["values"]["note"], "refused", "{d:#}");
    }
    found
}

fn config_with_dead_letters(s: &Setup, mode: &str, dl: &Path) -> PathBuf {
    let cfg = s.config_with(mode, "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    write_config(
        s.dir.path(),
        &format!("{text}\n[dead_letter]\nurl = \"file://{}\"\n", dl.display()),
    )
}

/// Full load and CDC into a Parquet sink: the refused rows of both are dead letters (sinks
/// `full-load` and `parquet-…`), everything else is in the target, `validate` reports
/// exactly the refused rows, `status` counts them, and a crash right after a dead letter
/// was written replays it into the same document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_values_become_dead_letters_in_the_load_and_in_cdc() {
    let s = setup_tables("dl_parquet").await;
    let dl = s.dir.path().join("dead-letters");
    let loaded_bad = rows_with_refused_values(&s, 1).await;
    let cfg = config_with_dead_letters(&s, "full-load-and-cdc", &dl);
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    let out = s.pgcdc(&cfg, &["check"]).await;
    let checked = String::from_utf8_lossy(&out.stdout);
    assert!(
        checked.contains("dead letters")
            && checked.contains(&format!("file://{} is writable", dl.display())),
        "{}",
        describe(&out)
    );
    s.run_until_current(&cfg).await;
    let letters = dead_letters(&dl);
    assert_eq!(letters.len(), 3, "{letters:#?}");
    check_letters(&letters, &loaded_bad, "L", "full-load");

    // CDC: refused inserts, an update to a refused value; a crash right after the first
    // dead letter is durable replays the transaction into the same document.
    let cdc_bad = rows_with_refused_values(&s, 1000).await;
    s.db.exec("UPDATE bad SET amount = 'NaN' WHERE id = 5; UPDATE bad SET note = 'kept' WHERE id = 6; DELETE FROM bad WHERE id = 7").await;
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"])
        .arg(&cfg)
        .env("PGCDC_FAILPOINTS", "dead-letter-written");
    let out = crate::support::process::output_of(cmd).await;
    assert!(
        !out.status.success(),
        "the failpoint kills the run: {}",
        describe(&out)
    );
    assert_eq!(
        dead_letters(&dl).len(),
        4,
        "the first CDC dead letter is durable before the crash"
    );
    s.run_until_current(&cfg).await;
    let letters = dead_letters(&dl);
    assert_eq!(
        letters.len(),
        7,
        "the replay rewrote the same document, no second copy: {letters:#?}"
    );
    let cdc = check_letters(&letters, &cdc_bad, "I", "parquet-");
    let update = letters
        .values()
        .find(|d| d["op"] == "U")
        .unwrap_or_else(|| panic!("no update: {letters:#?}"));
    assert_eq!(
        (
            update["key"]["id"].as_str(),
            update["column"].as_str(),
            update["values"]["note"].as_str()
        ),
        (Some("5"), Some("amount"), Some("n5"))
    );
    // Its name is its position: a replay rewrites it.
    let d = cdc[&cdc_bad[0]];
    let lsn: pgcdc::model::Lsn = d["lsn"].as_str().unwrap().parse().unwrap();
    let name = format!(
        "public/bad/{}-{:016X}-{}.json",
        lsn.file_hex(),
        d["seq"].as_i64().unwrap() as u64,
        d["sink"].as_str().unwrap().replace('-', "%2D")
    );
    assert!(
        letters.contains_key(&name),
        "{name} not in {:?}",
        letters.keys()
    );

    // Everything else reached the target.
    s.assert_matches_source("public", "good").await;
    let rows = s.change_rows("public", "bad");
    let ids = |op: RowOp| rows.iter().filter(|r| r.op == op).count();
    assert_eq!(
        (
            ids(RowOp::Load),
            ids(RowOp::Insert),
            ids(RowOp::Update),
            ids(RowOp::Delete)
        ),
        (20, 20, 1, 1)
    );

    // validate: `bad` differs by exactly the dead-lettered rows.
    let out = s
        .pgcdc(&cfg, &["validate", "--format", "json", "--timeout", "60s"])
        .await;
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    eprintln!("validate: {report:#}");
    assert_eq!(
        crate::support::report_table(&report, "public.good")["status"],
        "identical",
        "{report:#}"
    );
    assert_success(&out, "validate");
    let bad = crate::support::report_table(&report, "public.bad");
    assert_eq!(bad["status"], "identical", "{report:#}");
    // The six refused inserts and the row updated to NaN (the target holds its old version).
    assert_eq!(bad["dead_lettered"], 7, "{report:#}");

    // status counts them, in JSON and in text.
    let out = s.pgcdc(&cfg, &["status", "--json"]).await;
    assert_success(&out, "status --json");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["dead_letters"]["total"], 7, "{status:#}");
    assert_eq!(
        status["dead_letters"]["tables"]["public.bad"], 7,
        "{status:#}"
    );
    let out = s.pgcdc(&cfg, &["status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dead letters          7") && text.contains(&dl.display().to_string()),
        "{text}"
    );
}

/// Without `[dead_letter]` the same refused value stops the run with the old error, now
/// naming `[dead_letter]` as a fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dead_letters_a_refused_value_still_stops_the_run() {
    let s = setup_tables("dl_off").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    rows_with_refused_values(&s, 1).await;
    let out = s.pgcdc(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot convert a value of public.bad")
            && err.contains("\"amount\"")
            && err.contains("[dead_letter]"),
        "{err}"
    );
}

/// A Kinesis sink beside a Parquet sink, dead letters on S3: a row with a refused value is a
/// dead letter of both sinks, a record over 1 MiB of the Kinesis sink only (Parquet holds
/// it), and the stream carries every other change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_dead_letters_for_refused_values_and_records_over_one_mib() {
    let s = setup_tables("dl_kinesis").await;
    let stream = new_stream();
    let bucket = crate::s3::new_bucket("dl");
    let cfg = crate::kinesis::config(&s, &stream, &moto().endpoint_url(), 4);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let cfg = write_config(
        s.dir.path(),
        &format!("{text}\n[dead_letter]\nurl = \"s3://{bucket}/dead-letters/\"\n"),
    );
    assert!(pgcdc_s3(&cfg, &["setup"]).await.status.success());
    let refused = rows_with_refused_values(&s, 1).await;
    // Over 1 MiB as JSON (a text of 1.2 MB; PostgreSQL compresses it, Kinesis would not).
    s.db.exec("INSERT INTO good VALUES (500, repeat('x', 1200000)); INSERT INTO good VALUES (501, 'after')").await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));

    let letters = stored_dead_letters(crate::s3::open_storage(&bucket, "dead-letters/").as_ref());
    check_letters(&letters, &refused, "I", "parquet-");
    check_letters(&letters, &refused, "I", &format!("kinesis-{stream}"));
    let big: Vec<&Value> = letters
        .values()
        .filter(|d| d["table"] == "public.good")
        .collect();
    assert_eq!(big.len(), 1, "{letters:#?}");
    assert_eq!(
        (big[0]["key"]["id"].as_str(), big[0]["sink"].as_str()),
        (Some("500"), Some(&*format!("kinesis-{stream}")))
    );
    assert!(
        big[0]["reason"].as_str().unwrap().contains("1 MiB"),
        "{:#}",
        big[0]
    );
    assert_eq!(
        big[0]["values"]["v"].as_str().map(str::len),
        Some(1_200_000)
    );
    assert_eq!(letters.len(), 7);

    // The stream has every other change: what Parquet holds, less the big row.
    let (got, twice) = data_records(&read_stream(&stream));
    assert_eq!(twice, 0);
    let mut want: BTreeSet<(String, String, String)> =
        crate::kinesis::expected(&s, &["bad", "good"]);
    let big_pos = pgcdc::sink::kinesis::dms_json::stream_position(
        big[0]["lsn"].as_str().unwrap().parse().unwrap(),
        big[0]["seq"].as_i64().unwrap(),
    );
    assert!(
        want.remove(&("public.good".to_string(), "insert".to_string(), big_pos)),
        "Parquet holds the big row"
    );
    crate::kinesis::assert_same(&got, &want, "records");
    assert_eq!(got.len(), 40 + 1);

    let out = pgcdc_s3(&cfg, &["status", "--json"]).await;
    let status: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(status["dead_letters"]["total"], 7, "{status:#}");
}

/// PutRecords rejects some entries of a call for good (a code no resend changes) and
/// accepts the others: those records are dead letters, the rest is in the stream. When a
/// call's entries are all rejected so, the stream is at fault: the run stops with one clear
/// error and writes no dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_kinesis_rejects_for_good_are_dead_letters_unless_the_whole_call_is() {
    let s = setup_tables("dl_rejected").await;
    let stream = new_stream();
    let dl = s.dir.path().join("dead-letters");
    let (plan, log) = (
        s.dir.path().join("plan.json"),
        s.dir.path().join("proxy.jsonl"),
    );
    let (_proxy, endpoint) = crate::s3_faults::start_proxy(&plan, &log);
    let cfg = crate::kinesis::config(&s, &stream, &endpoint, 1);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let cfg = write_config(
        s.dir.path(),
        &format!("{text}\n[dead_letter]\nurl = \"file://{}\"\n", dl.display()),
    );
    assert!(pgcdc_s3(&cfg, &["setup"]).await.status.success());
    let partial = serde_json::json!({"rules": [
        {"target_contains": "PutRecords", "fault": "kinesis_partial", "fail_every": 2, "error_code": "KMSAccessDeniedException", "limit": 1}
    ]});
    crate::s3_faults::write_plan(&plan, &partial);
    s.db.exec("INSERT INTO good SELECT g, 'v' || g FROM generate_series(1, 20) g")
        .await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let letters = dead_letters(&dl);
    assert!(!letters.is_empty(), "{}", describe(&out));
    let mut lettered = BTreeSet::new();
    for d in letters.values() {
        assert!(
            d["reason"]
                .as_str()
                .unwrap()
                .contains("KMSAccessDeniedException"),
            "{d:#}"
        );
        assert_eq!(d["sink"], format!("kinesis-{stream}"));
        if d["op"] == "I" {
            assert_eq!(d["key"]["id"], d["values"]["id"], "{d:#}");
            let pos = pgcdc::sink::kinesis::dms_json::stream_position(
                d["lsn"].as_str().unwrap().parse().unwrap(),
                d["seq"].as_i64().unwrap(),
            );
            lettered.insert(("public.good".to_string(), "insert".to_string(), pos));
        }
    }
    assert!(!lettered.is_empty(), "{letters:#?}");
    let (got, _) = data_records(&read_stream(&stream));
    assert!(
        got.is_disjoint(&lettered),
        "a dead letter is not also in the stream"
    );
    let all: BTreeSet<_> = got.union(&lettered).cloned().collect();
    crate::kinesis::assert_same(
        &all,
        &crate::kinesis::expected(&s, &["good"]),
        "stream + dead letters",
    );

    // Every entry of a call rejected so: a stream-wide problem, one clear error.
    crate::s3_faults::write_plan(
        &plan,
        &serde_json::json!({"rules": [
            {"target_contains": "PutRecords", "fault": "kinesis_partial", "fail_every": 1, "error_code": "KMSDisabledException"}
        ]}),
    );
    s.db.exec("INSERT INTO good SELECT g, 'v' || g FROM generate_series(100, 104) g")
        .await;
    let before = dead_letters(&dl).len();
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused every record")
            && err.contains("KMSDisabledException")
            && err.contains("KMS key"),
        "{err}"
    );
    assert_eq!(
        dead_letters(&dl).len(),
        before,
        "no dead letter for a stream-wide problem"
    );
}
