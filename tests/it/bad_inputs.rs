//! Issue 11 step 6: the bad-input catalogue. One table of bad inputs — configuration,
//! command line, server, privileges, slot, publication, targets, disk — each run through the
//! real binary against the real test server, and every row held to the same bar:
//!
//! * the expected exit code (2 configuration or usage, 1 at run time);
//! * one `error: ` line naming the problem (the row's phrases) and a fix (`hint:`, or clap's
//!   list of valid values for a bad argument);
//! * no panic;
//! * no secret in anything printed: the source password and the AWS keys in the
//!   environment are grepped for in stdout and stderr;
//! * nothing half-written: no Parquet file, checkpoint, manifest or load state in the
//!   target, and no replication slot created or dropped on the server.
//!
//! `wal_level = replica` needs a cluster of its own and is in `errors::`; so are the
//! finer variations of several rows here.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::pg::{NOREPL_USER, SCRAM_PASSWORD, SCRAM_USER};
use crate::support::{config_toml, output_of, parquet_files, ChildGuard, Setup};

const AWS_KEY_ID: &str = "AKIACATALOGUE7EXAMPLE";
const AWS_SECRET: &str = "cAtAlOgUe/SeCrEt+KeY/never-printed-42";

/// One bad input: the config text (None: no file is written), the arguments after
/// `pgcdc`, the expected exit code and phrases.
struct Case {
    name: &'static str,
    toml: Option<String>,
    args: Vec<String>,
    code: i32,
    phrases: Vec<String>,
    /// The fix is clap's list of valid values rather than a `hint:` line.
    usage: bool,
    /// Environment variables set for the command.
    env: Vec<(&'static str, &'static str)>,
}

fn case(name: &'static str, toml: String, args: &[&str], code: i32, phrases: &[&str]) -> Case {
    Case { name, toml: Some(toml), args: args.iter().map(|a| a.to_string()).collect(), code, phrases: phrases.iter().map(|p| p.to_string()).collect(), usage: false, env: Vec::new() }
}

fn sink_line(toml: &str, line: &str) -> String {
    format!("{toml}{line}\n")
}

