#!/usr/bin/env python3
"""Every value of a Parquet table as DuckDB reads it, cast to VARCHAR; print JSON.

usage: duckdb_values.py DIR [--glob PATTERN]

Reads the *.parquet files under DIR matching PATTERN (pathlib glob relative to DIR, default
"**/*.parquet"; anything under `_pgcdc/` is ignored) with
read_parquet([files], union_by_name=true, hive_partitioning=false), ordered by (_lsn, _seq).

Each column is read on its own (`SELECT CAST(col AS VARCHAR) ... ORDER BY _lsn, _seq`), so a
value DuckDB cannot read or render fails only that column: it is reported in "errors" and
its values are null.

Output: {"files": N, "types": {col: DuckDB type}, "columns": [...],
         "values": {col: [str|null per row]}, "errors": {col: message}}.
"""
import argparse
import json
import pathlib
import sys

import duckdb


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def ident(s):
    return '"' + s.replace('"', '""') + '"'


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--glob", default="**/*.parquet")
    args = ap.parse_args()
    root = pathlib.Path(args.dir)
    files = sorted(
        str(p)
        for p in root.glob(args.glob)
        if p.is_file() and p.name.endswith(".parquet") and "_pgcdc" not in p.relative_to(root).parts
    )
    if not files:
        sys.exit(f"no parquet files under {root} matching {args.glob}")
    con = duckdb.connect()
    src = (
        "read_parquet([" + ", ".join(sql_str(f) for f in files) + "], "
        "union_by_name=true, hive_partitioning=false)"
    )
    desc = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    types = {row[0]: row[1] for row in desc}
    columns = [row[0] for row in desc]
    values, errors = {}, {}
    for c in columns:
        try:
            rows = con.execute(
                f"SELECT CAST({ident(c)} AS VARCHAR) FROM {src} ORDER BY _lsn, _seq"
            ).fetchall()
            values[c] = [r[0] for r in rows]
        except Exception as e:  # noqa: BLE001 - reported per column, the test decides
            errors[c] = f"{type(e).__name__}: {e}"
            values[c] = None
    json.dump(
        {"files": len(files), "types": types, "columns": columns, "values": values, "errors": errors},
        sys.stdout,
        allow_nan=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
