"""CloudWatch Embedded Metric Format: every line `dmd.lake.metrics` writes is valid against the
specification's JSON schema (tests/data/emf) and its prose rules, and the handler's lines count
what the batch put in the lake."""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dmd.generated import REGISTRY
from dmd.lake import layout
from dmd.lake.errordoc import ErrorDocument
from dmd.lake.metrics import MAX_DIMENSIONS, MAX_METRICS, Metric, MetricError, emit, line
from dmd.tools.cli import main

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "data" / "emf" / "emf.schema.json").read_text())
# The schema declares no $schema; its `$id` fragments are draft-07 style (2020-12 forbids them).
EMF = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def assert_valid_emf(text: str) -> dict:
    """The schema, plus what the specification states only in prose."""
    assert "\n" not in text.strip()
    doc = json.loads(text)
    EMF.validate(doc)
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        assert len(directive["Metrics"]) <= MAX_METRICS
        for dimension_set in directive["Dimensions"]:
            for name in dimension_set:
                assert isinstance(doc.get(name), str), f"dimension target {name!r} is not a string member"
        for metric in directive["Metrics"]:
            value = doc.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100
            assert all(type(v) in (int, float) for v in values), f"metric target {metric['Name']!r} not numeric"
    return doc


def test_a_line_is_valid_emf_with_its_dimensions_metrics_and_units():
    when = datetime(2024, 1, 15, 18, 30, 2, 120000, tzinfo=UTC)
    text = line(
        "dmd-pipeline",
        {"Function": "f", "RecordType": "demand"},
        {"RecordsArchived": Metric(3), "BytesWritten": Metric(1024, "Bytes"), "Age": Metric((1.5, 2.0), "Seconds")},
        timestamp=when,
        properties={"requestId": "abc"},
    )
    doc = assert_valid_emf(text)
    assert doc["_aws"]["Timestamp"] == 1705343402120
    assert doc["_aws"]["CloudWatchMetrics"] == [
        {
            "Namespace": "dmd-pipeline",
            "Dimensions": [["Function", "RecordType"]],
            "Metrics": [
                {"Name": "RecordsArchived", "Unit": "Count"},
                {"Name": "BytesWritten", "Unit": "Bytes"},
                {"Name": "Age", "Unit": "Seconds"},
            ],
        }
    ]
    assert (doc["Function"], doc["RecordType"], doc["RecordsArchived"], doc["Age"]) == ("f", "demand", 3, [1.5, 2.0])
    assert doc["requestId"] == "abc"


def test_emit_writes_one_line_and_returns_it():
    out = io.StringIO()
    text = emit("ns", {}, {"Objects": Metric(1)}, stream=out)
    assert out.getvalue() == text + "\n"
    assert_valid_emf(text)


@pytest.mark.parametrize(
    "args",
    [
        ("", {}, {"M": Metric(1)}),  # empty namespace
        ("ns", {f"d{i}": "v" for i in range(MAX_DIMENSIONS + 1)}, {"M": Metric(1)}),
        ("ns", {"D": ""}, {"M": Metric(1)}),  # empty dimension value
        ("ns", {"D": 3}, {"M": Metric(1)}),  # a dimension value that is not a string
        ("ns", {}, {}),  # no metric
        ("ns", {}, {f"m{i}": Metric(1) for i in range(MAX_METRICS + 1)}),
        ("ns", {}, {"M": Metric(1, "Furlongs")}),
        ("ns", {}, {"M": Metric(float("nan"))}),
        ("ns", {}, {"M": Metric("3")}),
        ("ns", {}, {"M": Metric(tuple(range(101)))}),
        ("ns", {"M": "x"}, {"M": Metric(1)}),  # a metric shadowing a dimension
    ],
)
def test_lines_the_specification_rejects_are_refused(args):
    with pytest.raises(MetricError):
        line(*args)


# --- the handler's metrics ----------------------------------------------------------------------


