"""Prints, as JSON, the Parquet schema of each file given (as the footer says it, not as
Arrow reads it) and its rows.

    parquet_footer.py FILE...

Output: {"FILE": {"created_by": "...", "key_value_metadata": [...] | null,
"columns": [{"name", "physical_type", "logical_type", "converted_type", "repetition",
"length", "precision", "scale"}], "rows": [{...}]}}. Row values: bytes as hex, decimals
as strings, timestamps as ISO strings.
"""
import datetime
import decimal
import json
import sys

import pyarrow.parquet as pq


def value(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    return v


def logical(t):
    """The logical type without pyarrow's notes on where it came from (a file with only the
    legacy ConvertedType, as DMS writes, says is_from_converted_type=true)."""
    s = str(t)
    for note in (", is_from_converted_type=true", ", is_from_converted_type=false",
                 ", force_set_converted_type=false", ", force_set_converted_type=true"):
        s = s.replace(note, "")
    return s


def main():
    out = {}
    for path in sys.argv[1:]:
        f = pq.ParquetFile(path)
        schema = f.schema
        cols = []
        for i in range(len(schema)):
            c = schema.column(i)
            cols.append({
                "name": c.name,
                "physical_type": c.physical_type,
                "logical_type": logical(c.logical_type),
                "converted_type": c.converted_type,
                "repetition": c.max_definition_level == 0 and "REQUIRED" or "OPTIONAL",
                "length": c.length,
                # pyarrow reports 0 or -1 for columns that are no DECIMAL depending on
                # whether the file has a LogicalType or only a ConvertedType: not a footer fact.
                "precision": c.precision if c.converted_type == "DECIMAL" else None,
                "scale": c.scale if c.converted_type == "DECIMAL" else None,
            })
        md = f.metadata.metadata
        rows = [{k: value(v) for k, v in r.items()} for r in f.read().to_pylist()]
        out[path] = {
            "created_by": f.metadata.created_by,
            "key_value_metadata": None if md is None else sorted(k.decode() for k in md),
            "columns": cols,
            "rows": rows,
        }
    print(json.dumps(out))


main()
