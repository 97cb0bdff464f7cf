//! Text presentation of command results.

use crate::admin::check::{CheckItem, Level};
use crate::admin::status::Status;
use crate::demo::DemoReport;
use crate::pipeline::runner::RunSummary;

pub fn run_summary(s: &RunSummary) {
    if let Some(l) = &s.load {
        println!(
            "{} {} rows of {} tables in {} chunks in {:.1} s (snapshot {}); CDC continues from {}",
            if l.resumed { "finished the full load:" } else { "full load:" },
            l.rows,
            l.tables,
            l.chunks,
            l.seconds,
            l.snapshot_lsn,
            l.slot_lsn
        );
    }
    if let Some(st) = &s.stats {
        println!(
            "replicated {} transactions ({} streamed, {} aborted streams skipped), {} rows; durable up to {}",
            st.transactions, st.streamed_transactions, st.aborted_streams, st.rows, s.durable
        );
    }
}

/// Prints the check list; returns the exit code (1 if anything failed).
pub fn check_report(items: &[CheckItem]) -> i32 {
    let mut failed = false;
    for i in items {
        let tag = match i.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => {
                failed = true;
                "FAIL"
            }
        };
        println!("[{tag}] {:<24} {}", i.what, i.detail);
        if let Some(h) = &i.hint {
            println!("       {:<24} hint: {h}", "");
        }
    }
    if failed {
        1
    } else {
        0
    }
}

pub fn status(s: &Status, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(s).expect("serialisable"));
        return;
    }
    println!("slot {}: {}", s.slot, if !s.slot_exists { "missing" } else if s.slot_active { "active" } else { "inactive" });
    println!("  server WAL position   {}", s.current_wal_lsn);
    println!("  confirmed flush LSN   {}", s.confirmed_flush_lsn.as_deref().unwrap_or("-"));
    println!("  restart LSN           {}", s.restart_lsn.as_deref().unwrap_or("-"));
    println!("  wal_status            {}", s.wal_status.as_deref().unwrap_or("-"));
    if let Some(l) = s.lag_bytes {
        println!("  lag                   {l} bytes");
    }
    if let Some(r) = s.retained_bytes {
        println!("  WAL retained          {r} bytes");
    }
    for t in &s.targets {
        println!("target {}", t.target);
        if let Some(l) = &t.load {
            println!("  full load             {} (CDC from {})", if l.complete { "complete" } else { "in progress" }, l.slot_lsn);
            for tl in &l.tables {
                println!("  {:<32} {}/{} chunks, {} rows", tl.table, tl.chunks_done, tl.chunks, tl.rows);
            }
        }
        match &t.checkpoint {
            None => println!("  no checkpoint yet"),
            Some(cp) => {
                println!("  durable up to         {} (last commit {}, written {})", cp.end_lsn, cp.commit_lsn, cp.written_at);
                for (table, ops) in &cp.counts {
                    let ops: Vec<String> = ops.iter().map(|(op, n)| format!("{op}={n}")).collect();
                    println!("  {table:<32} {}", ops.join(" "));
                }
            }
        }
    }
}

/// Prints the demo summary; returns 0 when the output matched the source, else 3.
pub fn demo(r: &DemoReport) -> i32 {
    println!();
    println!(
        "pgcdc demo: loaded {} rows, then replicated {} transactions ({} streamed) into {}",
        r.loaded_rows,
        r.transactions,
        r.streamed,
        r.out_dir.display()
    );
    println!();
    println!("{:<12} {:>12} {:>12} {:>12} {:>7}  check", "table", "source rows", "target rows", "change rows", "files");
    let mut clean = true;
    for t in &r.tables {
        let ok = t.diff.is_clean();
        clean &= ok;
        println!(
            "{:<12} {:>12} {:>12} {:>12} {:>7}  {}",
            t.name,
            t.diff.source_rows,
            t.diff.target_rows,
            t.change_rows,
            t.files,
            if ok { "identical".to_string() } else { format!("{} missing, {} extra, {} differing", t.diff.missing, t.diff.extra, t.diff.differing) }
        );
        for e in &t.diff.examples {
            println!("    {e}");
        }
    }
    let out = r.out_dir.join("out");
    println!();
    println!("The output is plain Parquet; change rows carry _op, _lsn, _seq, _xid, _commit_ts, _unchanged.");
    let query = format!("SELECT _op, count(*) FROM read_parquet('{}/public/orders/**/*.parquet', union_by_name=true) GROUP BY 1", out.display());
    println!("Read it with DuckDB (CLI or Python):");
    println!("  duckdb -c \"{query}\"");
    println!("  python3 -c 'import duckdb; print(duckdb.sql(\"{query}\"))'");
    println!("or pyarrow:");
    println!("  python3 -c \"import pyarrow.dataset as ds; print(ds.dataset('{}/public/orders', format='parquet', partitioning='hive').to_table().num_rows)\"", out.display());
    println!("The configuration used is {}/pgcdc.toml.", r.out_dir.display());
    if clean {
        0
    } else {
        println!("\nThe output differs from the source: please report this.");
        3
    }
}
