#!/usr/bin/env python3
"""pgcdc vs pg_recvlogical: catch-up throughput on the same WAL, and pgcdc's full load vs a raw
binary COPY of the same table, on a throwaway cluster; and each pgcdc run into a local S3
endpoint beside the same run into a local directory.

Run through `make bench` (which builds the release binary first), or directly:

    .venv/bin/python scripts/bench.py --pgcdc $CARGO_TARGET_DIR/release/pgcdc

What it does, in one run:

1. starts a throwaway cluster through pgcdc's own harness (`pgcdc cluster`, as the demo and
   the tests: wal_level=logical, fsync=off, plus synchronous_commit=on, max_wal_size=4GB,
   everything else default, notably logical_decoding_work_mem=64MB); as root the server runs
   as `postgres`.
2. Creates `bench_a` and `bench_b` (id bigint, name text, amount numeric(12,2),
   ts timestamptz, doc jsonb), pre-fills `bench_b`, and one publication over both.
3. For each workload: creates the slots (one per consumer run: `pgcdc setup` for pgcdc,
   `pg_recvlogical --create-slot` for pg_recvlogical), runs the workload, takes
   `pg_current_wal_insert_lsn()` as the end position, then runs each consumer alone, one
   after the other (--repeat times each, alternating who goes first; medians reported),
   catching up on the already-written WAL up to that position (`pg_recvlogical --endpos`,
   `pgcdc run --until-lsn`). One small "sentinel" transaction on a third published table
   follows the end position, as on a live source, so both stop as soon as they reach it
   (--no-sentinel: an idle source after the end). Wall time is process start to exit; peak
   RSS and CPU time of the process come from GNU time (else wait4() and /proc VmHWM); the
   CPU time of the server's walsender is sampled from /proc.
     (a) one transaction inserting --rows-a rows (default 1M) into bench_a;
     (b) --seconds-b seconds (default 20) of pgbench with a custom script of small
         insert/update/delete transactions on bench_b. The row changes it produced are
         counted from pg_stat_user_tables (n_tup_ins/upd/del deltas), independent of
         either consumer.
     (c), (d): the same two on the 15-column wide table of issue 13 (scripts/bench_wide_cdc.py):
         one transaction inserting --rows-c rows into bench_wc; --seconds-d seconds of pgbench
         on bench_wd.
   pg_recvlogical runs once per --recv-protos variant (default: proto_version=1, and the newest
   the server has with streaming=on); pgcdc is compared with the fastest of them.
4. Checks pgcdc's output: Parquet row count (and I/U/D split) equals the expected count, and
   no (_lsn, _seq) pair appears twice.
5. Full load (workload f): creates `bench_load` with --rows-load rows (default 5M) of the same
   shape and values as (a), VACUUM ANALYZE, its own publication. Then, --repeat times each
   (order alternating): the raw baseline `psql -c "COPY (SELECT * FROM bench_load) TO STDOUT
   (FORMAT binary)"` into /dev/null; --raw-parallel psql processes at once, one CTID range
   each (a parallel raw baseline); `pgcdc run -c cfg` with `mode = "full-load"` for each
   --load-workers value, a fresh output dir each run. Wall time, client CPU and peak RSS
   (GNU time), CPU of the server backends serving the run (/proc). pgcdc's output is checked:
   row count from the Parquet metadata, ids exactly 1..N, at least 2 load chunk files, and no
   replication slot left behind.
5b. Wide full load (workload w, scripts/bench_wide.py): the same runs as (f), local directory
   only, on `bench_wide` (--rows-wide rows, default 2M, of 15 columns shaped like an orders
   table), plus pgcdc's CPU by thread kind (copy workers vs Parquet encoders).
6. S3 (--targets local,s3, the default; `--targets local` skips it): a moto_server from the
   venv (scripts/bench_s3.py) on 127.0.0.1, one bucket. Every pgcdc run of (a), (b) and the
   full load (each --load-workers value) is made once more, in the same rotation, with the
   sink `url = "s3://pgcdc-bench/<run>/"` and `[aws] endpoint_url` (credentials `testing` in
   the environment, staging under the bench's temp dir). For each S3 run: wall time, pgcdc's
   CPU (GNU time), the CPU moto_server used meanwhile (utime+stime from /proc/PID/stat before
   and after), the server's CPU, and its requests by kind, counted exactly from
   moto_server's request log between pgcdc's start and exit (one line per request; nothing
   else talks to the endpoint then). The output is read back through pyarrow's S3 filesystem
   and checked as the local output is (same functions, another pyarrow filesystem), then the
   prefix is emptied. The S3 table: rows/s into S3 beside rows/s into the local dir, their
   ratio, PutObject + UploadPart requests per million rows, and where the time goes (pgcdc
   CPU local / S3, moto_server CPU, server CPU, the wall-time difference).
7. Kinesis (--targets ...,kinesis, the default): a null Kinesis endpoint (scripts/bench_kinesis.py,
   counts what it receives, accepts everything at once). Every pgcdc run of (a) and (b) is made
   once more per --kinesis-aggregations value (none, kpl), in the same rotation, with the same
   local Parquet sink plus a Kinesis sink into that endpoint. The Kinesis table: rows/s against
   Parquet alone, PutRecords calls and their fill (entries and bytes per call against the
   500 / 5 MiB limits), Kinesis records per 10k row changes, and a check that one data user
   record arrived per row change.
8. Validate (workload v, scripts/bench_validate.py): `pgcdc validate` of a --rows-validate-row
   15-column table after a full load and CDC changes: wall time, rows/s, peak RSS (GNU time),
   beside reading both sides once (raw COPY of the source, pyarrow read of the target).
8b. Huge values (workload h, scripts/bench_huge.py): peak RSS of pgcdc's full load and CDC of one
   --huge-mib MiB value (text, bytea, jsonb), each against 3 x the value + a small-row baseline.
9. Prints the tables and writes them, with the machine description, between the markers of
   bench/RESULTS.md (the rest of that file is kept).

The cluster, moto_server and every temp dir are removed at exit, also on failure or Ctrl-C
(moto_server also dies with this process if it is killed: PR_SET_PDEATHSIG).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no scripts/__pycache__ from the import below
import bench_kinesis  # noqa: E402
import bench_wide  # noqa: E402
import bench_wide_cdc  # noqa: E402
import bench_s3  # noqa: E402
import bench_validate  # noqa: E402
import bench_huge  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
BEGIN_MARK = "<!-- bench:begin (written by scripts/bench.py; edits inside are overwritten) -->"
END_MARK = "<!-- bench:end -->"

TARGET_RATIO = 0.9
# The wide-table CDC workloads (c, d): at least the fastest pg_recvlogical (issue 13).
TARGET_RATIO_WIDE = 1.0
TARGET_RSS_MIB = 256
# Full load: pgcdc writing Parquet vs one raw `COPY ... TO STDOUT (FORMAT binary)` into /dev/null.
TARGET_LOAD_RATIO = 0.9

# Server processes that work for a client: backends (user `postgres`, database `bench`) and
# walsenders. Their CPU is sampled while a full-load run goes on.
SERVER_BACKENDS = (b"postgres: postgres bench", b"postgres: walsender")

TABLE_DDL = """
CREATE TABLE {name} (
    id     bigint PRIMARY KEY {ident},
    name   text,
    amount numeric(12,2),
    ts     timestamptz,
    doc    jsonb
);
"""

# Small transactions: an insert and an update of an existing row in one transaction, a
# delete of an existing row in another. Each transaction holds at most one lock on a
# pre-existing row, so concurrent clients cannot deadlock.
PGBENCH_SCRIPT = r"""
\set u random(1, :maxid)
\set d random(1, :maxid)
BEGIN;
INSERT INTO bench_b (name, amount, ts, doc)
    VALUES ('pgbench ' || :client_id, random() * 1000, now(),
            jsonb_build_object('client', :client_id, 'u', :u, 'tags', jsonb_build_array('x', 'y')));
