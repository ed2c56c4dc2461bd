"""Fan-out compaction through the Lambda entry points against moto's S3 and SQS servers: the
scheduled handler plans (one message per touched partition), workers invoked with the SQS event
shape compact in parallel, a later plan deletes the markers once stamps cover them. Every record
ends exactly once, also when messages are delivered twice, lost, or a worker fails mid-merge."""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from lakes import data_keys, rows_by_partition, write_lake

from dmd.lake import layout
from dmd.lake.state import read_touched
from dmd.lake.storage import S3Policy, S3Storage

STATE = layout.DEFAULT_STATE_PREFIX
MARKERS = layout.touched_prefix(STATE)


@pytest.fixture
def sqs(s3, moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_server.url)  # boto3 reads it: the planner's client
    client = boto3.client("sqs", endpoint_url=moto_server.url, region_name="us-east-1")
    url = client.create_queue(QueueName="dmd-compaction")["QueueUrl"]
    return client, url


def load(monkeypatch, endpoint: str, queue_url: str):
    for name, value in {
        "DMD_BUCKET": "dmd-test",
        "DMD_S3_ENDPOINT": endpoint,
        "DMD_COMPACT_MIN_AGE_SECONDS": "0",
        "DMD_COMPACT_MARKER_GRACE_SECONDS": "0",
        "DMD_COMPACT_QUEUE_URL": queue_url,
        "DMD_COMPACTOR_NAME": "dmd-archive-compactor",
        "AWS_LAMBDA_FUNCTION_NAME": "dmd-archive-compactor",
    }.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("dmd.lake.compact_handler", None)
    return importlib.import_module("dmd.lake.compact_handler")


def receive(sqs, limit: int = 10) -> list[dict]:
    """Up to `limit` messages as the SQS event source hands them to Lambda."""
    client, url = sqs
    answer = client.receive_message(QueueUrl=url, MaxNumberOfMessages=limit, WaitTimeSeconds=0)
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {},
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dmd-compaction",
            "awsRegion": "us-east-1",
        }
        for m in answer.get("Messages", [])
    ]


def invoke(handler, sqs, records: list[dict]) -> list[str]:
    """One worker invocation; like the event source mapping, delete the messages it did not
    report failed. Returns the failed message ids."""
    client, url = sqs
    response = handler.worker({"Records": records}, None)
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    done = [r for r in records if r["messageId"] not in failed]
    if done:
        entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)]
        client.delete_message_batch(QueueUrl=url, Entries=entries)
    return failed


def drain(handler, sqs, workers: int = 3, batch: int = 4) -> int:
    """Invoke workers in parallel until the queue is empty; returns the messages handled."""
    handled = 0
    with ThreadPoolExecutor(workers) as pool:
        while True:
            batches = [b for b in (receive(sqs, batch) for _ in range(workers)) if b]
            if not batches:
                return handled
            for failed in pool.map(lambda b: invoke(handler, sqs, b), batches):
                assert not failed
            handled += sum(len(b) for b in batches)


