"""The S3 target of scripts/bench.py: a local S3 endpoint (moto_server from the project venv),
exact per-run request counts from its request log, its CPU time, and the S3 report tables.

Used only by scripts/bench.py (`--targets local,s3`, the default). One moto_server process
serves the whole bench; every S3 run writes to its own prefix of one bucket, which is read
back through pyarrow's S3 filesystem for the output check and then emptied.

Requests are counted from moto_server's own request log (werkzeug writes one line per
request, `"PUT /bucket/key?partNumber=1&uploadId=... HTTP/1.1" 200 -`, before the response
body is sent, so every request the client has had an answer for is in the log when the
client exits). Each pgcdc S3 run takes the log's size before it starts and after it exits;
nothing else talks to the endpoint in between, so the lines in that window are exactly that
run's requests. They are classified by method and query (PUT with uploadId = UploadPart,
POST ?uploads = CreateMultipartUpload, ...).

The endpoint's cost is kept apart from pgcdc's: pgcdc's CPU comes from GNU time (as for the
local runs), moto_server's from /proc/PID/stat (utime + stime of all its threads) sampled
before and after the run. Its wall time: moto_server is started as `python bench_s3.py serve`,
which is moto's own server (`moto.server.main`: its WSGI app, werkzeug's threaded
`run_simple`, its request handler) with one WSGI middleware around the app that writes each
request's start and end (CLOCK_MONOTONIC, from the app being called to the response sent)
to moto-timing.log. The union of those intervals over a run is the time the endpoint had at
least one of pgcdc's requests in hand: an upper bound for how long pgcdc waited on it.
"""

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

BUCKET = "pgcdc-bench"
REGION = "us-east-1"
KEY = "testing"

ANSI = re.compile(r"\x1b\[[0-9;]*m")
REQUEST_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) ')

# The kinds counted as "PUT requests" in the tables: the HTTP PUTs that store data.
PUT_KINDS = ("PutObject", "UploadPart")


class MotoError(Exception):
    pass


def classify(method, target):
    """The S3 operation of one logged request (path-style: /bucket[/key][?query])."""
    u = urllib.parse.urlsplit(target)
    q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
    has_key = "/" in u.path.strip("/")
    if method == "PUT":
        if "uploadId" in q:
            return "UploadPart"
        return "PutObject" if has_key else "CreateBucket"
    if method == "POST":
        if "uploads" in q:
            return "CreateMultipartUpload"
        if "uploadId" in q:
            return "CompleteMultipartUpload"
        if "delete" in q:
            return "DeleteObjects"
        return "POST"
    if method == "GET":
        return "GetObject" if has_key else "ListObjects"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "DELETE":
        if "uploadId" in q:
            return "AbortMultipartUpload"
        return "DeleteObject" if has_key else "DeleteBucket"
    return method