def load_handler(monkeypatch, endpoint: str, **env: str):
    monkeypatch.setenv("DMD_BUCKET", "dmd-test")
    monkeypatch.setenv("DMD_S3_ENDPOINT", endpoint)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "dmd-archive-test")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("dmd.ingest.handler", None)
    return importlib.import_module("dmd.ingest.handler")


def emf_lines(text: str) -> list[dict]:
    return [assert_valid_emf(t) for t in text.splitlines() if t.startswith('{"') and '"_aws"' in t]


def test_handler_metrics_count_what_the_batches_put_in_the_lake(s3, moto_server, monkeypatch, capsys, tmp_path):
    events = tmp_path / "events.jsonl"
    out = CliRunner().invoke(
        main, ["sample", "--records", "600", "--seed", "3", "--bad-fraction", "0.05", "--out", str(events)]
    )
    assert out.exit_code == 0, out.output
    handler = load_handler(monkeypatch, moto_server.url, DMD_FORMAT="parquet", DMD_METRICS_NAMESPACE="dmd-test")
    capsys.readouterr()
    batches = [json.loads(t) for t in events.read_text().splitlines()]
    for event in batches:
        assert handler.handler(event, None) == {"batchItemFailures": []}
    docs = emf_lines(capsys.readouterr().out)

    function_lines = [d for d in docs if "RecordType" not in d]
    type_lines = [d for d in docs if "RecordType" in d]
    assert len(function_lines) == len(batches)
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in docs} == {"dmd-test"}
    assert {d["Function"] for d in docs} == {"dmd-archive-test"}
    assert {d["RecordType"] for d in type_lines} <= set(REGISTRY) | {"(unknown)"}

    # what the lake holds, read independently
    rows: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    size: Counter[str] = Counter()
    error_records = error_documents = 0
    listing = s3.list_objects_v2(Bucket="dmd-test")["Contents"]
    for o in listing:
        key = o["Key"]
        if key.startswith(layout.DEFAULT_STATE_PREFIX + "/"):  # the compactor's touched markers
            continue
        parsed = layout.parse_data_key(key, "archive")
        body = s3.get_object(Bucket="dmd-test", Key=key)["Body"].read()
        if parsed is not None:
            rows[parsed.type_name] += pq.read_metadata(io.BytesIO(body)).num_rows
            objects[parsed.type_name] += 1
            size[parsed.type_name] += o["Size"]
        else:
            assert layout.is_error_document(key)
            error_records += len(ErrorDocument.from_json(body).entries)
            error_documents += 1
    assert error_records > 0 and rows

    def total(name: str, lines: list[dict], type_name: str | None = None) -> int:
        return sum(d[name] for d in lines if type_name is None or d["RecordType"] == type_name)

    assert total("RecordsIn", function_lines) == sum(len(e["Records"]) for e in batches)
    assert total("RecordsArchived", function_lines) == sum(rows.values())
    assert total("ObjectsWritten", function_lines) == sum(objects.values())
    assert total("BytesWritten", function_lines) == sum(size.values())
    assert total("ErrorRecords", function_lines) == error_records == total("ErrorRecords", type_lines)
    assert total("ErrorDocuments", function_lines) == error_documents
    assert total("RetryRecords", function_lines) == 0
    for type_name in rows:
        assert total("RecordsArchived", type_lines, type_name) == rows[type_name]
        assert total("ObjectsWritten", type_lines, type_name) == objects[type_name]
        assert total("BytesWritten", type_lines, type_name) == size[type_name]
    # each batch: its function line, then its lines per type
    by_batch: list[tuple[dict, list[dict]]] = []
    for d in docs:
        if "RecordType" in d:
            by_batch[-1][1].append(d)
        else:
            by_batch.append((d, []))
    # freshness: the sample's change times are in early 2024, so every archived batch is old
    latest_change = datetime(2024, 3, 1, tzinfo=UTC).timestamp()
    for batch, typed in by_batch:
        assert batch["BatchDuration"] >= 0
        assert batch["RecordsArchived"] == sum(t["RecordsArchived"] for t in typed)
        if batch["RecordsArchived"]:
            assert batch["Freshness"] >= batch["_aws"]["Timestamp"] / 1000 - latest_change
            assert batch["Freshness"] == max(t["Freshness"] for t in typed if "Freshness" in t)
        for t in typed:
            assert ("Freshness" in t) == (t["RecordsArchived"] > 0)