def queued(sqs) -> int:
    client, url = sqs
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def once(before: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
    return {part: Counter(set(rows)) for part, rows in before.items()}


def touched(storage: S3Storage) -> set:
    return set().union(*(read_touched(storage.get(k)) for k in storage.list(MARKERS)))


def test_planner_and_workers_compact_every_touched_partition_once(s3, sqs, moto_server, monkeypatch, capsys):
    storage = S3Storage("dmd-test", endpoint_url=moto_server.url)
    write_lake(storage, "avro", 200, seed=12, retries=2)
    write_lake(storage, "parquet", 100, seed=13, retries=1)
    before = rows_by_partition(storage)
    objects = len(data_keys(storage))
    partitions = touched(storage)
    handler = load(monkeypatch, moto_server.url, sqs[1])

    plan = handler.handler({"source": "aws.events"}, None)
    assert plan["queued"] == len(partitions) == queued(sqs) and not plan["errors"]
    assert plan["markers_consumed"] == 0  # nothing compacted yet
    # the next tick comes before the workers: every partition is sent again (duplicates)
    again = handler.handler({"source": "aws.events"}, None)
    assert again["queued"] == len(partitions) and queued(sqs) == 2 * len(partitions)
    # a message lost (deleted unprocessed, as if dead-lettered and purged)
    (lost,) = receive(sqs, 1)
    sqs[0].delete_message(QueueUrl=sqs[1], ReceiptHandle=lost["receiptHandle"])

    handled = drain(handler, sqs)
    assert handled == 2 * len(partitions) - 1
    assert rows_by_partition(storage) == once(before)  # the lost message's twin did its partition

    # the next tick: stamps cover every marker's partitions: all deleted, nothing queued
    final = handler.handler({"source": "aws.events"}, None)
    assert final["markers_consumed"] == plan["markers_read"] and final["queued"] == 0
    assert not list(storage.list(MARKERS))

    docs = [json.loads(t) for t in capsys.readouterr().out.splitlines() if '"_aws"' in t]
    workers = [d for d in docs if d["Mode"] == "worker"]
    planners = [d for d in docs if d["Mode"] == "planner"]
    assert len(planners) == 3 and {d["Compactor"] for d in docs} == {"dmd-archive-compactor"}
    assert [d["PartitionsQueued"] for d in planners] == [len(partitions), len(partitions), 0]
    assert planners[-1]["MarkersLeft"] == 0 and planners[-1]["OldestMarkerAge"] == 0
    assert planners[0]["OldestMarkerAge"] > 0
    merged, written = sum(d["ObjectsMerged"] for d in workers), sum(d["ObjectsWritten"] for d in workers)
    assert merged > written > 0 and merged - written == objects - len(data_keys(storage))
    assert sum(d["MergesFailed"] for d in workers) == 0
    dropped = sum(sum(c.values()) - len(c) for c in before.values())
    assert sum(d["DuplicatesDropped"] for d in workers) == dropped > 0


def test_a_lost_message_is_planned_again_and_a_redelivery_merges_nothing(s3, sqs, moto_server, monkeypatch):
    storage = S3Storage("dmd-test", endpoint_url=moto_server.url)
    write_lake(storage, "avro", 100, seed=5, retries=1)
    before = rows_by_partition(storage)
    handler = load(monkeypatch, moto_server.url, sqs[1])
    plan = handler.handler({}, None)
    records = receive(sqs, 10)
    lost, delivered = records[0], records[1:]
    sqs[0].delete_message(QueueUrl=sqs[1], ReceiptHandle=lost["receiptHandle"])
    assert invoke(handler, sqs, delivered) == []
    # the same messages delivered again (SQS is at-least-once): skipped by the stamps
    redelivered = handler.worker({"Records": delivered}, None)
    assert redelivered == {"batchItemFailures": []}
    drain(handler, sqs)
    # the lost partition's markers stay; the next tick sends it again, then consumes everything
    second = handler.handler({}, None)
    lost_p = json.loads(lost["body"])["partition"]
    assert second["queued"] >= 1 and list(storage.list(MARKERS))
    assert second["markers_consumed"] < plan["markers_read"]
    bodies = [json.loads(r["body"])["partition"] for r in receive(sqs, 10)]
    assert lost_p in bodies
    client, url = sqs
    client.purge_queue(QueueUrl=url)
    handler.handler({}, None)
    drain(handler, sqs)
    third = handler.handler({}, None)
    assert third["queued"] == 0 and not list(storage.list(MARKERS))
    assert rows_by_partition(storage) == once(before)


def test_a_worker_failing_mid_merge_reports_the_message_and_its_redelivery_finishes(
    s3, sqs, moto_server, fault_proxy, monkeypatch
):
    storage = S3Storage("dmd-test", endpoint_url=moto_server.url)
    write_lake(storage, "parquet", 100, seed=9, retries=1)
    before = rows_by_partition(storage)
    handler = load(monkeypatch, fault_proxy.url, sqs[1])
    monkeypatch.setattr(handler.STORAGE, "policy", S3Policy(max_attempts=1))  # no retries: fail fast
    handler.handler({}, None)
    # every DELETE of data fails: merges are written and verified, their sources cannot be deleted
    fault_proxy.plan = lambda method, path: "error500" if method == "DELETE" and "/archive/" in path else None
    records = receive(sqs, 10)
    failed = invoke(handler, sqs, records)
    assert failed, "no message reported failed"
    journal = list(storage.list(layout.journal_prefix(STATE)))
    fault_proxy.plan = lambda method, path: None
    # the failed messages come back after the visibility timeout (here: made visible at once)
    client, url = sqs
    for r in records:
        if r["messageId"] in failed:
            client.change_message_visibility(QueueUrl=url, ReceiptHandle=r["receiptHandle"], VisibilityTimeout=0)
    drain(handler, sqs)
    handler.handler({}, None)
    drain(handler, sqs)
    final = handler.handler({}, None)
    assert journal or failed  # something was left open by the failure
    assert not list(storage.list(layout.journal_prefix(STATE)))
    assert final["queued"] == 0 and not list(storage.list(MARKERS))
    assert rows_by_partition(storage) == once(before)


def test_a_plan_that_cannot_send_deletes_no_marker_and_reports_it(
    s3, sqs, moto_server, fault_proxy, monkeypatch, capsys
):
    storage = S3Storage("dmd-test", endpoint_url=moto_server.url)
    write_lake(storage, "avro", 100, seed=3, retries=0)
    markers = list(storage.list(MARKERS))
    handler = load(monkeypatch, moto_server.url, sqs[1])
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", fault_proxy.url)  # SQS through the proxy: every request fails
    fault_proxy.plan = lambda method, path: "error500"
    capsys.readouterr()
    report = handler.handler({}, None)
    assert report["queued"] == 0 and report["errors"]
    (line,) = [json.loads(t) for t in capsys.readouterr().out.splitlines() if '"_aws"' in t]
    assert line["MergesFailed"] > 0 and line["PartitionsQueued"] == 0  # what the failures alarm watches
    assert list(storage.list(MARKERS)) == markers and queued(sqs) == 0
    fault_proxy.plan = lambda method, path: None
    assert handler.handler({}, None)["queued"] == len(touched(storage))  # the next tick sends it all
