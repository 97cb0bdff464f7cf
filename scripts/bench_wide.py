"""Workload w of scripts/bench.py: the full load of a 15-column table shaped like a real
orders table (issue 13), measured as workload f measures `bench_load`: one raw binary COPY,
--raw-parallel raw COPYs on CTID ranges, and pgcdc's full load for each --load-workers value
(local directory only), plus where pgcdc's CPU goes, by thread: the copy workers (tokio
threads: reading the COPY stream, decoding, Arrow builders) and the Parquet encoder threads
(`pgcdc-parquet`: Parquet pages, dictionaries, statistics, zstd).

    id bigint primary key, customer text, qty int, price numeric(12,2), amount numeric,
    ratio float8, note text, tags text[], payload jsonb, created timestamptz,
    local_ts timestamp, day date, flag bool, uid uuid, blob bytea
"""

import os
import time

WIDE_DDL = """
CREATE TABLE {name} (
    id bigint {key}, customer text, qty int, price numeric(12,2), amount numeric,
    ratio float8, note text, tags text[], payload jsonb, created timestamptz,
    local_ts timestamp, day date, flag bool, uid uuid, blob bytea
);
"""

WIDE_FILL = """
INSERT INTO {name}
SELECT g, 'customer ' || (g % 50000), (g % 100)::int, (g % 100000) / 100.0,
       (g * 7 % 1000003) / 1000.0, g / 7.0::float8, 'order note number ' || g || ' for delivery',
       ARRAY['tag' || (g % 10), 'group' || (g % 7), 'x'],
       jsonb_build_object('id', g, 'tag', 't' || (g % 100), 'flag', g % 2 = 0),
       '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second',
       '2024-01-01 00:00:00'::timestamp + g * interval '1 second',
       '2024-01-01'::date + (g % 1000), g % 3 = 0, md5(g::text)::uuid, decode(md5(g::text), 'hex')
FROM generate_series(1, {n}) g
"""

DESC = ("15 columns shaped like an orders table: bigint, text, int, numeric(12,2), numeric, float8, text, "
        "text[] of 3 elements, jsonb, timestamptz, timestamp, date, bool, uuid, bytea (16 bytes)")


class ThreadCpu:
    """A run_measured sampler: the server CPU sampler it wraps, plus the CPU seconds of pgcdc's
    threads by name (the process found as the child of GNU time, itself our child). A thread's
    last sample counts, so a thread that ends loses at most one sampling interval (10 ms)."""

    def __init__(self, inner, exclude=None):
        self.inner = inner
        self.exclude = str(exclude)  # the `pgcdc cluster` process, also our child
        self.pid = None
        self.ticks = {}  # (tid) -> (name, ticks)
        self.hz = os.sysconf("SC_CLK_TCK")

    def find(self):
        try:
            for kid in open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split():
                for grand in open(f"/proc/{kid}/task/{kid}/children").read().split() + [kid]:
                    if grand != self.exclude and open(f"/proc/{grand}/comm").read().startswith("pgcdc"):
                        return grand
        except OSError:
            pass
        return None

    def sample(self):
        self.inner.sample()
        if self.pid is None:
            self.pid = self.find()
            if self.pid is None:
                return
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                st = open(f"/proc/{self.pid}/task/{tid}/stat").read()
            except OSError:
                continue
            name = st[st.index("(") + 1:st.rindex(")")]
            fields = st[st.rindex(")") + 2:].split()
            self.ticks[tid] = (name, int(fields[11]) + int(fields[12]))

    def seconds(self):
        """CPU seconds by thread kind: workers (tokio-rt-worker), encoders (pgcdc-parquet), other."""
        out = {"workers": 0.0, "encoders": 0.0, "other": 0.0}
        for name, t in self.ticks.values():
            kind = "workers" if name.startswith("tokio") else "encoders" if name.startswith("pgcdc-parquet") else "other"
            out[kind] += t / self.hz
        return out


def create(bench, n):
    c = bench.cluster
    c.psql(WIDE_DDL.format(name="bench_wide", key="PRIMARY KEY"))
    bench_log(f"(wide) filling bench_wide with {n:,} rows ...")
    t0 = time.monotonic()
    c.psql(WIDE_FILL.format(name="bench_wide", n=n))
    c.psql("VACUUM ANALYZE bench_wide")
    c.psql("CHECKPOINT")
    c.psql("CREATE PUBLICATION bench_wide FOR TABLE bench_wide")
    pages, heap, total = c.psql(
        "SELECT relpages, pg_relation_size('bench_wide'), pg_total_relation_size('bench_wide') "
        "FROM pg_class WHERE relname = 'bench_wide'").split("|")
    bench_log(f"(wide) filled in {time.monotonic() - t0:.1f} s: heap {int(heap) / 1048576:.0f} MiB")
    return int(pages), int(heap) / 1048576, int(total) / 1048576


def bench_log(msg):
    print(f"bench: {msg}", file=__import__("sys").stderr, flush=True)


def full_load(bench):
    """Runs workload w on bench (a scripts/bench.Bench); the results go to bench.wide_results,
    bench_load's (workload f) are kept."""
    n = bench.args.rows_wide
    pages, heap, total = create(bench, n)
    saved = (bench.lt, getattr(bench, "load_results", None), getattr(bench, "load_pages", None), bench.load_rows)
    bench.lt, bench.load_pages = "bench_wide", pages
    try:
        bench.full_load(rows=n, s3=False)
        lr = bench.load_results
        lr.update({"table": "bench_wide", "desc": DESC, "heap_mib": heap, "total_mib": total,
                   "title": " on the 15-column wide table"})
        bench.wide_results = lr
    finally:
        bench.lt, bench.load_results, bench.load_pages, bench.load_rows = saved
        if bench.load_results is None:
            del bench.load_results


def report(lr, med):
    """Markdown lines: where pgcdc's CPU goes on the wide table, per --load-workers value."""
    md = ["Where the time goes on the wide table (medians; CPU seconds; server = the backends serving the "
          "run, client = the pgcdc process: its copy workers read the COPY stream, decode and fill the Arrow "
          "builders, its encoder threads write Parquet):", "",
          "| run | wall s | server CPU s | client CPU s (psql or pgcdc) | copy workers (decode) s | Parquet encoders s | other s |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, w in lr["kinds"]:
        ms = lr["measured"][(kind, w)]
        row = f"| {kind} {'x' + str(w) if kind == 'raw' else 'load_workers=' + str(w)} | {med([m['secs'] for m in ms]):.2f} " \
              f"| {med([m['ws'] for m in ms]):.2f} | {med([m['cpu'] for m in ms]):.2f} | "
        if kind == "pgcdc":
            th = [m["threads"] for m in ms]
            row += " | ".join(f"{med([t[k] for t in th]):.2f}" for k in ("workers", "encoders", "other")) + " |"
        else:
            row += "- | - | - |"
        md.append(row)
    md.append("")
    return md