def test_records_reported_for_retry_are_counted_per_type(s3, fault_proxy, monkeypatch, capsys, project_root):
    event = json.loads((project_root / "tests" / "events" / "kinesis-event.json").read_text())
    handler = load_handler(monkeypatch, fault_proxy.url, DMD_S3_MAX_ATTEMPTS="1")
    fault_proxy.plan = lambda method, path: "error500" if method == "PUT" else None
    capsys.readouterr()
    response = handler.handler(event, None)
    docs = emf_lines(capsys.readouterr().out)
    (batch,) = [d for d in docs if "RecordType" not in d]
    assert batch["RetryRecords"] == len(response["batchItemFailures"]) == len(event["Records"])
    assert batch["RecordsArchived"] == batch["ObjectsWritten"] == 0 and "Freshness" not in batch
    per_type = {d["RecordType"]: d["RetryRecords"] for d in docs if "RecordType" in d}
    assert sum(per_type.values()) == batch["RetryRecords"]
    assert set(per_type) <= set(REGISTRY) | {"(unknown)"}


def test_a_metrics_fault_never_fails_a_stored_batch(s3, moto_server, monkeypatch, capsys, project_root):
    event = json.loads((project_root / "tests" / "events" / "kinesis-event.json").read_text())
    handler = load_handler(monkeypatch, moto_server.url)

    def broken(*args, **kwargs):
        raise MetricError("boom")

    monkeypatch.setattr(handler.metrics, "emit", broken)
    assert handler.handler(event, None) == {"batchItemFailures": []}
    assert '"metrics not emitted"' in capsys.readouterr().out


# --- the compactor's metrics --------------------------------------------------------------------


