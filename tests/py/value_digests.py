"""Prints one JSON object per row of every *.parquet under a directory (ignoring _pgcdc/):
{"_op", "id", and per other data column its md5 and length} — a compact check of values
too large to print (tests/it/huge_values.rs). Strings are hashed as UTF-8, binaries as
they are; nulls are null. Rows in (_lsn, _seq) order.

    python value_digests.py DIR
"""

import hashlib
import json
import pathlib
import sys

import pyarrow.parquet as pq

META = {"_op", "_lsn", "_seq", "_xid", "_commit_ts", "_unchanged"}
rows = []
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.parquet")):
    if "_pgcdc" in path.parts:
        continue
    table = pq.read_table(path)
    data = [c for c in table.column_names if c not in META and c != "id"]
    for i in range(table.num_rows):
        row = {"_op": table.column("_op")[i].as_py(), "id": table.column("id")[i].as_py(),
               "_lsn": table.column("_lsn")[i].as_py(), "_seq": table.column("_seq")[i].as_py()}
        for c in data:
            v = table.column(c)[i].as_py()
            if v is None:
                row[c] = None
            else:
                b = v if isinstance(v, bytes) else v.encode()
                row[c] = {"md5": hashlib.md5(b).hexdigest(), "len": len(b)}
        rows.append(row)
rows.sort(key=lambda r: (r["_lsn"], r["_seq"]))
for r in rows:
    print(json.dumps(r))
