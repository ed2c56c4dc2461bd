"""From a Kinesis stream to the lake: change records are put into a stream on the moto server,
read back with GetRecords the way Lambda's event source mapping does, handed to the handler as
a Lambda Kinesis event, and archived to S3 on the same server."""

from __future__ import annotations

import base64
import io
import json

import boto3
import pyarrow.parquet as pq
from test_handler_s3 import EVENTS, assert_archived, changes, keys, load_handler


def lambda_event(stream_arn: str, shard_id: str, records: list[dict]) -> dict:
    """What the event source mapping hands the function for one shard's records."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }


def test_records_put_into_kinesis_are_archived(s3, moto_server, monkeypatch):
    kinesis = boto3.client("kinesis", endpoint_url=moto_server.url, region_name="us-east-1")
    kinesis.create_stream(StreamName="demand-capture", ShardCount=1)
    stream = kinesis.describe_stream(StreamName="demand-capture")["StreamDescription"]
    source = changes(json.loads((EVENTS / "kinesis-event.json").read_text()))
    for change in source:  # what DynamoDB's Kinesis streaming destination writes
        kinesis.put_record(
            StreamName="demand-capture",
            Data=json.dumps(change).encode(),
            PartitionKey=change["dynamodb"]["Keys"]["id"]["S"],
        )
    shard_id = stream["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName="demand-capture", ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=100)["Records"]
    assert len(records) == len(source)

    handler = load_handler(monkeypatch, moto_server.url)
    result = handler.handler(lambda_event(stream["StreamARN"], shard_id, records), None)

    assert result == {"batchItemFailures": []}
    rows = {
        r["cdc"]["sequenceNumber"]: r
        for k in keys(s3, "archive/")
        for r in pq.read_table(io.BytesIO(s3.get_object(Bucket="dmd-test", Key=k)["Body"].read())).to_pylist()
    }
    for record, change in zip(records, source, strict=True):
        assert_archived(rows[record["SequenceNumber"]], change, record["SequenceNumber"])
