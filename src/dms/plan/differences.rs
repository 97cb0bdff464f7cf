//! `DIFFERENCES.md`: what the planned DMS task will not do as pgcdc does, written from the
//! actual configuration and source (the tables, columns, keys and largest values read by
//! [`super::source_facts`]), so every column or table at risk is named.

use std::fmt::Write;

use super::endpoints::plugin_name;
use super::source_facts::{ColumnFacts, SourceFacts};
use super::task::LobSizing;
use crate::config::{Compression, Config, Layout};
use crate::dms::names::Names;
use crate::dms::target::Target;

/// PostgreSQL stores values larger than about 2 KB out of line (TOAST): an UPDATE that does
/// not change such a value does not send it.
const TOAST_THRESHOLD: i64 = 2000;

/// The text of DIFFERENCES.md.
pub fn differences(
    config: &Config,
    names: &Names,
    target: &Target,
    facts: &SourceFacts,
    lobs: &LobSizing,
) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(
        w,
        "# What the DMS task `{}` does differently from pgcdc\n",
        names.task
    );
    let _ = writeln!(
        w,
        "Written by `pgcdc dms plan` from the configuration and from the source as it was read ({} table(s) selected). \
         Run the plan again after schema or data changes.\n",
        facts.tables.len()
    );

    let _ = writeln!(w, "## Decoding\n");
    let _ = writeln!(
        w,
        "* DMS decodes the WAL with `{}` (slot `{}`, which must exist before the task starts), not with `pgoutput`. \
         pgcdc reads slot `{}` through publication `{}`: a publication's column lists and row filters do not apply to DMS.",
        plugin_name(facts).replace('-', "_"),
        names.slot,
        config.source.slot,
        config.source.publication
    );
    let _ = writeln!(
        w,
        "* A transaction reaches DMS only after it commits and is applied in DMS's own batches; pgcdc writes a transaction whole or not at all."
    );

    let _ = writeln!(w, "\n## LOBs and TOAST\n");
    match &lobs.largest {
        Some((t, c, l)) => {
            let _ = writeln!(w, "* Limited LOB mode, `LobMaxSize` = {} KiB, sized from the largest value: `{t}.{c}`, {l} bytes.", lobs.max_kib);
        }
        None => {
            let _ = writeln!(
                w,
                "* Limited LOB mode, `LobMaxSize` = {} KiB (no LOB column holds a value).",
                lobs.max_kib
            );
        }
    }
    if lobs.at_risk.is_empty() {
        let _ = writeln!(
            w,
            "* No column holds a value larger than `LobMaxSize` today."
        );
    } else {
        let _ = writeln!(
            w,
            "* **Columns at risk**: their largest value is larger than `LobMaxSize`, so DMS truncates it (the source endpoint sets \
             `FailTasksOnLobTruncation`, which fails the task where DMS detects it). pgcdc writes every value whole."
        );
        for r in &lobs.at_risk {
            let _ = writeln!(
                w,
                "  * `{}.{}`: largest value {} bytes > {} KiB",
                r.table, r.column, r.largest, lobs.max_kib
            );
        }
    }
    let toasted: Vec<String> = facts
        .tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| c.largest.is_some_and(|l| l > TOAST_THRESHOLD))
                .map(move |c| format!("`{}.{}`", t.qualified(), c.name))
        })
        .collect();
    if !toasted.is_empty() {
        let _ = writeln!(
            w,
            "* Values stored out of line (TOAST): an UPDATE that leaves them unchanged does not carry them. pgcdc marks them in `_unchanged` and \
             keeps the previous value; DMS looks them up in the source later (a newer value) or writes null. Columns with such values: {}.",
            toasted.join(", ")
        );
    }

    let _ = writeln!(w, "\n## Operations\n");
    let _ = writeln!(w, "* `TRUNCATE` is not captured by DMS from PostgreSQL; pgcdc writes it (a `T` row, or the table emptied).");
    match target {
        Target::S3 { .. } => {
            let _ = writeln!(
                w,
                "* No exactly-once on S3: after a DMS task restart or recovery a change can be written again. pgcdc's files hold each change exactly once."
            );
        }
        Target::Kinesis { .. } => {
            let _ = writeln!(
                w,
                "* Kinesis is at-least-once for both; pgcdc's `stream-position` (commit LSN and position) lets a consumer drop duplicates."
            );
        }
    }
    let _ = writeln!(w, "* An UPDATE that changes the key: pgcdc writes a delete of the old key and an insert; DMS writes one update.");

    let _ = writeln!(w, "\n## Tables without a primary key\n");
    let no_pk: Vec<String> = facts
        .tables
        .iter()
        .filter(|t| !t.has_primary_key)
        .map(|t| {
            format!(
                "`{}` (replica identity {})",
                t.qualified(),
                replica_identity(t.replica_identity)
            )
        })
        .collect();
    if no_pk.is_empty() {
        let _ = writeln!(w, "Every selected table has a primary key.");
    } else {
        let _ = writeln!(
            w,
            "DMS needs a primary key to apply UPDATEs and DELETEs as pgcdc does (pgcdc keys by the replica identity, else by all columns): {}.",
            no_pk.join(", ")
        );
    }

    let _ = writeln!(w, "\n## Types DMS maps differently\n");
    let native = matches!(target, Target::S3 { sink, .. } if sink.layout == Layout::Native);
    let mut any = false;
    for t in &facts.tables {
        for c in &t.columns {
            if let Some(note) = type_note(c, native) {
                any = true;
                let _ = writeln!(
                    w,
                    "* `{}.{}` ({}): {note}",
                    t.qualified(),
                    c.name,
                    c.type_text
                );
            }
        }
    }
    if !any {
        let _ = writeln!(w, "None in the selected tables.");
    }

    if let Target::S3 {
        sink,
        bucket,
        folder,
        ours,
        ..
    } = target
    {
        let _ = writeln!(w, "\n## Files\n");
        let _ = writeln!(w, "* DMS writes to `s3://{bucket}/{folder}/`, beside pgcdc's `{ours}`: the two never write the same object.");
        if sink.compression == Compression::Zstd {
            let _ = writeln!(w, "* DMS cannot write zstd: its files are uncompressed (`CompressionType` NONE); pgcdc's are zstd.");
        }
        if sink.layout == Layout::Native {
            let _ = writeln!(
                w,
                "* pgcdc's native layout (`_op`, `_lsn`, `_seq`, `_commit_ts`, `load/` and `cdc/date=…/`) is not DMS's (`Op`, `DMS_TIMESTAMP`, \
                 `LOAD…` and date folders); `pgcdc dms compare` reads both."
            );
        }
    }
    md
}

