"""Workload v of scripts/bench.py: `pgcdc validate` of a large wide table, its peak RSS and
rate, beside the time to read both sides once.

1. Creates `bench_validate`, the 15-column table of issue 13 (bigint key, text, int, numeric,
   float8, text[], jsonb, timestamptz, timestamp, date, bool, uuid, bytea), fills it with
   --rows-validate rows, VACUUM ANALYZE, its own publication.
2. `pgcdc setup` and `pgcdc run --until-lsn current` (full load, then CDC) into a local dir;
   then 10% of the rows updated and 1% deleted, and a second `run --until-lsn current`, so the
   target holds load files and CDC files to materialise.
3. Reading both sides once: the source by `COPY (SELECT * FROM bench_validate) TO STDOUT`
   (text, psql into /dev/null) and the target by pyarrow (`pq.read_table` of every file, in a
   child Python process) — the floor for a comparison.
4. `pgcdc validate --format json`, alone, wall time and peak RSS by GNU time (as every run of
   the bench), with the default memory budget; checks the report is clean and counts the rows.
"""

import json
import os
import subprocess
import sys
import time

TARGET_VALIDATE_RSS_MIB = 1024

DDL = """
CREATE TABLE bench_validate (
    id bigint PRIMARY KEY, customer text, qty int, price numeric(12,2), amount numeric,
    ratio float8, note text, tags text[], payload jsonb, created timestamptz, local_ts timestamp,
    day date, flag bool, uid uuid, blob bytea
)
"""

FILL = """
INSERT INTO bench_validate SELECT g, 'customer ' || (g % 10000), g % 100, (g % 100000) / 100.0, g * 1.5,
    g / 7.0, 'note ' || md5(g::text), ARRAY['t' || (g % 10), 'u' || (g % 3)],
    jsonb_build_object('id', g, 'k', 'v' || (g % 50)),
    '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second',
    '2024-01-01'::timestamp + g * interval '1 minute', '2024-01-01'::date + (g % 1000), g % 2 = 0,
    md5(g::text)::uuid, decode(md5(g::text), 'hex')
FROM generate_series({lo}, {hi}) g
"""

READ_TARGET = r"""
import sys, time, pyarrow.parquet as pq, pathlib
t0 = time.monotonic()
rows = 0
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.parquet")):
    rows += pq.read_table(p).num_rows
print(rows, time.monotonic() - t0)
"""


