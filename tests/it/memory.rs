//! SPEC 2.5: peak memory does not grow with transaction size. One transaction inserts five
//! million rows; pgcdc (a child process) must stay under 256 MiB resident while writing it,
//! and the output must hold all of it.

use std::fs::File;

use parquet::file::reader::{FileReader, SerializedFileReader};
use crate::support::{parquet_files, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_million_row_transaction_stays_within_256_mib() {
    const ROWS: i64 = 5_000_000;
    let s = Setup::new("memory").await;
    s.db.exec("CREATE TABLE huge (id bigint PRIMARY KEY, v text, n int)").await;
    s.db.create_publication(&s.publication, "huge").await;
    let cfg = s.config("");
    crate::support::assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.db.exec(&format!("INSERT INTO huge SELECT g, 'value ' || g, g % 1000 FROM generate_series(1, {ROWS}) g")).await;

    let out = s.run_until_current(&cfg).await;
    // This test binary runs nothing else, so the children's peak is pgcdc's (the other
    // children are the cluster watchdog shell and `setup`).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    let peak_mib = usage.ru_maxrss as f64 / 1024.0;
    eprintln!("pgcdc peak RSS {peak_mib:.1} MiB; {}", String::from_utf8_lossy(&out.stdout));
    assert!(peak_mib < 256.0, "peak RSS {peak_mib:.1} MiB for a {ROWS}-row transaction");

    let mut rows = 0i64;
    let (mut min_id, mut max_id) = (i64::MAX, i64::MIN);
    for f in parquet_files(&s.table_dir("public", "huge")) {
        let reader = SerializedFileReader::new(File::open(&f).unwrap()).unwrap();
        rows += reader.metadata().file_metadata().num_rows();
        for rg in reader.metadata().row_groups() {
            if let Some(parquet::file::statistics::Statistics::Int64(st)) = rg.column(0).statistics() {
                min_id = min_id.min(*st.min_opt().unwrap());
                max_id = max_id.max(*st.max_opt().unwrap());
            }
        }
    }
    assert_eq!(rows, ROWS, "every row of the transaction is in the output");
    assert_eq!((min_id, max_id), (1, ROWS));
}
