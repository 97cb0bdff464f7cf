//! S3 targets after a crash: a run killed with SIGKILL mid-stream leaves its lock object
//! behind; a restart on the same host takes it over at once (the holder's pid is gone),
//! recovers, and the output read back through pyarrow's S3 filesystem equals the source
//! with no `(_lsn, _seq)` twice.

use std::process::Stdio;
use std::time::Duration;

use crate::s3::{fetch, new_bucket, pgcdc_s3, s3_config};
use crate::support::{describe, moto, pgcdc, ChildGuard, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_s3_run_restarts_at_once_and_loses_or_doubles_nothing() {
    let s = Setup::new("s3_kill").await;
    let bucket = new_bucket("kill");
    s.db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g",
    )
    .await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s3_config(&s, &format!("s3://{bucket}/k/"), &moto().endpoint_url());
    let mut cmd = pgcdc();
    moto().aws_env(&mut cmd);
    cmd.args(["run", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd, "pgcdc run on S3");
    for i in 0..30 {
        s.db.exec(&format!(
            "INSERT INTO t VALUES ({}, 'new'); UPDATE t SET v = 'u{i}' WHERE id % 30 = {i}; DELETE FROM t WHERE id = {}",
            10000 + i,
            100 + i
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGKILL mid-stream: the lock object stays behind with a running lease.
    let mut c = child.0.take().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    s.db.exec("INSERT INTO t VALUES (20000, 'after the kill')")
        .await;

    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(
        out.status.success(),
        "restart after SIGKILL: {}",
        describe(&out)
    );
    assert!(
        describe(&out).contains("took over the lock"),
        "{}",
        describe(&out)
    );
    fetch(&s, &bucket, "k");
    s.assert_matches_source("public", "t").await;
}
