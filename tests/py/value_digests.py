"""Prints one JSON object per row of every *.parquet under a directory (ignoring _pgcdc/):
{"_op", "id", and per other data column its md5 and length} — a compact check of values
too large to print (tests/it/huge_values.rs). Strings are hashed as UTF-8, binaries as
they are; nulls are null. Rows in (_lsn, _seq) order. With --duckdb, every file is also
read by DuckDB, and the script fails unless DuckDB sees the same values.

    python value_digests.py DIR [--duckdb]
"""

import hashlib
import json
import pathlib
import sys

import pyarrow.parquet as pq

META = {"_op", "_lsn", "_seq", "_xid", "_commit_ts", "_unchanged"}


def digest(v):
    if v is None:
        return None
    b = v if isinstance(v, bytes) else v.encode()
    return {"md5": hashlib.md5(b).hexdigest(), "len": len(b)}


rows = []
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.parquet")):
    if "_pgcdc" in path.parts:
        continue
    table = pq.read_table(path)
    data = [c for c in table.column_names if c not in META and c != "id"]
    file_rows = []
    for i in range(table.num_rows):
        row = {"_op": table.column("_op")[i].as_py(), "id": table.column("id")[i].as_py(),
               "_lsn": table.column("_lsn")[i].as_py(), "_seq": table.column("_seq")[i].as_py()}
        for c in data:
            row[c] = digest(table.column(c)[i].as_py())
        file_rows.append(row)
    if "--duckdb" in sys.argv[2:]:
        import duckdb
        cols = ", ".join(f'"{c}"' for c in ["_op", "id", "_lsn", "_seq", *data])
        seen = duckdb.connect().execute(f"SELECT {cols} FROM read_parquet(?)", [str(path)]).fetchall()
        seen = [{"_op": r[0], "id": r[1], "_lsn": r[2], "_seq": r[3],
                 **{c: digest(v) for c, v in zip(data, r[4:])}} for r in seen]
        if seen != file_rows:
            sys.exit(f"DuckDB reads {path} differently from pyarrow: {seen} != {file_rows}")
    rows.extend(file_rows)
rows.sort(key=lambda r: (r["_lsn"], r["_seq"]))
for r in rows:
    print(json.dumps(r))
