"""Workload h of scripts/bench.py: peak memory of pgcdc with one huge value (issue 13, item 4).

For each type of --huge-types (default text, bytea, jsonb) a table `bench_huge_<type>`
(id bigint primary key, v <type>) holds one row whose value is --huge-mib MiB (default 100):
hex digits of md5 (text), the bytes of md5 digests (bytea), or `{"v": <that text>}` (jsonb;
its text form is the value's size plus 9 bytes). The data is random-looking, so neither
TOAST nor zstd shrink it much. Each pgcdc process runs alone into a fresh local directory
(Parquet, default config), peak RSS by GNU time (as every run of the bench):

1. baseline, full load: `pgcdc run` with `mode = "full-load"` of `bench_huge_small` (1000
   rows of small values);
2. baseline, CDC: `pgcdc setup`, one UPDATE of all 1000 small rows, `pgcdc run --mode cdc
   --until-lsn current`;
3. per type, full load of the huge row;
4. per type, CDC: `pgcdc setup` with the row holding a small value, then one UPDATE setting
   the huge value (with the default logical_decoding_work_mem of 64MB the server streams
   that transaction: pgcdc spills it and replays it at commit), then `pgcdc run --mode cdc
   --until-lsn current`.

The bound of a huge run is 3 x the value + the baseline of its mode (issue 13: "peak memory
with one 100 MB value stays under 3x that value plus the ordinary baseline"). Every huge run
is checked: the value read back from the output by pyarrow (in a child process, so this
process stays small) has the md5 the server computes, and the row's `_op` is L (load) or U.
"""

import os
import shutil
import subprocess
import sys
import time

BOUND_FACTOR = 3
SMALL_ROWS = 1000

# One value of `mib` MiB per type: an SQL expression evaluated once, in an INSERT or UPDATE.
HEX_TEXT = "(SELECT string_agg(md5(g::text || ':' || random()::text), '') FROM generate_series(1, {n32}) g)"
VALUE_SQL = {
    "text": HEX_TEXT,
    "bytea": "(SELECT string_agg(decode(md5(g::text || ':' || random()::text), 'hex'), ''::bytea) "
             "FROM generate_series(1, {n16}) g)",
    "jsonb": "jsonb_build_object('v', " + HEX_TEXT + ")",
}

# The value of row id 1 read back from pgcdc's output (sys.argv: dir, op, type): md5 of its
# text form as PostgreSQL prints it for text and jsonb (pgcdc writes jsonb as that text, with
# a space after the colon), of its bytes for bytea.
READ_BACK = r"""
import hashlib, pathlib, sys
import pyarrow.parquet as pq
d, op, kind = sys.argv[1], sys.argv[2], sys.argv[3]
found = []
for p in sorted(pathlib.Path(d).rglob("*.parquet")):
    t = pq.read_table(p)
    for i, (o, id_) in enumerate(zip(t.column("_op").to_pylist(), t.column("id").to_pylist())):
        if o == op and id_ == 1:
            v = t.column("v")[i].as_py()
            found.append(hashlib.md5(v if isinstance(v, bytes) else v.encode()).hexdigest())
print(" ".join(found))
"""


def value_bytes(mib):
    return mib * 1048576