def load_compactor(monkeypatch, endpoint: str, **env: str):
    for name, value in {
        "DMD_BUCKET": "dmd-test",
        "DMD_S3_ENDPOINT": endpoint,
        "DMD_COMPACT_MIN_AGE_SECONDS": "0",
        "DMD_COMPACT_MARKER_GRACE_SECONDS": "0",
        "DMD_METRICS_NAMESPACE": "dmd-test",
        "AWS_LAMBDA_FUNCTION_NAME": "dmd-archive-test-compactor",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("dmd.lake.compact_handler", None)
    return importlib.import_module("dmd.lake.compact_handler")


def archive_sample(s3, tmp_path, records: int, seed: int, retry: bool = True) -> None:
    """`dmd sample` batches through the pipeline into the bucket; with `retry`, the second half of
    the first batch archived again, as a partial-batch retry does (duplicates to drop)."""
    from dmd.ingest.config import Settings
    from dmd.ingest.envelope import decode_event
    from dmd.ingest.pipeline import process_batch
    from dmd.lake.storage import S3Storage
    from dmd.tools.sample import sample

    storage = S3Storage("dmd-test", endpoint_url=s3.meta.endpoint_url)
    events, _ = sample(records, seed, batch_size=100, rate=0.001)
    batches = [decode_event(e) for e in events]
    for batch in batches:
        process_batch(batch, registry=REGISTRY, settings=Settings(), storage=storage)
    if retry:
        process_batch(batches[0][50:], registry=REGISTRY, settings=Settings(), storage=storage)


def data_objects(s3) -> int:
    listing = s3.list_objects_v2(Bucket="dmd-test", Prefix="archive/").get("Contents", [])
    return sum(1 for o in listing if layout.parse_data_key(o["Key"], "archive"))


def test_compactor_metrics_count_what_the_run_merged(s3, moto_server, monkeypatch, capsys, tmp_path):
    archive_sample(s3, tmp_path, 400, seed=4)
    before = data_objects(s3)
    handler = load_compactor(monkeypatch, moto_server.url)
    capsys.readouterr()
    report = handler.handler({"source": "aws.events"}, None)
    (doc,) = emf_lines(capsys.readouterr().out)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "dmd-test"
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Compactor"]]
    assert doc["Compactor"] == doc["Function"] == "dmd-archive-test-compactor" and doc["Mode"] == "single"
    after = data_objects(s3)
    assert doc["ObjectsMerged"] - doc["ObjectsWritten"] == before - after > 0
    assert doc["ObjectsMerged"] == report["objects_merged"] and doc["ObjectsWritten"] == report["merges"]
    assert doc["BytesMerged"] == report["bytes_in"] > doc["BytesWritten"] == report["bytes_out"] > 0
    assert doc["DuplicatesDropped"] == report["duplicates_dropped"] > 0
    assert doc["MergesFailed"] == doc["PartitionsLeft"] == doc["ObjectsUnchecked"] == 0
    assert doc["PartitionsCompacted"] == report["partitions"] > 0
    assert doc["MarkersLeft"] == 0 and doc["OldestMarkerAge"] == 0  # every marker consumed
    assert 0 < doc["RunDuration"] < 600
    units = {d["Name"]: d["Unit"] for d in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["BytesMerged"] == units["BytesWritten"] == "Bytes"
    assert units["OldestMarkerAge"] == units["RunDuration"] == "Seconds"


def test_compactor_backlog_metrics_when_the_budget_runs_out(s3, moto_server, monkeypatch, capsys, tmp_path):
    archive_sample(s3, tmp_path, 300, seed=5, retry=False)
    markers = len(s3.list_objects_v2(Bucket="dmd-test", Prefix=layout.touched_prefix("_dmd-state"))["Contents"])
    handler = load_compactor(monkeypatch, moto_server.url)
    # a budget already spent (the environment allows 1 s at least): every partition is left
    monkeypatch.setattr(handler, "OPTIONS", dataclasses.replace(handler.OPTIONS, budget=0.0))
    capsys.readouterr()
    handler.handler({}, None)
    (doc,) = emf_lines(capsys.readouterr().out)
    assert doc["PartitionsLeft"] > 0 and doc["PartitionsCompacted"] == 0 and doc["ObjectsMerged"] == 0
    assert doc["MarkersLeft"] == markers > 0
    assert doc["OldestMarkerAge"] > 0
    assert doc["MergesFailed"] == 0


def test_fan_out_planner_and_worker_lines(s3, moto_server, monkeypatch, capsys, tmp_path):
    import boto3

    archive_sample(s3, tmp_path, 200, seed=6)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_server.url)
    sqs = boto3.client("sqs", endpoint_url=moto_server.url, region_name="us-east-1")
    url = sqs.create_queue(QueueName="dmd-test-compaction")["QueueUrl"]
    handler = load_compactor(
        monkeypatch, moto_server.url, DMD_COMPACT_QUEUE_URL=url, DMD_COMPACTOR_NAME="dmd-archive-test-compactor"
    )
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "dmd-archive-test-compaction-worker")
    capsys.readouterr()
    handler.handler({}, None)
    records = []
    while answer := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        records += [{"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"} for m in answer]
    assert handler.worker({"Records": records}, None) == {"batchItemFailures": []}
    planner, worker = emf_lines(capsys.readouterr().out)
    assert {planner["Compactor"], worker["Compactor"]} == {"dmd-archive-test-compactor"}
    assert worker["Function"] == "dmd-archive-test-compaction-worker"
    assert (planner["Mode"], worker["Mode"]) == ("planner", "worker")
    assert planner["PartitionsQueued"] == len(records) == worker["PartitionsCompacted"] > 0
    assert planner["ObjectsMerged"] == 0 and worker["ObjectsMerged"] > 0 and worker["DuplicatesDropped"] > 0
    assert planner["MarkersLeft"] > 0 and "MarkersLeft" not in worker and "PartitionsQueued" not in worker
