//! The HTML report of `pgcdc dms compare --format html`: one self-contained page (inline
//! CSS, no script, nothing fetched) that is read at a glance: the verdict, a summary table
//! with a bar per table (matching / only in DMS / only in pgcdc / differing rows), then per
//! table the change counts, the likely reasons and the first differing rows with the
//! differing cells highlighted. Every value from the data is escaped ([`escape`]).

use std::fmt::Write;

use super::diff::{ExampleKind, TableReport};
use super::text::{changes, kind_text, verdict};
use super::Report;

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#59636e;margin:2px 0}.meta code{background:#f6f8fa;padding:1px 4px;border-radius:4px}
.verdict{display:inline-block;padding:4px 10px;border-radius:12px;font-weight:600;margin:10px 0}
.ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:flex;width:260px;height:14px;border-radius:3px;overflow:hidden;background:#eaeef2}
.bar span{display:block;height:100%}
.m{background:#2da44e}.d{background:#d4a72c}.x{background:#cf222e}.p{background:#0969da}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
td.diff{background:#fff8c5;font-weight:600}td.val{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all;max-width:380px}
.null{color:#8c959f;font-style:italic}.reason{color:#59636e;font-size:12px}
ul{margin:4px 0 4px 18px;padding:0}
";

/// `s` with `& < > " '` as entities: safe in element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn value(v: &Option<String>) -> String {
    match v {
        Some(s) => escape(s),
        None => "<span class=\"null\">NULL</span>".into(),
    }
}

/// The bar of one table: segments proportional to its row counts.
fn bar(t: &TableReport) -> String {
    let parts = [
        ("m", t.matching, "matching"),
        ("d", t.differing, "differing"),
        ("x", t.only_in_dms, "only in DMS"),
        ("p", t.only_in_pgcdc, "only in pgcdc"),
    ];
    let total: usize = parts.iter().map(|p| p.1).sum();
    let mut s = String::from("<div class=\"bar\">");
    for (class, n, what) in parts {
        if n > 0 {
            let pct = (n as f64 * 100.0 / total as f64).max(0.5);
            let _ = write!(
                s,
                "<span class=\"{class}\" style=\"width:{pct:.2}%\" title=\"{n} {what}\"></span>"
            );
        }
    }
    s.push_str("</div>");
    s
}

/// The whole report as one HTML page.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pgcdc dms compare</title><style>{STYLE}</style></head><body>\n\
         <h1>DMS and pgcdc output compared</h1>\n<p class=\"meta\">DMS: <code>{}</code></p>\n<p class=\"meta\">pgcdc: <code>{}</code> ({} layout)</p>\n",
        escape(&r.dms),
        escape(&r.pgcdc),
        escape(&r.pgcdc_layout)
    );
    let differ = r.tables.iter().filter(|t| !t.is_equal()).count();
    if r.equal {
        let _ = writeln!(
            s,
            "<div class=\"verdict ok\">Equal: {} table(s) hold the same rows</div>",
            r.tables.len()
        );
    } else {
        let _ = writeln!(
            s,
            "<div class=\"verdict bad\">Different: {differ} of {} table(s) differ</div>",
            r.tables.len()
        );
    }
    s.push_str(
        "<table><tr><th>table</th><th>DMS rows</th><th>pgcdc rows</th><th>matching</th><th>only in DMS</th><th>only in pgcdc</th><th>differing</th><th>rows</th></tr>\n",
    );
    for t in &r.tables {
        let _ = writeln!(
            s,
            "<tr><td><a href=\"#{id}\">{name}</a></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            t.dms_rows,
            t.pgcdc_rows,
            t.matching,
            t.only_in_dms,
            t.only_in_pgcdc,
            t.differing,
            bar(t),
            id = escape(&t.table),
            name = escape(&t.table)
        );
    }
    s.push_str("</table>\n<p class=\"legend\"><span class=\"m\"></span>matching<span class=\"d\"></span>differing<span class=\"x\"></span>only in DMS<span class=\"p\"></span>only in pgcdc</p>\n");
    for t in &r.tables {
        table_section(&mut s, t);
    }
    s.push_str("</body></html>\n");
    s
}

fn table_section(s: &mut String, t: &TableReport) {
    let _ = writeln!(
        s,
        "<h2 id=\"{0}\">{0}</h2>\n<p><b>{1}</b></p>",
        escape(&t.table),
        escape(&verdict(t))
    );
    let _ = writeln!(
        s,
        "<table><tr><th></th><th>files</th><th>rows</th><th>changes (L load, I insert, U update, D delete, T truncate)</th></tr>\
         <tr><th>DMS</th><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>\
         <tr><th>pgcdc</th><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr></table>",
        t.dms_files,
        t.dms_rows,
        escape(&changes(&t.dms_changes)),
        t.pgcdc_files,
        t.pgcdc_rows,
        escape(&changes(&t.pgcdc_changes))
    );
    let _ = writeln!(
        s,
        "<p class=\"meta\">key: {}</p>",
        escape(&t.key.join(", "))
    );
    if !t.differing_columns.is_empty() {
        let cols: Vec<String> = t
            .differing_columns
            .iter()
            .map(|(c, n)| format!("{} ({n})", escape(c)))
            .collect();
        let _ = writeln!(s, "<p>differing columns: {}</p>", cols.join(", "));
    }
    if !t.reasons.is_empty() {
        s.push_str("<p>likely reasons:</p><ul>");
        for (reason, n) in &t.reasons {
            let _ = write!(s, "<li>{} ({n})</li>", escape(reason));
        }
        s.push_str("</ul>\n");
    }
    if t.examples.is_empty() {
        return;
    }
    s.push_str(
        "<table><tr><th>row</th><th>key</th><th>column</th><th>DMS</th><th>pgcdc</th></tr>\n",
    );
    for e in &t.examples {
        let key = e
            .key
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), value(v)))
            .collect::<Vec<_>>()
            .join(", ");
        if e.kind != ExampleKind::Differing || e.columns.is_empty() {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"val\">{key}</td><td></td><td></td><td></td></tr>",
                kind_text(e.kind)
            );
            continue;
        }
        for (i, c) in e.columns.iter().enumerate() {
            let head = if i == 0 {
                format!(
                    "<td rowspan=\"{n}\">{}</td><td class=\"val\" rowspan=\"{n}\">{key}</td>",
                    kind_text(e.kind),
                    n = e.columns.len()
                )
            } else {
                String::new()
            };
            let reason = c
                .reason
                .as_deref()
                .map(|r| format!("<div class=\"reason\">{}</div>", escape(r)))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "<tr>{head}<td>{}{reason}</td><td class=\"val diff\">{}</td><td class=\"val diff\">{}</td></tr>",
                escape(&c.column),
                value(&c.dms),
                value(&c.pgcdc)
            );
        }
    }
    s.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_nothing_is_fetched() {
        assert_eq!(
            escape("<b a=\"1\">'&'</b>"),
            "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
        let r = Report {
            dms: "<script>".into(),
            pgcdc: "/o".into(),
            pgcdc_layout: "native".into(),
            equal: true,
            tables: vec![],
        };
        let html = render(&r);
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("<link"),
            "self-contained"
        );
    }
}