def measure(bench, run_measured, log, tail, BenchError):
    """Runs workload h on bench's cluster (a scripts/bench.Bench); results go to bench.huge_results."""
    c, args = bench.cluster, bench.args
    mib = args.huge_mib
    types = [t.strip() for t in args.huge_types.split(",") if t.strip()]
    unknown = [t for t in types if t not in VALUE_SQL]
    if unknown:
        raise BenchError(f"(huge) --huge-types: unknown {unknown}; any of {sorted(VALUE_SQL)}")
    root = os.path.join(bench.workdir, "huge")
    os.makedirs(root, exist_ok=True)

    def config(name, table, mode):
        d = os.path.join(root, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        out = os.path.join(d, "out")
        cfg = os.path.join(d, "pgcdc.toml")
        with open(cfg, "w") as f:
            f.write(f'[source]\nurl = "{c.url()}"\npublication = "{table}"\nslot = "pgcdc_huge_bench"\n\n'
                    f'[pipeline]\nmode = "{mode}"\n\n[[sink]]\nkind = "parquet"\nurl = "{out}"\n')
        return d, out, cfg

    def pgcdc(cfg, *a, what):
        r = subprocess.run([args.pgcdc, *a, "-c", cfg], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"(huge) {what} failed ({r.returncode}): {r.stderr[-2000:]}")

    def measured_run(d, cfg, what, *extra):
        log_path = os.path.join(d, "pgcdc.log")
        cmd = [*args.pgcdc_wrap.split(), args.pgcdc, "run", *extra, "-c", cfg]
        secs, rc, rss_kib, _cpu = run_measured(cmd, log_path, args.timeout, env=bench.pgcdc_env(d))
        if rc != 0:
            raise BenchError(f"(huge) {what} exited with {rc}:{tail(log_path)}")
        return secs, rss_kib

    def drop_slot():
        # The walsender of the run that just exited may still hold the slot for a moment.
        for _ in range(100):
            if c.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgcdc_huge_bench' AND active") == "0":
                break
            time.sleep(0.1)
        c.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'pgcdc_huge_bench'")

    def check(out, table, op, kind):
        expected = c.psql(f"SELECT md5(v{'::text' if kind != 'bytea' else ''}) FROM {table} WHERE id = 1")
        r = subprocess.run([sys.executable, "-c", READ_BACK, os.path.join(out, "public", table), op, kind],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return False, f"reading the output failed: {r.stderr[-500:]}"
        got = r.stdout.split()
        return got == [expected], f"md5 {got} in the output, {expected} in the source"

    results = {"mib": mib, "runs": []}

    def record(run, kind, value, secs, rss_kib, baseline_kib, ok, detail):
        bound = None if baseline_kib is None else BOUND_FACTOR * value / 1024 + baseline_kib
        results["runs"].append({"run": run, "kind": kind, "value": value, "secs": secs, "rss": rss_kib,
                                "bound": bound, "ok": ok, "detail": detail})
        if not ok:
            bench.failures.append(f"(huge) {run} ({kind}): output check failed: {detail}")
        log(f"(huge) {run} ({kind}): {secs:.2f} s, peak RSS {rss_kib / 1024:.0f} MiB"
            + ("" if bound is None else f", bound {bound / 1024:.0f} MiB: {'pass' if rss_kib <= bound else 'FAIL'}")
            + ("" if ok else f"; CHECK FAILED: {detail}"))

    # Baselines on a table of small rows.
    c.psql("CREATE TABLE bench_huge_small (id bigint PRIMARY KEY, v text)")
    c.psql(f"INSERT INTO bench_huge_small SELECT g, 'small value ' || g FROM generate_series(1, {SMALL_ROWS}) g")
    c.psql("CREATE PUBLICATION bench_huge_small FOR TABLE bench_huge_small")
    d, out, cfg = config("small_load", "bench_huge_small", "full-load")
    secs, base_load = measured_run(d, cfg, "baseline full load")
    record("baseline: full load", f"{SMALL_ROWS} small rows", 0, secs, base_load, None, True, "")
    d, out, cfg = config("small_cdc", "bench_huge_small", "cdc")
    pgcdc(cfg, "setup", what="pgcdc setup (baseline)")
    c.psql("UPDATE bench_huge_small SET v = v || '!'")
    secs, base_cdc = measured_run(d, cfg, "baseline CDC", "--until-lsn", "current")
    drop_slot()
    record("baseline: CDC", f"update of {SMALL_ROWS} small rows", 0, secs, base_cdc, None, True, "")
    results["baseline_load"], results["baseline_cdc"] = base_load, base_cdc

    n = {"n32": value_bytes(mib) // 32, "n16": value_bytes(mib) // 16}
    for kind in types:
        table = f"bench_huge_{kind}"
        c.psql(f"CREATE TABLE {table} (id bigint PRIMARY KEY, v {kind})")
        c.psql(f"CREATE PUBLICATION {table} FOR TABLE {table}")
        log(f"(huge) writing one {mib} MiB {kind} value ...")
        c.psql(f"INSERT INTO {table} VALUES (1, {VALUE_SQL[kind].format(**n)})")
        value = int(c.psql(f"SELECT {'octet_length(v)' if kind == 'bytea' else 'octet_length(v::text)'} FROM {table}"))
        d, out, cfg = config(f"{kind}_load", table, "full-load")
        secs, rss = measured_run(d, cfg, f"full load of a {kind} value")
        ok, detail = check(out, table, "L", kind)
        record("full load", kind, value, secs, rss, base_load, ok, detail)
        shutil.rmtree(d, ignore_errors=True)

        c.psql(f"UPDATE {table} SET v = NULL")
        d, out, cfg = config(f"{kind}_cdc", table, "cdc")
        pgcdc(cfg, "setup", what=f"pgcdc setup ({kind})")
        log(f"(huge) updating to a new {mib} MiB {kind} value ...")
        c.psql(f"UPDATE {table} SET v = {VALUE_SQL[kind].format(**n)} WHERE id = 1")
        secs, rss = measured_run(d, cfg, f"CDC of a {kind} value", "--until-lsn", "current")
        drop_slot()
        ok, detail = check(out, table, "U", kind)
        record("CDC update", kind, value, secs, rss, base_cdc, ok, detail)
        shutil.rmtree(d, ignore_errors=True)
        c.psql(f"DROP PUBLICATION {table}; DROP TABLE {table}")
    bench.huge_results = results


def report(r):
    """The markdown section of workload h and whether every run is within its bound."""
    met = True
    md = ["### huge values: peak memory with one large value", "",
          f"One row holding a {r['mib']} MiB value (`bench_huge_<type>`: id bigint primary key, v <type>), "
          "local directory, Parquet, default config; each pgcdc process alone, peak RSS by GNU time. Bound: "
          f"{BOUND_FACTOR} x the value + the baseline of the same mode (1000 small rows). The CDC update is a "
          "streamed transaction (default logical_decoding_work_mem), spilled and staged while it streams (written at its commit).", "",
          "| run | value | seconds | peak RSS MiB | bound MiB | RSS - baseline, x value | within bound | output |",
          "|---|---|---:|---:|---:|---:|---|---|"]
    for x in r["runs"]:
        rss = x["rss"] / 1024
        if x["bound"] is None:
            md.append(f"| {x['run']} | {x['kind']} | {x['secs']:.2f} | {rss:.0f} | - | - | - | - |")
            continue
        base = r["baseline_load"] if x["run"] == "full load" else r["baseline_cdc"]
        factor = (x["rss"] - base) * 1024 / x["value"] if x["value"] else 0
        passed = x["rss"] <= x["bound"]
        met &= passed and x["ok"]
        md.append(f"| {x['run']} | {x['kind']}, {x['value'] / 1048576:.1f} MiB | {x['secs']:.2f} | {rss:.0f} "
                  f"| {x['bound'] / 1024:.0f} | {factor:.2f} | {'pass' if passed else '**FAIL**'} "
                  f"| {'OK: same md5' if x['ok'] else 'MISMATCH'} |")
    md += ["", f"* every huge run within {BOUND_FACTOR} x value + baseline: **{'met' if met else 'NOT met'}**", ""]
    return md, met