def _die_with_parent():
    """preexec_fn: SIGTERM to moto_server when the bench process dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """One moto_server on 127.0.0.1 for the bench, its log in workdir/moto.log."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "moto.log")
        self.timing_path = os.path.join(workdir, "moto-timing.log")
        self.proc = None
        self.port = None
        self.hz = os.sysconf("SC_CLK_TCK")
        self._client = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def env(self, tmpdir):
        """The environment of a pgcdc process writing to this endpoint: fake credentials, no
        proxy or profile, and TMPDIR (pgcdc stages S3 files under the system temp dir) inside
        the bench's temp dir so nothing stays behind."""
        env = dict(os.environ)
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "HTTPS_PROXY", "HTTP_PROXY",
                  "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(k, None)
        env.update({"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": KEY, "AWS_REGION": REGION,
                    "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true", "TMPDIR": tmpdir})
        return env

    def start(self):
        """Starts moto_server (moto's own server, as `python -m moto.server` in
        tests/it/support/moto.rs, plus the timing middleware: see serve()) and creates the
        bench's bucket. It dies with the bench process; stop() ends it earlier."""
        env = self.env(self.workdir)
        env["PYTHONUNBUFFERED"] = "1"
        open(self.timing_path, "w").close()
        # This process's own clients (boto3, pyarrow) go straight to the endpoint too.
        os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1"]))
        self.port = _free_port()
        env["MOTO_PORT"] = str(self.port)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "serve", "127.0.0.1", str(self.port), self.timing_path],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise MotoError(f"moto_server exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).read()
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise MotoError(f"moto_server did not answer on port {self.port} within 60 s: {self.log_tail()}")
            time.sleep(0.2)
        self.client().create_bucket(Bucket=BUCKET)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, n=10):
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n" + "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def version(self):
        import moto
        return moto.__version__

    def client(self):
        if self._client is None:
            import boto3
            self._client = boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                                        aws_access_key_id=KEY, aws_secret_access_key=KEY)
        return self._client

    def filesystem(self):
        """pyarrow's S3 filesystem on this endpoint (as tests/py/s3_fetch.py opens it)."""
        import pyarrow.fs as pafs
        return pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                                 access_key=KEY, secret_key=KEY, region=REGION)

    def cpu_seconds(self):
        """utime + stime of moto_server (all its threads) so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / self.hz

    def mark(self):
        """(log size, timing log size, CPU seconds) now: the start of a measured window."""
        return os.path.getsize(self.log_path), os.path.getsize(self.timing_path), self.cpu_seconds()

    def since(self, mark):
        """What the endpoint did since mark: requests ({kind: n}), failed requests
        ({kind status: n}), moto CPU seconds, and (busy, summed) wall seconds of its requests."""
        offset, toffset, cpu0 = mark
        cpu = self.cpu_seconds() - cpu0
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            text = ANSI.sub("", f.read().decode(errors="replace"))
        kinds, failed = {}, {}
        n = 0
        for m in REQUEST_LINE.finditer(text):
            n += 1
            kind = classify(m.group(1), m.group(2))
            kinds[kind] = kinds.get(kind, 0) + 1
            if not m.group(3).startswith("2"):
                k = f"{kind} {m.group(3)}"
                failed[k] = failed.get(k, 0) + 1
        # A request's timing line is written just after its response, its log line just before:
        # wait (briefly) for as many timing lines as requests.
        deadline = time.monotonic() + 2
        while True:
            with open(self.timing_path) as f:
                f.seek(toffset)
                spans = [tuple(map(float, line.split())) for line in f.read().splitlines() if line.strip()]
            if len(spans) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return kinds, failed, cpu, busy_seconds(spans), sum(b - a for a, b in spans)

    def prefix_bytes(self, prefix):
        """Objects and bytes stored under prefix (listed after the measured window)."""
        n = size = 0
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for o in page.get("Contents", []):
                n += 1
                size += o["Size"]
        return n, size

    def empty(self, prefix):
        """Deletes everything under prefix (and aborts leftover multipart uploads), so the
        endpoint does not grow over the bench."""
        c = self.client()
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                c.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
        for up in c.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []):
            c.abort_multipart_upload(Bucket=BUCKET, Key=up["Key"], UploadId=up["UploadId"])


def aws_toml(endpoint):
    """pgcdc's `[aws]` table for this endpoint (the sink's url is then `url(prefix)`)."""
    return f'[aws]\nregion = "{REGION}"\nendpoint_url = "{endpoint}"\n\n'


def url(prefix):
    """The sink url of one S3 run: its own prefix of the bench's bucket."""
    return f"s3://{BUCKET}/{prefix}/"


def prefix_of(sink_url):
    """The prefix (no slashes around it) of a url made by url()."""
    return sink_url[len(f"s3://{BUCKET}/"):].strip("/")


def puts(kinds):
    return sum(kinds.get(k, 0) for k in PUT_KINDS)


def kinds_text(kinds, failed):
    order = ["PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload", "GetObject",
             "HeadObject", "ListObjects", "DeleteObject"]
    keys = [k for k in order if k in kinds] + sorted(k for k in kinds if k not in order)
    text = ", ".join(f"{k} {kinds[k]}" for k in keys) or "none"
    if failed:
        text += "; not 2xx: " + ", ".join(f"{k} x{n}" for k, n in sorted(failed.items()))
    return text


def busy_seconds(spans):
    """Length of the union of the (start, end) intervals."""
    total, end = 0.0, None
    for a, b in sorted(spans):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def measure(moto, fn):
    """Runs fn() (one pgcdc run) inside a counted window; fn's dict plus the endpoint's side."""
    mark = moto.mark()
    out = fn()
    kinds, failed, cpu, busy, summed = moto.since(mark)
    out.update({"kinds": kinds, "failed": failed, "moto_cpu": cpu, "moto_busy": busy, "moto_sum": summed})
    return out


def startup(runs, med):
    """Median start-up seconds (process start to `replicating`) of CDC runs, else None."""
    st = [m["startup"] for m in runs if m.get("startup") is not None]
    return med(st) if st else None


