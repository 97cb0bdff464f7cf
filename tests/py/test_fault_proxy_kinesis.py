#!/usr/bin/env python3
"""Self-test of fault_proxy.py's Kinesis faults against a real moto_server, with boto3.

usage: .venv/bin/python tests/py/test_fault_proxy_kinesis.py   (also collectable by pytest)

Starts moto (`python -m moto.server` on a free port, as tests/it/support/moto.rs does) and
the proxy in front of it, then:

1. `kinesis_partial` (fail_every 2): a put_records of 10 records through the proxy answers
   FailedRecordCount 5, error entries (ProvisionedThroughputExceededException) at positions
   1, 3, 5, 7, 9 and moto's SequenceNumber/ShardId at the others; reading both shards of
   the stream from moto directly finds exactly the 5 forwarded records; the log names the
   failed partition keys.
2. `kinesis_partial` (fail_every 1, InternalFailure): every entry fails, moto gets nothing.
3. `throttle_kinesis`: a whole-call 400 that botocore raises as
   ProvisionedThroughputExceededException.

Exits non-zero (an AssertionError or another exception) on failure.
"""
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "fault_proxy.py")
STREAM = "fault-proxy-selftest"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(tmp):
    log = open(os.path.join(tmp, "moto.log"), "wb")
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, **ENV},
        )
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2).read()
                return proc, port
            except OSError:
                time.sleep(0.1)
        proc.kill()
        proc.wait()
    raise RuntimeError("moto did not start: " + open(os.path.join(tmp, "moto.log")).read())


def start_proxy(upstream_port, plan, log):
    proc = subprocess.Popen(
        [sys.executable, PROXY, "--upstream", f"http://127.0.0.1:{upstream_port}", "--plan", plan, "--log", log],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
    )
    line = proc.stdout.readline().decode()
    assert line.startswith("PORT "), f"proxy said {line!r}"
    return proc, int(line.split()[1])


def write_plan(path, plan):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(plan, f)
    os.replace(tmp, path)


