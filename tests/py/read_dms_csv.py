#!/usr/bin/env python3
"""Read DMS-layout CSV files (`.csv`, or gzipped `.csv.gz`) with two independent readers.

usage: read_dms_csv.py [--null TEXT] FILE...

Every record of each file is read twice:
* "pyarrow": pyarrow.csv with every column a string, line breaks allowed inside quoted values,
  an UNQUOTED field equal to TEXT (default: empty) read as null and a quoted one as a string,
  so NULL and the empty string differ;
* "csv_module": Python's csv module (RFC 4180 rules; it cannot tell NULL from "").
A header line, if any, is an ordinary first record here.
Output: {FILE: {"pyarrow": [[field or null, ...], ...], "csv_module": [[...], ...],
"gzip": bool}}.
"""
import csv
import gzip
import json
import sys

import pyarrow as pa
import pyarrow.csv as pc


def main():
    args = sys.argv[1:]
    null = ""
    if args[:1] == ["--null"]:
        null, args = args[1], args[2:]
    out = {}
    for path in args:
        gz = path.endswith(".gz")
        with open(path, "rb") as f:
            magic = f.read(2)
        opener = (lambda: gzip.open(path, "rt", encoding="utf-8", newline="")) if gz else (
            lambda: open(path, encoding="utf-8", newline=""))
        with opener() as f:
            records = list(csv.reader(f))
        width = max((len(r) for r in records), default=0)
        names = [f"c{i}" for i in range(width)]
        rows = []
        if records:
            table = pc.read_csv(
                path,
                read_options=pc.ReadOptions(column_names=names),
                parse_options=pc.ParseOptions(newlines_in_values=True),
                convert_options=pc.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    null_values=[null],
                ),
            )
            rows = [[r[n] for n in names] for r in table.to_pylist()]
        out[path] = {"pyarrow": rows, "csv_module": records, "gzip": magic == b"\x1f\x8b"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
