//! `pgcdc dms plan` (issue 9, step 1): the files it writes are accepted by the real AWS CLI
//! (`aws dms create-endpoint --cli-input-json file://…` against moto's DMS API) and read
//! back with the settings pgcdc chose; DIFFERENCES.md names what is at risk in this source;
//! bad inputs leave nothing behind.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{moto, pgcdc, python, stderr, stdout, write_config, Setup};

/// `aws dms <args> --endpoint-url moto` with the test credentials; its JSON answer.
pub(crate) fn aws_dms(dir: &Path, args: &[&str]) -> Value {
    let m = moto();
    let mut cmd = Command::new(python());
    cmd.args(["-m", "awscli", "dms"])
        .args(args)
        .args(["--endpoint-url", &m.endpoint_url(), "--output", "json"])
        .current_dir(dir);
    m.aws_env(&mut cmd);
    let out = cmd
        .output()
        .expect("run the aws CLI (pip install awscli into the test venv)");
    assert!(
        out.status.success(),
        "aws dms {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "aws dms {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// A source with a table holding a 100 KB text, jsonb, an unconstrained numeric, a uuid
/// and an unbounded varchar, and a table without a primary key, both published.
pub(crate) async fn source(hint: &str) -> Setup {
    let s = Setup::new(hint).await;
    s.db.exec(
        "CREATE TABLE docs (id int PRIMARY KEY, body text, meta jsonb, amount numeric, ref uuid, note varchar, small text);
         INSERT INTO docs SELECT g, CASE WHEN g = 1 THEN repeat('x', 100000) ELSE 'short' END, '{\"a\": 1}', 1.5,
                gen_random_uuid(), 'n', 's' FROM generate_series(1, 3) g;
         CREATE TABLE nokey (a int, b text);
         INSERT INTO nokey VALUES (1, 'b');
         CREATE TABLE other_table (id int PRIMARY KEY);",
    )
    .await;
    s.db.create_publication(&s.publication, "docs, nokey").await;
    s
}

pub(crate) fn plan_config(s: &Setup, sink: &str, dms: &str) -> std::path::PathBuf {
    write_config(
        s.dir.path(),
        &format!(
            "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\ntables = [\"public.*\"]\n\n{sink}\n\n[state]\nurl = \"{}\"\n\n[dms]\n{dms}\n",
            s.db.url,
            s.publication,
            s.slot,
            s.dir.path().join("state").display()
        ),
    )
}

fn plan(cfg: &Path, out: &Path, more: &[&str]) -> std::process::Output {
    let mut cmd = pgcdc();
    cmd.args(["dms", "plan", "-c"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(more);
    cmd.output().expect("run pgcdc")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_files_are_accepted_by_the_aws_cli_and_name_what_differs() {
    let s = source("dmsplan").await;
    let cfg = plan_config(
        &s,
        "[[sink]]\nkind = \"parquet\"\nurl = \"s3://pgcdc-out/cdc/\"\nflush_interval = \"30s\"",
        "lob_max_size = \"32KiB\"\nservice_access_role_arn = \"arn:aws:iam::123456789012:role/dms-s3\"",
    );
    let out = s.dir.path().join("plan");
    let o = plan(&cfg, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("planned in"), "{}", stdout(&o));

    // The real AWS CLI accepts every document; ARNs DMS answers replace the placeholders.
    let src = aws_dms(
        &out,
        &[
            "create-endpoint",
            "--cli-input-json",
            "file://source-endpoint.json",
            "--password",
            "secret",
        ],
    );
    let tgt = aws_dms(
        &out,
        &[
            "create-endpoint",
            "--cli-input-json",
            "file://target-endpoint.json",
        ],
    );
    let inst = aws_dms(
        &out,
        &[
            "create-replication-instance",
            "--cli-input-json",
            "file://replication-instance.json",
        ],
    );
    let arn = |v: &Value, k: &str, a: &str| {
        v[k][a]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string()
    };
    let (src_arn, tgt_arn, inst_arn) = (
        arn(&src, "Endpoint", "EndpointArn"),
        arn(&tgt, "Endpoint", "EndpointArn"),
        arn(&inst, "ReplicationInstance", "ReplicationInstanceArn"),
    );
    aws_dms(
        &out,
        &[
            "create-replication-task",
            "--cli-input-json",
            "file://replication-task.json",
            "--source-endpoint-arn",
            &src_arn,
            "--target-endpoint-arn",
            &tgt_arn,
            "--replication-instance-arn",
            &inst_arn,
        ],
    );

    // Read back: the settings pgcdc chose.
    let eps = aws_dms(&out, &["describe-endpoints"]);
    let eps = eps["Endpoints"].as_array().unwrap();
    let by_type = |t: &str| {
        eps.iter()
            .find(|e| {
                e["EndpointType"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(t))
            })
            .unwrap_or_else(|| panic!("{eps:?}"))
    };
    let (src_ep, tgt_ep) = (by_type("source"), by_type("target"));
    let db_name =
        s.db.url
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_string();
    assert_eq!(src_ep["EngineName"], "postgres");
    assert_eq!(src_ep["DatabaseName"], db_name.as_str());
    let pg = &src_ep["PostgreSQLSettings"];
    assert_eq!(
        pg["SlotName"],
        format!("{}_dms", s.slot).as_str(),
        "{src_ep}"
    );
    assert_eq!(pg["PluginName"], "test-decoding");
    assert_eq!(
        (
            pg["HeartbeatEnable"].as_bool(),
            pg["CaptureDdls"].as_bool(),
            pg["MapBooleanAsBoolean"].as_bool()
        ),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(
        pg["MapLongVarcharAs"], "nclob",
        "docs.note is an unbounded varchar"
    );
    assert!(
        !src_ep.to_string().contains("secret") || src_ep["Password"].is_null(),
        "{src_ep}"
    );
    let s3 = &tgt_ep["S3Settings"];
    assert_eq!(
        (s3["BucketName"].as_str(), s3["BucketFolder"].as_str()),
        (Some("pgcdc-out"), Some("cdc-dms")),
        "{tgt_ep}"
    );
    assert_eq!(
        (
            s3["DataFormat"].as_str(),
            s3["IncludeOpForFullLoad"].as_bool()
        ),
        (Some("parquet"), Some(true))
    );
    assert_eq!(
        (
            s3["TimestampColumnName"].as_str(),
            s3["DatePartitionEnabled"].as_bool()
        ),
        (Some("DMS_TIMESTAMP"), Some(true))
    );
    assert_eq!(s3["CdcMaxBatchInterval"].as_i64(), Some(30));
    assert_eq!(
        s3["ServiceAccessRoleArn"],
        "arn:aws:iam::123456789012:role/dms-s3"
    );
    let tasks = aws_dms(&out, &["describe-replication-tasks"]);
    let task = &tasks["ReplicationTasks"][0];
    assert_eq!(task["MigrationType"], "full-load-and-cdc");
    assert_eq!(task["SourceEndpointArn"], src_arn.as_str());
    let mappings: Value = serde_json::from_str(task["TableMappings"].as_str().unwrap()).unwrap();
    assert_eq!(
        mappings["rules"][0]["object-locator"],
        serde_json::json!({"schema-name": "public", "table-name": "%"})
    );
    // other_table matches public.* but is not published: excluded, as pgcdc never sees it.
    let excluded: Vec<&Value> = mappings["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule-action"] == "exclude")
        .collect();
    assert_eq!(excluded.len(), 1, "{mappings}");
    assert_eq!(excluded[0]["object-locator"]["table-name"], "other[_]table");
    let settings: Value =
        serde_json::from_str(task["ReplicationTaskSettings"].as_str().unwrap()).unwrap();
    assert_eq!(
        settings["TargetMetadata"]["LobMaxSize"], 32,
        "capped by [dms] lob_max_size"
    );
    assert_eq!(settings["TargetMetadata"]["LimitedSizeLobMode"], true);
    assert_eq!(settings["ValidationSettings"]["EnableValidation"], true);

    // DIFFERENCES.md names the column whose largest value (100000 bytes) exceeds 32 KiB, the
    // keyless table and the types DMS maps differently; README.md the commands.
    let diff = std::fs::read_to_string(out.join("DIFFERENCES.md")).unwrap();
    assert!(
        diff.contains("`public.docs.body`: largest value 100000 bytes > 32 KiB"),
        "{diff}"
    );
    assert!(!diff.contains("`public.docs.small`: largest"), "{diff}");
    assert!(
        diff.contains("`public.nokey` (replica identity DEFAULT)"),
        "{diff}"
    );
    assert!(
        diff.contains(
            "`public.docs.amount` (numeric): DMS maps an unconstrained numeric to NUMERIC(28,6)"
        ),
        "{diff}"
    );
    assert!(
        diff.contains("test_decoding")
            && diff.contains("TRUNCATE")
            && diff.contains("exactly-once"),
        "{diff}"
    );
    assert!(
        stdout(&o).contains("public.docs.body holds a value of 100000 bytes"),
        "{}",
        stdout(&o)
    );
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        readme.contains("pg_create_logical_replication_slot"),
        "{readme}"
    );
    // No secret in any file: the source's password is given on the command line.
    for f in std::fs::read_dir(&out).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(
            !text.contains("\"Password\""),
            "a password field in the plan: {text}"
        );
    }

    // Without the cap, the LOB size covers the largest value: 100000 B + 25 % -> 128 KiB.
    let cfg2 = plan_config(
        &s,
        "[[sink]]\nkind = \"parquet\"\nurl = \"s3://pgcdc-out/\"",
        "",
    );
    let out2 = s.dir.path().join("plan2");
    let o = plan(&cfg2, &out2, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let task2 = read_json(&out2.join("replication-task.json"));
    let settings2: Value =
        serde_json::from_str(task2["ReplicationTaskSettings"].as_str().unwrap()).unwrap();
    assert_eq!(settings2["TargetMetadata"]["LobMaxSize"], 128);
    assert_eq!(
        read_json(&out2.join("target-endpoint.json"))["S3Settings"]["BucketFolder"],
        "pgcdc-dms"
    );
    assert!(std::fs::read_to_string(out2.join("DIFFERENCES.md"))
        .unwrap()
        .contains("No column holds a value larger than `LobMaxSize` today"));

    // Kinesis: json-unformatted with transaction details, partitioned by schema.table.
    let cfg3 = plan_config(
        &s,
        "[[sink]]\nkind = \"kinesis\"\nstream = \"shop-cdc\"\npartition_key = \"schema-table\"",
        "",
    );
    let out3 = s.dir.path().join("plan3");
    let o = plan(&cfg3, &out3, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::process::Command::new("sed")
        .args(["-i", "s|\\${KINESIS_STREAM_ARN}|arn:aws:kinesis:us-east-1:123456789012:stream/shop-cdc|; s|\\${SERVICE_ACCESS_ROLE_ARN}|arn:aws:iam::123456789012:role/k|", "target-endpoint.json"])
        .current_dir(&out3)
        .status()
        .unwrap();
    let k = aws_dms(
        &out3,
        &[
            "create-endpoint",
            "--cli-input-json",
            "file://target-endpoint.json",
        ],
    );
    let ks = &k["Endpoint"]["KinesisSettings"];
    assert_eq!(
        (
            ks["MessageFormat"].as_str(),
            ks["IncludeTransactionDetails"].as_bool()
        ),
        (Some("json-unformatted"), Some(true)),
        "{k}"
    );
    assert_eq!(ks["PartitionIncludeSchemaTable"], true);
    let task3 = read_json(&out3.join("replication-task.json"));
    assert!(
        task3["TableMappings"]
            .as_str()
            .unwrap()
            .contains("\"partition-key-type\":\"schema-table\""),
        "{task3}"
    );
    assert!(
        task3["ReplicationTaskSettings"]
            .as_str()
            .unwrap()
            .contains("\"BeforeImageSettings\""),
        "{task3}"
    );

    // Bad inputs: a clear error and nothing (half) written.
    let o = plan(&cfg, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not empty") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    let o = plan(&cfg, &out, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = plan(
        &s.dir.path().join("missing.toml"),
        &s.dir.path().join("p4"),
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let unreachable = plan_config(
        &s,
        "[[sink]]\nkind = \"parquet\"\nurl = \"s3://pgcdc-out/cdc/\"",
        "",
    )
    .to_string_lossy()
    .to_string();
    let text = std::fs::read_to_string(&unreachable)
        .unwrap()
        .replace(&s.db.url, "postgres://nobody@127.0.0.1:1/db");
    std::fs::write(&unreachable, text).unwrap();
    let o = plan(Path::new(&unreachable), &s.dir.path().join("p5"), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("127.0.0.1:1"), "{}", stderr(&o));
    assert!(!s.dir.path().join("p5").exists());
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("pgcdc-plan"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A cdc-mode config with an S3 Parquet sink whose DMS companion reaches AWS at `endpoint`.
fn apply_config(s: &Setup, endpoint: &str, flush: &str, dms: &str) -> std::path::PathBuf {
    plan_config(
        s,
        &format!(
            "[pipeline]\nmode = \"cdc\"\n\n[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n\n\
             [[sink]]\nkind = \"parquet\"\nurl = \"s3://pgcdc-out/cdc/\"\nflush_interval = \"{flush}\""
        ),
        dms,
    )
}

fn apply(cfg: &Path, more: &[&str]) -> (std::process::Output, String) {
    let mut cmd = pgcdc();
    cmd.args(["dms", "apply", "-c"]).arg(cfg).args(more);
    moto().aws_env(&mut cmd);
    let out = cmd.output().expect("run pgcdc");
    let text = stdout(&out);
    (out, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_once_changes_nothing_the_second_time_and_explains_refusals() {
    use crate::s3_faults::{start_proxy, write_plan};
    let s = source("dmsapply").await;
    let role = "service_access_role_arn = \"arn:aws:iam::123456789012:role/dms-s3\"";
    // pgcdc reaches moto through the fault proxy: moto writes DMS dates as ISO text, which
    // the SDK cannot parse, and the proxy turns them into DMS's epoch seconds.
    let plan_file = s.dir.path().join("proxy-plan.json");
    let log = s.dir.path().join("proxy-log.jsonl");
    let (_proxy, url) = start_proxy(&plan_file, &log);
    let epoch =
        serde_json::json!({"target_contains": "AmazonDMSv20160101", "fault": "epoch_timestamps"});
    write_plan(&plan_file, &serde_json::json!({"rules": [epoch]}));
    let cfg = apply_config(&s, &url, "60s", role);

    // --dry-run creates nothing: the real run after it creates all four objects.
    let (o, text) = apply(&cfg, &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(text.matches("would be created").count(), 4, "{text}");
    let (o, text) = apply(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(text.matches(": created").count(), 4, "{text}");
    // A second run changes nothing and says so.
    let (o, text) = apply(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(text.matches(": unchanged").count(), 4, "{text}");
    assert!(text.contains("nothing to change"), "{text}");
    // --start --wait: started, then running CDC (a cdc task).
    let (o, text) = apply(&cfg, &["--start", "--wait"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        text.contains("started") && text.contains("running CDC"),
        "{text}"
    );
    let tasks = aws_dms(s.dir.path(), &["describe-replication-tasks"]);
    assert_eq!(
        tasks["ReplicationTasks"].as_array().unwrap().len(),
        1,
        "{tasks}"
    );
    assert_eq!(tasks["ReplicationTasks"][0]["MigrationType"], "cdc");

    // A changed sink and LOB cap: the dry run names exactly the settings that change.
    let changed = apply_config(
        &s,
        &url,
        "30s",
        &format!("{role}\nlob_max_size = \"64KiB\""),
    );
    let (o, text) = apply(&changed, &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        text.contains("S3Settings.CdcMaxBatchInterval: 60 -> 30"),
        "{text}"
    );
    assert!(
        text.contains("ReplicationTaskSettings.TargetMetadata.LobMaxSize: 128 -> 64"),
        "{text}"
    );
    assert_eq!(text.matches("would be modified").count(), 2, "{text}");

    // The real run, through a proxy that answers ModifyEndpoint (which moto does not
    // implement) with a recorded DMS answer: the endpoint is modified; the running task
    // cannot be, and the error says why and what to do.
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::support::repo_root().join("tests/fixtures/dms/modify_endpoint_response.json"),
        )
        .unwrap(),
    )
    .unwrap();
    write_plan(
        &plan_file,
        &serde_json::json!({"rules": [{"target_contains": "ModifyEndpoint", "fault": "recorded", "body": recorded}, epoch]}),
    );
    let (o, text) = apply(&changed, &[]);
    assert_eq!(o.status.code(), Some(1), "{text}\n{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("must change")
            && err.contains("is running")
            && err.contains("stop-replication-task"),
        "{err}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("\"AmazonDMSv20160101.ModifyEndpoint\"") && calls.contains("\"recorded\""),
        "{calls}"
    );

    // Missing permissions: DMS's AccessDeniedFault, as one clear configuration error.
    write_plan(
        &plan_file,
        &serde_json::json!({"rules": [{"target_contains": "DescribeEndpoints", "fault": "recorded", "status": 400,
            "body": {"__type": "AccessDeniedFault", "message": "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: dms:DescribeEndpoints"}}, epoch]}),
    );
    let (o, _) = apply(&changed, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("access denied") && stderr(&o).contains("allow dms:DescribeEndpoints"),
        "{}",
        stderr(&o)
    );
    // No role: DMS could not write; said before any call.
    let no_role = apply_config(&s, &url, "60s", "");
    let (o, _) = apply(&no_role, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("service_access_role_arn"),
        "{}",
        stderr(&o)
    );
}

fn dms_status(cfg: &Path, more: &[&str]) -> std::process::Output {
    let mut cmd = pgcdc();
    cmd.args(["dms", "status", "-c"]).arg(cfg).args(more);
    moto().aws_env(&mut cmd);
    cmd.output().expect("run pgcdc")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_status_compares_dms_statistics_with_pgcdc_counts() {
    use crate::s3_faults::{start_proxy, write_plan};
    let s = Setup::new("dmsstatus").await;
    s.db.exec(
        "CREATE TABLE orders (id int PRIMARY KEY, note text);
         INSERT INTO orders SELECT g, 'o' FROM generate_series(1, 3) g;
         CREATE TABLE items (id int PRIMARY KEY, sku text);
         INSERT INTO items VALUES (1, 'a'), (2, 'b');",
    )
    .await;
    s.db.create_publication(&s.publication, "orders, items")
        .await;
    // pgcdc writes locally; DMS's task (through the proxy to moto) writes to S3.
    let plan_file = s.dir.path().join("proxy-plan.json");
    let (_proxy, url) = start_proxy(&plan_file, &s.dir.path().join("proxy-log.jsonl"));
    let epoch =
        serde_json::json!({"target_contains": "AmazonDMSv20160101", "fault": "epoch_timestamps"});
    write_plan(&plan_file, &serde_json::json!({"rules": [epoch]}));
    let cfg = write_config(
        s.dir.path(),
        &format!(
            "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\ntables = [\"public.*\"]\n\n\
             [pipeline]\nmode = \"full-load-and-cdc\"\n\n[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{url}\"\n\n\
             [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\n\n\
             [dms]\ns3_url = \"s3://pgcdc-out/dms/\"\nservice_access_role_arn = \"arn:aws:iam::123456789012:role/dms-s3\"\n",
            s.db.url,
            s.publication,
            s.slot,
            s.out().display()
        ),
    );

    // Before apply: no task, and the hint says how to create it.
    let o = dms_status(&cfg, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not exist") && stderr(&o).contains("pgcdc dms apply"),
        "{}",
        stderr(&o)
    );

    // pgcdc: full load (orders 3, items 2) and CDC (orders +2 ~1 -1, items +2).
    assert!(s.pgcdc(&cfg, &["setup"]).await.status.success());
    s.run_until_current(&cfg).await;
    s.db.exec(
        "INSERT INTO orders VALUES (4, 'n'), (5, 'n'); UPDATE orders SET note = 'u' WHERE id = 1;
         DELETE FROM orders WHERE id = 2; INSERT INTO items VALUES (3, 'c'), (4, 'd');",
    )
    .await;
    s.run_until_current(&cfg).await;
    let (o, _) = apply(&cfg, &["--start", "--wait"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // DMS's statistics (moto answers 500): recorded; items has one insert fewer.
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::support::repo_root()
                .join("tests/fixtures/dms/describe_table_statistics_response.json"),
        )
        .unwrap(),
    )
    .unwrap();
    write_plan(
        &plan_file,
        &serde_json::json!({"rules": [{"target_contains": "DescribeTableStatistics", "fault": "recorded", "body": recorded}, epoch]}),
    );
    let o = dms_status(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("-task: running (full-load-and-cdc)") && text.contains("full load 100%"),
        "{text}"
    );
    let line = |t: &str| {
        text.lines()
            .find(|l| l.starts_with(t))
            .unwrap_or_else(|| panic!("{t} in {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        line("public.orders")[..5],
        ["public.orders", "3/3", "2/2", "1/1", "1/1"],
        "{text}"
    );
    assert_eq!(
        line("public.items")[..5],
        ["public.items", "2/2", "*1/2", "0/0", "0/0"],
        "{text}"
    );
    assert!(text.contains("1 table(s) differ: public.items"), "{text}");

    let o = dms_status(&cfg, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["task"]["status"], "running", "{doc:#}");
    assert_eq!(doc["task"]["full_load_progress_percent"], 100, "{doc:#}");
    assert_eq!(doc["differs"], true);
    let table = |n: &str| {
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == n)
            .unwrap_or_else(|| panic!("{n} in {doc:#}"))
            .clone()
    };
    let orders = table("public.orders");
    assert_eq!(orders["differences"], serde_json::json!([]));
    assert_eq!(
        orders["pgcdc"],
        serde_json::json!({"full_load_rows": 3, "inserts": 2, "updates": 1, "deletes": 1})
    );
    assert_eq!(orders["dms"]["validation_state"], "Validated");
    assert_eq!(orders["dms"]["table_state"], "Table completed");
    let items = table("public.items");
    assert_eq!(items["differences"], serde_json::json!(["inserts"]));
    assert_eq!(
        (
            items["dms"]["inserts"].as_u64(),
            items["pgcdc"]["inserts"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(items["dms"]["validation_pending_records"], 1);

    // Missing permission: the IAM action to grant.
    write_plan(
        &plan_file,
        &serde_json::json!({"rules": [{"target_contains": "DescribeTableStatistics", "fault": "recorded", "status": 400,
            "body": {"__type": "AccessDeniedFault", "message": "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: dms:DescribeTableStatistics"}}, epoch]}),
    );
    let o = dms_status(&cfg, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("access denied")
            && stderr(&o).contains("allow dms:DescribeTableStatistics"),
        "{}",
        stderr(&o)
    );
}