def log_lines(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def kinesis(port):
    return boto3.client(
        "kinesis", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def read_stream(client):
    """All records of STREAM, shard by shard: {partition key: (data, sequence, shard)}."""
    got = {}
    for shard in client.list_shards(StreamName=STREAM)["Shards"]:
        sid = shard["ShardId"]
        it = client.get_shard_iterator(StreamName=STREAM, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = client.get_records(ShardIterator=it, Limit=1000)
            for rec in r["Records"]:
                assert rec["PartitionKey"] not in got, f"{rec['PartitionKey']} twice in the stream"
                got[rec["PartitionKey"]] = (rec["Data"], rec["SequenceNumber"], sid)
            if not r["Records"]:
                break
            it = r.get("NextShardIterator")
    return got


def run(tmp):
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(k, None)
    moto, moto_port = start_moto(tmp)
    plan, log = os.path.join(tmp, "plan.json"), os.path.join(tmp, "log.jsonl")
    write_plan(plan, {"rules": []})
    proxy, proxy_port = start_proxy(moto_port, plan, log)
    try:
        via_proxy, direct = kinesis(proxy_port), kinesis(moto_port)
        via_proxy.create_stream(StreamName=STREAM, ShardCount=2)
        via_proxy.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
        shards = [s["ShardId"] for s in direct.list_shards(StreamName=STREAM)["Shards"]]
        assert len(shards) == 2, shards

        # 1. Every 2nd entry fails; the others reach moto.
        write_plan(plan, {"rules": [{"target_contains": "PutRecords", "fault": "kinesis_partial", "fail_every": 2}]})
        records = [{"Data": f"payload-{i}".encode(), "PartitionKey": f"k{i}"} for i in range(10)]
        # Explicit hash keys 0 and 2^127 + i: the kept records land on both shards.
        for i, r in enumerate(records):
            r["ExplicitHashKey"] = str(0 if i % 4 < 2 else 2**127 + i)
        resp = via_proxy.put_records(StreamName=STREAM, Records=records)
        print("put_records through kinesis_partial:", json.dumps(
            {"FailedRecordCount": resp["FailedRecordCount"], "Records": resp["Records"]}, indent=None))
        assert resp["FailedRecordCount"] == 5, resp
        assert len(resp["Records"]) == 10, resp
        for i, e in enumerate(resp["Records"]):
            if i % 2 == 1:
                assert e.get("ErrorCode") == "ProvisionedThroughputExceededException", (i, e)
                assert e.get("ErrorMessage"), (i, e)
                assert "SequenceNumber" not in e, (i, e)
            else:
                assert "ErrorCode" not in e and e.get("SequenceNumber") and e.get("ShardId") in shards, (i, e)
        got = read_stream(direct)
        print("in moto:", {k: (d.decode(), s) for k, (d, _, s) in sorted(got.items())})
        assert sorted(got) == [f"k{i}" for i in range(0, 10, 2)], sorted(got)
        for i in range(0, 10, 2):
            data, seq, sid = got[f"k{i}"]
            assert data == f"payload-{i}".encode(), (i, data)
            assert (seq, sid) == (resp["Records"][i]["SequenceNumber"], resp["Records"][i]["ShardId"]), (i, seq, sid)
        assert {sid for _, _, sid in got.values()} == set(shards), "the kept records should be on both shards"
        partial = [line for line in log_lines(log) if line["fault"] == "kinesis_partial"]
        assert len(partial) == 1, partial
        assert partial[0]["failed"] == 5 and partial[0]["forwarded"] == 5, partial
        assert partial[0]["failed_keys"] == ["k1", "k3", "k5", "k7", "k9"], partial
        assert partial[0]["status"] == 200 and partial[0]["target"] == "Kinesis_20131202.PutRecords", partial

        # 2. Every entry fails (InternalFailure): moto is not contacted.
        write_plan(plan, {"rules": [{"target_contains": "PutRecords", "fault": "kinesis_partial",
                                     "fail_every": 1, "error_code": "InternalFailure"}]})
        resp = via_proxy.put_records(StreamName=STREAM, Records=[{"Data": b"x", "PartitionKey": f"z{i}"} for i in range(3)])
        assert resp["FailedRecordCount"] == 3, resp
        assert [e["ErrorCode"] for e in resp["Records"]] == ["InternalFailure"] * 3, resp
        assert sorted(read_stream(direct)) == [f"k{i}" for i in range(0, 10, 2)], "moto got records of an all-failed call"
        last = log_lines(log)[-1]
        assert last["fault"] == "kinesis_partial" and last["failed_keys"] == ["z0", "z1", "z2"] and last["forwarded"] == 0, last

        # A PutRecord (singular) is not split: the rule's target does not match it.
        direct_before = len(read_stream(direct))
        via_proxy.put_record(StreamName=STREAM, Data=b"single", PartitionKey="single")
        assert len(read_stream(direct)) == direct_before + 1

        # 3. A whole-call throttle.
        write_plan(plan, {"rules": [{"target_contains": "PutRecords", "fault": "throttle_kinesis"}]})
        try:
            via_proxy.put_records(StreamName=STREAM, Records=[{"Data": b"t", "PartitionKey": "t"}])
        except via_proxy.exceptions.ProvisionedThroughputExceededException as e:
            err = e.response
            print("throttle_kinesis:", err["ResponseMetadata"]["HTTPStatusCode"], err["Error"])
            assert err["ResponseMetadata"]["HTTPStatusCode"] == 400, err
            assert err["Error"]["Code"] == "ProvisionedThroughputExceededException", err
            assert err["Error"]["Message"].startswith("Rate exceeded"), err
        else:
            raise AssertionError("throttle_kinesis: put_records succeeded")
        last = log_lines(log)[-1]
        assert last["fault"] == "throttle_kinesis" and last["status"] == 400, last
        assert "t" not in read_stream(direct), "a throttled record reached moto"
        print("fault_proxy Kinesis self-test: OK")
    finally:
        for p in (proxy, moto):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_fault_proxy_kinesis(tmp_path):
    """pytest entry point."""
    run(str(tmp_path))


def main():
    import tempfile

    for k, v in ENV.items():
        os.environ.setdefault(k, v)
    with tempfile.TemporaryDirectory(prefix="fault-proxy-kinesis-") as tmp:
        run(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
