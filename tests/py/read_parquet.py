#!/usr/bin/env python3
"""Read a pgcdc Parquet output directory with pyarrow AND DuckDB; print JSON.

usage: read_parquet.py DIR [--glob PATTERN]

Every *.parquet under DIR (recursively; PATTERN is a pathlib glob relative to DIR, default
"**/*.parquet"), except anything under a `_pgcdc/` directory, is read:
  * with pyarrow: pyarrow.parquet.ParquetFile(path).read() per file, then concat_tables;
  * with DuckDB: read_parquet([files], union_by_name=true, hive_partitioning=false).
Files are grouped per table directory: the first two path components under DIR
("schema/table"); shallower files are grouped by their directory ("." for DIR itself).

Output: {"root", "total_files", "tables": {key: {files, pyarrow_rows, duckdb_rows,
duckdb_error, pyarrow_concat_error, columns, arrow_types, fields, duckdb_types, rows}}}.
Rows are objects column -> JSON value, sorted by (_lsn, _seq) when both exist.
JSON values: bytes -> hex, Decimal -> str, date/time/datetime -> isoformat, timedelta ->
{"microseconds": total}, uuid -> dashed str, MonthDayNano ->
{"months","days","nanoseconds"}, NaN/inf -> "NaN"/"Infinity"/"-Infinity", lists -> lists,
structs -> objects, maps -> [[k, v], ...]; a value Python can't hold (timestamp beyond year
9999, time 24:00:00, ...) -> {"raw": <integer storage value>}.
"""
import argparse
import datetime
import decimal
import json
import math
import pathlib
import sys
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def to_json(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, datetime.timedelta):
        return {"microseconds": (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds}
    if isinstance(v, uuid.UUID):
        return str(v)
    if type(v).__name__ == "MonthDayNano":
        return {"months": v.months, "days": v.days, "nanoseconds": v.nanoseconds}
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if hasattr(v, "isoformat"):  # pandas Timestamp and friends
        return v.isoformat()
    return str(v)


def time_values(col):
    """Times; pyarrow's to_pylist wraps a time of a whole day (PostgreSQL's 24:00:00) to
    00:00:00 silently: such values become {"raw": <integer storage value>}."""
    t = col.type
    day = {"s": 86400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}[t.unit]
    raw = pc.cast(col, pa.int32() if pa.types.is_time32(t) else pa.int64()).to_pylist()
    return [
        None if r is None else {"raw": r} if not 0 <= r < day else to_json(v)
        for r, v in zip(raw, col.to_pylist())
    ]


def column_values(col):
    """JSON values of a column. Values Python can't hold (timestamps beyond year 9999, times
    of 24:00:00, for instance) become {"raw": <integer storage value>}, also inside lists."""
    if pa.types.is_time(col.type):
        return time_values(col)
    if (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)) and pa.types.is_time(col.type.value_type):
        return [column_values(v.values) if v.is_valid else None for v in col]
    try:
        return [to_json(x) for x in col.to_pylist()]
    except (OverflowError, ValueError):
        pass
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return [column_values(v.values) if v.is_valid else None for v in col]
    storage = col.cast(col.type.storage_type) if isinstance(col.type, pa.BaseExtensionType) else col
    if pa.types.is_date32(storage.type) or pa.types.is_time32(storage.type):
        storage = pc.cast(storage, pa.int32())  # no direct cast from these to int64
    raw = pc.cast(storage, pa.int64()).to_pylist()
    out = []
    for i, r in enumerate(raw):
        try:
            out.append(to_json(col[i].as_py()))
        except (OverflowError, ValueError):
            out.append({"raw": r})
    return out


def metadata_dict(md):
    if not md:
        return {}
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in md.items()}


def table_key(rel):
    parts = rel.parts
    if len(parts) >= 3:
        return f"{parts[0]}/{parts[1]}"
    if len(parts) == 2:
        return parts[0]
    return "."


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def read_duckdb(files):
    import duckdb

    con = duckdb.connect()
    src = (
        "read_parquet([" + ", ".join(sql_str(f) for f in files) + "], "
        "union_by_name=true, hive_partitioning=false)"
    )
    count = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
    desc = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    return count, {row[0]: row[1] for row in desc}


def read_file(path):
    """One file as a table. ParquetFile.read() drops the schema-level metadata that
    schema_arrow has (pgcdc.table, ...): put it back."""
    pf = pq.ParquetFile(path)
    return pf.read().replace_schema_metadata(pf.schema_arrow.metadata)


def read_group(root, rels):
    files = [str(root / r) for r in rels]
    tables = [read_file(f) for f in files]
    out = {
        "files": [str(r) for r in rels],
        "file_rows": [t.num_rows for t in tables],
        "pyarrow_rows": sum(t.num_rows for t in tables),
        "pyarrow_concat_error": None,
        "duckdb_rows": None,
        "duckdb_error": None,
    }
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except Exception as e:  # noqa: BLE001 - schemas that cannot be unified
        out["pyarrow_concat_error"] = f"{type(e).__name__}: {e}"
        table = None

    schema = table.schema if table is not None else tables[0].schema
    out["columns"] = schema.names
    out["arrow_types"] = {f.name: str(f.type) for f in schema}
    out["fields"] = [
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "extension": (
                f.type.extension_name if isinstance(f.type, pa.BaseExtensionType) else None
            ),
            "metadata": metadata_dict(f.metadata),
        }
        for f in schema
    ]
    out["schema_metadata"] = metadata_dict(schema.metadata)

    rows = []
    for t in ([table] if table is not None else tables):
        cols = {name: column_values(t.column(name)) for name in t.column_names}
        for i in range(t.num_rows):
            rows.append({name: vals[i] for name, vals in cols.items()})
    if "_lsn" in out["columns"] and "_seq" in out["columns"]:
        def key(r):
            lsn, seq = r.get("_lsn"), r.get("_seq")
            return (lsn is None, lsn or 0, seq is None, seq or 0)
        rows.sort(key=key)
    out["rows"] = rows

    try:
        out["duckdb_rows"], out["duckdb_types"] = read_duckdb(files)
    except Exception as e:  # noqa: BLE001 - reported, the test decides
        out["duckdb_error"] = f"{type(e).__name__}: {e}"
        out["duckdb_types"] = {}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--glob", default="**/*.parquet")
    args = ap.parse_args()
    root = pathlib.Path(args.dir)
    if not root.is_dir():
        sys.exit(f"not a directory: {root}")
    rels = sorted(
        p.relative_to(root)
        for p in root.glob(args.glob)
        if p.is_file() and p.name.endswith(".parquet")
        and "_pgcdc" not in p.relative_to(root).parts
    )
    groups = {}
    for r in rels:
        groups.setdefault(table_key(r), []).append(r)
    result = {
        "root": str(root),
        "total_files": len(rels),
        "tables": {k: read_group(root, v) for k, v in sorted(groups.items())},
    }
    json.dump(result, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
