#!/usr/bin/env python3
"""An HTTP proxy between pgcdc and a local AWS endpoint (moto_server) that misbehaves on
purpose, for the fault tests: S3 throttling and errors, connections reset in the middle of
an upload, outages of any length, Glue (JSON-RPC) throttling, errors and lost answers, and
Kinesis throttling and PutRecords partial failures.

usage: fault_proxy.py --upstream http://127.0.0.1:PORT --plan PLAN.json --log LOG.jsonl

Prints "PORT <n>" on stdout once it listens on 127.0.0.1:<n> (an ephemeral port), then
serves until killed. Every request is forwarded unchanged (method, path, headers including
Host, body) unless the plan injects a fault for it (`lost_answer` forwards it too,
`kinesis_partial` forwards part of it).

The plan is a JSON file, read again before every request, so a test changes the faults
while pgcdc runs by rewriting it (write a temporary file and rename it over the plan):

    {"rules": [{"method": "PUT", "path_contains": "/bucket/", "fault": "slowdown",
                "every": 3, "limit": 10},
               {"target_contains": "PutRecords", "fault": "kinesis_partial",
                "fail_every": 2, "error_code": "ProvisionedThroughputExceededException"}],
     "outage_until": 1764567890.5}

* A rule matches a request by `method` (optional), `path_contains` (optional substring
  of the path with its query) and `target_contains` (optional substring of the
  `X-Amz-Target` header of JSON-RPC services such as Glue and Kinesis, which all POST to
  `/`: `"AWSGlue.CreateTable"`, `"Partition"`, `"Kinesis_20131202.PutRecords"`; a request
  without the header never matches it; mind that `"PutRecord"` matches PutRecords too).
  Of the matching requests, every `every`-th (default 1: all) gets the fault, at most
  `limit` times in all (default: no limit). Counts are per rule index, in calls.
* Faults: `slowdown` (503 with S3's `SlowDown` error), `internal` (500 `InternalError`),
  `reset` (the connection is reset after half of the request body was read: a reset in the
  middle of an upload), `throttle_kinesis` (400 JSON `ProvisionedThroughputExceededException`,
  Kinesis' whole-call throttling), `throttle_glue` (400 JSON
  `ThrottlingException`), `internal_json` (500 JSON `InternalServiceException`),
  `denied_glue` (400 JSON `AccessDeniedException`: a permanent error), and `lost_answer`
  (the request is forwarded and done upstream, then the connection is reset instead of
  answering: the client cannot know it succeeded). A rule's `code` replaces the `__type` of
  `throttle_kinesis`, `throttle_glue`, `internal_json` and `denied_glue` (e.g.
  `"InternalFailure"`, the generic code of AWS' 500s). The JSON errors are
  `{"__type": code, "message": ...}` with `Content-Type: application/x-amz-json-1.1`.
* `recorded`: the rule's `body` (a JSON value) is the answer, with HTTP `status` (default
  200), as `application/x-amz-json-1.1`; the request is not forwarded. For calls moto does
  not implement (DMS ModifyEndpoint) and recorded service errors (`{"__type": "AccessDeniedFault", ...}`).
* `epoch_timestamps`: forwarded; a 200 JSON answer has every ISO date-time string turned
  into epoch seconds (moto's DMS writes `InstanceCreateTime` and the task dates as ISO text,
  which DMS does not and the Rust SDK cannot parse).
* `kinesis_partial` (only for `X-Amz-Target: Kinesis_20131202.PutRecords`; other targets
  are forwarded unchanged): the 1-based `fail_every`-th entries of the call's `Records`
  (default 2: the 2nd, 4th, ...; 1: all) fail with `error_code` (default
  `"ProvisionedThroughputExceededException"`; `"InternalFailure"` is the other code
  Kinesis uses). Only the other entries are forwarded, as one PutRecords to the same
  stream in the same order; the client gets HTTP 200 with what Kinesis answers:
  `{"FailedRecordCount", "Records": [one entry per request record, in order: moto's
  {"SequenceNumber", "ShardId"} or {"ErrorCode", "ErrorMessage"}], "EncryptionType"}`.
  If every entry fails, moto is not contacted. A whole-call error of moto is passed on.
  The forwarded request keeps the client's SigV4 headers, stale for the new body (moto
  does not check them). JSON bodies only (`application/x-amz-json-1.1`, what
  aws-sdk-kinesis for Rust and boto3 send; moto has no CBOR either): a body that cannot be
  split is forwarded unchanged and logged as `kinesis_partial-unparsed` with an `error`.
* `outage_until` (Unix time): until then every connection is reset as soon as it is accepted,
  and every request on a connection opened before is answered by a reset, as when the
  endpoint is down.

The log gets one JSON line per request: {"t", "method", "path", "target", "fault"|null,
"status"} (`target`: the `X-Amz-Target` header or null); a test reads it to prove the
faults really happened. `kinesis_partial` lines also have `failed` (how many entries
failed), `failed_keys` (their `PartitionKey`s, in request order) and `forwarded` (how many
went to moto).
"""
import argparse
import http.client
import http.server
import datetime
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse

