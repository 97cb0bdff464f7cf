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
            "replicated {} transactions ({} streamed, {} of them staged; {} aborted streams skipped), {} rows; durable up to {}",
            st.transactions, st.streamed_transactions, st.staged_transactions, st.aborted_streams, st.rows, s.durable
        );
    }
}

/// Prints the findings as a table (or one JSON object); returns the exit code: 2 when
/// there is a blocker, else 0.
pub fn check_report(items: &[CheckItem], json: bool) -> i32 {
    let count = |l: Level| items.iter().filter(|i| i.level == l).count();
    let (blockers, warnings) = (count(Level::Blocker), count(Level::Warn));
    if json {
        let doc = serde_json::json!({ "blockers": blockers, "warnings": warnings, "findings": items });
        println!("{}", serde_json::to_string_pretty(&doc).expect("serialisable"));
    } else {
        let width = items.iter().map(|i| i.what.chars().count()).max().unwrap_or(0).max(5);
        println!("{:<7}  {:<width$}  FINDING", "LEVEL", "CHECK");
        for i in items {
            let tag = match i.level {
                Level::Ok => "ok",
                Level::Warn => "warning",
                Level::Blocker => "BLOCKER",
            };
            println!("{tag:<7}  {:<width$}  {}", i.what, i.detail);
            if let Some(h) = &i.hint {
                println!("{:<7}  {:<width$}  fix: {h}", "", "");
            }
        }
        println!("{blockers} blocker(s), {warnings} warning(s)");
    }
    if blockers > 0 {
        2
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
            None if t.progress_only => println!("  progress store ([state])"),
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
    for p in &s.sink_positions {
        println!("sink {}", p.sink);
        println!("  acknowledged up to    {} (written {})", p.acknowledged_lsn, p.written_at);
    }
    if let Some(r) = &s.resync_pending {
        println!("resync pending since {} ({}): {} table(s) copied; the next `pgcdc run` finishes it", r.started_at, r.reason, r.tables_copied);
    }
    if let Some(d) = &s.dead_letters {
        println!("dead letters {}", d.location);
        println!("  dead letters          {}", d.total);
        for (table, n) in &d.tables {
            println!("  {table:<32} {n}");
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
        for e in t.example_lines() {
            println!("    {e}");
        }
    }
    let out = r.out_dir.join("out");
    println!();
    println!("The output is plain Parquet; change rows carry _op, _lsn, _seq, _xid, _commit_ts, _unchanged.");
    let orders = crate::sink::parquet::naming::table_dir(&out, "public", "orders");
    let query = format!("SELECT _op, count(*) FROM read_parquet('{}/**/*.parquet', union_by_name=true) GROUP BY 1", orders.display());
    println!("Read it with DuckDB (CLI or Python):");
    println!("  duckdb -c \"{query}\"");
    println!("  python3 -c \"import duckdb; print(duckdb.sql(\\\"{query}\\\"))\"");
    println!("or pyarrow:");
    println!("  python3 -c \"import pyarrow.dataset as ds; print(ds.dataset('{}', format='parquet', partitioning='hive').to_table().num_rows)\"", orders.display());
    println!("The configuration used is {}/pgcdc.toml.", r.out_dir.display());
    if clean {
        0
    } else {
        println!("\nThe output differs from the source: please report this.");
        3
    }
}

/// Prints the `validate` report (a table, or JSON); returns 0 when clean, else 3.
pub fn validate(r: &crate::validate::report::ValidateReport, json: bool) -> i32 {
    use crate::validate::report::{ExampleKind, TableStatus, TargetReady};
    let code = if r.clean { 0 } else { 3 };
    if json {
        println!("{}", serde_json::to_string_pretty(r).expect("serialisable"));
        return code;
    }
    let value = |v: &Option<String>| match v {
        None => "NULL".to_string(),
        Some(s) if !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "._-:+/@".contains(c)) => s.clone(),
        Some(s) => format!("{s:?}"),
    };
    let key = |k: &[(String, Option<String>)]| {
        let parts: Vec<String> = k.iter().map(|(c, v)| format!("{c}={}", value(v))).collect();
        if parts.len() == 1 { parts[0].clone() } else { format!("({})", parts.join(", ")) }
    };
    let target_lsn = r.target_lsn.map_or("-".to_string(), |l| l.to_string());
    match r.target_ready {
        TargetReady::Checkpoint => println!("validated at LSN {} (target {}, durable up to {target_lsn})", r.lsn, r.target),
        TargetReady::NoChangesSinceCheckpoint => println!(
            "validated at LSN {} (target {}, durable up to {target_lsn}; no change to these tables committed in between)",
            r.lsn, r.target
        ),
    }
    println!();
    let width = r.tables.iter().map(|t| t.name().chars().count()).max().unwrap_or(0).max(5);
    println!("{:<width$}  {:>11}  {:>11}  {:>7}  {:>7}  {:>9}  result", "table", "source rows", "target rows", "missing", "extra", "differing");
    let (mut identical, mut different, mut skipped, mut unpublished) = (0, 0, 0, 0);
    for t in &r.tables {
        let not_compared = match t.status {
            TableStatus::NotPublished => Some((&mut unpublished, "NOT PUBLISHED", "not in the publication")),
            TableStatus::NotValidated => Some((&mut skipped, "cannot validate", "unknown reason")),
            _ => None,
        };
        if let Some((count, label, default_reason)) = not_compared {
            *count += 1;
            println!(
                "{:<width$}  {:>11}  {:>11}  {:>7}  {:>7}  {:>9}  {label}: {}",
                t.name(), "-", "-", "-", "-", "-",
                t.reason.as_deref().unwrap_or(default_reason)
            );
            continue;
        }
        let mut result = if t.status == TableStatus::Identical {
            identical += 1;
            "identical".to_string()
        } else {
            different += 1;
            "DIFFERENT".to_string()
        };
        if t.duplicates > 0 {
            result.push_str(&format!(" ({} duplicated (_lsn, _seq))", t.duplicates));
        }
        if t.compared_by == Some(crate::validate::report::CompareBy::WholeRow) {
            result.push_str(" [whole rows: no key, REPLICA IDENTITY FULL]");
        }
        if !t.not_compared.is_empty() {
            result.push_str(&format!(" [generated columns not in the output, not compared: {}]", t.not_compared.join(", ")));
        }
        if t.dead_lettered > 0 {
            result.push_str(&format!(" [{} source rows not compared: dead letters]", t.dead_lettered));
        }
        println!(
            "{:<width$}  {:>11}  {:>11}  {:>7}  {:>7}  {:>9}  {result}",
            t.name(), t.source_rows, t.target_rows, t.missing, t.extra, t.differing
        );
        for e in &t.examples {
            let line = match e.kind {
                ExampleKind::Missing | ExampleKind::Extra => {
                    let label = if e.kind == ExampleKind::Missing { "missing" } else { "extra" };
                    match (e.source_count, e.target_count) {
                        (Some(s), Some(tc)) => format!("{label:<9}  {} ({s}× in the source, {tc}× in the target)", key(&e.key)),
                        _ => format!("{label:<9}  {}", key(&e.key)),
                    }
                }
                ExampleKind::Differing => {
                    let cols: Vec<String> = e
                        .columns
                        .iter()
                        .map(|c| format!("{}: {} in the source, {} in the target", c.column, value(&c.source), value(&c.target)))
                        .collect();
                    format!("{:<9}  {}: {}", "differing", key(&e.key), cols.join("; "))
                }
                ExampleKind::Duplicate => format!(
                    "{:<9}  (_lsn, _seq) = ({}, {}) is written more than once",
                    "duplicate",
                    e.lsn.map_or("-".to_string(), |l| l.to_string()),
                    e.seq.unwrap_or_default()
                ),
            };
            println!("    {line}");
        }
    }
    println!();
    let mut summary = format!("{} table(s): {identical} identical, {different} different", r.tables.len());
    if skipped > 0 {
        summary.push_str(&format!(", {skipped} cannot be validated"));
    }
    if unpublished > 0 {
        summary.push_str(&format!(", {unpublished} not published"));
    }
    println!("{summary}");
    code
}
