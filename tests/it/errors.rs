//! SPEC 2.8, 2.9 and 3: bad input gets one clear error with a hint, the right exit code
//! (2 for configuration and usage, 1 at run time), no panic, no partial output, and no
//! password anywhere in what pgcdc prints.
//!
//! Every test runs the real binary; the runtime ones run it against the real test server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::pg::{MD5_PASSWORD, MD5_USER, NOREPL_USER, SCRAM_PASSWORD, SCRAM_USER};
use crate::support::{assert_success, config_toml, output_of, parquet_files, pgcdc_c, ChildGuard, Setup};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `pgcdc <args>` (the caller adds `-c FILE` where needed).
async fn pgcdc(args: &[&str]) -> Output {
    let mut cmd = crate::support::pgcdc();
    cmd.args(args);
    output_of(cmd).await
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts the exit code, that stderr has the `error: ` line and every phrase, and that
/// nothing panicked. Returns stderr.
#[track_caller]
fn assert_fails(out: &Output, code: i32, phrases: &[&str]) -> String {
    let (stdout, stderr) = text(out);
    let ctx = format!("exit {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}", out.status.code());
    eprintln!("{ctx}");
    assert_eq!(out.status.code(), Some(code), "expected exit {code}; {ctx}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "a panic is not an error message; {ctx}");
    assert!(stderr.contains("error: "), "no `error: ` line; {ctx}");
    for p in phrases {
        assert!(stderr.contains(p), "stderr lacks {p:?}; {ctx}");
    }
    stderr
}

/// Asserts that `secret` appears nowhere in stdout or stderr.
#[track_caller]
fn assert_no_secret(out: &Output, secret: &str) {
    let (stdout, stderr) = text(out);
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the password {secret:?} leaked (SPEC 2.9)\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
}

/// No Parquet file, no checkpoint and no pending manifest in the output directory.
#[track_caller]
fn assert_nothing_written(out_dir: &Path) {
    assert_eq!(parquet_files(out_dir), Vec::<PathBuf>::new(), "a failed run left Parquet files");
    for f in ["_pgcdc/checkpoint.json", "_pgcdc/manifest.json", "_pgcdc/load.json"] {
        assert!(!out_dir.join(f).exists(), "a failed run left {f}");
    }
}

/// For errors found before anything is touched: the output directory does not even exist.
#[track_caller]
fn assert_untouched(out_dir: &Path) {
    assert!(!out_dir.exists(), "{} was created although the configuration was rejected", out_dir.display());
}

/// Every `--mode`: the preflight errors must be the same whichever path `run` takes.
const MODES: [&str; 3] = ["cdc", "full-load", "full-load-and-cdc"];

/// A TCP port nothing listens on (bound once, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A syntactically valid config (pointing at a port nothing listens on) plus `extra` TOML
/// lines appended to the `[[sink]]` table.
fn static_config(dir: &Path, extra_sink: &str) -> String {
    format!(
        "[source]\nurl = \"postgres://pgcdc@127.0.0.1:{}/db\"\npublication = \"p\"\nslot = \"s\"\n\n\
         [pipeline]\nmode = \"cdc\"\n\n[[sink]]\nkind = \"parquet\"\nurl = \"{}\"\n{extra_sink}\n",
        closed_port(),
        dir.join("out").display()
    )
}

/// Runs `pgcdc check` on a config text that must be rejected with exit 2.
async fn rejected_config(toml: &str, phrases: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::write_config(dir.path(), toml);
    let out = pgcdc_c("run", &cfg, &["--until-lsn", "current"]).await;
    let stderr = assert_fails(&out, 2, phrases);
    assert!(stderr.contains("pgcdc.toml"), "a configuration error names the file: {stderr}");
    assert_untouched(&dir.path().join("out"));
    stderr
}

// ---------------------------------------------------------------------------------------
// Configuration and usage errors: exit 2, before anything is touched
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_are_rejected_with_the_nearest_valid_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = static_config(dir.path(), "");

    // In [source]
    let toml = good.replace("slot = \"s\"", "slott = \"s\"");
    rejected_config(&toml, &["unknown key `slott`", "hint: did you mean `slot`?"]).await;
    let toml = good.replace("publication = \"p\"", "publicaton = \"p\"");
    rejected_config(&toml, &["unknown key `publicaton`", "hint: did you mean `publication`?"]).await;
    // In a [[sink]] (an internally tagged table)
    let toml = static_config(dir.path(), "flush_intervall = \"1s\"");
    rejected_config(&toml, &["unknown key `flush_intervall`", "hint: did you mean `flush_interval`?"]).await;
    // A whole unknown table
    let toml = format!("{good}\n[pipelin]\nmode = \"cdc\"\n");
    rejected_config(&toml, &["unknown key `pipelin`", "hint: did you mean `pipeline`?"]).await;
    // Nothing close: the hint lists the valid keys
    let toml = good.replace("slot = \"s\"", "zzzzzz = \"s\"");
    rejected_config(&toml, &["unknown key `zzzzzz`", "hint: valid keys here:", "publication"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_unknown_sink_kinds_and_missing_sinks_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let good = static_config(dir.path(), "");

    let toml = good.replace("publication = \"p\"", "publication = 5");
    rejected_config(&toml, &["invalid type: integer `5`, expected a string", "line 3"]).await;
    let toml = good.replace("kind = \"parquet\"", "kind = \"csv\"");
    rejected_config(&toml, &["unknown variant `csv`", "parquet"]).await;
    let toml = good.replace("[[sink]]", "[sink]");
    rejected_config(&toml, &["invalid configuration"]).await;
    let toml = good[..good.find("[[sink]]").unwrap()].to_string();
    rejected_config(&toml, &["no [[sink]] is configured", "hint: add a sink"]).await;
    let toml = good.replace("url = \"/", "nourl = \"/");
    rejected_config(&toml, &["nourl"]).await;
    let toml = static_config(dir.path(), "[[sink]]\nkind = \"parquet\"");
    rejected_config(&toml, &["missing field `url`"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_durations_and_sizes_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    rejected_config(&static_config(dir.path(), "flush_interval = \"soon\""), &["`soon` is not a duration", "60s"]).await;
    rejected_config(&static_config(dir.path(), "flush_interval = 60"), &["invalid type: integer `60`"]).await;
    rejected_config(&static_config(dir.path(), "max_file_size = \"12 parsecs\""), &["unknown size unit `parsecs`", "MiB"])
        .await;
    rejected_config(&static_config(dir.path(), "max_file_size = \"big\""), &["`big` is not a size"]).await;
    rejected_config(&static_config(dir.path(), "max_file_size = \"10B\""), &["max_file_size must be at least 1KiB"]).await;
    let toml = static_config(dir.path(), "").replace("mode = \"cdc\"", "mode = \"cdc\"\nstatus_interval = \"often\"");
    rejected_config(&toml, &["`often` is not a duration"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_environment_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let var = format!("PGCDC_TEST_UNSET_{}", std::process::id());
    let toml = static_config(dir.path(), "").replace("publication = \"p\"", &format!("publication = \"${{{var}}}\""));
    let cfg = crate::support::write_config(dir.path(), &toml);
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env_remove(&var);
    let out = output_of(cmd).await;
    assert_fails(&out, 2, &[&format!("environment variable {var} is not set"), &format!("hint: export {var}=")]);
    assert_untouched(&dir.path().join("out"));

    // Set, it is substituted (and the run gets as far as connecting).
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env(&var, "mypub");
    let out = output_of(cmd).await;
    assert_fails(&out, 1, &["cannot connect to PostgreSQL"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_toml_is_rejected_with_its_position_but_without_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "Malformed-Secret-7781";
    // Unterminated string on the line that carries the password.
    let toml = format!(
        "[source]\nurl = \"postgres://app:{secret}@127.0.0.1:{}/db\npublication = \"p\"\n\n[[sink]]\nkind = \"parquet\"\nurl = \"/tmp/x\"\n",
        closed_port()
    );
    let cfg = crate::support::write_config(dir.path(), &toml);
    let out = pgcdc_c("check", &cfg, &[]).await;
    assert_fails(&out, 2, &["invalid configuration", "line 2"]);
    assert_no_secret(&out, secret);

    // Trailing garbage after the URL on the same line.
    let toml = format!("[source]\nurl = \"postgres://app:{secret}@h/db\" slot = \"x\"\n");
    let cfg = crate::support::write_config(dir.path(), &toml);
    let out = pgcdc_c("setup", &cfg, &[]).await;
    assert_fails(&out, 2, &["invalid configuration", "line 2"]);
    assert_no_secret(&out, secret);

    // The URL where a table is expected: the value is in serde's message.
    let toml = format!("source = \"postgres://app:{secret}@h/db\"\n");
    let cfg = crate::support::write_config(dir.path(), &toml);
    let out = pgcdc_c("status", &cfg, &[]).await;
    assert_fails(&out, 2, &["invalid configuration", "invalid type"]);
    assert_no_secret(&out, secret);

    rejected_config("[source\nurl = \"x\"\n", &["invalid configuration", "line 1"]).await;
    rejected_config("this is not toml at all", &["invalid configuration"]).await;
    rejected_config("", &["missing field `source`"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_file_and_bad_command_lines_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("does-not-exist.toml");
    for command in ["run", "check", "setup", "status"] {
        let out = pgcdc_c(command, &missing, &[]).await;
        assert_fails(&out, 2, &["cannot read configuration file", "does-not-exist.toml", "hint: pass an existing TOML file"]);
    }
    let out = pgcdc_c("teardown", &missing, &["--yes"]).await;
    assert_fails(&out, 2, &["cannot read configuration file"]);

    // A directory is not a file either.
    let out = pgcdc_c("check", dir.path(), &[]).await;
    assert_fails(&out, 2, &["cannot read configuration file"]);

    // clap's usage errors
    let out = pgcdc(&["run"]).await;
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("--config"), "{:?}", text(&out));
    let out = pgcdc(&["frobnicate"]).await;
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    let out = pgcdc(&["run", "-c", "x.toml", "--mode", "sometimes"]).await;
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("sometimes"), "{:?}", text(&out));
    // --help and --version are not errors
    assert_eq!(pgcdc(&["--help"]).await.status.code(), Some(0));
    assert_eq!(pgcdc(&["--version"]).await.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_source_urls_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "Url-Secret-5512";
    let port = closed_port();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("postgres://app:{secret}@127.0.0.1:99999/db"), vec!["source.url is not a valid URL", "hint: write postgres://"]),
        (format!("mysql://app:{secret}@127.0.0.1:{port}/db"), vec!["source.url must start with postgres://"]),
        (
            format!("postgres://app:{secret}@127.0.0.1:{port}/db?frobnicate=1"),
            vec!["unsupported parameter `frobnicate`", "hint: supported: sslmode"],
        ),
        (
            format!("postgres://app:{secret}@127.0.0.1:{port}/db?sslmode=maybe"),
            vec!["unknown sslmode `maybe`", "hint: use disable, allow, prefer, require, verify-ca or verify-full"],
        ),
        (format!("postgres://app:{secret}@127.0.0.1:{port}/db?connect_timeout=soon"), vec!["connect_timeout `soon`"]),
        ("not a url".to_string(), vec!["source.url is not a valid URL"]),
    ];
    for (url, phrases) in cases {
        let toml = config_toml(&url, "p", "s", &dir.path().join("out"), "");
        let cfg = crate::support::write_config(dir.path(), &toml);
        for command in ["run", "check", "setup", "status"] {
            let out = pgcdc_c(command, &cfg, &[]).await;
            assert_fails(&out, 2, &phrases);
            assert_no_secret(&out, secret);
        }
        assert_untouched(&dir.path().join("out"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_without_yes_refuses_and_drops_nothing() {
    let s = Setup::new("err_teardown").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    let cfg = s.config_with_source(&s.db.url, "");
    assert_success(&pgcdc_c("setup", &cfg, &[]).await, "setup");
    let out = pgcdc_c("teardown", &cfg, &[]).await;
    assert_fails(&out, 2, &["refusing without --yes", "hint: run `pgcdc teardown -c FILE --yes`"]);
    assert_eq!(s.db.slot_names().await, vec![s.slot.clone()], "the slot must survive");
    let pubs = s.db.query_scalar(&format!("SELECT count(*) FROM pg_publication WHERE pubname = '{}'", s.publication)).await;
    assert_eq!(pubs.as_deref(), Some("1"), "the publication must survive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_modes_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let toml = static_config(dir.path(), "").replace("mode = \"cdc\"", "mode = \"sometimes\"");
    rejected_config(&toml, &["unknown variant `sometimes`", "full-load", "cdc"]).await;
    let toml = static_config(dir.path(), "").replace("mode = \"cdc\"", "mode = \"full_load\"");
    rejected_config(&toml, &["unknown variant `full_load`", "full-load"]).await;

    let cfg = crate::support::write_config(dir.path(), &static_config(dir.path(), ""));
    let out = pgcdc_c("run", &cfg, &["--mode", "sometimes"]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sometimes") && stderr.contains("--mode"), "{stderr}");
    assert_untouched(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_until_lsn_is_a_usage_error() {
    let s = Setup::new("err_until").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s.config_with_source(&s.db.url, "");
    for bad in ["yesterday", "0/XYZ", "12345", "now", ""] {
        let out = pgcdc_c("run", &cfg, &["--until-lsn", bad]).await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "--until-lsn {bad:?}: {stderr}");
        assert!(stderr.contains("--until-lsn"), "--until-lsn {bad:?}: {stderr}");
        if !bad.is_empty() {
            assert!(stderr.contains("is not an LSN"), "--until-lsn {bad:?}: {stderr}");
        }
    }
    assert!(s.db.slot_names().await.is_empty(), "no slot may be created");
    assert_untouched(&s.out());
}

// ---------------------------------------------------------------------------------------
// Runtime errors: exit 1, with the cause and a fix, nothing written
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_fail_authentication_without_showing_the_password() {
    let s = Setup::new("err_password").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "t").await;
    for (user, sslmode) in [(SCRAM_USER, "prefer"), (SCRAM_USER, "disable"), (MD5_USER, "require"), (MD5_USER, "disable")] {
        let wrong = format!("Wr0ng-{user}-Pa55word");
        let url = format!("{}?sslmode={sslmode}", s.db.url_with_password(user, &wrong));
        let cfg = s.config_with_source(&url, "");
        for command in ["run", "setup", "status"] {
            let mut cmd = crate::support::pgcdc();
            cmd.arg(command).arg("-c").arg(&cfg).env("PGCDC_LOG", "debug");
            if command == "run" {
                cmd.args(["--until-lsn", "current"]);
            }
            let out = output_of(cmd).await;
            assert_fails(
                &out,
                1,
                &[&format!("password authentication failed for user \"{user}\""), "hint: check the user and password"],
            );
            assert_no_secret(&out, &wrong);
        }
        // check reports it as a failed item instead
        let out = pgcdc_c("check", &cfg, &[]).await;
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout}");
        assert!(stdout.contains("BLOCKER  connect") && stdout.contains("password authentication failed"), "{stdout}");
        assert!(stdout.contains("fix: check the user and password"), "{stdout}");
        assert_no_secret(&out, &wrong);
    }

    // From PGPASSWORD instead of the URL.
    let cfg = s.config_with_source(&s.db.url_as(SCRAM_USER), "");
    let wrong = "Env-Wr0ng-Secret-4417";
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env("PGPASSWORD", wrong).env("PGCDC_LOG", "debug");
    let out = output_of(cmd).await;
    assert_fails(&out, 1, &["password authentication failed", "hint: check the user and password"]);
    assert_no_secret(&out, wrong);

    // No password at all where one is needed.
    let out = pgcdc_c("run", &cfg, &["--until-lsn", "current"]).await;
    assert_fails(
        &out,
        1,
        &["asks for a password for user scram_user but none is configured", "hint: put the password in source.url"],
    );
    assert_nothing_written(&s.out());
    assert!(s.db.slot_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_password_does_not_appear_when_a_run_fails_later() {
    let s = Setup::new("err_password_ok").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    // No publication: the run connects and authenticates, then fails its preflight.
    for (user, password) in [(SCRAM_USER, SCRAM_PASSWORD), (MD5_USER, MD5_PASSWORD)] {
        let url = s.db.url_with_password(user, password);
        let cfg = s.config_with_source(&url, "");
        let mut cmd = crate::support::pgcdc();
        cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env("PGCDC_LOG", "debug");
        let out = output_of(cmd).await;
        assert_fails(&out, 1, &["does not exist", "pgcdc setup"]);
        assert_no_secret(&out, password);
        for args in [
            &["--log-format", "json", "run", "--until-lsn", "current"][..],
            &["run", "--mode", "full-load-and-cdc", "--until-lsn", "current"],
            &["check"],
            &["status", "--json"],
        ] {
            let mut cmd = crate::support::pgcdc();
            cmd.args(args).arg("-c").arg(&cfg).env("PGCDC_LOG", "trace");
            let out = output_of(cmd).await;
            assert_no_secret(&out, password);
        }
        // A database that does not exist, with the right password.
        let url = format!("{}_nope", s.db.url_with_password(user, password));
        let out = pgcdc_c("run", &s.config_with_source(&url, ""), &["--until-lsn", "current"]).await;
        assert_fails(&out, 1, &["does not exist"]);
        assert_no_secret(&out, password);
    }
    assert_nothing_written(&s.out());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_connection_error() {
    let s = Setup::new("err_refused").await;
    let port = closed_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/{}", s.db.name);
    let cfg = s.config_with_source(&url, "");
    let started = Instant::now();
    for command in ["run", "setup", "status", "teardown"] {
        let more: &[&str] = match command {
            "run" => &["--until-lsn", "current"],
            "teardown" => &["--yes"],
            _ => &[],
        };
        let out = pgcdc_c(command, &cfg, more).await;
        assert_fails(
            &out,
            1,
            &[&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}"), "refused", "hint: check source.url host and port"],
        );
    }
    let out = pgcdc_c("check", &cfg, &[]).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("BLOCKER  connect") && stdout.contains("refused"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(30), "refused connections must fail fast");

    // A host name that cannot resolve (or, without DNS, cannot connect in time).
    let url = format!("postgres://postgres@no-such-host.invalid:{port}/db?connect_timeout=3");
    let out = pgcdc_c("run", &s.config_with_source(&url, ""), &["--until-lsn", "current"]).await;
    assert_fails(&out, 1, &["no-such-host.invalid", "hint: check source.url host and port"]);
    assert_nothing_written(&s.out());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_named() {
    let s = Setup::new("err_nodb").await;
    let url = s.db.url.replace(&format!("/{}", s.db.name), "/no_such_database_here");
    let cfg = s.config_with_source(&url, "");
    let out = pgcdc_c("run", &cfg, &["--until-lsn", "current"]).await;
    assert_fails(
        &out,
        1,
        &["database \"no_such_database_here\" does not exist", "hint: the database does not exist: check the database name"],
    );
    let out = pgcdc_c("setup", &cfg, &[]).await;
    assert_fails(&out, 1, &["no_such_database_here"]);
    assert_nothing_written(&s.out());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_publication_points_to_setup() {
    let s = Setup::new("err_nopub").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)").await;
    let cfg = s.config_with_source(&s.db.url, "");
    for mode in MODES {
        let out = pgcdc_c("run", &cfg, &["--mode", mode, "--until-lsn", "current"]).await;
        assert_fails(
            &out,
            1,
            &[&format!("publication `{}` does not exist", s.publication), "hint: create it with `pgcdc setup -c FILE`"],
        );
        assert!(s.db.slot_names().await.is_empty(), "--mode {mode}: a failed run must not leave a slot behind");
        assert_nothing_written(&s.out());
    }
    // Also when the slot exists already (created by hand, without the publication): it is
    // left as it was.
    s.db.exec(&format!("SELECT pg_create_logical_replication_slot('{}', 'pgoutput')", s.slot)).await;
    let confirmed = s.db.slot_confirmed_lsn(&s.slot).await;
    s.db.exec("INSERT INTO t VALUES (3)").await;
    for mode in MODES {
        let out = pgcdc_c("run", &cfg, &["--mode", mode, "--until-lsn", "current"]).await;
        assert_fails(&out, 1, &["does not exist", "pgcdc setup"]);
        assert_nothing_written(&s.out());
        assert_eq!(s.db.slot_confirmed_lsn(&s.slot).await, confirmed, "--mode {mode}: the existing slot was changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_replication_gets_a_clear_message() {
    let s = Setup::new("err_norepl").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await;
    s.db.create_publication(&s.publication, "t").await;
    s.db.exec(&format!("GRANT SELECT ON t TO {NOREPL_USER}")).await;
    let cfg = s.config_with_source(&s.db.url_as(NOREPL_USER), "");

    for mode in MODES {
        let out = pgcdc_c("run", &cfg, &["--mode", mode, "--until-lsn", "current"]).await;
        assert_fails(&out, 1, &["cannot open a replication connection", "hint: the role needs the REPLICATION attribute"]);
        assert!(s.db.slot_names().await.is_empty());
        assert_nothing_written(&s.out());
    }

    // With the slot already there (a DBA ran setup), the walsender still refuses.
    s.db.exec(&format!("SELECT pg_create_logical_replication_slot('{}', 'pgoutput')", s.slot)).await;
    let out = pgcdc_c("run", &cfg, &["--until-lsn", "current"]).await;
    assert_fails(&out, 1, &["REPLICATION"]);
    assert_nothing_written(&s.out());

    // setup cannot create a slot for it either.
    let cfg2 = crate::support::write_config(
        &s.dir.path().join("setup"),
        &config_toml(&s.db.url_as(NOREPL_USER), &s.publication, &s.db.unique("slot2"), &s.out(), ""),
    );
    let out = pgcdc_c("setup", &cfg2, &[]).await;
    assert_fails(&out, 1, &["creating replication slot", "hint: the role needs REPLICATION"]);

    // check names the missing privilege.
    let out = pgcdc_c("check", &cfg, &[]).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("BLOCKER  replication privilege") && stdout.contains("neither REPLICATION nor SUPERUSER"), "{stdout}");
    assert!(stdout.contains("BLOCKER  replication connection"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_in_use_by_another_run_is_refused() {
    let s = Setup::new("err_slot_busy").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s.config_with_source(&s.db.url, "");
    assert_success(&pgcdc_c("setup", &cfg, &[]).await, "setup");
    s.db.exec("INSERT INTO t VALUES (1)").await;

    // The first run holds the slot until it is stopped.
    let mut first = {
        let mut cmd = crate::support::pgcdc();
        cmd.arg("run").arg("-c").arg(&cfg).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        ChildGuard(Some(cmd.spawn().expect("spawn the first pgcdc run")))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let active = s
            .db
            .query_scalar(&format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}' AND active", s.slot))
            .await;
        if active.as_deref() == Some("1") {
            break;
        }
        if let Some(status) = first.0.as_mut().unwrap().try_wait().unwrap() {
            let out = first.0.take().unwrap().wait_with_output().unwrap();
            panic!("the first run ended early ({status}): {:?}", text(&out));
        }
        assert!(Instant::now() < deadline, "the first run never took the slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The second run, into its own (empty) target.
    let other_out = s.dir.path().join("second");
    let cfg2 = crate::support::write_config(
        &s.dir.path().join("second-config"),
        &config_toml(&s.db.url, &s.publication, &s.slot, &other_out, ""),
    );
    let started = Instant::now();
    let out = pgcdc_c("run", &cfg2, &["--until-lsn", "current"]).await;
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_fails(
        &out,
        1,
        &[&format!("replication slot `{}` is in use by another process", s.slot), "hint: stop the other consumer"],
    );
    assert_nothing_written(&other_out);
    // The full-load-and-cdc path (an empty target wants a new slot) must not take it either.
    let out = pgcdc_c("run", &cfg2, &["--mode", "full-load-and-cdc", "--until-lsn", "current"]).await;
    assert_fails(&out, 1, &["is in use by another process", "hint: stop the other consumer"]);
    assert_nothing_written(&other_out);

    // teardown refuses too, and check warns.
    let out = pgcdc_c("teardown", &cfg, &["--yes"]).await;
    assert_fails(&out, 1, &["is in use by PID", "hint: stop pgcdc"]);
    let out = pgcdc_c("check", &cfg, &[]).await;
    assert!(text(&out).0.contains("warning  slot") && text(&out).0.contains("in use by PID"), "{:?}", text(&out));

    // The first run is unharmed and stops cleanly.
    let first_out = tokio::task::spawn_blocking(move || first.stop(Duration::from_secs(30))).await.unwrap();
    assert_success(&first_out, "the first run, stopped with SIGTERM");
    assert_eq!(s.change_rows("public", "t").len(), 1, "the first run wrote the row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_level_replica_is_refused_with_the_fix() {
    let cluster = tokio::task::spawn_blocking(|| pgcdc::demo::cluster::LocalCluster::start("wal_level = replica"))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("starting a wal_level=replica cluster: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let url = cluster.url("postgres");
    // The publication can be created at any wal_level; the slot cannot.
    let mut psql = Command::new(cluster.bindir().join("psql"));
    psql.args(["-X", "-v", "ON_ERROR_STOP=1", "-d", &url.replace("?sslmode=disable", ""), "-c"])
        .arg("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t");
    let created = output_of(psql).await;
    assert_success(&created, "psql on the wal_level=replica cluster");

    let cfg = crate::support::write_config(dir.path(), &config_toml(&url, "p", "s", &out_dir, ""));
    for mode in MODES {
        let out = pgcdc_c("run", &cfg, &["--mode", mode, "--until-lsn", "current"]).await;
        assert_fails(&out, 1, &["wal_level is `replica`", "needs `logical`", "hint: set wal_level = logical", "restart PostgreSQL"]);
        assert_nothing_written(&out_dir);
    }

    let out = pgcdc_c("check", &cfg, &[]).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("BLOCKER  wal_level") && stdout.contains("replica"), "{stdout}");
    assert!(stdout.contains("wal_level = logical"), "{stdout}");

    let out = pgcdc_c("setup", &cfg, &[]).await;
    assert_fails(&out, 1, &["creating replication slot", "wal_level"]);

    tokio::task::spawn_blocking(move || drop(cluster)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_output_directory_is_a_clear_error() {
    let s = Setup::new("err_unwritable").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await;
    s.db.create_publication(&s.publication, "t").await;
    let blocker = s.dir.path().join("a-regular-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let target = blocker.join("out");
    let toml = config_toml(&s.db.url, &s.publication, &s.slot, &target, "");
    let cfg = crate::support::write_config(s.dir.path(), &toml);

    for mode in MODES {
        let out = pgcdc_c("run", &cfg, &["--mode", mode, "--until-lsn", "current"]).await;
        assert_fails(&out, 1, &["cannot create output directory", "a-regular-file/out", "hint: check the sink url"]);
        assert!(s.db.slot_names().await.is_empty(), "--mode {mode}: no slot for a run that cannot write");
    }
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a directory");

    // check: a FAIL line, and exit 2: a target that cannot be used as configured is the
    // configuration's to fix (retrying would not help).
    let out = pgcdc_c("check", &cfg, &[]).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("BLOCKER  target") && stdout.contains("cannot create output directory"), "{stdout}");

    // A file:// URL that is not absolute is a configuration error.
    let toml = config_toml(&s.db.url, &s.publication, &s.slot, Path::new("relative/out"), "").replace(
        "url = \"relative/out\"",
        "url = \"file://relative/out\"",
    );
    let cfg = crate::support::write_config(&s.dir.path().join("rel"), &toml);
    let out = pgcdc_c("run", &cfg, &["--until-lsn", "current"]).await;
    assert_fails(&out, 2, &["not an absolute file:// URL", "hint: write file:///absolute/path"]);
}