/// A TCP port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const RUN: &[&str] = &["run", "--until-lsn", "current"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_one_clear_error_the_right_exit_and_leaves_nothing() {
    let s = Setup::new("bad_inputs").await;
    let empty_pub = s.db.unique("emptypub");
    let reader = s.db.unique("reader");
    let other_slot = s.db.unique("tdslot");
    s.db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE hidden (id int PRIMARY KEY);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
         INSERT INTO hidden VALUES (1);
         CREATE ROLE {reader} LOGIN REPLICATION;
         GRANT SELECT ON t TO {reader};
         CREATE PUBLICATION {empty_pub};"
    ))
    .await;
    s.db.exec(&format!("SELECT pg_create_logical_replication_slot('{other_slot}', 'test_decoding')")).await;
    s.db.create_publication(&s.publication, "t").await;
    let hidden_pub = s.db.unique("hiddenpub");
    s.db.create_publication(&hidden_pub, "t, hidden").await;
    let url = s.db.url_with_password(SCRAM_USER, SCRAM_PASSWORD);
    let root = s.dir.path().to_path_buf();
    let out = |name: &str| root.join(name).join("out");
    let base = |name: &str| config_toml(&url, &s.publication, &s.slot, &out(name), "");
    let port = s.db.cluster.port();

    // The slot exists (from setup as a superuser): the runtime rows fail on something else.
    let setup_cfg = crate::support::write_config(&root.join("setup"), &config_toml(&s.db.url, &s.publication, &s.slot, &out("setup"), ""));
    crate::support::assert_success(&s.pgcdc(&setup_cfg, &["setup"]).await, "setup");

    let blocker = root.join("a-regular-file");
    std::fs::write(&blocker, b"x").unwrap();
    let moto = crate::support::moto();
    let aws = format!("[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n", moto.endpoint_url());

    let mut cases = vec![
        // ---- configuration (exit 2, before anything is touched) ----
        case("malformed-toml", format!("[source\nurl = \"{url}\"\n"), RUN, 2, &["invalid configuration", "line 1"]),
        case("unknown-key", base("unknown-key").replace("slot = ", "slott = "), RUN, 2, &["unknown key `slott`", "hint: did you mean `slot`?"]),
        case("unknown-table", format!("{}\n[pipelin]\nmode = \"cdc\"\n", base("unknown-table")), RUN, 2, &["unknown key `pipelin`", "did you mean `pipeline`?"]),
        case("wrong-type", base("wrong-type").replace(&format!("publication = \"{}\"", s.publication), "publication = 5"), RUN, 2, &["invalid type: integer `5`, expected a string"]),
        case("bad-duration", base("bad-duration").replace("flush_interval = \"1s\"", "flush_interval = \"soon\""), RUN, 2, &["`soon` is not a duration"]),
        case("bad-size", sink_line(&base("bad-size"), "max_file_size = \"12 parsecs\""), RUN, 2, &["unknown size unit `parsecs`"]),
        case("tiny-size", sink_line(&base("tiny-size"), "max_file_size = \"10B\""), RUN, 2, &["max_file_size must be at least 1KiB"]),
        case("unset-env-var", base("unset-env-var").replace(&url, "${PGCDC_CATALOGUE_UNSET}"), RUN, 2, &["environment variable PGCDC_CATALOGUE_UNSET is not set", "hint: export PGCDC_CATALOGUE_UNSET="]),
        case("bad-url-port", base("bad-url-port").replace(&format!(":{port}/"), ":99999/"), RUN, 2, &["source.url is not a valid URL", "hint: write postgres://"]),
        case("wrong-scheme", base("wrong-scheme").replace("postgres://", "mysql://"), RUN, 2, &["source.url must start with postgres://"]),
        case("sink-url-scheme", base("sink-url-scheme").replace(&format!("url = \"{}\"", out("sink-url-scheme").display()), "url = \"ftp://host/x\""), RUN, 2, &["ftp://host/x"]),
        case("relative-file-url", base("relative-file-url").replace(&format!("url = \"{}\"", out("relative-file-url").display()), "url = \"file://relative/x\""), RUN, 2, &["not an absolute file:// URL", "hint: write file:///absolute/path"]),
        case("no-sinks", base("no-sinks")[..base("no-sinks").find("[[sink]]").unwrap()].to_string(), RUN, 2, &["no [[sink]] is configured", "hint: add a sink"]),
        case("unknown-sink-kind", base("unknown-sink-kind").replace("kind = \"parquet\"", "kind = \"bigquery\""), RUN, 2, &["unknown variant `bigquery`", "parquet"]),
        case("unknown-mode", base("unknown-mode").replace("mode = \"cdc\"", "mode = \"sometimes\""), RUN, 2, &["unknown variant `sometimes`", "full-load"]),
        case("bad-compression", sink_line(&base("bad-compression"), "compression = \"lz4\""), RUN, 2, &["lz4"]),
        case("bad-layout", sink_line(&base("bad-layout"), "layout = \"weird\""), RUN, 2, &["weird"]),
        case("s3-option-on-local", sink_line(&base("s3-option-on-local"), "storage_class = \"GLACIER\""), RUN, 2, &["storage_class"]),
        case("kinesis-without-stream", format!("{}\n[[sink]]\nkind = \"kinesis\"\n", base("kinesis-without-stream")), RUN, 2, &["stream"]),
        case("kinesis-bad-aggregation", format!("{}\n[[sink]]\nkind = \"kinesis\"\nstream = \"s\"\naggregation = \"zip\"\n", base("kinesis-bad-aggregation")), RUN, 2, &["zip"]),
        case("dead-letter-bad-url", format!("{}\n[dead_letter]\nurl = \"ftp://x/y\"\n", base("dead-letter-bad-url")), RUN, 2, &["ftp://x/y"]),
        case("bad-reconnect-timeout", base("bad-reconnect-timeout").replace("slot = ", "reconnect_timeout = \"forever\"\nslot = "), RUN, 2, &["`forever` is not a duration"]),
        case("teardown-without-yes", base("teardown-without-yes"), &["teardown"], 2, &["refusing without --yes", "hint: run `pgcdc teardown -c FILE --yes`"]),
        Case { name: "missing-config-file", toml: None, args: vec!["run".into()], code: 2, phrases: vec!["cannot read configuration file".into(), "hint: pass an existing TOML file".into()], usage: false, env: Vec::new() },
        Case { usage: true, ..case("bad-mode-argument", base("bad-mode-argument"), &["run", "--mode", "bogus"], 2, &["invalid value 'bogus'", "expected full-load, cdc or full-load-and-cdc"]) },
        Case { usage: true, ..case("bad-until-lsn", base("bad-until-lsn"), &["run", "--until-lsn", "12/zz"], 2, &["`12/zz` is not an LSN", "as in 16/B374D848"]) },
        // ---- the server and the role (exit 1 at run time unless the configuration is at fault) ----
        case("unreachable-host", base("unreachable-host").replace(&format!(":{port}/"), &format!(":{}/", closed_port())), RUN, 1, &["cannot connect to PostgreSQL", "hint:"]),
        // Refused before connecting: the source here is unreachable.
        Case {
            env: vec![("PGCDC_VALIDATE_MEMORY", "lots")],
            ..case("validate-memory-not-a-size", base("validate-memory-not-a-size").replace(&format!(":{port}/"), &format!(":{}/", closed_port())), &["validate"], 2, &["PGCDC_VALIDATE_MEMORY", "`lots` is not a size", "hint: unset it"])
        },
        Case {
            env: vec![("PGCDC_STREAM_STAGING", "sometimes")],
            ..case("stream-staging-not-on-or-off", base("stream-staging-not-on-or-off").replace(&format!(":{port}/"), &format!(":{}/", closed_port())), RUN, 2, &["PGCDC_STREAM_STAGING", "`sometimes` is neither `on` nor `off`", "hint: unset it"])
        },
        case("wrong-password", base("wrong-password").replace(SCRAM_PASSWORD, "not-the-password"), RUN, 1, &["password authentication failed", "hint: check the user and password"]),
        case("missing-database", base("missing-database").replace(&format!("/{}", s.db.name), "/no_such_db_catalogue"), RUN, 1, &["no_such_db_catalogue"]),
        case("no-replication-privilege", config_toml(&s.db.url_as(NOREPL_USER), &s.publication, &s.slot, &out("no-replication-privilege"), ""), RUN, 1, &["REPLICATION"]),
        case("no-select-on-a-table", config_toml(&s.db.url_as(&reader), &hidden_pub, &s.db.unique("fl"), &out("no-select-on-a-table"), "").replace("mode = \"cdc\"", "mode = \"full-load\""), RUN, 1, &["cannot SELECT \"public\".\"hidden\"", "GRANT SELECT ON \"public\".\"hidden\""]),
        case("slot-of-another-plugin", config_toml(&url, &s.publication, &other_slot, &out("slot-of-another-plugin"), ""), RUN, 1, &["test_decoding"]),
        case("publication-missing", base("publication-missing").replace(&format!("publication = \"{}\"", s.publication), "publication = \"no_such_pub\""), RUN, 1, &["no_such_pub", "does not exist", "pgcdc setup"]),
        case("publication-empty", base("publication-empty").replace(&format!("publication = \"{}\"", s.publication), &format!("publication = \"{empty_pub}\"")), RUN, 1, &[&empty_pub, "publishes no table", "ALTER PUBLICATION"]),
        case("unwritable-target", config_toml(&url, &s.publication, &s.slot, &blocker.join("out"), ""), RUN, 1, &["cannot create output directory", "hint: check the sink url"]),
        case("s3-bucket-missing", format!("{}{aws}", base("s3-bucket-missing").replace(&format!("url = \"{}\"", out("s3-bucket-missing").display()), "url = \"s3://no-such-bucket-catalogue/x/\"")), RUN, 1, &["the bucket `no-such-bucket-catalogue` does not exist", "hint: create the bucket first"]),
    ];

    // A slot in use: pg_recvlogical holds it while the row runs.
    let busy_slot = s.db.unique("busy");
    s.db.exec(&format!("SELECT pg_create_logical_replication_slot('{busy_slot}', 'pgoutput')")).await;
    let holder = hold_slot(&s, &busy_slot).await;
    cases.push(case("slot-in-use", config_toml(&url, &s.publication, &busy_slot, &out("slot-in-use"), ""), RUN, 1, &[&format!("replication slot `{busy_slot}` is in use by another process"), "hint: stop the other consumer"]));

    assert!(cases.len() >= 30, "the catalogue has {} rows", cases.len());
    let slots_before = s.db.slot_names().await;
    let mut failures = Vec::new();
    for c in &cases {
        if let Err(e) = run_case(c, &root).await {
            failures.push(format!("[{}] {e}", c.name));
        }
    }
    drop(holder);
    assert_eq!(s.db.slot_names().await, slots_before, "a failed command created or dropped a slot");

    // A full disk for the spill directory: a streamed transaction cannot spill.
    if let Err(e) = full_spill_disk(&s, &url, &root).await {
        failures.push(format!("[full-spill-disk] {e}"));
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n\n{}", failures.len(), cases.len() + 1, failures.join("\n\n"));
}

