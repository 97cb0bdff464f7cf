//! The Markdown report of `pgcdc dms compare --format markdown`: the verdict, a summary
//! table, then per table its counts, reasons and first differing rows. Values are escaped
//! for table cells (`|`, line breaks, backticks).

use std::fmt::Write;

use super::diff::ExampleKind;
use super::text::{changes, kind_text, verdict};
use super::Report;

fn cell(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('`', "\\`")
        .replace(['\r', '\n'], " ")
}

fn value(v: &Option<String>) -> String {
    v.as_deref().map_or("*NULL*".to_string(), |s| {
        format!("`{}`", cell(s).replace("\\`", "'"))
    })
}

/// The whole report as Markdown.
pub fn render(r: &Report) -> String {
    let mut s = String::from("# DMS and pgcdc output compared\n\n");
    let _ = writeln!(
        s,
        "* DMS: `{}`\n* pgcdc: `{}` ({} layout)\n",
        cell(&r.dms),
        cell(&r.pgcdc),
        r.pgcdc_layout
    );
    let differ = r.tables.iter().filter(|t| !t.is_equal()).count();
    if r.equal {
        let _ = writeln!(
            s,
            "**Equal**: {} table(s) hold the same rows.\n",
            r.tables.len()
        );
    } else {
        let _ = writeln!(
            s,
            "**Different**: {differ} of {} table(s) differ.\n",
            r.tables.len()
        );
    }
    s.push_str("| table | DMS rows | pgcdc rows | matching | only in DMS | only in pgcdc | differing |\n|---|--:|--:|--:|--:|--:|--:|\n");
    for t in &r.tables {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&t.table),
            t.dms_rows,
            t.pgcdc_rows,
            t.matching,
            t.only_in_dms,
            t.only_in_pgcdc,
            t.differing
        );
    }
    for t in &r.tables {
        let _ = writeln!(s, "\n## {}\n\n{}\n", cell(&t.table), verdict(t));
        let _ = writeln!(s, "* key: {}", cell(&t.key.join(", ")));
        let _ = writeln!(
            s,
            "* changes: DMS {} / pgcdc {}",
            changes(&t.dms_changes),
            changes(&t.pgcdc_changes)
        );
        let _ = writeln!(s, "* files: DMS {} / pgcdc {}", t.dms_files, t.pgcdc_files);
        if !t.differing_columns.is_empty() {
            let cols: Vec<String> = t
                .differing_columns
                .iter()
                .map(|(c, n)| format!("{} ({n})", cell(c)))
                .collect();
            let _ = writeln!(s, "* differing columns: {}", cols.join(", "));
        }
        for (reason, n) in &t.reasons {
            let _ = writeln!(s, "* likely reason ({n}): {}", cell(reason));
        }
        if t.examples.is_empty() {
            continue;
        }
        s.push_str(
            "\n| row | key | column | DMS | pgcdc | likely reason |\n|---|---|---|---|---|---|\n",
        );
        for e in &t.examples {
            let key = e
                .key
                .iter()
                .map(|(k, v)| format!("{}={}", cell(k), value(v)))
                .collect::<Vec<_>>()
                .join(", ");
            if e.kind != ExampleKind::Differing {
                let _ = writeln!(s, "| {} | {key} | | | | |", kind_text(e.kind));
            }
            for c in &e.columns {
                let _ = writeln!(
                    s,
                    "| {} | {key} | {} | {} | {} | {} |",
                    kind_text(e.kind),
                    cell(&c.column),
                    value(&c.dms),
                    value(&c.pgcdc),
                    c.reason.as_deref().map(cell).unwrap_or_default()
                );
            }
        }
    }
    s
}