def measure(bench, run_measured, log, tail, BenchError):
    """Runs workload v on bench's cluster; stores the result in bench.validate_results."""
    c, args, workdir = bench.cluster, bench.args, bench.workdir
    n = args.rows_validate
    c.psql(DDL)
    log(f"(validate) filling bench_validate with {n:,} rows ...")
    t0 = time.monotonic()
    step = 1_000_000
    for lo in range(1, n + 1, step):
        c.psql(FILL.format(lo=lo, hi=min(n, lo + step - 1)))
    c.psql("VACUUM ANALYZE bench_validate")
    c.psql("CREATE PUBLICATION bench_validate FOR TABLE bench_validate")
    heap = int(c.psql("SELECT pg_table_size('bench_validate')")) / 1048576
    log(f"(validate) filled in {time.monotonic() - t0:.1f} s, {heap:.0f} MiB")

    d = os.path.join(workdir, "validate")
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, "out")
    cfg = os.path.join(d, "pgcdc.toml")
    with open(cfg, "w") as f:
        f.write(f'[source]\nurl = "{c.url()}"\npublication = "bench_validate"\nslot = "pgcdc_validate_bench"\n\n'
                f'[[sink]]\nkind = "parquet"\nurl = "{out}"\n')

    def pgcdc(*a, what):
        r = subprocess.run([args.pgcdc, *a, "-c", cfg], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"(validate) {what} failed ({r.returncode}): {r.stderr[-2000:]}")
        return r

    pgcdc("setup", what="pgcdc setup")
    log("(validate) pgcdc run --until-lsn current (full load) ...")
    pgcdc("run", "--until-lsn", "current", what="pgcdc run (full load)")
    c.psql("UPDATE bench_validate SET qty = qty + 1, note = note || '!' WHERE id % 10 = 0")
    c.psql("DELETE FROM bench_validate WHERE id % 100 = 1")
    log("(validate) pgcdc run --until-lsn current (10% updated, 1% deleted) ...")
    pgcdc("run", "--until-lsn", "current", what="pgcdc run (changes)")
    c.psql("CHECKPOINT")
    expected = int(c.psql("SELECT count(*) FROM bench_validate"))
    files = [os.path.join(r, x) for r, _, fs in os.walk(out) for x in fs if x.endswith(".parquet")]
    target_mib = sum(os.path.getsize(p) for p in files) / 1048576

    # Reading both sides once.
    copy_cmd = [os.path.join(c.bindir, "psql"), *c.conn_args(), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "-c", "COPY (SELECT * FROM bench_validate) TO STDOUT"]
    copy_s, rc, _, _ = run_measured(copy_cmd, os.path.join(d, "copy.log"), args.timeout, stdout_devnull=True)
    if rc != 0:
        raise BenchError(f"(validate) raw COPY failed:{tail(os.path.join(d, 'copy.log'))}")
    r = subprocess.run([sys.executable, "-c", READ_TARGET, os.path.join(out, "public", "bench_validate")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"(validate) reading the target with pyarrow failed: {r.stderr[-2000:]}")
    change_rows, read_s = int(r.stdout.split()[0]), float(r.stdout.split()[1])
    log(f"(validate) reading both sides: source COPY {copy_s:.2f} s, target pyarrow {read_s:.2f} s "
        f"({change_rows:,} change rows in {len(files)} files, {target_mib:.0f} MiB)")

    # The validate run itself.
    log_path = os.path.join(d, "validate.log")
    json_path = os.path.join(d, "validate.json")
    # The report (stdout) into its own file; `exec`, so GNU time measures pgcdc itself.
    cmd = ["sh", "-c", 'exec "$0" "$@" > "$JSON_OUT"', *args.pgcdc_wrap.split(), args.pgcdc, "validate", "--format", "json", "--timeout", "600s",
           "-c", cfg]
    secs, rc, rss_kib, cpu = run_measured(cmd, log_path, args.timeout, env={**os.environ, "JSON_OUT": json_path})
    text = open(log_path, errors="replace").read()
    try:
        report = json.load(open(json_path))
    except ValueError:
        report = {}
    table = next((t for t in report.get("tables", []) if t.get("table") == "bench_validate"), {})
    parts = [line.split("partitions=")[1].split()[0] for line in text.splitlines() if "compared partition by partition" in line]
    ok = rc == 0 and report.get("clean") is True and table.get("source_rows") == expected and table.get("target_rows") == expected
    if not ok:
        bench.failures.append(f"(validate) exit {rc}, clean {report.get('clean')}, source/target rows "
                              f"{table.get('source_rows')}/{table.get('target_rows')}, expected {expected}:{tail(log_path)}")
    log(f"(validate) pgcdc validate: {secs:.2f} s, {expected / secs:,.0f} rows/s, peak RSS {rss_kib / 1024:.0f} MiB, "
        f"CPU {cpu:.2f} s, partitions {','.join(parts) or '?'}; {'OK' if ok else 'MISMATCH'}")
    bench.validate_results = {
        "rows": expected, "secs": secs, "rss": rss_kib, "cpu": cpu, "ok": ok, "partitions": ",".join(parts) or "?",
        "copy_s": copy_s, "read_s": read_s, "change_rows": change_rows, "files": len(files),
        "target_mib": target_mib, "heap_mib": heap,
    }
    subprocess.run(["rm", "-rf", out])


def report(r):
    """The markdown section of workload v and whether its target is met."""
    both = r["copy_s"] + r["read_s"]
    rss = r["rss"] / 1024
    met = r["ok"] and rss <= TARGET_VALIDATE_RSS_MIB
    md = [
        "### validate: a large wide table in bounded memory", "",
        f"`bench_validate` (15 columns: the orders table of issue 13), {r['rows']:,} rows in the source "
        f"({r['heap_mib']:.0f} MiB with TOAST); the target written by `pgcdc run` (full load, then 10% of the rows "
        f"updated and 1% deleted): {r['change_rows']:,} change rows in {r['files']} files ({r['target_mib']:.0f} MiB). "
        "`pgcdc validate --format json` alone, default memory budget (`PGCDC_VALIDATE_MEMORY` unset). "
        "Reading both sides: the source by `COPY ... TO STDOUT` (text) into /dev/null, plus the target's files "
        "read by pyarrow.", "",
        "| run | wall s | rows/s | peak RSS MiB | CPU s | partitions | reading both sides s | ratio to reading both sides | check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| pgcdc validate | {r['secs']:.2f} | {r['rows'] / r['secs']:,.0f} | {rss:.0f} | {r['cpu']:.2f} | {r['partitions']} "
        f"| {both:.2f} ({r['copy_s']:.2f} + {r['read_s']:.2f}) | {both / r['secs']:.2f} | {'OK: clean' if r['ok'] else 'FAILED'} |",
        "",
        f"* peak RSS {rss:.0f} MiB {'<=' if rss <= TARGET_VALIDATE_RSS_MIB else '>'} {TARGET_VALIDATE_RSS_MIB} MiB: "
        f"**{'met' if rss <= TARGET_VALIDATE_RSS_MIB else 'NOT met'}**; report: **{'clean' if r['ok'] else 'NOT as expected'}**",
        "",
    ]
    return md, met
