#!/usr/bin/env python3
"""Independent reader of pgcdc's KPL aggregated Kinesis records: AWS's aws_kinesis_agg
deaggregator, and a real (moto) Kinesis stream for routing.

usage:
  kpl_kinesis.py deaggregate RECORDS.json
      RECORDS.json: [{"partition_key", "explicit_hash_key" (or null), "data_hex"}, ...], the
      Kinesis records as pgcdc would put them. Each is unpacked with
      aws_kinesis_agg.deaggregator.iter_deaggregate_records (Lambda record format).
      Output: {"records": [[user record, ...] per Kinesis record]}, a user record being
      {"partition_key", "explicit_hash_key" (null when none), "data_hex", "aggregated"}.
  kpl_kinesis.py create-stream STREAM SHARDS
      Creates the stream on $AWS_ENDPOINT_URL with SHARDS shards, waits until it is active and
      prints {"shards": [{"shard_id", "starting_hash_key", "ending_hash_key", "open"}]} from
      ListShards.
  kpl_kinesis.py put-and-read STREAM RECORDS.json
      Puts each record with boto3 put_record (PartitionKey, ExplicitHashKey when set), in
      order, then reads every shard from TRIM_HORIZON with get_records and unpacks the records
      with aws_kinesis_agg (boto3 format). Output: {"put": [shard id per record], "shards":
      {shard id: [user record, ...]}}.
  kpl_kinesis.py read STREAM
      Reads every shard as put-and-read does (pgcdc's records). Output: {"shards": {shard id:
      [user record, ...]}, "ranges": {shard id: [starting hash key, ending hash key] (decimal
      strings)}}; each user record also has "sequence_number", the Kinesis record's (user
      records of one aggregate share it).
"""
import base64
import json
import os
import sys
import time

from aws_kinesis_agg.deaggregator import iter_deaggregate_records


def lambda_user_records(data, partition_key):
    rec = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": "1",
            "approximateArrivalTimestamp": 0,
            "data": base64.b64encode(data).decode(),
        }
    }
    out = []
    for u in iter_deaggregate_records(rec):
        d = u["kinesis"]["data"]
        raw = base64.b64decode(d)
        out.append({
            "partition_key": u["kinesis"]["partitionKey"],
            "explicit_hash_key": u["kinesis"].get("explicitHashKey"),
            "data_hex": raw.hex(),
            "aggregated": bool(u["kinesis"].get("aggregated", False)),
        })
    return out


def client():
    import boto3
    return boto3.client("kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        region_name=os.environ.get("AWS_REGION", "us-east-1"))


def create_stream(stream, shards):
    kin = client()
    kin.create_stream(StreamName=stream, ShardCount=shards)
    for _ in range(100):
        if kin.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            break
        time.sleep(0.1)
    return list_shards(stream)


def list_shards(stream):
    kin = client()
    out = []
    for s in kin.list_shards(StreamName=stream)["Shards"]:
        out.append({
            "shard_id": s["ShardId"],
            "starting_hash_key": s["HashKeyRange"]["StartingHashKey"],
            "ending_hash_key": s["HashKeyRange"]["EndingHashKey"],
            "open": "EndingSequenceNumber" not in s["SequenceNumberRange"],
        })
    return {"shards": out}


def put_and_read(stream, records):
    kin = client()
    put = []
    for r in records:
        args = {"StreamName": stream, "PartitionKey": r["partition_key"], "Data": bytes.fromhex(r["data_hex"])}
        if r.get("explicit_hash_key"):
            args["ExplicitHashKey"] = r["explicit_hash_key"]
        put.append(kin.put_record(**args)["ShardId"])
    return {"put": put, "shards": read_all(stream)}


def read_all(stream):
    """Every user record of every shard, from TRIM_HORIZON, deaggregated, in shard order."""
    kin = client()
    shards = {}
    for s in kin.list_shards(StreamName=stream)["Shards"]:
        it = kin.get_shard_iterator(StreamName=stream, ShardId=s["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        users = []
        while it:
            resp = kin.get_records(ShardIterator=it, Limit=10000)
            for rec in resp["Records"]:
                for u in iter_deaggregate_records(rec, data_format="Boto3"):
                    k = u["kinesis"]
                    users.append({
                        "partition_key": k["partitionKey"],
                        "explicit_hash_key": k.get("explicitHashKey"),
                        "data_hex": base64.b64decode(k["data"]).hex() if k.get("aggregated") else k["data"].hex(),
                        "aggregated": bool(k.get("aggregated", False)),
                        "sequence_number": k.get("sequenceNumber"),
                    })
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break
            it = resp.get("NextShardIterator")
        shards[s["ShardId"]] = users
    return shards


def main():
    cmd = sys.argv[1]
    if cmd == "deaggregate":
        with open(sys.argv[2]) as f:
            records = json.load(f)
        out = {"records": [lambda_user_records(bytes.fromhex(r["data_hex"]), r["partition_key"]) for r in records]}
    elif cmd == "create-stream":
        out = create_stream(sys.argv[2], int(sys.argv[3]))
    elif cmd == "read":
        listed = list_shards(sys.argv[2])["shards"]
        out = {"shards": read_all(sys.argv[2]),
               "ranges": {s["shard_id"]: [s["starting_hash_key"], s["ending_hash_key"]] for s in listed}}
    elif cmd == "put-and-read":
        with open(sys.argv[3]) as f:
            records = json.load(f)
        out = put_and_read(sys.argv[2], records)
    else:
        sys.exit(f"unknown command {cmd!r}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