UPDATE bench_b SET amount = amount + 1, ts = now(), doc = doc || jsonb_build_object('touched', :u) WHERE id = :u;
END;
DELETE FROM bench_b WHERE id = :d;
"""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Cluster:
    """The throwaway cluster of pgcdc's own harness (`pgcdc cluster`, src/demo/cluster.rs: the
    one place that runs initdb and pg_ctl, as the demo and the tests do), held while our pipe
    to its stdin is open; stop() closes it, which stops the server and removes its directory."""

    # On top of the harness's base settings (wal_level=logical, fsync=off, ...): commits wait
    # for the WAL flush as on a real server, and checkpoints do not interrupt the runs.
    CONF = ["synchronous_commit = on", "max_wal_size = 4GB"]

    def __init__(self, pgcdc):
        self.pgcdc = pgcdc
        self.proc = None
        self.port = None
        self.bindir = None
        self.pid = None

    def start(self):
        args = [self.pgcdc, "cluster"]
        for line in self.CONF:
            args += ["--conf", line]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            self.proc.wait()
            raise BenchError(f"PostgreSQL did not start (pgcdc cluster): {err.strip()}")
        desc = json.loads(line)
        self.port, self.bindir, self.pid = desc["port"], desc["bindir"], desc["postmaster_pid"]

    def postmaster_pid(self):
        return self.pid

    def stop(self):
        if self.proc is not None and self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def conn_args(self, db="bench"):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db]

    def url(self, db="bench"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}?sslmode=disable"

    def psql(self, sql, db="bench"):
        """Runs SQL (single transaction per statement), returns unaligned tuples-only output."""
        r = subprocess.run(
            [os.path.join(self.bindir, "psql"), *self.conn_args(db), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
        if r.returncode != 0:
            raise BenchError(f"psql failed: {r.stderr.strip()}\nSQL: {sql[:500]}")
        return r.stdout.strip()


CURRENT = {"proc": None}


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_measured(cmd, log_path, timeout, sampler=None, stdout_devnull=False, env=None):
    """Runs cmd alone (in env, default ours); returns (seconds, exit code, peak RSS KiB, CPU seconds).

    Output goes to log_path (stderr only when stdout_devnull: stdout then goes to /dev/null).

    Peak RSS: Linux carries a process's ru_maxrss over fork and exec, so wait4() on a child
    forked from this (large) Python process reports at least Python's own RSS. GNU time, a
    small process, forks the command itself and reports its exact maxrss; without it, the
    command's VmHWM (reset by exec) is sampled from /proc while it runs.
    """
    rss_file = log_path + ".time"
    full = [GNU_TIME, "-q", "-o", rss_file, "-f", "%M %U %S %x", *cmd] if GNU_TIME else cmd
    hwm = 0
    with open(log_path, "wb") as logf:
        t0 = time.monotonic()
        # Its own process group, so a timeout or Ctrl-C can stop GNU time and the command.
        p = subprocess.Popen(full, stdout=subprocess.DEVNULL if stdout_devnull else logf,
                             stderr=logf if stdout_devnull else subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
        CURRENT["proc"] = p
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid != 0:
                break
            if sampler is not None:
                sampler.sample()
            if GNU_TIME is None:
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                hwm = max(hwm, int(line.split()[1]))
                except (OSError, ValueError):
                    pass
            if time.monotonic() > deadline:
                kill_group(p)
                p.returncode = -9
                CURRENT["proc"] = None
                raise BenchError(f"{os.path.basename(cmd[0])} did not finish within {timeout}s (log: {tail(log_path)})")
            time.sleep(0.01)
        secs = time.monotonic() - t0
        if sampler is not None:
            sampler.sample()
        p.returncode = os.waitstatus_to_exitcode(status)
        CURRENT["proc"] = None
    cpu = ru.ru_utime + ru.ru_stime
    rc = p.returncode
    if GNU_TIME:
        try:
            fields = open(rss_file).read().split()
            hwm, cpu, rc = int(fields[-4]), float(fields[-3]) + float(fields[-2]), int(fields[-1])
        except (OSError, ValueError, IndexError):
            raise BenchError(f"could not read GNU time's output for {cmd[0]} (exit {rc}):{tail(log_path)}")
    return secs, rc, hwm, cpu


class WalsenderCpu:
    """CPU seconds of the walsender(s) the postmaster starts while a consumer runs: the
    server's share of the work (reading WAL, decoding, pgoutput), the same for both tools.
    Sampled from /proc (children of the postmaster, cmdline 'postgres: walsender ...').
    With prefixes: the children whose cmdline starts with any of them (e.g. the client
    backends 'postgres: postgres bench ...' that serve a COPY)."""

    def __init__(self, postmaster_pid, prefixes=(b"postgres: walsender",)):
        self.pm = postmaster_pid
        self.prefixes = tuple(prefixes)
        self.ticks = {}
        self.hz = os.sysconf("SC_CLK_TCK")

    def sample(self):
        try:
            kids = open(f"/proc/{self.pm}/task/{self.pm}/children").read().split()
        except OSError:
            return
        for pid in kids:
            try:
                if pid not in self.ticks:
                    if not open(f"/proc/{pid}/cmdline", "rb").read().startswith(self.prefixes):
                        continue
                st = open(f"/proc/{pid}/stat").read()
                fields = st[st.rindex(")") + 2:].split()
                self.ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, ValueError):
                pass

    def seconds(self):
        return sum(self.ticks.values()) / self.hz


def kill_group(p):
    """Kills the process group of p (GNU time and the measured command) and reaps p."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.waitpid(p.pid, 0)
    except ChildProcessError:
        pass


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "\n" + "".join(f.readlines()[-n:])
    except OSError:
        return ""


