//! The text report of `pgcdc dms compare` (the default `--format text`).

use std::fmt::Write;

use super::diff::{Example, ExampleKind, TableReport};
use super::materialise::Changes;
use super::Report;

/// `L/I/U/D[/T]` counts of one side.
pub fn changes(c: &Changes) -> String {
    let mut s = format!("L {} I {} U {} D {}", c.load, c.insert, c.update, c.delete);
    if c.truncate > 0 {
        let _ = write!(s, " T {}", c.truncate);
    }
    s
}

/// `id=5, code=NULL`.
pub fn key_text(e: &Example) -> String {
    e.key
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("NULL")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an example kind is called in the texts.
pub fn kind_text(k: ExampleKind) -> &'static str {
    match k {
        ExampleKind::OnlyInDms => "only in DMS",
        ExampleKind::OnlyInPgcdc => "only in pgcdc",
        ExampleKind::Differing => "differs",
    }
}

/// The one-line verdict of a table.
pub fn verdict(t: &TableReport) -> String {
    if t.is_equal() {
        format!("equal ({} rows)", t.matching)
    } else {
        format!(
            "DIFFERENT: {} matching, {} only in DMS, {} only in pgcdc, {} differing",
            t.matching, t.only_in_dms, t.only_in_pgcdc, t.differing
        )
    }
}

/// The whole report as text.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "DMS:   {}\npgcdc: {} ({} layout)\n",
        r.dms, r.pgcdc, r.pgcdc_layout
    );
    for t in &r.tables {
        let _ = writeln!(s, "{}: {}", t.table, verdict(t));
        let _ = writeln!(
            s,
            "  rows      DMS {} / pgcdc {} (key: {})",
            t.dms_rows,
            t.pgcdc_rows,
            t.key.join(", ")
        );
        let _ = writeln!(
            s,
            "  changes   DMS {} / pgcdc {}",
            changes(&t.dms_changes),
            changes(&t.pgcdc_changes)
        );
        let _ = writeln!(
            s,
            "  files     DMS {} / pgcdc {}",
            t.dms_files, t.pgcdc_files
        );
        if !t.differing_columns.is_empty() {
            let cols: Vec<String> = t
                .differing_columns
                .iter()
                .map(|(c, n)| format!("{c} ({n})"))
                .collect();
            let _ = writeln!(s, "  differing columns: {}", cols.join(", "));
        }
        for (reason, n) in &t.reasons {
            let _ = writeln!(s, "  likely reason ({n}): {reason}");
        }
        for e in &t.examples {
            let _ = writeln!(s, "  {}: {}", kind_text(e.kind), key_text(e));
            for c in &e.columns {
                let v = |v: &Option<String>| {
                    v.as_deref()
                        .map_or("NULL".to_string(), |x| format!("{x:?}"))
                };
                let _ = write!(
                    s,
                    "      {}: DMS {} / pgcdc {}",
                    c.column,
                    v(&c.dms),
                    v(&c.pgcdc)
                );
                match &c.reason {
                    Some(reason) => {
                        let _ = writeln!(s, "  ({reason})");
                    }
                    None => s.push('\n'),
                }
            }
        }
    }
    let n = r.tables.iter().filter(|t| !t.is_equal()).count();
    if r.equal {
        let _ = writeln!(
            s,
            "\nequal: {} table(s) hold the same rows in DMS's and pgcdc's output",
            r.tables.len()
        );
    } else {
        let _ = writeln!(s, "\nDIFFERENT: {n} of {} table(s) differ", r.tables.len());
    }
    s
}