S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message>"
    "<RequestId>fault-proxy</RequestId></Error>"
)

# fault: (HTTP status, `__type`, message) of the JSON (Glue-style) error answers.
GLUE_FAULTS = {
    "throttle_glue": (400, "ThrottlingException", "Rate exceeded"),
    "internal_json": (500, "InternalServiceException", "Internal service error, please retry."),
    "denied_glue": (400, "AccessDeniedException", "User: fault-proxy is not authorized to perform this operation"),
}


AMZ_JSON = "application/x-amz-json-1.1"
KINESIS_THROTTLE_MESSAGE = "Rate exceeded for shard shardId-000000000000 in stream fault-proxy under account 123456789012."


ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?$")


def epoch_timestamps(data):
    """moto's DMS answers ISO text where DMS answers epoch seconds (InstanceCreateTime,
    ReplicationTaskCreationDate, ...), which the Rust SDK refuses: every such string becomes
    its epoch seconds. Other bodies are returned unchanged."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data

    def fix(v):
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, str) and ISO_TIME.match(v):
            t = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
            if t.tzinfo is None:
                t = t.replace(tzinfo=datetime.timezone.utc)
            return t.timestamp()
        return v

    return json.dumps(fix(doc)).encode()


def kinesis_entry_message(code, stream):
    """The ErrorMessage of a failed PutRecords entry, worded like Kinesis'."""
    if code == "ProvisionedThroughputExceededException":
        return f"Rate exceeded for shard shardId-000000000000 in stream {stream} under account 123456789012."
    if code == "InternalFailure":
        return "Internal service failure."
    return f"{code} (fault-proxy)"


