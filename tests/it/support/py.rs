//! Independent readers in Python: pyarrow and DuckDB read what pgcdc wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::util::repo_root;

/// The Python interpreter with pyarrow, duckdb, boto3, moto, aws_kinesis_agg: `$PGCDC_PYTHON`,
/// else `<repo>/.venv/bin/python`. Panics (never skips) when it is missing.
pub fn python() -> PathBuf {
    let p = match std::env::var_os("PGCDC_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".venv/bin/python"),
    };
    if !p.exists() {
        panic!(
            "Python for the test readers not found at {}: run `make test` (it creates .venv with \
             pyarrow, duckdb, moto), or point PGCDC_PYTHON at an interpreter that has them",
            p.display()
        );
    }
    p
}

/// Path of a script in `tests/py/`.
pub fn py_script(name: &str) -> PathBuf {
    repo_root().join("tests/py").join(name)
}

/// Runs `tests/py/<script> args...` with [`python()`]; returns stdout, panics with stderr.
pub fn run_python_script(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let mut cmd = Command::new(python());
    cmd.arg(py_script(script)).args(args);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{script} failed ({}): {cmd:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    String::from_utf8(out.stdout).expect("python output is UTF-8")
}

/// Reads every `*.parquet` under `dir` (recursively, ignoring `_pgcdc/`) with pyarrow and
/// DuckDB. The result:
///
/// ```json
/// { "root": "...", "total_files": 3,
///   "tables": { "public/t": {
///       "files": ["public/t/load/...parquet"],
///       "pyarrow_rows": 10, "duckdb_rows": 10, "duckdb_error": null,
///       "columns": ["id", "v", "_op", "_lsn", ...],
///       "arrow_types": {"id": "int32", ...},
///       "fields": [{"name": "id", "type": "int32", "nullable": false, "metadata": {...}}],
///       "duckdb_types": {"id": "INTEGER", ...},
///       "rows": [{"id": 1, "v": "a", "_op": "L", ...}] } } }
/// ```
///
/// Table keys are the first two path components under `dir` (`schema/table`); files less deep
/// are keyed by their directory (`.` for `dir` itself). Rows are sorted by `(_lsn, _seq)` when
/// both columns exist, else kept in file order. Values: bytes as lower-case hex, decimals as
/// strings, dates/times/timestamps as ISO strings, uuid as the dashed string, lists as lists,
/// NaN/±Infinity floats as the strings "NaN"/"Infinity"/"-Infinity", values Python cannot hold
/// (timestamps beyond year 9999, ...) as `{"raw": <integer storage value>}`. DuckDB problems
/// are reported in `duckdb_error` (and `duckdb_rows` is null), not raised: assert on them.
pub fn read_parquet_with_python(dir: &Path) -> serde_json::Value {
    read_parquet_glob_with_python(dir, "**/*.parquet")
}

/// Like [`read_parquet_with_python`] for the files under `dir` matching `glob` (pathlib glob
/// relative to `dir`, e.g. `public/t/cdc/**/*.parquet`).
pub fn read_parquet_glob_with_python(dir: &Path, glob: &str) -> serde_json::Value {
    let out = run_python_script(
        "read_parquet.py",
        &[dir.as_os_str(), "--glob".as_ref(), glob.as_ref()],
    );
    serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "read_parquet.py printed invalid JSON ({e}):\n{}",
            truncate(&out, 4000)
        )
    })
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
