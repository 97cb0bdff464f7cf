"""The Kinesis target of scripts/bench.py (`--targets ...,kinesis`): a null Kinesis endpoint
that answers every PutRecords call at once and counts what it got, and the Kinesis report.

moto_server numbers every record under a Python lock and keeps it in memory: it measures
moto, not pgcdc. To see what the Kinesis sink costs pgcdc, the CDC runs with a Kinesis sink
send to this endpoint instead: `python bench_kinesis.py serve PORT` (a ThreadingHTTPServer
speaking the Kinesis JSON protocol, `X-Amz-Target: Kinesis_20131202.*`) that answers
DescribeStreamSummary, ListShards (4 shards splitting the hash key space evenly) and
PutRecords (every entry accepted, with the ShardId its hash key maps to, so KPL
aggregation's shard check sees a well-behaved stream). For each PutRecords call it counts
the call, its entries, their bytes (data + partition key, as Kinesis counts them), and the
user records inside (KPL aggregated records are unpacked: the protobuf's `records` fields
are counted; control records are recognised by `"record-type":"control"`). GET /stats
answers the running totals; the bench takes them before and after each run.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KPL_MAGIC = b"\xf3\x89\x9a\xc2"
SHARDS = 4
STREAM = "pgcdc-bench"


def _varint(b, i):
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        if c < 0x80:
            return n, i
        shift += 7


def user_records(data):
    """(user records, control records among them) in one Kinesis record's data."""
    controls = data.count(b'"record-type":"control"')
    if not data.startswith(KPL_MAGIC):
        return 1, controls
    body = data[4:-16]
    if hashlib.md5(body).digest() != data[-16:]:
        raise ValueError("KPL aggregate with a bad MD5")
    i = n = 0
    while i < len(body):
        key, i = _varint(body, i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            ln, i = _varint(body, i)
            i += ln
            n += field == 3
        elif wire == 0:
            _, i = _varint(body, i)
        else:
            raise ValueError(f"unexpected wire type {wire} in a KPL aggregate")
    return n, controls


def shard_of(partition_key, explicit_hash_key):
    h = int(explicit_hash_key) if explicit_hash_key else int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")
    return min(h * SHARDS >> 128, SHARDS - 1)


def shard_ranges():
    step = (1 << 128) // SHARDS
    return [(i * step, (i + 1) * step - 1 if i < SHARDS - 1 else (1 << 128) - 1) for i in range(SHARDS)]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.t = {"calls": 0, "records": 0, "bytes": 0, "user": 0, "control": 0, "max_records": 0, "max_bytes": 0}

    def add(self, records, nbytes, user, control):
        with self.lock:
            t = self.t
            t["calls"] += 1
            t["records"] += records
            t["bytes"] += nbytes
            t["user"] += user
            t["control"] += control
            t["max_records"] = max(t["max_records"], records)
            t["max_bytes"] = max(t["max_bytes"], nbytes)

    def snapshot(self):
        with self.lock:
            return dict(self.t)


def serve(port):
    stats = Stats()
    shards = [{"ShardId": f"shardId-{i:012d}", "HashKeyRange": {"StartingHashKey": str(a), "EndingHashKey": str(b)},
               "SequenceNumberRange": {"StartingSequenceNumber": "1"}} for i, (a, b) in enumerate(shard_ranges())]
    seq = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle on, the body waits for the
        # client's delayed ACK (40 ms a call), which would be measured as pgcdc's time.
        disable_nagle_algorithm = True

        def log_message(self, *a):
            pass

        def answer(self, obj, code=200):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.answer(stats.snapshot())

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            if op == "DescribeStreamSummary":
                self.answer({"StreamDescriptionSummary": {
                    "StreamName": STREAM, "StreamARN": f"arn:aws:kinesis:us-east-1:123456789012:stream/{STREAM}",
                    "StreamStatus": "ACTIVE", "RetentionPeriodHours": 24, "StreamCreationTimestamp": 1700000000,
                    "EnhancedMonitoring": [], "OpenShardCount": SHARDS}})
            elif op == "ListShards":
                self.answer({"Shards": shards})
            elif op == "PutRecords":
                out, nbytes, user, control = [], 0, 0, 0
                for e in req["Records"]:
                    data = base64.b64decode(e["Data"])
                    nbytes += len(data) + len(e["PartitionKey"].encode())
                    u, c = user_records(data)
                    user += u
                    control += c
                    seq[0] += 1
                    out.append({"SequenceNumber": str(seq[0]),
                                "ShardId": shards[shard_of(e["PartitionKey"], e.get("ExplicitHashKey"))]["ShardId"]})
                stats.add(len(out), nbytes, user, control)
                self.answer({"FailedRecordCount": 0, "Records": out})
            else:
                self.answer({"__type": "InvalidArgumentException", "message": f"not in the bench endpoint: {op}"}, 400)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


class NullKinesis:
    """The endpoint process: start(), stats(), cpu_seconds(), stop()."""

    def __init__(self, workdir):
        from bench_s3 import _free_port

        self.port = _free_port()
        self.log = os.path.join(workdir, "null-kinesis.log")
        self.proc = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        from bench_s3 import _die_with_parent

        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", str(self.port)],
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"the null Kinesis endpoint did not start: {open(self.log).read()[-2000:]}")

    def stats(self):
        with urllib.request.urlopen(self.endpoint + "/stats", timeout=10) as r:
            return json.loads(r.read())

    def cpu_seconds(self):
        f = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def sink_toml(endpoint, aggregation):
    """The `[aws]` section and Kinesis sink of a bench run into the null endpoint."""
    return (f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint}"\n\n'
            f'[[sink]]\nkind = "kinesis"\nstream = "{STREAM}"\naggregation = "{aggregation}"\n\n')