class Plan:
    """The plan file and the per-rule counters (shared by all handler threads)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.seen = {}
        self.injected = {}

    def read(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def outage(self):
        until = self.read().get("outage_until")
        return until is not None and time.time() < float(until)

    def fault_for(self, method, path, target=None):
        """The rule (a dict) whose fault `method path` (with `X-Amz-Target: target`) gets, or None."""
        rules = self.read().get("rules", [])
        with self.lock:
            for i, r in enumerate(rules):
                if r.get("method") and r["method"] != method:
                    continue
                if r.get("path_contains") and r["path_contains"] not in path:
                    continue
                if r.get("target_contains") and r["target_contains"] not in (target or ""):
                    continue
                n = self.seen.get(i, 0) + 1
                self.seen[i] = n
                limit = r.get("limit")
                if limit is not None and self.injected.get(i, 0) >= limit:
                    continue
                if n % max(1, int(r.get("every", 1))) == 0:
                    self.injected[i] = self.injected.get(i, 0) + 1
                    return r
        return None


def reset(sock):
    """Closes `sock` with a TCP RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None  # (host, port)
    plan = None
    log_lock = threading.Lock()
    log_path = None

    def log_message(self, *args):  # quiet: the JSON log says what matters
        pass

    def record(self, fault, status, **extra):
        line = json.dumps(
            {
                "t": time.time(),
                "method": self.command,
                "path": self.path,
                "target": self.headers.get("X-Amz-Target"),
                "fault": fault,
                "status": status,
                **extra,
            }
        )
        with self.log_lock, open(self.log_path, "a") as f:
            f.write(line + "\n")

    def read_body(self, limit=None):
        """The request body (Content-Length or chunked); at most `limit` bytes when set."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            got = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data = self.rfile.read(size)
                self.rfile.readline()
                chunks.append(data)
                got += len(data)
                if limit is not None and got >= limit:
                    break
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n if limit is None else min(n, limit))

    def answer(self, status, body, content_type="application/xml", extra=()):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        if self.plan.outage():
            # Also on a connection opened before the outage (keep-alive).
            self.record("outage", None)
            self.close_connection = True
            reset(self.connection)
            return
        rule = self.plan.fault_for(self.command, self.path, self.headers.get("X-Amz-Target")) or {}
        fault = rule.get("fault")
        if fault == "reset":
            n = int(self.headers.get("Content-Length") or 0)
            self.read_body(limit=max(1, n // 2))
            self.record(fault, None)
            self.close_connection = True
            reset(self.connection)
            return
        body = self.read_body()
        if fault == "slowdown":
            self.record(fault, 503)
            self.answer(503, S3_ERROR.format(code="SlowDown", message="Please reduce your request rate."))
            return
        if fault == "internal":
            self.record(fault, 500)
            self.answer(500, S3_ERROR.format(code="InternalError", message="We encountered an internal error. Please try again."))
            return
        if fault == "throttle_kinesis":
            self.record(fault, 400)
            body_json = {"__type": rule.get("code", "ProvisionedThroughputExceededException"), "message": KINESIS_THROTTLE_MESSAGE}
            self.answer(400, json.dumps(body_json), content_type=AMZ_JSON, extra=[("x-amzn-RequestId", "fault-proxy")])
            return
        if fault in GLUE_FAULTS:
            status, code, message = GLUE_FAULTS[fault]
            self.record(fault, status)
            body_json = {"__type": rule.get("code", code), "message": message}
            self.answer(status, json.dumps(body_json), content_type=AMZ_JSON)
            return
        if fault == "recorded":
            status = int(rule.get("status", 200))
            self.record(fault, status)
            self.answer(status, json.dumps(rule.get("body", {})), content_type=AMZ_JSON, extra=[("x-amzn-RequestId", "fault-proxy")])
            return
        if fault == "kinesis_partial" and (self.headers.get("X-Amz-Target") or "").endswith(".PutRecords"):
            self.kinesis_partial(rule, body)
            return
        try:
            status, headers, data = self.forward(body)
        except OSError as e:
            self.record("upstream-error", 502)
            self.answer(502, S3_ERROR.format(code="BadGateway", message=str(e)))
            return
        if fault == "lost_answer":
            # Done upstream, but the client never hears of it.
            self.record(fault, None)
            self.close_connection = True
            reset(self.connection)
            return
        if fault == "epoch_timestamps" and status == 200:
            self.record(fault, status)
            self.relay(status, headers, epoch_timestamps(data))
            return
        self.record(None, status)
        self.relay(status, headers, data)

    def forward(self, body):
        """Sends this request with `body` upstream: (status, headers, body) of the answer."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() in ("transfer-encoding", "content-length", "connection"):
                    continue
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def relay(self, status, headers, data, drop=(), content_type=None):
        """Answers with an upstream answer (`drop`: lowercase header names left out)."""
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in headers:
            if k.lower() in ("transfer-encoding", "connection") or k.lower() in drop:
                continue
            # A HEAD answer has no body but says how long the object is.
            if k.lower() == "content-length" and self.command != "HEAD":
                continue
            self.send_header(k, v)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def kinesis_partial(self, rule, body):
        """A Kinesis PutRecords whose every `fail_every`-th entry fails: the others are
        forwarded (one PutRecords, same order), the answer merges moto's entries with error
        entries at the failed positions."""
        ctype = self.headers.get("Content-Type", "")
        try:
            if "cbor" in ctype:
                raise ValueError(f"CBOR body ({ctype}) not supported")
            req = json.loads(body)
            records = req["Records"]
            if not isinstance(records, list):
                raise ValueError("Records is not a list")
        except (ValueError, KeyError, TypeError) as e:
            # Not what we can split: forwarded unchanged, the log says why.
            try:
                status, headers, data = self.forward(body)
            except OSError as e2:
                self.record("upstream-error", 502)
                self.answer(502, S3_ERROR.format(code="BadGateway", message=str(e2)))
                return
            self.record("kinesis_partial-unparsed", status, error=str(e))
            self.relay(status, headers, data)
            return
        every = max(1, int(rule.get("fail_every", 2)))
        code = rule.get("error_code", "ProvisionedThroughputExceededException")
        failed = [i for i in range(len(records)) if (i + 1) % every == 0]
        failed_set = set(failed)
        kept = [r for i, r in enumerate(records) if i not in failed_set]
        failed_keys = [records[i].get("PartitionKey") for i in failed]
        stream = req.get("StreamName") or req.get("StreamARN", "").rsplit("/", 1)[-1]
        upstream_entries = []
        headers = [("x-amzn-RequestId", "fault-proxy")]
        if kept or not records:
            try:
                status, headers, data = self.forward(json.dumps({**req, "Records": kept}).encode())
            except OSError as e:
                self.record("upstream-error", 502)
                self.answer(502, S3_ERROR.format(code="BadGateway", message=str(e)))
                return
            if status != 200:
                # A whole-call error of moto (e.g. no such stream): passed on as it is.
                self.record("kinesis_partial-upstream-error", status)
                self.relay(status, headers, data)
                return
            upstream = json.loads(data)
            upstream_entries = upstream.get("Records", [])
            encryption = upstream.get("EncryptionType", "NONE")
        else:
            encryption = "NONE"
        if len(upstream_entries) != len(kept):
            self.record("kinesis_partial-upstream-mismatch", 502)
            self.answer(502, S3_ERROR.format(code="BadGateway", message="moto answered a different number of entries"))
            return
        up = iter(upstream_entries)
        entries = []
        for i in range(len(records)):
            if i in failed_set:
                entries.append({"ErrorCode": code, "ErrorMessage": kinesis_entry_message(code, stream)})
            else:
                entries.append(next(up))
        failed_count = len(failed) + sum(1 for e in upstream_entries if "ErrorCode" in e)
        out = json.dumps({"FailedRecordCount": failed_count, "Records": entries, "EncryptionType": encryption}).encode()
        self.record("kinesis_partial", 200, failed=len(failed), failed_keys=failed_keys, forwarded=len(kept))
        # The body changed: no checksum or length of moto's body may stay.
        self.relay(200, headers, out, drop=("x-amz-crc32", "content-type"), content_type=AMZ_JSON)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    plan = None

    def verify_request(self, request, client_address):
        # An outage: the connection is reset as soon as it is accepted.
        if self.plan.outage():
            reset(request)
            return False
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    up = urllib.parse.urlparse(args.upstream)
    plan = Plan(args.plan)
    Handler.upstream = (up.hostname, up.port or 80)
    Handler.plan = plan
    Handler.log_path = args.log
    server = Server(("127.0.0.1", 0), Handler)
    server.plan = plan
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
