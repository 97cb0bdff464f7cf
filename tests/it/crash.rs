//! SPEC 2.1, 2.2, 2.4: `pgcdc run` is killed with SIGKILL at random moments while a mixed
//! workload runs (inserts, updates, key updates, deletes, truncate, a 200k-row transaction,
//! an aborted big transaction, an added column), restarted each time, and at the end the
//! materialised output must equal the source with no `(_lsn, _seq)` twice. Each test runs
//! against a local directory and against an S3 target (moto, through the real SDK).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{moto, Setup};

/// Where a crash test writes.
enum Target {
    /// The test's local output directory.
    Local,
    /// `s3://{bucket}/c/` on the test's moto server; read back into the local output
    /// directory through pyarrow's S3 filesystem before the checks.
    S3 { bucket: String },
}

impl Target {
    fn s3() -> Target {
        Target::S3 { bucket: crate::s3::new_bucket("crash") }
    }

    /// A `mode = "cdc"` configuration with `extra_sink` lines on the sink.
    fn config(&self, s: &Setup, extra_sink: &str) -> PathBuf {
        match self {
            Target::Local => s.config(extra_sink),
            Target::S3 { bucket } => crate::support::write_config(
                s.dir.path(),
                &format!(
                    "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"cdc\"\nstatus_interval = \"1s\"\n\n\
                     [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\n\
                     [[sink]]\nkind = \"parquet\"\nurl = \"s3://{bucket}/c/\"\n{}{extra_sink}\n",
                    s.db.url,
                    s.publication,
                    s.slot,
                    moto().endpoint_url(),
                    if extra_sink.contains("flush_interval") { "" } else { "flush_interval = \"1s\"\n" },
                ),
            ),
        }
    }

    /// `pgcdc` with what the target needs in its environment.
    fn pgcdc(&self) -> Command {
        let mut cmd = crate::support::pgcdc();
        if let Target::S3 { .. } = self {
            moto().aws_env(&mut cmd);
        }
        cmd
    }

    /// A last, clean run to the current position; for S3, the target copied into the
    /// test's output directory, where the checks read it.
    async fn finish(&self, s: &Setup, cfg: &std::path::Path) {
        let mut cmd = self.pgcdc();
        cmd.args(["run", "--until-lsn", "current", "-c"]).arg(cfg);
        let out = crate::support::output_of(cmd).await;
        crate::support::assert_success(&out, "the last clean run");
        if let Target::S3 { bucket } = self {
            crate::s3::fetch(s, bucket, "c");
        }
    }
}

/// A test database with the tables `acct` and `log` published, a configuration writing to
/// `target` with `extra_sink` lines, and its slot set up.
async fn accounts(target: &Target, name: &str, extra_sink: &str) -> (Setup, PathBuf) {
    let s = Setup::new(name).await;
    s.db.exec(
        "CREATE TABLE acct (id int PRIMARY KEY, owner text, balance numeric(12,2), note text);
         CREATE TABLE log (id bigserial PRIMARY KEY, msg text)",
    )
    .await;
    s.db.create_publication(&s.publication, "acct, log").await;
    let cfg = target.config(&s, extra_sink);
    crate::support::assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    (s, cfg)
}

/// A small deterministic generator; the seed is printed so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