def pgcdc_startup(log_path, wall0):
    """Seconds from process start to pgcdc's 'replicating' log line (best effort)."""
    try:
        text = re.sub(r"\x1b\[[0-9;]*m", "", open(log_path, errors="replace").read())
    except OSError:
        return None
    m = re.search(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z\s.*\breplicating\b", text, re.M)
    if not m:
        return None
    ts = m.group(1)
    if "." in ts:
        ts = ts[:26]
    at = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f" if "." in ts else "%Y-%m-%dT%H:%M:%S")
    return at.replace(tzinfo=datetime.timezone.utc).timestamp() - wall0


def lsn_int(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def recv_variants(spec, newest):
    """pg_recvlogical variants from --recv-protos ("1,max"): "v1" (no streaming) and
    "v{newest}-streaming" (proto 2+ streams large transactions while they run)."""
    out = []
    for p in spec.split(","):
        p = p.strip()
        n = newest if p == "max" else int(p)
        v = f"v{n}-streaming" if n >= 2 else f"v{n}"
        if v not in out:
            out.append(v)
    return out


def recv_options(variant):
    """(proto_version, streaming) of a variant named by recv_variants."""
    return int(variant[1:].split("-")[0]), variant.endswith("-streaming")


def recv_describe(variant):
    proto, streaming = recv_options(variant)
    return f"{variant}: proto_version={proto}{', streaming=on' if streaming else ''}"


def pgoutput_proto(version_num):
    major = version_num // 10000
    if major >= 16:
        return 4
    if major == 15:
        return 3
    if major == 14:
        return 2
    return 1


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.cluster = Cluster(args.pgcdc)
        self.results = []
        # The table of the full-load runs (bench_wide for workload w) and its row count.
        self.lt = "bench_load"
        self.load_rows = args.rows_load
        self.failures = []
        # The local S3 endpoint, started by run() when --targets has s3.
        self.moto = None
        self.s3 = "s3" in args.targets
        # The null Kinesis endpoint, started by run() when --targets has kinesis.
        self.null_kinesis = None
        self.kinesis = "kinesis" in args.targets

    # --- consumers -------------------------------------------------------------------------

    def pgcdc_env(self, out):
        """The environment of a pgcdc process writing to out (S3: the endpoint's credentials;
        with a Kinesis sink, credentials for signing)."""
        if out.startswith("s3://"):
            return self.moto.env(self.workdir)
        return bench_kinesis.env() if self.kinesis else None

    def pgcdc_config(self, name, slot, s3=False, kinesis=None):
        """A CDC config writing to workdir/name/out, or with s3 to its own prefix on the endpoint;
        kinesis (an aggregation): plus a Kinesis sink into the null endpoint."""
        d = os.path.join(self.workdir, name)
        os.makedirs(d, exist_ok=True)
        out = bench_s3.url(name) if s3 else os.path.join(d, "out")
        cfg = os.path.join(d, "pgcdc.toml")
        with open(cfg, "w") as f:
            f.write(
                f'[source]\nurl = "{self.cluster.url()}"\npublication = "bench"\nslot = "{slot}"\n\n'
                f'[pipeline]\nmode = "cdc"\n\n'
                + (bench_s3.aws_toml(self.moto.endpoint) if s3 else "")
                + (bench_kinesis.sink_toml(self.null_kinesis.endpoint, kinesis) if kinesis else "") +
                f'[[sink]]\nkind = "parquet"\nurl = "{out}"\n'
                f'flush_interval = "{self.args.flush_interval}"\nmax_file_size = "{self.args.max_file_size}"\n'
            )
        return cfg, out

    def create_slots(self, wl):
        """One slot per consumer run, created before the workload."""
        runs = []
        for i in range(self.args.repeat):
            tools = ["pgcdc"] + (["pgcdc-s3"] if self.s3 else []) + \
                ([f"pgcdc-kinesis-{a}" for a in self.args.kinesis_aggregations] if self.kinesis else [])
            for tool in tools:
                slot = f"{tool.replace('-', '_')}_{wl}_{i}"
                agg = tool[len("pgcdc-kinesis-"):] if tool.startswith("pgcdc-kinesis-") else None
                cfg, out = self.pgcdc_config(slot, slot, s3=tool == "pgcdc-s3", kinesis=agg)
                r = subprocess.run([self.args.pgcdc, "setup", "-c", cfg], capture_output=True, text=True,
                                   env=self.pgcdc_env(out))
                if r.returncode != 0:
                    raise BenchError(f"pgcdc setup failed ({r.returncode}): {r.stderr.strip()} {r.stdout.strip()}")
                runs.append((tool, slot, cfg, out))
            for variant in self.recv_variants:
                rslot = f"recv_{wl}_{i}_{variant.replace('-', '_')}"
                r = subprocess.run(
                    [os.path.join(self.cluster.bindir, "pg_recvlogical"), *self.cluster.conn_args(),
                     "-S", rslot, "--create-slot", "-P", "pgoutput"],
                    capture_output=True, text=True,
                )
                if r.returncode != 0:
                    raise BenchError(f"pg_recvlogical --create-slot failed: {r.stderr.strip()}")
                runs.append((f"pg_recvlogical {variant}", rslot, None, None))
        # Rotate who goes first when repeating (pg_recvlogical, pgcdc, pgcdc into S3, then
        # pgcdc, ...), so page cache / catalog warmth is fair.
        ordered = []
        k = len(runs) // self.args.repeat
        for i in range(self.args.repeat):
            group = runs[k * i: k * i + k]
            group = group[-1:] + group[:-1]
            ordered.extend(group[i % k:] + group[:i % k])
        return ordered

    def run_consumer(self, wl, tool, slot, cfg, out, endpos):
        """One consumer run up to endpos; with tool "pgcdc-s3" inside a counted window of the
        S3 endpoint (its requests and CPU added to the result)."""
        if tool == "pgcdc-s3":
            return bench_s3.measure(self.moto, lambda: self.run_consumer(wl, "pgcdc", slot, cfg, out, endpos))
        if tool.startswith("pgcdc-kinesis-"):
            log(f"({wl}) with a Kinesis sink, aggregation = {tool[len('pgcdc-kinesis-'):]}:")
            return bench_kinesis.measure(self.null_kinesis, lambda: self.run_consumer(wl, "pgcdc", slot, cfg, out, endpos))
        log_path = os.path.join(self.workdir, f"{slot}.log")
        if tool == "pgcdc":
            cmd = [*self.args.pgcdc_wrap.split(), self.args.pgcdc, "run", "-c", cfg, "--until-lsn", endpos]
        else:
            proto, streaming = recv_options(tool.split(" ", 1)[1])
            cmd = [os.path.join(self.cluster.bindir, "pg_recvlogical"), *self.cluster.conn_args(),
                   "-S", slot, "--start", "-n", "-f", "/dev/null", "-E", endpos,
                   "-o", f"proto_version={proto}", "-o", "publication_names=bench"]
            if streaming:
                cmd += ["-o", "streaming=on"]
        into = f" into {out}" if out and out.startswith("s3://") else ""
        log(f"({wl}) {tool}{into}: catching up to {endpos} ...")
        ws = WalsenderCpu(self.cluster.postmaster_pid())
        wall0 = time.time()
        secs, rc, rss_kib, cpu = run_measured(cmd, log_path, self.args.timeout, sampler=ws,
                                              env=self.pgcdc_env(out) if out else None)
        if rc != 0:
            raise BenchError(f"({wl}) {tool} exited with {rc}:{tail(log_path)}")
        startup = pgcdc_startup(log_path, wall0) if tool == "pgcdc" else None
        extra = f", startup {startup:.2f} s" if startup is not None else ""
        log(f"({wl}) {tool}{into}: {secs:.2f} s, peak RSS {rss_kib / 1024:.0f} MiB, CPU {cpu:.2f} s, "
            f"walsender CPU {ws.seconds():.2f} s{extra}")
        self.cluster.psql(f"SELECT pg_drop_replication_slot('{slot}')")
        return {"secs": secs, "rss": rss_kib, "cpu": cpu, "ws": ws.seconds(), "startup": startup}

    # --- output check ----------------------------------------------------------------------

    def output_files(self, out, sub):
        """(pyarrow filesystem, [(path, size)] of the *.parquet files under out/sub): a local
        dir, or an s3:// url on the bench's endpoint read through pyarrow's S3 filesystem."""
        import pyarrow.fs as pafs

        if out.startswith("s3://"):
            fs, root = self.moto.filesystem(), out[len("s3://"):].rstrip("/")
        else:
            fs, root = pafs.LocalFileSystem(), out
        sel = pafs.FileSelector(f"{root}/{sub}", recursive=True, allow_not_found=True)
        infos = fs.get_file_info(sel)
        return fs, sorted((i.path, i.size) for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet"))

    def pgcdc_output(self, out, table):
        """(total rows, {op: n}, duplicate (_lsn,_seq) count, files) of pgcdc's CDC output."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        fs, files = self.output_files(out, f"public/{table}")
        ops, keys = {}, set()
        total = dups = 0
        for f, _ in files:
            t = pq.read_table(f, columns=["_op", "_lsn", "_seq"], filesystem=fs)
            total += t.num_rows
            vc = pc.value_counts(t.column("_op"))
            for item in vc.to_pylist():
                ops[item["values"]] = ops.get(item["values"], 0) + item["counts"]
            for k in zip(t.column("_lsn").to_pylist(), t.column("_seq").to_pylist()):
                if k in keys:
                    dups += 1
                keys.add(k)
        return total, ops, dups, len(files)

    # --- workloads -------------------------------------------------------------------------

    def tup_counts(self, table):
        r = self.cluster.psql(f"SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relname = '{table}'")
        return tuple(int(x) for x in r.split("|"))

    def workload_a(self):
        n = self.args.rows_a
        log(f"(a) one transaction inserting {n} rows into bench_a ...")
        t0 = time.monotonic()
        self.cluster.psql(
            f"INSERT INTO bench_a SELECT g, 'name ' || g, (g % 1000000) / 100.0, "
            f"'2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second', "
            f"jsonb_build_object('id', g, 'tag', 't' || (g % 100), 'flag', g % 2 = 0, 'items', jsonb_build_array(g, g + 1)) "
            f"FROM generate_series(1, {n}) g"
        )
        log(f"(a) inserted in {time.monotonic() - t0:.1f} s")
        return {"I": n}, f"1 transaction, INSERT of {n:,} rows"

    def workload_b(self):
        return self.pgbench_mix("b", "bench_b", PGBENCH_SCRIPT, self.args.seconds_b)

    def pgbench_mix(self, wl, table, script_text, secs):
        """secs seconds of pgbench running script_text (on table, pre-filled with --prefill-b
        rows); the row changes it made, counted from pg_stat_user_tables."""
        script = os.path.join(self.workdir, f"{table}.sql")
        with open(script, "w") as f:
            f.write(script_text)
        before = self.tup_counts(table)
        log(f"({wl}) pgbench {secs} s, {self.args.clients} clients ...")
        r = subprocess.run(
            [os.path.join(self.cluster.bindir, "pgbench"), *self.cluster.conn_args()[:-2], "-n",
             "-c", str(self.args.clients), "-j", str(min(self.args.clients, os.cpu_count() or 1)),
             "-T", str(secs), "-D", f"maxid={self.args.prefill_b}", "-f", script, "bench"],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise BenchError(f"pgbench failed ({r.returncode}): {r.stderr[-2000:]}{r.stdout[-2000:]}")
        m = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
        scripts_done = int(m.group(1)) if m else 0
        failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
        if failed and int(failed.group(1)) != 0:
            raise BenchError(f"pgbench reported failed transactions:\n{r.stdout}")
        # pgbench's backends flush their statistics when they exit, which can be a moment
        # after pgbench itself has exited: wait for them to be gone and the counts stable.
        deadline = time.monotonic() + 30
        prev = None
        while True:
            busy = int(self.cluster.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'"))
            cur = self.tup_counts(table)
            if busy == 0 and cur == prev:
                break
            if time.monotonic() > deadline:
                raise BenchError("pgbench backends did not go away")
            prev = cur
            time.sleep(0.5)
        ins, upd, dele = (c - b for c, b in zip(cur, before))
        desc = (f"pgbench {secs} s, {self.args.clients} clients, {scripts_done:,} script runs "
                f"(2 transactions each: INSERT+UPDATE, DELETE)")
        return {"I": ins, "U": upd, "D": dele}, desc

    def one(self, wl, fn, table):
        runs = self.create_slots(wl)
        start_lsn = self.cluster.psql("SELECT pg_current_wal_insert_lsn()")
        expected, desc = fn()
        # The insert position, not pg_current_wal_lsn() (the write position), which can lag
        # behind the last commit record while it sits in the WAL buffers.
        endpos = self.cluster.psql("SELECT pg_current_wal_insert_lsn()")
        if self.args.sentinel:
            # One small published transaction after the end position, as on a live database:
            # both consumers stop when they see it begin. Without it, pgcdc (as of this
            # writing) holds its unflushed file until flush_interval and then waits for a
            # keepalive before it notices the until-LSN (see bench/RESULTS.md).
            self.cluster.psql("INSERT INTO bench_sentinel DEFAULT VALUES")
        else:
            self.cluster.psql("SELECT pg_logical_emit_message(false, 'bench', 'end')")
        self.cluster.psql("CHECKPOINT")
        wal_mib = (lsn_int(endpos) - lsn_int(start_lsn)) / 1048576
        rows = sum(expected.values())
        log(f"({wl}) {rows:,} row changes, {wal_mib:.0f} MiB of WAL; end position {endpos}")
        measured = {"pgcdc": [], "pgcdc-s3": []}
        measured.update({f"pg_recvlogical {v}": [] for v in self.recv_variants})
        measured.update({f"pgcdc-kinesis-{a}": [] for a in self.args.kinesis_aggregations})
        check = []
        for tool, slot, cfg, out in runs:
            m = self.run_consumer(wl, tool, slot, cfg, out, endpos)
            measured[tool].append(m)
            if not tool.startswith("pg_recvlogical"):
                total, ops, dups, nfiles = self.pgcdc_output(out, table)
                ok = total == rows and dups == 0 and all(ops.get(k, 0) == v for k, v in expected.items())
                if tool == "pgcdc":
                    check.append((ok, total, ops, dups, nfiles))
                elif tool.startswith("pgcdc-kinesis-"):
                    m["ok"] = ok
                else:
                    self.s3_check(m, out, ok, f"{total:,} rows ({', '.join(f'{k} {v:,}' for k, v in sorted(ops.items()))}), "
                                              f"{nfiles} file(s), {dups} duplicate (_lsn,_seq)")
                if not ok:
                    self.failures.append(
                        f"({wl}) {tool} output has {total} rows {ops} in {nfiles} files, {dups} duplicate (_lsn,_seq); "
                        f"expected {rows} {expected}")
                shutil.rmtree(os.path.dirname(cfg), ignore_errors=True)
        # pgcdc is compared with the fastest pg_recvlogical variant (lowest median).
        variants = {v: measured[f"pg_recvlogical {v}"] for v in self.recv_variants}
        best = min(variants, key=lambda v: sorted(m["secs"] for m in variants[v])[len(variants[v]) // 2])
        self.results.append({
            "wl": wl, "desc": desc, "rows": rows, "expected": expected, "wal_mib": wal_mib,
            "pgcdc": measured["pgcdc"], "recv": variants[best], "recv_best": best, "recv_variants": variants,
            "check": check,
            "s3": measured["pgcdc-s3"],
            "kinesis": {a: measured[f"pgcdc-kinesis-{a}"] for a in self.args.kinesis_aggregations} if self.kinesis else {},
        })

    def s3_check(self, m, out, ok, check):
        """Records an S3 run's output check and stored size in m, then empties its prefix."""
        prefix = bench_s3.prefix_of(out)
        objects, nbytes = self.moto.prefix_bytes(prefix)
        m.update({"ok": ok, "s3_check": check, "objects": objects, "mib": nbytes / 1048576})
        log(f"  S3 run: {bench_s3.kinds_text(m['kinds'], m['failed'])}; moto_server CPU {m['moto_cpu']:.2f} s; "
            f"{objects} objects, {nbytes / 1048576:.0f} MiB; output {'OK' if ok else 'MISMATCH'}")
        self.moto.empty(prefix)

    # --- full load -------------------------------------------------------------------------

    def load_table(self):
        """Creates and fills bench_load (the shape of workload (a)), VACUUM ANALYZE."""
        n = self.args.rows_load
        c = self.cluster
        c.psql(TABLE_DDL.format(name="bench_load", ident=""))
        log(f"(full load) filling bench_load with {n:,} rows ...")
        t0 = time.monotonic()
        c.psql(
            f"INSERT INTO bench_load SELECT g, 'name ' || g, (g % 1000000) / 100.0, "
            f"'2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second', "
            f"jsonb_build_object('id', g, 'tag', 't' || (g % 100), 'flag', g % 2 = 0, 'items', jsonb_build_array(g, g + 1)) "
            f"FROM generate_series(1, {n}) g"
        )
        c.psql("VACUUM ANALYZE bench_load")
        c.psql("CHECKPOINT")
        # Its own publication: pgcdc's full load copies every table of the publication.
        c.psql("CREATE PUBLICATION bench_load FOR TABLE bench_load")
        pages, heap, total = c.psql(
            "SELECT relpages, pg_relation_size('bench_load'), pg_total_relation_size('bench_load') "
            "FROM pg_class WHERE relname = 'bench_load'").split("|")
        self.load_pages = int(pages)
        self.load_heap_mib = int(heap) / 1048576
        self.load_total_mib = int(total) / 1048576
        log(f"(full load) filled in {time.monotonic() - t0:.1f} s: heap {self.load_heap_mib:.0f} MiB, "
            f"with indexes and TOAST {self.load_total_mib:.0f} MiB")

    def raw_copy_cmd(self, where=""):
        return [os.path.join(self.cluster.bindir, "psql"), *self.cluster.conn_args(), "-X", "-q",
                "-v", "ON_ERROR_STOP=1", "-c", f"COPY (SELECT * FROM {self.lt}{where}) TO STDOUT (FORMAT binary)"]

    def ctid_ranges(self, n):
        """n WHERE clauses splitting bench_load into equal block ranges (the last open-ended)."""
        per = -(-self.load_pages // n)
        out = []
        for i in range(n):
            lo, hi = i * per, (i + 1) * per
            cond = f" WHERE ctid >= '({lo},0)'::tid"
            if i < n - 1:
                cond += f" AND ctid < '({hi},0)'::tid"
            out.append(cond)
        return out

    def run_raw(self, label, nproc, i):
        """Raw binary COPY into /dev/null: one psql, or nproc psql processes on CTID ranges."""
        log_path = os.path.join(self.workdir, f"raw_{nproc}_{i}.log")
        if nproc == 1:
            cmd = self.raw_copy_cmd()
        else:
            # All at once from one shell; the wall time ends when the last one is done.
            parts = [" ".join(shlex.quote(a) for a in self.raw_copy_cmd(w)) + " >/dev/null &"
                     for w in self.ctid_ranges(nproc)]
            cmd = ["sh", "-c", " ".join(parts) + " wait; exit 0"]
        srv = WalsenderCpu(self.cluster.postmaster_pid(), SERVER_BACKENDS)
        secs, rc, rss, cpu = run_measured(cmd, log_path, self.args.timeout, sampler=srv, stdout_devnull=True)
        if rc != 0 or os.path.getsize(log_path) > 0:
            raise BenchError(f"(full load) {label} failed ({rc}):{tail(log_path)}")
        log(f"(full load) {label}: {secs:.2f} s, client CPU {cpu:.2f} s, server CPU {srv.seconds():.2f} s")
        return {"secs": secs, "rss": rss, "cpu": cpu, "ws": srv.seconds()}

    def run_pgcdc_load(self, workers, i, s3=False):
        """One pgcdc full load into a fresh local dir, or with s3 into a fresh prefix on the
        endpoint (inside a counted window: its requests and CPU are added to the result)."""
        name = f"load{'_s3' if s3 else ''}_w{workers}_{i}"
        d = os.path.join(self.workdir, name)
        os.makedirs(d)
        out = bench_s3.url(name) if s3 else os.path.join(d, "out")
        cfg = os.path.join(d, "pgcdc.toml")
        with open(cfg, "w") as f:
            f.write(
                f'[source]\nurl = "{self.cluster.url()}"\npublication = "{self.lt}"\nslot = "pgcdc_load_bench"\n\n'
                f'[pipeline]\nmode = "full-load"\nload_workers = {workers}\n\n'
                + (bench_s3.aws_toml(self.moto.endpoint) if s3 else "") +
                f'[[sink]]\nkind = "parquet"\nurl = "{out}"\n'
            )
        log_path = os.path.join(d, "pgcdc.log")
        cmd = [*self.args.pgcdc_wrap.split(), self.args.pgcdc, "run", "-c", cfg]
        srv = WalsenderCpu(self.cluster.postmaster_pid(), SERVER_BACKENDS)
        threads = bench_wide.ThreadCpu(srv, exclude=self.cluster.proc.pid)
        what = f"pgcdc load_workers={workers}{' into S3' if s3 else ''}"

        def measured():
            secs, rc, rss, cpu = run_measured(cmd, log_path, self.args.timeout, sampler=threads, env=self.pgcdc_env(out))
            return {"secs": secs, "rc": rc, "rss": rss, "cpu": cpu, "ws": srv.seconds(), "threads": threads.seconds()}

        m = bench_s3.measure(self.moto, measured) if s3 else measured()
        secs, rss, cpu = m["secs"], m["rss"], m["cpu"]
        if m["rc"] != 0:
            raise BenchError(f"(full load) {what} exited with {m['rc']}:{tail(log_path)}")
        slots = self.cluster.psql("SELECT count(*) FROM pg_replication_slots")
        rows, files, ids_ok, nbytes = self.load_output(out)
        ok = rows == self.load_rows and ids_ok and files >= 2 and slots == "0"
        check = {"ok": ok, "rows": rows, "files": files, "ids_ok": ids_ok, "slots": int(slots), "mib": nbytes / 1048576}
        if not ok:
            self.failures.append(
                f"(full load) {what} run {i + 1}: {rows:,} rows in {files} load file(s), "
                f"ids 1..N distinct: {ids_ok}, replication slots left: {slots}; expected {self.load_rows:,} rows "
                f"in >= 2 files, no slot")
        log(f"(full load) {what}: {secs:.2f} s, peak RSS {rss / 1024:.0f} MiB, CPU {cpu:.2f} s, "
            f"server CPU {srv.seconds():.2f} s; {rows:,} rows in {files} files ({nbytes / 1048576:.0f} MiB)"
            f"{'' if ok else ' MISMATCH'}")
        m["check"] = check
        if s3:
            self.s3_check(m, out, ok, f"{rows:,} rows, ids 1..N {'distinct' if ids_ok else 'NOT distinct'}, "
                                      f"{files} load files, {slots} slots left")
        shutil.rmtree(d, ignore_errors=True)
        return m

    def load_output(self, out):
        """(rows from Parquet metadata, load files, ids exactly 1..N, bytes) of a full load."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        fs, listed = self.output_files(out, f"public/{self.lt}/load")
        files = [f for f, _ in listed]
        rows = sum(pq.ParquetFile(f, filesystem=fs).metadata.num_rows for f in files)
        nbytes = sum(size for _, size in listed)
        ids_ok = False
        if rows == self.load_rows:
            ids = pq.ParquetDataset(files, filesystem=fs).read(columns=["id"]).column("id")
            mm = pc.min_max(ids).as_py()
            ids_ok = mm["min"] == 1 and mm["max"] == rows and pc.count_distinct(ids).as_py() == rows
        return rows, len(files), ids_ok, nbytes

    def full_load(self, rows=None, s3=True):
        """The full-load runs on table self.lt (bench_load unless rows: then already created)."""
        if rows is None:
            self.load_table()
        n = rows or self.args.rows_load
        self.load_rows = n
        where = self.ctid_ranges(max(2, self.args.raw_parallel))[0]
        plan = self.cluster.psql(f"EXPLAIN SELECT * FROM {self.lt}{where}")
        self.tid_range_scan = "Tid Range Scan" in plan
        kinds = [("raw", 1)]
        if self.args.raw_parallel > 1:
            kinds.append(("raw", self.args.raw_parallel))
        kinds += [("pgcdc", w) for w in self.args.load_workers]
        if self.s3 and s3:
            kinds += [("pgcdc-s3", w) for w in self.args.load_workers]
        measured = {k: [] for k in kinds}
        for i in range(self.args.repeat):
            # Alternate the order between repeats, as for the CDC workloads.
            for kind, w in (kinds if i % 2 == 0 else list(reversed(kinds))):
                if kind == "raw":
                    label = "raw COPY" if w == 1 else f"raw COPY x{w} (CTID ranges)"
                    log(f"(full load) {label}, run {i + 1} ...")
                    measured[(kind, w)].append(self.run_raw(label, w, i))
                else:
                    log(f"(full load) pgcdc load_workers={w}{' into S3' if kind == 'pgcdc-s3' else ''}, run {i + 1} ...")
                    measured[(kind, w)].append(self.run_pgcdc_load(w, i, s3=kind == "pgcdc-s3"))
        self.load_results = {"rows": n, "measured": measured, "kinds": kinds,
                             "heap_mib": getattr(self, "load_heap_mib", 0), "total_mib": getattr(self, "load_total_mib", 0)}

    def run(self):
        c = self.cluster
        try:
            self.load_start = " ".join(open("/proc/loadavg").read().split()[:3])
        except OSError:
            self.load_start = "?"
        log("starting a throwaway cluster (pgcdc cluster) ...")
        c.start()
        log(f"PostgreSQL listens on 127.0.0.1:{c.port}")
        if self.s3:
            self.moto = bench_s3.Moto(self.workdir)
            try:
                self.moto.start()
            except bench_s3.MotoError as e:
                raise BenchError(str(e))
            log(f"S3 endpoint: moto_server {self.moto.version()} on {self.moto.endpoint} (pid {self.moto.proc.pid})")
        if self.kinesis:
            self.null_kinesis = bench_kinesis.NullKinesis(self.workdir)
            self.null_kinesis.start()
            log(f"null Kinesis endpoint on {self.null_kinesis.endpoint} (pid {self.null_kinesis.proc.pid})")
        c.psql("CREATE DATABASE bench", db="postgres")
        self.version = c.psql("SHOW server_version")
        self.version_num = int(c.psql("SHOW server_version_num"))
        self.proto = pgoutput_proto(self.version_num)
        self.recv_variants = recv_variants(self.args.recv_protos, self.proto)
        self.work_mem = c.psql("SHOW logical_decoding_work_mem")
        c.psql(TABLE_DDL.format(name="bench_a", ident=""))
        c.psql(TABLE_DDL.format(name="bench_b", ident="GENERATED BY DEFAULT AS IDENTITY"))
        c.psql(
            f"INSERT INTO bench_b (name, amount, ts, doc) SELECT 'pre ' || g, g / 100.0, now(), "
            f"jsonb_build_object('g', g) FROM generate_series(1, {self.args.prefill_b}) g")
        c.psql("VACUUM ANALYZE bench_b")
        c.psql("CREATE TABLE bench_sentinel (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
        bench_wide_cdc.create(self)
        c.psql(f"CREATE PUBLICATION bench FOR TABLE bench_a, bench_b, bench_sentinel, {bench_wide_cdc.TABLES}")
        if "a" in self.args.workloads:
            self.one("a", self.workload_a, "bench_a")
        if "b" in self.args.workloads:
            self.one("b", self.workload_b, "bench_b")
        if "c" in self.args.workloads:
            self.one("c", lambda: bench_wide_cdc.workload_c(self), "bench_wc")
        if "d" in self.args.workloads:
            self.one("d", lambda: bench_wide_cdc.workload_d(self), "bench_wd")
        if "f" in self.args.workloads:
            self.full_load()
        if "w" in self.args.workloads and self.args.rows_wide > 0:
            bench_wide.full_load(self)
        if "v" in self.args.workloads:
            bench_validate.measure(self, run_measured, log, tail, BenchError)
        if "h" in self.args.workloads:
            bench_huge.measure(self, run_measured, log, tail, BenchError)

    # --- report ----------------------------------------------------------------------------

    def machine(self):
        cpu = "unknown"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        mem = "unknown"
        try:
            for line in open("/proc/meminfo"):
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
        except OSError:
            pass
        try:
            load_end = " ".join(open("/proc/loadavg").read().split()[:3])
        except OSError:
            load_end = "?"
        version = subprocess.run([self.args.pgcdc, "--version"], capture_output=True, text=True).stdout.strip() or "?"
        built = datetime.datetime.fromtimestamp(os.stat(self.args.pgcdc).st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip() or "?"
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True).stdout.strip()
        rows = [
            ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
            ("nproc", str(os.cpu_count())),
            ("CPU", cpu),
            ("memory", mem),
            ("kernel", platform.release()),
            ("load average (1/5/15 min) at start / end", f"{self.load_start} / {load_end} "
             "(other work on the machine competes for the same cores: compare with care)"),
            ("PostgreSQL", f"{self.version} (pgcdc asks for pgoutput proto_version={self.proto}, "
                           f"streaming={'on' if self.proto >= 2 else 'off'})"),
            ("server settings", "wal_level=logical, fsync=off, max_wal_size=4GB, "
                                f"logical_decoding_work_mem={self.work_mem} (default), everything else default"),
            ("pgcdc", f"{self.args.pgcdc} ({version}, built {built}); source tree at {commit}"
                      f"{' + uncommitted src changes' if dirty else ''}; {rustc}"),
        ]
        if self.results:
            rows += [
                ("CDC end of run", "a one-row sentinel transaction follows the end position" if self.args.sentinel
                 else "idle source after the end position (--no-sentinel)"),
                ("CDC pgcdc sink", f"parquet, local dir{' and S3' if self.s3 else ''}, flush_interval={self.args.flush_interval}, "
                                   f"max_file_size={self.args.max_file_size}, default compression"),
            ]
        if self.s3:
            rows.append(("S3 target", f"moto_server {self.moto.version()} (Python, werkzeug, objects in memory) "
                                      "on 127.0.0.1 from the project venv, one bucket, a fresh prefix per run; pgcdc "
                                      "with `[aws] endpoint_url` (path-style), default multipart threshold and part size"))
        if getattr(self, "load_results", None):
            rows.append(("full load", f"pgcdc `run -c` with `mode = \"full-load\"` (temporary slot, exits when done), "
                                      f"load_workers {'/'.join(map(str, self.args.load_workers))}, default load_chunk_size, "
                                      f"parquet sink on a local dir{' and on S3' if self.s3 else ''}, default compression; raw COPY by psql -X -c, "
                                      f"parallel raw COPY {'by Tid Range Scan' if self.tid_range_scan else 'on CTID ranges'}"))
        return rows

    def report_load(self, med, rep, lr=None):
        lr = lr or self.load_results
        n = lr["rows"]
        raw = lr["measured"][("raw", 1)]
        raw_s = med([m["secs"] for m in raw])
        rows = []
        meds = {}
        for kind, w in lr["kinds"]:
            ms = lr["measured"][(kind, w)]
            secs = med([m["secs"] for m in ms])
            meds[(kind, w)] = secs
            walls = ", ".join("%.2f" % m["secs"] for m in ms)
            cpu = med([m["cpu"] for m in ms])
            ws = med([m["ws"] for m in ms])
            rss = max(m["rss"] for m in ms) / 1024
            if kind == "raw":
                what = (f"`COPY (SELECT * FROM {lr.get('table', 'bench_load')}) TO STDOUT (FORMAT binary)` > /dev/null, one psql" if w == 1
                        else f"the same, {w} psql processes at once, one CTID range each")
                check = "-"
            else:
                dflt = " (the default here: one per core)" if w == min(max(os.cpu_count() or 2, 2), 8) else ""
                what = f"pgcdc `mode = \"full-load\"`, `load_workers = {w}`{dflt}, writing Parquet" + \
                    (" into S3 (moto_server)" if kind == "pgcdc-s3" else "")
                cs = [m["check"] for m in ms]
                c0 = cs[0]
                files = "/".join(sorted({str(c["files"]) for c in cs}))
                check = (f"{'OK' if all(c['ok'] for c in cs) else 'MISMATCH'}: {c0['rows']:,} rows, ids 1..{n:,} "
                         f"{'distinct' if all(c['ids_ok'] for c in cs) else 'NOT distinct'}, {files} load files "
                         f"({c0['mib']:.0f} MiB), {max(c['slots'] for c in cs)} slots left")
            rows.append(f"| {what} | {walls} | {secs:.2f} | {n / secs:,.0f} | **{raw_s / secs:.2f}** | {cpu:.2f} "
                        f"| {ws:.2f} | {rss:.0f} | {check} |")
        md = [f"### Full load: pgcdc vs raw binary COPY{lr.get('title', '')}", "",
              f"{n:,} rows of `{lr.get('table', 'bench_load')}` ({lr.get('desc', 'same columns and values as (a)')}; heap {lr['heap_mib']:.0f} MiB, "
              f"{lr['total_mib']:.0f} MiB with index and TOAST; VACUUM ANALYZEd, in the OS page cache), "
              f"each run alone{rep}. Seconds: wall time from process start to exit; for pgcdc that includes "
              "connecting, the temporary slot and its exported snapshot, planning the CTID chunks, encoding, "
              "fsync and publishing the files (a fresh output directory per run). ratio = raw COPY seconds / "
              "seconds (= rows/s / raw COPY rows/s). Client CPU: the psql or pgcdc process (GNU time); "
              "server CPU: the backends and walsenders serving it (sampled from /proc).", "",
              "| run | wall s (each run) | median s | rows/s | ratio to raw COPY | client CPU s | server CPU s "
              "| peak RSS MiB | pgcdc output check |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        md += rows
        md.append("")
        met = True
        pg = [(w, meds[("pgcdc", w)]) for kind, w in lr["kinds"] if kind == "pgcdc"]
        default_w = min(max(os.cpu_count() or 2, 2), 8)
        for w, secs in pg:
            ratio = raw_s / secs
            rss = max(m["rss"] for m in lr["measured"][("pgcdc", w)]) / 1024
            ok = all(m["check"]["ok"] for m in lr["measured"][("pgcdc", w)])
            r_ok = ratio >= TARGET_LOAD_RATIO
            m_ok = rss <= TARGET_RSS_MIB
            if w == default_w or len(pg) == 1:
                met &= r_ok and m_ok and ok
            md.append(f"* load_workers={w}{' (default)' if w == default_w else ''}: ratio {ratio:.2f} "
                      f"{'>=' if r_ok else '<'} {TARGET_LOAD_RATIO}: **{'met' if r_ok else 'NOT met'}**; "
                      f"peak RSS {rss:.0f} MiB {'<=' if m_ok else '>'} {TARGET_RSS_MIB} MiB: "
                      f"**{'met' if m_ok else 'NOT met'}**; output check: **{'OK' if ok else 'FAILED'}**")
        if len(pg) > 1:
            (w1, s1), (wn, sn) = pg[0], pg[-1]
            line = f"* parallel speed-up on this machine ({os.cpu_count()} cores, shared with the server): pgcdc " \
                   f"load_workers {w1} -> {wn}: **{s1 / sn:.2f}x**"
            if ("raw", self.args.raw_parallel) in meds:
                line += (f"; raw COPY 1 -> {self.args.raw_parallel} psql processes: "
                         f"{raw_s / meds[('raw', self.args.raw_parallel)]:.2f}x")
            md.append(line)
            same = [f"load_workers={w}: {meds[('raw', w)] / secs:.2f}" for w, secs in pg if ("raw", w) in meds]
            if same:
                md.append("* against the raw COPY with as many sessions as pgcdc has workers (not the target, "
                          "for reading the speed-up): " + "; ".join(same))
        if not self.tid_range_scan:
            md.append("* note: the CTID-range queries did not plan as a Tid Range Scan on this server")
        md.append("")
        return md, met

    def report(self):
        def med(xs):
            xs = sorted(xs)
            return xs[len(xs) // 2]

        main = [
            "| workload | rows | fastest pg_recvlogical | its s | its rows/s | pgcdc s | pgcdc rows/s "
            "| ratio pgcdc/pg_recvlogical | pgcdc peak RSS MiB | pgcdc output check |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        detail = [
            "| workload | WAL MiB | tool | wall s (each run) | CPU s (user+sys) | server walsender CPU s "
            "| peak RSS MiB | pgcdc start-up s |",
            "|---|---:|---|---|---:|---:|---:|---:|",
        ]
        verdicts = []
        for r in self.results:
            ps = med([m["secs"] for m in r["pgcdc"]])
            rs = med([m["secs"] for m in r["recv"]])
            prss = max(m["rss"] for m in r["pgcdc"]) / 1024
            ratio = rs / ps if ps > 0 else 0.0
            ok = all(c[0] for c in r["check"])
            c0 = r["check"][0]
            ops = ", ".join(f"{k} {v:,}" for k, v in sorted(c0[2].items()))
            check = f"{'OK' if ok else 'MISMATCH'}: {c0[1]:,} rows ({ops}), {c0[4]} file(s), no duplicate (_lsn,_seq)" \
                if ok else f"MISMATCH: {c0[1]:,} rows ({ops}), {c0[3]} duplicates"
            main.append(
                f"| ({r['wl']}) {r['desc']} | {r['rows']:,} | {r['recv_best']} | {rs:.2f} | {r['rows'] / rs:,.0f} "
                f"| {ps:.2f} | {r['rows'] / ps:,.0f} | **{ratio:.2f}** | {prss:.0f} | {check} |"
            )
            tools = [(f"pg_recvlogical {v}{' (fastest)' if v == r['recv_best'] else ''}", ms)
                     for v, ms in r["recv_variants"].items()] + [("pgcdc", r["pgcdc"])]
            for tool, ms in tools:
                st = [m["startup"] for m in ms if m.get("startup") is not None]
                walls = ", ".join("%.2f" % m["secs"] for m in ms)
                startup = "%.2f" % med(st) if st else "-"
                cpu = med([m["cpu"] for m in ms])
                ws = med([m["ws"] for m in ms])
                rss = max(m["rss"] for m in ms) / 1024
                detail.append(
                    f"| ({r['wl']}) | {r['wal_mib']:.0f} | {tool} | {walls} | {cpu:.2f} | {ws:.2f} | {rss:.0f} | {startup} |")
            verdicts.append((r["wl"], ratio, prss, ok))
        rep = f", median of {self.args.repeat} runs per tool" if self.args.repeat > 1 else ""
        md = []
        met_all = True
        if self.results:
            md += ["### CDC: pgcdc vs pg_recvlogical", "",
                   f"Each consumer alone, catching up on the already-written WAL of the workload{rep}. Seconds: wall "
                   "time from process start to exit. Rows: row changes (inserts + updates + deletes) the workload "
                   "produced. rows/s = rows / seconds; ratio = pgcdc rows/s / pg_recvlogical rows/s, against the "
                   f"fastest of the pg_recvlogical variants ({', '.join(recv_describe(v) for v in self.recv_variants)}; "
                   "each one's times are in the table below).", ""]
            md += main
            md.append("")
            for wl, ratio, rss, ok in verdicts:
                target = TARGET_RATIO_WIDE if wl in ("c", "d") else TARGET_RATIO
                r_ok = ratio >= target
                m_ok = rss <= TARGET_RSS_MIB
                met_all &= r_ok and m_ok and ok
                md.append(f"* ({wl}) ratio {ratio:.2f} {'>=' if r_ok else '<'} {target}: "
                          f"**{'met' if r_ok else 'NOT met'}**; pgcdc peak RSS {rss:.0f} MiB {'<=' if m_ok else '>'} "
                          f"{TARGET_RSS_MIB} MiB: **{'met' if m_ok else 'NOT met'}**; output check: "
                          f"**{'OK' if ok else 'FAILED'}**")
            md += ["", "Where the time goes (CPU of the consumer process; walsender = the server process decoding "
                   "for it; start-up = process start to pgcdc's `replicating` log line):", ""]
            md += detail
            md.append("")
        if getattr(self, "load_results", None):
            text, met = self.report_load(med, rep)
            md += text
            met_all &= met
        if getattr(self, "wide_results", None):
            text, met = self.report_load(med, rep, self.wide_results)
            md += text + bench_wide.report(self.wide_results, med)
            met_all &= met
        if getattr(self, "validate_results", None):
            text, met = bench_validate.report(self.validate_results)
            md += text
            met_all &= met
        if getattr(self, "huge_results", None):
            text, met = bench_huge.report(self.huge_results)
            md += text
            met_all &= met
        if self.s3:
            cdc = [(f"({r['wl']})", r["rows"], r["pgcdc"], r["s3"]) for r in self.results]
            load = []
            if getattr(self, "load_results", None):
                lm = self.load_results["measured"]
                load = [(f"(f) full load, load_workers={w}", self.load_results["rows"], lm[("pgcdc", w)],
                         lm[("pgcdc-s3", w)]) for w in self.args.load_workers]
            md += bench_s3.report(cdc, load, med, rep)
        if self.kinesis and self.results:
            md += bench_kinesis.report([(f"({r['wl']})", r["rows"], r["pgcdc"], r["kinesis"]) for r in self.results], med, rep)
        if self.failures:
            md += ["Failures:", ""] + [f"* {f}" for f in self.failures] + [""]
        md += ["Machine and settings:", ""]
        md += [f"* {k}: {v}" for k, v in self.machine()]
        return "\n".join(md), met_all


def write_results(text):
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    block = f"{BEGIN_MARK}\n{text}\n{END_MARK}"
    old = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    if BEGIN_MARK in old and END_MARK in old:
        pre, rest = old.split(BEGIN_MARK, 1)
        post = rest.split(END_MARK, 1)[1]
        new = pre + block + post
    else:
        new = "# pgcdc benchmark results\n\nRegenerate with `make bench`.\n\n## Latest run\n\n" + block + "\n" + old
    with open(RESULTS, "w") as f:
        f.write(new)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pgcdc", required=True, help="the pgcdc binary (release build)")
    ap.add_argument("--rows-a", type=int, default=1_000_000)
    ap.add_argument("--seconds-b", type=int, default=20)
    ap.add_argument("--clients", type=int, default=4, help="pgbench clients for (b)")
    ap.add_argument("--prefill-b", type=int, default=100_000)
    ap.add_argument("--workloads", default="abcdfwvh",
                    help="which workloads to run: any of a, b (CDC), c, d (the same CDC workloads on the 15-column "
                         "wide table, scripts/bench_wide_cdc.py), f (full load), w (full load of the "
                         "15-column wide table), v (validate, scripts/bench_validate.py) and h (one huge value, "
                         "scripts/bench_huge.py), e.g. ab, fw or v")
    ap.add_argument("--rows-c", type=int, default=1_000_000, help="rows of the one transaction of workload c")
    ap.add_argument("--seconds-d", type=int, default=20, help="seconds of pgbench in workload d")
    ap.add_argument("--huge-mib", type=int, default=100, help="size of the huge value (workload h), MiB")
    ap.add_argument("--huge-types", default="text,bytea,jsonb", help="types of the huge value (workload h)")
    ap.add_argument("--rows-wide", type=int, default=2_000_000, help="rows of the wide full-load table (w)")
    ap.add_argument("--rows-validate", type=int, default=20_000_000,
                    help="rows of the table `pgcdc validate` compares (workload v)")
    ap.add_argument("--rows-load", type=int, default=5_000_000, help="rows of the full-load table")
    ap.add_argument("--load-workers", default="1,2",
                    help="pgcdc load_workers values to measure for the full load (comma-separated)")
    ap.add_argument("--raw-parallel", type=int, default=2, metavar="N",
                    help="also time N psql COPYs at once on CTID ranges of the full-load table (0: skip)")
    ap.add_argument("--recv-protos", default="1,max",
                    help="pg_recvlogical variants (comma-separated pgoutput proto versions; max = the newest the "
                         "server has, with streaming=on); pgcdc is compared with the fastest")
    ap.add_argument("--repeat", type=int, default=3, help="consumer runs per tool and workload (median reported)")
    ap.add_argument("--flush-interval", default="60s")
    ap.add_argument("--max-file-size", default="128MiB")
    ap.add_argument("--no-sentinel", dest="sentinel", action="store_false",
                    help="no published transaction after the end position (an idle source at the end)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds before a consumer run counts as hung")
    ap.add_argument("--pgcdc-wrap", default="", metavar="CMD",
                    help="prefix for pgcdc run (and pgcdc validate in workload v), to profile it, e.g. 'perf record -g -o /tmp/pgcdc.perf --' or "
                         "'valgrind --tool=callgrind --callgrind-out-file=/tmp/pgcdc.cg'; times and RSS are then the wrapper's")
    ap.add_argument("--targets", default="local,s3,kinesis",
                    help="pgcdc's sinks: local (a local dir, always the baseline) and s3 (the same runs into a local "
                         "S3 endpoint, moto_server from the venv); `--targets local` skips S3")
    ap.add_argument("--kinesis-aggregations", default="none,kpl",
                    help="with --targets ...,kinesis: the Kinesis sink runs, one per aggregation")
    ap.add_argument("--no-results-file", action="store_true", help="print only, leave bench/RESULTS.md alone")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (outputs and logs; the cluster itself is removed) for inspection")
    args = ap.parse_args()
    args.load_workers = [int(w) for w in args.load_workers.split(",") if w.strip()]
    args.targets = {t.strip() for t in args.targets.split(",") if t.strip()}
    if not args.targets <= {"local", "s3", "kinesis"} or "local" not in args.targets:
        raise SystemExit("bench: --targets is local plus any of s3, kinesis (the local dir is the baseline the others are compared with)")
    args.kinesis_aggregations = [a.strip() for a in args.kinesis_aggregations.split(",") if a.strip()]
    if not os.access(args.pgcdc, os.X_OK):
        raise SystemExit(f"bench: {args.pgcdc} is not an executable")
    args.pgcdc = os.path.abspath(args.pgcdc)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    workdir = tempfile.mkdtemp(prefix="pgcdc-bench-")
    bench = None
    code = 1
    try:
        bench = Bench(args, workdir)
        bench.run()
        text, met = bench.report()
        print()
        print(text)
        print()
        if not args.no_results_file:
            write_results(text)
            log(f"wrote {os.path.relpath(RESULTS)}")
        if bench.failures:
            log("pgcdc's output did not match the expected row counts")
            code = 1
        else:
            log("targets met" if met else "targets NOT met (see the table)")
            code = 0
    except BenchError as e:
        log(f"FAILED: {e}")
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    finally:
        p = CURRENT["proc"]
        if p is not None and p.returncode is None:
            kill_group(p)
        if bench is not None:
            if bench.moto is not None:
                bench.moto.stop()
            if bench.null_kinesis is not None:
                bench.null_kinesis.stop()
            bench.cluster.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
