#!/usr/bin/env python3
"""Read a pgcdc target on S3 through pyarrow's S3FileSystem and copy it to a local directory.

usage: s3_fetch.py ENDPOINT BUCKET/PREFIX DEST

Every object under BUCKET/PREFIX is listed and read with pyarrow.fs.S3FileSystem
(endpoint_override=ENDPOINT, credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
region AWS_REGION) and written under DEST with the same relative path; each *.parquet is also
opened with pyarrow.parquet straight from S3 (proving S3 readers can read it).
Output: {"files": [relative paths], "parquet_rows": total rows of the Parquet files}.
"""
import json
import os
import pathlib
import sys
import urllib.parse

import pyarrow.fs as pafs
import pyarrow.parquet as pq


def main():
    endpoint, root, dest = sys.argv[1], sys.argv[2].rstrip("/"), pathlib.Path(sys.argv[3])
    u = urllib.parse.urlparse(endpoint)
    fs = pafs.S3FileSystem(
        endpoint_override=u.netloc,
        scheme=u.scheme or "http",
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_REGION", "us-east-1"),
    )
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    files, rows = [], 0
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(root) + 1:]
        with fs.open_input_file(info.path) as f:
            data = f.read()
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        files.append(rel)
        if rel.endswith(".parquet"):
            rows += pq.read_table(info.path, filesystem=fs).num_rows
    print(json.dumps({"files": sorted(files), "parquet_rows": rows}))


if __name__ == "__main__":
    main()