const WORKLOAD: &[&str] = &[
    "INSERT INTO acct SELECT g, 'owner ' || g, g * 10, NULL FROM generate_series(1, 5000) g",
    "INSERT INTO log (msg) SELECT 'm' || g FROM generate_series(1, 2000) g",
    "UPDATE acct SET balance = balance + 1 WHERE id % 3 = 0",
    "UPDATE acct SET id = id + 100000 WHERE id % 50 = 0 AND id < 100000",
    "DELETE FROM acct WHERE id % 11 = 0",
    "INSERT INTO log (msg) SELECT 'big ' || g FROM generate_series(1, 200000) g",
    "BEGIN; INSERT INTO log (msg) SELECT 'aborted' FROM generate_series(1, 100000) g; ROLLBACK",
    "TRUNCATE log",
    "INSERT INTO log (msg) SELECT 'after truncate ' || g FROM generate_series(1, 500) g",
    "ALTER TABLE acct ADD COLUMN extra text",
    "UPDATE acct SET extra = 'x' || id WHERE id % 7 = 0",
    "INSERT INTO acct SELECT g, 'late ' || g, 1, 'n', 'e' FROM generate_series(200001, 203000) g",
    "BEGIN; UPDATE acct SET note = 'two' WHERE id % 5 = 0; DELETE FROM log WHERE id % 2 = 0; COMMIT",
    "UPDATE acct SET id = id + 1000000, note = 'moved' WHERE id > 200000 AND id % 4 = 0",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_and_repeats_nothing() {
    random_kills(Target::Local, "crash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_on_s3_loses_nothing_and_repeats_nothing() {
    random_kills(Target::s3(), "crash_s3").await;
}

async fn random_kills(target: Target, name: &str) {
    // Frequent flushes and small files, so kills land inside flushes and multi-part commits.
    let (s, cfg) = accounts(&target, name, "flush_interval = \"300ms\"\nmax_file_size = \"64KiB\"").await;

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Lcg(seed);

    let db = s.db.clone();
    let workload = tokio::spawn(async move {
        for round in 0..2 {
            for sql in WORKLOAD {
                if round == 1 && sql.starts_with("ALTER TABLE") {
                    continue;
                }
                let sql = if round == 1 { sql.replace("generate_series(1, 5000)", "generate_series(300001, 305000)").replace("200001, 203000", "400001, 403000") } else { sql.to_string() };
                db.exec(&sql).await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    });

    let mut kills = 0;
    let started = Instant::now();
    while kills < 12 || !workload.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(600), "crash loop took too long");
        let mut child = target
            .pgcdc()
            .args(["run", "-c"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pgcdc");
        let wait = 200 + rng.next(2300);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!("pgcdc exited early with {status}: {}", String::from_utf8_lossy(&out.stderr));
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
    }
    workload.await.unwrap();
    eprintln!("{kills} kills in {:?}", started.elapsed());

    // A last, clean run to the current position, then the proof.
    target.finish(&s, &cfg).await;
    let acct = s.assert_matches_source("public", "acct").await;
    let log = s.assert_matches_source("public", "log").await;
    assert!(acct > 5000 && log > 100, "the workload really ran (acct {acct}, log {log})");
    let rows = s.change_rows("public", "log");
    assert!(rows.iter().all(|r| r.values.get("msg").cloned().flatten().as_deref() != Some("aborted")));
    assert!(!s.out().join("_pgcdc/manifest.json").exists(), "no flush left half done");
}

/// Every crash window, deterministically: each run dies (SIGKILL, through a failpoint) at
/// one named point of the flush/ack path; the next run recovers and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_every_flush_window_recovers_exactly_once() {
    flush_windows(Target::Local, "crash_points").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_every_flush_window_on_s3_recovers_exactly_once() {
    flush_windows(Target::s3(), "crash_points_s3").await;
}

async fn flush_windows(target: Target, name: &str) {
    use std::os::unix::process::ExitStatusExt;
    let (s, cfg) = accounts(&target, name, "max_file_size = \"16KiB\"").await;
    let points = [
        "flush-before-manifest",
        "flush-after-manifest",
        "flush-after-first-publish",
        "recover-after-publish",
        "flush-before-checkpoint",
        "flush-after-checkpoint",
        "flushed-before-ack",
        // A streamed transaction: replayed from its spill (staging off), and written from
        // its staging, killed before its parts are restamped and after the first one.
        "stream-replay",
        "stream-staged-commit",
        "staged-commit",
    ];
    for (i, point) in points.iter().enumerate() {
        let base = i as i64 * 10_000;
        s.db.exec(&format!(
            "INSERT INTO acct SELECT g, 'o' || g, g, NULL FROM generate_series({}, {}) g;
             UPDATE acct SET id = id + 1000000 WHERE id = {};
             DELETE FROM acct WHERE id = {};
             INSERT INTO log (msg) SELECT 'step {i} ' || g FROM generate_series(1, 3000) g",
            base + 1,
            base + 2000,
            base + 5,
            base + 6
        ))
        .await;
        let mut cmd = target.pgcdc();
        cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env("PGCDC_FAILPOINTS", point);
        if *point == "stream-replay" {
            cmd.env("PGCDC_STREAM_STAGING", "off");
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if *point == "recover-after-publish" {
            // Only reached when the previous crash left a manifest to roll forward.
            assert!(out.status.signal() == Some(9) || out.status.success(), "{point}: {stderr}");
        } else {
            assert_eq!(out.status.signal(), Some(9), "{point} was not reached: {stderr}");
        }
    }
    target.finish(&s, &cfg).await;
    assert_eq!(s.assert_matches_source("public", "acct").await, points.len() * 1999);
    assert_eq!(s.assert_matches_source("public", "log").await, points.len() * 3000);
}

/// A kill in the middle of a multipart upload (one part of a >16 MiB file is up, the upload
/// is not complete): the next run publishes the staged file again from the flush manifest,
/// and the target holds every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_multipart_upload_on_s3_recovers_exactly_once() {
    use std::os::unix::process::ExitStatusExt;
    let target = Target::s3();
    let s = Setup::new("crash_multipart").await;
    s.db.exec("CREATE TABLE big (id int PRIMARY KEY, h text, h2 text)").await;
    s.db.create_publication(&s.publication, "big").await;
    // Incompressible text, stored uncompressed: one transaction makes one file of ~40 MB.
    let cfg = target.config(&s, "max_file_size = \"256MiB\"\ncompression = \"none\"");
    crate::support::assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec("INSERT INTO big SELECT g, md5(g::text), md5((g * 7)::text) FROM generate_series(1, 500000) g").await;
    let mut cmd = target.pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env("PGCDC_FAILPOINTS", "s3-multipart-after-first-part");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.signal(), Some(9), "no multipart upload was interrupted: {}", String::from_utf8_lossy(&out.stderr));
    let Target::S3 { bucket } = &target else { unreachable!() };
    assert_eq!(open_multipart_uploads(bucket), 1, "the killed run left its upload open");
    s.db.exec("DELETE FROM big WHERE id % 1000 = 0").await;
    target.finish(&s, &cfg).await;
    assert_eq!(s.assert_matches_source("public", "big").await, 500_000 - 500);
    assert_eq!(open_multipart_uploads(bucket), 0, "recovery aborts the dead run's upload");
    let staging = std::env::temp_dir().join("pgcdc-staging").join(bucket);
    assert!(!staging.exists(), "a clean exit leaves no staging directory: {}", staging.display());
}

/// How many multipart uploads are open in `bucket`, as boto3 lists them.
fn open_multipart_uploads(bucket: &str) -> usize {
    let m = moto();
    let out = m
        .aws_env(&mut Command::new(crate::support::python()))
        .args([
            "-c",
            &format!(
                "import boto3; print(len(boto3.client('s3', endpoint_url='{}', region_name='us-east-1').list_multipart_uploads(Bucket='{bucket}').get('Uploads', [])))",
                m.endpoint_url()
            ),
        ])
        .output()
        .expect("python");
    assert!(out.status.success(), "list_multipart_uploads: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