def report(cdc, load, med, rep):
    """Markdown for the S3 section. cdc: [(label, rows, local runs, s3 runs)];
    load: [(label, rows, local runs, s3 runs)] for each load_workers value. Each run dict has
    secs, cpu, ws and (S3 runs) kinds, failed, moto_cpu, objects, mib, ok, s3_check."""
    head = [
        "| run | rows | local dir s | local rows/s | S3 s (each run) | S3 rows/s | S3/local | PUT requests per M rows "
        "| S3 output check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    time_rows = [
        "| run | S3 wall - local wall s | pgcdc start-up s local / S3 | pgcdc CPU s local / S3 | moto_server CPU s "
        "| moto_server busy s | server CPU s local / S3 | requests of one S3 run | objects, MiB stored |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    notes = []
    for label, rows, local, s3 in cdc + load:
        if not s3:
            continue
        ls, ss = med([m["secs"] for m in local]), med([m["secs"] for m in s3])
        lc, sc = med([m["cpu"] for m in local]), med([m["cpu"] for m in s3])
        lw, sw = med([m["ws"] for m in local]), med([m["ws"] for m in s3])
        mc = med([m["moto_cpu"] for m in s3])
        busy = med([m["moto_busy"] for m in s3])
        put = med([puts(m["kinds"]) for m in s3])
        ok = all(m["ok"] for m in s3)
        one = s3[0]
        each = f" ({', '.join('%.2f' % m['secs'] for m in s3)})" if len(s3) > 1 else ""
        head.append(f"| {label} | {rows:,} | {ls:.2f} | {rows / ls:,.0f} | {ss:.2f}{each} | {rows / ss:,.0f} "
                    f"| **{ls / ss:.2f}** | {put * 1e6 / rows:,.1f} | {'OK' if ok else 'MISMATCH'}: {one['s3_check']} |")
        lu, su = startup(local, med), startup(s3, med)
        starts = f"{lu:.2f} / {su:.2f}" if lu is not None and su is not None else "-"
        time_rows.append(f"| {label} | {ss - ls:+.2f} | {starts} | {lc:.2f} / {sc:.2f} | {mc:.2f} | {busy:.2f} | {lw:.2f} / {sw:.2f} "
                         f"| {kinds_text(one['kinds'], one['failed'])} | {one['objects']}, {one['mib']:.0f} |")
        notes.append(f"* {label}: into S3 {ss - ls:+.2f} s ({(ss / ls - 1) * 100:+.0f}%) against the local dir; "
                     f"pgcdc had requests in flight at the endpoint for {busy:.2f} s of its {ss:.2f} s (the most it "
                     f"can have waited on it); moto_server used {mc:.2f} CPU-s ({mc / ss * 100:.0f}% of one core over "
                     f"the run); pgcdc {sc - lc:+.2f} CPU-s over its local run, the server {sw - lw:+.2f}")
    md = ["### S3: the same pgcdc runs into a local S3 endpoint (moto_server)", "",
          f"Each run alone{rep}, with the local-dir runs above as baseline (same slot workload / table, same sink "
          "settings); the S3 run writes to `s3://bucket/prefix/` on a moto_server on 127.0.0.1 "
          "(`[aws] endpoint_url`, path-style). S3/local = local seconds / S3 seconds (= S3 rows/s / local rows/s). "
          "PUT requests = PutObject + UploadPart, counted exactly from moto_server's request log over the "
          "lifetime of the pgcdc process (median over runs), per million rows. The S3 output is read back through "
          "pyarrow's S3 filesystem and checked as the local output is.", ""]
    md += head + ["", "Where the time goes: pgcdc's CPU (GNU time) apart from the endpoint's (moto_server "
                  "is a Python process: utime+stime from /proc over the run) and the PostgreSQL server's "
                  "(walsender / COPY backends); every run shares the same cores. moto_server busy: wall time with at least "
                  "one of pgcdc's requests in hand (from the app being called to the response sent; union over "
                  "concurrent requests). Start-up (CDC only): process "
                  "start to pgcdc's `replicating` log line, which on S3 includes taking the target's lock object "
                  "and reading its progress. Requests: every request of the first S3 run by kind, with the "
                  "ones not answered 2xx (a 404 GetObject is a progress object not written yet):", ""]
    md += time_rows + [""] + notes + [""]
    return md


def serve(host, port, timing_path):
    """moto_server as `moto.server.main` runs it, plus a middleware timing each request."""
    import threading

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple
    from werkzeug.wsgi import ClosingIterator

    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    out = open(timing_path, "a", buffering=1)
    lock = threading.Lock()

    def timed(environ, start_response):
        t0 = time.monotonic()

        def done():
            t1 = time.monotonic()
            with lock:
                out.write(f"{t0:.6f} {t1:.6f}\n")

        return ClosingIterator(app(environ, start_response), [done])

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    run_simple(host, int(port), timed, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve(*sys.argv[2:5])