def env():
    e = dict(os.environ)
    e.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"})
    return e


def measure(endpoint, fn):
    """Runs fn() (one pgcdc run) and adds what the endpoint received meanwhile to its result."""
    before, cpu0 = endpoint.stats(), endpoint.cpu_seconds()
    m = fn()
    after = endpoint.stats()
    m["kinesis"] = {k: after[k] - before[k] for k in ("calls", "records", "bytes", "user", "control")}
    m["kinesis"]["max_records"] = after["max_records"]
    m["endpoint_cpu"] = endpoint.cpu_seconds() - cpu0
    return m


def report(runs, med, rep):
    """Markdown: runs = [(workload label, rows, parquet-alone runs, {aggregation: runs})]."""
    md = ["### Kinesis: a Parquet and a Kinesis sink together against Parquet alone", "",
          "Each run catches up on the workload's WAL as the CDC runs above do, with the same local Parquet sink, "
          f"plus a Kinesis sink (`max_in_flight` 4, linger 200 ms) sending to a null Kinesis endpoint on 127.0.0.1 "
          f"(scripts/bench_kinesis.py: accepts every entry at once and counts them; moto_server would measure "
          f"itself){rep}. ratio = rows/s with Kinesis / rows/s of Parquet alone. Fill: average entries and bytes "
          "per PutRecords call against the 500-entry / 5 MiB limits. Records per 10k changes: Kinesis records "
          "(aggregates count once) per 10,000 row changes. Check: the endpoint received one data user record per "
          "row change (plus the control records).", "",
          "| workload | aggregation | s | rows/s | ratio to Parquet alone | pgcdc CPU s | pgcdc peak RSS MiB | endpoint CPU s "
          "| PutRecords calls | entries/call (fill) | KiB/call (fill) | records per 10k changes | check |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label, rows, alone, by_agg in runs:
        base = med([m["secs"] for m in alone])
        md.append(f"| {label} | (Parquet alone) | {base:.2f} | {rows / base:,.0f} | 1.00 | "
                  f"{med([m['cpu'] for m in alone]):.2f} | {max(m['rss'] for m in alone) / 1024:.0f} | - | - | - | - | - | - |")
        for agg, ms in by_agg.items():
            secs = med([m["secs"] for m in ms])
            k = ms[0]["kinesis"]
            calls = max(k["calls"], 1)
            per_call = k["records"] / calls
            kib = k["bytes"] / calls / 1024
            ok = all(m["kinesis"]["user"] - m["kinesis"]["control"] == rows for m in ms)
            md.append(f"| {label} | {agg} | {secs:.2f} | {rows / secs:,.0f} | **{base / secs:.2f}** "
                      f"| {med([m['cpu'] for m in ms]):.2f} | {max(m['rss'] for m in ms) / 1024:.0f} | {med([m['endpoint_cpu'] for m in ms]):.2f} "
                      f"| {k['calls']:,} | {per_call:.0f} ({per_call / 500:.0%}) | {kib:,.0f} ({kib / 5120:.0%}) "
                      f"| {k['records'] / rows * 10000:,.0f} | {'OK' if ok else 'MISMATCH'}: {k['user'] - k['control']:,} "
                      f"data records, {k['control']} control |")
    md.append("")
    return md


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        raise SystemExit("usage: bench_kinesis.py serve PORT")