/// Runs one row and checks it against the common bar; Err describes what was wrong.
async fn run_case(c: &Case, root: &Path) -> Result<(), String> {
    let dir = root.join(c.name);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = match &c.toml {
        Some(t) => crate::support::write_config(&dir, t),
        None => dir.join("does-not-exist.toml"),
    };
    let mut cmd = crate::support::pgcdc();
    cmd.args(&c.args).arg("-c").arg(&cfg).env("AWS_ACCESS_KEY_ID", AWS_KEY_ID).env("AWS_SECRET_ACCESS_KEY", AWS_SECRET).envs(c.env.iter().copied());
    let out = output_of(cmd).await;
    check_output(c, &out)?;
    check_nothing_written(&dir.join("out"))
}

fn check_output(c: &Case, out: &Output) -> Result<(), String> {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let ctx = format!("exit {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}", out.status.code());
    if out.status.code() != Some(c.code) {
        return Err(format!("expected exit {}; {ctx}", c.code));
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return Err(format!("a panic is not an error message; {ctx}"));
    }
    if stderr.matches("error: ").count() != 1 && !c.usage {
        return Err(format!("not exactly one `error: ` line; {ctx}"));
    }
    if !c.usage && !stderr.contains("hint: ") {
        return Err(format!("no fix (`hint: `); {ctx}"));
    }
    for p in &c.phrases {
        if !stderr.contains(p.as_str()) {
            return Err(format!("stderr does not name {p:?}; {ctx}"));
        }
    }
    for secret in [SCRAM_PASSWORD, AWS_KEY_ID, AWS_SECRET] {
        if stdout.contains(secret) || stderr.contains(secret) {
            return Err(format!("the secret {secret:?} was printed; {ctx}"));
        }
    }
    Ok(())
}