fn replica_identity(c: char) -> &'static str {
    match c {
        'f' => "FULL",
        'n' => "NOTHING",
        'i' => "INDEX",
        _ => "DEFAULT",
    }
}

/// What DMS does differently with a column of this type, or `None`. `native`: pgcdc writes
/// the native layout (typed values) rather than DMS's.
fn type_note(c: &ColumnFacts, native: bool) -> Option<String> {
    let base = c.base_type.as_str();
    let array = base.starts_with('_');
    Some(match base {
        "numeric" if c.type_text == "numeric" => {
            "DMS maps an unconstrained numeric to NUMERIC(28,6) and rounds to 6 decimals; pgcdc keeps the exact value as text.".into()
        }
        "numeric" if precision(&c.type_text).is_some_and(|p| p > 38) => {
            "precision above 38: DMS writes a string; pgcdc a 256-bit decimal".to_string() + if native { "." } else { " (a string in the DMS layout)." }
        }
        "money" => "DMS writes NUMERIC(38,4).".into(),
        "varchar" if c.type_text == "character varying" => {
            "varchar without a length: DMS cuts strings at 8000 characters unless mapped as a LOB (the plan sets MapLongVarcharAs = nclob).".into()
        }
        "uuid" if native => "DMS writes a string; pgcdc a 16-byte UUID.".into(),
        "interval" if native => "DMS writes a string; pgcdc an interval.".into(),
        "timetz" => "DMS writes a string without normalising the offset.".into(),
        "bytea" => "a LOB for DMS (limited by LobMaxSize); pgcdc writes binary of any size.".into(),
        _ if array && native => "DMS writes the array's text form as a string (a LOB); pgcdc a list.".into(),
        _ => return None,
    })
}

fn precision(type_text: &str) -> Option<u32> {
    type_text
        .strip_prefix("numeric(")?
        .split([',', ')'])
        .next()?
        .trim()
        .parse()
        .ok()
}
