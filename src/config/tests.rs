use super::*;

const MINIMAL: &str = r#"
[source]
url = "postgres://u@localhost/db"
[[sink]]
kind = "parquet"
url = "/tmp/out"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.source.publication, "pgcdc");
    assert_eq!(c.source.slot, "pgcdc");
    assert_eq!(c.pipeline.mode, Mode::FullLoadAndCdc);
    let p = c.parquet_sinks().next().unwrap();
    assert_eq!(p.flush_interval, Duration::from_secs(60));
    assert_eq!(p.max_file_size, 128 * 1024 * 1024);
    assert_eq!(p.compression, Compression::Zstd);
}

#[test]
fn unknown_key_suggests_nearest() {
    let e = Config::parse(&MINIMAL.replace("url = \"/tmp/out\"", "url = \"/tmp/out\"\nflush_intervall = \"5s\"")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.message.contains("flush_intervall"), "{e}");
    assert_eq!(e.hint.as_deref(), Some("did you mean `flush_interval`?"));
    let e = Config::parse(&MINIMAL.replace("[source]", "[source]\npublicaton = \"x\"")).unwrap_err();
    assert_eq!(e.hint.as_deref(), Some("did you mean `publication`?"), "{e}");
}

#[test]
fn env_vars_are_substituted_and_missing_ones_named() {
    std::env::set_var("PGCDC_TEST_OUT_DIR", "/data/out");
    let c = Config::parse(&MINIMAL.replace("/tmp/out", "${PGCDC_TEST_OUT_DIR}")).unwrap();
    assert_eq!(c.parquet_sinks().next().unwrap().url, "/data/out");
    let e = Config::parse(&MINIMAL.replace("/tmp/out", "${PGCDC_TEST_SURELY_UNSET}")).unwrap_err();
    assert!(e.message.contains("PGCDC_TEST_SURELY_UNSET"), "{e}");
    assert_eq!(env::substitute("a $${B} c").unwrap(), "a ${B} c");
}

#[test]
fn bad_values_are_config_errors() {
    for bad in [
        MINIMAL.replace("url = \"/tmp/out\"", "url = \"/tmp/out\"\nflush_interval = \"soon\""),
        MINIMAL.replace("url = \"/tmp/out\"", "url = \"/tmp/out\"\nmax_file_size = \"12 parsecs\""),
        MINIMAL.replace("kind = \"parquet\"", "kind = \"csv\""),
        MINIMAL.replace("[source]", "[pipeline]\nmode = \"sometimes\"\n[source]"),
        "[source]\nurl = \"x\"\n".to_string(),
        "not toml at all [".to_string(),
    ] {
        let e = Config::parse(&bad).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad}: {e}");
    }
}

#[test]
fn units_parse() {
    assert_eq!(parse_size("128MiB").unwrap(), 128 << 20);
    assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
    assert_eq!(parse_size("4096").unwrap(), 4096);
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert!(parse_size("1XB").is_err());
}

#[test]
fn toml_errors_give_the_position_but_never_a_password() {
    let bad = "[source]\nurl = \"postgres://app:TopSecret@db/x\n[[sink]]\nkind = \"parquet\"\nurl = \"/tmp/out\"\n";
    let e = Config::parse(bad).unwrap_err();
    assert!(e.message.contains("line 2"), "{e}");
    assert!(!e.to_string().contains("TopSecret"), "{e}");
    let e = Config::parse("source = \"postgres://app:TopSecret@db/x\"\n").unwrap_err();
    assert!(e.message.contains("postgres://app:***@db/x"), "{e}");
    assert!(!e.to_string().contains("TopSecret"), "{e}");
    let e = Config::parse(&MINIMAL.replace("[source]", "[source]\nslott = \"x\"")).unwrap_err();
    assert!(e.message.contains("unknown key `slott` at line 3"), "{e}");
    assert_eq!(mask_url_passwords("a postgres://u@h/d b s3://k:s@b/"), "a postgres://u@h/d b s3://k:***@b/");
}

#[test]
fn sections_not_built_yet_are_refused_not_ignored() {
    // [dead_letter] and [metrics] are built (config/dead_letter.rs and config/metrics.rs test them).
    Config::parse(&format!("{MINIMAL}\n[metrics]\nlisten = \"127.0.0.1:9187\"\n")).unwrap();
    // Kinesis alone loads and streams in every mode, with progress in [state].
    let kinesis_only = "[source]\nurl = \"postgres://u@h/d\"\n[[sink]]\nkind = \"kinesis\"\nstream = \"s\"\n[state]\nurl = \"file:///tmp/st\"\n";
    Config::parse(kinesis_only).unwrap();
    let e = Config::parse(&kinesis_only.replace("[state]\nurl = \"file:///tmp/st\"\n", "")).unwrap_err();
    assert!(e.message.contains("no Parquet sink and no [state]"), "{e}");
    // [state] is built: its url is parsed once; a bad one names the section.
    let c = Config::parse(&format!("{MINIMAL}\n[state]\nurl = \"file:///tmp/state\"\n")).unwrap();
    assert_eq!(c.state.unwrap().location, crate::config::Location::Local("/tmp/state".into()));
    let e = Config::parse(&format!("{MINIMAL}\n[state]\nurl = \"file://relative\"\n")).unwrap_err();
    assert!(e.to_string().contains("[state] url"), "{e}");
    // [catalog] needs S3 targets: Glue tables point at S3 locations.
    let e = Config::parse(&format!("{MINIMAL}\n[catalog]\nglue_database = \"shop\"\n")).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.message.contains("[catalog]") && e.to_string().contains("s3://"), "{e}");
    // [aws] only holds settings for AWS targets: harmless without them.
    Config::parse(&format!("{MINIMAL}\n[aws]\nregion = \"us-east-1\"\n")).unwrap();
}