fn check_nothing_written(out_dir: &Path) -> Result<(), String> {
    let files = parquet_files(out_dir);
    if !files.is_empty() {
        return Err(format!("left Parquet files: {files:?}"));
    }
    for f in ["_pgcdc/checkpoint.json", "_pgcdc/manifest.json", "_pgcdc/load.json"] {
        if out_dir.join(f).exists() {
            return Err(format!("left {f}"));
        }
    }
    Ok(())
}

/// `pg_recvlogical` streaming from `slot` until dropped.
async fn hold_slot(s: &Setup, slot: &str) -> ChildGuard {
    let mut cmd = std::process::Command::new(s.db.cluster.bindir().join("pg_recvlogical"));
    cmd.args(["-d", &s.db.url, "-S", slot, "--start", "-f", "/dev/null", "-o", "proto_version=1", "-o"])
        .arg(format!("publication_names={}", s.publication))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let guard = ChildGuard(Some(cmd.spawn().expect("spawn pg_recvlogical")));
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.db.query_scalar(&format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}' AND active")).await.as_deref() != Some("1") {
        assert!(Instant::now() < deadline, "pg_recvlogical never took the slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    guard
}

/// The spill directory on a 64 KiB tmpfs (a directory inside it: pgcdc clears it), a 5 MB transaction streamed by the server: the run
/// fails with the directory and "No space left" named, and nothing of it is published.
async fn full_spill_disk(s: &Setup, url: &str, root: &Path) -> Result<(), String> {
    let dir = root.join("full-spill-disk");
    let mount_point: PathBuf = dir.join("disk");
    std::fs::create_dir_all(&mount_point).unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&mount_point).status().expect("mount");
    assert!(mounted.success(), "mounting a tmpfs for the spill directory failed (the tests run as root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount_point.clone());
    let spill = mount_point.join("spill");
    let slot = s.db.unique("spill");
    let out = dir.join("out");
    let toml = config_toml(url, &s.publication, &slot, &out, "").replace("mode = \"cdc\"", &format!("mode = \"cdc\"\nspill_dir = \"{}\"", spill.display()));
    let cfg = crate::support::write_config(&dir, &toml);
    // The slot first (an empty target's cdc run makes it), then the big transaction.
    s.db.exec(&format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")).await;
    s.db.exec("INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series(1000, 11000) g").await;
    let c = Case { name: "full-spill-disk", toml: Some(toml), args: RUN.iter().map(|a| a.to_string()).collect(), code: 1, phrases: vec![spill.display().to_string(), "No space left".into()], usage: false, env: Vec::new() };
    let mut cmd = crate::support::pgcdc();
    cmd.args(RUN).arg("-c").arg(&cfg).env("AWS_ACCESS_KEY_ID", AWS_KEY_ID).env("AWS_SECRET_ACCESS_KEY", AWS_SECRET);
    let result = output_of(cmd).await;
    check_output(&c, &result)?;
    check_nothing_written(&out)
}
